"""The device runtime (pyml.edge) without a database: graphs made here with
pyml.core.onnxpart.convert and cards written as pyml.model_card writes them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyml import edge
from pyml.core import onnxpart
from pyml.core import preprocess as _preprocess
from pyml.core.preprocess import Column
from pyml.errors import (
    DataCorrupted,
    FeatureNotSupported,
    InvalidParameterValue,
    ObjectNotInPrerequisiteState,
    UndefinedColumn,
)

COLUMNS = [
    Column("city", "text", "S", False),
    Column("size", "double precision", "N", False),
    Column("rooms", "integer", "N", False),
]
NAMES = [c.name for c in COLUMNS]
SPEC = {"city": {"encode": "one_hot"}, "size": {"impute": "mean"}}
CLASSES = ["high", "low", "mid"]


def _rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.empty((n, 3), dtype=object)
    X[:, 0] = rng.choice(["paris", "lyon", "nice", None], n)
    X[:, 1] = rng.normal(50, 10, n)
    X[:, 2] = rng.integers(1, 6, n).astype(float)
    X[rng.random(n) < 0.1, 1] = np.nan
    size = np.nan_to_num(np.asarray(X[:, 1], dtype=float), nan=50.0)
    y = size + 3 * X[:, 2].astype(float) + 5 * (X[:, 0] == "paris") + rng.normal(0, 1, n)
    return X, y


def _card(data: bytes, model_id: int, task: str, classes: list[Any] | None) -> dict[str, Any]:
    sess = onnxpart.session(data)
    return {
        "pyml_version": "0.1.0",
        "model_id": model_id,
        "project": "houses",
        "task": task,
        "algorithm": "random_forest",
        "created_at": "2026-12-06T05:00:00+00:00",
        "format": "onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "inputs": [{"name": i.name, "type": i.type[7:-1]} for i in sess.get_inputs()],
        "outputs": [{"name": o.name, "type": o.type[7:-1]} for o in sess.get_outputs()],
        "classes": classes,
        "nulls": {"number": "NaN", "text": ""},
        "parity": {"precision": "double", "max_diff": 0.0, "rows": 30, "tolerance": 0.0001},
    }


class Made:
    """A fitted model, its graph and card, and the original's answers on test rows."""

    def __init__(self, task: str, model_id: int, classes: list[Any] | None, seed: int) -> None:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        X, y = _rows(300, seed)
        if task == "classification":
            assert classes is not None
            y = np.digitize(y, np.quantile(y, np.linspace(0, 1, len(classes) + 1)[1:-1]))
        rules = _preprocess.resolve(SPEC, COLUMNS, ["y"], task)
        inputs = [rules[n] for n in NAMES]
        pre = _preprocess.build(inputs, X[:200], task).fit(X[:200], y[:200])
        make = RandomForestClassifier if task == "classification" else RandomForestRegressor
        model = make(8, random_state=seed).fit(_preprocess.transform(pre, X[:200]), y[:200])
        converted = onnxpart.convert(model, pre, NAMES, [r.category for r in inputs], task, X[200:])
        assert converted.data is not None, converted.reason
        self.data = converted.data
        self.card = _card(self.data, model_id, task, classes)
        self.test = X[200:]
        Xt = _preprocess.transform(pre, self.test)
        self.values = model.predict(Xt)
        self.proba = model.predict_proba(Xt) if task == "classification" else None

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "city": city,
                "size": None if size != size else size,  # NULL, as psycopg gives it
                "rooms": int(rooms),
            }
            for city, size, rooms in self.test
        ]


@pytest.fixture(scope="module")
def regression() -> Made:
    return Made("regression", 7, None, 0)


@pytest.fixture(scope="module")
def classifier() -> Made:
    return Made("classification", 8, CLASSES, 1)


@pytest.fixture(scope="module")
def boolean() -> Made:
    return Made("classification", 9, [False, True], 2)


def test_regression_predicts_as_the_original(regression: Made, tmp_path: Path) -> None:
    edge.write_pair(tmp_path / "model.onnx", regression.card, regression.data)
    predictor = edge.Predictor(tmp_path)
    got = [predictor.predict(row) for row in regression.rows()]
    assert got == [float(v) for v in onnxpart.run(regression.data, regression.test)[0].ravel()]
    np.testing.assert_allclose(got, regression.values, rtol=1e-6)  # a float32 tree sum
    assert any(row["size"] is None for row in regression.rows())  # NULLs were there
    assert any(row["city"] is None for row in regression.rows())
    assert predictor.model_id == 7 and predictor.task == "regression"
    assert predictor.columns == NAMES


