"""The ONNX part of a model: the fitted model with its preprocessing as one graph (issue 16).

- :func:`convert` turns a fitted estimator and pyml's fitted ``ColumnTransformer`` (see
  :mod:`pyml.core.preprocess`) into ONE ONNX graph, with skl2onnx (scikit-learn) or
  onnxmltools' LightGBM converter (registered into skl2onnx). Inputs are named after the
  model's inputs (training columns; an array column gives ``column[i]``), each ``[N, 1]``:
  numbers as ``double`` (``float`` in the last-resort precision), text as ``string``. A NULL
  number is NaN; a NULL text is the empty string (the graph's text imputers look for ``""``,
  so a real ``""`` category reads as NULL in ONNX). Classifiers are exported with ``zipmap:
  False`` (outputs ``label`` and ``probabilities``, readable from JavaScript); the graph's
  metadata (:data:`PROBABILITIES`) says whether the second output is probabilities.
- Precision (:data:`PRECISIONS`): ``double`` throughout; ``cast``: double inputs and
  preprocessing, then skl2onnx's ``CastTransformer`` to float32 just before the model, which
  is what scikit-learn's trees do themselves (so no threshold flips on borderline inputs:
  tried first for them); ``float`` throughout. Number imputers become :class:`NanFill`
  (``Where(IsNaN(x), fill, x)``) since onnxruntime has no double ``Imputer``. LightGBM is
  converted with ``split=100`` (trees summed in groups, not one long float sum).
- :func:`check` runs the graph with onnxruntime (one thread) on test rows against the
  original (probabilities for classifiers, labels too; cluster labels; PCA's components)
  and returns the largest absolute difference. :data:`TOLERANCE` is 1e-4, relative to the
  largest expected magnitude (at least 1; :func:`agrees`): float32 tree sums differ by
  ~1e-6 relative (measured: 1.1e-4 absolute on targets of order 100), double graphs by
  ~1e-13; a real disagreement (a flipped split) moves a prediction by far more. Labels and
  clusters must agree exactly, except on a tie for the top probability. Given test
  ``rows``, :func:`convert` keeps the first precision that agrees.
- :func:`validate` (training) adds ``onnx.checker`` to the check serving runs before
  onnxruntime parses any bytes (:func:`pyml.core._validate.onnx_model`, no onnx import).
- :class:`Runtime` serves a part: one onnxruntime session of one thread, another of every
  core for 1,000 rows or more; onnxruntime's refusals are XX001.
- Not converted (a reason instead): AffinityPropagation, MeanShift, KernelRidge (no
  converter), HistGradientBoosting (its converter fails with skl2onnx 1.20 / scikit-learn
  1.9), GaussianProcessClassifier (``com.microsoft`` operators), LinearSVC (skl2onnx refuses
  the ``zipmap`` option inside a pipeline), multi-output models, CatBoost / XGBoost (their
  converters are not wired in). Birch is stored as a 1-NN classifier over its subcluster
  centres (see :func:`pyml.core.algorithms.storable`) and converts as such.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pyml.errors import DataCorrupted

if TYPE_CHECKING:
    import numpy as np

FORMAT = "onnx"
TOLERANCE = 1e-4
MAX_BYTES = 512 * 1024 * 1024  # a bound on what onnxruntime is asked to parse
OPSET = {"": 18, "ai.onnx.ml": 3}

# estimator class -> why skl2onnx / onnxmltools cannot express it
NOT_CONVERTIBLE = {
    "AffinityPropagation": "skl2onnx has no converter for AffinityPropagation",
    "Birch": "skl2onnx has no converter for Birch",
    "MeanShift": "skl2onnx has no converter for MeanShift",
    "KernelRidge": "skl2onnx has no converter for KernelRidge",
    "CatBoostRegressor": "CatBoost's own ONNX export is not wired in (next step)",
    "CatBoostClassifier": "CatBoost's own ONNX export is not wired in (next step)",
}


_LIGHTGBM = ("LGBMRegressor", "LGBMClassifier")

# How numbers enter the graph, in order of preference: double throughout; double inputs and
# preprocessing, cast to float just before the model (skl2onnx's CastTransformer pattern:
# scikit-learn's trees cast their input to float32 too, after the preprocessing, so splits
# are compared on the same float32 values); float throughout (the last resort).
PRECISIONS = ("double", "cast", "float")
# The graph's metadata key saying whether a classifier's second output holds probabilities
# ("true"), or scores of an estimator without predict_proba ("false").
PROBABILITIES = "pyml.probabilities"


class Converted(NamedTuple):
    """The result of :func:`convert`: the graph's bytes, or None and why."""

    data: bytes | None
    reason: str | None
    inputs: str | None = None  # one of PRECISIONS
    diff: float | None = None  # the largest difference on the rows checked


