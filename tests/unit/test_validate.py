"""Unit tests for pyml.core._validate: real artifacts pass, damaged ones are refused precisely.

Models are trained here (LightGBM regression, binary, multiclass, categorical, linear,
random forest mode; scikit-learn trees, forests, histogram gradient boosting, k-NN with KD
and ball trees), stored and loaded through pyml.core.artifacts, and compared with the original.
Then each kind of damage is applied (tree_sizes recomputed, so that the damage reaches the
check meant for it) and must be refused with XX001 and a detail naming the tree and field.
A subprocess shows that some of these files do crash LightGBM when nothing checks them.
"""

from __future__ import annotations

import hashlib
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pytest
import skops.io
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.tree._tree import Tree

from pyml.core import _validate
from pyml.core import artifacts as _artifacts
from pyml.errors import DataCorrupted

ROOT = Path(__file__).resolve().parents[2]
INVALID_LGBM = 'model artifact is not a valid "lightgbm-text" file'
INVALID_SKOPS = 'model artifact is not a valid "skops" file'


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.rand(400, 4)
    categories = rng.randint(0, 6, 400)
    return {
        "X": X,
        "y": X @ np.array([3.0, -2.0, 0.5, 1.0]) + 0.1 * rng.randn(400),
        "binary": (X[:, 0] + X[:, 1] > 1).astype(np.int64),
        "multi": (X[:, 0] * 3).astype(np.int64),
        "Xc": np.column_stack([categories, X[:, 1]]),
        "yc": (np.isin(categories, [1, 4]) ^ (X[:, 1] > 0.8)).astype(np.int64),
    }


def _lgbm(kind: str, data: dict[str, np.ndarray]) -> tuple[Any, np.ndarray]:
    common: dict[str, Any] = dict(n_estimators=4, num_leaves=6, verbose=-1, random_state=0)
    X = data["X"]
    if kind == "regression":
        return lightgbm.LGBMRegressor(**common).fit(X, data["y"]), X
    if kind == "binary":
        return lightgbm.LGBMClassifier(**common).fit(X, data["binary"]), X
    if kind == "multiclass":
        return lightgbm.LGBMClassifier(**common).fit(X, data["multi"]), X
    if kind == "categorical":
        model = lightgbm.LGBMClassifier(**common, min_data_per_group=5, cat_smooth=1)
        return model.fit(data["Xc"], data["yc"], categorical_feature=[0]), data["Xc"]
    if kind == "linear":
        return lightgbm.LGBMRegressor(**common, linear_tree=True).fit(X, data["y"]), X
    if kind == "random_forest":  # writes "average_output"
        model = lightgbm.LGBMRegressor(
            **common, boosting_type="rf", bagging_freq=1, bagging_fraction=0.5
        )
        return model.fit(X, data["y"]), X
    if kind == "monotone":
        return lightgbm.LGBMRegressor(**common, monotone_constraints=[1, -1, 0, 0]).fit(
            X, data["y"]
        ), X
    if kind == "constant":  # one-leaf trees
        return lightgbm.LGBMRegressor(**common).fit(X, np.ones(len(X))), X
    if kind == "linear_constant":  # a linear one-leaf tree
        return lightgbm.LGBMRegressor(**common, linear_tree=True).fit(X, np.ones(len(X))), X
    raise AssertionError(kind)


LGBM_KINDS = [
    "regression",
    "binary",
    "multiclass",
    "categorical",
    "linear",
    "random_forest",
    "monotone",
    "constant",
    "linear_constant",
]


@pytest.fixture(scope="module")
def texts(data: dict[str, np.ndarray]) -> dict[str, bytes]:
    return {kind: _lgbm(kind, data)[0].booster_.model_to_string().encode() for kind in LGBM_KINDS}


def _rows(parts: list[_artifacts.Part]) -> list[dict[str, Any]]:
    return [{"part": p.part, "format": p.format, "sha256": p.sha256, "data": p.data} for p in parts]


def _row(data: bytes, fmt: str) -> dict[str, Any]:
    return {"part": 0, "format": fmt, "sha256": hashlib.sha256(data).hexdigest(), "data": data}


def _refused(data: bytes, fmt: str = "lightgbm-text") -> DataCorrupted:
    with pytest.raises(DataCorrupted) as info:
        _artifacts.load([_row(data, fmt)])
    assert info.value.sqlstate == "XX001"
    return info.value


# -- editing LightGBM text -----------------------------------------------------------------


def _split(text: bytes) -> tuple[bytes, list[bytes], bytes]:
    """The header (through tree_sizes), the tree blocks, and "end of trees" onwards."""
    head, rest = text.split(b"\n\nTree=", 1)
    trees, tail = (b"Tree=" + rest).split(b"end of trees\n", 1)
    blocks = re.split(rb"(?m)^(?=Tree=)", trees)
    return head, [b for b in blocks if b], b"end of trees\n" + tail


def _join(head: bytes, blocks: list[bytes], tail: bytes) -> bytes:
    """Reassembled, with tree_sizes made to match the blocks."""
    sizes = b" ".join(b"%d" % len(b) for b in blocks)
    head = re.sub(rb"(?m)^tree_sizes=.*$", b"tree_sizes=" + sizes, head)
    return head + b"\n\n" + b"".join(blocks) + tail


