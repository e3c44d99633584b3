"""Model artifacts: how fitted models become bytes in ``pyml.files`` and back.

Never pickles. LightGBM/XGBoost models are stored in their native text/JSON
formats; scikit-learn estimators as ``skops`` files, loaded with an explicit
allow-list of types. Every part carries its sha256, checked before loading.
Loading therefore never runs code that came from the database. And every part is
checked structurally (:mod:`pyml.core._validate`) before native code reads it, so that
no stored bytes, however malformed, can crash the backend.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from pyml.core.registry import FileRow
from pyml.errors import DataCorrupted

FORMATS = ("lightgbm-text", "xgboost-json", "catboost-cbm", "skops")
# The fitted preprocessing (a scikit-learn ColumnTransformer, see pyml.core.preprocess), stored
# as skops after the model's parts.
PREPROCESSOR = "skops-preprocessor"
# The model with its preprocessing as one ONNX graph (pyml.core.onnxpart), stored last when
# the model converts; served through onnxruntime where that is faster, and exported.
ONNX = "onnx"

# Types a scikit-learn artifact may contain beyond what skops trusts by default
# (built-ins, numpy, scipy and scikit-learn estimators). Anything else is refused.
SKOPS_ALLOWED_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting._bitset.Bitset",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
        "numpy.dtype",  # the object dtype of a ColumnTransformer's category columns
        # the seeded splitters of a TargetEncoder's cross fitting (pyml.core.preprocess)
        "sklearn.model_selection._split.KFold",
        "sklearn.model_selection._split.StratifiedKFold",
        *(
            f"sklearn.gaussian_process.kernels.{name}"
            for name in (
                "ConstantKernel",
                "DotProduct",
                "ExpSineSquared",
                "Exponentiation",
                "Matern",
                "PairwiseKernel",
                "Product",
                "RBF",
                "RationalQuadratic",
                "Sum",
                "WhiteKernel",
            )
        ),
    }
)


@dataclass(frozen=True)
class Part:
    """One stored piece of a model."""

    part: int
    format: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class Loaded(NamedTuple):
    format: str
    parts: list[Any]  # one loaded object per model part
    preprocessor: Any  # a fitted ColumnTransformer, or None


class Stored(NamedTuple):
    """What the rows of a model's files say before anything is loaded."""

    format: str  # the model's format (FORMATS)
    preprocessed: bool  # whether there is a preprocessing part
    onnx: bytes | None  # the ONNX part, checksum verified and checked (pyml.core._validate)


def stored(rows: Iterable[FileRow | Mapping[str, Any]]) -> Stored:
    """The format of a model's files, whether it has preprocessing, and its ONNX part
    (verified and checked, so that onnxruntime may parse it), without loading the rest."""
    files = [_file(r) for r in rows]
    model = {f.format for f in files if f.format not in (PREPROCESSOR, ONNX)}
    fmt = model.pop() if len(model) == 1 else ""  # anything else: load() says what is wrong
    return Stored(fmt, any(f.format == PREPROCESSOR for f in files), onnx_part(files))


def onnx_part(rows: Iterable[FileRow | Mapping[str, Any]]) -> bytes | None:
    """The ONNX part's bytes, checksum verified and checked before onnxruntime parses
    them; None when the model has none."""
    found = [f for f in (_file(r) for r in rows) if f.format == ONNX]
    if not found:
        return None
    if len(found) > 1:
        raise DataCorrupted("model artifact has more than one ONNX part")
    (data,) = _verified(found)
    from pyml.core import _validate

    _validate.onnx_model(data)
    return data


def dump(kind: str, estimator: Any, preprocessor: Any = None) -> list[Part]:
    """Serialize a fitted estimator of ``kind`` (and its preprocessing) into parts.

    ``kind`` is the library: ``lightgbm``, ``xgboost`` and ``catboost`` models are
    stored natively, one part per target (``estimator`` may be a
    ``MultiOutputRegressor`` of them); anything else goes through skops. The
    preprocessing, when there is one, is the last part.
    """
    parts = _dump_model(kind, estimator)
    if preprocessor is not None:
        import skops.io

        parts.append(Part(len(parts), PREPROCESSOR, skops.io.dumps(preprocessor)))
    return parts


def _dump_model(kind: str, estimator: Any) -> list[Part]:
    members = list(getattr(estimator, "estimators_", [])) if _is_multi_output(estimator) else []
    members = members or [estimator]
    if kind == "lightgbm":
        return [
            Part(i, "lightgbm-text", m.booster_.model_to_string().encode())
            for i, m in enumerate(members)
        ]
    if kind == "xgboost":
        return [
            Part(i, "xgboost-json", bytes(m.get_booster().save_raw("json")))
            for i, m in enumerate(members)
        ]
    if kind == "catboost":
        return [Part(i, "catboost-cbm", _catboost_bytes(m)) for i, m in enumerate(members)]
    import skops.io

    return [Part(0, "skops", skops.io.dumps(estimator))]


