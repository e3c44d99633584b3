"""The fit step of training: preprocessing, fit (a search included) and the artifacts' bytes,
run in a child process of the backend (:mod:`pyml.server._isolate`): cancellable at any point
and bounded by setting ``pyml.train_memory_limit``. :mod:`pyml.server.training` reads the data
before and evaluates and stores the model after.

The child hands the fitted model's artifacts over as soon as they exist
(:func:`pyml.server._isolate.share`), then converts the model to ONNX and checks the graph
while the backend loads, evaluates and describes the model (:class:`Fitting`).
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
from pyml.core.split import take
from pyml.server import _isolate, search, store
from pyml.server._db import Db
from pyml.server.training import TrainingData, TrainRequest


class Fitted(NamedTuple):
    """A model fitted in a child process, as the backend gets it back."""

    parts: list[artifacts.Part]  # the model's artifacts, as stored (not the ONNX part)
    hyperparams: dict[str, Any]  # the hyperparameters used (JSON)
    preprocess: dict[str, Any]  # pyml.models.preprocess
    search_results: list[dict[str, Any]] | None  # the search's candidates (JSON)
    seconds: float  # the fit alone, in the child
    timings: dict[str, float]  # the child's phases: start, fit, serialize, share


class Converted(NamedTuple):
    """The model's ONNX part, as the backend gets it back after the model."""

    part: artifacts.Part | None  # stored after the model's parts; None: not converted
    record: dict[str, Any]  # lineage "onnx": the conversion and its check, or the reason
    timings: dict[str, float]  # the child's phases: import, onnx, send


class Fitting:
    """The fit of one training in its child process: :meth:`model` waits for the fitted
    model, :meth:`onnx` for its ONNX part; the backend works in between. Leaving the ``with``
    block ends the child (killed when it has not finished: an error, a cancel)."""

    def __init__(self, child: _isolate.Child, forked: float):
        self._child, self._forked = child, forked
        self._model: Fitted | None = None
        self._first: tuple[dict[str, Any], list[bytes]] = ({}, [])

    def __enter__(self) -> Fitting:
        return self

    def __exit__(self, *exc: object) -> None:
        self._child.__exit__(*exc)

    def model(self) -> Fitted:
        value, blobs = self._child.first()
        received = time.perf_counter()
        clock = value["clock"]
        self._first = value, blobs
        parts = [
            artifacts.Part(part, fmt, blob)
            for (part, fmt), blob in zip(value["parts"], blobs, strict=True)
            if fmt != artifacts.ONNX  # (a work that shared nothing sends everything at once)
        ]
        self._model = Fitted(
            parts,
            value["hyperparams"],
            value["preprocess"],
            value["search_results"],
            value["seconds"],
            {
                "start": clock["started"] - self._forked,  # fork, until the work begins
                **clock["phases"],
                "share": received - clock["shared"],  # the model through the pipe
            },
        )
        return self._model

    def onnx(self) -> Converted:
        assert self._model is not None, "Fitting.onnx() before Fitting.model()"
        asked = time.perf_counter()
        value, blobs = self._child.rest()
        received = time.perf_counter()
        if not value:  # the work shared nothing: everything came with the model
            value, blobs = self._first
        clock = value["onnx_clock"]
        onnx = value["onnx_part"]
        return Converted(
            artifacts.Part(onnx, artifacts.ONNX, blobs[-1]) if onnx is not None else None,
            value["onnx"],
            # the part through the pipe, from when both sides were ready
            {**clock["phases"], "send": max(received - max(clock["finished"], asked), 0.0)},
        )


