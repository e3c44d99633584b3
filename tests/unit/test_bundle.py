"""Unit tests for pyml.core.bundle: round trips, canonical bytes, and every malformed case
(22023) or damaged file (XX001), with real LightGBM and scikit-learn models."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pyml.core import artifacts, bundle
from pyml.errors import DataCorrupted, InvalidParameterValue


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.rand(200, 3)
    y = X @ np.array([3.0, -2.0, 0.5]) + 0.1 * rng.randn(200)
    labels = (X[:, 0] + X[:, 1] > 1).astype(np.int64)
    return X, y, labels


def _columns(labels: list[str]) -> list[dict[str, Any]]:
    features = [
        {"name": n, "type": "double precision", "role": "feature", "count": 200, "nulls": 0}
        for n in ("a", "b", "c")
    ]
    return features + [{"name": n, "type": "double precision", "role": "label"} for n in labels]


def _bundle(
    parts: list[artifacts.Part], task: str, algorithm: str, classes: list[Any] | None
) -> dict[str, Any]:
    return {
        "format": bundle.FORMAT,
        "version": bundle.VERSION,
        "source": {
            "pyml_version": "0.1.0",
            "exported_at": "2026-12-06T08:30:00.123456+00:00",
            "database": "primary",
            "model_id": 7,
            "trained_by": "pyml.train",
        },
        "project": {"name": "houses", "task": task},
        "snapshot": {
            "relation_name": "public.houses",
            "y_column_name": ["y"],
            "test_size": 0.25,
            "test_sampling": "random",
            "columns": _columns(["y"]),
            "row_count": 200,
            "data_fingerprint": "ab" * 32,
        },
        "model": {
            "algorithm": algorithm,
            "hyperparams": {"n_estimators": 10},
            "metrics": {"r2": 0.9} if task == "regression" else {"f1": 0.9},
            "num_features": 3,
            "feature_names": ["a", "b", "c"],
            "classes": classes,
            "preprocess": None,
            "runtime": "python",
            "lineage": {"pyml": "0.1.0"},
        },
        "files": bundle.files_of(parts),
    }


@pytest.fixture(scope="module")
def lgbm(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[dict[str, Any], Any]:
    X, y, _ = data
    estimator = lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, y)
    return _bundle(artifacts.dump("lightgbm", estimator), "regression", "lightgbm", None), estimator


@pytest.fixture(scope="module")
def logistic(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[dict[str, Any], Any]:
    X, _, labels = data
    estimator = LogisticRegression().fit(X, labels)
    return (
        _bundle(artifacts.dump("sklearn", estimator), "classification", "linear", [0, 1]),
        estimator,
    )


# -- round trips ---------------------------------------------------------------------------


def test_round_trip_lightgbm_predicts_the_same(
    lgbm: tuple[dict[str, Any], Any], data: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    original, estimator = lgbm
    loaded = bundle.loads(bundle.dumps(original))
    assert loaded == original
    model = bundle.model(loaded)
    assert model.columns == ["a", "b", "c"]
    X = data[0]
    np.testing.assert_array_equal(model.predict(X), estimator.predict(X))


def test_round_trip_sklearn_predicts_the_same(
    logistic: tuple[dict[str, Any], Any], data: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    original, estimator = logistic
    model = bundle.model(bundle.loads(bundle.dumps(original)))
    X = data[0]
    np.testing.assert_array_equal(model.predict(X), estimator.predict(X).astype(float))
    np.testing.assert_allclose(model.predict_proba(X), estimator.predict_proba(X))


def test_bytes_are_canonical_json_with_base64_files(lgbm: tuple[dict[str, Any], Any]) -> None:
    original, _ = lgbm
    data = bundle.dumps(original)
    shuffled = dict(reversed(list(original.items())))
    assert bundle.dumps(shuffled) == data  # key order does not matter
    document = json.loads(data)
    assert list(document) == sorted(document)
    assert b"\n" not in data and b": " not in data
    (file,) = document["files"]
    assert base64.b64decode(file["data"]) == original["files"][0]["data"]
    assert file["sha256"] == hashlib.sha256(original["files"][0]["data"]).hexdigest()


def test_optional_keys_may_be_absent_or_present(lgbm: tuple[dict[str, Any], Any]) -> None:
    original, _ = lgbm
    minimal = copy.deepcopy(original)
    minimal["source"] = {"pyml_version": "0.1.0", "exported_at": "2026-12-06T08:30:00Z"}
    bundle.loads(bundle.dumps(minimal))
    full = copy.deepcopy(original)
    full["source"]["cluster"] = {"scheduler": "tcp://127.0.0.1:8786", "workers": 2}
    full["source"]["trained_by"] = "dask"
    full["snapshot"]["preprocess"] = {}
    full["model"].update(search=None, search_params={}, search_args={}, baseline={"deciles": []})
    assert bundle.loads(bundle.dumps(full))["source"]["cluster"]["workers"] == 2


def test_feature_columns_and_file_rows(lgbm: tuple[dict[str, Any], Any]) -> None:
    original, _ = lgbm
    assert bundle.feature_columns(original) == ["a", "b", "c"]
    (row,) = bundle.file_rows(original)
    assert (row.part, row.format) == (0, "lightgbm-text")


# -- malformed: 22023 ------------------------------------------------------------------------


def _edit(original: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> bytes:
    """The bundle's JSON document, changed by ``change`` (files as written, base64)."""
    document = json.loads(bundle.dumps(original))
    change(document)
    return json.dumps(document).encode()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[int(last) if isinstance(target, list) else last] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        del target[int(last) if isinstance(target, list) else last]

    return change


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe not utf-8",
        b"not json",
        b"[1, 2]",
        b'"pyml-model"',
        b'{"format": "pyml-model", "format": "pyml-model", "version": 1}',
        b'{"format": "onnx", "version": 1}',
        b'{"format": "pyml-model", "version": 2}',
        b'{"format": "pyml-model", "version": "1"}',
        b'{"format": "pyml-model", "version": true}',
        b'{"format": "pyml-model", "version": 1}',
        b'{"format": "pyml-model", "version": 1, "x": 1e999}',
        b'{"format": "pyml-model", "version": 1, "x": NaN}',
    ],
)
def test_not_a_bundle_is_22023(data: bytes) -> None:
    with pytest.raises(InvalidParameterValue):
        bundle.loads(data)


