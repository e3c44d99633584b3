"""LightGBM's trees, evaluated by pyml's own kernel (``_trees.c``).

LightGBM's ``LGBM_BoosterPredictForMat`` turns every row into a list of (index, value)
pairs, then a dense buffer, then walks each tree through a virtual call per tree: most of a
batch's time in the database went there (bench/RESULTS.md, issue 19). The kernel walks the
same trees from flat tables, several rows at a time, with the same comparisons, the same
missing-value rules, the same order of additions and the same output functions, so that its
answers are LightGBM's to the bit (tests/unit/test_trees.py compares them on every kind of
value); the rows of a model whose trees have at most 64 leaves are scored split by split
rather than walked (QuickScorer: :func:`_scorer`'s tables). It serves what it
evaluates exactly: numerical splits, no linear trees, no averaged output (random forest
mode), and the objectives whose output function it has; any other model keeps LightGBM's
predictor.

The kernel is a C library built with the package (``pyml.core._trees_c``, an extension
module of setuptools that Python never imports: ctypes loads it, and its calls release the
GIL). Where it was not built, :func:`forest` returns None and LightGBM predicts.

The tables come from a model text :func:`pyml.core._validate.lightgbm_text` has read
completely: children in range, every tree acyclic, split features below the feature count.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pyml.core._validate._lightgbm import LightGBMText

# pyml_node of _trees.c
NODE = np.dtype(
    [("threshold", "<f8"), ("feature", "<i4"), ("left", "<i4"), ("right", "<i4"), ("flags", "<i4")]
)
_MISSING_NONE, _MISSING_ZERO = 0, 1
_NAN_LEFT = 8  # NAN_LEFT of _trees.c


class _Scorer(ctypes.Structure):
    """pyml_scorer of _trees.c"""

    _fields_ = [
        ("thresholds", ctypes.c_void_p),
        ("trees", ctypes.c_void_p),
        ("left_of", ctypes.c_void_p),
        ("nan_right", ctypes.c_void_p),
        ("starts", ctypes.c_void_p),
        ("first_leaf", ctypes.c_void_p),
        ("values", ctypes.c_void_p),
    ]


class _Tables(ctypes.Structure):
    """pyml_forest of _trees.c"""

    _fields_ = [
        ("nodes", ctypes.c_void_p),
        ("roots", ctypes.c_void_p),
        ("steps", ctypes.c_void_p),
        ("leaves", ctypes.c_void_p),
        ("internal", ctypes.c_int32),
        ("trees", ctypes.c_int32),
        ("classes", ctypes.c_int32),
        ("output", ctypes.c_int32),
        ("columns", ctypes.c_int32),
        ("zero_missing", ctypes.c_int32),
        ("sigmoid", ctypes.c_double),
        ("scorer", ctypes.c_void_p),
    ]


_OUTPUT_RAW, _OUTPUT_SIGMOID, _OUTPUT_SOFTMAX, _OUTPUT_EXP = range(4)
# LightGBM's objectives by their output function (ObjectiveFunction::ConvertOutput)
_RAW = frozenset(
    {
        b"regression",
        b"regression_l1",
        b"quantile",
        b"huber",
        b"fair",
        b"mape",
        b"lambdarank",
        b"rank_xendcg",
        b"custom",
    }
)
_EXP = frozenset({b"poisson", b"gamma", b"tweedie"})
# up to this many rows, one thread: a thread costs tens of µs to start, 64 rows of 100 trees
# about 90 µs to predict
FEW_ROWS = 64
# fixed-length walks for trees at most this much deeper than on average (+ 2 levels): on
# LightGBM's usual trees, walking to the deepest leaf without a branch per row and level
# costs less than stopping each row at its own (bench/trees.py)
FIXED_DEPTH_RATIO = 2.5
_INT32_MAX = 2**31 - 1

_lib: ctypes.CDLL | None = None
_searched = False


def library() -> ctypes.CDLL | None:
    """The kernel, loaded once per process; None when the package was installed without it."""
    global _lib, _searched
    if not _searched:
        _searched = True
        spec = importlib.util.find_spec("pyml.core._trees_c")
        if spec is not None and spec.origin and os.path.exists(spec.origin):
            lib = ctypes.CDLL(spec.origin)
            lib.pyml_trees_predict.restype = ctypes.c_int
            lib.pyml_trees_predict_row.restype = None
            _lib = lib
    return _lib


def _output(objective: bytes) -> tuple[int, float] | None:
    """The kernel's output function and sigmoid for a model's objective line, or None."""
    name, *options = objective.split(b" ")
    if name in _RAW:
        # regression's "sqrt" option squares the output back; the kernel does not
        return None if b"sqrt" in options else (_OUTPUT_RAW, 0.0)
    if name in _EXP:
        return _OUTPUT_EXP, 0.0
    if name == b"multiclass":
        return _OUTPUT_SOFTMAX, 0.0
    if name == b"cross_entropy":
        return _OUTPUT_SIGMOID, 1.0
    if name == b"binary":
        for option in options:
            if option.startswith(b"sigmoid:"):
                value = float(option[len(b"sigmoid:") :])
                return (_OUTPUT_SIGMOID, value) if np.isfinite(value) else None
    return None


def _floats(values: list[bytes]) -> np.ndarray:
    """Numbers as LightGBM writes them (``%.17g``, ``inf``, ``nan``), correctly rounded."""
    joined = b" ".join(value for value in values if value)
    if not joined:
        return np.zeros(0, dtype=np.float64)
    return np.array(joined.split(b" ")).astype(np.float64)


class Forest:
    """A LightGBM model's trees as the kernel's tables."""

    def __init__(
        self,
        model: LightGBMText,
        output: int,
        sigmoid: float,
        steps: str = "auto",
        scorer: bool = True,
    ):
        trees = model.trees
        leaves = model.leaves
        nodes = leaves - 1
        offsets = np.concatenate(([0], np.cumsum(nodes)))
        internal = int(offsets[-1])
        leaf_offsets = np.concatenate(([0], np.cumsum(leaves))) + internal
        tree_of = np.repeat(np.arange(len(trees)), nodes)
        indexes = model.indexes

        def absolute(child: np.ndarray) -> np.ndarray:
            # node n of tree t -> offsets[t] + n; leaf l -> leaf_offsets[t] + l
            return np.where(child >= 0, child + offsets[tree_of], ~child + leaf_offsets[tree_of])

        table = np.zeros(int(leaf_offsets[-1]), dtype=NODE)
        splits = table[:internal]
        splits["threshold"] = _floats([tree[b"threshold"] for tree in trees])
        splits["feature"] = indexes[b"split_feature"]
        splits["left"] = absolute(indexes[b"left_child"])
        splits["right"] = absolute(indexes[b"right_child"])
        decision = indexes[b"decision_type"]
        # decision_type: bit 1 default left, bits 2-3 the missing type (0 "none": the
        # default side does not matter, and the kernel's common case is flags 0)
        missing = (decision >> 2) & 3
        flags = np.where(missing == _MISSING_NONE, 0, ((decision >> 1) & 1) | (missing << 1))
        # where a NaN goes: read as 0 (type "none": 0 <= threshold), or the default side
        # (type "nan"); type "zero" nodes take the kernel's general decisions
        nan_left = np.where(missing == _MISSING_NONE, 0.0 <= splits["threshold"], decision & 2)
        splits["flags"] = flags | np.where(nan_left, _NAN_LEFT, 0)
        # leaves: any value goes to the leaf itself (NaN <= inf is false: right, itself too)
        table["threshold"][internal:] = np.inf
        table["left"][internal:] = table["right"][internal:] = np.arange(internal, table.size)
        self.nodes = table
        self.roots = np.where(nodes > 0, offsets[:-1], leaf_offsets[:-1]).astype(np.int32)
        levels = _levels(table, self.roots, internal)
        self.steps = _steps(levels, table.size, internal, leaves, steps)
        self.leaves = _floats([tree[b"leaf_value"] for tree in trees])
        if self.leaves.size != table.size - internal:
            raise ValueError("the leaf values do not match the trees")
        self.trees = len(trees)
        self.classes = model.num_class
        self.num_features = model.max_feature_idx + 1
        self.output = output
        self.sigmoid = sigmoid
        # rows are scored split by split when every tree has at most 64 leaves (a bit
        # each), no node treats zero as missing and no threshold is NaN (which every value
        # goes right of, where the scorer's ascending thresholds end)
        zero_missing = bool((missing == _MISSING_ZERO).any())
        self.scorer = None
        if (
            scorer
            and not zero_missing
            and int(leaves.max()) <= _SCORER_LEAVES
            and not np.isnan(splits["threshold"]).any()
        ):
            self.scorer = _scorer(table, levels, internal, leaves, self.leaves, self.num_features)
        # the arrays above live as long as this object, and so do the pointers
        self._scorer = _Scorer(*(a.ctypes.data for a in self.scorer or ()))
        self._tables = _Tables(
            self.nodes.ctypes.data,
            self.roots.ctypes.data,
            self.steps.ctypes.data,
            self.leaves.ctypes.data,
            internal,
            self.trees,
            self.classes,
            output,
            self.num_features,
            int(zero_missing),
            sigmoid,
            ctypes.addressof(self._scorer) if self.scorer else None,
        )
        self._ref = ctypes.byref(self._tables)

    def predict(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Rows of a C-contiguous 2-D float64 array with the model's feature count:
        ``(n,)`` values or ``(n, classes)``, as LightGBM's predict returns them."""
        lib = library()
        assert lib is not None and X.dtype == np.float64 and X.flags.c_contiguous
        n, k = X.shape
        if k != self.num_features:
            raise ValueError(f"{k} features, the model has {self.num_features}")
        out = np.empty((n, self.classes), dtype=np.float64)
        if threads is None:
            threads = 1 if n <= FEW_ROWS else (os.cpu_count() or 1)
        if lib.pyml_trees_predict(
            self._ref,
            X.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_int64(n),
            out.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_int32(threads),
        ):
            raise MemoryError("out of memory predicting with the trees")
        return out[:, 0] if self.classes == 1 else out

    def addresses(self) -> tuple[int, int]:
        """``pyml_trees_predict_row``'s address and the tables', for C code in this process
        (src/stream.c): valid while this object lives."""
        lib = library()
        assert lib is not None
        function = ctypes.cast(lib.pyml_trees_predict_row, ctypes.c_void_p).value
        assert function is not None
        return function, ctypes.addressof(self._tables)

    def row_predictor(self) -> Callable[[Sequence[float]], Any]:
        """A function of one row of numbers (a sequence), prepared once: a float, or a list
        of per-class values."""
        lib = library()
        assert lib is not None
        call = lib.pyml_trees_predict_row
        k = self.num_features
        row = (ctypes.c_double * k)()
        scratch = (ctypes.c_double * k)()
        out = (ctypes.c_double * self.classes)()
        single = self.classes == 1
        forest = self  # the tables point into its arrays: the function keeps them alive

        def predict(values: Sequence[float]) -> Any:
            row[:] = values  # type: ignore[call-overload]
            call(forest._ref, row, scratch, out)
            return out[0] if single else out[:]

        return predict