def test_classes_text_labels_and_probabilities(classifier: Made, tmp_path: Path) -> None:
    edge.write_pair(tmp_path / "houses.onnx", classifier.card, classifier.data)
    predictor = edge.Predictor(tmp_path / "houses.onnx")  # a file with its card beside it
    rows = classifier.rows()
    assert [predictor.predict_label(r) for r in rows] == [CLASSES[i] for i in classifier.values]
    assert classifier.proba is not None
    got = np.array([predictor.predict_proba(r) for r in rows])
    np.testing.assert_allclose(got, classifier.proba, atol=1e-6)
    with pytest.raises(InvalidParameterValue, match="text class labels"):
        predictor.predict(rows[0])
    # A classifier whose second output holds scores (no predict_proba): the card says so.
    card = {**classifier.card, "probabilities": False, "algorithm": "linear_svm"}
    edge.write_pair(tmp_path / "scores.onnx", card, classifier.data)
    scores = edge.Predictor(tmp_path / "scores.onnx")
    assert scores.predict_label(rows[0]) == predictor.predict_label(rows[0])
    with pytest.raises(FeatureNotSupported, match='"linear_svm" does not give class prob'):
        scores.predict_proba(rows[0])


def test_boolean_classes_as_numbers_and_text(boolean: Made, tmp_path: Path) -> None:
    edge.write_pair(tmp_path / "model.onnx", boolean.card, boolean.data)
    predictor = edge.Predictor(tmp_path)
    rows = boolean.rows()
    assert [predictor.predict(r) for r in rows] == [float(v) for v in boolean.values]
    assert {predictor.predict_label(r) for r in rows} == {"true", "false"}
    with pytest.raises(InvalidParameterValue, match="which has no classes"):
        edge.Predictor(_pair(tmp_path / "r", _regression())).predict_proba(rows[0])


def _regression() -> Made:
    return Made("regression", 10, None, 3)


def _pair(directory: Path, made: Made) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    edge.write_pair(directory / "model.onnx", made.card, made.data)
    return directory


def test_predict_many_of_rows_and_of_columns(regression: Made, tmp_path: Path) -> None:
    predictor = edge.Predictor(_pair(tmp_path, regression))
    rows = regression.rows()
    one_by_one = [predictor.predict(r) for r in rows]
    assert predictor.predict_many(rows) == one_by_one
    columns = {name: [r[name] for r in rows] for name in NAMES}
    assert predictor.predict_many(columns) == one_by_one
    assert predictor.predict_many([]) == []
    with pytest.raises(InvalidParameterValue, match="must be a sequence"):
        predictor.predict_many(rows[0])


def test_values_converted_per_input_type(regression: Made, tmp_path: Path) -> None:
    """Numbers as text or bools, text categories given as numbers: converted as the server
    reads them (a NULL text is "", a NULL number NaN)."""
    predictor = edge.Predictor(_pair(tmp_path, regression))
    row = {"city": "paris", "size": 51.5, "rooms": 3}
    assert predictor.predict({**row, "size": "51.5", "rooms": 3.0}) == predictor.predict(row)
    assert predictor.predict({**row, "city": None}) == predictor.predict({**row, "city": ""})
    assert edge.text(True) == "true" and edge.text(3.0) == "3" and edge.text(None) == ""
    with pytest.raises(ValueError, match='feature "size" must be a number'):
        predictor.predict({**row, "size": "big"})
    with pytest.raises(InvalidParameterValue, match="infinite"):
        predictor.predict({**row, "size": float("inf")})


def test_a_missing_column_is_named(regression: Made, tmp_path: Path) -> None:
    predictor = edge.Predictor(_pair(tmp_path, regression))
    with pytest.raises(KeyError) as caught:
        predictor.predict({"city": "paris", "size": 1.0})
    assert isinstance(caught.value, UndefinedColumn)
    assert str(caught.value) == 'row has no column "rooms"'
    assert caught.value.detail == 'Model 7 takes "city", "size", "rooms".'


