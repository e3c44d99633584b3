"""No stored artifact, however damaged, crashes a backend (API.md section 11).

Real models are trained (LightGBM regression, binary, multiclass; scikit-learn random
forest, histogram gradient boosting, k-NN on a KD tree) and a LightGBM model with
categorical splits is made here. Then, as superuser, hundreds of damaged copies of their
artifacts are planted, each as a new model row copied from the real one, with a correct
sha256 so that the checksum passes: truncations (at random and at structural points),
random bit flips and byte changes, edits of the numbers LightGBM indexes with (split
features, children, category lists, tree sizes, class and feature counts), deleted and
duplicated lines, swapped trees; for skops files, truncations, bit flips and edits of the
tree arrays re-saved with skops; for the ONNX parts of the forest and the k-NN model (served
by onnxruntime), truncations, bit flips and edits of the tree ensemble's node, feature and
class ids, arrays one short and initializers with a wrong shape, re-saved with onnx.

Each planted model is deployed by id and asked for predictions (predict by id, and
predict_proba, predict_batch and explain through the project, where they apply): every call
either gives numbers or fails with XX001 (DataCorrupted), whether the refusal comes at
deploy or at the first prediction. A sentinel session opened before the first plant must
still answer after every batch: a crashed backend makes the postmaster end every session.
The seed is fixed; the counts of refused and accepted cases are printed.

The same damage also arrives through the front door, by any role: a sample of the damaged
artifacts is put in model bundles (``pyml.export(..., format => 'pyml')`` of the real model,
its file replaced, its sha256 right) and given to ``pyml.import_model``, and bytes of a real
bundle's JSON outside its files are flipped and cut. Every import either registers a model
that gives numbers (or XX001 at its first prediction) or is refused with XX001 or 22023
(a malformed bundle); no backend crashes.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import lightgbm
import numpy as np
import psycopg
import pytest
import skops.io

SEED = 20_13
BATCH = 40
FEATURES = {
    "iris": [5.1, 3.5, 1.4, 0.2],
    "diabetes": [0.04, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02],
}
FEATURES["breast_cancer"] = [
    14.0,
    19.0,
    91.0,
    650.0,
    0.1,
    0.1,
    0.09,
    0.05,
    0.18,
    0.06,
    0.4,
    1.2,
    2.9,
    40.0,
    0.007,
    0.025,
    0.03,
    0.01,
    0.02,
    0.004,
    16.0,
    25.0,
    107.0,
    880.0,
    0.13,
    0.25,
    0.27,
    0.11,
    0.29,
    0.08,
]

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Base:
    """A real model whose artifact is damaged: its id, project, dataset, task and bytes."""

    name: str
    model_id: int
    project: str
    dataset: str
    classification: bool
    fmt: str
    data: bytes
    explain: bool
    companion: tuple[str, bytes] | None = None  # planted as part 0 beside a damaged ONNX part


@pytest.fixture(scope="module")
def admin(admin_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


def _train(
    admin: psycopg.Connection,
    project: str,
    task: str,
    dataset: str,
    label: str,
    algorithm: str,
    hyperparams: str,
) -> int:
    admin.execute(
        "SELECT * FROM pyml.train(%s, %s, %s, %s, %s, %s::jsonb)",
        (project, task, f"pyml.{dataset}", label, algorithm, hyperparams),
    )
    (model_id,) = admin.execute(
        "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s",
        (project,),
    ).fetchone()
    return int(model_id)


def _artifact(admin: psycopg.Connection, model_id: int, onnx: bool = False) -> tuple[str, bytes]:
    """The model's part (of a model without preprocessing), or its ONNX part."""
    rows = admin.execute(
        "SELECT format, data FROM pyml.files WHERE model_id = %s AND (format = 'onnx') = %s"
        " ORDER BY part",
        (model_id, onnx),
    ).fetchall()
    assert len(rows) == 1, "a model without preprocessing has one part, and one ONNX part"
    return rows[0][0], bytes(rows[0][1])


def _categorical_text() -> bytes:
    """A LightGBM model of iris's shape (4 inputs, 3 classes) with categorical splits on its
    first input (pyml does not train those, but a stored file may hold them)."""
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.randint(0, 8, 300), rng.rand(300, 3) * 5])
    y = (X[:, 0] % 3).astype(np.int64)
    model = lightgbm.LGBMClassifier(
        n_estimators=4, num_leaves=6, min_data_per_group=5, cat_smooth=1, verbose=-1, random_state=0
    )
    text = model.fit(X, y, categorical_feature=[0]).booster_.model_to_string().encode()
    assert re.search(rb"num_cat=[1-9]", text)
    return text