@pytest.mark.parametrize(
    "change",
    [
        _drop("source"),
        _drop("files"),
        _drop("source.exported_at"),
        _drop("project.task"),
        _drop("snapshot.columns"),
        _drop("model.feature_names"),
        _drop("model.classes"),
        _drop("files.0.sha256"),
        _set("surprise", 1),
        _set("model.color", "red"),
        _set("source.exported_at", "yesterday"),
        _set("source.model_id", "7"),
        _set("project.name", ""),
        _set("project.task", "ranking"),
        _set("snapshot.test_size", 1.5),
        _set("snapshot.test_sampling", "sometimes"),
        _set("snapshot.row_count", -1),
        _set("snapshot.row_count", 2**63),
        _set("snapshot.test_size", 200),
        _set("snapshot.test_size", 1e300),
        _set("model.num_features", 2**31),
        _set("files.0.part", 2**31),
        _set("snapshot.columns", []),
        _set("snapshot.columns.0.role", "weight"),
        _set("snapshot.columns.1.name", "a"),
        _set("snapshot.y_column_name", ["z"]),
        _set("model.algorithm", "magic"),
        _set("model.num_features", 4),
        _set("model.num_features", True),
        _set("model.feature_names", ["a", "b", "zz"]),
        _set("model.hyperparams", [1]),
        _set("model.classes", [0, 1]),
        _set("model.metrics", None),
        _set("model.search", "exhaustive"),
        _set("files", []),
        _set("files.0", "data"),
        _set("files.0.data", "not base64!"),
        _set("files.0.sha256", "ABC"),
        _set("files.0.part", -1),
    ],
)
def test_malformed_bundle_is_22023(
    lgbm: tuple[dict[str, Any], Any], change: Callable[[dict[str, Any]], None]
) -> None:
    with pytest.raises(InvalidParameterValue):
        bundle.loads(_edit(lgbm[0], change))


def test_what_postgresql_cannot_store_is_22023(lgbm: tuple[dict[str, Any], Any]) -> None:
    """Numbers beyond a float (read as infinity by Python; jsonb refuses it), NUL characters
    and lone surrogates (text and jsonb refuse them)."""
    data = bundle.dumps(lgbm[0])
    assert b'"r2":0.9' in data
    for bad in (b'"r2":1e999', b'"r2":-1e400', b'"r2":"\\u0000"', b'"r2":"\\udc00"'):
        with pytest.raises(InvalidParameterValue):
            bundle.loads(data.replace(b'"r2":0.9', bad))
    with pytest.raises(InvalidParameterValue):
        bundle.loads(data.replace(b'"r2":0.9', b'"r\\u0000":0.9'))
    with pytest.raises(InvalidParameterValue):
        bundle.loads(data.replace(b'"name":"houses"', b'"name":"hou\\u0000ses"'))
    assert bundle.loads(data.replace(b'"name":"houses"', b'"name":"h\\u00e9\\ud83d\\ude00"'))


