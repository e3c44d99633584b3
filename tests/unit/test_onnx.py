"""The ONNX part of a model: conversion with preprocessing, parity with the original through
onnxruntime, and the validation run before onnxruntime loads any bytes (pure code)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper

from pyml.core import _validate, algorithms, onnxpart
from pyml.core import preprocess as _preprocess
from pyml.core.preprocess import Column
from pyml.errors import DataCorrupted

NAMES = ["a", "b", "c", "d"]
SMALL = {  # hyperparameters that keep the test fast
    "random_forest": {"n_estimators": 10},
    "extra_trees": {"n_estimators": 10},
    "bagging": {"n_estimators": 5},
    "ada_boost": {"n_estimators": 10},
    "gradient_boosting_trees": {"n_estimators": 20},
    "lightgbm": {"n_estimators": 20},
}
# (algorithm, task) that do not convert, and a word of the reason
NOT_CONVERTED = {
    ("kernel_ridge", "regression"): "KernelRidge",
    ("gaussian_process", "classification"): "",  # com.microsoft operators, or multiclass
    ("linear_svm", "classification"): "zipmap",
    ("hist_gradient_boosting", "regression"): "TreeEnsemble",
    ("hist_gradient_boosting", "classification"): "TreeEnsemble",
    ("affinity_propagation", "clustering"): "AffinityPropagation",
    ("mean_shift", "clustering"): "MeanShift",
}
OPTIONAL = {"xgboost", "xgboost_random_forest", "catboost"}


def _data(task: str, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification, make_regression

    if task == "classification":
        X, y = make_classification(
            120, 4, n_informative=3, n_redundant=0, n_classes=classes, random_state=0
        )
        return X, y
    X, y = make_regression(120, 4, noise=1.0, random_state=0)
    return X, y


def _resolves(name: str, task: str) -> bool:
    try:
        algorithms.resolve(name, task)
    except Exception:  # noqa: BLE001 - not an algorithm of this task
        return False
    return True


CASES = [
    (name, task, classes)
    for name in algorithms.ALGORITHMS
    if name not in OPTIONAL
    for task, classes in (
        ("regression", 0),
        ("classification", 2),
        ("classification", 3),
        ("clustering", 0),
        ("decomposition", 0),
    )
    if _resolves(name, task)
]


def _parity(estimator: Any, preprocessor: Any, X: np.ndarray, task: str, text: list[bool]) -> Any:
    converted = onnxpart.convert(estimator, preprocessor, NAMES[: X.shape[1]], text, task, X)
    if converted.data is None:
        return converted
    want = onnxpart.expected(estimator, preprocessor, X, task)
    labels = None
    if task == "classification":
        Xt = _preprocess.transform(preprocessor, X) if preprocessor is not None else X
        labels = estimator.predict(Xt)
    diff = onnxpart.check(converted.data, X, want, task, labels)
    return converted, diff, want


@pytest.mark.parametrize(("name", "task", "classes"), CASES)
def test_parity_of_every_algorithm(name: str, task: str, classes: int) -> None:
    X, y = _data(task, classes or 2)
    estimator = algorithms.resolve(name, task).make(SMALL.get(name, {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task in ("clustering", "decomposition"):
            estimator.fit(X[:80])
        else:
            estimator.fit(X[:80], y[:80])
    estimator = algorithms.storable(estimator)
    result = _parity(estimator, None, X[80:], task, [False] * 4)
    if (name, task) in NOT_CONVERTED:
        assert result.data is None
        assert NOT_CONVERTED[name, task] in (result.reason or "")
        return
    assert not isinstance(result, onnxpart.Converted), result.reason
    converted, diff, want = result
    assert onnxpart.agrees(diff, want), (name, task, diff)
    if task == "classification" and hasattr(estimator, "predict_proba"):
        outputs = onnxpart.run(converted.data, X[80:])
        assert outputs[1].shape == (40, classes)  # probabilities, no ZipMap


def test_classifier_outputs_are_plain_tensors() -> None:
    from sklearn.ensemble import RandomForestClassifier

    X, y = _data("classification", 3)
    model = RandomForestClassifier(5, random_state=0).fit(X, y)
    data = onnxpart.convert(model, None, NAMES, [False] * 4, "classification").data
    assert data is not None
    graph = onnx.load_from_string(data).graph
    assert [i.name for i in graph.input] == NAMES
    assert all(n.op_type != "ZipMap" for n in graph.node)
    sess = onnxpart.session(data)
    assert [o.type for o in sess.get_outputs()] == ["tensor(int64)", "tensor(float)"]


def test_trees_compare_thresholds_as_scikit_learn_does() -> None:
    """Scaled inputs landing on and next to every split threshold: preprocessing in float32
    moves some across (the known pitfall), the cast pattern (double preprocessing, float32
    just before the tree, as scikit-learn does) splits as the original, and convert keeps it."""
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(1)
    X = rng.normal(50, 7, size=(300, 2))
    y = X[:, 0] * 10
    columns = [Column(n, "double precision", "N", False) for n in ("a", "b")]
    spec = {"a": {"scale": "standard"}, "b": {"scale": "standard"}}
    rules = _preprocess.resolve(spec, columns, ["y"], "regression")
    pre = _preprocess.build([rules["a"], rules["b"]], X, "regression").fit(X, y)
    tree = DecisionTreeRegressor(max_depth=8, random_state=0)
    tree.fit(_preprocess.transform(pre, X), y)
    scaler = pre.transformers_[0][1].steps[0][1]
    inner = tree.tree_.feature >= 0
    rows = []
    for f, t in zip(tree.tree_.feature[inner], tree.tree_.threshold[inner], strict=True):
        at = t * scaler.scale_[f] + scaler.mean_[f]
        for step in range(-3, 4):
            row = X[0].copy()
            row[f] = at + step * 1e-12 * abs(at)
            rows.append(row)
    probe = np.array(rows)
    want = onnxpart.expected(tree, pre, probe, "regression")
    as_float = onnxpart._convert(tree, pre, ["a", "b"], [False, False], "regression", "float")
    assert not onnxpart.agrees(onnxpart.check(as_float, probe, want, "regression"), want)
    converted = onnxpart.convert(tree, pre, ["a", "b"], [False, False], "regression", probe)
    assert converted.data is not None and converted.inputs in ("double", "cast")
    assert converted.diff is not None and onnxpart.agrees(converted.diff, want)


# ---------------------------------------------------------------------------
# Preprocessing rules
# ---------------------------------------------------------------------------

COLUMNS = [
    Column("city", "text", "S", False),
    Column("size", "double precision", "N", False),
    Column("grade", "text", "S", False),
    Column("rooms", "integer", "N", False),
]
PNAMES = [c.name for c in COLUMNS]


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.empty((n, 4), dtype=object)
    X[:, 0] = rng.choice(["paris", "lyon", "nice", None], n)
    X[:, 1] = rng.normal(50, 10, n)
    X[:, 2] = rng.choice(["low", "mid", "high"], n)
    X[:, 3] = rng.integers(1, 6, n).astype(float)
    X[rng.random(n) < 0.1, 1] = np.nan
    signal = np.asarray(X[:, 1], dtype=float)
    y = np.nan_to_num(signal, nan=50.0) + 5 * (X[:, 2] == "high") + rng.normal(0, 1, n)
    return X, y


SPECS: dict[str, dict[str, Any]] = {
    "one_hot": {"city": {"encode": "one_hot"}, "size": {"impute": "mean", "scale": "standard"}},
    "ordinal": {
        "grade": {"encode": {"ordinal": ["low", "mid", "high"]}},
        "size": {"impute": "median", "scale": "min_max"},
    },
    "target": {"city": {"encode": "target"}, "size": {"impute": "zero", "scale": "robust"}},
    "native": {"size": {"impute": "max", "scale": "max_abs"}},
    "mode": {
        "city": {"encode": "one_hot", "impute": "mode"},
        "size": {"impute": "min"},
        "rooms": {"scale": "standard"},
    },
}


@pytest.mark.parametrize("spec", sorted(SPECS))
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_parity_with_preprocessing(spec: str, task: str) -> None:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import Ridge

    X, y = _rows(300, 0)
    if task == "classification":
        y = (y > np.median(y)).astype(int)
    rules = _preprocess.resolve(SPECS[spec], COLUMNS, ["y"], task)
    inputs = [rules[n] for n in PNAMES]
    pre = _preprocess.build(inputs, X[:200], task).fit(X[:200], y[:200])
    Xt = _preprocess.transform(pre, X[:200])
    models: list[Any] = (
        [RandomForestClassifier(10, random_state=0)]
        if task == "classification"
        else [RandomForestRegressor(10, random_state=0), Ridge()]
    )
    test = X[200:].copy()
    test[0, 0] = "marseille"  # a category never seen in training
    test[1, 0] = None
    test[2, 1] = np.nan
    test[3, 2] = "unheard"
    for model in models:
        model.fit(Xt, y[:200])
        text = [r.category for r in inputs]
        converted = onnxpart.convert(model, pre, PNAMES, text, task, test)
        assert converted.data is not None, converted.reason
        graph = onnx.load_from_string(converted.data).graph
        types = {i.name: i.type.tensor_type.elem_type for i in graph.input}
        assert types["city"] == onnx.TensorProto.STRING
        assert types["size"] in (onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT)
        want = onnxpart.expected(model, pre, test, task)
        labels = model.predict(_preprocess.transform(pre, test)) if task != "regression" else None
        diff = onnxpart.check(converted.data, test, want, task, labels)
        assert onnxpart.agrees(diff, want), (spec, type(model).__name__, diff)
        assert diff == converted.diff


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _good() -> bytes:
    from sklearn.linear_model import LinearRegression

    X, y = _data("regression")
    data = onnxpart.convert(LinearRegression().fit(X, y), None, NAMES, [False] * 4, "regression")
    assert data.data is not None
    return data.data


def test_validate_accepts_a_converted_model() -> None:
    onnxpart.validate(_good())


def test_validate_refuses_damaged_bytes() -> None:
    data = _good()
    for damaged in (data[: len(data) // 2], b"\xff" * 64, b""):
        with pytest.raises(DataCorrupted) as info:
            onnxpart.validate(damaged)
        assert info.value.detail


def test_validate_refuses_oversized_bytes() -> None:
    data = _good()
    with pytest.raises(DataCorrupted, match="onnx") as info:
        onnxpart.validate(data, max_bytes=len(data) - 1)
    assert "bound" in (info.value.detail or "")
    with pytest.raises(DataCorrupted):
        onnxpart.session(b"\x00" * (onnxpart.MAX_BYTES + 1))


def test_validate_refuses_foreign_domains() -> None:
    model = onnx.load_from_string(_good())
    node = helper.make_node("Gelu", ["variable"], ["out"], domain="com.microsoft")
    model.graph.node.append(node)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(DataCorrupted) as info:
        onnxpart.validate(model.SerializeToString())
    assert "com.microsoft" in (info.value.detail or "")
    # a node in a foreign domain without its import: refused as well
    model = onnx.load_from_string(_good())
    model.graph.node.append(helper.make_node("Custom", ["variable"], ["o"], domain="evil.ops"))
    with pytest.raises(DataCorrupted) as info:
        onnxpart.validate(model.SerializeToString())
    assert "evil.ops" in (info.value.detail or "")


def test_validate_refuses_external_data() -> None:
    model = onnx.load_from_string(_good())
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    with pytest.raises(DataCorrupted) as info:
        onnxpart.validate(model.SerializeToString())
    assert "external" in (info.value.detail or "")


def test_not_convertible_says_why() -> None:
    from sklearn.cluster import MeanShift

    X, _ = _data("regression")
    result = onnxpart.convert(MeanShift().fit(X), None, NAMES, [False] * 4, "clustering")
    assert result.data is None and result.reason and "MeanShift" in result.reason


# ---------------------------------------------------------------------------
# The serving path's check (no onnx import): pyml.core._validate.onnx_model
# ---------------------------------------------------------------------------


def _refused(data: bytes) -> str:
    with pytest.raises(DataCorrupted) as info:
        _validate.onnx_model(data)
    assert info.value.sqlstate == "XX001"
    return info.value.detail or ""


def test_wire_check_accepts_every_converted_graph_and_refuses_what_onnx_refuses() -> None:
    data = _good()
    _validate.onnx_model(data)
    for cut in (1, 7, len(data) // 3, len(data) - 1):  # a file cut short anywhere
        assert "parse" in _refused(data[:cut]) or "graph" in _refused(data[:cut])
    assert "parse" in _refused(b"\xff" * 64)
    assert "no graph" in _refused(b"")


def test_wire_check_refuses_operators_pyml_does_not_run() -> None:
    model = onnx.load_from_string(_good())
    model.graph.node.append(helper.make_node("Upsample", ["variable"], ["out"]))
    assert '"Upsample"' in _refused(model.SerializeToString())


def test_wire_check_refuses_functions_and_training_information() -> None:
    model = onnx.load_from_string(_good())
    model.functions.append(
        helper.make_function("local", "F", ["x"], ["y"], [], [helper.make_opsetid("", 18)])
    )
    assert "functions" in _refused(model.SerializeToString())
    model = onnx.load_from_string(_good())
    model.training_info.add()
    assert "training" in _refused(model.SerializeToString())


def test_wire_check_walks_subgraphs() -> None:
    """A Scan body (as KNN's converter makes) holding a foreign operator is refused."""
    from sklearn.neighbors import KNeighborsRegressor

    X, y = _data("regression")
    good = onnxpart.convert(KNeighborsRegressor().fit(X, y), None, NAMES, [False] * 4, "regression")
    assert good.data is not None
    model = onnx.load_from_string(good.data)
    scans = [n for n in model.graph.node if n.op_type == "Scan"]
    assert scans, "KNN's graph has no Scan any more: pick another subgraph case"
    body = next(a.g for a in scans[0].attribute if a.name == "body")
    body.node.append(helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft"))
    assert "com.microsoft" in _refused(model.SerializeToString())


def test_wire_check_refuses_sparse_external_data() -> None:
    model = onnx.load_from_string(_good())
    values = helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [1.0])
    values.data_location = onnx.TensorProto.EXTERNAL
    indices = helper.make_tensor("i", onnx.TensorProto.INT64, [1], [0])
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
    assert "external" in _refused(model.SerializeToString())


def test_wire_check_survives_random_damage() -> None:
    """Bytes flipped anywhere: refused with XX001, or well-formed enough to pass (then
    onnxruntime's own parser refuses or runs them); never another exception."""
    data = bytearray(_good())
    rng = np.random.default_rng(0)
    for _ in range(300):
        damaged = bytearray(data)
        for i in rng.integers(0, len(data), 3):
            damaged[i] = int(rng.integers(0, 256))
        try:
            _validate.onnx_model(bytes(damaged))
        except DataCorrupted:
            continue


def test_inputs_keep_the_training_names_exactly() -> None:
    """skl2onnx makes input names identifiers; pyml's graphs keep the columns' own names."""
    from sklearn.linear_model import LinearRegression

    X, y = _data("regression")
    names = ["mean radius", "x[1]", "x_1_", "Größe"]  # "x[1]" would have become "x_1_"
    converted = onnxpart.convert(
        LinearRegression().fit(X, y), None, names, [False] * 4, "regression", X[:10]
    )
    assert converted.data is not None, converted.reason
    graph = onnx.load_from_string(converted.data).graph
    assert [i.name for i in graph.input] == names
    assert onnxpart.agrees(converted.diff or 0.0, y)


def test_lightgbm_on_float64_inputs_tries_one_precision() -> None:
    """LightGBM's graph compares float32 inputs with float32 thresholds: on float64 inputs
    right by its thresholds it differs from the original, and convert says so after one
    conversion ("cast"): its double graph never loads, and without preprocessing "float" is
    the same float32 inputs and trees as "cast"."""
    import lightgbm

    rng = np.random.default_rng(3)
    X = rng.random((4000, 3))
    y = (X[:, 0] > 0.5) * 100.0 + X[:, 1]
    model = lightgbm.LGBMRegressor(n_estimators=5, num_leaves=4, verbose=-1).fit(X, y)
    thresholds = [
        float(node["threshold"])
        for tree in model.booster_.dump_model()["tree_info"]
        for node in _splits(tree["tree_structure"])
        if node["split_feature"] == 0
    ]
    rows = np.repeat(X[:1], 2 * len(thresholds), axis=0)
    for i, t in enumerate(thresholds):  # just above each threshold, below its float32 rounding
        rows[2 * i, 0] = np.nextafter(t, np.inf)
        rows[2 * i + 1, 0] = t
    converted = onnxpart.convert(model, None, ["a", "b", "c"], [False] * 3, "regression", rows)
    assert converted.data is None
    assert converted.reason is not None
    assert converted.reason.startswith("cast: differs from the original by")
    assert ";" not in converted.reason  # no other precision was tried


def _splits(node: dict[str, Any]) -> list[dict[str, Any]]:
    if "split_feature" not in node:
        return []
    return [node, *_splits(node["left_child"]), *_splits(node["right_child"])]