def convert(
    estimator: Any,
    preprocessor: Any,
    names: Sequence[str],
    text: Sequence[bool],
    task: str,
    rows: np.ndarray | None = None,
    tolerance: float = TOLERANCE,
) -> Converted:
    """One ONNX graph for the fitted ``estimator`` with its fitted ``preprocessor`` (or
    None). ``names`` are the model inputs, ``text[j]`` whether input ``j`` is a category
    read as text. ``task``: regression, classification, clustering or decomposition.

    With ``rows`` (test rows as pyml reads them), each precision is checked against the
    original on them (:func:`check`) and the first that :func:`agrees` is kept, with its
    largest difference in ``diff``; none agreeing is a reason."""
    kind = type(estimator).__name__
    if kind in NOT_CONVERTIBLE:
        return Converted(None, NOT_CONVERTIBLE[kind])
    if getattr(estimator, "n_outputs_", 1) > 1 or type(estimator).__name__.startswith("Multi"):
        return Converted(None, "multi-output models are not converted")
    import warnings

    reasons = []
    # scikit-learn's trees compare float32 inputs: cast first, so no split flips on inputs
    # between a float32 and its float64 neighbours that test rows happen not to hold.
    # LightGBM's converter (onnxmltools) writes float thresholds and float outputs: its double
    # graph never loads in onnxruntime ("Type Error: ... expected type (tensor(float))"):
    # trying it only cost a conversion (~0.1 s for 100 trees).
    if type(estimator).__name__ in _LIGHTGBM:  # its double graph never loads (above)
        order: tuple[str, ...] = ("cast", "float")
    else:
        order = ("cast", "double", "float") if _sklearn_trees(estimator) else PRECISIONS
    checked_cast = False
    original: tuple[np.ndarray, np.ndarray | None] | None = None
    for precision in order:
        # Without preprocessing, "float" is "cast" with the cast done before the graph
        # rather than in it: the same float32 inputs, the same trees. Once "cast" was
        # checked and differed, "float" would only differ again (~0.2 s for 100 trees).
        if precision == "float" and preprocessor is None and checked_cast:
            continue
        try:
            with warnings.catch_warnings():  # converters warn of deprecated attributes they read
                warnings.simplefilter("ignore")
                data = _convert(estimator, preprocessor, names, text, task, precision)
            validate(data)
            session(data)  # onnxruntime has an implementation of every node
        except Exception as exc:  # noqa: BLE001 - any converter failure is a reason
            reasons.append(f"{precision}: {type(exc).__name__}: {str(exc).splitlines()[0]}"[:300])
            continue
        if rows is None:
            return Converted(data, None, precision)
        if original is None:  # the same for every precision
            original = _original(estimator, preprocessor, rows, task)
        want, labels = original
        diff = check(data, rows, want, task, labels)
        if agrees(diff, want, tolerance):
            return Converted(data, None, precision, diff)
        reasons.append(f"{precision}: differs from the original by {diff:.3g}")
        checked_cast = checked_cast or precision == "cast"
    return Converted(None, "; ".join(reasons))


def _sklearn_trees(estimator: Any) -> bool:
    """Whether scikit-learn decision trees decide (a tree, a forest, boosted trees)."""
    import numpy as np

    if hasattr(estimator, "tree_"):
        return True
    members = getattr(estimator, "estimators_", None)
    if members is None:
        return False
    return any(hasattr(m, "tree_") for m in np.asarray(members, dtype=object).ravel())


