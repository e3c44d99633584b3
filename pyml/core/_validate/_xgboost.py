"""XGBoost's JSON model format, read completely before xgboost sees it."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from pyml.core._validate._common import (
    INT32_MAX,
    MAX_DEPTH,
    Invalid,
    refuse,
    show,
)

# -- XGBoost JSON --------------------------------------------------------------------------

XGBOOST = "xgboost-json"

# What XGBoost (2 and 3) writes for a tree, and nothing else
_XGB_TREE_KEYS = frozenset(
    {
        "base_weights",
        "categories",
        "categories_nodes",
        "categories_segments",
        "categories_sizes",
        "default_left",
        "id",
        "left_children",
        "loss_changes",
        "parents",
        "right_children",
        "split_conditions",
        "split_indices",
        "split_type",
        "sum_hessian",
        "tree_param",
    }
)
_XGB_NODE_INTS = (
    "left_children",
    "right_children",
    "parents",
    "split_indices",
    "default_left",
    "split_type",
)
_XGB_NODE_FLOATS = ("split_conditions", "base_weights", "loss_changes", "sum_hessian")
_XGB_ROOT_PARENTS = (-1, INT32_MAX)  # XGBoost writes the root's parent as 2**31 - 1
_XGB_MAX_CATEGORY = 2**24  # XGBoost's bound: larger categories do not survive a float
_XGB_FEATURE_TYPES = frozenset({"q", "c", "int", "float", "i"})


def xgboost_json(data: bytes) -> None:
    """Refuse (DataCorrupted) an XGBoost JSON model (``save_raw("json")``) that is not a
    well-formed tree, DART or linear booster of the shape XGBoost itself writes.

    XGBoost's loader checks the array lengths, but its predictor trusts the rest: it walks
    from a node to ``left_children[node] + 1`` for the right branch, reads the feature row at
    ``split_indices``, the category bitsets at the offsets of the categorical splits, and the
    loader itself follows ``parents`` unchecked. Pure Python: xgboost is not imported."""
    try:
        _XGBoostJSON(data).check()
    except Invalid as exc:
        raise refuse(XGBOOST, exc) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [key for key, _ in pairs]
        key = next(key for key in keys if keys.count(key) > 1)
        # XGBoost's parser and Python's could keep different values: neither is trusted
        raise Invalid(f'The key "{key}" appears twice in one object.')
    return result


def _object(
    value: Any, what: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{what} is not an object.")
    for key in required:
        if key not in value:
            raise Invalid(f'{what} has no "{key}".')
    extra = sorted(set(value) - set(required) - set(optional))
    if extra:
        raise Invalid(f"{what} has the unexpected key {show(extra[0])}.")
    return value


def _param_int(params: dict[str, Any], key: str, what: str, low: int, high: int) -> int:
    """An integer parameter, which XGBoost writes as a decimal string."""
    value = params[key]
    if not isinstance(value, str) or not re.fullmatch(r"-?[0-9]{1,10}", value):
        raise Invalid(f'{what}: "{key}" = {show(str(value))} is not an integer in a string.')
    number = int(value)
    if not low <= number <= high:
        raise Invalid(f'{what}: "{key}" = {number} is out of range ({low} to {high}).')
    return number


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_array(value: Any, what: str, low: int, high: int) -> np.ndarray:
    if not isinstance(value, list) or not all(map(_is_int, value)):
        raise Invalid(f"{what} is not an array of integers.")
    array = np.array([v if low <= v <= high else low - 1 for v in value], dtype=np.int64)
    bad = np.flatnonzero(array < low)
    if bad.size:
        raise Invalid(f"{what}[{bad[0]}] = {value[bad[0]]} is out of range ({low} to {high}).")
    return array


def _float_array(value: Any, what: str) -> None:
    if not isinstance(value, list) or not all(map(_is_number, value)):
        raise Invalid(f"{what} is not an array of numbers.")


_NUMBER = re.compile(
    r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|-?inf|nan", re.IGNORECASE
)


class _XGBoostJSON:
    def __init__(self, data: bytes):
        self.data = data
        self.num_feature = 0
        self.groups = 1
        self.categorical_features: set[int] = set()

    def check(self) -> None:
        data = self.data
        if not data.startswith(b'{"'):
            # XGBoost reads a buffer that does not start so as Universal Binary JSON
            raise Invalid("The file does not start with '{\"' as XGBoost's JSON does.")
        try:
            document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Invalid(f"The file is not JSON: {exc}.") from None
        except RecursionError:
            raise Invalid("The file is JSON nested too deeply.") from None
        top = _object(document, "The document", ("learner", "version"))
        version = top["version"]
        if (
            not isinstance(version, list)
            or len(version) != 3
            or not all(_is_int(v) and 0 <= v < 1000 for v in version)
        ):
            raise Invalid("The version is not three small integers.")
        learner = _object(
            top["learner"],
            "The learner",
            ("gradient_booster", "learner_model_param", "objective"),
            ("attributes", "feature_names", "feature_types"),
        )
        self._learner_params(learner)
        booster = learner["gradient_booster"]
        name = booster.get("name") if isinstance(booster, dict) else None
        if name == "gbtree":
            _object(booster, "The gradient booster", ("name", "model"))
            self._trees(booster["model"])
        elif name == "dart":
            _object(booster, "The DART booster", ("name", "gbtree", "weight_drop"))
            inner = _object(booster["gbtree"], "The DART booster's gbtree", ("name", "model"))
            if inner["name"] != "gbtree":
                raise Invalid('The DART booster\'s gbtree is not named "gbtree".')
            count = self._trees(inner["model"])
            weights = booster["weight_drop"]
            _float_array(weights, "weight_drop")
            if len(weights) != count:  # the predictor reads one weight per tree
                raise Invalid(f"weight_drop has {len(weights)} values for {count} trees.")
        elif name == "gblinear":
            _object(booster, "The linear booster", ("name", "model"))
            model = _object(booster["model"], "The linear model", ("weights",), ("boosted_rounds",))
            weights = model["weights"]
            _float_array(weights, "The linear model's weights")
            expected = (self.num_feature + 1) * self.groups
            if len(weights) != expected:  # read as a (features + bias) x groups matrix
                raise Invalid(
                    f"The linear model has {len(weights)} weights instead of "
                    f"(num_feature + 1) x {self.groups} = {expected}."
                )
            if "boosted_rounds" in model and not (
                _is_int(model["boosted_rounds"]) and model["boosted_rounds"] >= 0
            ):
                raise Invalid("boosted_rounds is not a count.")
        else:
            raise Invalid(
                f"The gradient booster {show(str(name))} is not gbtree, dart or gblinear."
            )

    def _learner_params(self, learner: dict[str, Any]) -> None:
        params = _object(
            learner["learner_model_param"],
            "learner_model_param",
            ("base_score", "num_class", "num_feature"),
            ("boost_from_average", "num_target"),
        )
        what = "learner_model_param"
        self.num_feature = _param_int(params, "num_feature", what, 1, INT32_MAX - 1)
        num_class = _param_int(params, "num_class", what, 0, 1_000_000)
        if num_class == 1:
            raise Invalid(
                'learner_model_param: "num_class" is 1 (XGBoost writes 0 for one output).'
            )
        if "num_target" in params:
            # pyml fits one model per target: a multi-target booster is none of its own
            _param_int(params, "num_target", what, 1, 1)
        if "boost_from_average" in params:
            _param_int(params, "boost_from_average", what, 0, 1)
        self.groups = max(num_class, 1)
        score = params["base_score"]
        values = (
            score[1:-1].split(",")
            if isinstance(score, str) and score.startswith("[") and score.endswith("]")
            else [score]
        )
        if not all(isinstance(v, str) and _NUMBER.fullmatch(v) for v in values):
            raise Invalid(f"base_score {show(str(score))} is not a number or a list of numbers.")
        if len(values) not in (1, self.groups):
            raise Invalid(f"base_score has {len(values)} values for {self.groups} outputs.")
        for key in ("feature_names", "feature_types"):
            names = learner.get(key, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise Invalid(f"{key} is not an array of strings.")
            if names and len(names) != self.num_feature:
                raise Invalid(
                    f"{key} has {len(names)} entries for num_feature = {self.num_feature}."
                )
        types = learner.get("feature_types", [])
        unknown = [t for t in types if t not in _XGB_FEATURE_TYPES]
        if unknown:
            raise Invalid(f"feature_types has the unknown type {show(unknown[0])}.")
        self.categorical_features = {i for i, t in enumerate(types) if t == "c"}
        attributes = learner.get("attributes", {})
        if not isinstance(attributes, dict) or not all(
            isinstance(v, str) for v in attributes.values()
        ):
            raise Invalid("attributes is not an object of strings.")
        objective = learner["objective"]
        if not isinstance(objective, dict) or not isinstance(objective.get("name"), str):
            raise Invalid("The objective has no name.")

    def _trees(self, model: Any) -> int:
        """Check a gbtree model; its number of trees."""
        model = _object(
            model,
            "The tree model",
            ("gbtree_model_param", "tree_info", "trees"),
            ("cats", "iteration_indptr"),
        )
        params = _object(
            model["gbtree_model_param"], "gbtree_model_param", ("num_parallel_tree", "num_trees")
        )
        count = _param_int(params, "num_trees", "gbtree_model_param", 0, INT32_MAX)
        parallel = _param_int(params, "num_parallel_tree", "gbtree_model_param", 1, INT32_MAX)
        trees = model["trees"]
        if not isinstance(trees, list) or len(trees) != count:
            raise Invalid(
                f"num_trees = {count}, but the model has "
                f"{len(trees) if isinstance(trees, list) else 'no array of'} trees."
            )
        info = _int_array(model["tree_info"], "tree_info", 0, self.groups - 1)
        if info.size != count:
            raise Invalid(f"tree_info has {info.size} values for {count} trees.")
        if "iteration_indptr" in model:
            # the trees of each boosting round: [indptr[i], indptr[i + 1])
            indptr = _int_array(model["iteration_indptr"], "iteration_indptr", 0, count)
            if (
                indptr.size == 0
                or indptr[0] != 0
                or indptr[-1] != count
                or (np.diff(indptr) <= 0).any()
            ):
                raise Invalid(f"iteration_indptr does not go up from 0 to the {count} trees.")
            if (np.diff(indptr) % parallel).any() and parallel > 1:
                raise Invalid(
                    f"iteration_indptr has a round that is not a multiple of "
                    f"num_parallel_tree = {parallel} trees."
                )
        if "cats" in model:
            # XGBoost 3's recoding of string categories (pandas or Arrow input): pyml passes
            # numbers, so it is empty
            cats = _object(model["cats"], "cats", ("enc", "feature_segments", "sorted_idx"))
            if any(cats[key] != [] for key in cats):
                raise Invalid("cats is not empty: pyml passes no string categories.")
        for i, tree in enumerate(trees):
            self._tree(i, tree)
        return count

    def _tree(self, i: int, tree: Any) -> None:
        where = f"Tree {i}"
        if not isinstance(tree, dict):
            raise Invalid(f"{where} is not an object.")
        missing = sorted(_XGB_TREE_KEYS - set(tree))
        if missing:
            raise Invalid(f'{where} has no "{missing[0]}".')
        extra = sorted(set(tree) - _XGB_TREE_KEYS)
        if extra:
            raise Invalid(f"{where} has the unexpected key {show(extra[0])}.")
        if tree["id"] != i or not _is_int(tree["id"]):
            raise Invalid(f'{where} has "id" = {show(str(tree["id"]))}.')
        params = _object(
            tree["tree_param"],
            f"{where}: tree_param",
            ("num_feature", "num_nodes", "size_leaf_vector"),
            ("num_deleted",),
        )
        what = f"{where}: tree_param"
        n = _param_int(params, "num_nodes", what, 1, INT32_MAX)
        features = _param_int(params, "num_feature", what, 0, INT32_MAX)
        if features != self.num_feature:
            raise Invalid(
                f"{what}: num_feature = {features} differs from the learner's {self.num_feature}."
            )
        # a vector leaf (a multi-target tree) is not a model pyml makes
        _param_int(params, "size_leaf_vector", what, 0, 1)
        deleted_count = (
            _param_int(params, "num_deleted", what, 0, n - 1) if ("num_deleted" in params) else 0
        )
        arrays = {}
        for key in _XGB_NODE_INTS:
            value = tree[key]
            if not isinstance(value, list) or len(value) != n:
                size = len(value) if isinstance(value, list) else "no array of"
                raise Invalid(f"{where}: {key} has {size} values instead of num_nodes = {n}.")
            low, high = (
                (0, 1)
                if key in ("default_left", "split_type")
                else (0 if key == "split_indices" else -1, INT32_MAX)
            )
            arrays[key] = _int_array(value, f"{where}: {key}", low, high)
        for key in _XGB_NODE_FLOATS:
            value = tree[key]
            if not isinstance(value, list) or len(value) != n:
                size = len(value) if isinstance(value, list) else "no array of"
                raise Invalid(f"{where}: {key} has {size} values instead of num_nodes = {n}.")
            _float_array(value, f"{where}: {key}")
        left, right = arrays["left_children"], arrays["right_children"]
        parents, split = arrays["parents"], arrays["split_indices"]
        index = np.arange(n)
        leaf = left == -1
        bad = np.flatnonzero(leaf & (right != -1))
        if bad.size:
            raise Invalid(
                f"{where}: node {bad[0]} has right_children = {right[bad[0]]} but no left child."
            )
        bad = np.flatnonzero(~leaf & ((left < 1) | (left >= n - 1)))
        if bad.size:
            raise Invalid(
                f"{where}: left_children[{bad[0]}] = {left[bad[0]]} is out of range "
                f"(the tree has {n} nodes)."
            )
        bad = np.flatnonzero(~leaf & (right != left + 1))
        if bad.size:
            # the predictor goes right to left_children + 1
            raise Invalid(
                f"{where}: right_children[{bad[0]}] = {right[bad[0]]} is not "
                f"left_children[{bad[0]}] + 1 = {left[bad[0]] + 1}."
            )
        # a node pruned away (tree_method "exact" with gamma): XGBoost marks it with the
        # largest split index and default_left, and leaves it in the array, unreachable
        deleted = (split == INT32_MAX) & (arrays["default_left"] == 1)
        if int(deleted.sum()) != deleted_count:
            raise Invalid(
                f"{where}: tree_param: num_deleted = {deleted_count}, but "
                f"{int(deleted.sum())} nodes are marked deleted."
            )
        bad = np.flatnonzero(deleted & ~leaf)
        if bad.size:
            raise Invalid(f"{where}: node {bad[0]} is marked deleted but has children.")
        children = np.concatenate((left[~leaf], right[~leaf]))
        count = np.bincount(children, minlength=n)
        count[0] += 1  # the root
        bad = np.flatnonzero(count != np.where(deleted, 0, 1))
        if bad.size:
            node = int(bad[0])
            state = " deleted" if deleted[node] else ""
            raise Invalid(
                f"{where}:{state} node {node} is the child of {count[node] - (node == 0)} nodes."
            )
        expected = np.full(n, -1, dtype=np.int64)
        expected[left[~leaf]] = index[~leaf]
        expected[right[~leaf]] = index[~leaf]
        if parents[0] not in _XGB_ROOT_PARENTS:
            raise Invalid(f"{where}: parents[0] = {parents[0]}, but node 0 is the root.")
        # the loader reads the parent of every node, deleted ones too (theirs is the node
        # they were pruned from)
        bad = np.flatnonzero(np.where(deleted, parents >= n, parents != expected)[1:]) + 1
        if bad.size:
            node = int(bad[0])
            if deleted[node]:
                raise Invalid(
                    f"{where}: parents[{node}] = {parents[node]} is out of range "
                    f"(the tree has {n} nodes)."
                )
            raise Invalid(
                f"{where}: parents[{node}] = {parents[node]}, but node {node} is a "
                f"child of node {expected[node]}."
            )
        # one parent each: a node the root does not reach is on a cycle
        reached, level, depth = 0, np.zeros(1, dtype=np.int64), 0
        while level.size:
            depth += 1
            if depth > MAX_DEPTH:
                raise Invalid(f"{where} is deeper than {MAX_DEPTH} levels.")
            reached += level.size
            level = level[~leaf[level]]
            level = np.concatenate((left[level], right[level]))
        if reached != n - deleted_count:
            raise Invalid(
                f"{where}: {n - deleted_count - reached} of its nodes cannot be "
                "reached from the root (the children form a cycle)."
            )
        bad = np.flatnonzero(~leaf & (split >= self.num_feature))
        if bad.size:
            raise Invalid(
                f"{where}: split_indices[{bad[0]}] = {split[bad[0]]} is out of range "
                f"(num_feature = {self.num_feature})."
            )
        self._categories(where, tree, arrays["split_type"], leaf, split)

    def _categories(
        self,
        where: str,
        tree: dict[str, Any],
        split_type: np.ndarray,
        leaf: np.ndarray,
        split: np.ndarray,
    ) -> None:
        bad = np.flatnonzero(leaf & (split_type != 0))
        if bad.size:
            raise Invalid(f"{where}: node {bad[0]} is a leaf with a categorical split_type.")
        if self.categorical_features:
            bad = np.flatnonzero(
                (split_type == 1) & ~np.isin(split, list(self.categorical_features))
            )
        else:
            bad = np.flatnonzero(split_type == 1)
        if bad.size:
            raise Invalid(
                f"{where}: node {bad[0]} is a categorical split on feature "
                f"{split[bad[0]]}, which feature_types does not make categorical."
            )
        nodes = _int_array(tree["categories_nodes"], f"{where}: categories_nodes", 0, INT32_MAX)
        if not np.array_equal(nodes, np.flatnonzero(split_type == 1)):
            raise Invalid(
                f"{where}: categories_nodes is not the list of its categorical splits, in order."
            )
        k = nodes.size
        categories = _int_array(
            tree["categories"], f"{where}: categories", 0, _XGB_MAX_CATEGORY - 1
        )
        segments = _int_array(
            tree["categories_segments"], f"{where}: categories_segments", 0, categories.size
        )
        sizes = _int_array(
            tree["categories_sizes"], f"{where}: categories_sizes", 1, categories.size
        )
        if segments.size != k or sizes.size != k:
            raise Invalid(
                f"{where}: categories_segments and categories_sizes have "
                f"{segments.size} and {sizes.size} values for {k} categorical "
                "splits."
            )
        starts = np.concatenate(([0], np.cumsum(sizes)))
        if not np.array_equal(segments, starts[:-1]) or starts[-1] != categories.size:
            raise Invalid(
                f"{where}: categories_segments and categories_sizes do not cut the "
                f"{categories.size} categories into consecutive lists."
            )
        for node, start, end in zip(nodes, starts[:-1], starts[1:], strict=True):
            if (np.diff(categories[start:end]) <= 0).any():
                raise Invalid(
                    f"{where}: the categories of node {node} are not in increasing order."
                )
