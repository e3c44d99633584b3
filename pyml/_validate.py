"""Structural checks of model artifacts, run before native code reads them.

Native model code trusts its input. LightGBM's text loader reads a tree until the next
``=`` or newline (past the end of a file cut short), splits the text at the offsets in
``tree_sizes``, aborts the whole process when a tree fails to parse (the error is thrown on
an OpenMP thread), and its prediction code indexes features, children, category bitsets and
linear coefficients with the stored numbers, unchecked. scikit-learn's Cython trees,
histogram-gradient-boosting predictors and KD/ball trees do the same, and so do XGBoost's
loader (it follows ``parents``) and predictor (children, split features, category bitsets).
Inside PostgreSQL any of these is a crashed backend, and a restart of every session.

So every artifact is checked here first, against what the native code assumes, and refused
with :class:`~pyml.errors.DataCorrupted` (XX001) and a detail naming the place:

- :func:`lightgbm_text` reads LightGBM's text format completely (header, every tree, the
  sections after the trees) without importing lightgbm. It is strict: pyml stores only what
  LightGBM 4's ``model_to_string`` writes, so anything else is refused, even when LightGBM
  would load it.
- :func:`xgboost_json` reads XGBoost's JSON model (gbtree, DART or linear boosters) without
  importing xgboost: every tree one binary tree rooted at node 0 with its right child next to
  its left (the predictor assumes it), parents consistent, split features in range,
  categorical splits consistent, tree_info within the output groups. Also strict: what
  XGBoost writes, less what pyml never makes (multi-target trees, string categories).
- :func:`sklearn_object` walks a loaded scikit-learn object graph (pipelines, ensembles,
  multi-output wrappers, column transformers: any attribute, list, tuple, dict or object
  array) and checks the native structures in it.

Checks run once per model load, not per prediction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from pyml.errors import DataCorrupted

LIGHTGBM = "lightgbm-text"
SKOPS = "skops"

MAX_LEAVES = 131_072  # LightGBM's own bound on num_leaves
# LightGBM computes contributions (TreeSHAP) and leaf depths recursively, one C stack frame
# per level: a deep enough chain of splits overflows the stack. Trained trees are far
# shallower than this.
MAX_DEPTH = 5_000
_INT32_MAX = 2**31 - 1


class _Invalid(Exception):
    """A finding; its text is the DETAIL of the DataCorrupted raised for it."""


def _refuse(fmt: str, exc: _Invalid) -> DataCorrupted:
    return DataCorrupted(f'model artifact is not a valid "{fmt}" file', detail=str(exc))


def _show(value: bytes | str, limit: int = 40) -> str:
    """A value for a message: quoted, shortened, non-printable bytes escaped."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if len(text) > limit:
        text = text[:limit] + "..."
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


# -- LightGBM text -------------------------------------------------------------------------


def lightgbm_text(data: bytes) -> None:
    """Refuse (DataCorrupted) a LightGBM text model that is not exactly what LightGBM writes."""
    try:
        _LightGBMText(data).check()
    except _Invalid as exc:
        raise _refuse(LIGHTGBM, exc) from None


_INT = re.compile(rb"-?[0-9]{1,10}")
_FLOAT = rb"-?(?:[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?|inf|nan)"
_FLOAT_ONE = re.compile(_FLOAT)
_FLOATS = re.compile(rb"(?:%s )*%s" % (_FLOAT, _FLOAT))
_FEATURE_INFO = re.compile(rb"none|\[" + _FLOAT + rb":" + _FLOAT + rb"\]|-?[0-9]+(?::-?[0-9]+)*")
_OBJECTIVES = frozenset({
    b"regression", b"regression_l1", b"quantile", b"huber", b"fair", b"poisson", b"binary",
    b"lambdarank", b"rank_xendcg", b"multiclass", b"multiclassova", b"cross_entropy",
    b"cross_entropy_lambda", b"mape", b"gamma", b"tweedie", b"custom",
})
_MULTICLASS = (b"multiclass", b"multiclassova")
_HEADER_REQUIRED = (
    b"version", b"num_class", b"num_tree_per_iteration", b"label_index", b"max_feature_idx",
    b"objective", b"feature_names", b"feature_infos", b"tree_sizes",
)
_HEADER_KEYS = frozenset({*_HEADER_REQUIRED, b"average_output", b"monotone_constraints"})

# The fields of a tree block, in the order LightGBM writes them; the number of values of
# each: "n" internal nodes (num_leaves - 1), "L" leaves, "1" a scalar, "*" special.
_TREE_HEAD = (
    (b"num_leaves", "1"), (b"num_cat", "1"), (b"split_feature", "n"), (b"split_gain", "n"),
    (b"threshold", "n"), (b"decision_type", "n"), (b"left_child", "n"), (b"right_child", "n"),
    (b"leaf_value", "L"), (b"leaf_weight", "L"), (b"leaf_count", "L"), (b"internal_value", "n"),
    (b"internal_weight", "n"), (b"internal_count", "n"),
)
_TREE_CATEGORICAL = ((b"cat_boundaries", "*"), (b"cat_threshold", "*"))
_TREE_LINEAR = ((b"leaf_const", "L"), (b"num_features", "L"), (b"leaf_features", "*"),
                (b"leaf_coeff", "*"))
_SIZES = dict((*_TREE_HEAD, *_TREE_CATEGORICAL, *_TREE_LINEAR))
_INT_FIELDS = (b"split_feature", b"decision_type", b"left_child", b"right_child",
               b"internal_count", b"leaf_count")
_INDEXES = (b"split_feature", b"decision_type", b"left_child", b"right_child")  # parsed
_FLOAT_FIELDS = (b"split_gain", b"threshold", b"internal_value", b"internal_weight",
                 b"leaf_value", b"leaf_weight")


def _tree_keys(categorical: bool, linear: bool) -> list[bytes]:
    keys = [key for key, _ in _TREE_HEAD]
    if categorical:
        keys += [key for key, _ in _TREE_CATEGORICAL]
    keys.append(b"is_linear")
    if linear:
        keys += [key for key, _ in _TREE_LINEAR]
    keys.append(b"shrinkage")
    return keys


def _ints_well_formed(joined: bytes) -> bool:
    """Whether ``joined`` is integers separated by single spaces (C speed, no regex)."""
    if joined.translate(None, b"0123456789- "):
        return False
    if b"  " in joined or b"- " in joined or b"--" in joined:
        return False
    if joined.startswith(b" ") or joined.endswith(b" ") or joined.endswith(b"-"):
        return False
    # every minus sign starts a number
    return joined.count(b"-") == joined.count(b" -") + joined.startswith(b"-")


def _count(value: bytes) -> int:
    return value.count(b" ") + 1 if value else 0