def _convert(
    estimator: Any,
    preprocessor: Any,
    names: Sequence[str],
    text: Sequence[bool],
    task: str,
    precision: str,
) -> bytes:
    import numpy as np
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from skl2onnx.sklapi import CastTransformer
    from sklearn.pipeline import Pipeline

    _register_lightgbm()
    number = FloatTensorType if precision == "float" else DoubleTensorType
    types = [
        (name, StringTensorType([None, 1]) if is_text else number([None, 1]))
        for name, is_text in zip(names, text, strict=True)
    ]
    steps: list[tuple[str, Any]] = []
    if preprocessor is not None:
        steps.append(("preprocess", _onnx_ready(preprocessor)))
    elif len(names) > 1:  # one input per column, concatenated
        steps.append(("inputs", _concat(len(names))))
    if precision == "cast":
        steps.append(("cast", CastTransformer(dtype=np.float32).fit(np.zeros((1, 1)))))
    model = Pipeline([*steps, ("model", estimator)]) if steps else estimator
    own: dict[str, Any] = {}
    if type(estimator).__name__ in _LIGHTGBM:
        own["split"] = 100  # sums trees in groups of 100 (float sums drift otherwise)
    variants = [own]
    if task == "classification":  # no ZipMap (JavaScript cannot read it), where it exists
        variants.insert(0, {**own, "zipmap": False})
    for i, options in enumerate(variants):
        try:
            onx = convert_sklearn(
                model,
                initial_types=types,
                options={id(estimator): options} if options else None,
                target_opset=dict(OPSET),
            )
        except NameError:  # an option this converter does not have (LinearSVC: zipmap)
            if i + 1 == len(variants):
                raise
            continue
        _keep_names(onx, names)
        if task == "classification" and _label_is_argmax(estimator):
            _label_from_probabilities(onx)
        meta = onx.metadata_props.add()  # whether the probabilities output is one
        meta.key, meta.value = PROBABILITIES, str(hasattr(estimator, "predict_proba")).lower()
        return bytes(onx.SerializeToString())
    raise AssertionError("unreachable")


def _label_is_argmax(estimator: Any) -> bool:
    """Whether scikit-learn's ``predict`` is the first most probable class (not for SVC,
    whose labels come from the decision function, not from its Platt probabilities)."""
    return hasattr(estimator, "predict_proba") and type(estimator).__name__ not in (
        "SVC",
        "NuSVC",
    )


def _label_from_probabilities(onx: Any) -> None:
    """Make output ``label`` the index of the FIRST highest probability, as numpy's argmax
    (and scikit-learn's ``predict``) picks it: the converters' tree ensembles pick the last
    class of a tie (0.5 / 0.5 from an even number of trees)."""
    from onnx import helper

    outputs = [o.name for o in onx.graph.output]
    if outputs[:2] != ["label", "probabilities"]:
        return
    for node in onx.graph.node:
        node.output[:] = ["label_converted" if o == "label" else o for o in node.output]
    onx.graph.node.append(
        helper.make_node(
            "ArgMax",
            ["probabilities"],
            ["label"],
            name="pyml_label",
            axis=1,
            keepdims=0,
            select_last_index=0,
        )
    )


def _keep_names(onx: Any, names: Sequence[str]) -> None:
    """Name the graph's inputs after the model's inputs exactly: skl2onnx makes them
    identifiers (``mean radius`` -> ``mean_radius``, ``x[1]`` -> ``x_1_``), which could
    collide and which a consumer could not guess."""
    renamed = {
        node.name: name
        for node, name in zip(onx.graph.input, names, strict=True)
        if node.name != name
    }
    if not renamed:
        return
    used = {v for node in onx.graph.node for v in (*node.input, *node.output)}
    used |= {t.name for t in onx.graph.initializer} | {o.name for o in onx.graph.output}
    clash = sorted(set(renamed.values()) & (used - set(renamed)))
    if clash:
        raise ValueError(f'input name "{clash[0]}" is taken inside the graph')
    for node in onx.graph.input:
        node.name = renamed.get(node.name, node.name)
    for node in onx.graph.node:
        for i, value in enumerate(node.input):
            if value in renamed:
                node.input[i] = renamed[value]
    for output in onx.graph.output:  # an input passed straight through (never, but safe)
        output.name = renamed.get(output.name, output.name)


def _concat(n: int) -> Any:
    import numpy as np
    from sklearn.compose import ColumnTransformer

    ct = ColumnTransformer([], remainder="passthrough", sparse_threshold=0)
    return ct.fit(np.zeros((1, n)))