def test_deep_nesting_is_22023(lgbm: tuple[dict[str, Any], Any]) -> None:
    """Deeper than Python's recursion limit: 22023, not a RecursionError."""
    data = bundle.dumps(lgbm[0])
    nested = b'"r2":' + b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(InvalidParameterValue, match="nested too deeply"):
        bundle.loads(data.replace(b'"r2":0.9', nested))
    nested = b'"r2":' + b"[" * 100 + b"]" * 100
    assert bundle.loads(data.replace(b'"r2":0.9', nested))["model"]["metrics"]["r2"]


def test_classification_needs_classes(logistic: tuple[dict[str, Any], Any]) -> None:
    for classes in (None, [1], [[0], [1]]):
        with pytest.raises(InvalidParameterValue, match="classes"):
            bundle.loads(_edit(logistic[0], _set("model.classes", classes)))


def test_two_files_with_one_part_is_22023(lgbm: tuple[dict[str, Any], Any]) -> None:
    def twice(document: dict[str, Any]) -> None:
        document["files"].append(dict(document["files"][0]))

    with pytest.raises(InvalidParameterValue, match="part number"):
        bundle.loads(_edit(lgbm[0], twice))


def test_array_elements_name_their_column(lgbm: tuple[dict[str, Any], Any]) -> None:
    def vector(document: dict[str, Any]) -> None:
        document["snapshot"]["columns"][2]["name"] = "v"
        document["model"]["feature_names"] = ["a", "b", "v[1]"]

    assert bundle.loads(_edit(lgbm[0], vector))["model"]["feature_names"][2] == "v[1]"


def test_messages_name_the_key(lgbm: tuple[dict[str, Any], Any]) -> None:
    with pytest.raises(InvalidParameterValue) as raised:
        bundle.loads(_edit(lgbm[0], _set("model.num_features", "three")))
    assert (
        raised.value.message
        == 'bundle key "model.num_features" must be an integer > 0, got "three"'
    )
    with pytest.raises(InvalidParameterValue) as raised:
        bundle.loads(_edit(lgbm[0], _drop("snapshot.row_count")))
    assert raised.value.message == 'bundle key "snapshot" has no key "row_count"'


def test_dumps_refuses_what_would_not_load(lgbm: tuple[dict[str, Any], Any]) -> None:
    broken = copy.deepcopy(lgbm[0])
    broken["model"]["metrics"] = {"r2": float("nan")}
    with pytest.raises(InvalidParameterValue):
        bundle.dumps(broken)
    broken = copy.deepcopy(lgbm[0])
    broken["model"]["num_features"] = 2
    with pytest.raises(InvalidParameterValue):
        bundle.dumps(broken)
    broken = copy.deepcopy(lgbm[0])
    broken["files"] = [{"part": 0}]
    with pytest.raises(InvalidParameterValue):
        bundle.dumps(broken)


# -- damaged files: XX001 ------------------------------------------------------------------


def test_sha256_mismatch_is_xx001(lgbm: tuple[dict[str, Any], Any]) -> None:
    other = base64.b64encode(b"tree\nversion=v4\n").decode()
    with pytest.raises(DataCorrupted, match="checksum"):
        bundle.loads(_edit(lgbm[0], _set("files.0.data", other)))


def test_unknown_format_is_xx001(lgbm: tuple[dict[str, Any], Any]) -> None:
    with pytest.raises(DataCorrupted, match="not allowed"):
        bundle.loads(_edit(lgbm[0], _set("files.0.format", "pickle")))


