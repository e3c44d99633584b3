"""pyml's tree kernel (pyml/core/_trees.py) against LightGBM's own predictor, to the bit."""

from __future__ import annotations

import threading
from typing import Any

import lightgbm
import numpy as np
import pytest

from pyml.core import _trees, _validate
from pyml.core._lgbm import Booster

ROWS = 3000


def _data(seed: int, rows: int = ROWS, columns: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, columns))
    X[rng.random(X.shape) < 0.05] = np.nan
    X[rng.random(X.shape) < 0.05] = 0.0
    return X


def _awkward(X: np.ndarray) -> np.ndarray:
    """Rows of values on the edges LightGBM's reader and decisions treat apart: tiny values it
    reads as 0, -0.0, infinities, NaN, and every split threshold itself."""
    X = X.copy()
    special = [0.0, -0.0, 1e-36, -1e-36, 1e-35, 1e-300, np.inf, -np.inf, np.nan, 1e308]
    for i, value in enumerate(special):
        X[i::50, i % X.shape[1]] = value
    return X


def _model(X: np.ndarray, y: np.ndarray, rounds: Any = 30, **params: Any) -> bytes:
    settings = {"num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, **params}
    booster = lightgbm.train(settings, lightgbm.Dataset(X, y), rounds)
    return booster.model_to_string().encode()


def _both(text: bytes, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, _trees.Forest]:
    """The kernel's answers (the same whether its walks stop at each row's leaf or take
    every tree's depth in steps, and whether rows are scored split by split or walked) and
    LightGBM's."""
    model = _validate.lightgbm_text(text)
    forests = [_trees.forest(model, steps) for steps in ("auto", "walk", "fixed")]
    forests.append(_trees.forest(model, scorer=False))
    X = np.ascontiguousarray(X)
    answers = [forest.predict(X) for forest in forests if forest is not None]
    assert len(answers) == 4
    for other in answers[1:]:
        np.testing.assert_array_equal(other, answers[0])
    plain = Booster(text)  # no forest: LightGBM's predictor
    assert forests[0] is not None
    return answers[0], plain.predict(X), forests[0]


def _thresholds(forest: _trees.Forest, X: np.ndarray) -> np.ndarray:
    """Rows whose values are the split thresholds (ties decide left)."""
    X = X[:200].copy()
    for node in forest.nodes[:200]:
        X[len(X) // 2 :, node["feature"]] = node["threshold"]
    return X


def test_the_kernel_is_built() -> None:
    # pyproject builds it (optional, to install without a compiler): the suite must have it
    assert _trees.library() is not None


@pytest.mark.parametrize(
    ("objective", "labels", "extra"),
    [
        ("regression", "real", {}),
        ("regression_l1", "real", {}),
        ("huber", "real", {}),
        ("quantile", "real", {"alpha": 0.3}),
        ("poisson", "count", {}),
        ("gamma", "positive", {}),
        ("tweedie", "positive", {}),
        ("binary", "binary", {}),
        ("binary", "binary", {"sigmoid": 0.7}),
        ("cross_entropy", "binary", {}),
        ("multiclass", "classes", {"num_class": 3}),
    ],
)
def test_same_bits_as_lightgbm(objective: str, labels: str, extra: dict[str, object]) -> None:
    X = _data(1)
    rng = np.random.default_rng(2)
    signal = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2
    y = {
        "real": signal + rng.normal(size=ROWS) * 0.1,
        "count": rng.poisson(np.exp(signal / 4)),
        "positive": np.exp(signal / 4) + 0.1,
        "binary": (signal > 0.5).astype(float),
        "classes": np.digitize(signal, [0.0, 1.0]).astype(float),
    }[labels]
    text = _model(X, y, objective=objective, **extra)
    test = _awkward(_data(3))
    mine, theirs, forest = _both(text, test)
    np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(*_both(text, _thresholds(forest, test))[:2])


@pytest.mark.parametrize("missing", ["nan", "zero", "none"])
def test_missing_value_rules(missing: str) -> None:
    X = _data(4)
    y = np.nan_to_num(X[:, 2]) - np.isnan(X[:, 3]) * 2.0 + (X[:, 4] == 0) * 3.0
    params: dict[str, object] = {"objective": "regression"}
    if missing == "zero":
        params["zero_as_missing"] = True
    if missing == "none":
        params["use_missing"] = False
    text = _model(X, y, **params)
    test = _awkward(_data(5))
    mine, theirs, forest = _both(text, test)
    np.testing.assert_array_equal(mine, theirs)
    row = forest.row_predictor()  # one row at a time: rows with and without NaN
    np.testing.assert_array_equal([row(list(x)) for x in test[:400]], theirs[:400])


def _ties(forest: _trees.Forest, X: np.ndarray) -> np.ndarray:
    """Rows each on the threshold of another split (ties decide left), beside rows of other
    values in the same blocks."""
    X = X.copy()
    splits = forest.nodes[: int(np.count_nonzero(np.isfinite(forest.nodes["threshold"])))]
    for i in range(0, len(X), 2):
        node = splits[(i // 2) % len(splits)]
        X[i, node["feature"]] = node["threshold"]
    return X


def _finite(X: np.ndarray) -> np.ndarray:
    """``_awkward``'s rows without NaN: the scorer's splits of a feature end at the first
    that no lane goes right of (with a NaN in a lane, every split is visited)."""
    X = _awkward(X)
    X[np.isnan(X)] = 0.25
    return X


@pytest.mark.parametrize(
    ("objective", "extra"),
    [
        ("regression", {}),
        ("binary", {"sigmoid": 0.7}),
        ("poisson", {}),
        ("multiclass", {"num_class": 3}),
        ("regression", {"num_leaves": 64, "min_data_in_leaf": 2}),  # a bit for each of 64
    ],
)
def test_rows_without_nan_are_scored_as_walked(objective: str, extra: dict[str, Any]) -> None:
    """Rows without NaN, scored split by split (the scorer, _trees.c) to the first split no
    lane goes right of: the bits of LightGBM, on the thresholds themselves, infinities,
    -0.0 and values read as 0, any number of rows (lanes left over)."""
    X = _data(15)
    signal = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2
    y = {
        "regression": signal,
        "binary": (signal > 0.5).astype(float),
        "poisson": np.round(np.exp(signal / 4)),
        "multiclass": np.digitize(signal, [0.0, 1.0]).astype(float),
    }[objective]
    text = _model(X, y, objective=objective, **extra)
    model = _validate.lightgbm_text(text)
    forest = _trees.forest(model)
    assert forest is not None and forest.scorer is not None
    test = _finite(_data(16))
    for rows in (test, _thresholds(forest, test), _ties(forest, test), _finite(-_data(17))):
        mine, theirs, _ = _both(text, rows)
        np.testing.assert_array_equal(mine, theirs)
    for n in range(1, 10):
        np.testing.assert_array_equal(forest.predict(test[:n]), Booster(text).predict(test[:n]))


def test_what_the_scorer_leaves_to_walks() -> None:
    """Trees of more than 64 leaves, zero as missing, and a NaN threshold (every value goes
    right of it, where the scorer's ascending thresholds end) are walked: LightGBM's
    answers."""
    X = np.nan_to_num(_data(18))
    y = np.sin(X[:, 0] * 3) + X[:, 1] * X[:, 2]
    texts = [
        _model(X, y, objective="regression", **params)
        for params in ({"num_leaves": 65, "min_data_in_leaf": 2}, {"zero_as_missing": True})
    ]
    text = _model(X, y, objective="regression")
    head, tree = text.split(b"Tree=0\n", 1)
    line = next(line for line in tree.split(b"\n") if line.startswith(b"threshold="))
    values = line[len(b"threshold=") :].split(b" ")
    nan_line = b"threshold=" + b" ".join([b"nan", *values[1:]])
    sizes = next(line for line in head.split(b"\n") if line.startswith(b"tree_sizes="))
    first, *rest = sizes[len(b"tree_sizes=") :].split(b" ")
    shorter = str(int(first) - len(line) + len(nan_line)).encode()
    head = head.replace(sizes, b"tree_sizes=" + b" ".join([shorter, *rest]))
    texts.append(head + b"Tree=0\n" + tree.replace(line, nan_line, 1))
    for text in texts:
        forest = _trees.forest(_validate.lightgbm_text(text))
        assert forest is not None and forest.scorer is None
        for rows in (_finite(X), _awkward(X)):
            np.testing.assert_array_equal(forest.predict(rows), Booster(text).predict(rows))


def test_trees_walked_both_ways_in_one_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # "auto" walks a tree much deeper in places than on average row by row, the others in a
    # fixed number of steps: with a strict ratio, one model has both kinds
    monkeypatch.setattr(_trees, "FIXED_DEPTH_RATIO", 1.0)
    rng = np.random.default_rng(13)
    X = rng.normal(size=(ROWS, 3))
    y = np.exp(X[:, 0] * 3)  # a long chain of splits on the large values of one feature
    text = _model(X, y, objective="regression", num_leaves=63, min_data_in_leaf=2)
    forest = _trees.forest(_validate.lightgbm_text(text))
    assert forest is not None
    assert (forest.steps == 0).any() and (forest.steps > 0).any()
    test = _awkward(rng.normal(size=(ROWS, 3)))
    theirs = Booster(text).predict(test)
    np.testing.assert_array_equal(forest.predict(test), theirs)
    row = forest.row_predictor()
    np.testing.assert_array_equal([row(list(x)) for x in test[:300]], theirs[:300])


def test_one_leaf_trees_and_a_single_row() -> None:
    X = _data(6)
    y = np.ones(ROWS)  # nothing to split: every tree is one leaf
    text = _model(X, y, objective="regression", rounds=5)
    mine, theirs, forest = _both(text, X[:100])
    np.testing.assert_array_equal(mine, theirs)
    assert forest.scorer is not None  # trees without splits: each row's leaf is leaf 0
    np.testing.assert_array_equal(*_both(text, _finite(X[:100]))[:2])
    row = forest.row_predictor()
    assert [row(list(x)) for x in X[:3]] == list(theirs[:3])


def test_rows_one_at_a_time_and_threads() -> None:
    X = _data(7)
    text = _model(X, np.nan_to_num(X[:, 0]) * 3, objective="regression")
    forest = _trees.forest(_validate.lightgbm_text(text))
    assert forest is not None
    theirs = Booster(text).predict(X)
    row = forest.row_predictor()
    np.testing.assert_array_equal([row(list(x)) for x in X[:500]], theirs[:500])
    for threads in (1, 2, 3, 7):
        np.testing.assert_array_equal(forest.predict(X, threads=threads), theirs)
    # several Python threads at once (predict_into's worker and the session's own calls)
    results: list[np.ndarray] = []
    workers = [threading.Thread(target=lambda: results.append(forest.predict(X))) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for result in results:
        np.testing.assert_array_equal(result, theirs)


def test_a_row_predictor_outlives_its_forest() -> None:
    import gc

    X = _data(14)
    text = _model(X, np.nan_to_num(X[:, 0]), objective="regression")
    forest = _trees.forest(_validate.lightgbm_text(text))
    assert forest is not None
    row = forest.row_predictor()
    del forest
    gc.collect()
    np.zeros(1_000_000)  # reuse freed memory, if the tables' arrays were freed
    assert [row(list(x)) for x in X[:50]] == list(Booster(text).predict(X[:50]))


def test_multiclass_row_predictor() -> None:
    X = _data(8)
    y = np.digitize(np.nan_to_num(X[:, 0]), [-0.5, 0.5]).astype(float)
    text = _model(X, y, objective="multiclass", num_class=3)
    forest = _trees.forest(_validate.lightgbm_text(text))
    assert forest is not None
    theirs = Booster(text).predict(X[:20])
    row = forest.row_predictor()
    np.testing.assert_array_equal([row(list(x)) for x in X[:20]], theirs)


def test_the_loaded_artifact_predicts_with_the_kernel() -> None:
    from pyml.core.artifacts import _load_lightgbm

    X = _data(9)
    text = _model(X, np.nan_to_num(X[:, 1]), objective="regression")
    booster = _load_lightgbm(text)
    assert booster.forest is not None
    np.testing.assert_array_equal(booster.predict(X), Booster(text).predict(X))
    # contributions stay LightGBM's
    assert booster.predict(X[:5], contrib=True).shape == (5, X.shape[1] + 1)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"objective": "regression", "reg_sqrt": True}, "sqrt output"),
        ({"objective": "multiclassova", "num_class": 3}, "one-vs-all output"),
        ({"objective": "cross_entropy_lambda"}, "log1p output"),
        ({"objective": "regression", "linear_tree": True}, "linear trees"),
        (
            {"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.5},
            "averaged output",
        ),
    ],
)
def test_what_the_kernel_leaves_to_lightgbm(params: dict[str, object], why: str) -> None:
    X = np.nan_to_num(_data(10))
    y = (X[:, 0] > 0).astype(float) + (X[:, 1] > 0)
    if params.get("objective") != "multiclassova":
        y = (X[:, 0] > 0).astype(float)
    text = _model(X, y, **params)
    assert _trees.forest(_validate.lightgbm_text(text)) is None, why


def test_categorical_splits_stay_lightgbm() -> None:
    rng = np.random.default_rng(11)
    X = np.column_stack([rng.integers(0, 8, ROWS), rng.normal(size=ROWS)]).astype(float)
    y = np.isin(X[:, 0], [1, 4, 6]) * 2.0 + X[:, 1]
    booster = lightgbm.train(
        {"verbose": -1, "min_data_in_leaf": 5, "cat_smooth": 1},
        lightgbm.Dataset(X, y, categorical_feature=[0]),
        10,
    )
    text = booster.model_to_string().encode()
    assert b"num_cat=0" not in text.split(b"Tree=0")[1].split(b"\n\n")[0]
    assert _trees.forest(_validate.lightgbm_text(text)) is None


@pytest.mark.parametrize("classes", [0, 2, 3])
def test_onnx_check_sees_what_lightgbm_gives(classes: int) -> None:
    # the ONNX part is checked against the kernel's predictions: LightGBM's own, and its
    # scikit-learn wrapper's labels
    from pyml.core import onnxpart

    X = _data(12)
    signal = np.nan_to_num(X[:, 0])
    if classes:
        model: Any = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1)
        y: Any = np.array(["a", "b", "c"])[np.digitize(signal, [-0.3, 0.3][: classes - 1])]
        task = "classification"
    else:
        model = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1)
        y = signal * 2
        task = "regression"
    model.fit(X, y)
    assert onnxpart._lightgbm_forest(model) is not None
    want, labels = onnxpart._original(model, None, X, task)
    np.testing.assert_array_equal(want, onnxpart.expected(model, None, X, task))
    if classes:
        assert labels is not None
        np.testing.assert_array_equal(labels, model.predict(X))
    else:
        assert labels is None