class _LightGBMText:
    """One pass over a LightGBM text model; :meth:`check` raises _Invalid at the first fault."""

    def __init__(self, data: bytes):
        self.text = data
        self.max_feature_idx = 0
        self.num_class = 1
        self.feature_names: list[bytes] = []
        self.trees: list[dict[bytes, bytes]] = []
        self.leaves = np.zeros(0, dtype=np.int64)
        self.linear = np.zeros(0, dtype=bool)

    def check(self) -> None:
        text = self.text
        if b"\0" in text:
            # LightGBM reads the text as a C string: it would stop at the NUL byte
            offset = text.index(b"\0")
            raise _Invalid(f"The file has a NUL byte at offset {offset}.")
        if b"\r" in text:
            raise _Invalid("The file has carriage returns: LightGBM writes plain newlines.")
        start = text.find(b"\n\nTree=")
        if start < 0:
            raise _Invalid('The file has no tree: no "Tree=" line after the header.')
        sizes = self._header(text[:start])
        end = self._tree_blocks(start + 2, sizes)
        self._tree_numbers()
        linear = self._tail(end)
        # LightGBM takes "linear" from the parameters (it then refuses contributions), and
        # predicts each tree as its is_linear says
        if self.linear.any() and not linear:
            raise _Invalid('The model has linear trees but its parameters do not say '
                           '"[linear_tree: 1]".')
        if linear and not self.linear.any():
            raise _Invalid('The parameters say "[linear_tree: 1]" but no tree is linear.')

    # -- header -------------------------------------------------------------------------

    def _header(self, header: bytes) -> list[int]:
        lines = header.split(b"\n")
        if lines[0] != b"tree":
            raise _Invalid(f'The first line is {_show(lines[0])} instead of "tree".')
        fields: dict[bytes, bytes] = {}
        for number, line in enumerate(lines[1:], 2):
            key, eq, value = line.partition(b"=")
            if not eq and line != b"average_output":
                raise _Invalid(f"Header line {number} {_show(line)} is not of the form key=value.")
            if key not in _HEADER_KEYS:
                raise _Invalid(f"Header line {number} has the unknown key {_show(key)}.")
            if key in fields:
                raise _Invalid(f'The header has "{key.decode()}" twice.')
            if b"=" in value and key not in (b"feature_names", b"monotone_constraints"):
                raise _Invalid(f'The header line of "{key.decode()}" has more than one "=".')
            fields[key] = value
        missing = [key.decode() for key in _HEADER_REQUIRED if key not in fields]
        if missing:
            raise _Invalid(f'The header has no "{missing[0]}".')
        if fields[b"version"] != b"v4":
            raise _Invalid(f'The model version is {_show(fields[b"version"])}, not "v4".')

        self.num_class = num_class = _int(fields[b"num_class"], "num_class", 1, _INT32_MAX)
        per_iteration = _int(fields[b"num_tree_per_iteration"], "num_tree_per_iteration", 1,
                             _INT32_MAX)
        if per_iteration != num_class:
            # serving sizes its output from num_class; LightGBM writes one value per tree
            # of an iteration
            raise _Invalid(f"num_tree_per_iteration = {per_iteration} differs from "
                           f"num_class = {num_class}.")
        _int(fields[b"label_index"], "label_index", 0, _INT32_MAX)
        self.max_feature_idx = top = _int(fields[b"max_feature_idx"], "max_feature_idx", 0,
                                          _INT32_MAX - 2)
        if num_class * (top + 2) > _INT32_MAX:  # LightGBM's int size of a contribution row
            raise _Invalid(f"num_class = {num_class} and max_feature_idx = {top} are too large.")
        self._objective(fields[b"objective"])

        # counted before anything is split, so that an absurd max_feature_idx costs nothing
        for key in (b"feature_names", b"feature_infos", b"monotone_constraints"):
            if key in fields and _count(fields[key]) != top + 1:
                raise _Invalid(f'"{key.decode()}" has {_count(fields[key])} entries, but '
                               f"max_feature_idx = {top} means {top + 1}.")
        self.feature_names = names = fields[b"feature_names"].split(b" ")
        if b"" in names:
            raise _Invalid(f"feature_names has an empty name at position {names.index(b'')}.")
        for position, info in enumerate(fields[b"feature_infos"].split(b" ")):
            if not _FEATURE_INFO.fullmatch(info):
                raise _Invalid(f"feature_infos[{position}] = {_show(info)} is not a feature "
                               "range or a list of categories.")
        if b"monotone_constraints" in fields:
            for position, constraint in enumerate(fields[b"monotone_constraints"].split(b" ")):
                if constraint not in (b"-1", b"0", b"1"):
                    raise _Invalid(f"monotone_constraints[{position}] = {_show(constraint)} is "
                                   "not -1, 0 or 1.")

        value = fields[b"tree_sizes"]
        if not value or not _ints_well_formed(value) or b"-" in value:
            raise _Invalid(f"tree_sizes {_show(value)} is not a list of sizes.")
        sizes = [int(size) for size in value.split(b" ")]
        if len(sizes) % num_class:
            raise _Invalid(f"The model has {len(sizes)} trees, which is not a multiple of "
                           f"num_tree_per_iteration = {num_class}.")
        return sizes

    def _objective(self, value: bytes) -> None:
        tokens = value.split(b" ")
        name = tokens[0]
        if name not in _OBJECTIVES:
            raise _Invalid(f"The objective {_show(name)} is not one of LightGBM's.")
        if name in _MULTICLASS:
            classes = [t[len(b"num_class:"):] for t in tokens if t.startswith(b"num_class:")]
            if len(classes) != 1:
                raise _Invalid(f'The objective {_show(value)} does not give "num_class" once.')
            declared = _int(classes[0], "The objective's num_class", 2, _INT32_MAX)
            if declared != self.num_class:
                raise _Invalid(f"The objective's num_class = {declared} differs from "
                               f"num_class = {self.num_class}.")
        elif self.num_class != 1:
            raise _Invalid(f'num_class = {self.num_class} with the objective "{name.decode()}", '
                           "which has one output.")

    # -- tree blocks -------------------------------------------------------------------

    def _tree_blocks(self, start: int, sizes: list[int]) -> int:
        text = self.text
        pos = start
        trees = self.trees
        leaves = []
        for i, size in enumerate(sizes):
            head = b"Tree=%d\n" % i
            if not text.startswith(head, pos):
                line = text[pos:text.find(b"\n", pos)] if pos < len(text) else b""
                raise _Invalid(f'Tree {i} does not start with "Tree={i}" where tree_sizes puts '
                               f"it (found {_show(line)}).")
            end = pos + size
            if size < len(head) + 3 or text[end - 3:end] != b"\n\n\n" or end > len(text):
                close = text.find(b"\n\n\n", pos)  # where the tree does end
                actual = "no end" if close < 0 else f"{close + 3 - pos} bytes"
                raise _Invalid(f"tree_sizes gives Tree {i} {size} bytes, but it has {actual}.")
            lines = text[pos + len(head):end - 3].split(b"\n")
            try:
                fields: dict[bytes, bytes] = dict(line.split(b"=", 1) for line in lines)
            except ValueError:  # a line without "=" (or a blank one, which ends a tree)
                close = text.find(b"\n\n\n", pos)
                if close + 3 != end:
                    raise _Invalid(f"tree_sizes gives Tree {i} {size} bytes, but it has "
                                   f"{close + 3 - pos}.") from None
                line = next(line for line in lines if b"=" not in line)
                raise _Invalid(f"Tree {i}: the line {_show(line)} is not of the form "
                               "key=value.") from None
            if len(fields) != len(lines):
                keys = [line.split(b"=", 1)[0] for line in lines]
                key = next(key for key in keys if keys.count(key) > 1)
                raise _Invalid(f'Tree {i}: the field "{key.decode("latin-1")}" appears twice.')
            for key in (b"num_leaves", b"num_cat", b"is_linear"):
                if key not in fields:
                    raise _Invalid(f'Tree {i}: the field "{key.decode()}" is missing.')
            num_leaves = _int(fields[b"num_leaves"], f"Tree {i}: num_leaves", 1, MAX_LEAVES)
            num_cat = _int(fields[b"num_cat"], f"Tree {i}: num_cat", 0, num_leaves - 1)
            linear = fields[b"is_linear"]
            if linear not in (b"0", b"1"):
                raise _Invalid(f"Tree {i}: is_linear = {_show(linear)} is not 0 or 1.")
            expected = _tree_keys(num_cat > 0, linear == b"1")
            if list(fields) != expected:
                raise _Invalid(f"Tree {i}: " + _key_difference(list(fields), expected))
            if not _FLOAT_ONE.fullmatch(fields[b"shrinkage"]):
                raise _Invalid(f"Tree {i}: shrinkage = {_show(fields[b'shrinkage'])} is not a "
                               "number.")
            trees.append(fields)
            leaves.append(num_leaves)
            pos = end
        if not text.startswith(b"end of trees\n", pos):
            line = text[pos:text.find(b"\n", pos)]
            raise _Invalid(f'tree_sizes lists {len(sizes)} trees, and {_show(line)} follows them '
                           'instead of "end of trees".')
        self.leaves = np.array(leaves, dtype=np.int64)
        self.linear = np.array([tree[b"is_linear"] == b"1" for tree in trees], dtype=bool)
        return pos + len(b"end of trees\n")

    # -- the numbers of the trees -------------------------------------------------------

    def _tree_numbers(self) -> None:
        trees = self.trees
        leaves = self.leaves
        nodes = leaves - 1
        ints = {}
        for key in (*_INT_FIELDS, *_FLOAT_FIELDS):
            integer = key in _INT_FIELDS
            values = [tree[key] for tree in trees]
            counts, parsed = _numbers(key, values, integer, parse=key in _INDEXES)
            sizes = leaves if _SIZES[key] == "L" else nodes
            if key == b"leaf_weight":
                # LightGBM writes no weight for a one-leaf tree, and reads none (it stops
                # reading such a tree after leaf_count)
                sizes = np.where((counts == 0) & (leaves == 1) & ~self.linear, 0, sizes)
            bad = np.flatnonzero(counts != sizes)
            if bad.size:
                i = int(bad[0])
                raise _Invalid(f"Tree {i}: {key.decode()} has {counts[i]} values instead of "
                               f"{sizes[i]}.")
            if parsed is not None:
                ints[key] = parsed

        offsets = np.concatenate(([0], np.cumsum(nodes)))
        tree_of = np.repeat(np.arange(len(trees)), nodes)

        def where(key: bytes, index: int) -> str:
            tree = int(tree_of[index])
            return f"Tree {tree}: {key.decode()}[{index - offsets[tree]}]"

        split_feature = ints[b"split_feature"]
        bad = np.flatnonzero((split_feature < 0) | (split_feature > self.max_feature_idx))
        if bad.size:
            i = bad[0]
            raise _Invalid(f"{where(b'split_feature', i)} = {split_feature[i]} is out of range "
                           f"(max_feature_idx = {self.max_feature_idx}).")
        decision = ints[b"decision_type"]
        # bit 0 categorical, bit 1 default left, bits 2-3 the missing type (0, 1 or 2)
        bad = np.flatnonzero((decision < 0) | (decision > 11))
        if bad.size:
            i = bad[0]
            raise _Invalid(f"{where(b'decision_type', i)} = {decision[i]} is not a decision type.")

        self._children(ints[b"left_child"], ints[b"right_child"], nodes, offsets, tree_of, where)
        self._categorical(decision, nodes, offsets, tree_of)
        self._linear()

    def _children(self, left: np.ndarray, right: np.ndarray, nodes: np.ndarray,
                  offsets: np.ndarray, tree_of: np.ndarray, where: Any) -> None:
        """Every tree is one binary tree: children in range, every internal node but the root
        and every leaf the child of exactly one node, every node reachable from the root."""
        leaves = self.leaves
        inner_total = int(offsets[-1])
        leaf_offsets = np.concatenate(([0], np.cumsum(leaves))) + inner_total
        both = np.concatenate((left, right))
        owner = np.concatenate((tree_of, tree_of))
        inner = both >= 0
        # internal nodes 1..n-1 of their tree, or leaves ~0..~(L-1)
        in_range = np.where(inner, (both >= 1) & (both < nodes[owner]), ~both < leaves[owner])
        if not in_range.all():
            i = int(np.flatnonzero(~in_range)[0])
            key, i = (b"left_child", i) if i < left.size else (b"right_child", i - left.size)
            child = int(both[i] if key == b"left_child" else both[i + left.size])
            reason = "the root" if child == 0 else "out of range"
            raise _Invalid(f"{where(key, i)} = {child} is {reason} (the tree has "
                           f"{leaves[tree_of[i]]} leaves).")
        # one numbering for all: the internal nodes of all trees, then all leaves
        ids = np.where(inner, both + offsets[owner], ~both + leaf_offsets[owner])
        parents = np.bincount(ids, minlength=int(leaf_offsets[-1]))
        parents[offsets[:-1][nodes > 0]] += 1  # the roots, which have no parent
        parents[leaf_offsets[:-1][nodes == 0]] += 1  # the leaf of a one-leaf tree
        bad = np.flatnonzero(parents != 1)
        if bad.size:
            node = int(bad[0])
            if node < inner_total:
                tree = int(np.searchsorted(offsets, node, side="right") - 1)
                what = f"node {node - offsets[tree]}"
            else:
                tree = int(np.searchsorted(leaf_offsets, node, side="right") - 1)
                what = f"leaf {node - leaf_offsets[tree]}"
            raise _Invalid(f"Tree {tree}: {what} is the child of {parents[node]} nodes.")
        # With one parent each, a node the root cannot reach is on a cycle. Walk down from
        # all roots at once, one level per step.
        down = ids.reshape(2, -1)
        reached = 0
        level = offsets[:-1][nodes > 0]
        depth = 0
        while level.size:
            depth += 1
            if depth > MAX_DEPTH:
                raise _Invalid(f"Tree {int(tree_of[level[0]])} is deeper than {MAX_DEPTH} "
                               "levels.")
            reached += level.size
            level = down[:, level].ravel()
            level = level[level < inner_total]
        if reached != inner_total:
            seen = np.zeros(inner_total, dtype=bool)
            level = offsets[:-1][nodes > 0]
            while level.size:
                seen[level] = True
                level = down[:, level].ravel()
                level = level[level < inner_total]
            node = int(np.flatnonzero(~seen)[0])
            tree = int(tree_of[node])
            raise _Invalid(f"Tree {tree}: node {node - offsets[tree]} cannot be reached from the "
                           "root (the children form a cycle).")

    def _categorical(self, decision: np.ndarray, nodes: np.ndarray, offsets: np.ndarray,
                     tree_of: np.ndarray) -> None:
        """num_cat counts the categorical splits, each split indexes cat_boundaries, and
        cat_boundaries slices cat_threshold."""
        categorical = (decision & 1).astype(bool)
        counts = np.bincount(tree_of[categorical], minlength=len(self.trees))
        for i, tree in enumerate(self.trees):
            num_cat = int(tree[b"num_cat"])
            found = int(counts[i])
            if found != num_cat:
                raise _Invalid(f"Tree {i}: num_cat = {num_cat}, but {found} of its splits are "
                               "categorical.")
            if not num_cat:
                continue
            boundaries = _int_list(tree[b"cat_boundaries"], f"Tree {i}: cat_boundaries")
            if len(boundaries) != num_cat + 1:
                raise _Invalid(f"Tree {i}: cat_boundaries has {len(boundaries)} values instead of "
                               f"num_cat + 1 = {num_cat + 1}.")
            bitsets = _int_list(tree[b"cat_threshold"], f"Tree {i}: cat_threshold")
            if boundaries[0] != 0 or boundaries[-1] != len(bitsets) or any(
                    a > b for a, b in zip(boundaries, boundaries[1:], strict=False)):
                raise _Invalid(f"Tree {i}: cat_boundaries does not go up from 0 to the "
                               f"{len(bitsets)} values of cat_threshold.")
            if any(not 0 <= bits < 2**32 for bits in bitsets):
                raise _Invalid(f"Tree {i}: a value of cat_threshold is out of range.")
            thresholds = tree[b"threshold"].split(b" ")
            start = int(offsets[i])
            used = []
            for node in np.flatnonzero(categorical[start:start + int(nodes[i])]):
                index = _category_list_index(thresholds[node])
                if index is None:
                    raise _Invalid(f"Tree {i}: threshold[{node}] = {_show(thresholds[node])} of a "
                                   "categorical split is not a category list index.")
                used.append(index)
            if sorted(used) != list(range(num_cat)):
                raise _Invalid(f"Tree {i}: the categorical splits do not use the category lists "
                               f"0 to {num_cat - 1} once each.")

    def _linear(self) -> None:
        top = self.max_feature_idx
        for i, tree in enumerate(self.trees):
            if tree[b"is_linear"] != b"1":
                continue
            leaves = int(self.leaves[i])
            counts = _int_list(tree[b"num_features"], f"Tree {i}: num_features")
            if len(counts) != leaves or any(not 0 <= c <= top + 1 for c in counts):
                raise _Invalid(f"Tree {i}: num_features is not one count of at most "
                               f"{top + 1} per leaf.")
            constants = tree[b"leaf_const"]
            if not _FLOATS.fullmatch(constants) or _count(constants) != leaves:
                raise _Invalid(f"Tree {i}: leaf_const is not {leaves} numbers.")
            for key, integer in ((b"leaf_features", True), (b"leaf_coeff", False)):
                value = tree[key]
                tokens = value.split()
                if len(tokens) != sum(counts):
                    raise _Invalid(f"Tree {i}: {key.decode()} has {len(tokens)} values, but "
                                   f"num_features adds up to {sum(counts)}.")
                # the exact spacing LightGBM writes: each leaf's values and a space, then a space
                rebuilt, at = [], 0
                for count in counts:
                    if count:
                        rebuilt.append(b" ".join(tokens[at:at + count]) + b" ")
                        at += count
                    rebuilt.append(b" ")
                joined = b" ".join(tokens)
                if b"".join(rebuilt) != value or not (
                        _ints_well_formed(joined) if integer else
                        not joined or _FLOATS.fullmatch(joined)):
                    raise _Invalid(f"Tree {i}: {key.decode()} is not laid out as LightGBM writes "
                                   "it.")
                if integer and any(not 0 <= int(t) <= top for t in tokens):
                    raise _Invalid(f"Tree {i}: a value of leaf_features is out of range "
                                   f"(max_feature_idx = {top}).")

    # -- after the trees -----------------------------------------------------------------

    def _tail(self, start: int) -> bool:
        """The sections after "end of trees"; whether the parameters say linear_tree."""
        lines = self.text[start:].split(b"\n")
        if lines[:2] != [b"", b"feature_importances:"]:
            raise _Invalid('"end of trees" is not followed by a blank line and '
                           '"feature_importances:".')
        names = set(self.feature_names)
        i = 2
        while i < len(lines) and lines[i]:
            name, eq, count = lines[i].rpartition(b"=")
            if not eq or name not in names or not count.isdigit():
                raise _Invalid(f"The feature importance line {_show(lines[i])} is not a feature "
                               "name and a count.")
            i += 1
        if lines[i + 1:i + 2] != [b"parameters:"]:
            raise _Invalid('The feature importances are not followed by "parameters:".')
        i += 2
        linear = False
        while i < len(lines) and lines[i] != b"end of parameters":
            line = lines[i]
            if line and not (line.startswith(b"[") and line.endswith(b"]") and b": " in line):
                raise _Invalid(f"The parameter line {_show(line)} is not of the form "
                               "[name: value].")
            if line.startswith(b"[linear_tree: "):  # LightGBM reads the next character
                if line not in (b"[linear_tree: 0]", b"[linear_tree: 1]"):
                    raise _Invalid(f"The parameter line {_show(line)} is not 0 or 1.")
                linear = line == b"[linear_tree: 1]"
            i += 1
        if i == len(lines):
            raise _Invalid('The parameters have no "end of parameters".')
        rest = lines[i + 1:]
        if len(rest) == 3 and rest[0] == b"" and rest[2] == b"" and rest[1].startswith(
                b"pandas_categorical:"):
            try:
                categories = json.loads(rest[1][len(b"pandas_categorical:"):])
                valid = categories is None or isinstance(categories, list)
            except ValueError:
                valid = False
            if not valid:
                raise _Invalid("The pandas_categorical line is not JSON null or a list.")
        elif rest != [b""]:
            raise _Invalid('Only a "pandas_categorical:" line may follow "end of parameters".')
        return linear