def _levels(table: np.ndarray, roots: np.ndarray, internal: int) -> list[np.ndarray]:
    """The nodes and leaves of all trees a level at a time: the roots, their children, ...
    (the validator bounds the depth, and gives each node one parent)."""
    levels = []
    level = roots
    while level.size:
        levels.append(level)
        level = level[level < internal]
        level = np.concatenate((table["left"][level], table["right"][level]))
    return levels


def _steps(
    levels: list[np.ndarray], size: int, internal: int, leaves: np.ndarray, how: str
) -> np.ndarray:
    """Per tree, the steps of a fixed-length walk (its depth), or 0 where walking until a
    leaf costs less: a tree much deeper in places than on average ("auto"); "walk" or
    "fixed" for every tree (tests, benchmarks)."""
    depth = np.zeros(size, dtype=np.int64)
    for steps, level in enumerate(levels):
        depth[level] = steps
    tree_of_leaf = np.repeat(np.arange(len(leaves)), leaves)
    leaf_depth = depth[internal:]
    deepest = np.zeros(len(leaves), dtype=np.int64)
    np.maximum.at(deepest, tree_of_leaf, leaf_depth)
    mean = np.bincount(tree_of_leaf, weights=leaf_depth, minlength=len(leaves)) / leaves
    if how == "walk":
        fixed = np.zeros(len(leaves), dtype=bool)
    elif how == "fixed":
        fixed = np.ones(len(leaves), dtype=bool)
    else:
        fixed = deepest <= FIXED_DEPTH_RATIO * mean + 2
    return np.where(fixed, deepest, 0).astype(np.int32)


