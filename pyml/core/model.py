"""Loaded models and prediction: numpy in, numbers out. No SQL here.

A :class:`Model` wraps whatever the artifact loaded into (a LightGBM booster per
target, a scikit-learn estimator, ...) behind one interface, used both to
evaluate a model right after training and to serve it, so that every path
gives the same numbers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pyml.core import artifacts
from pyml.errors import (
    DataException,
    FeatureNotSupported,
    InvalidParameterValue,
    NullValueNotAllowed,
    ObjectNotInPrerequisiteState,
)

if TYPE_CHECKING:
    import numpy as np

    from pyml.core.onnxpart import Runtime
    from pyml.core.registry import FileRow, ModelRow


# Algorithms whose ONNX graph onnxruntime runs slower than the original (bench/RESULTS.md,
# ONNX serving): k-NN's graph compares every training row (8x slower for one row, 4x for
# 10,000), where scikit-learn searches a tree.
ONNX_SLOWER = frozenset({"knn"})


class KernelRow(NamedTuple):
    """How the online path predicts one row when pyml's tree kernel alone does it, for C
    callers in this process (src/stream.c): ``pyml_trees_predict_row`` and the model's tables
    (addresses, valid while the model lives), the kernel's outputs per row, and the answer:
    0 the value, 1 ``labels[1]`` when it exceeds 0.5 else ``labels[0]``, 2 the label of the
    first largest output."""

    function: int
    tables: int
    outputs: int
    answer: int
    labels: tuple[float, ...]


class Model:
    """A model ready to predict.

    A scikit-learn model with an ONNX part (:mod:`pyml.core.onnxpart`) predicts through
    onnxruntime, and its estimator and preprocessing (skops) are loaded only when something
    needs them (explanations, feature importance): serving never imports scikit-learn.
    LightGBM keeps its C API, faster than its ONNX graph.

    (A plain class rather than a dataclass: ``dataclasses`` imports ``inspect``, and
    this module is on the path of a session's first prediction.)
    """

    def __init__(
        self,
        *,
        id: int | None,
        project: str,
        task: str,
        algorithm: str,
        feature_names: list[str],
        classes: list[Any] | None,
        format: str,
        parts: list[Any] | None,
        columns: list[str] | None = None,
        preprocess: dict[str, Any] | None = None,
        preprocessor: Any = None,
        project_id: int | None = None,
        onnx: bytes | None = None,
        loader: Callable[[], artifacts.Loaded] | None = None,
        preprocessed: bool = False,
    ):
        """``parts`` and ``preprocessor`` as loaded, or None and a ``loader`` that loads
        them when needed (``preprocessed``: whether there is a preprocessor to load).
        ``onnx``: the ONNX part, checked (:func:`pyml.core.artifacts.onnx_part`)."""
        self.id = id
        self.project = project
        self.project_id = project_id
        self.task = task
        self.algorithm = algorithm
        self.feature_names = feature_names
        self.classes = classes
        self.format = format
        self._parts = parts
        self._loader = loader
        self.columns = columns or []  # training relation columns, in order
        self._online: Any = None
        self._n_jobs: Any = None
        # The ONNX part, and onnxruntime serving it (scikit-learn models only).
        self.onnx = onnx
        self.serves_onnx = onnx is not None and format == "skops" and algorithm not in ONNX_SLOWER
        self._runtime: Runtime | None = None
        # Preprocessing (pyml.core.preprocess): the rule of each input, whether any input is a
        # category (text), and for each column the estimator sees, the input it comes from.
        self.preprocess = preprocess or {}  # pyml.models.preprocess: the rule of each column
        self._preprocessor = preprocessor
        self.has_preprocessing = preprocessor is not None or preprocessed
        self.rules: list[Any] | None = None
        self.categorical = False
        self._sources: list[int] | None = None
        self._row: Any = None
        if self.has_preprocessing:
            from pyml.core import preprocess as _preprocess

            rules = {
                name: _preprocess.Rule.from_json(rule) for name, rule in (preprocess or {}).items()
            }
            self.rules = _preprocess.input_rules(rules, self.columns, feature_names)
            self.categorical = any(rule.category for rule in self.rules)

    # -- what is loaded when needed ----------------------------------------------------

    @property
    def parts(self) -> list[Any]:
        """The loaded model parts (a scikit-learn estimator, a booster per target, ...)."""
        if self._parts is None:
            self._load()
        assert self._parts is not None
        return self._parts

    @property
    def preprocessor(self) -> Any:
        """The fitted preprocessing (a ``ColumnTransformer``), or None."""
        if self.has_preprocessing and self._preprocessor is None:
            self._load()
        return self._preprocessor

    def _load(self) -> None:
        if self._loader is None:
            raise AssertionError("model parts neither given nor loadable")
        loaded = self._loader()
        self._parts, self._preprocessor = loaded.parts, loaded.preprocessor
        self._loader = None

    @property
    def sources(self) -> list[int]:
        """For each column the estimator sees, the input it comes from."""
        if self._sources is None:
            from pyml.core import preprocess as _preprocess

            preprocessor = self.preprocessor
            self._sources = (
                [] if preprocessor is None else _preprocess.sources(preprocessor, self.num_features)
            )
        return self._sources

    @property
    def runtime(self) -> Runtime:
        """onnxruntime serving the ONNX part (:attr:`serves_onnx` models)."""
        if self._runtime is None:
            from pyml.core.onnxpart import Runtime

            assert self.onnx is not None
            self._runtime = Runtime(self.onnx)
        return self._runtime

    @property
    def stored_id(self) -> int:
        """The id of a model of the registry (every model loaded from a row has one)."""
        if self.id is None:
            raise ObjectNotInPrerequisiteState("the model is not stored yet")
        return self.id

    def __repr__(self) -> str:
        return f"<Model {self.id} {self.algorithm} of {self.project!r}>"

    @classmethod
    def from_rows(cls, model: ModelRow, files: Sequence[FileRow], columns: list[str]) -> Model:
        """Load the model of a ``pyml.models`` row from its files; ``columns``: the relation
        columns it was trained on, in order. A scikit-learn model with an ONNX part loads
        its estimator only when something needs it (see the class)."""
        stored = artifacts.stored(files)
        fields: dict[str, Any] = {
            "preprocess": model.preprocess,
            "columns": columns,
            "id": model.id,
            "project": model.project,
            "project_id": model.project_id,
            "task": model.task,
            "algorithm": model.algorithm,
            "feature_names": list(model.feature_names or []),
            "classes": model.classes,
            "onnx": stored.onnx,
        }
        if (
            stored.onnx is not None
            and stored.format == "skops"
            and model.algorithm not in ONNX_SLOWER
        ):
            kept = list(files)
            served = cls(
                **fields,
                format=stored.format,
                parts=None,
                loader=lambda: artifacts.load(kept),
                preprocessed=stored.preprocessed,
            )
            served.runtime  # noqa: B018 - onnxruntime loads it now: a damaged graph is refused here
            return served
        fmt, parts, preprocessor = artifacts.load(files)
        return cls(**fields, format=fmt, parts=parts, preprocessor=preprocessor)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    # -- raw outputs ----------------------------------------------------------
    #
    # The public methods take the model's inputs (rows of feature values); the private
    # ones (``_t``) take what the estimator sees: the inputs after preprocessing.

    def prepare(self, X: np.ndarray) -> np.ndarray:
        """What the estimator sees: ``X`` itself, or ``X`` preprocessed (a float matrix)."""
        if not self.has_preprocessing:
            return X
        import numpy as np

        from pyml.core import preprocess as _preprocess

        self._check(X)
        if len(X) == 1:
            if self._row is None:
                from pyml.core import rowtransform

                self._row = rowtransform.compile_row(self.preprocessor)
            return np.asarray([self._row(X[0].tolist())], dtype=np.float64)
        return _preprocess.transform(self.preprocessor, X)

    def _check(self, X: np.ndarray) -> None:
        """22004 for a NULL the preprocessing does not fill, 22023 for an infinite number
        (models with preprocessing)."""
        from pyml.core import preprocess as _preprocess

        rules = self.rules or []
        if len(X) != 1:
            _preprocess.check_inputs(X, rules, self.feature_names)
            return
        row = X[0].tolist()
        for j, rule in enumerate(rules):
            value = row[j]
            if value is None or value != value:  # NULL, NaN
                if rule.strict:
                    _preprocess.check_inputs(X, rules, self.feature_names)
            elif not rule.category and value - value:  # Infinity, -Infinity
                _preprocess.check_inputs(X, rules, self.feature_names)

    def _onnx(self, X: np.ndarray) -> list[np.ndarray]:
        """The ONNX part's outputs for inputs ``X`` (checked as :meth:`prepare` does)."""
        if self.has_preprocessing:
            self._check(X)
            if len(X) == 1:
                return self.runtime.one_mixed(X[0].tolist())
        return self.runtime.run(X)

    def strict_inputs(self) -> np.ndarray:
        """For each input, whether NULL is refused (no imputation, not a category)."""
        import numpy as np

        if self.rules is None:
            return np.ones(self.num_features, dtype=bool)
        return np.array([rule.strict for rule in self.rules], dtype=bool)

    def imputed_columns(self) -> frozenset[str]:
        """The columns whose NULLs the preprocessing fills."""
        return frozenset(
            name
            for name, rule in self.preprocess.items()
            if rule.get("impute") not in (None, "error")
        )

    def category_columns(self) -> frozenset[str]:
        """The columns encoded as categories (read as text)."""
        return frozenset(name for name, rule in self.preprocess.items() if "encode" in rule)

    def check_inputs(self, X: np.ndarray, where: Any = None) -> None:
        """22004 for NULL in an input that is neither imputed nor a category, 22023 for an
        infinite number (models with preprocessing; the others check as they convert)."""
        from pyml.core import preprocess as _preprocess

        _preprocess.check_inputs(X, self.rules or [], self.feature_names, where)

    def refused_rows(self, X: np.ndarray) -> np.ndarray:
        """For each row of inputs ``X``, whether the model refuses it (a NULL it does not
        impute, an infinite number): the rows a report leaves out rather than fail."""
        import numpy as np

        refused = np.zeros(len(X), dtype=bool)
        rules = self.rules
        for j in range(X.shape[1]):
            column = X[:, j]
            if rules is not None and rules[j].category:
                if rules[j].strict:
                    refused |= np.fromiter((v is None for v in column), bool, len(X))
                continue
            values = column.astype(np.float64) if column.dtype == object else column
            bad = np.isinf(values)
            if rules is None or rules[j].strict:
                bad |= np.isnan(values)
            refused |= bad
        return refused

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
        if self._n_jobs is None:
            self._n_jobs = getattr(estimator, "n_jobs", None) or 1
        if self._n_jobs != 1:
            estimator.n_jobs = 1 if len(X) < 1000 else self._n_jobs
        return estimator

    def values(self, X: np.ndarray) -> np.ndarray:
        """Regression values: ``(n,)``, or ``(n, targets)`` for joint models."""
        if self.serves_onnx:
            import numpy as np

            values = np.asarray(self._onnx(X)[0], dtype=np.float64).reshape(len(X), -1)
            return values[:, 0] if values.shape[1] == 1 else values  # joint models: (n, k)
        return self._values_t(self.prepare(X))

    def _values_t(self, X: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.format == "skops":
            return np.asarray(self._sklearn(X).predict(X), dtype=np.float64)
        return self._native(X)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, classes)`` in :attr:`classes` order."""
        if self.serves_onnx:
            import numpy as np

            if not self.runtime.probabilities:
                raise self._no_probabilities()
            # float32 tree sums may pass 1 by an ulp; the values are kept as they are, so a
            # float32 0.2 still reads 0.2 as real
            p: np.ndarray = np.clip(self._onnx(X)[1], 0, 1).astype(np.float64)
            return p
        return self._proba_t(self.prepare(X))

    def _no_probabilities(self) -> FeatureNotSupported:
        return FeatureNotSupported(
            f'algorithm "{self.algorithm}" does not give class probabilities',
            hint="Use pyml.predict or pyml.predict_label, or train with an algorithm "
            "that has predict_proba (linear, random_forest, lightgbm, ...).",
        )

    def _proba_t(self, X: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.format == "skops":
            estimator = self._sklearn(X)
            if not hasattr(estimator, "predict_proba"):
                raise self._no_probabilities()
            return np.asarray(estimator.predict_proba(X), dtype=np.float64)
        p = self._native(X)
        if p.ndim == 1:  # binary: probability of the second class
            return np.column_stack([1.0 - p, p])
        return p

    def class_index(self, X: np.ndarray) -> np.ndarray:
        """Index into :attr:`classes` of the predicted class of each row."""
        if self.serves_onnx:
            import numpy as np

            return np.asarray(self._onnx(X)[0]).reshape(len(X)).astype(np.int64)
        return self._class_index_t(self.prepare(X))

    def _class_index_t(self, X: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.format == "skops":
            return np.asarray(self._sklearn(X).predict(X)).astype(np.int64)
        index: np.ndarray = np.argmax(self._proba_t(X), axis=1)
        return index

    def scores(self, X: np.ndarray) -> np.ndarray | None:
        """Scores of the positive class for ROC AUC, when there is no ``predict_proba``."""
        import numpy as np

        if self.serves_onnx and self.runtime.probabilities:
            return self.proba(X)[:, 1]
        X = self.prepare(X)
        if self.format == "skops" and not hasattr(self.parts[0], "predict_proba"):
            decision = getattr(self.parts[0], "decision_function", None)
            return None if decision is None else np.asarray(decision(X), dtype=np.float64)
        return self._proba_t(X)[:, 1]

    # -- what the SQL functions return -----------------------------------------

    def online_predictor(self) -> Any:
        """A function of one row (a flat list); lean for LightGBM: no numpy, one C call.

        Anything unusual (wrong length, NULL, NaN, Infinity, nested arrays) goes the general
        way, which raises the proper error.
        """
        if self._online is None:
            self._online = self._make_online_predictor()
        return self._online

    def _make_online_predictor(self) -> Any:
        n = self.num_features

        def general(features: list[Any]) -> float:
            return float(self.predict(self.input_from_array(features))[0])

        if self.serves_onnx and not self.has_preprocessing:
            return self._onnx_online(general)
        if self.format != "lightgbm-text" or len(self.parts) != 1 or self.has_preprocessing:
            return general
        row = self.parts[0].row_predictor()
        if self.task != "classification":

            def value(features: list[Any]) -> float:
                if len(features) != n or None in features:
                    return general(features)
                try:
                    total = sum(features)
                    total -= total  # 0 when every value is finite; NaN for NaN or +-Infinity
                    result = row(features)
                except (TypeError, ArithmeticError):  # nested arrays, numeric Infinity, ...
                    return general(features)
                if total:  # NaN or +-Infinity: refused the general way
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
                total -= total
                p = row(features)
            except (TypeError, ArithmeticError):
                return general(features)
            if total:
                return general(features)
            if isinstance(p, float):  # binary: probability of the second class
                return second if p > 0.5 else first
            return labels[max(range(len(p)), key=p.__getitem__)]

        return label

    def kernel_row(self) -> KernelRow | None:
        """What :meth:`online_predictor` does with a row of finite numbers, when it is one
        call of pyml's tree kernel and a plain rule (a LightGBM model without preprocessing,
        numeric labels); None otherwise."""
        if self.serves_onnx or self.format != "lightgbm-text" or self.has_preprocessing:
            return None
        if len(self.parts) != 1:
            return None
        forest = getattr(self.parts[0], "forest", None)
        if forest is None or forest.num_features != self.num_features:
            return None
        function, tables = forest.addresses()
        if self.task != "classification":
            if forest.classes != 1:
                return None
            return KernelRow(function, tables, 1, 0, ())
        classes = self.classes or []
        if not classes or isinstance(classes[0], str):
            return None
        labels = tuple(float(c) for c in classes)
        if forest.classes == 1:
            return KernelRow(function, tables, 1, 1, (labels[0], labels[-1]))
        if forest.classes != len(labels):
            return None
        return KernelRow(function, tables, forest.classes, 2, labels)

    def _onnx_online(self, general: Callable[[list[Any]], float]) -> Any:
        """One row of numbers through onnxruntime, no more Python than needed."""
        n = self.num_features
        one = self.runtime.one
        if self.task == "classification":
            classes = self.classes or []
            if not classes or isinstance(classes[0], str):
                return general
            labels = [float(c) for c in classes]
        elif self.task not in ("regression", "clustering"):
            return general
        if self.runtime.one([0.0] * n)[0].size != 1:  # a joint model: a row of values
            return general

        def predict(features: list[Any]) -> float:
            if len(features) != n or None in features:
                return general(features)
            try:
                total = sum(features)
                total -= total  # 0 when every value is finite; NaN for NaN or +-Infinity
            except (TypeError, ArithmeticError):  # nested arrays, numeric Infinity, ...
                return general(features)
            if total:  # NaN or +-Infinity: refused the general way
                return general(features)
            try:
                first = one(features)[0]
            except (TypeError, ValueError):  # text in an array, ...
                return general(features)
            if self.task == "classification":
                return labels[int(first[0])]
            return float(first.flat[0])

        return predict

    def predict(self, X: np.ndarray) -> np.ndarray:
        """``pyml.predict``: regression values, or class labels as numbers (true = 1)."""
        import numpy as np

        if self.task == "clustering":
            if self.serves_onnx:
                return np.asarray(self._onnx(X)[0], dtype=np.float64).reshape(len(X))
            X = self.prepare(X)
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
        labels: np.ndarray = lookup[self.class_index(X)]
        return labels

    def decompose(self, X: np.ndarray) -> np.ndarray:
        """``pyml.decompose``: the components of each row (decomposition projects)."""
        import numpy as np

        if self.task != "decomposition":
            raise ObjectNotInPrerequisiteState(
                f'project "{self.project}" is a {self.task} project, not a decomposition one',
                hint="pyml.decompose needs a model trained with task => 'decomposition'.",
            )
        if self.serves_onnx:
            return np.asarray(self._onnx(X)[0], dtype=np.float64).reshape(len(X), -1)
        return np.asarray(self.parts[0].transform(self.prepare(X)), dtype=np.float64)

    # -- inputs from SQL values ---------------------------------------------------

    def input_from_array(self, features: Sequence[Any]) -> np.ndarray:
        """One row ``(1, k)`` of inputs from a (possibly multi-dimensional) SQL array."""
        if not self.has_preprocessing:
            return features_from_array(features, self.num_features, self.columns)
        self._numbers_only()
        row = _to_float(features, nulls=True, names=self.columns).reshape(1, -1)
        _check_count(row.shape[1], self.num_features)
        return row

    def input_from_batch(self, features: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Rows ``(n, k)`` of inputs from ``n * k`` values flattened into one array."""
        if not self.has_preprocessing:
            return features_from_batch(features, self.num_features, self.columns)
        self._numbers_only()
        flat = _to_float(features, nulls=True, names=self.columns, width=self.num_features)
        return _batch_shape(flat.ravel(), self.num_features)

    def _numbers_only(self) -> None:
        if self.categorical:
            raise InvalidParameterValue(
                f"model {self.id} has text (category) features, which an array of numbers "
                "cannot hold",
                hint="Pass a row: a table row or ROW(...) with the columns in training order.",
            )

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