def _set(text: bytes, tree: int, key: bytes, value: bytes) -> bytes:
    """Field ``key`` of tree ``tree`` set to ``value`` (tree_sizes kept right)."""
    head, blocks, tail = _split(text)
    pattern = rb"(?m)^" + re.escape(key) + rb"=.*$"
    assert re.search(pattern, blocks[tree]), key
    blocks[tree] = re.sub(pattern, lambda _: key + b"=" + value, blocks[tree], count=1)
    return _join(head, blocks, tail)


def _get(text: bytes, tree: int, key: bytes) -> list[bytes]:
    block = _split(text)[1][tree]
    match = re.search(rb"(?m)^" + re.escape(key) + rb"=(.*)$", block)
    assert match, key
    return match.group(1).split(b" ")


def _header(text: bytes, key: bytes, value: bytes) -> bytes:
    return re.sub(
        rb"(?m)^" + re.escape(key) + rb"=.*$", lambda _: key + b"=" + value, text, count=1
    )


def _first_tree_with(text: bytes, pattern: bytes) -> int:
    return next(i for i, b in enumerate(_split(text)[1]) if re.search(pattern, b))


# -- what LightGBM writes is accepted ------------------------------------------------------


@pytest.mark.parametrize("kind", LGBM_KINDS)
def test_lightgbm_models_are_accepted_and_round_trip(data, kind: str) -> None:
    model, X = _lgbm(kind, data)
    parts = _artifacts.dump("lightgbm", model)
    _validate.lightgbm_text(parts[0].data)
    _, (booster,), _ = _artifacts.load(_rows(parts))
    raw = model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)
    if raw.ndim == 2 and raw.shape[1] == 2:
        raw = raw[:, 1]
    np.testing.assert_allclose(booster.predict(X), raw, rtol=1e-12)
    if not kind.startswith("linear"):  # LightGBM has no contributions for linear trees
        contrib = booster.predict(X[:3], contrib=True)
        np.testing.assert_allclose(contrib, model.predict(X[:3], pred_contrib=True), rtol=1e-12)


def test_the_models_cover_what_the_checks_read(texts: dict[str, bytes]) -> None:
    """The accepted models do have the parts that the refusals below damage."""
    assert b"num_cat=1" in texts["categorical"] or b"num_cat=2" in texts["categorical"]
    assert b"is_linear=1" in texts["linear"] and b"[linear_tree: 1]" in texts["linear"]
    assert b"\naverage_output\n" in texts["random_forest"]
    assert b"\nmonotone_constraints=1 -1 0 0\n" in texts["monotone"]
    assert b"num_leaves=1\n" in texts["constant"]
    assert b"num_class=3" in texts["multiclass"]
    assert texts["regression"].endswith(b"\npandas_categorical:null\n")


# -- LightGBM damage -----------------------------------------------------------------------

Edit = Callable[[bytes], bytes]


def _tree(left: list[int], right: list[int]) -> Edit:
    """Tree 0 replaced by one with these children (and every other field to match)."""

    def edit(text: bytes) -> bytes:
        n = len(left)
        leaves = n + 1
        numbers = lambda values: b" ".join(b"%d" % v for v in values)  # noqa: E731
        fields = [
            (b"num_leaves", b"%d" % leaves),
            (b"num_cat", b"0"),
            (b"split_feature", numbers(i % 4 for i in range(n))),
            (b"split_gain", numbers([1] * n)),
            (b"threshold", numbers([0] * n)),
            (b"decision_type", numbers([2] * n)),
            (b"left_child", numbers(left)),
            (b"right_child", numbers(right)),
            (b"leaf_value", numbers([0] * leaves)),
            (b"leaf_weight", numbers([1] * leaves)),
            (b"leaf_count", numbers([1] * leaves)),
            (b"internal_value", numbers([0] * n)),
            (b"internal_weight", numbers([1] * n)),
            (b"internal_count", numbers(range(leaves, 1, -1))),
            (b"is_linear", b"0"),
            (b"shrinkage", b"1"),
        ]
        head, blocks, tail = _split(text)
        blocks[0] = b"Tree=0\n" + b"".join(k + b"=" + v + b"\n" for k, v in fields) + b"\n\n"
        return _join(head, blocks, tail)

    return edit


def _chain(leaves: int) -> Edit:
    """Tree 0 replaced by a chain of ``leaves`` leaves (each split's right child the next)."""
    n = leaves - 1
    return _tree([~i for i in range(n)], [*range(1, n), ~n])


# Three splits, four leaves: the root's children are two leaves, and nodes 1 and 2 are each
# other's child: every node has one parent, but 1 and 2 hang in a loop.
_cycle = _tree([-1, 2, 1], [-2, -3, -4])
# The same loop, reached from the root by every row (the thresholds are 0, the rows positive)
_loop = _tree([-1, -2, -3], [1, 2, 1])


def _swap_trees(text: bytes) -> bytes:
    head, blocks, tail = _split(text)
    blocks[0], blocks[1] = blocks[1], blocks[0]
    return _join(head, blocks, tail)


def _drop_line(key: bytes, tree: int = 0) -> Edit:
    def edit(text: bytes) -> bytes:
        head, blocks, tail = _split(text)
        blocks[tree] = re.sub(rb"(?m)^" + re.escape(key) + rb"=.*\n", b"", blocks[tree], count=1)
        return _join(head, blocks, tail)

    return edit