@pytest.fixture(scope="module")
def bases(admin: psycopg.Connection) -> list[Base]:
    specs = [
        (
            "lightgbm regression",
            "Fuzz regression",
            "regression",
            "diabetes",
            "target",
            "lightgbm",
            '{"n_estimators": 6}',
            True,
        ),
        (
            "lightgbm binary",
            "Fuzz binary",
            "classification",
            "breast_cancer",
            "malignant",
            "lightgbm",
            '{"n_estimators": 6}',
            True,
        ),
        (
            "lightgbm multiclass",
            "Fuzz multiclass",
            "classification",
            "iris",
            "target",
            "lightgbm",
            '{"n_estimators": 4}',
            True,
        ),
        (
            "random forest",
            "Fuzz forest",
            "classification",
            "iris",
            "target",
            "random_forest",
            '{"n_estimators": 3, "max_depth": 4}',
            True,
        ),
        (
            "hist gradient boosting",
            "Fuzz hist",
            "classification",
            "iris",
            "target",
            "hist_gradient_boosting",
            '{"max_iter": 3}',
            False,
        ),
        (
            "knn kd_tree",
            "Fuzz knn",
            "classification",
            "iris",
            "target",
            "knn",
            '{"algorithm": "kd_tree"}',
            False,
        ),
    ]
    result = []
    for name, project, task, dataset, label, algorithm, hyperparams, explain in specs:
        model_id = _train(admin, project, task, dataset, label, algorithm, hyperparams)
        fmt, data = _artifact(admin, model_id)
        result.append(
            Base(name, model_id, project, dataset, task == "classification", fmt, data, explain)
        )
    for name in ("random forest", "knn kd_tree"):  # their ONNX parts (served by onnxruntime)
        base = next(b for b in result if b.name == name)
        fmt, data = _artifact(admin, base.model_id, onnx=True)
        result.append(
            Base(
                f"{name} onnx",
                base.model_id,
                base.project,
                base.dataset,
                base.classification,
                fmt,
                data,
                False,
                companion=(base.fmt, base.data),
            )
        )
    multiclass = next(b for b in result if b.name == "lightgbm multiclass")
    result.append(
        Base(
            "lightgbm categorical",
            multiclass.model_id,
            multiclass.project,
            "iris",
            True,
            "lightgbm-text",
            _categorical_text(),
            True,
        )
    )
    return result


# -- damage ---------------------------------------------------------------------------------

Mutation = tuple[str, bytes]  # (what was done, the damaged bytes)


def _split(text: bytes) -> tuple[bytes, list[bytes], bytes]:
    head, rest = text.split(b"\n\nTree=", 1)
    trees, tail = (b"Tree=" + rest).split(b"end of trees\n", 1)
    return head, [b for b in re.split(rb"(?m)^(?=Tree=)", trees) if b], b"end of trees\n" + tail


def _join(head: bytes, blocks: list[bytes], tail: bytes) -> bytes:
    sizes = b" ".join(b"%d" % len(b) for b in blocks)
    head = re.sub(rb"(?m)^tree_sizes=.*$", b"tree_sizes=" + sizes, head)
    return head + b"\n\n" + b"".join(blocks) + tail


def _edit_block(
    text: bytes,
    rng: random.Random,
    key: bytes,
    change: Callable[[list[bytes]], list[bytes]] | None,
    fix_sizes: bool = True,
) -> bytes | None:
    """Field ``key`` of a random tree that has it, changed; tree_sizes kept right or not."""
    head, blocks, tail = _split(text)
    pattern = rb"(?m)^" + re.escape(key) + rb"=(.*)$"
    candidates = [
        i
        for i, b in enumerate(blocks)
        if (m := re.search(pattern, b)) and (m.group(1) or change is None)
    ]
    if not candidates:
        return None
    i = rng.choice(candidates)
    if change is None:  # delete the line
        new = re.sub(pattern + rb"\n", b"", blocks[i], count=1)
    else:
        values = re.search(pattern, blocks[i]).group(1).split(b" ")
        new = re.sub(pattern, lambda _: key + b"=" + b" ".join(change(values)), blocks[i], count=1)
    if not fix_sizes:
        return text.replace(blocks[i], new, 1)
    blocks[i] = new
    return _join(head, blocks, tail)