def features_from_array(
    features: Sequence[Any], expected: int, names: Sequence[str] | None = None
) -> np.ndarray:
    """One row ``(1, k)`` from a (possibly multi-dimensional) SQL array; ``names`` (the
    training columns) name a value an error is about."""
    row = _to_float(features, names=names).reshape(1, -1)
    _check_count(row.shape[1], expected)
    return row


def features_from_batch(
    features: Sequence[Any] | np.ndarray, expected: int, names: Sequence[str] | None = None
) -> np.ndarray:
    """Rows ``(n, k)`` from ``n * k`` values flattened into one array."""
    return _batch_shape(_to_float(features, names=names, width=expected).ravel(), expected)


def _batch_shape(flat: np.ndarray, expected: int) -> np.ndarray:
    if expected == 0 or flat.size % expected != 0:
        raise InvalidParameterValue(
            f"wrong number of features: expected a multiple of {expected}, got {flat.size}"
        )
    return flat.reshape(-1, expected)


def _check_count(given: int, expected: int) -> None:
    if given != expected:
        raise InvalidParameterValue(f"wrong number of features: expected {expected}, got {given}")


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
        if isinstance(value, list):
            values.extend((name, v) for v in np.asarray(value, dtype=object).ravel().tolist())
        else:
            values.append((name, value))
    if model.rules is None:
        for name, value in values:
            # (NaN and Infinity come as text: to_json writes a float's non-finite values so)
            if isinstance(value, str) and value not in _NON_FINITE:
                raise DataException(
                    f'feature "{name}" is text, but model {model.id} was trained on a number '
                    "in that position",
                    hint="Pass the columns in training order; text columns in the training "
                    "relation are encoded as categories.",
                )
        return features_from_array([v for _, v in values], model.num_features, model.columns)
    return _preprocessed_row(values, model)


