"""LightGBM through its C API, for serving.

The ``lightgbm`` Python package imports scikit-learn and pandas-aware code, and
its ``Booster.predict`` spends tens of microseconds per call on argument
handling. Serving needs neither: this module loads the library that package
ships (``lib_lightgbm.so``) with ctypes, without importing the package, and
calls the same C functions ``Booster.predict`` ends in, so the numbers are the
same:

- ``LGBM_BoosterPredictForMatSingleRowFast`` for one row (a prepared
  "fast config" per model), and
- ``LGBM_BoosterPredictForMat`` for a matrix (LightGBM's threads, GIL released).

A model pyml's own tree kernel evaluates exactly (:mod:`pyml.core._trees`) is predicted by
it instead, to the same bits; contributions stay LightGBM's.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyml.core._trees import Forest
_C_API_DTYPE_FLOAT64 = 1
_C_API_PREDICT_NORMAL = 0
_C_API_PREDICT_CONTRIB = 3
FEW_ROWS = 64  # up to this many rows, predict on the calling thread
_C_API_FEATURE_IMPORTANCE_GAIN = 1

_lib: ctypes.CDLL | None = None


def _threads(rows: int) -> bytes:
    """Threads for predicting ``rows``: one for a few rows (waking an OpenMP pool costs more
    than it saves), else every core. Always explicit: LightGBM keeps the last count it was
    given for the whole process, so a one-row call must not leave batches single-threaded."""
    return b"num_threads=%d" % (1 if rows <= FEW_ROWS else (os.cpu_count() or 1))


def library() -> ctypes.CDLL:
    """``lib_lightgbm.so`` from the installed lightgbm package, loaded once per process."""
    global _lib
    if _lib is None:
        spec = importlib.util.find_spec("lightgbm")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the lightgbm package is not installed")
        package = list(spec.submodule_search_locations)[0]
        for candidate in ("lib/lib_lightgbm.so", "lib_lightgbm.so"):
            path = os.path.join(package, candidate)
            if os.path.exists(path):
                break
        else:
            raise ImportError(f"lib_lightgbm.so not found in {package}")
        lib = ctypes.CDLL(path)
        lib.LGBM_GetLastError.restype = ctypes.c_char_p
        # No argtypes: every argument is passed as a ctypes object already, which skips
        # ctypes' per-call conversions on the online path.
        _lib = lib
    return _lib


def _check(code: int) -> None:
    if code != 0:
        message = library().LGBM_GetLastError().decode(errors="replace")
        raise ValueError(f"LightGBM: {message}")


class Booster:
    """A LightGBM model loaded from its text format, ready to predict."""

    def __init__(self, model_text: str | bytes, forest: Forest | None = None):
        lib = library()
        text = model_text.encode() if isinstance(model_text, str) else model_text
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int()
        _check(
            lib.LGBM_BoosterLoadModelFromString(
                ctypes.c_char_p(text), ctypes.byref(iterations), ctypes.byref(self._handle)
            )
        )
        out = ctypes.c_int()
        _check(lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(out)))
        self.num_features = out.value
        _check(lib.LGBM_BoosterGetNumClasses(self._handle, ctypes.byref(out)))
        self.num_classes = out.value
        self._fast: ctypes.c_void_p | None = None
        self._row_predictor: Callable[[Sequence[float]], Any] | None = None
        self._row = (ctypes.c_double * self.num_features)()
        self._out = (ctypes.c_double * max(self.num_classes, 1))()
        self._out_len = ctypes.c_int64()
        if forest is not None and forest.num_features != self.num_features:
            forest = None
        self.forest = forest

    def __del__(self) -> None:
        lib = _lib
        if lib is None:
            return
        if getattr(self, "_fast", None):
            lib.LGBM_FastConfigFree(self._fast)
        if getattr(self, "_handle", None):
            lib.LGBM_BoosterFree(self._handle)

    def predict_row(self, values: Sequence[float]) -> Any:
        """One row: a float, or a list of per-class probabilities (multiclass)."""
        return self.row_predictor()(values)

    def row_predictor(self) -> Callable[[Sequence[float]], Any]:
        """A function of one row, with everything but the row prepared once (online path)."""
        predictor = self._row_predictor
        if predictor is not None:
            return predictor
        if self.forest is not None:
            self._row_predictor = predictor = self.forest.row_predictor()
            return predictor
        fast = ctypes.c_void_p()
        _check(
            library().LGBM_BoosterPredictForMatSingleRowFastInit(
                self._handle,
                _C_API_PREDICT_NORMAL,
                0,
                -1,
                _C_API_DTYPE_FLOAT64,
                self.num_features,
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(fast),
            )
        )
        self._fast = fast
        call = library().LGBM_BoosterPredictForMatSingleRowFast
        row, out, out_len = self._row, self._out, self._out_len
        out_len_ref = ctypes.byref(out_len)
        single = self.num_classes <= 1

        def predict(values: Sequence[float]) -> Any:
            # ctypes takes any sequence of numbers; typeshed only a list[c_double | float]
            row[:] = values  # type: ignore[call-overload]
            if call(fast, row, out_len_ref, out):
                _check(-1)
            return out[0] if single else out[: out_len.value]

        self._row_predictor = predict
        return predict

    def feature_importance(self) -> list[float]:
        """Total gain of each feature's splits."""
        out = (ctypes.c_double * self.num_features)()
        _check(
            library().LGBM_BoosterFeatureImportance(
                self._handle, ctypes.c_int(0), ctypes.c_int(_C_API_FEATURE_IMPORTANCE_GAIN), out
            )
        )
        return list(out)

    def predict(self, X: Any, contrib: bool = False) -> Any:
        """Rows of a 2-D float64 numpy array: ``(n,)`` values or ``(n, classes)``."""
        import numpy as np

        X = np.ascontiguousarray(X, dtype=np.float64)
        n, k = X.shape
        if not contrib and self.forest is not None and k == self.num_features:
            return self.forest.predict(X)
        width = (k + 1) * max(self.num_classes, 1) if contrib else max(self.num_classes, 1)
        out = np.empty(n * width, dtype=np.float64)
        out_len = ctypes.c_int64()
        _check(
            library().LGBM_BoosterPredictForMat(
                self._handle,
                X.ctypes.data_as(ctypes.c_void_p),
                _C_API_DTYPE_FLOAT64,
                ctypes.c_int32(n),
                ctypes.c_int32(k),
                1,
                _C_API_PREDICT_CONTRIB if contrib else _C_API_PREDICT_NORMAL,
                0,
                -1,
                ctypes.c_char_p(_threads(n)),
                ctypes.byref(out_len),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
        )
        out = out[: out_len.value]
        return out if width == 1 else out.reshape(n, width)