def _onnx_ready(preprocessor: Any) -> Any:
    """A copy of the fitted transformer whose text imputers look for ``""`` (NULL text at
    the ONNX boundary), since skl2onnx's string imputer cannot match None, and whose number
    imputers are :class:`NanFill` (onnxruntime has no double ``Imputer``)."""
    ready = copy.deepcopy(preprocessor)
    for _, fitted, _ in ready.transformers_:
        for i, (name, step) in enumerate(getattr(fitted, "steps", [])):
            if type(step).__name__ != "SimpleImputer":
                continue
            if step.missing_values is None:
                step.missing_values = ""
            else:
                fill = _nan_fill_class()()
                fill.statistics_ = step.statistics_
                fill.n_features_in_ = step.n_features_in_
                fitted.steps[i] = (name, fill)
    return ready


_NAN_FILL: Any = None


def _nan_fill_class() -> Any:
    """``NanFill``: NaN replaced by the fitted ``statistics_``, converted to ONNX as
    ``Where(IsNaN(x), statistics, x)`` in the input's own precision."""
    global _NAN_FILL
    if _NAN_FILL is not None:
        return _NAN_FILL
    import numpy as np
    from onnx import numpy_helper
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import guess_numpy_type
    from sklearn.base import BaseEstimator, TransformerMixin

    class NanFill(TransformerMixin, BaseEstimator):  # type: ignore[misc]
        statistics_: Any

        def fit(self, X: Any, y: Any = None) -> NanFill:
            return self

        def transform(self, X: Any) -> Any:
            values = np.asarray(X, dtype=np.float64)
            return np.where(np.isnan(values), self.statistics_, values)

    def shape(operator: Any) -> None:
        operator.outputs[0].type = operator.inputs[0].type.__class__(
            [None, len(operator.raw_operator.statistics_)]
        )

    def convert(scope: Any, operator: Any, container: Any) -> None:
        dtype = guess_numpy_type(operator.inputs[0].type)
        stats = scope.get_unique_variable_name("statistics")
        values = np.asarray(operator.raw_operator.statistics_, dtype=dtype).reshape(1, -1)
        tensor = numpy_helper.from_array(values, stats)
        container.add_initializer(stats, tensor.data_type, list(values.shape), values.ravel())
        isnan = scope.get_unique_variable_name("isnan")
        container.add_node(
            "IsNaN",
            [operator.inputs[0].full_name],
            [isnan],
            name=scope.get_unique_operator_name("IsNaN"),
        )
        container.add_node(
            "Where",
            [isnan, stats, operator.inputs[0].full_name],
            [operator.outputs[0].full_name],
            name=scope.get_unique_operator_name("Where"),
        )

    update_registered_converter(NanFill, "PymlNanFill", shape, convert)
    _NAN_FILL = NanFill
    return NanFill


_registered = False


def _register_lightgbm() -> None:
    global _registered
    if _registered:
        return
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"], "split": None},
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
        options={"split": None},
    )
    _registered = True


# ---------------------------------------------------------------------------
# Validation and running
# ---------------------------------------------------------------------------


def validate(data: bytes, max_bytes: int = MAX_BYTES) -> None:
    """Refuse (XX001) bytes onnxruntime should not load: the checks serving runs
    (:func:`pyml.core._validate.onnx_model`: size, well-formed protobuf, domains, operators,
    no functions, no external data), then ``onnx.checker`` (structural; too slow to import
    on the serving path, so at training and export only)."""
    import onnx

    from pyml.core import _validate

    _validate.onnx_model(data, max_bytes)
    try:
        # structural check only: ONNX's shape inference declares tree ensembles' outputs
        # float and refuses the double graphs onnxruntime runs
        onnx.checker.check_model(onnx.load_from_string(data), full_check=False)
    except Exception as exc:
        raise DataCorrupted(
            f'model artifact is not a valid "{FORMAT}" file',
            detail=f"onnx.checker: {str(exc).splitlines()[0][:200]}.",
        ) from None


def session(data: bytes, threads: int = 1) -> Any:
    """An onnxruntime session of bytes checked first (:func:`pyml.core._validate.onnx_model`),
    on ``threads`` threads (0: one per core)."""
    import onnxruntime

    from pyml.core import _validate

    _validate.onnx_model(data)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # no spinning: between batches, idle threads would compete with the backend for the
    # cores (predict_into reads the next chunk while one is scored)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: warnings go to the server's stderr
    try:
        return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime refuses the graph (its own checks)
        raise _refused("onnxruntime cannot load it", exc) from None