def load(rows: Iterable[FileRow | Mapping[str, Any]]) -> Loaded:
    """Verify and load stored parts: the model's format and parts, and its preprocessing.

    ``rows`` are rows of ``pyml.files``: :class:`~pyml.core.registry.FileRow`, or mappings
    with the same keys (part, format, sha256, data), as psycopg's ``dict_row`` reads them.
    """
    files = sorted((_file(r) for r in rows), key=lambda f: f.part)
    extra = [f for f in files if f.format == PREPROCESSOR]
    files = [f for f in files if f.format not in (PREPROCESSOR, ONNX)]
    if not files:
        raise DataCorrupted("model has no artifact")
    if len(extra) > 1:
        raise DataCorrupted("model artifact has more than one preprocessing part")
    preprocessor = _load(PREPROCESSOR, extra)[0] if extra else None
    formats = {f.format for f in files}
    if len(formats) != 1 or not formats <= set(FORMATS):
        raise DataCorrupted(
            f'model artifact has format "{", ".join(sorted(formats))}", which is not allowed',
            detail="Allowed formats: " + ", ".join(FORMATS) + ".",
        )
    fmt = formats.pop()
    return Loaded(fmt, _load(fmt, files), preprocessor)


def _file(row: FileRow | Mapping[str, Any]) -> FileRow:
    if isinstance(row, FileRow):
        return row
    return FileRow(row["part"], row["format"], row["sha256"], row["data"])


def _verified(files: list[FileRow]) -> list[bytes]:
    blobs = []
    for file in files:
        data = bytes(file.data)
        if hashlib.sha256(data).hexdigest() != file.sha256:
            raise DataCorrupted(
                f"model artifact part {file.part} fails its checksum",
                detail="The stored sha256 does not match the stored bytes.",
            )
        blobs.append(data)
    return blobs


def _load(fmt: str, files: list[FileRow]) -> list[Any]:
    blobs = _verified(files)
    try:
        return [_LOADERS[fmt](blob) for blob in blobs]
    except DataCorrupted:
        raise
    except Exception as exc:  # a damaged file of an allowed format
        raise DataCorrupted(f'model artifact is not a valid "{fmt}" file', detail=str(exc)) from exc


def _load_lightgbm(blob: bytes) -> Any:
    from pyml.core import _trees, _validate
    from pyml.core._lgbm import Booster

    model = _validate.lightgbm_text(blob)  # LightGBM trusts the file: a bad one crashes it
    return Booster(blob, forest=_trees.forest(model))


def _load_xgboost(blob: bytes) -> Any:
    from pyml.core import _validate

    _validate.xgboost_json(blob)  # XGBoost's predictor trusts child and feature indexes
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(blob))
    return booster


def _load_catboost(blob: bytes) -> Any:
    import catboost

    # CatBoost's format (flatbuffers) is not parsed here. The model is loaded, and one row
    # of zeros predicted, in a forked child first: a file that crashes the child is refused.
    # This is weaker than the checks of the other formats: the probe row takes one path
    # through each tree, so damage elsewhere (another leaf, a categorical feature's hash
    # table, a text or embedding feature) can still reach the backend.
    def probe() -> None:
        import numpy as np

        model = catboost.CatBoost().load_model(blob=blob)
        model.predict(np.zeros((1, len(model.feature_names_))), prediction_type="RawFormulaVal")

    survives_in_child(probe, "catboost-cbm")
    return catboost.CatBoost().load_model(blob=blob)


CHILD_TIMEOUT = 60.0  # seconds a probe child may take


def survives_in_child(probe: Any, fmt: str, timeout: float = CHILD_TIMEOUT) -> None:
    """Run ``probe`` in a forked child; refuse (DataCorrupted) the artifact when the child
    dies of a signal or does not finish in ``timeout`` seconds. The child only calls
    ``probe`` and leaves with os._exit (no database access, no exit handlers); an exception
    in the probe is not a crash: the caller's own load then reports it."""
    import signal
    import time

    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            probe()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise DataCorrupted(
                f'model artifact is not a valid "{fmt}" file',
                detail=f"Loading it in a child process took more than {timeout:g} seconds.",
            )
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise DataCorrupted(
            f'model artifact is not a valid "{fmt}" file',
            detail=f"Loading it and predicting a row crashed a child process ({name}).",
        )


def _load_skops(blob: bytes) -> Any:
    import skops.io

    from pyml.core import _validate

    untrusted = skops.io.get_untrusted_types(data=blob)
    refused = sorted(set(untrusted) - SKOPS_ALLOWED_TYPES)
    if refused:
        raise DataCorrupted(
            "model artifact contains types that are not allowed",
            detail="Refused types: " + ", ".join(refused) + ".",
        )
    loaded = skops.io.loads(blob, trusted=list(untrusted))
    _validate.sklearn_object(loaded)  # compiled code indexes trees and arrays unchecked
    return loaded


_LOADERS = {
    "lightgbm-text": _load_lightgbm,
    "xgboost-json": _load_xgboost,
    "catboost-cbm": _load_catboost,
    "skops": _load_skops,
    PREPROCESSOR: _load_skops,
}


def _is_multi_output(estimator: Any) -> bool:
    return type(estimator).__name__ == "MultiOutputRegressor"


def _catboost_bytes(model: Any) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.cbm")
        model.save_model(path, format="cbm")
        with open(path, "rb") as f:
            return f.read()