class _Planted:
    """Unpickling this creates a directory at ``path`` (code run from the data)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("fmt", ["skops", "lightgbm-text", "skops-preprocessor", "onnx"])
def test_planted_pickle_never_runs(
    lgbm: tuple[dict[str, Any], Any],
    logistic: tuple[dict[str, Any], Any],
    tmp_path: Path,
    fmt: str,
) -> None:
    """A pickle in a file, its sha256 right, under any allowed format: refused (XX001) when
    the model is loaded, and its code never runs."""
    marker = tmp_path / "planted"
    payload = pickle.dumps(_Planted(str(marker)))
    file = {"format": fmt, "sha256": hashlib.sha256(payload).hexdigest(), "data": payload}
    planted = copy.deepcopy(logistic[0] if fmt.startswith("skops") else lgbm[0])
    if fmt in ("skops", "lightgbm-text"):  # instead of the model's file
        planted["files"] = [{"part": 0, **file}]
    else:  # beside it
        planted["files"].append({"part": 1, **file})
    if fmt == "skops-preprocessor":
        planted["model"]["preprocess"] = {name: {"impute": "mean"} for name in ("a", "b", "c")}
    loaded = bundle.loads(bundle.dumps(planted))  # its key set and checksums are right
    with pytest.raises(DataCorrupted):
        bundle.model(loaded)
    assert not marker.exists()


def test_files_must_fit_the_model(
    lgbm: tuple[dict[str, Any], Any], logistic: tuple[dict[str, Any], Any]
) -> None:
    """A model file in another format than its algorithm's, or a preprocessing file without
    rules: 22023."""
    mixed = copy.deepcopy(lgbm[0])
    mixed["model"]["algorithm"] = "linear"
    with pytest.raises(InvalidParameterValue, match='stored as "skops"'):
        bundle.dumps(mixed)
    both = copy.deepcopy(lgbm[0])
    both["files"].append({**logistic[0]["files"][0], "part": 1})
    with pytest.raises(InvalidParameterValue, match="lightgbm-text, skops"):
        bundle.dumps(both)
    ruleless = copy.deepcopy(logistic[0])
    ruleless["files"].append({**ruleless["files"][0], "part": 1, "format": "skops-preprocessor"})
    with pytest.raises(InvalidParameterValue, match='no rule for feature "a"'):
        bundle.dumps(ruleless)
    ordinal = copy.deepcopy(ruleless)
    ordinal["model"]["preprocess"] = {name: {"encode": {"x": 1}} for name in ("a", "b", "c")}
    with pytest.raises(InvalidParameterValue, match="does not fit its features"):
        bundle.model(bundle.loads(bundle.dumps(ordinal)))


def test_the_bundle_must_describe_its_model_file(
    lgbm: tuple[dict[str, Any], Any], logistic: tuple[dict[str, Any], Any]
) -> None:
    """Files that load but take another number of inputs, or give another number of
    classes, than the bundle says: 22023."""

    def fewer(document: dict[str, Any]) -> None:
        document["snapshot"]["columns"].pop(2)
        document["model"].update(num_features=2, feature_names=["a", "b"])

    for original in (lgbm[0], logistic[0]):
        with pytest.raises(InvalidParameterValue, match="takes 3 features"):
            bundle.model(bundle.loads(_edit(original, fewer)))
    with pytest.raises(InvalidParameterValue, match="gives 2 classes"):
        bundle.model(bundle.loads(_edit(logistic[0], _set("model.classes", [0, 1, 2]))))


def test_algorithm_must_fit_the_task(logistic: tuple[dict[str, Any], Any]) -> None:
    for task, algorithm in (("classification", "lasso"), ("clustering", "linear")):

        def change(document: dict[str, Any], task: str = task, algorithm: str = algorithm) -> None:
            document["project"]["task"] = task
            document["model"]["algorithm"] = algorithm
            if task == "clustering":
                document["model"]["classes"] = None

        with pytest.raises(InvalidParameterValue, match="does not support task"):
            bundle.loads(_edit(logistic[0], change))


def test_inputs_must_follow_the_columns(lgbm: tuple[dict[str, Any], Any]) -> None:
    for names in (["b", "a", "c"], ["a", "b", "b"], ["a", "a[1]", "c"]):
        with pytest.raises(InvalidParameterValue, match="disagree"):
            bundle.loads(_edit(lgbm[0], _set("model.feature_names", names)))


def test_damaged_lightgbm_file_is_xx001(lgbm: tuple[dict[str, Any], Any]) -> None:
    damaged = copy.deepcopy(lgbm[0])
    text = damaged["files"][0]["data"].replace(b"num_leaves=", b"num_leaves=9999", 1)
    damaged["files"] = [
        {**damaged["files"][0], "data": text, "sha256": hashlib.sha256(text).hexdigest()}
    ]
    with pytest.raises(DataCorrupted):
        bundle.model(bundle.loads(bundle.dumps(damaged)))