def _refused(what: str, exc: Exception) -> DataCorrupted:
    return DataCorrupted(
        f'model artifact is not a valid "{FORMAT}" file',
        detail=f"{what}: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}.",
    )


def run(data: bytes, X: np.ndarray) -> list[np.ndarray]:
    """The graph's outputs for the rows of ``X`` (as :class:`Runtime` runs them)."""
    return Runtime(data).run(X)


def expected(estimator: Any, preprocessor: Any, X: np.ndarray, task: str) -> np.ndarray:
    """What the original gives on ``X``: probabilities (classification), predictions
    (regression, clustering) or the transformed rows (decomposition)."""
    import numpy as np

    Xt = np.asarray(_transform(preprocessor, X) if preprocessor is not None else X, np.float64)
    if task == "classification" and hasattr(estimator, "predict_proba"):
        return np.asarray(estimator.predict_proba(Xt), dtype=np.float64)
    if task == "decomposition":
        return np.asarray(estimator.transform(Xt), dtype=np.float64)
    return np.asarray(estimator.predict(Xt))


def _original(
    estimator: Any, preprocessor: Any, X: np.ndarray, task: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """What the original gives on ``X`` (:func:`expected`), and its labels (classification).
    A LightGBM model pyml's tree kernel evaluates is predicted by it, as the database will
    predict it: the same bits as LightGBM's own predictor, in a fraction of its time."""
    import numpy as np

    Xt = X if preprocessor is None else _transform(preprocessor, X)  # once for both
    forest = _lightgbm_forest(estimator) if task in ("regression", "classification") else None
    if forest is None:
        want = expected(estimator, None, Xt, task)
        return want, estimator.predict(Xt) if task == "classification" else None
    values = forest.predict(np.ascontiguousarray(Xt, np.float64))
    if task == "regression":
        return values, None
    # LGBMClassifier.predict_proba: (1 - p, p) for two classes; its predict: the first
    # class of largest probability
    proba = np.column_stack((1.0 - values, values)) if values.ndim == 1 else values
    return proba, np.asarray(estimator.classes_)[np.argmax(proba, axis=1)]


def _lightgbm_forest(estimator: Any) -> Any:
    if type(estimator).__name__ not in _LIGHTGBM:
        return None
    from pyml.core import _trees, _validate

    text = estimator.booster_.model_to_string().encode()
    return _trees.forest(_validate.lightgbm_text(text))


def agrees(diff: float, expected_values: np.ndarray, tolerance: float = TOLERANCE) -> bool:
    """Whether a largest difference from :func:`check` is within ``tolerance`` relative to
    the largest expected magnitude (at least 1)."""
    import numpy as np

    values = np.asarray(expected_values, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(values)))) if values.size else 1.0
    return bool(diff <= tolerance * scale)


def _transform(preprocessor: Any, X: np.ndarray) -> np.ndarray:
    from pyml.core import preprocess

    return preprocess.transform(preprocessor, X)


def check(
    data: bytes,
    X: np.ndarray,
    expected_values: np.ndarray,
    task: str,
    labels: np.ndarray | None = None,
) -> float:
    """The largest absolute difference between the graph and the original on the rows of
    ``X``. ``expected_values`` as :func:`expected` gives them; ``labels`` (classification):
    the original's predicted labels, which must agree exactly (else the result is inf)."""
    import numpy as np

    outputs = run(data, X)
    want = np.asarray(expected_values)
    if task == "classification":
        got_labels = outputs[0].reshape(-1)
        if labels is not None:
            same = got_labels.astype(str) == np.asarray(labels).reshape(-1).astype(str)
            if want.ndim == 2 and want.shape[1] > 1:  # a tie for the top class may go either way
                top = np.sort(want, axis=1)
                same |= top[:, -1] - top[:, -2] <= TOLERANCE
            if not same.all():
                return float("inf")
        got = outputs[1] if want.ndim == 2 and len(outputs) > 1 else got_labels
    elif task == "clustering":
        got = outputs[0].reshape(-1)
        return 0.0 if np.array_equal(got, want.reshape(-1)) else float("inf")
    else:
        got = outputs[0]
    got = np.asarray(got, dtype=np.float64).reshape(want.shape)
    if not len(want):
        return 0.0
    return float(np.max(np.abs(got - want.astype(np.float64))))


