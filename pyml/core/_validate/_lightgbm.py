"""LightGBM's text model format, read completely before LightGBM sees it."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from pyml.core._validate._common import (
    INT32_MAX,
    LIGHTGBM,
    MAX_DEPTH,
    MAX_LEAVES,
    Invalid,
    refuse,
    show,
)

# -- LightGBM text -------------------------------------------------------------------------


def lightgbm_text(data: bytes) -> LightGBMText:
    """Refuse (DataCorrupted) a LightGBM text model that is not exactly what LightGBM writes;
    what was read of an accepted one (its header, trees and the parsed child indexes)."""
    model = LightGBMText(data)
    try:
        model.check()
    except Invalid as exc:
        raise refuse(LIGHTGBM, exc) from None
    return model


_INT = re.compile(rb"-?[0-9]{1,10}")
_FLOAT = rb"-?(?:[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?|inf|nan)"
_FLOAT_ONE = re.compile(_FLOAT)
_FLOATS = re.compile(rb"(?:%s )*%s" % (_FLOAT, _FLOAT))
_FEATURE_INFO = re.compile(rb"none|\[" + _FLOAT + rb":" + _FLOAT + rb"\]|-?[0-9]+(?::-?[0-9]+)*")
_OBJECTIVES = frozenset(
    {
        b"regression",
        b"regression_l1",
        b"quantile",
        b"huber",
        b"fair",
        b"poisson",
        b"binary",
        b"lambdarank",
        b"rank_xendcg",
        b"multiclass",
        b"multiclassova",
        b"cross_entropy",
        b"cross_entropy_lambda",
        b"mape",
        b"gamma",
        b"tweedie",
        b"custom",
    }
)
_MULTICLASS = (b"multiclass", b"multiclassova")
_HEADER_REQUIRED = (
    b"version",
    b"num_class",
    b"num_tree_per_iteration",
    b"label_index",
    b"max_feature_idx",
    b"objective",
    b"feature_names",
    b"feature_infos",
    b"tree_sizes",
)
_HEADER_KEYS = frozenset({*_HEADER_REQUIRED, b"average_output", b"monotone_constraints"})

# The fields of a tree block, in the order LightGBM writes them; the number of values of
# each: "n" internal nodes (num_leaves - 1), "L" leaves, "1" a scalar, "*" special.
_TREE_HEAD = (
    (b"num_leaves", "1"),
    (b"num_cat", "1"),
    (b"split_feature", "n"),
    (b"split_gain", "n"),
    (b"threshold", "n"),
    (b"decision_type", "n"),
    (b"left_child", "n"),
    (b"right_child", "n"),
    (b"leaf_value", "L"),
    (b"leaf_weight", "L"),
    (b"leaf_count", "L"),
    (b"internal_value", "n"),
    (b"internal_weight", "n"),
    (b"internal_count", "n"),
)
_TREE_CATEGORICAL = ((b"cat_boundaries", "*"), (b"cat_threshold", "*"))
_TREE_LINEAR = (
    (b"leaf_const", "L"),
    (b"num_features", "L"),
    (b"leaf_features", "*"),
    (b"leaf_coeff", "*"),
)
_SIZES = dict((*_TREE_HEAD, *_TREE_CATEGORICAL, *_TREE_LINEAR))
_INT_FIELDS = (
    b"split_feature",
    b"decision_type",
    b"left_child",
    b"right_child",
    b"internal_count",
    b"leaf_count",
)
_INDEXES = (b"split_feature", b"decision_type", b"left_child", b"right_child")  # parsed
_FLOAT_FIELDS = (
    b"split_gain",
    b"threshold",
    b"internal_value",
    b"internal_weight",
    b"leaf_value",
    b"leaf_weight",
)


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


class LightGBMText:
    """One pass over a LightGBM text model; :meth:`check` raises Invalid at the first fault.
    After a check: the header's objective and ``average_output``, the trees' fields, and
    ``indexes``, the split features, decision types and children of all trees' internal
    nodes, parsed and in range (each tree one acyclic binary tree)."""

    def __init__(self, data: bytes):
        self.text = data
        self.max_feature_idx = 0
        self.num_class = 1
        self.objective = b""
        self.average_output = False
        self.indexes: dict[bytes, np.ndarray] = {}
        self.feature_names: list[bytes] = []
        self.trees: list[dict[bytes, bytes]] = []
        self.leaves = np.zeros(0, dtype=np.int64)
        self.linear = np.zeros(0, dtype=bool)

    def check(self) -> None:
        text = self.text
        if b"\0" in text:
            # LightGBM reads the text as a C string: it would stop at the NUL byte
            offset = text.index(b"\0")
            raise Invalid(f"The file has a NUL byte at offset {offset}.")
        if b"\r" in text:
            raise Invalid("The file has carriage returns: LightGBM writes plain newlines.")
        start = text.find(b"\n\nTree=")
        if start < 0:
            raise Invalid('The file has no tree: no "Tree=" line after the header.')
        sizes = self._header(text[:start])
        end = self._tree_blocks(start + 2, sizes)
        self._tree_numbers()
        linear = self._tail(end)
        # LightGBM takes "linear" from the parameters (it then refuses contributions), and
        # predicts each tree as its is_linear says
        if self.linear.any() and not linear:
            raise Invalid(
                'The model has linear trees but its parameters do not say "[linear_tree: 1]".'
            )
        if linear and not self.linear.any():
            raise Invalid('The parameters say "[linear_tree: 1]" but no tree is linear.')

    # -- header -------------------------------------------------------------------------

    def _header(self, header: bytes) -> list[int]:
        lines = header.split(b"\n")
        if lines[0] != b"tree":
            raise Invalid(f'The first line is {show(lines[0])} instead of "tree".')
        fields: dict[bytes, bytes] = {}
        for number, line in enumerate(lines[1:], 2):
            key, eq, value = line.partition(b"=")
            if not eq and line != b"average_output":
                raise Invalid(f"Header line {number} {show(line)} is not of the form key=value.")
            if key not in _HEADER_KEYS:
                raise Invalid(f"Header line {number} has the unknown key {show(key)}.")
            if key in fields:
                raise Invalid(f'The header has "{key.decode()}" twice.')
            if b"=" in value and key not in (b"feature_names", b"monotone_constraints"):
                raise Invalid(f'The header line of "{key.decode()}" has more than one "=".')
            fields[key] = value
        missing = [key.decode() for key in _HEADER_REQUIRED if key not in fields]
        if missing:
            raise Invalid(f'The header has no "{missing[0]}".')
        if fields[b"version"] != b"v4":
            raise Invalid(f'The model version is {show(fields[b"version"])}, not "v4".')

        self.num_class = num_class = _int(fields[b"num_class"], "num_class", 1, INT32_MAX)
        per_iteration = _int(
            fields[b"num_tree_per_iteration"], "num_tree_per_iteration", 1, INT32_MAX
        )
        if per_iteration != num_class:
            # serving sizes its output from num_class; LightGBM writes one value per tree
            # of an iteration
            raise Invalid(
                f"num_tree_per_iteration = {per_iteration} differs from num_class = {num_class}."
            )
        _int(fields[b"label_index"], "label_index", 0, INT32_MAX)
        self.max_feature_idx = top = _int(
            fields[b"max_feature_idx"], "max_feature_idx", 0, INT32_MAX - 2
        )
        if num_class * (top + 2) > INT32_MAX:  # LightGBM's int size of a contribution row
            raise Invalid(f"num_class = {num_class} and max_feature_idx = {top} are too large.")
        self._objective(fields[b"objective"])
        self.objective = fields[b"objective"]
        self.average_output = b"average_output" in fields

        # counted before anything is split, so that an absurd max_feature_idx costs nothing
        for key in (b"feature_names", b"feature_infos", b"monotone_constraints"):
            if key in fields and _count(fields[key]) != top + 1:
                raise Invalid(
                    f'"{key.decode()}" has {_count(fields[key])} entries, but '
                    f"max_feature_idx = {top} means {top + 1}."
                )
        self.feature_names = names = fields[b"feature_names"].split(b" ")
        if b"" in names:
            raise Invalid(f"feature_names has an empty name at position {names.index(b'')}.")
        for position, info in enumerate(fields[b"feature_infos"].split(b" ")):
            if not _FEATURE_INFO.fullmatch(info):
                raise Invalid(
                    f"feature_infos[{position}] = {show(info)} is not a feature "
                    "range or a list of categories."
                )
        if b"monotone_constraints" in fields:
            for position, constraint in enumerate(fields[b"monotone_constraints"].split(b" ")):
                if constraint not in (b"-1", b"0", b"1"):
                    raise Invalid(
                        f"monotone_constraints[{position}] = {show(constraint)} is not -1, 0 or 1."
                    )

        value = fields[b"tree_sizes"]
        if not value or not _ints_well_formed(value) or b"-" in value:
            raise Invalid(f"tree_sizes {show(value)} is not a list of sizes.")
        sizes = [int(size) for size in value.split(b" ")]
        if len(sizes) % num_class:
            raise Invalid(
                f"The model has {len(sizes)} trees, which is not a multiple of "
                f"num_tree_per_iteration = {num_class}."
            )
        return sizes

    def _objective(self, value: bytes) -> None:
        tokens = value.split(b" ")
        name = tokens[0]
        if name not in _OBJECTIVES:
            raise Invalid(f"The objective {show(name)} is not one of LightGBM's.")
        if name in _MULTICLASS:
            classes = [t[len(b"num_class:") :] for t in tokens if t.startswith(b"num_class:")]
            if len(classes) != 1:
                raise Invalid(f'The objective {show(value)} does not give "num_class" once.')
            declared = _int(classes[0], "The objective's num_class", 2, INT32_MAX)
            if declared != self.num_class:
                raise Invalid(
                    f"The objective's num_class = {declared} differs from "
                    f"num_class = {self.num_class}."
                )
        elif self.num_class != 1:
            raise Invalid(
                f'num_class = {self.num_class} with the objective "{name.decode()}", '
                "which has one output."
            )

    # -- tree blocks -------------------------------------------------------------------

    def _tree_blocks(self, start: int, sizes: list[int]) -> int:
        text = self.text
        pos = start
        trees = self.trees
        leaves = []
        for i, size in enumerate(sizes):
            head = b"Tree=%d\n" % i
            if not text.startswith(head, pos):
                line = text[pos : text.find(b"\n", pos)] if pos < len(text) else b""
                raise Invalid(
                    f'Tree {i} does not start with "Tree={i}" where tree_sizes puts '
                    f"it (found {show(line)})."
                )
            end = pos + size
            if size < len(head) + 3 or text[end - 3 : end] != b"\n\n\n" or end > len(text):
                close = text.find(b"\n\n\n", pos)  # where the tree does end
                actual = "no end" if close < 0 else f"{close + 3 - pos} bytes"
                raise Invalid(f"tree_sizes gives Tree {i} {size} bytes, but it has {actual}.")
            lines = text[pos + len(head) : end - 3].split(b"\n")
            try:
                fields: dict[bytes, bytes] = dict(line.split(b"=", 1) for line in lines)
            except ValueError:  # a line without "=" (or a blank one, which ends a tree)
                close = text.find(b"\n\n\n", pos)
                if close + 3 != end:
                    raise Invalid(
                        f"tree_sizes gives Tree {i} {size} bytes, but it has {close + 3 - pos}."
                    ) from None
                line = next(line for line in lines if b"=" not in line)
                raise Invalid(
                    f"Tree {i}: the line {show(line)} is not of the form key=value."
                ) from None
            if len(fields) != len(lines):
                keys = [line.split(b"=", 1)[0] for line in lines]
                key = next(key for key in keys if keys.count(key) > 1)
                raise Invalid(f'Tree {i}: the field "{key.decode("latin-1")}" appears twice.')
            for key in (b"num_leaves", b"num_cat", b"is_linear"):
                if key not in fields:
                    raise Invalid(f'Tree {i}: the field "{key.decode()}" is missing.')
            num_leaves = _int(fields[b"num_leaves"], f"Tree {i}: num_leaves", 1, MAX_LEAVES)
            num_cat = _int(fields[b"num_cat"], f"Tree {i}: num_cat", 0, num_leaves - 1)
            linear = fields[b"is_linear"]
            if linear not in (b"0", b"1"):
                raise Invalid(f"Tree {i}: is_linear = {show(linear)} is not 0 or 1.")
            expected = _tree_keys(num_cat > 0, linear == b"1")
            if list(fields) != expected:
                raise Invalid(f"Tree {i}: " + _key_difference(list(fields), expected))
            if not _FLOAT_ONE.fullmatch(fields[b"shrinkage"]):
                raise Invalid(
                    f"Tree {i}: shrinkage = {show(fields[b'shrinkage'])} is not a number."
                )
            trees.append(fields)
            leaves.append(num_leaves)
            pos = end
        if not text.startswith(b"end of trees\n", pos):
            line = text[pos : text.find(b"\n", pos)]
            raise Invalid(
                f"tree_sizes lists {len(sizes)} trees, and {show(line)} follows them "
                'instead of "end of trees".'
            )
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
                raise Invalid(
                    f"Tree {i}: {key.decode()} has {counts[i]} values instead of {sizes[i]}."
                )
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
            raise Invalid(
                f"{where(b'split_feature', i)} = {split_feature[i]} is out of range "
                f"(max_feature_idx = {self.max_feature_idx})."
            )
        decision = ints[b"decision_type"]
        # bit 0 categorical, bit 1 default left, bits 2-3 the missing type (0, 1 or 2)
        bad = np.flatnonzero((decision < 0) | (decision > 11))
        if bad.size:
            i = bad[0]
            raise Invalid(f"{where(b'decision_type', i)} = {decision[i]} is not a decision type.")

        self._children(ints[b"left_child"], ints[b"right_child"], nodes, offsets, tree_of, where)
        self._categorical(decision, nodes, offsets, tree_of)
        self._linear()
        self.indexes = ints

    def _children(
        self,
        left: np.ndarray,
        right: np.ndarray,
        nodes: np.ndarray,
        offsets: np.ndarray,
        tree_of: np.ndarray,
        where: Any,
    ) -> None:
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
            raise Invalid(
                f"{where(key, i)} = {child} is {reason} (the tree has {leaves[tree_of[i]]} leaves)."
            )
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
            raise Invalid(f"Tree {tree}: {what} is the child of {parents[node]} nodes.")
        # With one parent each, a node the root cannot reach is on a cycle. Walk down from
        # all roots at once, one level per step.
        down = ids.reshape(2, -1)
        reached = 0
        level = offsets[:-1][nodes > 0]
        depth = 0
        while level.size:
            depth += 1
            if depth > MAX_DEPTH:
                raise Invalid(f"Tree {int(tree_of[level[0]])} is deeper than {MAX_DEPTH} levels.")
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
            raise Invalid(
                f"Tree {tree}: node {node - offsets[tree]} cannot be reached from the "
                "root (the children form a cycle)."
            )

    def _categorical(
        self, decision: np.ndarray, nodes: np.ndarray, offsets: np.ndarray, tree_of: np.ndarray
    ) -> None:
        """num_cat counts the categorical splits, each split indexes cat_boundaries, and
        cat_boundaries slices cat_threshold."""
        categorical = (decision & 1).astype(bool)
        counts = np.bincount(tree_of[categorical], minlength=len(self.trees))
        for i, tree in enumerate(self.trees):
            num_cat = int(tree[b"num_cat"])
            found = int(counts[i])
            if found != num_cat:
                raise Invalid(
                    f"Tree {i}: num_cat = {num_cat}, but {found} of its splits are categorical."
                )
            if not num_cat:
                continue
            boundaries = _int_list(tree[b"cat_boundaries"], f"Tree {i}: cat_boundaries")
            if len(boundaries) != num_cat + 1:
                raise Invalid(
                    f"Tree {i}: cat_boundaries has {len(boundaries)} values instead of "
                    f"num_cat + 1 = {num_cat + 1}."
                )
            bitsets = _int_list(tree[b"cat_threshold"], f"Tree {i}: cat_threshold")
            if (
                boundaries[0] != 0
                or boundaries[-1] != len(bitsets)
                or any(a > b for a, b in zip(boundaries, boundaries[1:], strict=False))
            ):
                raise Invalid(
                    f"Tree {i}: cat_boundaries does not go up from 0 to the "
                    f"{len(bitsets)} values of cat_threshold."
                )
            if any(not 0 <= bits < 2**32 for bits in bitsets):
                raise Invalid(f"Tree {i}: a value of cat_threshold is out of range.")
            thresholds = tree[b"threshold"].split(b" ")
            start = int(offsets[i])
            used = []
            for node in np.flatnonzero(categorical[start : start + int(nodes[i])]):
                index = _category_list_index(thresholds[node])
                if index is None:
                    raise Invalid(
                        f"Tree {i}: threshold[{node}] = {show(thresholds[node])} of a "
                        "categorical split is not a category list index."
                    )
                used.append(index)
            if sorted(used) != list(range(num_cat)):
                raise Invalid(
                    f"Tree {i}: the categorical splits do not use the category lists "
                    f"0 to {num_cat - 1} once each."
                )

    def _linear(self) -> None:
        top = self.max_feature_idx
        for i, tree in enumerate(self.trees):
            if tree[b"is_linear"] != b"1":
                continue
            leaves = int(self.leaves[i])
            counts = _int_list(tree[b"num_features"], f"Tree {i}: num_features")
            if len(counts) != leaves or any(not 0 <= c <= top + 1 for c in counts):
                raise Invalid(
                    f"Tree {i}: num_features is not one count of at most {top + 1} per leaf."
                )
            constants = tree[b"leaf_const"]
            if not _FLOATS.fullmatch(constants) or _count(constants) != leaves:
                raise Invalid(f"Tree {i}: leaf_const is not {leaves} numbers.")
            for key, integer in ((b"leaf_features", True), (b"leaf_coeff", False)):
                value = tree[key]
                tokens = value.split()
                if len(tokens) != sum(counts):
                    raise Invalid(
                        f"Tree {i}: {key.decode()} has {len(tokens)} values, but "
                        f"num_features adds up to {sum(counts)}."
                    )
                # the exact spacing LightGBM writes: each leaf's values and a space, then a space
                rebuilt, at = [], 0
                for count in counts:
                    if count:
                        rebuilt.append(b" ".join(tokens[at : at + count]) + b" ")
                        at += count
                    rebuilt.append(b" ")
                joined = b" ".join(tokens)
                if b"".join(rebuilt) != value or not (
                    _ints_well_formed(joined)
                    if integer
                    else not joined or _FLOATS.fullmatch(joined)
                ):
                    raise Invalid(
                        f"Tree {i}: {key.decode()} is not laid out as LightGBM writes it."
                    )
                if integer and any(not 0 <= int(t) <= top for t in tokens):
                    raise Invalid(
                        f"Tree {i}: a value of leaf_features is out of range "
                        f"(max_feature_idx = {top})."
                    )

    # -- after the trees -----------------------------------------------------------------

    def _tail(self, start: int) -> bool:
        """The sections after "end of trees"; whether the parameters say linear_tree."""
        lines = self.text[start:].split(b"\n")
        if lines[:2] != [b"", b"feature_importances:"]:
            raise Invalid(
                '"end of trees" is not followed by a blank line and "feature_importances:".'
            )
        names = set(self.feature_names)
        i = 2
        while i < len(lines) and lines[i]:
            name, eq, count = lines[i].rpartition(b"=")
            if not eq or name not in names or not count.isdigit():
                raise Invalid(
                    f"The feature importance line {show(lines[i])} is not a feature "
                    "name and a count."
                )
            i += 1
        if lines[i + 1 : i + 2] != [b"parameters:"]:
            raise Invalid('The feature importances are not followed by "parameters:".')
        i += 2
        linear = False
        while i < len(lines) and lines[i] != b"end of parameters":
            line = lines[i]
            if line and not (line.startswith(b"[") and line.endswith(b"]") and b": " in line):
                raise Invalid(f"The parameter line {show(line)} is not of the form [name: value].")
            if line.startswith(b"[linear_tree: "):  # LightGBM reads the next character
                if line not in (b"[linear_tree: 0]", b"[linear_tree: 1]"):
                    raise Invalid(f"The parameter line {show(line)} is not 0 or 1.")
                linear = line == b"[linear_tree: 1]"
            i += 1
        if i == len(lines):
            raise Invalid('The parameters have no "end of parameters".')
        rest = lines[i + 1 :]
        if (
            len(rest) == 3
            and rest[0] == b""
            and rest[2] == b""
            and rest[1].startswith(b"pandas_categorical:")
        ):
            try:
                categories = json.loads(rest[1][len(b"pandas_categorical:") :])
                valid = categories is None or isinstance(categories, list)
            except ValueError:
                valid = False
            if not valid:
                raise Invalid("The pandas_categorical line is not JSON null or a list.")
        elif rest != [b""]:
            raise Invalid('Only a "pandas_categorical:" line may follow "end of parameters".')
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
    for char, cls in (
        (b"\n", _EDGE),
        (b" ", _SPACE),
        (b"-", _MINUS),
        (b"+", _PLUS),
        (b".", _DOT),
        (b"e", _EXP),
    ):
        table[char[0]] = cls
    return bytes(table)


def _next_table(*pairs: tuple[int, int]) -> bytes:
    table = bytearray(256)
    for first, second in pairs:
        table[first] |= second
    return bytes(table)


_CLASS_OF = _class_table()
_INT_PAIRS = (
    (_EDGE, _EDGE),
    (_EDGE, _DIGIT),
    (_EDGE, _MINUS),
    (_DIGIT, _DIGIT),
    (_DIGIT, _SPACE),
    (_DIGIT, _EDGE),
    (_MINUS, _DIGIT),
    (_SPACE, _DIGIT),
    (_SPACE, _MINUS),
)
_INT_NEXT = _next_table(*_INT_PAIRS)
# digits, then an optional fraction and an optional exponent; "1.2.3" gets through, and
# LightGBM reads it (as 1.2) without error
_NUMBER_NEXT = _next_table(
    *_INT_PAIRS,
    (_DIGIT, _DOT),
    (_DOT, _DIGIT),
    (_DIGIT, _EXP),
    (_EXP, _DIGIT),
    (_EXP, _MINUS),
    (_EXP, _PLUS),
    (_PLUS, _DIGIT),
)


def _classes(joined: bytes, integer: bool) -> np.ndarray | None:
    """The byte classes of ``joined`` (lists separated by newlines, with a newline at both
    ends), or None unless it is numbers separated by single spaces."""
    translated = joined.translate(_CLASS_OF)
    allowed = translated.translate(_INT_NEXT if integer else _NUMBER_NEXT)
    classes = np.frombuffer(translated, dtype=np.uint8)
    return classes if (np.frombuffer(allowed, dtype=np.uint8)[:-1] & classes[1:]).all() else None


def _numbers(
    key: bytes, values: list[bytes], integer: bool, parse: bool = False
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
        raise Invalid("The numbers of a list could not be read.")
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
        raise Invalid(f"{what} = {show(value)} is not an integer.")
    number = int(value)
    if not low <= number <= high:
        raise Invalid(f"{what} = {number} is out of range ({low} to {high}).")
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
        raise Invalid(f"{what} is not a list of integers.")
    return [int(token) for token in value.split(b" ")]


def _locate_bad_number(key: bytes, values: list[bytes], integer: bool) -> None:
    """Raise the finding for the first malformed value of ``key`` (the slow path)."""
    token = _INT if integer else _FLOAT_ONE
    for i, value in enumerate(values):
        if not value:
            continue
        for position, item in enumerate(value.split(b" ")):
            if not token.fullmatch(item):
                what = "an empty value" if not item else f"{show(item)}"
                kind = "an integer" if integer else "a number"
                raise Invalid(f"Tree {i}: {key.decode()}[{position}] is {what}, not {kind}.")
    raise Invalid(f"The values of {key.decode()} are not numbers separated by single spaces.")


def _key_difference(found: list[bytes], expected: list[bytes]) -> str:
    for key in expected:
        if key not in found:
            return f'the field "{key.decode()}" is missing.'
    for key in found:
        if key not in expected:
            return f"the field {show(key)} is not expected here."
    return "the fields are not in the order LightGBM writes them."