_SCORER_LEAVES = 64  # a bit per leaf in a uint64


def _scorer(
    table: np.ndarray,
    levels: list[np.ndarray],
    internal: int,
    leaves: np.ndarray,
    values: np.ndarray,
    columns: int,
) -> tuple[np.ndarray, ...]:
    """The scorer's tables (pyml_scorer of _trees.c): the splits sorted by feature and
    threshold, each with its tree, the bits of the leaves left of it and whether it sends a
    NaN right (all bits) or left; per feature where its splits start; the leaf values of
    each tree left to right."""
    left, right = table["left"], table["right"]
    # bottom-up each node's count of leaves, then top-down the rank of its leftmost leaf in
    # its tree
    under = np.ones(table.size, dtype=np.int64)
    for level in reversed(levels):
        split = level[level < internal]
        under[split] = under[left[split]] + under[right[split]]
    rank = np.zeros(table.size, dtype=np.int64)
    for level in levels:
        split = level[level < internal]
        rank[left[split]] = rank[split]
        rank[right[split]] = rank[split] + under[left[split]]
    splits = np.arange(internal)
    ones = (np.uint64(1) << under[left[splits]].astype(np.uint64)) - np.uint64(1)
    left_of = ones << rank[splits].astype(np.uint64)  # the left subtree's leaves
    nodes = leaves - 1
    tree_of = np.repeat(np.arange(len(leaves), dtype=np.int32), nodes)
    order = np.lexsort((table["threshold"][:internal], table["feature"][:internal]))
    features = table["feature"][:internal][order]
    first_leaf = np.concatenate(([0], np.cumsum(leaves)[:-1])).astype(np.int32)
    tree_of_leaf = np.repeat(np.arange(len(leaves)), leaves)
    by_rank = np.empty(values.size, dtype=np.float64)
    by_rank[first_leaf[tree_of_leaf] + rank[internal:]] = values
    return (
        np.ascontiguousarray(table["threshold"][:internal][order]),
        np.ascontiguousarray(tree_of[order]),
        np.ascontiguousarray(left_of[order]),
        np.where(table["flags"][:internal][order] & _NAN_LEFT, 0, 2**64 - 1).astype(np.uint64),
        np.searchsorted(features, np.arange(columns + 1)).astype(np.int32),
        first_leaf,
        by_rank,
    )


def forest(model: LightGBMText, steps: str = "auto", scorer: bool = True) -> Forest | None:
    """The kernel's tables for a checked model it evaluates exactly, or None (LightGBM
    predicts): categorical splits, linear trees, averaged output, other objectives, or no
    kernel in this installation. ``steps``: see :func:`_steps`; ``scorer`` false: every
    row is walked (tests, benchmarks)."""
    if library() is None or model.average_output or not model.trees:
        return None
    if model.linear.any() or any(tree[b"num_cat"] != b"0" for tree in model.trees):
        return None
    output = _output(model.objective)
    # nodes and leaves are indexed by int32
    if output is None or 2 * int(model.leaves.sum()) > _INT32_MAX:
        return None
    return Forest(model, *output, steps=steps, scorer=scorer)
