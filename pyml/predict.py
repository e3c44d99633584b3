"""Loaded models and prediction: numpy in, numbers out. No SQL here.

A :class:`Model` wraps whatever the artifact loaded into (a LightGBM booster per
target, a scikit-learn estimator, ...) behind one interface, used both to
evaluate a model right after training and to serve it, so that every path
gives the same numbers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyml import _artifacts
from pyml.errors import (
    DataException,
    FeatureNotSupported,
    InvalidParameterValue,
    NullValueNotAllowed,
    ObjectNotInPrerequisiteState,
)

if TYPE_CHECKING:
    import numpy as np


class Model:
    """A model ready to predict.

    (A plain class rather than a dataclass: ``dataclasses`` imports ``inspect``, and
    this module is on the path of a session's first prediction.)
    """

    def __init__(self, *, id: int | None, project: str, task: str, algorithm: str,
                 feature_names: list[str], classes: list[Any] | None, format: str,
                 parts: list[Any], columns: list[str] | None = None):
        self.id = id
        self.project = project
        self.task = task
        self.algorithm = algorithm
        self.feature_names = feature_names
        self.classes = classes
        self.format = format
        self.parts = parts
        self.columns = columns or []  # training relation columns, in order
        self._online: Any = None
        self._n_jobs = getattr(parts[0], "n_jobs", None) if format == "skops" else None

    def __repr__(self) -> str:
        return f"<Model {self.id} {self.algorithm} of {self.project!r}>"

    @classmethod
    def from_rows(cls, model: dict[str, Any], files: list[dict[str, Any]],
                  columns: list[str]) -> Model:
        fmt, parts = _artifacts.load(files)
        return cls(
            columns=columns,
            id=model["id"],
            project=model["project"],
            task=model["task"],
            algorithm=model["algorithm"],
            feature_names=list(model["feature_names"] or []),
            classes=model["classes"],
            format=fmt,
            parts=parts,
        )

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    # -- raw outputs ----------------------------------------------------------

    def _native(self, X: np.ndarray) -> np.ndarray:
        """Per-part raw output of gradient-boosting libraries (value or probabilities)."""
        import numpy as np

        if self.format == "lightgbm-text":
            outputs = [booster.predict(X) for booster in self.parts]
        elif self.format == "xgboost-json":
            outputs = [np.asarray(b.inplace_predict(X)) for b in self.parts]
        elif self.format == "catboost-cbm":
            kind = "Probability" if self.task == "classification" else "RawFormulaVal"
            outputs = [np.asarray(m.predict(X, prediction_type=kind)) for m in self.parts]
        else:
            raise AssertionError(self.format)
        if len(outputs) == 1:
            return np.asarray(outputs[0], dtype=np.float64)
        return np.column_stack(outputs).astype(np.float64)

    def _sklearn(self, X: np.ndarray) -> Any:
        """The scikit-learn estimator, single-threaded for a few rows: starting a thread
        pool (an estimator trained with n_jobs) costs milliseconds, predicting them does not.
        """
        estimator = self.parts[0]
        if self._n_jobs not in (None, 1):
            estimator.n_jobs = 1 if len(X) < 1000 else self._n_jobs
        return estimator

    def values(self, X: np.ndarray) -> np.ndarray:
        """Regression values: ``(n,)``, or ``(n, targets)`` for joint models."""
        import numpy as np

        if self.format == "skops":
            return np.asarray(self._sklearn(X).predict(X), dtype=np.float64)
        return self._native(X)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, classes)`` in :attr:`classes` order."""
        import numpy as np

        if self.format == "skops":
            estimator = self._sklearn(X)
            if not hasattr(estimator, "predict_proba"):
                raise FeatureNotSupported(
                    f'algorithm "{self.algorithm}" does not give class probabilities',
                    hint="Use pyml.predict or pyml.predict_label, or train with an algorithm "
                    "that has predict_proba (linear, random_forest, lightgbm, ...).",
                )
            return np.asarray(estimator.predict_proba(X), dtype=np.float64)
        p = self._native(X)
        if p.ndim == 1:  # binary: probability of the second class
            return np.column_stack([1.0 - p, p])
        return p

    def class_index(self, X: np.ndarray) -> np.ndarray:
        """Index into :attr:`classes` of the predicted class of each row."""
        import numpy as np

        if self.format == "skops":
            return np.asarray(self._sklearn(X).predict(X)).astype(np.int64)
        return np.argmax(self.proba(X), axis=1)

    def scores(self, X: np.ndarray) -> np.ndarray | None:
        """Scores of the positive class for ROC AUC, when there is no ``predict_proba``."""
        import numpy as np

        if self.format == "skops" and not hasattr(self.parts[0], "predict_proba"):
            decision = getattr(self.parts[0], "decision_function", None)
            return None if decision is None else np.asarray(decision(X), dtype=np.float64)
        return self.proba(X)[:, 1]

    # -- what the SQL functions return -----------------------------------------

    def online_predictor(self) -> Any:
        """A function of one row (a flat list); lean for LightGBM: no numpy, one C call.

        Anything unusual (wrong length, NULL, NaN, nested arrays) goes the general way,
        which raises the proper error.
        """
        if self._online is None:
            self._online = self._make_online_predictor()
        return self._online

    def _make_online_predictor(self) -> Any:
        n = self.num_features

        def general(features: list[Any]) -> float:
            return float(self.predict(features_from_array(features, n))[0])

        if self.format != "lightgbm-text" or len(self.parts) != 1:
            return general
        row = self.parts[0].row_predictor()
        if self.task != "classification":
            def value(features: list[Any]) -> float:
                if len(features) != n or None in features:
                    return general(features)
                try:
                    total = sum(features)  # NaN (or inf - inf): checked the general way
                    result = row(features)
                except TypeError:  # nested (multi-dimensional) arrays, ...
                    return general(features)
                if total != total:
                    return general(features)
                return result  # type: ignore[no-any-return]
            return value
        classes = self.classes or []
        if not classes or isinstance(classes[0], str):
            return general
        labels = [float(c) for c in classes]
        first, second = labels[0], labels[-1]

        def label(features: list[Any]) -> float:
            if len(features) != n or None in features:
                return general(features)
            try:
                total = sum(features)
                p = row(features)
            except TypeError:
                return general(features)
            if total != total:
                return general(features)
            if isinstance(p, float):  # binary: probability of the second class
                return second if p > 0.5 else first
            return labels[max(range(len(p)), key=p.__getitem__)]
        return label

    def predict(self, X: np.ndarray) -> np.ndarray:
        """``pyml.predict``: regression values, or class labels as numbers (true = 1)."""
        import numpy as np

        if self.task == "clustering":
            return np.asarray(self._sklearn(X).predict(X), dtype=np.float64)
        if self.task == "decomposition":
            raise InvalidParameterValue(
                f'project "{self.project}" is a decomposition project',
                hint="Use pyml.decompose to get the components of a vector.",
            )
        if self.task != "classification":
            return self.values(X)
        classes = self.classes or []
        if classes and isinstance(classes[0], str):
            raise InvalidParameterValue(
                f'project "{self.project}" has text class labels',
                hint="Use pyml.predict_label to get the label, or pyml.predict_proba.",
            )
        lookup = np.asarray([float(c) for c in classes], dtype=np.float64)
        return lookup[self.class_index(X)]

    def decompose(self, X: np.ndarray) -> np.ndarray:
        """``pyml.decompose``: the components of each row (decomposition projects)."""
        import numpy as np

        if self.task != "decomposition":
            raise ObjectNotInPrerequisiteState(
                f'project "{self.project}" is a {self.task} project, not a decomposition one',
                hint="pyml.decompose needs a model trained with task => 'decomposition'.",
            )
        return np.asarray(self.parts[0].transform(X), dtype=np.float64)

    def predict_label(self, X: np.ndarray) -> list[str]:
        if self.task != "classification":
            raise InvalidParameterValue(
                f'project "{self.project}" is a {self.task} project, which has no labels',
                hint="Use pyml.predict.",
            )
        labels = [label_text(c) for c in self.classes or []]
        return [labels[i] for i in self.class_index(X)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.task != "classification":
            raise InvalidParameterValue(
                f'project "{self.project}" is a {self.task} project, which has no classes',
                hint="Use pyml.predict.",
            )
        return self.proba(X)


def label_text(value: Any) -> str:
    """A class label as PostgreSQL would print it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------
# Features from SQL values
# ---------------------------------------------------------------------------


def features_from_array(features: Sequence[Any], expected: int) -> np.ndarray:
    """One row ``(1, k)`` from a (possibly multi-dimensional) SQL array."""
    row = _to_float(features).reshape(1, -1)
    if row.shape[1] != expected:
        raise InvalidParameterValue(
            f"wrong number of features: expected {expected}, got {row.shape[1]}"
        )
    return row


def features_from_batch(features: Sequence[Any], expected: int) -> np.ndarray:
    """Rows ``(n, k)`` from ``n * k`` values flattened into one array."""
    flat = _to_float(features).ravel()
    if expected == 0 or flat.size % expected != 0:
        raise InvalidParameterValue(
            f"wrong number of features: expected a multiple of {expected}, got {flat.size}"
        )
    return flat.reshape(-1, expected)


def features_from_row(row: dict[str, Any], model: Model) -> np.ndarray:
    """One row ``(1, k)`` from a composite value.

    A row that has every training column (a row of the training table, say,
    label included) is matched by column name; any other row (``ROW(...)``) by
    position.
    """
    import numpy as np

    if model.columns and all(name in row for name in model.columns):
        row = {name: row[name] for name in model.columns}
    values: list[Any] = []
    for name, value in row.items():
        if isinstance(value, str):
            raise DataException(
                f'feature "{name}" is text, which this model cannot use',
                hint="Text features need preprocessing, which comes with a later pyml version.",
            )
        if isinstance(value, list):
            values.extend(np.asarray(value, dtype=object).ravel().tolist())
        else:
            values.append(value)
    return features_from_array(values, model.num_features)


def as_float4(value: Any) -> Any:
    """A JSON number (or nested list) read from a ``real`` column, as the exact float4 value."""
    import numpy as np

    if isinstance(value, list):
        return [as_float4(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(np.float32(value))
    return value


def _to_float(values: Sequence[Any]) -> np.ndarray:
    """Values as float64; NULL (which numpy would quietly make NaN) and NaN are refused."""
    import numpy as np

    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataException("features must be numbers") from exc
    if np.isnan(array).any():
        position = int(np.flatnonzero(np.isnan(array.ravel()))[0]) + 1
        raise NullValueNotAllowed(
            "features must not be NULL",
            detail=f"Feature {position} is NULL (or NaN).",
            hint="Replace missing values before predicting.",
        )
    return array


# ---------------------------------------------------------------------------
# The per-session cache of loaded models
# ---------------------------------------------------------------------------


class ModelCache:
    """Loaded models by id. Models never change once trained, so an id is a valid key."""

    def __init__(self, capacity: int = 32):
        self.capacity = capacity
        self._models: OrderedDict[int, Model] = OrderedDict()

    def get(self, model_id: int) -> Model | None:
        model = self._models.get(model_id)
        if model is not None:
            self._models.move_to_end(model_id)
        return model

    def put(self, model: Model) -> Model:
        assert model.id is not None
        self._models[model.id] = model
        while len(self._models) > self.capacity:
            self._models.popitem(last=False)
        return model

    def discard(self, model_id: int) -> None:
        self._models.pop(model_id, None)
