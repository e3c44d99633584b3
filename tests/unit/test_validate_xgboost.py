"""Unit tests for pyml.core._validate.xgboost_json and the catboost probe of pyml.core.artifacts.

The fixtures are real XGBoost models, saved as pyml saves them (``save_raw("json")``) by
tests/unit/fixtures/make_xgboost_fixtures.py. xgboost is not needed: each kind of damage is
applied to a fixture's JSON and must be refused with XX001 and a detail naming the place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyml.core import _validate, artifacts
from pyml.errors import DataCorrupted

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = (
    "xgb_regressor",
    "xgb_binary",
    "xgb_multiclass",
    "xgbrf_regressor",
    "xgb_dart",
    "xgb_categorical",
    "xgb_linear",
    "xgb_exact_pruned",
)


def _fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def _doc(name: str) -> dict[str, Any]:
    return json.loads(_fixture(name))


def _refused(data: bytes) -> str:
    with pytest.raises(DataCorrupted) as info:
        _validate.xgboost_json(data)
    assert info.value.sqlstate == "XX001"
    assert info.value.message == 'model artifact is not a valid "xgboost-json" file'
    return str(info.value.detail)


def test_every_fixture_is_listed() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_real_models_are_accepted(name: str) -> None:
    _validate.xgboost_json(_fixture(name))


def test_the_fixtures_cover_what_the_checks_read() -> None:
    """Multiclass tree_info, random forest rounds, DART weights, categorical splits, linear."""
    multi = _doc("xgb_multiclass")["learner"]["gradient_booster"]["model"]
    assert sorted(set(multi["tree_info"])) == [0, 1, 2]
    rf = _doc("xgbrf_regressor")["learner"]["gradient_booster"]["model"]
    assert rf["gbtree_model_param"]["num_parallel_tree"] == "3"
    assert "weight_drop" in _doc("xgb_dart")["learner"]["gradient_booster"]
    cat = _doc("xgb_categorical")["learner"]["gradient_booster"]["model"]["trees"]
    assert any(tree["categories_nodes"] for tree in cat)
    assert _doc("xgb_linear")["learner"]["gradient_booster"]["name"] == "gblinear"
    pruned = _tree(_doc("xgb_exact_pruned"), 1)
    assert pruned["tree_param"]["num_deleted"] == "2"
    assert [pruned["split_indices"][i] for i in (15, 16)] == [2**31 - 1] * 2
    # missing values: splits send them both ways
    trees = _doc("xgb_regressor")["learner"]["gradient_booster"]["model"]["trees"]
    sides = {
        side
        for tree in trees
        for side, left in zip(tree["default_left"], tree["left_children"], strict=True)
        if left != -1
    }
    assert sides == {0, 1}


def _tree(doc: dict[str, Any], i: int = 0) -> dict[str, Any]:
    booster = doc["learner"]["gradient_booster"]
    model = booster["gbtree"]["model"] if "gbtree" in booster else booster["model"]
    return model["trees"][i]


def _model(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["learner"]["gradient_booster"]["model"]


def _set(
    path: Callable[[dict[str, Any]], Any], key: Any, value: Any
) -> Callable[[dict[str, Any]], None]:
    def damage(doc: dict[str, Any]) -> None:
        path(doc)[key] = value

    return damage


def _cycle(doc: dict[str, Any]) -> None:
    # node 1's children become 0 and ... : a left child pointing back at an ancestor
    tree = _tree(doc)
    tree["left_children"][1], tree["right_children"][1] = 1, 2


def _grandchild_loop(doc: dict[str, Any]) -> None:
    # nodes 3 and 4 (leaves of node 1) detached; node 3 and 4 made the children of node 3
    tree = _tree(doc)
    tree["left_children"][1] = tree["right_children"][1] = -1
    tree["left_children"][3], tree["right_children"][3] = 3, 4
    tree["split_indices"][1] = 0


def _drop_last(key: str) -> Callable[[dict[str, Any]], None]:
    def damage(doc: dict[str, Any]) -> None:
        _tree(doc)[key].pop()

    return damage


def _mark_deleted(node: int) -> Callable[[dict[str, Any]], None]:
    """Mark a node of tree 1 deleted as XGBoost does, and count it in num_deleted."""

    def damage(doc: dict[str, Any]) -> None:
        tree = _tree(doc, 1)
        tree["split_indices"][node], tree["default_left"][node] = 2**31 - 1, 1
        param = tree["tree_param"]
        param["num_deleted"] = str(int(param["num_deleted"]) + 1)

    return damage


def _first_categorical(doc: dict[str, Any]) -> dict[str, Any]:
    trees = _model(doc)["trees"]
    return next(tree for tree in trees if tree["categories_nodes"])


DAMAGE: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    (
        "xgb_regressor",
        "child out of range",
        _set(lambda d: _tree(d)["left_children"], 0, 99),
        r"Tree 0: left_children\[0\] = 99 is out of range \(the tree has 7 nodes\)",
    ),
    (
        "xgb_regressor",
        "negative child",
        _set(lambda d: _tree(d)["left_children"], 0, -5),
        r"Tree 0: left_children\[0\] = -5 is out of range \(-1 to",
    ),
    (
        "xgb_regressor",
        "right child not left + 1",
        _set(lambda d: _tree(d)["right_children"], 0, 5),
        r"Tree 0: right_children\[0\] = 5 is not left_children\[0\] \+ 1 = 2",
    ),
    (
        "xgb_regressor",
        "a leaf with a right child",
        _set(lambda d: _tree(d)["right_children"], 3, 4),
        r"Tree 0: node 3 has right_children = 4 but no left child",
    ),
    ("xgb_regressor", "cycle", _cycle, r"Tree 0: node 1 is the child of 2 nodes"),
    (
        "xgb_regressor",
        "loop below a detached node",
        _grandchild_loop,
        r"Tree 0: node [34] is the child of|Tree 0: parents\[3\]",
    ),
    (
        "xgb_regressor",
        "parent wrong",
        _set(lambda d: _tree(d)["parents"], 3, 2),
        r"Tree 0: parents\[3\] = 2, but node 3 is a child of node 1",
    ),
    (
        "xgb_regressor",
        "parent out of range",
        _set(lambda d: _tree(d)["parents"], 3, 2**31 - 1),
        r"Tree 0: parents\[3\] = 2147483647, but node 3 is a child of node 1",
    ),
    (
        "xgb_regressor",
        "root parent",
        _set(lambda d: _tree(d)["parents"], 0, 0),
        r"Tree 0: parents\[0\] = 0, but node 0 is the root",
    ),
    (
        "xgb_regressor",
        "split index >= num_feature",
        _set(lambda d: _tree(d, 1)["split_indices"], 0, 4),
        r"Tree 1: split_indices\[0\] = 4 is out of range \(num_feature = 4\)",
    ),
    (
        "xgb_regressor",
        "split index negative",
        _set(lambda d: _tree(d)["split_indices"], 0, -1),
        r"Tree 0: split_indices\[0\] = -1 is out of range",
    ),
    (
        "xgb_regressor",
        "array length mismatch",
        _drop_last("split_conditions"),
        r"Tree 0: split_conditions has 6 values instead of num_nodes = 7",
    ),
    (
        "xgb_regressor",
        "parents too short",
        _drop_last("parents"),
        r"Tree 0: parents has 6 values instead of num_nodes = 7",
    ),
    (
        "xgb_regressor",
        "num_nodes mismatch",
        _set(lambda d: _tree(d)["tree_param"], "num_nodes", "9"),
        r"Tree 0: left_children has 7 values instead of num_nodes = 9",
    ),
    (
        "xgb_regressor",
        "num_nodes not a number",
        _set(lambda d: _tree(d)["tree_param"], "num_nodes", "7x"),
        r'Tree 0: tree_param: "num_nodes" = "7x" is not an integer in a string',
    ),
    (
        "xgb_regressor",
        "tree num_feature",
        _set(lambda d: _tree(d)["tree_param"], "num_feature", "9"),
        r"Tree 0: tree_param: num_feature = 9 differs from the learner's 4",
    ),
    (
        "xgb_regressor",
        "vector leaf",
        _set(lambda d: _tree(d)["tree_param"], "size_leaf_vector", "3"),
        r'Tree 0: tree_param: "size_leaf_vector" = 3 is out of range \(0 to 1\)',
    ),
    (
        "xgb_regressor",
        "num_deleted wrong",
        _set(lambda d: _tree(d)["tree_param"], "num_deleted", "1"),
        r"Tree 0: tree_param: num_deleted = 1, but 0 nodes are marked deleted",
    ),
    (
        "xgb_exact_pruned",
        "num_deleted lowered",
        _set(lambda d: _tree(d, 1)["tree_param"], "num_deleted", "1"),
        r"Tree 1: tree_param: num_deleted = 1, but 2 nodes are marked deleted",
    ),
    (
        "xgb_exact_pruned",
        "a deleted node reached",
        _mark_deleted(17),
        r"Tree 1: deleted node 17 is the child of 1 nodes",
    ),
    (
        "xgb_exact_pruned",
        "a deleted node with children",
        _mark_deleted(1),
        r"Tree 1: node 1 is marked deleted but has children",
    ),
    (
        "xgb_exact_pruned",
        "a deleted node's parent out of range",
        _set(lambda d: _tree(d, 1)["parents"], 15, 29),
        r"Tree 1: parents\[15\] = 29 is out of range \(the tree has 29 nodes\)",
    ),
    (
        "xgb_multiclass",
        "tree_info out of range",
        _set(lambda d: _model(d)["tree_info"], 4, 3),
        r"tree_info\[4\] = 3 is out of range \(0 to 2\)",
    ),
    (
        "xgb_regressor",
        "tree_info of a single output",
        _set(lambda d: _model(d)["tree_info"], 0, 1),
        r"tree_info\[0\] = 1 is out of range \(0 to 0\)",
    ),
    (
        "xgb_regressor",
        "tree_info too short",
        lambda d: _model(d)["tree_info"].pop(),
        r"tree_info has 2 values for 3 trees",
    ),
    (
        "xgb_regressor",
        "num_trees",
        _set(lambda d: _model(d)["gbtree_model_param"], "num_trees", "4"),
        r"num_trees = 4, but the model has 3 trees",
    ),
    (
        "xgb_regressor",
        "a tree missing",
        lambda d: _model(d)["trees"].pop(),
        r"num_trees = 3, but the model has 2 trees",
    ),
    (
        "xgb_regressor",
        "iteration_indptr",
        _set(lambda d: _model(d)["iteration_indptr"], 3, 7),
        r"iteration_indptr\[3\] = 7 is out of range \(0 to 3\)",
    ),
    (
        "xgb_multiclass",
        "num_class lowered",
        _set(lambda d: d["learner"]["learner_model_param"], "num_class", "2"),
        r"base_score has 3 values for 2 outputs",
    ),
    (
        "xgb_regressor",
        "num_feature lowered",
        _set(lambda d: d["learner"]["learner_model_param"], "num_feature", "2"),
        r"Tree 0: tree_param: num_feature = 4 differs from the learner's 2",
    ),
    (
        "xgb_regressor",
        "multi-target",
        _set(lambda d: d["learner"]["learner_model_param"], "num_target", "2"),
        r'learner_model_param: "num_target" = 2 is out of range \(1 to 1\)',
    ),
    (
        "xgb_regressor",
        "wrong type: float child",
        _set(lambda d: _tree(d)["left_children"], 0, 1.0),
        r"Tree 0: left_children is not an array of integers",
    ),
    (
        "xgb_regressor",
        "wrong type: boolean child",
        _set(lambda d: _tree(d)["left_children"], 0, True),
        r"Tree 0: left_children is not an array of integers",
    ),
    (
        "xgb_regressor",
        "wrong type: string condition",
        _set(lambda d: _tree(d)["split_conditions"], 0, "0.5"),
        r"Tree 0: split_conditions is not an array of numbers",
    ),
    (
        "xgb_regressor",
        "wrong type: array as object",
        _set(lambda d: _tree(d), "parents", {"0": 1}),
        r"Tree 0: parents has no array of values instead of num_nodes = 7",
    ),
    (
        "xgb_regressor",
        "wrong type: number as param",
        _set(lambda d: _tree(d)["tree_param"], "num_nodes", 7),
        r'Tree 0: tree_param: "num_nodes" = "7" is not an integer in a string',
    ),
    (
        "xgb_regressor",
        "wrong type: trees",
        _set(lambda d: _model(d), "trees", {}),
        r"num_trees = 3, but the model has no array of trees",
    ),
    (
        "xgb_regressor",
        "unknown key",
        _set(lambda d: _tree(d), "leaf_vector", []),
        r'Tree 0 has the unexpected key "leaf_vector"',
    ),
    (
        "xgb_regressor",
        "missing key",
        lambda d: _tree(d).pop("default_left"),
        r'Tree 0 has no "default_left"',
    ),
    (
        "xgb_regressor",
        "default_left not 0 or 1",
        _set(lambda d: _tree(d)["default_left"], 0, 2),
        r"Tree 0: default_left\[0\] = 2 is out of range \(0 to 1\)",
    ),
    ("xgb_regressor", "tree id", _set(lambda d: _tree(d, 1), "id", 0), r'Tree 1 has "id" = "0"'),
    (
        "xgb_regressor",
        "booster name",
        _set(lambda d: d["learner"]["gradient_booster"], "name", "gbtree2"),
        r'The gradient booster "gbtree2" is not gbtree, dart or gblinear',
    ),
    (
        "xgb_regressor",
        "string categories",
        _set(lambda d: _model(d)["cats"], "enc", [["a"]]),
        r"cats is not empty",
    ),
    (
        "xgb_dart",
        "weight_drop short",
        lambda d: d["learner"]["gradient_booster"]["weight_drop"].pop(),
        r"weight_drop has 2 values for 3 trees",
    ),
    (
        "xgb_linear",
        "linear weights short",
        lambda d: d["learner"]["gradient_booster"]["model"]["weights"].pop(),
        r"The linear model has 14 weights instead of \(num_feature \+ 1\) x 3 = 15",
    ),
    (
        "xgb_regressor",
        "categorical split on a numeric feature",
        _set(lambda d: _tree(d)["split_type"], 0, 1),
        r"Tree 0: node 0 is a categorical split on feature 0, which feature_types does not",
    ),
    (
        "xgb_categorical",
        "categorical leaf",
        _set(lambda d: _tree(d)["split_type"], 3, 1),
        r"Tree 0: node 3 is a leaf with a categorical split_type",
    ),
    (
        "xgb_categorical",
        "categories_nodes wrong",
        _set(lambda d: _first_categorical(d), "categories_nodes", [2]),
        r"categories_nodes is not the list of its categorical splits",
    ),
    (
        "xgb_categorical",
        "negative category",
        _set(lambda d: _first_categorical(d)["categories"], 0, -1),
        r"categories\[0\] = -1 is out of range \(0 to 16777215\)",
    ),
    (
        "xgb_categorical",
        "huge category",
        _set(lambda d: _first_categorical(d)["categories"], 0, 2**31 - 1),
        r"categories\[0\] = 2147483647 is out of range",
    ),
    (
        "xgb_categorical",
        "segment past the categories",
        _set(lambda d: _first_categorical(d)["categories_segments"], 0, 1),
        r"do not cut the 4 categories into consecutive lists",
    ),
    (
        "xgb_categorical",
        "size past the categories",
        _set(lambda d: _first_categorical(d)["categories_sizes"], 0, 9),
        r"categories_sizes\[0\] = 9 is out of range \(1 to 4\)",
    ),
    (
        "xgb_categorical",
        "empty category list",
        _set(lambda d: _first_categorical(d)["categories_sizes"], 0, 0),
        r"categories_sizes\[0\] = 0 is out of range",
    ),
    (
        "xgb_categorical",
        "categories not sorted",
        lambda d: _first_categorical(d)["categories"].reverse(),
        r"the categories of node 1 are not in increasing order",
    ),
    (
        "xgb_categorical",
        "feature_types short",
        lambda d: d["learner"]["feature_types"].pop(),
        r"feature_types has 3 entries for num_feature = 4",
    ),
]


def test_damage_names_are_unique() -> None:
    names = [(kind, what) for kind, what, _, _ in DAMAGE]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("kind", "what", "damage", "detail"),
    DAMAGE,
    ids=[f"{kind}: {what}" for kind, what, _, _ in DAMAGE],
)
def test_damaged_xgboost_is_refused(
    kind: str, what: str, damage: Callable[[dict[str, Any]], None], detail: str
) -> None:
    doc = _doc(kind)
    damage(doc)
    assert json.dumps(doc).encode() != _fixture(kind)
    assert re.search(detail, _refused(json.dumps(doc).encode())), what


BYTES: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("truncated", lambda b: b[: len(b) // 2], r"The file is not JSON"),
    ("empty", lambda b: b"", r"does not start with"),
    ("binary JSON", lambda b: b"{i" + b[2:], r"does not start with"),
    ("leading space", lambda b: b" " + b, r"does not start with"),
    ("invalid UTF-8", lambda b: b[:-1] + b"\xff}", r"The file is not JSON"),
    ("trailing garbage", lambda b: b + b"{}", r"The file is not JSON"),
    (
        "duplicate key",
        lambda b: b.replace(b'"version"', b'"version": [1, 0, 0], "version"'),
        r'The key "version" appears twice in one object',
    ),
    (
        "nested too deeply",
        lambda b: b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        r"nested too deeply",
    ),
    (
        "not an object",
        lambda b: b'{"learner": [], "version": [3, 2, 0]}',
        r"The learner is not an object",
    ),
    (
        "top-level key",
        lambda b: b[:-1] + b', "extra": 1}',
        r'The document has the unexpected key "extra"',
    ),
]


@pytest.mark.parametrize(("what", "damage", "detail"), BYTES, ids=[w for w, _, _ in BYTES])
def test_damaged_bytes_are_refused(
    what: str, damage: Callable[[bytes], bytes], detail: str
) -> None:
    assert re.search(detail, _refused(damage(_fixture("xgb_regressor")))), what


def _row(data: bytes) -> dict[str, Any]:
    return {
        "part": 0,
        "format": "xgboost-json",
        "data": data,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_the_check_runs_before_xgboost(monkeypatch) -> None:
    """pyml.core.artifacts.load refuses a damaged part before xgboost is imported (a module
    that fails on import stands in for xgboost: it must not be reached)."""
    import sys

    monkeypatch.setitem(sys.modules, "xgboost", None)  # import xgboost raises ImportError
    doc = _doc("xgb_regressor")
    _tree(doc)["left_children"][0] = 99
    with pytest.raises(DataCorrupted) as info:
        artifacts.load([_row(json.dumps(doc).encode())])
    assert "left_children[0] = 99" in str(info.value.detail)
    # an intact model passes the check and reaches the import
    with pytest.raises(DataCorrupted) as info:
        artifacts.load([_row(_fixture("xgb_regressor"))])
    assert "xgboost" in str(info.value.detail) and "left_children" not in str(info.value.detail)


# -- the catboost probe: a forked child ----------------------------------------------------


def test_a_probe_that_succeeds_passes() -> None:
    artifacts.survives_in_child(lambda: None, "catboost-cbm")


def test_a_probe_that_raises_is_left_to_the_loader() -> None:
    def probe() -> None:
        raise ValueError("not a model")

    artifacts.survives_in_child(probe, "catboost-cbm")  # the parent's load reports it


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL])
def test_a_probe_that_crashes_is_refused(sig: signal.Signals) -> None:
    with pytest.raises(DataCorrupted) as info:
        artifacts.survives_in_child(lambda: os.kill(os.getpid(), sig), "catboost-cbm")
    assert info.value.sqlstate == "XX001"
    assert info.value.message == 'model artifact is not a valid "catboost-cbm" file'
    assert info.value.detail == (
        f"Loading it and predicting a row crashed a child process ({sig.name})."
    )


def test_a_probe_that_hangs_is_refused() -> None:
    import time

    with pytest.raises(DataCorrupted) as info:
        artifacts.survives_in_child(lambda: time.sleep(30), "catboost-cbm", timeout=0.5)
    assert "took more than 0.5 seconds" in str(info.value.detail)