def test_install_swaps_and_the_predictor_follows(
    regression: Made, classifier: Made, tmp_path: Path
) -> None:
    directory = tmp_path / "device"
    assert edge.install(directory, regression.card, regression.data) is True
    assert edge.install(directory, regression.card, regression.data) is False  # already there
    predictor = edge.Predictor(directory)
    assert predictor.model_id == 7
    assert os.readlink(directory / "current").startswith("models/7-")
    assert os.readlink(directory / "model.json") == "current/model.json"
    version = directory / os.readlink(directory / "current")
    assert [oct(p.stat().st_mode & 0o777) for p in (version, version / "model.onnx")] == [
        "0o755",
        "0o644",
    ]
    assert json.loads((directory / "model.json").read_text()) == regression.card
    assert edge.install(directory, classifier.card, classifier.data) is True
    assert predictor.model_id == 8  # reloaded on the next call
    assert predictor.predict_label(classifier.rows()[0]) in CLASSES
    third = _regression()
    edge.install(directory, third.card, third.data)
    kept = sorted(p.name.split("-")[0] for p in (directory / "models").iterdir())
    assert kept == ["10", "8"]  # the current model and the one before
    assert edge.installed(directory) == third.card


def test_a_copy_that_does_not_verify_is_refused(regression: Made, tmp_path: Path) -> None:
    directory = tmp_path / "device"
    edge.install(directory, regression.card, regression.data)
    predictor = edge.Predictor(directory)
    before = predictor.predict(regression.rows()[0])
    # A new model directory whose graph is not the one its card names, made current.
    bad = directory / "models" / "99-bad"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(regression.data[:-1] + b"x")
    (bad / "model.json").write_text(json.dumps({**regression.card, "model_id": 99}))
    os.symlink("models/99-bad", directory / "tmp-link")
    os.replace(directory / "tmp-link", directory / "current")
    assert predictor.predict(regression.rows()[0]) == before  # kept serving model 7
    assert predictor.model_id == 7
    assert isinstance(predictor.last_error, DataCorrupted)
    assert "sha256" in (predictor.last_error.detail or "")
    with pytest.raises(DataCorrupted, match="model 99 does not match its card"):
        edge.Predictor(directory)
    assert edge.installed(directory) is None
    # A tampered plain pair is refused too.
    plain = _pair(tmp_path / "plain", regression)
    (plain / "model.onnx").write_bytes(regression.data.replace(b"city", b"town", 1))
    with pytest.raises(DataCorrupted) as caught:
        edge.Predictor(plain)
    assert "sha256" in (caught.value.detail or "")


def test_no_model_and_a_bad_card(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotInPrerequisiteState, match="no model in"):
        edge.Predictor(tmp_path)
    (tmp_path / "model.json").write_text('{"model_id": 1}')
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(DataCorrupted, match="model card is not valid"):
        edge.Predictor(tmp_path)
    with pytest.raises(InvalidParameterValue, match="must not end in"):
        edge.write_pair(
            tmp_path / "x.json",
            {"bytes": 0, "sha256": hashlib.sha256().hexdigest(), "model_id": 1},
            b"",
        )


def test_readers_never_see_a_mismatched_pair(regression: Made, tmp_path: Path) -> None:
    """While one thread swaps two models back and forth, readers (one long-lived, and fresh
    ones) never fail and always answer with one whole model or the other."""
    other = _regression()
    directory = tmp_path / "device"
    row = regression.rows()[0]
    allowed = set()
    for made in (other, regression):
        edge.install(directory, made.card, made.data)
        allowed.add(edge.Predictor(directory).predict(row))
    assert len(allowed) == 2
    predictor = edge.Predictor(directory)
    stop = threading.Event()
    swaps = 0

    def swap() -> None:
        nonlocal swaps
        while not stop.is_set():
            for made in (other, regression):
                edge.install(directory, made.card, made.data)
                swaps += 1

    thread = threading.Thread(target=swap)
    thread.start()
    seen = set()
    try:
        for i in range(400):
            seen.add((predictor if i % 2 else edge.Predictor(directory)).predict(row))
    finally:
        stop.set()
        thread.join()
    assert swaps > 10
    assert seen == allowed
    assert predictor.last_error is None


def test_the_runtime_needs_only_numpy_and_onnxruntime(regression: Made, tmp_path: Path) -> None:
    """In a fresh process: load and predict, then no psycopg, scikit-learn, onnx or pyml
    module but pyml.edge (and the package's errors) was imported."""
    directory = _pair(tmp_path, regression)
    script = f"""
import json, sys
from pyml.edge import Predictor
p = Predictor({str(directory)!r})
value = p.predict({{"city": "paris", "size": None, "rooms": 2}})
names = sorted(m for m in sys.modules if m.split(".")[0] in
    ("pyml", "psycopg", "sklearn", "skl2onnx", "onnx", "scipy", "lightgbm", "skops", "pandas"))
print(json.dumps([value, names]))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    value, names = json.loads(out.stdout)
    assert names == ["pyml", "pyml.edge", "pyml.errors"]
    assert value == edge.Predictor(directory).predict({"city": "paris", "size": None, "rooms": 2})
