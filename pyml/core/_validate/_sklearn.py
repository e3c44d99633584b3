"""The native structures of a loaded scikit-learn object graph."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from pyml.core._validate._common import (
    SKOPS,
    Invalid,
    refuse,
)

# -- scikit-learn objects (skops) ----------------------------------------------------------


def sklearn_object(obj: Any, fmt: str = SKOPS) -> None:
    """Refuse (DataCorrupted) a loaded scikit-learn object whose native structures scikit-learn's
    Cython code would index out of bounds: decision trees, histogram gradient boosting
    predictors, KD and ball trees, and the arrays of gradient boosting, SVMs and k-means that
    are read unchecked. What scikit-learn already checks when it loads or predicts is not
    repeated."""
    try:
        _SklearnObjects(obj).check()
    except Invalid as exc:
        raise refuse(fmt, exc) from None


# not walked into (a class, too: a parameter such as dtype=np.float64)
_SCALARS = (str, bytes, int, float, complex, bool, type(None), np.generic, type)


def _walk(root: Any) -> Iterator[tuple[str, Any]]:
    """Every object reachable from ``root`` (attributes, list/tuple/dict items, object array
    elements) once, with a path for messages."""
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("the model", root)]
    while stack:
        path, obj = stack.pop()
        if isinstance(obj, _SCALARS) or id(obj) in seen:
            continue
        seen.add(id(obj))
        yield path, obj
        children: Any
        if isinstance(obj, dict):
            children = ((f"{path}[{key!r}]", value) for key, value in obj.items())
        elif isinstance(obj, list | tuple):
            children = ((f"{path}[{i}]", value) for i, value in enumerate(obj))
        elif isinstance(obj, np.ndarray):
            if obj.dtype != object:
                continue
            children = ((f"{path}[{i}]", value) for i, value in enumerate(obj.ravel()))
        elif hasattr(obj, "__dict__"):
            children = ((f"{path}.{name}", value) for name, value in vars(obj).items())
        else:
            continue
        stack.extend(reversed(list(children)))


def _type_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


class _SklearnObjects:
    def __init__(self, root: Any):
        self.objects = list(_walk(root))

    def check(self) -> None:
        owned: set[int] = set()  # predictors checked with their estimator
        for path, obj in self.objects:
            kind = _NATIVE.get(_type_name(obj))
            if kind == "tree":
                _check_tree(path, obj)
            elif kind in ("kd_tree", "ball_tree"):
                _check_binary_tree(path, obj, kind == "kd_tree")
            elif hasattr(obj, "_predictors") and hasattr(obj, "_bin_mapper"):
                owned.update(_check_hist_gradient_boosting(path, obj))
        for path, obj in self.objects:
            if _NATIVE.get(_type_name(obj)) == "predictor" and id(obj) not in owned:
                raise Invalid(
                    f"{path} is a histogram gradient boosting predictor outside its estimator."
                )
            tree = getattr(obj, "tree_", None)
            if tree is not None and _NATIVE.get(_type_name(tree)) == "tree":
                expected = getattr(obj, "n_features_in_", tree.n_features)
                if tree.n_features != expected:
                    raise Invalid(
                        f"{path}.tree_ has {tree.n_features} features, but its "
                        f"estimator has {expected}."
                    )
            _check_arrays(path, obj)


# The compiled structures, by type name (no import of the modules that define them: a model
# without them does not pay for importing them)
_NATIVE = {
    "sklearn.tree._tree.Tree": "tree",
    "sklearn.neighbors._kd_tree.KDTree": "kd_tree",
    "sklearn.neighbors._kd_tree.KDTree64": "kd_tree",
    "sklearn.neighbors._kd_tree.KDTree32": "kd_tree",
    "sklearn.neighbors._ball_tree.BallTree": "ball_tree",
    "sklearn.neighbors._ball_tree.BallTree64": "ball_tree",
    "sklearn.neighbors._ball_tree.BallTree32": "ball_tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": "predictor",
}


def _check_tree(path: str, tree: Any) -> None:
    """A fitted sklearn.tree._tree.Tree, as its builder makes it: nodes numbered from the root
    down (each child after its parent), each node but the root the child of exactly one node,
    leaves with both children -1, split features below n_features, max_depth the depth.
    (Tree.__setstate__ already checks the node and value arrays' dtype and shape.)"""
    count, capacity = tree.node_count, tree.capacity
    if not 0 < count <= capacity:  # node_count sizes every array view of the nodes
        raise Invalid(f"{path} has node_count = {count} for {capacity} stored nodes.")
    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    nodes = np.arange(count)
    leaf = left == -1
    bad = np.flatnonzero(leaf != (right == -1))
    if bad.size:
        raise Invalid(f"{path}: node {bad[0]} has one child.")
    for name, child in (("children_left", left), ("children_right", right)):
        bad = np.flatnonzero(~leaf & ((child <= nodes) | (child >= count)))
        if bad.size:
            i = bad[0]
            raise Invalid(
                f"{path}: {name}[{i}] = {child[i]} is out of range (the tree has "
                f"{count} nodes, and children come after their parent)."
            )
    parents = np.bincount(np.concatenate((left[~leaf], right[~leaf])), minlength=count)
    parents[0] += 1
    bad = np.flatnonzero(parents != 1)
    if bad.size:
        raise Invalid(
            f"{path}: node {bad[0]} is the child of {parents[bad[0]] - (bad[0] == 0)} nodes."
        )
    feature = np.asarray(tree.feature, dtype=np.int64)
    bad = np.flatnonzero(~leaf & ((feature < 0) | (feature >= tree.n_features)))
    if bad.size:
        i = bad[0]
        raise Invalid(
            f"{path}: feature[{i}] = {feature[i]} is out of range (the tree has "
            f"{tree.n_features} features)."
        )
    # the depth, level by level (a tree, now: each node has one parent, numbered before it)
    depth, level = -1, np.zeros(1, dtype=np.int64)
    while level.size:
        depth += 1
        level = level[~leaf[level]]
        level = np.concatenate((left[level], right[level]))
    if tree.max_depth != depth:  # decision_path allocates max_depth + 1 per sample
        raise Invalid(f"{path} has max_depth = {tree.max_depth}, but its depth is {depth}.")


def _check_hist_gradient_boosting(path: str, estimator: Any) -> list[int]:
    """The predictors of a HistGradientBoosting estimator (TreePredictor.__setstate__ only
    casts the node dtype); the ids of the predictors checked."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    n_features = getattr(estimator, "n_features_in_", None)
    categorical = np.asarray(getattr(estimator._bin_mapper, "is_categorical_", ()))
    if not isinstance(n_features, int) or categorical.shape != (n_features,):
        raise Invalid(
            f"{path} has n_features_in_ = {n_features!r} and categorical flags of "
            f"shape {categorical.shape}."
        )
    checked = []
    predictors = estimator._predictors
    if not isinstance(predictors, list) or not all(isinstance(p, list) for p in predictors):
        raise Invalid(f"{path}._predictors is not a list of lists.")
    for i, iteration in enumerate(predictors):
        for k, predictor in enumerate(iteration):
            where = f"{path}._predictors[{i}][{k}]"
            if not isinstance(predictor, TreePredictor):
                raise Invalid(f"{where} is a {_type_name(predictor)}, not a TreePredictor.")
            nodes = predictor.nodes
            if (
                not isinstance(nodes, np.ndarray)
                or nodes.dtype != PREDICTOR_RECORD_DTYPE
                or nodes.ndim != 1
                or nodes.size == 0
            ):
                raise Invalid(f"{where}.nodes is not a non-empty array of predictor nodes.")
            for name in ("raw_left_cat_bitsets", "binned_left_cat_bitsets"):
                bitsets = getattr(predictor, name)
                if (
                    not isinstance(bitsets, np.ndarray)
                    or bitsets.ndim != 2
                    or bitsets.shape[1] != 8
                    or bitsets.dtype != np.uint32
                ):
                    raise Invalid(f"{where}.{name} is not an array of 8 x 32-bit bitsets.")
            _check_predictor_nodes(
                where, nodes, n_features, categorical, predictor.raw_left_cat_bitsets.shape[0]
            )
            checked.append(id(predictor))
    return checked


def _check_predictor_nodes(
    where: str, nodes: np.ndarray, n_features: int, categorical: np.ndarray, bitsets: int
) -> None:
    count = nodes.size
    index = np.arange(count)
    inner = nodes["is_leaf"] == 0
    for name in ("left", "right"):
        child = nodes[name].astype(np.int64)
        bad = np.flatnonzero(inner & ((child <= index) | (child >= count)))
        if bad.size:
            i = bad[0]
            raise Invalid(
                f"{where}: nodes[{i}].{name} = {child[i]} is out of range (the "
                f"predictor has {count} nodes, and children come after their "
                "parent)."
            )
    children = np.concatenate((nodes["left"][inner], nodes["right"][inner])).astype(np.int64)
    parents = np.bincount(children, minlength=count)
    parents[0] += 1
    bad = np.flatnonzero(parents != 1)
    if bad.size:
        raise Invalid(
            f"{where}: node {bad[0]} is the child of {parents[bad[0]] - (bad[0] == 0)} nodes."
        )
    feature = nodes["feature_idx"].astype(np.int64)
    bad = np.flatnonzero(inner & ((feature < 0) | (feature >= n_features)))
    if bad.size:
        i = bad[0]
        raise Invalid(
            f"{where}: nodes[{i}].feature_idx = {feature[i]} is out of range (the "
            f"estimator has {n_features} features)."
        )
    split = inner & (nodes["is_categorical"] != 0)
    bad = np.flatnonzero(
        split
        & (
            (nodes["bitset_idx"].astype(np.int64) >= bitsets)
            | (categorical[np.where(inner, feature, 0)] == 0)
        )
    )
    if bad.size:
        i = bad[0]
        raise Invalid(
            f"{where}: nodes[{i}] is a categorical split on a feature that is not "
            f"categorical, or with bitset_idx out of range ({bitsets} bitsets)."
        )


def _check_binary_tree(path: str, tree: Any, kd: bool) -> None:
    """A KDTree or BallTree, whose queries walk node i to nodes 2i+1 and 2i+2 and read
    idx_array, data and node_bounds unchecked (__setstate__ only assigns the arrays)."""
    state = tree.__getstate__()  # the arrays as stored (no copies), the metric, the weights
    data, index, node_data, bounds = state[:4]
    levels, metric, sample_weight = state[5], state[11], state[12]
    samples, features = data.shape
    if samples == 0 or not np.array_equal(np.sort(index), np.arange(samples)):
        raise Invalid(f"{path}: idx_array is not a permutation of the {samples} samples.")
    count = node_data.shape[0]
    if count == 0 or count != 2**levels - 1 or count != state[6]:
        raise Invalid(f"{path} has {count} nodes for {levels} levels.")
    if bounds.shape != (2 if kd else 1, count, features):
        raise Invalid(
            f"{path}: node_bounds has shape {bounds.shape}, not "
            f"{(2 if kd else 1, count, features)}."
        )
    start = node_data["idx_start"].astype(np.int64)
    end = node_data["idx_end"].astype(np.int64)
    bad = np.flatnonzero((start < 0) | (start > end) | (end > samples))
    if bad.size:
        i = bad[0]
        raise Invalid(f"{path}: node {i} covers samples {start[i]} to {end[i]} of {samples}.")
    inner = np.flatnonzero(node_data["is_leaf"] == 0)
    if inner.size and 2 * inner.max() + 2 >= count:
        raise Invalid(f"{path}: node {inner.max()} is not a leaf but has no children.")
    if sample_weight is not None and np.shape(sample_weight) != (samples,):
        raise Invalid(f"{path}: sample_weight does not have one weight per sample.")
    vector = np.asarray(metric.__getstate__()[1])
    weighted = type(metric).__name__.startswith("MinkowskiDistance")  # its weights, per feature
    if weighted and vector.size and vector.shape != (features,):
        raise Invalid(f"{path}: the metric has {vector.size} weights for {features} features.")


def _check_arrays(path: str, obj: Any) -> None:
    """Arrays of gradient boosting, SVMs and k-means that compiled code reads with sizes
    taken elsewhere."""
    module = type(obj).__module__
    if module == "sklearn.ensemble._gb" and isinstance(
        getattr(obj, "estimators_", None), np.ndarray
    ):
        # predict_stages writes tree k of each stage into column k of the initial predictions
        stages = obj.estimators_
        width = getattr(obj, "n_trees_per_iteration_", None)
        init = getattr(obj, "init_", "zero")
        if (
            stages.ndim != 2
            or stages.shape[1] != width
            or (width != 1 and init != "zero" and np.size(getattr(init, "classes_", ())) != width)
        ):
            raise Invalid(
                f"{path}: estimators_ has shape {stages.shape} for {width} trees per iteration."
            )
    if (
        module.startswith("sklearn.svm")
        and hasattr(obj, "_n_support")
        and hasattr(obj, "support_vectors_")
    ):
        classes = np.asarray(obj._n_support).size
        vectors = np.asarray(obj.support_).size
        pairs = classes * (classes - 1) // 2
        dual = np.shape(obj._dual_coef_)
        if (
            dual != (classes - 1, vectors)
            or np.shape(obj._intercept_) != (pairs,)
            or np.shape(obj.support_vectors_)[:1] not in ((vectors,), (0,))
            or np.size(getattr(obj, "_probA", ())) not in (0, pairs)
            or np.size(getattr(obj, "_probB", ())) not in (0, pairs)
        ):
            raise Invalid(
                f"{path}: the support vector arrays do not match: {classes} classes, "
                f"{vectors} support vectors, dual coefficients of shape {dual}."
            )
        support = np.asarray(obj.support_)
        if support.size and not 0 <= support.min() <= support.max() < obj.shape_fit_[0]:
            raise Invalid(f"{path}: support_ indexes samples out of range.")
    elif hasattr(obj, "cluster_centers_") and module.startswith("sklearn.cluster._kmeans"):
        centers = np.shape(obj.cluster_centers_)
        if len(centers) != 2 or centers[1] != getattr(obj, "n_features_in_", None):
            raise Invalid(
                f"{path}: cluster_centers_ has shape {centers}, for "
                f"{getattr(obj, 'n_features_in_', None)} features."
            )