_NON_FINITE = frozenset(("NaN", "Infinity", "-Infinity"))


def _preprocessed_row(values: list[tuple[str, Any]], model: Model) -> np.ndarray:
    """Inputs of a model with preprocessing: categories as text, numbers as floats (NULL
    as NaN, imputed or refused later)."""
    import numpy as np

    from pyml.core.preprocess import category_text

    rules = model.rules or []
    _check_count(len(values), len(rules))
    row: list[Any] = []
    for (name, value), rule in zip(values, rules, strict=True):
        if rule.category:
            row.append(category_text(value))
        elif value is None:
            row.append(float("nan"))
        else:
            try:
                row.append(float(value))
            except (TypeError, ValueError):
                raise DataException(
                    f'feature "{name}" must be a number, got {value!r}',
                    hint="Pass the columns in training order.",
                ) from None
    return np.array([row], dtype=object if model.categorical else np.float64)


def as_float4(value: Any) -> Any:
    """A JSON number (or nested list) read from a ``real`` column, as the exact float4 value."""
    import numpy as np

    if isinstance(value, list):
        return [as_float4(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(np.float32(value))
    return value


def _to_float(
    values: Sequence[Any] | np.ndarray,
    nulls: bool = False,
    names: Sequence[str] | None = None,
    width: int | None = None,
) -> np.ndarray:
    """Values as float64. NULL (which numpy makes NaN) and NaN are refused (22004) unless
    ``nulls`` (a model that imputes them, and checks the others itself); Infinity and
    -Infinity always are (22023). The DETAIL names the value by its position, its training
    column (``names``) and, for rows of ``width`` values flattened, its row."""
    import numpy as np

    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        given = np.asarray(values, dtype=object).ravel().tolist()
        position = next((i for i, v in enumerate(given) if not _is_number(v)), 0)
        shown = given[position] if position < len(given) else None
        raise DataException(
            "features must be numbers",
            detail=f'{_feature(position, names, width, len(given))} is "{shown}".',
            hint="Pass numbers; a model trained on text columns takes a row (ROW(...) or a "
            "table row), not an array.",
        ) from None
    if not np.isfinite(array).all():
        flat = array.ravel()
        bad = np.isinf(flat) if nulls else ~np.isfinite(flat)
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            value = float(flat[position])
            if value != value:
                raise NullValueNotAllowed(
                    "features must not be NULL",
                    detail=f"{_feature(position, names, width, array.size)} is NULL (or NaN).",
                    hint="Replace missing values before predicting.",
                )
            from pyml.core.preprocess import INFINITY_HINT, infinity_text

            raise InvalidParameterValue(
                "features must not be infinite",
                detail=f"{_feature(position, names, width, array.size)} is {infinity_text(value)}.",
                hint=INFINITY_HINT,
            )
    return array


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _feature(position: int, names: Sequence[str] | None, width: int | None, size: int) -> str:
    """'Feature 2 ("sepal_width")', and ' of row 7' when the values hold several rows."""
    row, column = divmod(position, width) if width else (0, position)
    text = f"Feature {column + 1}"
    if names and len(names) == (width or size):  # else the values are not the model's inputs
        text += f' ("{names[column]}")'
    return text + (f" of row {row + 1}" if width and size > width else "")


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

    def ids(self) -> list[int]:
        return list(self._models)
