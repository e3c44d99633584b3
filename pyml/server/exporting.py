"""Export: a model's ONNX part and its card, for a consumer outside the database (an edge
device, a web page, a model service). The part was made and checked at training
(:mod:`pyml.core.onnxpart`); export hands out exactly those bytes."""

from __future__ import annotations

import hashlib
from typing import Any

from pyml.core import params
from pyml.core.model import Model
from pyml.errors import FeatureNotSupported
from pyml.server import store
from pyml.server._db import Db

FORMATS = ("onnx",)


def export(db: Db, model: Model, format: str) -> bytes:
    """``pyml.export``: the ONNX part's bytes; 0A000 (saying why) when there is none."""
    params.one_of("format", format, FORMATS)
    return _onnx(db, model)


def card(db: Db, model: Model) -> dict[str, Any]:
    """``pyml.model_card``: what a consumer outside the database needs to use the export."""
    from pyml import __version__

    data = _onnx(db, model)
    created_at, onnx = store.model_export_facts(db, model.stored_id)
    runtime = model.runtime
    session = runtime.session
    return {
        "pyml_version": __version__,
        "model_id": model.id,
        "project": model.project,
        "task": model.task,
        "algorithm": model.algorithm,
        "created_at": created_at,
        "format": "onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "inputs": [{"name": n.name, "type": _type(n.type)} for n in session.get_inputs()],
        "outputs": [{"name": n.name, "type": _type(n.type)} for n in session.get_outputs()],
        "classes": model.classes if model.task == "classification" else None,
        "probabilities": runtime.probabilities if model.task == "classification" else None,
        "nulls": {"number": "NaN", "text": ""},
        "parity": {key: onnx.get(key) for key in ("precision", "max_diff", "rows", "tolerance")},
    }


def _onnx(db: Db, model: Model) -> bytes:
    if model.onnx is not None:
        return model.onnx
    _, onnx = store.model_export_facts(db, model.stored_id)
    reason = onnx.get("reason")
    raise FeatureNotSupported(
        f'model {model.id} of project "{model.project}" has no ONNX form',
        detail=f"{reason[0].upper()}{reason[1:]}."
        if reason
        else "It was trained before pyml stored ONNX parts.",
        hint=None if reason else "Retrain it to get one.",
    )


def _type(onnx_type: str) -> str:
    """``tensor(double)`` -> ``double``."""
    return onnx_type.removeprefix("tensor(").removesuffix(")")
