"""Export: a model's ONNX part and its card, for a consumer outside the database (an edge
device, a web page, a model service), or the whole model as a bundle for another database
(:mod:`pyml.core.bundle`, imported there by :mod:`pyml.server.importing`). The ONNX part was
made and checked at training (:mod:`pyml.core.onnxpart`); export hands out exactly those
bytes, and a bundle exactly the stored files."""

from __future__ import annotations

import hashlib
import json
import platform
from typing import Any

from pyml.core import bundle, params
from pyml.core.model import Model
from pyml.errors import FeatureNotSupported, ObjectNotInPrerequisiteState
from pyml.server import store
from pyml.server._db import Db

FORMATS = ("onnx", "pyml")


def export(db: Db, model: Model, format: str) -> bytes:
    """``pyml.export``: the ONNX part's bytes (0A000, saying why, when there is none), or
    with format ``pyml`` the model's bundle."""
    params.one_of("format", format, FORMATS)
    if format == "pyml":
        return model_bundle(db, model.stored_id)
    return _onnx(db, model)


def model_bundle(db: Db, model_id: int) -> bytes:
    """The model as a bundle (:mod:`pyml.core.bundle`): its catalog rows, its snapshot's
    (with the column statistics) and its files, with where it comes from (``source``)."""
    from pyml import __version__

    found = json.loads(store.model_bundle(db, model_id))
    if found["snapshot"] is None:
        raise ObjectNotInPrerequisiteState(
            f"the training data of model {model_id} is gone",
            detail="Its snapshot row was deleted: a bundle needs its columns.",
        )
    exported = found["source"]
    lineage = found["model"]["lineage"] or {}
    # How the model was trained: what the bundle it was imported from said, else what its
    # lineage says, else pyml.train (the only way a model gets into the registry otherwise).
    first = lineage.get("imported", {}).get("from", {})
    trained_by = first.get("trained_by") or lineage.get("trained_by") or "pyml.train"
    source = {
        "pyml_version": __version__,
        "exported_at": exported["exported_at"],
        "server": f"{platform.node()}:{exported['port']}",
        "database": exported["database"],
        "model_id": exported["model_id"],
        "trained_by": trained_by,
    }
    if isinstance(first.get("cluster"), dict):
        source["cluster"] = first["cluster"]
    return bundle.dumps(
        {
            "format": bundle.FORMAT,
            "version": bundle.VERSION,
            "source": source,
            "project": found["project"],
            "snapshot": found["snapshot"],
            "model": found["model"],
            "files": bundle.files_of(store.model_files(db, model_id)),
        }
    )


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