def start(
    db: Db,
    algorithm: algorithms.Algorithm,
    estimator: Any,
    data: TrainingData,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    task: str,
    req: TrainRequest,
) -> Fitting:
    """Start the fit (preprocessing, search) on the training rows in a child process (see
    :mod:`pyml.server._isolate`): cancellable at any point and bounded by setting
    ``pyml.train_memory_limit``. The child sends back the artifacts' bytes."""
    setting = store.train_memory_limit(db)
    limit = _isolate.memory_limit(setting.server, setting.session)
    if limit.notice:
        db.notice(limit.notice)
    work = fit_work(algorithm, estimator, data, y, train_idx, test_idx, task, req)
    forked = time.perf_counter()  # CLOCK_MONOTONIC: the same clock in the child
    child = _isolate.start(work, check=db.check, notice=db.notice, limit=limit)
    return Fitting(child, forked)


def import_converters(library: str) -> None:
    """Import the ONNX converters and onnxruntime here, in the backend, once a session: the
    child of every training inherits them rather than importing them (~0.4 s) while it
    fits. Nothing is raised: a converter that cannot be imported is the child's reason for
    having no ONNX part."""
    try:
        _import_converters(library)
    except Exception:  # noqa: BLE001, S110 - the child says why there is no ONNX part
        pass


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
    artifacts, shared with the backend at once (:func:`pyml.server._isolate.share`); then the
    ONNX part. JSON and the artifacts' bytes out: ``parts`` lists every part in the result
    (the ONNX part last)."""

    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        started = time.perf_counter()
        # The converters take about a second to import, unless the backend has them (see
        # import_converters): on another thread, while fitting.
        importing = threading.Thread(
            target=_import_converters, args=(algorithm.library,), daemon=True
        )
        importing.start()
        preprocessor = None
        X = take(data.X, train_idx)  # a view of the rows for test_sampling 'last'
        if _preprocess.needed(data.rules):  # fitted with the model, on the training rows only
            preprocessor = _preprocess.build(data.input_rules(), X, task)
        fitted, preprocessor, results = search.fit(
            algorithm,
            estimator,
            X,
            take(y, train_idx),
            req,
            multi=y.ndim == 2,
            notice=progress,
            preprocessor=preprocessor,
        )
        seconds = time.perf_counter() - started
        storable = algorithms.storable(fitted)
        parts = artifacts.dump(algorithm.library, storable, preprocessor)
        serialized = time.perf_counter()
        model = {
            "parts": [[p.part, p.format] for p in parts],
            "seconds": seconds,
            "hyperparams": jsonable(used_params(fitted)),
            "preprocess": jsonable(preprocess_used(data, preprocessor)),
            "search_results": jsonable(results) if results is not None else None,
            "clock": {
                "started": started,
                "shared": serialized,
                "phases": {"fit": seconds, "serialize": serialized - started - seconds},
            },
        }
        shared = _isolate.share(model, [p.data for p in parts])
        importing.join()
        imported = time.perf_counter()
        onnx = onnx_part(storable, preprocessor, data, test_idx, train_idx, task)
        position = None
        if onnx.data is not None:
            position = len(parts)
            parts.append(artifacts.Part(position, artifacts.ONNX, onnx.data))
        finished = time.perf_counter()
        rest = {
            "parts": [[p.part, p.format] for p in parts],
            "onnx": onnx.record(),
            "onnx_part": position,
            "onnx_clock": {
                "finished": finished,
                "phases": {"import": imported - serialized, "onnx": finished - imported},
            },
        }
        if shared:  # the backend has the model: only the ONNX part is left to send
            return rest, [onnx.data] if onnx.data is not None else []
        return {**model, **rest}, [p.data for p in parts]

    return work


CHECK_ROWS = 10_000  # at most this many test rows check the ONNX part


def _import_converters(library: str) -> None:
    """What converting a model of ``library`` to ONNX and checking it imports."""
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import skl2onnx  # noqa: F401
    import skl2onnx.common.data_types  # noqa: F401
    import skl2onnx.sklapi  # noqa: F401
    import sklearn.pipeline  # noqa: F401

    if library == "lightgbm":
        from pyml.core import onnxpart

        onnxpart._register_lightgbm()  # imports onnxmltools' LightGBM converter


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