# ---------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------


class Runtime:
    """An ONNX part served by onnxruntime: one thread for a few rows (starting a thread pool
    costs more than predicting them), one per core from :data:`MANY_ROWS` rows on."""

    MANY_ROWS = 1000

    def __init__(self, data: bytes):
        import numpy as np

        self.data = data
        self._one = self.session = session(data, threads=1)
        self._many: Any = None
        inputs = self._one.get_inputs()
        self.names = [node.name for node in inputs]
        self.text = [node.type == "tensor(string)" for node in inputs]
        self.dtype = np.float32 if any(n.type == "tensor(float)" for n in inputs) else np.float64
        self.outputs = [node.name for node in self._one.get_outputs()]
        meta = self._one.get_modelmeta().custom_metadata_map
        self.probabilities = meta.get(PROBABILITIES, "true") == "true"
        self._binding: Any = None
        self._mixed: dict[str, np.ndarray] | None = None
        self._cells: list[np.ndarray] = []
        self._values: list[Any] = []

    def run(self, X: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs for the rows of ``X``: float (NaN for NULL), or object with
        text (None for NULL) when some inputs are text."""
        sess = self._one
        if len(X) >= self.MANY_ROWS:
            if self._many is None:
                self._many = session(self.data, threads=0)
            sess = self._many
        feeds = self.feeds(X)
        try:
            return list(sess.run(None, feeds))
        except Exception as exc:  # inputs are checked: a graph that cannot run them is damaged
            raise _refused("onnxruntime cannot run it", exc) from None

    def feeds(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's inputs from an input matrix as pyml reads it (float, or object with
        text and None): one ``[N, 1]`` column per input, NULL text as ``""``, NULL numbers
        as NaN."""
        import numpy as np

        if X.dtype != object:
            X = X.astype(self.dtype, copy=False)
            return {name: X[:, j : j + 1] for j, name in enumerate(self.names)}
        result = {}
        for j, name in enumerate(self.names):
            column = X[:, j]
            if self.text[j]:
                values = np.array(
                    ["" if v is None else str(v) for v in column.tolist()], dtype=object
                )
            else:
                values = np.array(column.tolist(), dtype=np.float64).astype(self.dtype, copy=False)
            result[name] = values.reshape(-1, 1)
        return result

    def one(self, row: list[float]) -> list[np.ndarray]:
        """The outputs for one row of numbers (a flat list, already checked; a value that
        is not a number is TypeError or ValueError). The inputs are bound once (onnxruntime's
        IO binding over ``[1, 1]`` arrays this writes into): 15 us a call instead of 25 for
        a 20-tree forest."""
        if self._binding is None:
            self._bind()
        for cell, value in zip(self._cells, row, strict=True):
            cell[0, 0] = value
        try:
            self._one.run_with_iobinding(self._binding)
        except Exception as exc:
            raise _refused("onnxruntime cannot run it", exc) from None
        return list(self._binding.copy_outputs_to_cpu())

    def one_mixed(self, row: list[Any]) -> list[np.ndarray]:
        """The outputs for one row of inputs as pyml reads them (text, or None, for text
        inputs; numbers, NaN or None for the others), into ``[1, 1]`` arrays kept from call
        to call: the ROW path of models with preprocessing."""
        import numpy as np

        if self._mixed is None:
            self._mixed = {
                name: np.empty((1, 1), dtype=object if text else self.dtype)
                for name, text in zip(self.names, self.text, strict=True)
            }
        cells = self._mixed
        for name, text, value in zip(self.names, self.text, row, strict=True):
            if text:
                cells[name][0, 0] = "" if value is None else value
            else:
                cells[name][0, 0] = np.nan if value is None else value
        try:
            return list(self._one.run(None, cells))
        except Exception as exc:
            raise _refused("onnxruntime cannot run it", exc) from None

    def _bind(self) -> None:
        import numpy as np
        import onnxruntime

        binding = self._one.io_binding()
        self._cells = [np.zeros((1, 1), dtype=self.dtype) for _ in self.names]
        self._values = [onnxruntime.OrtValue.ortvalue_from_numpy(c) for c in self._cells]
        for name, value in zip(self.names, self._values, strict=True):
            binding.bind_ortvalue_input(name, value)  # shares the array's memory
        for name in self.outputs:
            binding.bind_output(name)
        self._binding = binding