def _double_line(key: bytes) -> Edit:
    def edit(text: bytes) -> bytes:
        head, blocks, tail = _split(text)
        blocks[0] = re.sub(rb"(?m)^(" + re.escape(key) + rb"=.*\n)", rb"\1\1", blocks[0], count=1)
        return _join(head, blocks, tail)

    return edit


def _size_off_by_one(text: bytes) -> bytes:
    sizes = re.search(rb"tree_sizes=(.*)", text).group(1).split(b" ")
    sizes[1] = b"%d" % (int(sizes[1]) - 1)
    return _header(text, b"tree_sizes", b" ".join(sizes))


def _set_values(tree: int, key: bytes, change: Callable[[list[bytes]], list[bytes]]) -> Edit:
    return lambda text: _set(text, tree, key, b" ".join(change(_get(text, tree, key))))


def _at(i: int, value: bytes) -> Callable[[list[bytes]], list[bytes]]:
    return lambda values: [*values[:i], value, *values[i + 1 :]]


def _categorical_tree(text: bytes) -> int:
    return _first_tree_with(text, rb"num_cat=[1-9]")


def _cat_threshold_index(value: bytes) -> Edit:
    def edit(text: bytes) -> bytes:
        tree = _categorical_tree(text)
        types = _get(text, tree, b"decision_type")
        node = next(i for i, t in enumerate(types) if int(t) & 1)
        return _set(
            text, tree, b"threshold", b" ".join(_at(node, value)(_get(text, tree, b"threshold")))
        )

    return edit


def _cat_field(key: bytes, value: bytes) -> Edit:
    return lambda text: _set(text, _categorical_tree(text), key, value)