# Lists of numbers are checked a byte pair at a time, at C speed: bytes.translate maps each
# byte to a one-bit class, and each class to the classes allowed after it; a pair is allowed
# when the second byte's class is among those its first byte allows. (A regular expression
# over the numbers of a large model costs several times LightGBM's own load.)
_EDGE, _DIGIT, _SPACE, _MINUS, _PLUS, _DOT, _EXP = (1 << bit for bit in range(7))


def _class_table() -> bytes:
    table = bytearray(256)  # 0: a byte that has no place in a list of numbers
    for byte in b"0123456789":
        table[byte] = _DIGIT
    for byte, cls in ((b"\n", _EDGE), (b" ", _SPACE), (b"-", _MINUS), (b"+", _PLUS),
                      (b".", _DOT), (b"e", _EXP)):
        table[byte[0]] = cls
    return bytes(table)


def _next_table(*pairs: tuple[int, int]) -> bytes:
    table = bytearray(256)
    for first, second in pairs:
        table[first] |= second
    return bytes(table)


_CLASS_OF = _class_table()
_INT_PAIRS = (
    (_EDGE, _EDGE), (_EDGE, _DIGIT), (_EDGE, _MINUS), (_DIGIT, _DIGIT), (_DIGIT, _SPACE),
    (_DIGIT, _EDGE), (_MINUS, _DIGIT), (_SPACE, _DIGIT), (_SPACE, _MINUS),
)
_INT_NEXT = _next_table(*_INT_PAIRS)
# digits, then an optional fraction and an optional exponent; "1.2.3" gets through, and
# LightGBM reads it (as 1.2) without error
_NUMBER_NEXT = _next_table(
    *_INT_PAIRS, (_DIGIT, _DOT), (_DOT, _DIGIT), (_DIGIT, _EXP), (_EXP, _DIGIT),
    (_EXP, _MINUS), (_EXP, _PLUS), (_PLUS, _DIGIT),
)


