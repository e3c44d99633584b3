"""The fit step of training: preprocessing, fit (a search included) and the artifacts' bytes,
run in a child process of the backend (:mod:`pyml.server._isolate`): cancellable at any point
and bounded by setting ``pyml.train_memory_limit``. :mod:`pyml.server.training` reads the data
before and evaluates and stores the model after.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from pyml.core import algorithms, artifacts
from pyml.core import preprocess as _preprocess
from pyml.core.registry import jsonable
from pyml.server import _isolate, search, store
from pyml.server._db import Db
from pyml.server.training import TrainingData, TrainRequest


class Fitted(NamedTuple):
    """A model fitted in a child process, as the backend gets it back."""

    parts: list[artifacts.Part]  # the artifacts, as stored
    hyperparams: dict[str, Any]  # the hyperparameters used (JSON)
    preprocess: dict[str, Any]  # pyml.models.preprocess
    search_results: list[dict[str, Any]] | None  # the search's candidates (JSON)
    seconds: float  # the fit alone, in the child
    onnx: dict[str, Any]  # the ONNX part's conversion and check, or why there is none
    timings: dict[str, float]  # the child's phases (start, fit, serialize, onnx, send)


def fit_isolated(
    db: Db,
    algorithm: algorithms.Algorithm,
    estimator: Any,
    data: TrainingData,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    task: str,
    req: TrainRequest,
) -> Fitted:
    """Fit (preprocessing, search) on the training rows in a child process (see
    :mod:`pyml.server._isolate`): cancellable at any point and bounded by setting
    ``pyml.train_memory_limit``. The child sends back the artifacts' bytes."""
    setting = store.train_memory_limit(db)
    limit = _isolate.memory_limit(setting.server, setting.session)
    if limit.notice:
        db.notice(limit.notice)
    work = fit_work(algorithm, estimator, data, y, train_idx, test_idx, task, req)
    forked = time.perf_counter()  # CLOCK_MONOTONIC: the same clock in the child
    value, blobs = _isolate.run(work, check=db.check, notice=db.notice, limit=limit)
    received = time.perf_counter()
    clock = value.pop("clock")
    timings = {
        "start": clock["started"] - forked,  # fork, until the child's work begins
        **clock["phases"],
        "send": received - clock["finished"],  # the result through the pipe
    }
    parts = [
        artifacts.Part(part, fmt, blob)
        for (part, fmt), blob in zip(value["parts"], blobs, strict=True)
    ]
    return Fitted(
        parts,
        value["hyperparams"],
        value["preprocess"],
        value["search_results"],
        value["seconds"],
        value["onnx"],
        timings,
    )


def fit_work(
    algorithm: algorithms.Algorithm,
    estimator: Any,
    data: TrainingData,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    task: str,
    req: TrainRequest,
) -> _isolate.Work:
    """The fit step as the child process runs it: preprocessing, fit (search included) and
    artifacts; JSON and the artifacts' bytes out."""

    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        started = time.perf_counter()
        # The converters take about a second to import: on another thread, while fitting.
        importing = threading.Thread(target=_import_converters, daemon=True)
        importing.start()
        preprocessor = None
        if _preprocess.needed(data.rules):  # fitted with the model, on the training rows only
            preprocessor = _preprocess.build(data.input_rules(), data.X[train_idx], task)
        fitted, preprocessor, results = search.fit(
            algorithm,
            estimator,
            data.X[train_idx],
            y[train_idx],
            req,
            multi=y.ndim == 2,
            notice=progress,
            preprocessor=preprocessor,
        )
        seconds = time.perf_counter() - started
        storable = algorithms.storable(fitted)
        parts = artifacts.dump(algorithm.library, storable, preprocessor)
        serialized = time.perf_counter()
        importing.join()
        imported = time.perf_counter()
        onnx = onnx_part(storable, preprocessor, data, test_idx, train_idx, task)
        if onnx.data is not None:
            parts.append(artifacts.Part(len(parts), artifacts.ONNX, onnx.data))
        finished = time.perf_counter()
        return {
            "clock": {
                "started": started,
                "finished": finished,
                "phases": {
                    "fit": seconds,
                    "serialize": serialized - started - seconds,
                    "import": imported - serialized,  # the converters' rest, after the fit
                    "onnx": finished - imported,
                },
            },
            "parts": [[p.part, p.format] for p in parts],
            "seconds": seconds,
            "onnx": onnx.record(),
            "hyperparams": jsonable(used_params(fitted)),
            "preprocess": jsonable(preprocess_used(data, preprocessor)),
            "search_results": jsonable(results) if results is not None else None,
        }, [p.data for p in parts]

    return work


CHECK_ROWS = 10_000  # at most this many test rows check the ONNX part


def _import_converters() -> None:
    import onnxruntime  # noqa: F401
    import skl2onnx  # noqa: F401


class OnnxPart(NamedTuple):
    data: bytes | None
    record: Callable[[], dict[str, Any]]


def onnx_part(
    estimator: Any,
    preprocessor: Any,
    data: TrainingData,
    test_idx: np.ndarray,
    train_idx: np.ndarray,
    task: str,
) -> OnnxPart:
    """The model with its preprocessing as one ONNX graph (:mod:`pyml.core.onnxpart`),
    checked on the test rows (the training rows when there are none), and what to record
    of it (lineage ``onnx``): the precision chosen, the largest difference, the rows checked,
    the tolerance, the seconds taken; or the reason there is no ONNX part."""
    from pyml.core import onnxpart

    started = time.perf_counter()
    rows = data.X[(test_idx if len(test_idx) else train_idx)[:CHECK_ROWS]]
    text = [rule.category for rule in data.input_rules()] if data.rules else []
    text = text or [False] * len(data.names)
    converted = onnxpart.convert(estimator, preprocessor, data.names, text, task, rows)
    seconds = time.perf_counter() - started

    def record() -> dict[str, Any]:
        if converted.data is None:
            return {"converted": False, "reason": converted.reason, "seconds": seconds}
        return {
            "converted": True,
            "precision": converted.inputs,
            "max_diff": converted.diff,
            "rows": len(rows),
            "checked_on": "test rows" if len(test_idx) else "training rows",
            "tolerance": onnxpart.TOLERANCE,
            "seconds": seconds,
        }

    return OnnxPart(converted.data, record)


def used_params(estimator: Any) -> dict[str, Any]:
    inner = getattr(estimator, "estimator", None)
    if type(estimator).__name__ == "MultiOutputRegressor" and inner is not None:
        return dict(inner.get_params())
    return dict(estimator.get_params())


def preprocess_used(data: TrainingData, preprocessor: Any) -> dict[str, Any]:
    """``pyml.models.preprocess``: each column's rule, and what was fitted for it."""
    if preprocessor is None:
        return {}
    fitted = _preprocess.fitted_statistics(preprocessor, data.names)
    used = {}
    for name, rule in data.rules.items():
        stats = fitted.get(name) or {
            k: v for k, v in fitted.items() if k.startswith(name + "[") and k.endswith("]")
        }
        used[name] = {**rule.as_json(), **({"fitted": jsonable(stats)} if stats else {})}
    return used