DAMAGE: list[tuple[str, str, Edit, str]] = [
    # (model, what, edit, expected detail (a regular expression))
    (
        "regression",
        "NUL byte",
        lambda t: t.replace(b"Tree=1", b"Tree=\0", 1),
        r"The file has a NUL byte at offset \d+\.",
    ),
    ("regression", "carriage returns", lambda t: t.replace(b"\n", b"\r\n"), "carriage returns"),
    (
        "regression",
        "no trees",
        lambda t: t.split(b"\n\nTree=")[0],
        'The file has no tree: no "Tree=" line after the header.',
    ),
    ("regression", "cut in the header", lambda t: t[: t.index(b"feature_names")], "no tree"),
    (
        "regression",
        "cut inside a tree",
        lambda t: t[: t.rindex(b"split_feature=") + 9],
        r"tree_sizes gives Tree 3 \d+ bytes, but it has no end\.",
    ),
    ("regression", "cut in half", lambda t: t[: len(t) // 2], "tree_sizes gives Tree"),
    (
        "regression",
        "cut after the trees",
        lambda t: t[: t.index(b"end of trees")],
        'tree_sizes lists 4 trees, and "" follows them instead of "end of trees".',
    ),
    (
        "regression",
        "cut after end of trees",
        lambda t: t[: t.index(b"feature_importances")],
        '"end of trees" is not followed',
    ),
    (
        "regression",
        "cut in the parameters",
        lambda t: t[: t.index(b"end of parameters")],
        'no "end of parameters"',
    ),
    ("regression", "first line", lambda t: b"boost" + t[4:], 'The first line is "boost"'),
    (
        "regression",
        "version",
        lambda t: _header(t, b"version", b"v3"),
        'The model version is "v3", not "v4".',
    ),
    (
        "regression",
        "unknown header key",
        lambda t: t.replace(b"label_index", b"label_idx"),
        'Header line 5 has the unknown key "label_idx".',
    ),
    (
        "regression",
        "duplicated header line",
        lambda t: t.replace(b"num_class=1\n", b"num_class=1\nnum_class=1\n"),
        'The header has "num_class" twice.',
    ),
    (
        "regression",
        "num_class 2",
        lambda t: _header(t, b"num_class", b"2"),
        "num_tree_per_iteration = 1 differs from num_class = 2.",
    ),
    (
        "regression",
        "num_tree_per_iteration 0",
        lambda t: _header(t, b"num_tree_per_iteration", b"0"),
        r"num_tree_per_iteration = 0 is out of range \(1 to 2147483647\).",
    ),
    (
        "regression",
        "num_class not a number",
        lambda t: _header(t, b"num_class", b"one"),
        'num_class = "one" is not an integer.',
    ),
    (
        "regression",
        "two outputs, one-output objective",
        lambda t: _header(_header(t, b"num_class", b"2"), b"num_tree_per_iteration", b"2"),
        'num_class = 2 with the objective "regression", which has one output.',
    ),
    (
        "regression",
        "objective",
        lambda t: _header(t, b"objective", b"magic"),
        'The objective "magic" is not one of LightGBM',
    ),
    (
        "regression",
        "max_feature_idx huge",
        lambda t: _header(t, b"max_feature_idx", b"2000000000"),
        '"feature_names" has 4 entries, but max_feature_idx = 2000000000 means 2000000001.',
    ),
    (
        "regression",
        "max_feature_idx small",
        lambda t: _header(t, b"max_feature_idx", b"1"),
        '"feature_names" has 4 entries, but max_feature_idx = 1 means 2.',
    ),
    (
        "regression",
        "max_feature_idx overflow",
        lambda t: _header(t, b"max_feature_idx", b"99999999999"),
        'max_feature_idx = "99999999999" is not an integer.',
    ),
    (
        "regression",
        "feature_infos",
        lambda t: re.sub(rb"feature_infos=\[", b"feature_infos=[x", t),
        r"feature_infos\[0\] = .* is not a feature range",
    ),
    (
        "regression",
        "tree_sizes off by one",
        _size_off_by_one,
        r"tree_sizes gives Tree 1 (\d+) bytes, but it has \d+ bytes\.",
    ),
    (
        "regression",
        "tree_sizes missing a tree",
        lambda t: _header(
            t, b"tree_sizes", b" ".join(re.search(rb"tree_sizes=(.*)", t).group(1).split(b" ")[:-1])
        ),
        'tree_sizes lists 3 trees, and "Tree=3" follows them instead of "end of trees".',
    ),
    (
        "regression",
        "tree_sizes negative",
        lambda t: _header(t, b"tree_sizes", b"-5"),
        "is not a list of sizes",
    ),
    (
        "regression",
        "swapped trees",
        _swap_trees,
        r'Tree 0 does not start with "Tree=0" where tree_sizes puts it \(found "Tree=1"\)\.',
    ),
    (
        "regression",
        "deleted line",
        _drop_line(b"right_child"),
        'Tree 0: the field "right_child" is missing.',
    ),
    (
        "regression",
        "deleted shrinkage",
        _drop_line(b"shrinkage", tree=3),
        'Tree 3: the field "shrinkage" is missing.',
    ),
    (
        "regression",
        "duplicated line",
        _double_line(b"left_child"),
        'Tree 0: the field "left_child" appears twice.',
    ),
    (
        "regression",
        "unknown field",
        lambda t: _set(t, 0, b"is_linear", b"0\nmagic=1"),
        'Tree 0: the field "magic" is not expected here.',
    ),
    (
        "regression",
        "blank line in a tree",
        lambda t: _set(t, 0, b"leaf_value", b" ".join(_get(t, 0, b"leaf_value")) + b"\n"),
        r'Tree 0: the line "" is not of the form key=value\.',
    ),
    (
        "regression",
        "num_leaves 0",
        lambda t: _set(t, 0, b"num_leaves", b"0"),
        r"Tree 0: num_leaves = 0 is out of range \(1 to 131072\).",
    ),
    (
        "regression",
        "num_leaves larger",
        lambda t: _set(t, 0, b"num_leaves", b"7"),
        "Tree 0: split_feature has 5 values instead of 6.",
    ),
    (
        "regression",
        "num_leaves huge",
        lambda t: _set(t, 0, b"num_leaves", b"2000000000"),
        r"Tree 0: num_leaves = 2000000000 is out of range \(1 to 131072\).",
    ),
    (
        "regression",
        "value missing",
        _set_values(0, b"leaf_value", lambda v: v[:-1]),
        "Tree 0: leaf_value has 5 values instead of 6.",
    ),
    (
        "regression",
        "value too many",
        _set_values(1, b"threshold", lambda v: [*v, b"1"]),
        "Tree 1: threshold has 6 values instead of 5.",
    ),
    (
        "regression",
        "not a number",
        _set_values(0, b"threshold", _at(1, b"abc")),
        r'Tree 0: threshold\[1\] is "abc", not a number.',
    ),
    (
        "regression",
        "two spaces",
        _set_values(0, b"leaf_weight", _at(1, b" 3")),
        r"Tree 0: leaf_weight\[1\] is an empty value, not a number.",
    ),
    (
        "regression",
        "float as integer",
        _set_values(0, b"split_feature", _at(1, b"1.5")),
        r'Tree 0: split_feature\[1\] is "1.5", not an integer.',
    ),
    (
        "regression",
        "split_feature out of range",
        _set_values(0, b"split_feature", _at(2, b"4")),
        r"Tree 0: split_feature\[2\] = 4 is out of range \(max_feature_idx = 3\).",
    ),
    (
        "regression",
        "split_feature negative",
        _set_values(2, b"split_feature", _at(0, b"-1")),
        r"Tree 2: split_feature\[0\] = -1 is out of range",
    ),
    (
        "regression",
        "split_feature overflows int",
        _set_values(0, b"split_feature", _at(0, b"4294967296")),
        r"Tree 0: split_feature\[0\] = 4294967296 is out of range",
    ),
    (
        "regression",
        "decision_type",
        _set_values(0, b"decision_type", _at(0, b"99")),
        r"Tree 0: decision_type\[0\] = 99 is not a decision type.",
    ),
    (
        "regression",
        "categorical bit, no categories",
        _set_values(0, b"decision_type", _at(0, b"9")),
        "Tree 0: num_cat = 0, but 1 of its splits are categorical.",
    ),
    (
        "regression",
        "left_child out of range",
        _set_values(0, b"left_child", _at(0, b"40")),
        r"Tree 0: left_child\[0\] = 40 is out of range \(the tree has 6 leaves\).",
    ),
    (
        "regression",
        "right_child leaf out of range",
        _set_values(1, b"right_child", _at(1, b"-7")),
        r"Tree 1: right_child\[1\] = -7 is out of range \(the tree has 6 leaves\).",
    ),
    (
        "regression",
        "child is the root",
        _set_values(0, b"left_child", _at(1, b"0")),
        r"Tree 0: left_child\[1\] = 0 is the root",
    ),
    (
        "regression",
        "two parents",
        _set_values(0, b"right_child", lambda v: [v[1], *v[1:]]),
        r"Tree 0: (node|leaf) \d+ is the child of [02] nodes.",
    ),
    (
        "regression",
        "cycle",
        _cycle,
        r"Tree 0: node 1 cannot be reached from the root \(the children form a cycle\).",
    ),
    (
        "regression",
        "deeper than the stack",
        _chain(_validate.MAX_DEPTH + 2),
        f"Tree 0 is deeper than {_validate.MAX_DEPTH} levels.",
    ),
    (
        "regression",
        "shrinkage",
        lambda t: _set(t, 0, b"shrinkage", b"fast"),
        'Tree 0: shrinkage = "fast" is not a number.',
    ),
    (
        "regression",
        "is_linear 2",
        lambda t: _set(t, 0, b"is_linear", b"2"),
        'Tree 0: is_linear = "2" is not 0 or 1.',
    ),
    (
        "regression",
        "importance of an unknown feature",
        lambda t: t.replace(b"feature_importances:\n", b"feature_importances:\nColumn_9=3\n"),
        'The feature importance line "Column_9=3" is not a feature name and a count.',
    ),
    (
        "regression",
        "parameter line",
        lambda t: t.replace(b"[boosting: gbdt]", b"boosting"),
        'The parameter line "boosting" is not of the form',
    ),
    (
        "regression",
        "pandas_categorical",
        lambda t: t.replace(b"pandas_categorical:null", b"pandas_categorical:[1,"),
        "The pandas_categorical line is not JSON null or a list.",
    ),
    (
        "regression",
        "a parser section",
        lambda t: t + b"\nparser:\n{}\nend of parser\n",
        'Only a "pandas_categorical:" line may follow "end of parameters".',
    ),
    (
        "multiclass",
        "objective's classes",
        lambda t: t.replace(b"num_class:3", b"num_class:5"),
        "The objective's num_class = 5 differs from num_class = 3.",
    ),
    (
        "multiclass",
        "num_class 1",
        lambda t: _header(_header(t, b"num_class", b"1"), b"num_tree_per_iteration", b"1"),
        "The objective's num_class = 3 differs from num_class = 1.",
    ),
    (
        "multiclass",
        "trees not a multiple",
        lambda t: _join(_split(t)[0], _split(t)[1][:-1], _split(t)[2]),
        "The model has 11 trees, which is not a multiple of num_tree_per_iteration = 3.",
    ),
    (
        "multiclass",
        "num_tree_per_iteration 1",
        lambda t: _header(t, b"num_tree_per_iteration", b"1"),
        "num_tree_per_iteration = 1 differs from num_class = 3.",
    ),
    (
        "categorical",
        "category list index",
        _cat_threshold_index(b"7"),
        r"the categorical splits do not use the category lists|not a category list index",
    ),
    (
        "categorical",
        "category list index huge",
        _cat_threshold_index(b"5000000"),
        r"the categorical splits do not use the category lists",
    ),
    (
        "categorical",
        "category list index negative",
        _cat_threshold_index(b"-1"),
        r"not a category list index",
    ),
    (
        "categorical",
        "category list index fraction",
        _cat_threshold_index(b"0.5"),
        r"not a category list index",
    ),
    (
        "categorical",
        "cat_boundaries past cat_threshold",
        _cat_field(b"cat_boundaries", b"0 100000"),
        r"cat_boundaries (has \d+ values instead|does not go up from 0 to the \d+ values)",
    ),
    (
        "categorical",
        "cat_boundaries decreasing",
        lambda t: _set(
            t,
            _categorical_tree(t),
            b"cat_boundaries",
            b" ".join([b"0", b"5", *_get(t, _categorical_tree(t), b"cat_boundaries")[2:]])
            if len(_get(t, _categorical_tree(t), b"cat_boundaries")) > 2
            else b"0 -1",
        ),
        r"cat_boundaries does not go up from 0",
    ),
    (
        "categorical",
        "cat_threshold out of range",
        lambda t: _set(
            t,
            _categorical_tree(t),
            b"cat_threshold",
            b" ".join(_at(0, b"4294967296")(_get(t, _categorical_tree(t), b"cat_threshold"))),
        ),
        r"a value of cat_threshold is out of range",
    ),
    (
        "categorical",
        "num_cat 0",
        lambda t: _set(t, _categorical_tree(t), b"num_cat", b"0"),
        r'the field "cat_boundaries" is not expected here',
    ),
    (
        "linear",
        "leaf_features out of range",
        lambda t: _set(
            t,
            _first_tree_with(t, rb"num_features=[0-9 ]*[1-9]"),
            b"leaf_features",
            re.sub(
                rb"[0-9]+",
                b"9",
                _get(t, _first_tree_with(t, rb"num_features=[0-9 ]*[1-9]"), b"leaf_features")[0],
                count=1,
            )
            + b" "
            + b" ".join(
                _get(t, _first_tree_with(t, rb"num_features=[0-9 ]*[1-9]"), b"leaf_features")[1:]
            ),
        ),
        r"a value of leaf_features is out of range \(max_feature_idx = 3\)",
    ),
    (
        "linear",
        "num_features larger",
        lambda t: _set(t, 1, b"num_features", b" ".join(_at(0, b"3")(_get(t, 1, b"num_features")))),
        r"Tree 1: leaf_features has \d+ values, but num_features adds up to \d+.",
    ),
    (
        "linear",
        "num_features negative",
        lambda t: _set(
            t, 1, b"num_features", b" ".join(_at(0, b"-9")(_get(t, 1, b"num_features")))
        ),
        r"Tree 1: num_features is not one count of at most 4 per leaf.",
    ),
    (
        "linear",
        "no leaf_coeff",
        _drop_line(b"leaf_coeff", tree=1),
        'Tree 1: the field "leaf_coeff" is missing.',
    ),
    (
        "linear",
        "linear trees, parameters say otherwise",
        lambda t: t.replace(b"[linear_tree: 1]", b"[linear_tree: 0]"),
        r'linear trees but its parameters do not say "\[linear_tree: 1\]"',
    ),
    (
        "linear",
        "linear_tree parameter value",
        lambda t: t.replace(b"[linear_tree: 1]", b"[linear_tree: 10]"),
        r'The parameter line "\[linear_tree: 10\]" is not 0 or 1.',
    ),
    (
        "regression",
        "linear_tree parameter, no linear tree",
        lambda t: t.replace(b"[linear_tree: 0]", b"[linear_tree: 1]"),
        r'The parameters say "\[linear_tree: 1\]" but no tree is linear.',
    ),
]


@pytest.mark.parametrize(
    ("kind", "what", "edit", "expected"),
    DAMAGE,
    ids=[f"{kind}-{what}" for kind, what, _, _ in DAMAGE],
)
def test_damaged_lightgbm_is_refused(
    texts: dict[str, bytes], kind: str, what: str, edit: Edit, expected: str
) -> None:
    damaged = edit(texts[kind])
    assert damaged != texts[kind]
    error = _refused(damaged)
    assert str(error) == INVALID_LGBM
    assert re.search(expected, error.detail or ""), error.detail


def test_checks_stop_before_native_code(texts: dict[str, bytes], monkeypatch) -> None:
    """A refused text never reaches LightGBM's loader."""
    from pyml.core import _lgbm

    def booster(_: bytes) -> None:
        raise AssertionError("LightGBM was called")

    monkeypatch.setattr(_lgbm, "Booster", booster)
    _refused(_set(texts["regression"], 0, b"left_child", b"40 -1 -2 -3 -4"))


# Damage that crashed LightGBM 4.x (abort, segfault or hang) when it was loaded with its C
# API and asked for predictions and contributions, before pyml checked the text.
CRASHERS = {
    "cut inside a tree": lambda t: t[: t.rindex(b"split_feature=") + 9],
    "split_feature out of range": _set_values(0, b"split_feature", _at(0, b"100000000")),
    "left_child out of range": _set_values(0, b"left_child", _at(0, b"1000000")),
    "loop": _loop,
    "num_leaves 0": lambda t: _set(t, 0, b"num_leaves", b"0"),
    "num_tree_per_iteration 0": lambda t: _header(t, b"num_tree_per_iteration", b"0"),
    "tree_sizes off by one": _size_off_by_one,
}

_UNCHECKED = """
import sys
import numpy as np
from pyml.core._lgbm import Booster
booster = Booster(sys.stdin.buffer.read())
X = np.random.RandomState(0).rand(100, booster.num_features)
booster.predict(X)
booster.predict(X, contrib=True)
"""


@pytest.mark.slow
def test_the_damage_does_crash_lightgbm_unchecked(texts: dict[str, bytes]) -> None:
    """The refusals matter: without the checks, these files kill the process (LightGBM raises
    on an OpenMP thread and aborts, reads out of bounds, or loops). Run in subprocesses; each
    must end by a signal, a timeout (a hang) or at least an error, and never load cleanly."""

    def no_core() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    killed = []
    for name, edit in CRASHERS.items():
        damaged = edit(texts["regression"])
        with pytest.raises(DataCorrupted):
            _validate.lightgbm_text(damaged)
        try:
            run = subprocess.run(
                [sys.executable, "-c", _UNCHECKED],
                input=damaged,
                capture_output=True,
                timeout=15,
                cwd=ROOT,
                preexec_fn=no_core,
            )
        except subprocess.TimeoutExpired:
            killed.append(name)
            continue
        if run.returncode < 0:
            killed.append(name)
        assert run.returncode != 0, f"{name}: LightGBM loaded it and predicted"
    assert len(killed) >= 5, f"only {killed} crashed LightGBM"


# -- scikit-learn --------------------------------------------------------------------------


def _sklearn_models(data: dict[str, np.ndarray]) -> dict[str, Any]:
    X, y, labels = data["X"], data["y"], data["multi"]
    return {
        "decision_tree": DecisionTreeClassifier(random_state=0).fit(X, labels),
        "random_forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(X, labels),
        "gradient_boosting": GradientBoostingClassifier(n_estimators=3, random_state=0).fit(
            X, labels
        ),
        "hist_gradient_boosting": HistGradientBoostingRegressor(max_iter=3).fit(X, y),
        "hist_gradient_boosting_classes": HistGradientBoostingClassifier(max_iter=3).fit(X, labels),
        "knn_kd_tree": KNeighborsClassifier(algorithm="kd_tree").fit(X, labels),
        "knn_ball_tree": KNeighborsRegressor(algorithm="ball_tree").fit(X, y),
        "knn_minkowski": KNeighborsRegressor(algorithm="ball_tree", p=3).fit(X, y),
        "pipeline": make_pipeline(StandardScaler(), DecisionTreeRegressor(max_depth=3)).fit(X, y),
        "svm": SVC().fit(X, labels),
    }


def test_every_sklearn_model_is_tested(data) -> None:
    assert sorted(_sklearn_models(data)) == sorted(SKLEARN_NAMES)


SKLEARN_NAMES = [
    "decision_tree",
    "random_forest",
    "gradient_boosting",
    "hist_gradient_boosting",
    "hist_gradient_boosting_classes",
    "knn_kd_tree",
    "knn_ball_tree",
    "knn_minkowski",
    "pipeline",
    "svm",
]


@pytest.fixture(scope="module")
def sklearn_models(data: dict[str, np.ndarray]) -> dict[str, Any]:
    return _sklearn_models(data)


@pytest.mark.parametrize("name", SKLEARN_NAMES)
def test_sklearn_models_are_accepted_and_round_trip(data, sklearn_models, name: str) -> None:
    model = sklearn_models[name]
    _, (loaded,), _ = _artifacts.load(_rows(_artifacts.dump("sklearn", model)))
    np.testing.assert_array_equal(loaded.predict(data["X"]), model.predict(data["X"]))


def _copy(model: Any) -> Any:
    return skops.io.loads(
        skops.io.dumps(model), trusted=skops.io.get_untrusted_types(data=skops.io.dumps(model))
    )


def _tree_with(tree: Any, change: Callable[[dict[str, Any]], None]) -> Any:
    """A copy of a sklearn Tree whose state was changed by ``change``."""
    cls, args, state = tree.__reduce__()
    state = dict(state, nodes=state["nodes"].copy(), values=state["values"].copy())
    change(state)
    new = cls(*args)
    new.__setstate__(state)
    return new


def _set_node(field: str, node: int, value: int) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        state["nodes"][field][node] = value

    return change


def _damaged_tree(change: Callable[[dict[str, Any]], None]) -> Callable[[Any], Any]:
    def damage(model: Any) -> Any:
        model = _copy(model)
        model.tree_ = _tree_with(model.tree_, change)
        return model

    return damage


def _damaged_forest_tree(change: Callable[[dict[str, Any]], None]) -> Callable[[Any], Any]:
    def damage(model: Any) -> Any:
        model = _copy(model)
        member = model.estimators_[2]
        member.tree_ = _tree_with(member.tree_, change)
        return model

    return damage


def _inner_node(model: Any) -> int:
    return int(np.flatnonzero(model.tree_.children_left != -1)[1])


def _damaged_predictor(field: str, value: int) -> Callable[[Any], Any]:
    def damage(model: Any) -> Any:
        model = _copy(model)
        nodes = model._predictors[1][0].nodes
        node = int(np.flatnonzero(nodes["is_leaf"] == 0)[0])
        nodes[field][node] = value
        return model

    return damage


def _damaged_binary_tree(position: int, change: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def damage(model: Any) -> Any:
        model = _copy(model)
        tree = model._tree
        state = list(tree.__getstate__())
        state[position] = change(state[position])
        cls: Any = type(tree)  # a Cython class of scikit-learn's, without type information
        new = cls.__new__(cls)
        new.__setstate__(tuple(state))
        model._tree = new
        return model

    return damage


def _swap_first(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array[0] = array[1]
    return array


def _non_leaf_last(node_data: np.ndarray) -> np.ndarray:
    node_data = node_data.copy()
    node_data["is_leaf"][-1] = 0
    return node_data


def _svm_intercept(model: Any) -> Any:
    model = _copy(model)
    model._intercept_ = model._intercept_[:1]
    return model


def _gb_stages(model: Any) -> Any:
    model = _copy(model)
    model.estimators_ = np.concatenate([model.estimators_, model.estimators_[:, :1]], axis=1)
    return model


SKLEARN_DAMAGE: list[tuple[str, str, Callable[[Any], Any], str]] = [
    (
        "decision_tree",
        "child out of range",
        _damaged_tree(_set_node("left_child", 0, 10_000)),
        r"the model.tree_: children_left\[0\] = 10000 is out of range \(the tree has \d+ nodes",
    ),
    (
        "decision_tree",
        "child before its parent",
        lambda m: _damaged_tree(_set_node("right_child", _inner_node(m), 1))(m),
        r"children_right\[\d+\] = 1 is out of range",
    ),
    (
        "decision_tree",
        "one child",
        _damaged_tree(_set_node("right_child", 0, -1)),
        r"node 0 has one child",
    ),
    (
        "decision_tree",
        "two parents",
        _damaged_tree(
            lambda s: s["nodes"]["right_child"].__setitem__(0, s["nodes"]["left_child"][0])
        ),
        r"node \d+ is the child of 2 nodes|out of range",
    ),
    (
        "decision_tree",
        "feature out of range",
        _damaged_tree(_set_node("feature", 0, 4)),
        r"feature\[0\] = 4 is out of range \(the tree has 4 features\).",
    ),
    (
        "decision_tree",
        "max_depth",
        _damaged_tree(lambda s: s.__setitem__("max_depth", 1)),
        r"has max_depth = 1, but its depth is \d+.",
    ),
    (
        "decision_tree",
        "no nodes",
        _damaged_tree(
            lambda s: s.update(
                nodes=s["nodes"][:0].copy(), values=s["values"][:0].copy(), node_count=0
            )
        ),
        r"the model.tree_ has node_count = 0 for 0 stored nodes.",
    ),
    (
        "random_forest",
        "a member's child",
        _damaged_forest_tree(_set_node("left_child", 0, -5)),
        r"the model.estimators_\[2\].tree_: children_left\[0\] = -5 is out of range",
    ),
    (
        "gradient_boosting",
        "stages wider than the classes",
        _gb_stages,
        r"estimators_ has shape \(3, 4\) for 3 trees per iteration.",
    ),
    (
        "hist_gradient_boosting",
        "predictor child",
        _damaged_predictor("left", 10_000),
        r"_predictors\[1\]\[0\]: nodes\[0\].left = 10000 is out of range",
    ),
    (
        "hist_gradient_boosting",
        "predictor loop",
        _damaged_predictor("right", 0),
        r"_predictors\[1\]\[0\]: nodes\[0\].right = 0 is out of range",
    ),
    (
        "hist_gradient_boosting",
        "predictor feature",
        _damaged_predictor("feature_idx", 9),
        r"nodes\[0\].feature_idx = 9 is out of range \(the estimator has 4 features\).",
    ),
    (
        "hist_gradient_boosting",
        "predictor categorical",
        _damaged_predictor("is_categorical", 1),
        r"nodes\[0\] is a categorical split on a feature that is not categorical",
    ),
    (
        "knn_kd_tree",
        "idx_array",
        _damaged_binary_tree(1, _swap_first),
        r"the model._tree: idx_array is not a permutation of the 400 samples.",
    ),
    (
        "knn_ball_tree",
        "node without children",
        _damaged_binary_tree(2, _non_leaf_last),
        r"the model._tree: node \d+ is not a leaf but has no children.",
    ),
    (
        "knn_kd_tree",
        "node bounds",
        _damaged_binary_tree(3, lambda b: b[:, :-1].copy()),
        r"the model._tree: node_bounds has shape",
    ),
    ("svm", "intercepts", _svm_intercept, r"the support vector arrays do not match"),
]


@pytest.mark.parametrize(
    ("name", "what", "damage", "expected"),
    SKLEARN_DAMAGE,
    ids=[f"{name}-{what}" for name, what, _, _ in SKLEARN_DAMAGE],
)
def test_damaged_sklearn_is_refused(
    sklearn_models, name: str, what: str, damage: Callable[[Any], Any], expected: str
) -> None:
    blob = skops.io.dumps(damage(sklearn_models[name]))
    error = _refused(blob, "skops")
    assert str(error) == INVALID_SKOPS
    assert re.search(expected, error.detail or ""), error.detail


def test_sklearn_check_finds_trees_everywhere(sklearn_models) -> None:
    """Inside pipelines, lists, dicts and object arrays (gradient boosting's stages)."""
    bad = _damaged_tree(_set_node("feature", 0, 99))(sklearn_models["decision_tree"])
    for holder, path in (
        (make_pipeline(StandardScaler(), bad), r"the model.steps\[1\]\[1\].tree_"),
        ({"model": [bad]}, r"the model\['model'\]\[0\].tree_"),
        (np.array([[bad]], dtype=object), r"the model\[0\].tree_"),
    ):
        with pytest.raises(DataCorrupted, match="skops") as info:
            _validate.sklearn_object(holder)
        assert re.search(path, info.value.detail or ""), info.value.detail


def test_categorical_hist_gradient_boosting_is_accepted(data) -> None:
    """Checked in memory: skops refuses the categorical preprocessing's types anyway."""
    model = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]).fit(
        data["Xc"], data["yc"]
    )
    assert any(p.nodes["is_categorical"].any() for (p,) in model._predictors)
    _validate.sklearn_object(model)
    (predictor,) = model._predictors[0]
    node = int(np.flatnonzero(predictor.nodes["is_categorical"])[0])
    predictor.nodes["bitset_idx"][node] = 50
    with pytest.raises(DataCorrupted) as info:
        _validate.sklearn_object(model)
    assert "bitset_idx out of range" in (info.value.detail or "")


def test_tree_state_checks_of_sklearn_are_not_repeated(sklearn_models) -> None:
    """Tree.__setstate__ already refuses a values array of the wrong shape: that is left to
    scikit-learn (and still ends as XX001)."""
    model = _copy(sklearn_models["decision_tree"])
    with pytest.raises(ValueError, match="Wrong shape for value array"):
        _tree_with(model.tree_, lambda s: s.__setitem__("values", s["values"][:-1].copy()))
    assert isinstance(model.tree_, Tree)