def _classes(joined: bytes, integer: bool) -> np.ndarray | None:
    """The byte classes of ``joined`` (lists separated by newlines, with a newline at both
    ends), or None unless it is numbers separated by single spaces."""
    translated = joined.translate(_CLASS_OF)
    allowed = translated.translate(_INT_NEXT if integer else _NUMBER_NEXT)
    classes = np.frombuffer(translated, dtype=np.uint8)
    return classes if (np.frombuffer(allowed, dtype=np.uint8)[:-1] & classes[1:]).all() else None


def _numbers(key: bytes, values: list[bytes], integer: bool, parse: bool = False
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """Check that each value is numbers (integers if ``integer``) separated by single spaces;
    the count of each, and (``parse``) all of them parsed in order."""
    joined = b"\n".join([b"", *values, b""])
    classes = _classes(joined, integer)
    if classes is None:
        # inf and nan (rare: they are checked the slow way), or a fault to locate
        if integer or not all(_FLOATS.fullmatch(v) for v in values if v):
            _locate_bad_number(key, values, integer)
        classes = np.frombuffer(joined.translate(_CLASS_OF), dtype=np.uint8)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    starts = np.cumsum(lengths + 1) - lengths  # of each list in ``joined`` (after its newline)
    # numbers = spaces + 1 in a non-empty list; the segment of a list runs to the next one's
    # newline, which holds no space
    spaces = np.add.reduceat(classes == _SPACE, starts - 1, dtype=np.int64)
    counts = spaces + (lengths > 0)
    if not parse:
        return counts, None
    return counts, _parse_integers(joined, classes, int(counts.sum()))


def _parse_integers(joined: bytes, classes: np.ndarray, total: int) -> np.ndarray:
    """The integers of well-formed lists, in order (vectorized: a few passes over the bytes,
    then one step per digit position)."""
    # +1 where a run of digits starts, -1 after it ends (``joined`` starts and ends with a
    # newline, so every run has both)
    edges = np.diff((classes == _DIGIT).view(np.int8))
    first = np.flatnonzero(edges == 1) + 1
    last = np.flatnonzero(edges == -1)
    if first.size != total or last.size != total:
        raise _Invalid("The numbers of a list could not be read.")
    width = last - first + 1
    digits = np.frombuffer(joined, dtype=np.uint8)
    values = np.zeros(total, dtype=np.int64)
    for k in range(min(int(width.max(initial=0)), 12)):  # 12 digits: out of any range here
        values += np.where(width > k, digits[last - k].astype(np.int64) - 48, 0) * 10**k
    values[width > 12] = 10**12
    values[digits[first - 1] == 45] *= -1  # a minus sign before the digits
    return values


def _int(value: bytes, what: str, low: int, high: int) -> int:
    if not _INT.fullmatch(value):
        raise _Invalid(f"{what} = {_show(value)} is not an integer.")
    number = int(value)
    if not low <= number <= high:
        raise _Invalid(f"{what} = {number} is out of range ({low} to {high}).")
    return number


def _category_list_index(token: bytes) -> int | None:
    """The index into cat_boundaries that LightGBM takes from a categorical threshold, or None
    when the threshold is not a whole number in int range."""
    try:
        value = float(token)
    except ValueError:
        return None
    if value != value or not 0 <= value < 2**31 or value != int(value):
        return None
    return int(value)


def _int_list(value: bytes, what: str) -> list[int]:
    if not value or not _ints_well_formed(value):
        raise _Invalid(f"{what} is not a list of integers.")
    return [int(token) for token in value.split(b" ")]


def _locate_bad_number(key: bytes, values: list[bytes], integer: bool) -> None:
    """Raise the finding for the first malformed value of ``key`` (the slow path)."""
    token = _INT if integer else _FLOAT_ONE
    for i, value in enumerate(values):
        if not value:
            continue
        for position, item in enumerate(value.split(b" ")):
            if not token.fullmatch(item):
                what = "an empty value" if not item else f"{_show(item)}"
                kind = "an integer" if integer else "a number"
                raise _Invalid(f"Tree {i}: {key.decode()}[{position}] is {what}, not {kind}.")
    raise _Invalid(f"The values of {key.decode()} are not numbers separated by single spaces.")


def _key_difference(found: list[bytes], expected: list[bytes]) -> str:
    for key in expected:
        if key not in found:
            return f'the field "{key.decode()}" is missing.'
    for key in found:
        if key not in expected:
            return f'the field {_show(key)} is not expected here.'
    return "the fields are not in the order LightGBM writes them."


# -- scikit-learn objects (skops) ----------------------------------------------------------


def sklearn_object(obj: Any, fmt: str = SKOPS) -> None:
    """Refuse (DataCorrupted) a loaded scikit-learn object whose native structures scikit-learn's
    Cython code would index out of bounds: decision trees, histogram gradient boosting
    predictors, KD and ball trees, and the arrays of gradient boosting, SVMs and k-means that
    are read unchecked. What scikit-learn already checks when it loads or predicts is not
    repeated."""
    try:
        _SklearnObjects(obj).check()
    except _Invalid as exc:
        raise _refuse(fmt, exc) from None


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
                raise _Invalid(f"{path} is a histogram gradient boosting predictor outside its "
                               "estimator.")
            tree = getattr(obj, "tree_", None)
            if _NATIVE.get(_type_name(tree)) == "tree":
                expected = getattr(obj, "n_features_in_", tree.n_features)
                if tree.n_features != expected:
                    raise _Invalid(f"{path}.tree_ has {tree.n_features} features, but its "
                                   f"estimator has {expected}.")
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
        raise _Invalid(f"{path} has node_count = {count} for {capacity} stored nodes.")
    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    nodes = np.arange(count)
    leaf = left == -1
    bad = np.flatnonzero(leaf != (right == -1))
    if bad.size:
        raise _Invalid(f"{path}: node {bad[0]} has one child.")
    for name, child in (("children_left", left), ("children_right", right)):
        bad = np.flatnonzero(~leaf & ((child <= nodes) | (child >= count)))
        if bad.size:
            i = bad[0]
            raise _Invalid(f"{path}: {name}[{i}] = {child[i]} is out of range (the tree has "
                           f"{count} nodes, and children come after their parent).")
    parents = np.bincount(np.concatenate((left[~leaf], right[~leaf])), minlength=count)
    parents[0] += 1
    bad = np.flatnonzero(parents != 1)
    if bad.size:
        raise _Invalid(f"{path}: node {bad[0]} is the child of {parents[bad[0]] - (bad[0] == 0)} "
                       "nodes.")
    feature = np.asarray(tree.feature, dtype=np.int64)
    bad = np.flatnonzero(~leaf & ((feature < 0) | (feature >= tree.n_features)))
    if bad.size:
        i = bad[0]
        raise _Invalid(f"{path}: feature[{i}] = {feature[i]} is out of range (the tree has "
                       f"{tree.n_features} features).")
    # the depth, level by level (a tree, now: each node has one parent, numbered before it)
    depth, level = -1, np.zeros(1, dtype=np.int64)
    while level.size:
        depth += 1
        level = level[~leaf[level]]
        level = np.concatenate((left[level], right[level]))
    if tree.max_depth != depth:  # decision_path allocates max_depth + 1 per sample
        raise _Invalid(f"{path} has max_depth = {tree.max_depth}, but its depth is {depth}.")


def _check_hist_gradient_boosting(path: str, estimator: Any) -> list[int]:
    """The predictors of a HistGradientBoosting estimator (TreePredictor.__setstate__ only
    casts the node dtype); the ids of the predictors checked."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    n_features = getattr(estimator, "n_features_in_", None)
    categorical = np.asarray(getattr(estimator._bin_mapper, "is_categorical_", ()))
    if not isinstance(n_features, int) or categorical.shape != (n_features,):
        raise _Invalid(f"{path} has n_features_in_ = {n_features!r} and categorical flags of "
                       f"shape {categorical.shape}.")
    checked = []
    predictors = estimator._predictors
    if not isinstance(predictors, list) or not all(isinstance(p, list) for p in predictors):
        raise _Invalid(f"{path}._predictors is not a list of lists.")
    for i, iteration in enumerate(predictors):
        for k, predictor in enumerate(iteration):
            where = f"{path}._predictors[{i}][{k}]"
            if not isinstance(predictor, TreePredictor):
                raise _Invalid(f"{where} is a {_type_name(predictor)}, not a TreePredictor.")
            nodes = predictor.nodes
            if (not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE
                    or nodes.ndim != 1 or nodes.size == 0):
                raise _Invalid(f"{where}.nodes is not a non-empty array of predictor nodes.")
            for name in ("raw_left_cat_bitsets", "binned_left_cat_bitsets"):
                bitsets = getattr(predictor, name)
                if (not isinstance(bitsets, np.ndarray) or bitsets.ndim != 2
                        or bitsets.shape[1] != 8 or bitsets.dtype != np.uint32):
                    raise _Invalid(f"{where}.{name} is not an array of 8 x 32-bit bitsets.")
            _check_predictor_nodes(where, nodes, n_features, categorical,
                                   predictor.raw_left_cat_bitsets.shape[0])
            checked.append(id(predictor))
    return checked


def _check_predictor_nodes(where: str, nodes: np.ndarray, n_features: int,
                           categorical: np.ndarray, bitsets: int) -> None:
    count = nodes.size
    index = np.arange(count)
    inner = nodes["is_leaf"] == 0
    for name in ("left", "right"):
        child = nodes[name].astype(np.int64)
        bad = np.flatnonzero(inner & ((child <= index) | (child >= count)))
        if bad.size:
            i = bad[0]
            raise _Invalid(f"{where}: nodes[{i}].{name} = {child[i]} is out of range (the "
                           f"predictor has {count} nodes, and children come after their "
                           "parent).")
    children = np.concatenate((nodes["left"][inner], nodes["right"][inner])).astype(np.int64)
    parents = np.bincount(children, minlength=count)
    parents[0] += 1
    bad = np.flatnonzero(parents != 1)
    if bad.size:
        raise _Invalid(f"{where}: node {bad[0]} is the child of "
                       f"{parents[bad[0]] - (bad[0] == 0)} nodes.")
    feature = nodes["feature_idx"].astype(np.int64)
    bad = np.flatnonzero(inner & ((feature < 0) | (feature >= n_features)))
    if bad.size:
        i = bad[0]
        raise _Invalid(f"{where}: nodes[{i}].feature_idx = {feature[i]} is out of range (the "
                       f"estimator has {n_features} features).")
    split = inner & (nodes["is_categorical"] != 0)
    bad = np.flatnonzero(split & ((nodes["bitset_idx"].astype(np.int64) >= bitsets)
                                  | (categorical[np.where(inner, feature, 0)] == 0)))
    if bad.size:
        i = bad[0]
        raise _Invalid(f"{where}: nodes[{i}] is a categorical split on a feature that is not "
                       f"categorical, or with bitset_idx out of range ({bitsets} bitsets).")


def _check_binary_tree(path: str, tree: Any, kd: bool) -> None:
    """A KDTree or BallTree, whose queries walk node i to nodes 2i+1 and 2i+2 and read
    idx_array, data and node_bounds unchecked (__setstate__ only assigns the arrays)."""
    state = tree.__getstate__()  # the arrays as stored (no copies), the metric, the weights
    data, index, node_data, bounds = state[:4]
    levels, metric, sample_weight = state[5], state[11], state[12]
    samples, features = data.shape
    if samples == 0 or not np.array_equal(np.sort(index), np.arange(samples)):
        raise _Invalid(f"{path}: idx_array is not a permutation of the {samples} samples.")
    count = node_data.shape[0]
    if count == 0 or count != 2**levels - 1 or count != state[6]:
        raise _Invalid(f"{path} has {count} nodes for {levels} levels.")
    if bounds.shape != (2 if kd else 1, count, features):
        raise _Invalid(f"{path}: node_bounds has shape {bounds.shape}, not "
                       f"{(2 if kd else 1, count, features)}.")
    start = node_data["idx_start"].astype(np.int64)
    end = node_data["idx_end"].astype(np.int64)
    bad = np.flatnonzero((start < 0) | (start > end) | (end > samples))
    if bad.size:
        i = bad[0]
        raise _Invalid(f"{path}: node {i} covers samples {start[i]} to {end[i]} of {samples}.")
    inner = np.flatnonzero(node_data["is_leaf"] == 0)
    if inner.size and 2 * inner.max() + 2 >= count:
        raise _Invalid(f"{path}: node {inner.max()} is not a leaf but has no children.")
    if sample_weight is not None and np.shape(sample_weight) != (samples,):
        raise _Invalid(f"{path}: sample_weight does not have one weight per sample.")
    vector = np.asarray(metric.__getstate__()[1])
    weighted = type(metric).__name__.startswith("MinkowskiDistance")  # its weights, per feature
    if weighted and vector.size and vector.shape != (features,):
        raise _Invalid(f"{path}: the metric has {vector.size} weights for {features} features.")


def _check_arrays(path: str, obj: Any) -> None:
    """Arrays of gradient boosting, SVMs and k-means that compiled code reads with sizes
    taken elsewhere."""
    module = type(obj).__module__
    if module == "sklearn.ensemble._gb" and isinstance(getattr(obj, "estimators_", None),
                                                      np.ndarray):
        # predict_stages writes tree k of each stage into column k of the initial predictions
        stages = obj.estimators_
        width = getattr(obj, "n_trees_per_iteration_", None)
        init = getattr(obj, "init_", "zero")
        if stages.ndim != 2 or stages.shape[1] != width or (
                width != 1 and init != "zero" and np.size(getattr(init, "classes_", ())) != width):
            raise _Invalid(f"{path}: estimators_ has shape {stages.shape} for "
                           f"{width} trees per iteration.")
    if module.startswith("sklearn.svm") and hasattr(obj, "_n_support") and hasattr(
            obj, "support_vectors_"):
        classes = np.asarray(obj._n_support).size
        vectors = np.asarray(obj.support_).size
        pairs = classes * (classes - 1) // 2
        dual = np.shape(obj._dual_coef_)
        if (dual != (classes - 1, vectors) or np.shape(obj._intercept_) != (pairs,)
                or np.shape(obj.support_vectors_)[:1] not in ((vectors,), (0,))
                or np.size(getattr(obj, "_probA", ())) not in (0, pairs)
                or np.size(getattr(obj, "_probB", ())) not in (0, pairs)):
            raise _Invalid(f"{path}: the support vector arrays do not match: {classes} classes, "
                           f"{vectors} support vectors, dual coefficients of shape {dual}.")
        support = np.asarray(obj.support_)
        if support.size and not 0 <= support.min() <= support.max() < obj.shape_fit_[0]:
            raise _Invalid(f"{path}: support_ indexes samples out of range.")
    elif hasattr(obj, "cluster_centers_") and module.startswith("sklearn.cluster._kmeans"):
        centers = np.shape(obj.cluster_centers_)
        if len(centers) != 2 or centers[1] != getattr(obj, "n_features_in_", None):
            raise _Invalid(f"{path}: cluster_centers_ has shape {centers}, for "
                           f"{getattr(obj, 'n_features_in_', None)} features.")


# -- XGBoost JSON --------------------------------------------------------------------------

XGBOOST = "xgboost-json"

# What XGBoost (2 and 3) writes for a tree, and nothing else
_XGB_TREE_KEYS = frozenset({
    "base_weights", "categories", "categories_nodes", "categories_segments", "categories_sizes",
    "default_left", "id", "left_children", "loss_changes", "parents", "right_children",
    "split_conditions", "split_indices", "split_type", "sum_hessian", "tree_param",
})
_XGB_NODE_INTS = ("left_children", "right_children", "parents", "split_indices", "default_left",
                  "split_type")
_XGB_NODE_FLOATS = ("split_conditions", "base_weights", "loss_changes", "sum_hessian")
_XGB_ROOT_PARENTS = (-1, _INT32_MAX)  # XGBoost writes the root's parent as 2**31 - 1
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
    except _Invalid as exc:
        raise _refuse(XGBOOST, exc) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [key for key, _ in pairs]
        key = next(key for key in keys if keys.count(key) > 1)
        # XGBoost's parser and Python's could keep different values: neither is trusted
        raise _Invalid(f'The key "{key}" appears twice in one object.')
    return result


def _object(value: Any, what: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
            ) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{what} is not an object.")
    for key in required:
        if key not in value:
            raise _Invalid(f'{what} has no "{key}".')
    extra = sorted(set(value) - set(required) - set(optional))
    if extra:
        raise _Invalid(f"{what} has the unexpected key {_show(extra[0])}.")
    return value


def _param_int(params: dict[str, Any], key: str, what: str, low: int, high: int) -> int:
    """An integer parameter, which XGBoost writes as a decimal string."""
    value = params[key]
    if not isinstance(value, str) or not re.fullmatch(r"-?[0-9]{1,10}", value):
        raise _Invalid(f'{what}: "{key}" = {_show(str(value))} is not an integer in a string.')
    number = int(value)
    if not low <= number <= high:
        raise _Invalid(f'{what}: "{key}" = {number} is out of range ({low} to {high}).')
    return number


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_array(value: Any, what: str, low: int, high: int) -> np.ndarray:
    if not isinstance(value, list) or not all(map(_is_int, value)):
        raise _Invalid(f"{what} is not an array of integers.")
    array = np.array([v if low <= v <= high else low - 1 for v in value], dtype=np.int64)
    bad = np.flatnonzero(array < low)
    if bad.size:
        raise _Invalid(f"{what}[{bad[0]}] = {value[bad[0]]} is out of range ({low} to {high}).")
    return array


def _float_array(value: Any, what: str) -> None:
    if not isinstance(value, list) or not all(map(_is_number, value)):
        raise _Invalid(f"{what} is not an array of numbers.")


_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|-?inf|nan",
                     re.IGNORECASE)


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
            raise _Invalid('The file does not start with \'{"\' as XGBoost\'s JSON does.')
        try:
            document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _Invalid(f"The file is not JSON: {exc}.") from None
        except RecursionError:
            raise _Invalid("The file is JSON nested too deeply.") from None
        top = _object(document, "The document", ("learner", "version"))
        version = top["version"]
        if (not isinstance(version, list) or len(version) != 3
                or not all(_is_int(v) and 0 <= v < 1000 for v in version)):
            raise _Invalid("The version is not three small integers.")
        learner = _object(top["learner"], "The learner",
                          ("gradient_booster", "learner_model_param", "objective"),
                          ("attributes", "feature_names", "feature_types"))
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
                raise _Invalid("The DART booster's gbtree is not named \"gbtree\".")
            count = self._trees(inner["model"])
            weights = booster["weight_drop"]
            _float_array(weights, "weight_drop")
            if len(weights) != count:  # the predictor reads one weight per tree
                raise _Invalid(f"weight_drop has {len(weights)} values for {count} trees.")
        elif name == "gblinear":
            _object(booster, "The linear booster", ("name", "model"))
            model = _object(booster["model"], "The linear model", ("weights",),
                            ("boosted_rounds",))
            weights = model["weights"]
            _float_array(weights, "The linear model's weights")
            expected = (self.num_feature + 1) * self.groups
            if len(weights) != expected:  # read as a (features + bias) x groups matrix
                raise _Invalid(f"The linear model has {len(weights)} weights instead of "
                               f"(num_feature + 1) x {self.groups} = {expected}.")
            if "boosted_rounds" in model and not (
                    _is_int(model["boosted_rounds"]) and model["boosted_rounds"] >= 0):
                raise _Invalid("boosted_rounds is not a count.")
        else:
            raise _Invalid(f"The gradient booster {_show(str(name))} is not gbtree, dart or "
                           "gblinear.")

    def _learner_params(self, learner: dict[str, Any]) -> None:
        params = _object(learner["learner_model_param"], "learner_model_param",
                         ("base_score", "num_class", "num_feature"),
                         ("boost_from_average", "num_target"))
        what = "learner_model_param"
        self.num_feature = _param_int(params, "num_feature", what, 1, _INT32_MAX - 1)
        num_class = _param_int(params, "num_class", what, 0, 1_000_000)
        if num_class == 1:
            raise _Invalid('learner_model_param: "num_class" is 1 (XGBoost writes 0 for one '
                           "output).")
        if "num_target" in params:
            # pyml fits one model per target: a multi-target booster is none of its own
            _param_int(params, "num_target", what, 1, 1)
        if "boost_from_average" in params:
            _param_int(params, "boost_from_average", what, 0, 1)
        self.groups = max(num_class, 1)
        score = params["base_score"]
        values = score[1:-1].split(",") if isinstance(score, str) and score.startswith(
            "[") and score.endswith("]") else [score]
        if not all(isinstance(v, str) and _NUMBER.fullmatch(v) for v in values):
            raise _Invalid(f"base_score {_show(str(score))} is not a number or a list of "
                           "numbers.")
        if len(values) not in (1, self.groups):
            raise _Invalid(f"base_score has {len(values)} values for {self.groups} outputs.")
        for key in ("feature_names", "feature_types"):
            names = learner.get(key, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise _Invalid(f"{key} is not an array of strings.")
            if names and len(names) != self.num_feature:
                raise _Invalid(f"{key} has {len(names)} entries for num_feature = "
                               f"{self.num_feature}.")
        types = learner.get("feature_types", [])
        unknown = [t for t in types if t not in _XGB_FEATURE_TYPES]
        if unknown:
            raise _Invalid(f"feature_types has the unknown type {_show(unknown[0])}.")
        self.categorical_features = {i for i, t in enumerate(types) if t == "c"}
        attributes = learner.get("attributes", {})
        if not isinstance(attributes, dict) or not all(
                isinstance(v, str) for v in attributes.values()):
            raise _Invalid("attributes is not an object of strings.")
        objective = learner["objective"]
        if not isinstance(objective, dict) or not isinstance(objective.get("name"), str):
            raise _Invalid("The objective has no name.")

    def _trees(self, model: Any) -> int:
        """Check a gbtree model; its number of trees."""
        model = _object(model, "The tree model", ("gbtree_model_param", "tree_info", "trees"),
                        ("cats", "iteration_indptr"))
        params = _object(model["gbtree_model_param"], "gbtree_model_param",
                         ("num_parallel_tree", "num_trees"))
        count = _param_int(params, "num_trees", "gbtree_model_param", 0, _INT32_MAX)
        parallel = _param_int(params, "num_parallel_tree", "gbtree_model_param", 1, _INT32_MAX)
        trees = model["trees"]
        if not isinstance(trees, list) or len(trees) != count:
            raise _Invalid(f"num_trees = {count}, but the model has "
                           f"{len(trees) if isinstance(trees, list) else 'no array of'} trees.")
        info = _int_array(model["tree_info"], "tree_info", 0, self.groups - 1)
        if info.size != count:
            raise _Invalid(f"tree_info has {info.size} values for {count} trees.")
        if "iteration_indptr" in model:
            # the trees of each boosting round: [indptr[i], indptr[i + 1])
            indptr = _int_array(model["iteration_indptr"], "iteration_indptr", 0, count)
            if indptr.size == 0 or indptr[0] != 0 or indptr[-1] != count or (
                    np.diff(indptr) <= 0).any():
                raise _Invalid(f"iteration_indptr does not go up from 0 to the {count} trees.")
            if (np.diff(indptr) % parallel).any() and parallel > 1:
                raise _Invalid(f"iteration_indptr has a round that is not a multiple of "
                               f"num_parallel_tree = {parallel} trees.")
        if "cats" in model:
            # XGBoost 3's recoding of string categories (pandas or Arrow input): pyml passes
            # numbers, so it is empty
            cats = _object(model["cats"], "cats", ("enc", "feature_segments", "sorted_idx"))
            if any(cats[key] != [] for key in cats):
                raise _Invalid("cats is not empty: pyml passes no string categories.")
        for i, tree in enumerate(trees):
            self._tree(i, tree)
        return count

    def _tree(self, i: int, tree: Any) -> None:
        where = f"Tree {i}"
        if not isinstance(tree, dict):
            raise _Invalid(f"{where} is not an object.")
        missing = sorted(_XGB_TREE_KEYS - set(tree))
        if missing:
            raise _Invalid(f'{where} has no "{missing[0]}".')
        extra = sorted(set(tree) - _XGB_TREE_KEYS)
        if extra:
            raise _Invalid(f"{where} has the unexpected key {_show(extra[0])}.")
        if tree["id"] != i or not _is_int(tree["id"]):
            raise _Invalid(f'{where} has "id" = {_show(str(tree["id"]))}.')
        params = _object(tree["tree_param"], f"{where}: tree_param",
                         ("num_feature", "num_nodes", "size_leaf_vector"), ("num_deleted",))
        what = f"{where}: tree_param"
        n = _param_int(params, "num_nodes", what, 1, _INT32_MAX)
        features = _param_int(params, "num_feature", what, 0, _INT32_MAX)
        if features != self.num_feature:
            raise _Invalid(f"{what}: num_feature = {features} differs from the learner's "
                           f"{self.num_feature}.")
        # a vector leaf (a multi-target tree) is not a model pyml makes
        _param_int(params, "size_leaf_vector", what, 0, 1)
        deleted_count = _param_int(params, "num_deleted", what, 0, n - 1) if (
            "num_deleted" in params) else 0
        arrays = {}
        for key in _XGB_NODE_INTS:
            value = tree[key]
            if not isinstance(value, list) or len(value) != n:
                size = len(value) if isinstance(value, list) else "no array of"
                raise _Invalid(f"{where}: {key} has {size} values instead of num_nodes = {n}.")
            low, high = (0, 1) if key in ("default_left", "split_type") else (
                0 if key == "split_indices" else -1, _INT32_MAX)
            arrays[key] = _int_array(value, f"{where}: {key}", low, high)
        for key in _XGB_NODE_FLOATS:
            value = tree[key]
            if not isinstance(value, list) or len(value) != n:
                size = len(value) if isinstance(value, list) else "no array of"
                raise _Invalid(f"{where}: {key} has {size} values instead of num_nodes = {n}.")
            _float_array(value, f"{where}: {key}")
        left, right = arrays["left_children"], arrays["right_children"]
        parents, split = arrays["parents"], arrays["split_indices"]
        index = np.arange(n)
        leaf = left == -1
        bad = np.flatnonzero(leaf & (right != -1))
        if bad.size:
            raise _Invalid(f"{where}: node {bad[0]} has right_children = {right[bad[0]]} but no "
                           "left child.")
        bad = np.flatnonzero(~leaf & ((left < 1) | (left >= n - 1)))
        if bad.size:
            raise _Invalid(f"{where}: left_children[{bad[0]}] = {left[bad[0]]} is out of range "
                           f"(the tree has {n} nodes).")
        bad = np.flatnonzero(~leaf & (right != left + 1))
        if bad.size:
            # the predictor goes right to left_children + 1
            raise _Invalid(f"{where}: right_children[{bad[0]}] = {right[bad[0]]} is not "
                           f"left_children[{bad[0]}] + 1 = {left[bad[0]] + 1}.")
        # a node pruned away (tree_method "exact" with gamma): XGBoost marks it with the
        # largest split index and default_left, and leaves it in the array, unreachable
        deleted = (split == _INT32_MAX) & (arrays["default_left"] == 1)
        if int(deleted.sum()) != deleted_count:
            raise _Invalid(f"{where}: tree_param: num_deleted = {deleted_count}, but "
                           f"{int(deleted.sum())} nodes are marked deleted.")
        bad = np.flatnonzero(deleted & ~leaf)
        if bad.size:
            raise _Invalid(f"{where}: node {bad[0]} is marked deleted but has children.")
        children = np.concatenate((left[~leaf], right[~leaf]))
        count = np.bincount(children, minlength=n)
        count[0] += 1  # the root
        bad = np.flatnonzero(count != np.where(deleted, 0, 1))
        if bad.size:
            node = int(bad[0])
            state = " deleted" if deleted[node] else ""
            raise _Invalid(f"{where}:{state} node {node} is the child of "
                           f"{count[node] - (node == 0)} nodes.")
        expected = np.full(n, -1, dtype=np.int64)
        expected[left[~leaf]] = index[~leaf]
        expected[right[~leaf]] = index[~leaf]
        if parents[0] not in _XGB_ROOT_PARENTS:
            raise _Invalid(f"{where}: parents[0] = {parents[0]}, but node 0 is the root.")
        # the loader reads the parent of every node, deleted ones too (theirs is the node
        # they were pruned from)
        bad = np.flatnonzero(np.where(deleted, parents >= n, parents != expected)[1:]) + 1
        if bad.size:
            node = int(bad[0])
            if deleted[node]:
                raise _Invalid(f"{where}: parents[{node}] = {parents[node]} is out of range "
                               f"(the tree has {n} nodes).")
            raise _Invalid(f"{where}: parents[{node}] = {parents[node]}, but node {node} is a "
                           f"child of node {expected[node]}.")
        # one parent each: a node the root does not reach is on a cycle
        reached, level, depth = 0, np.zeros(1, dtype=np.int64), 0
        while level.size:
            depth += 1
            if depth > MAX_DEPTH:
                raise _Invalid(f"{where} is deeper than {MAX_DEPTH} levels.")
            reached += level.size
            level = level[~leaf[level]]
            level = np.concatenate((left[level], right[level]))
        if reached != n - deleted_count:
            raise _Invalid(f"{where}: {n - deleted_count - reached} of its nodes cannot be "
                           "reached from the root (the children form a cycle).")
        bad = np.flatnonzero(~leaf & (split >= self.num_feature))
        if bad.size:
            raise _Invalid(f"{where}: split_indices[{bad[0]}] = {split[bad[0]]} is out of range "
                           f"(num_feature = {self.num_feature}).")
        self._categories(where, tree, arrays["split_type"], leaf, split)

    def _categories(self, where: str, tree: dict[str, Any], split_type: np.ndarray,
                    leaf: np.ndarray, split: np.ndarray) -> None:
        bad = np.flatnonzero(leaf & (split_type != 0))
        if bad.size:
            raise _Invalid(f"{where}: node {bad[0]} is a leaf with a categorical split_type.")
        if self.categorical_features:
            bad = np.flatnonzero((split_type == 1) & ~np.isin(
                split, list(self.categorical_features)))
        else:
            bad = np.flatnonzero(split_type == 1)
        if bad.size:
            raise _Invalid(f"{where}: node {bad[0]} is a categorical split on feature "
                           f"{split[bad[0]]}, which feature_types does not make categorical.")
        nodes = _int_array(tree["categories_nodes"], f"{where}: categories_nodes", 0,
                           _INT32_MAX)
        if not np.array_equal(nodes, np.flatnonzero(split_type == 1)):
            raise _Invalid(f"{where}: categories_nodes is not the list of its categorical "
                           "splits, in order.")
        k = nodes.size
        categories = _int_array(tree["categories"], f"{where}: categories", 0,
                                _XGB_MAX_CATEGORY - 1)
        segments = _int_array(tree["categories_segments"], f"{where}: categories_segments", 0,
                              categories.size)
        sizes = _int_array(tree["categories_sizes"], f"{where}: categories_sizes", 1,
                           categories.size)
        if segments.size != k or sizes.size != k:
            raise _Invalid(f"{where}: categories_segments and categories_sizes have "
                           f"{segments.size} and {sizes.size} values for {k} categorical "
                           "splits.")
        starts = np.concatenate(([0], np.cumsum(sizes)))
        if not np.array_equal(segments, starts[:-1]) or starts[-1] != categories.size:
            raise _Invalid(f"{where}: categories_segments and categories_sizes do not cut the "
                           f"{categories.size} categories into consecutive lists.")
        for node, start, end in zip(nodes, starts[:-1], starts[1:], strict=True):
            if (np.diff(categories[start:end]) <= 0).any():
                raise _Invalid(f"{where}: the categories of node {node} are not in increasing "
                               "order.")