def _header(text: bytes, key: bytes, value: bytes) -> bytes:
    return re.sub(
        rb"(?m)^" + re.escape(key) + rb"=.*$", lambda _: key + b"=" + value, text, count=1
    )


def _one(rng: random.Random, value: bytes) -> Callable[[list[bytes]], list[bytes]]:
    def change(values: list[bytes]) -> list[bytes]:
        i = rng.randrange(len(values))
        return [*values[:i], value, *values[i + 1 :]]

    return change


def _flip(data: bytes, rng: random.Random, start: int = 0, end: int | None = None) -> bytes:
    position = rng.randrange(start, end or len(data))
    damaged = bytearray(data)
    damaged[position] ^= 1 << rng.randrange(8)
    return bytes(damaged)


def _byte(data: bytes, rng: random.Random) -> bytes:
    damaged = bytearray(data)
    damaged[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(damaged)


def _lightgbm_mutations(text: bytes, rng: random.Random) -> Iterator[Mutation]:
    head, blocks, tail = _split(text)
    trees_start = len(head) + 2
    trees_end = text.index(b"end of trees")
    # truncations: random, and at structural points
    for _ in range(8):
        yield "truncated at random", text[: rng.randrange(1, len(text))]
    for marker in (
        b"\nfeature_names=",
        b"\ntree_sizes=",
        b"\n\nTree=1",
        b"\nleaf_value=",
        b"\nshrinkage=",
        b"end of trees",
        b"feature_importances:",
        b"parameters:",
        b"end of parameters",
    ):
        at = text.rindex(marker) if marker.startswith(b"\nleaf") else text.index(marker)
        yield f"truncated at {marker.strip().decode()}", text[: at + rng.randrange(0, 12)]
    # random bit flips and byte changes, anywhere and in the trees
    for _ in range(12):
        yield "bit flip", _flip(text, rng)
    for _ in range(12):
        yield "bit flip in the trees", _flip(text, rng, trees_start, trees_end)
    for _ in range(8):
        yield "byte changed", _byte(text, rng)
    # the numbers LightGBM indexes with
    edits: list[tuple[str, bytes, bytes | None]] = [
        ("split_feature", b"split_feature", b"%d" % rng.choice([4, 30, 10**8, 2**31, -1])),
        ("split_feature", b"split_feature", b"-2147483648"),
        ("left_child", b"left_child", b"%d" % rng.choice([40, 10**6, -40, -(10**6)])),
        ("right_child", b"right_child", b"0"),
        ("right_child", b"right_child", b"%d" % rng.choice([1, 2, -1, -2])),
        ("left_child", b"left_child", b"99999999999"),
        ("decision_type", b"decision_type", b"%d" % rng.choice([1, 3, 9, 12, 127, -1])),
        ("threshold", b"threshold", rng.choice([b"nan", b"x", b"", b"1e999", b"-"])),
        ("leaf_value", b"leaf_value", rng.choice([b"inf", b"abc", b"1.2.3", b"--1"])),
        ("num_leaves", b"num_leaves", b"%d" % rng.choice([0, 1, 2, 1000, -3, 2**31])),
        ("num_cat", b"num_cat", b"%d" % rng.choice([1, 2, 100, -1])),
        ("cat_boundaries", b"cat_boundaries", b"%d" % rng.choice([5, 10**5, 2 * 10**9, -1])),
        ("cat_threshold", b"cat_threshold", b"%d" % rng.choice([0, 2**32, -1])),
        ("is_linear", b"is_linear", b"1"),
        ("shrinkage", b"shrinkage", b"zz"),
    ]
    for what, key, value in edits:
        for fix in (True, False):
            damaged = _edit_block(text, rng, key, _one(rng, value or b""), fix_sizes=fix)
            if damaged is not None:
                yield f"{what} = {value.decode()!r}" + ("" if fix else ", sizes stale"), damaged
    for key in (
        b"left_child",
        b"split_feature",
        b"leaf_value",
        b"cat_boundaries",
        b"shrinkage",
        b"num_cat",
        b"internal_count",
    ):
        for fix in (True, False):
            damaged = _edit_block(text, rng, key, None, fix_sizes=fix)
            if damaged is not None:
                yield f"{key.decode()} line deleted", damaged
    for _ in range(3):  # a line duplicated, elsewhere in its tree
        i = rng.randrange(len(blocks))
        lines = blocks[i].split(b"\n")
        j = rng.randrange(1, len(lines) - 3)
        changed = list(blocks)
        changed[i] = b"\n".join([*lines[:j], lines[j], *lines[j:]])
        yield "line duplicated", _join(head, changed, tail)
    if len(blocks) > 1:
        i, j = rng.sample(range(len(blocks)), 2)
        swapped = list(blocks)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        yield "trees swapped", _join(head, swapped, tail)
        yield (
            "trees swapped, renumbered",
            _join(
                head,
                [re.sub(rb"^Tree=\d+", b"Tree=%d" % k, b) for k, b in enumerate(swapped)],
                tail,
            ),
        )
        yield "a tree dropped", _join(head, blocks[:-1], tail)
        yield "a tree repeated", _join(head, [*blocks, blocks[0]], tail)
    sizes = re.search(rb"tree_sizes=(.*)", text).group(1).split(b" ")
    for what, new in (
        ("tree_sizes + 1", [b"%d" % (int(sizes[0]) + 1), *sizes[1:]]),
        ("tree_sizes - 1", [b"%d" % (int(sizes[0]) - 1), *sizes[1:]]),
        ("tree_sizes short", sizes[:-1]),
        ("tree_sizes long", [*sizes, sizes[0]]),
        ("tree_sizes huge", [b"%d" % 10**12, *sizes[1:]]),
    ):
        yield what, _header(text, b"tree_sizes", b" ".join(new))
    for key, values in (
        (b"num_class", [b"0", b"2", b"3", b"1000000"]),
        (b"num_tree_per_iteration", [b"0", b"2", b"3", b"-1"]),
        (b"max_feature_idx", [b"0", b"3", b"100", b"2147483646"]),
        (b"label_index", [b"-1"]),
        (b"version", [b"v3"]),
        (b"objective", [b"multiclass num_class:40", b"binary sigmoid:-1"]),
    ):
        for value in values:
            yield f"{key.decode()} = {value.decode()}", _header(text, key, value)
    yield "linear_tree parameter", text.replace(b"[linear_tree: 0]", b"[linear_tree: 1]")
    yield "NUL byte", text.replace(b"\nTree=1", b"\nTree=\0", 1)


def _skops_mutations(base: Base, rng: random.Random) -> Iterator[Mutation]:
    data = base.data
    for _ in range(6):
        yield "truncated at random", data[: rng.randrange(1, len(data))]
    for _ in range(10):
        yield "bit flip", _flip(data, rng)
    for _ in range(4):
        yield "byte changed", _byte(data, rng)
    for what, damage in _semantic(base.name, rng):
        copy = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
        damage(copy)
        yield what, skops.io.dumps(copy)


def _tree_with(tree: Any, field: str, node: int, value: int) -> Any:
    cls, args, state = tree.__reduce__()
    state = dict(state, nodes=state["nodes"].copy())
    state["nodes"][field][node] = value
    new = cls(*args)
    new.__setstate__(state)
    return new


def _semantic(name: str, rng: random.Random) -> Iterator[tuple[str, Callable[[Any], None]]]:
    """Edits of the arrays compiled code indexes with, applied to a loaded model."""
    if name == "random forest":
        for field, value in (
            ("left_child", 10**6),
            ("left_child", -7),
            ("right_child", 0),
            ("feature", 4),
            ("feature", -3),
            ("left_child", 1),
        ):

            def damage(model: Any, field: str = field, value: int = value) -> None:
                member = model.estimators_[rng.randrange(len(model.estimators_))]
                inner = np.flatnonzero(member.tree_.children_left != -1)
                member.tree_ = _tree_with(member.tree_, field, int(rng.choice(inner)), value)

            yield f"tree {field} = {value}", damage
    elif name == "hist gradient boosting":
        for field, value in (
            ("left", 10**6),
            ("right", 0),
            ("feature_idx", 9),
            ("is_categorical", 1),
            ("left", 1),
        ):

            def damage(model: Any, field: str = field, value: int = value) -> None:
                (predictor,) = model._predictors[0][:1]
                nodes = predictor.nodes
                inner = np.flatnonzero(nodes["is_leaf"] == 0)
                nodes[field][int(rng.choice(inner))] = value

            yield f"predictor {field} = {value}", damage
    elif name == "knn kd_tree":

        def idx(model: Any) -> None:
            tree = model._tree
            state = list(tree.__getstate__())
            state[1] = state[1].copy()
            state[1][0] = 10**6
            cls: Any = type(tree)  # a Cython class of scikit-learn's, without type information
            new = cls.__new__(cls)
            new.__setstate__(tuple(state))
            model._tree = new

        def bounds(model: Any) -> None:
            tree = model._tree
            state = list(tree.__getstate__())
            nodes = state[2].copy()
            nodes["idx_end"][0] = 10**6
            nodes["is_leaf"][-1] = 0
            state[2] = nodes
            cls: Any = type(tree)  # a Cython class of scikit-learn's, without type information
            new = cls.__new__(cls)
            new.__setstate__(tuple(state))
            model._tree = new

        yield "idx_array out of range", idx
        yield "node ranges out of range", bounds


def _onnx_mutations(base: Base, rng: random.Random) -> Iterator[Mutation]:
    """Damage at random, and edits of what onnxruntime's kernels index with (tree node ids,
    feature ids, class ids; tensor shapes), re-serialized as valid protobuf."""
    import onnx

    data = base.data
    for _ in range(8):
        yield "truncated at random", data[: rng.randrange(1, len(data))]
    for _ in range(16):
        yield "bit flip", _flip(data, rng)
    for _ in range(8):
        yield "byte changed", _byte(data, rng)
    edits = {
        "nodes_truenodeids": [10**6, -1],
        "nodes_falsenodeids": [10**6, -5],
        "nodes_featureids": [999, -1],
        "class_ids": [77, -2],
        "target_ids": [77, -2],
        "nodes_nodeids": [10**6],
        "class_treeids": [10**6],
        "nodes_treeids": [-3],
    }
    model = onnx.load_from_string(data)
    for node in model.graph.node:
        for attribute in node.attribute:
            for value in edits.get(attribute.name, []):
                if not attribute.ints:
                    continue
                copy = onnx.load_from_string(data)
                target = next(
                    a
                    for n in copy.graph.node
                    if n.name == node.name
                    for a in n.attribute
                    if a.name == attribute.name
                )
                target.ints[rng.randrange(len(target.ints))] = value
                yield f"{node.op_type}.{attribute.name} = {value}", copy.SerializeToString()
            if attribute.name in ("nodes_truenodeids", "nodes_values") and len(attribute.ints) > 1:
                copy = onnx.load_from_string(data)
                target = next(
                    a
                    for n in copy.graph.node
                    if n.name == node.name
                    for a in n.attribute
                    if a.name == attribute.name
                )
                del target.ints[-1]  # one array shorter than the others
                yield f"{node.op_type}.{attribute.name} one short", copy.SerializeToString()
    for tensor in model.graph.initializer:
        copy = onnx.load_from_string(data)
        target = next(t for t in copy.graph.initializer if t.name == tensor.name)
        if target.dims:
            target.dims[0] += 3  # more elements than the data holds
            yield f"initializer {tensor.name} with a wrong shape", copy.SerializeToString()


def _mutations(base: Base, rng: random.Random) -> list[Mutation]:
    if base.fmt == "onnx":
        cases = list(_onnx_mutations(base, rng))
    elif base.fmt == "lightgbm-text":
        cases = list(_lightgbm_mutations(base.data, rng))
    else:
        cases = list(_skops_mutations(base, rng))
    return [(what, data) for what, data in cases if data != base.data]


# -- planting and calling -------------------------------------------------------------------


def _plant(admin: psycopg.Connection, base: Base, blobs: list[bytes]) -> list[int]:
    """Copies of ``base``'s model row, each with one of ``blobs`` as its only artifact (or
    beside its companion part: a damaged ONNX part beside the model's good one)."""
    ids = []
    with admin.transaction():
        for blob in blobs:
            (model_id,) = admin.execute(
                "INSERT INTO pyml.models (project_id, snapshot_id, algorithm, hyperparams,"
                " status, metrics, num_features, feature_names, classes, preprocess, runtime,"
                " lineage) SELECT project_id, snapshot_id, algorithm, hyperparams, status,"
                " metrics, num_features, feature_names, classes, preprocess, runtime, lineage"
                " FROM pyml.models WHERE id = %s RETURNING id",
                (base.model_id,),
            ).fetchone()
            parts = [(base.fmt, blob)]
            if base.companion is not None:
                parts.insert(0, base.companion)
            for part, (fmt, data) in enumerate(parts):
                admin.execute(
                    "INSERT INTO pyml.files (model_id, part, format, sha256, data)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (model_id, part, fmt, hashlib.sha256(data).hexdigest(), data),
                )
            ids.append(int(model_id))
    return ids


def _calls(base: Base, model_id: int) -> list[tuple[str, tuple[Any, ...]]]:
    features = FEATURES[base.dataset]
    calls = [
        ("SELECT pyml.predict(%s, %s::real[])", (model_id, features)),
        ("SELECT * FROM pyml.predict_batch(%s, %s::real[])", (base.project, features * 3)),
    ]
    if base.classification:
        calls.append(("SELECT pyml.predict_proba(%s, %s::real[])", (base.project, features)))
    if base.explain:
        calls.append(
            ("SELECT contribution FROM pyml.explain(%s, %s::real[])", (model_id, features))
        )
    return calls


def _numbers(rows: list[tuple[Any, ...]]) -> bool:
    values = [v for row in rows for v in (row[0] if isinstance(row[0], list) else [row[0]])]
    return bool(values) and all(isinstance(v, float) for v in values)


def _try(
    session: psycopg.Connection, what: str, query: str, params: tuple[Any, ...]
) -> list[tuple[Any, ...]] | None:
    """The rows, or None when refused with XX001; anything else fails the test."""
    try:
        return session.execute(query, params).fetchall()
    except psycopg.errors.DataCorrupted as error:
        assert error.diag.sqlstate == "XX001"
        return None
    except psycopg.Error as error:
        pytest.fail(f"{what}: {query} failed with {error.diag.sqlstate}: {error}")


@pytest.fixture
def sentinel(admin_url: str) -> Iterator[psycopg.Connection]:
    """A session opened before anything is planted: it survives only if no backend crashes."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def session(admin_url: str) -> Iterator[psycopg.Connection]:
    """The one session that deploys and calls every planted model."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


def test_damaged_artifacts_never_crash_a_backend(
    admin: psycopg.Connection,
    sentinel: psycopg.Connection,
    session: psycopg.Connection,
    bases: list[Base],
    record_property,
    capsys,
) -> None:
    rng = random.Random(SEED)
    assert sentinel.execute("SELECT 1").fetchone() == (1,)
    # the control: the real models give numbers
    for base in bases:
        if base.name != "lightgbm categorical":
            assert _numbers(session.execute(*_calls(base, base.model_id)[0]).fetchall())
    tally: dict[str, list[int]] = {}  # base -> [refused, accepted]
    cases = [(base, what, data) for base in bases for what, data in _mutations(base, rng)]
    rng.shuffle(cases)
    for start in range(0, len(cases), BATCH):
        batch = cases[start : start + BATCH]
        planted: list[tuple[Base, str, int]] = []
        for base in {id(b): b for b, _, _ in batch}.values():
            mine = [(what, data) for b, what, data in batch if b is base]
            planted += zip(
                [base] * len(mine),
                [w for w, _ in mine],
                _plant(admin, base, [d for _, d in mine]),
                strict=True,
            )
        for base, what, model_id in planted:
            label = f"{base.name}, {what} (model {model_id})"
            deployed = _try(session, label, "SELECT model_id FROM pyml.deploy(%s)", (model_id,))
            results = (
                []
                if deployed is None
                else [
                    _try(session, label, query, params) for query, params in _calls(base, model_id)
                ]
            )
            for rows in results:
                assert rows is None or _numbers(rows), f"{label}: {rows!r}"
            was_refused = deployed is None or None in results
            tally.setdefault(base.name, [0, 0])[0 if was_refused else 1] += 1
        assert sentinel.execute("SELECT 1").fetchone() == (1,), "a backend crashed"
    assert sentinel.execute("SELECT 1").fetchone() == (1,)

    refused = sum(r for r, _ in tally.values())
    accepted = sum(a for _, a in tally.values())
    record_property("cases", len(cases))
    record_property("refused", refused)
    record_property("accepted", accepted)
    with capsys.disabled():
        print(
            f"\nfuzz: {len(cases)} damaged artifacts (seed {SEED}): {refused} refused "
            f"(XX001), {accepted} gave numbers"
        )
        for name, (r, a) in sorted(tally.items()):
            print(f"  {name}: {r} refused, {a} accepted")
    assert len(cases) >= 300
    assert refused >= 200 and accepted >= 10  # the damage mostly hits, and some of it is benign


# -- the same damage through pyml.import_model -----------------------------------------------

BUNDLE_SAMPLE = 6  # every 6th damaged artifact also arrives in a bundle
JSON_CASES = 40


def _bundle_with(template: dict[str, Any], base: Base, blob: bytes) -> bytes:
    """``template`` (a real model's bundle, as JSON) with ``blob`` as its model's file (beside
    its companion, for a damaged ONNX part)."""
    document = copy.deepcopy(template)
    parts = [(base.fmt, blob)]
    if base.companion is not None:
        parts.insert(0, base.companion)
    document["files"] = [
        {
            "part": part,
            "format": fmt,
            "sha256": hashlib.sha256(data).hexdigest(),
            "data": base64.b64encode(data).decode(),
        }
        for part, (fmt, data) in enumerate(parts)
    ]
    return json.dumps(document).encode()


def _import(session: psycopg.Connection, what: str, data: bytes, project: str) -> int | None | str:
    """The imported model's id; None when refused with XX001, "22023" when refused as
    malformed; anything else fails the test."""
    try:
        row = session.execute("SELECT pyml.import_model(%s, %s)", (data, project)).fetchone()
    except psycopg.errors.DataCorrupted:
        return None
    except psycopg.errors.InvalidParameterValue:
        return "22023"
    except psycopg.Error as error:
        pytest.fail(f"{what}: import failed with {error.diag.sqlstate}: {error}")
    assert row is not None
    return int(row[0])


def _json_damage(data: bytes, rng: random.Random) -> Iterator[Mutation]:
    """Bit flips, byte changes and cuts of a bundle's JSON outside its files (canonical
    JSON: "files" comes first, the rest after it)."""
    start = data.index(b'],"format"') + 1
    for i in range(JSON_CASES):
        if i % 4 == 3:
            cut = rng.randrange(start, len(data))
            yield f"cut at byte {cut}", data[:cut]
        elif i % 2:
            yield "bit flip", _flip(data, rng, start)
        else:
            position = rng.randrange(start, len(data))
            value = bytes([rng.choice(b'0123456789"{}[],:.-eEtfnul \\x')])
            yield f"byte {position}", data[:position] + value + data[position + 1 :]


def test_damaged_bundles_never_crash_a_backend(
    admin: psycopg.Connection,
    sentinel: psycopg.Connection,
    session: psycopg.Connection,
    bases: list[Base],
    capsys,
) -> None:
    rng = random.Random(SEED + 1)
    assert sentinel.execute("SELECT 1").fetchone() == (1,)
    templates: dict[int, bytes] = {}
    for base in bases:
        if base.model_id not in templates:
            (data,) = session.execute(
                "SELECT pyml.export(%s::bigint, format => 'pyml')", (base.model_id,)
            ).fetchone()
            templates[base.model_id] = bytes(data)
    cases = [
        (f"{base.name}, {what}", base, _bundle_with(json.loads(templates[base.model_id]), base, d))
        for base in bases
        for what, d in _mutations(base, rng)
    ][::BUNDLE_SAMPLE]
    regression = next(b for b in bases if b.name == "lightgbm regression")
    cases += [
        (f"bundle JSON, {what}", dataclasses.replace(regression, explain=False), d)
        for what, d in _json_damage(templates[regression.model_id], rng)
    ]
    tally = {"imported": 0, "XX001": 0, "22023": 0}
    for n, (what, base, data) in enumerate(cases):
        project = f"Fuzz bundle {n}"
        imported = _import(session, what, data, project)
        if isinstance(imported, int):
            tally["imported"] += 1
            mine = dataclasses.replace(base, project=project)
            for query, params in _calls(mine, imported):
                rows = _try(session, what, query, params)
                assert rows is None or _numbers(rows), f"{what}: {rows!r}"
        else:
            tally["XX001" if imported is None else "22023"] += 1
        if n % BATCH == BATCH - 1:
            assert sentinel.execute("SELECT 1").fetchone() == (1,), "a backend crashed"
    assert sentinel.execute("SELECT 1").fetchone() == (1,), "a backend crashed"
    with capsys.disabled():
        print(
            f"\nfuzz: {len(cases)} damaged bundles (seed {SEED + 1}): "
            + ", ".join(f"{count} {outcome}" for outcome, count in tally.items())
        )
    assert len(cases) >= 80
    assert tally["XX001"] >= 30 and tally["22023"] >= 10 and tally["imported"] >= 5
