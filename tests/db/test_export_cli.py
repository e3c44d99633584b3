# ruff: noqa: S608  (SQL built from this file's constants; values are bound)
"""``pyml export``: the pair it writes predicts, in a fresh process through pyml.edge, what
pyml.predict / predict_label / predict_proba give in SQL for the same rows; its errors.

``gadgets`` is a table like a real one: a text column and a number with NULLs, an integer,
a boolean, a text grade with NULLs; labels: a price (regression), a boolean (binary) and a
text band (three classes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from pyml import edge

PYML = [sys.executable, "-m", "pyml.client.cli"]
N = 400
FEATURES = ("city", "size", "rooms", "garden", "grade")
PREPROCESS = {
    "city": {"encode": "one_hot"},
    "grade": {"encode": "one_hot"},
    "size": {"impute": "mean"},
}
# A fresh process: the pair's predictions of rows read from stdin, as JSON.
PREDICT = """
import json, sys
from pyml.edge import Predictor
given = json.load(sys.stdin)
p = Predictor(given["path"])
rows = given["rows"]
out = {"many": p.predict_many(rows) if given["values"] else None}
if given["values"]:
    out["one"] = [p.predict(r) for r in rows]
if given["classes"]:
    out["label"] = [p.predict_label(r) for r in rows]
    out["proba"] = [p.predict_proba(r) for r in rows]
out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "sklearn"))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def gadgets(conn: psycopg.Connection) -> str:
    rng = np.random.default_rng(16)
    city = rng.choice(["paris", "lyon", "nice", "brest"], N).astype(object)
    city[rng.random(N) < 0.08] = None
    size = rng.lognormal(4, 0.5, N)
    rooms = rng.integers(1, 7, N)
    garden = rng.random(N) < 0.4
    grade = rng.choice(["low", "mid", "high"], N).astype(object)
    grade[rng.random(N) < 0.06] = None
    effect = {"paris": 3.0, "lyon": 1.5, "nice": 1.8, "brest": 0.5, None: 1.0}
    price = (
        np.array([effect[c] for c in city]) * size * 2
        + 30 * garden
        + 10 * rooms
        + np.array([{"low": -20, "mid": 0, "high": 25, None: 0}[g] for g in grade])
        + rng.normal(0, 10, N)
    )
    observed = size.round(2).astype(object)
    observed[rng.random(N) < 0.08] = None
    low, high = np.quantile(price, [0.33, 0.66])
    conn.execute(
        "CREATE TABLE gadgets (id int PRIMARY KEY, city text, size real, rooms int,"
        " garden boolean, grade text, price float8, pricey boolean, band text)"
    )
    with conn.cursor().copy("COPY gadgets FROM STDIN") as copy:
        for i in range(N):
            band = "cheap" if price[i] < low else "fair" if price[i] < high else "expensive"
            copy.write_row(
                (
                    i + 1,
                    city[i],
                    observed[i],
                    int(rooms[i]),
                    bool(garden[i]),
                    grade[i],
                    float(price[i]),
                    bool(price[i] > np.median(price)),
                    band,
                )
            )
    for label in ("price", "pricey", "band"):
        conn.execute(
            f"CREATE VIEW gadgets_{label} AS SELECT {', '.join(FEATURES)}, {label}"
            " FROM gadgets ORDER BY id"
        )
    return "gadgets"


def _train(
    conn: psycopg.Connection,
    project: str,
    label: str,
    algorithm: str,
    hyperparams: dict[str, Any] | None = None,
    **extra: Any,
) -> int:
    task = "regression" if label == "price" else "classification"
    args = "".join(f", {k} => %({k})s" for k in extra)
    conn.execute(
        "SELECT * FROM pyml.train(%(p)s, %(task)s, %(rel)s, %(label)s, %(alg)s,"
        f" hyperparams => %(hp)s, preprocess => %(pre)s{args})",
        {
            "p": project,
            "task": task,
            "rel": f"gadgets_{label}",
            "label": label,
            "alg": algorithm,
            "hp": json.dumps(hyperparams or {}),
            "pre": json.dumps(PREPROCESS),
            **extra,
        },
    )
    (model_id,) = conn.execute(
        "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s",
        (project,),
    ).fetchone()
    return int(model_id)


def _export(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYML, "export", *args, "--url", url], capture_output=True, text=True)


def _rows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    cur = conn.execute(f"SELECT {', '.join(FEATURES)} FROM gadgets ORDER BY id")
    return [dict(zip(FEATURES, row, strict=True)) for row in cur.fetchall()]


def _outside(path: Path, rows: list[dict[str, Any]], values: bool, classes: bool) -> Any:
    given = {"path": str(path), "rows": rows, "values": values, "classes": classes}
    out = subprocess.run(
        [sys.executable, "-c", PREDICT],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        cwd=path.parent,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _sql(conn: psycopg.Connection, function: str, project: str) -> list[Any]:
    cur = conn.execute(f"SELECT pyml.{function}(%s, g) FROM gadgets g ORDER BY id", (project,))
    return [value for (value,) in cur.fetchall()]


@pytest.mark.parametrize(
    ("label", "algorithm", "hyperparams"),
    [
        ("price", "random_forest", {"n_estimators": 20, "random_state": 0}),
        ("price", "linear", {}),
        ("pricey", "lightgbm", {"n_estimators": 30, "deterministic": True, "num_threads": 1}),
        ("band", "random_forest", {"n_estimators": 20, "random_state": 0}),
    ],
    ids=["regression-forest", "regression-linear", "binary-lightgbm", "text-classes-forest"],
)
def test_exported_pair_predicts_as_sql_in_a_fresh_process(
    conn: psycopg.Connection,
    url: str,
    gadgets: str,
    tmp_path: Path,
    label: str,
    algorithm: str,
    hyperparams: dict[str, Any],
) -> None:
    project = f"export_{label}_{algorithm}"
    model_id = _train(conn, project, label, algorithm, hyperparams)
    out = _export(url, project, "-o", str(tmp_path / "model.onnx"))
    assert out.returncode == 0, out.stderr
    assert f"model {model_id} of project" in out.stderr
    card = json.loads((tmp_path / "model.json").read_text())
    (want_card,) = conn.execute("SELECT pyml.model_card(%s::bigint)", (model_id,)).fetchone()
    assert card == want_card
    assert edge.read(tmp_path)[0]["model_id"] == model_id  # the sha256 and size verify
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.onnx"]

    rows = _rows(conn)
    assert any(r["city"] is None for r in rows) and any(r["size"] is None for r in rows)
    text_classes = label == "band"
    got = _outside(tmp_path / "model.onnx", rows, not text_classes, label != "price")
    assert got["modules"] == []
    if not text_classes:
        want = _sql(conn, "predict", project)
        assert got["many"] == got["one"]
        if label == "price":
            # pyml.predict returns real; a linear graph sums in float32 (ai.onnx.ml): within
            # float32 rounding of the largest value (the card's tolerance is 100 times that)
            scale = float(np.max(np.abs(want)))
            np.testing.assert_allclose(np.float32(got["one"]), want, rtol=1e-6, atol=1e-6 * scale)
        else:
            assert got["one"] == want and set(want) == {0.0, 1.0}
    if label != "price":
        assert got["label"] == _sql(conn, "predict_label", project)
        if label == "pricey":
            assert set(got["label"]) == {"true", "false"}
        else:
            assert set(got["label"]) == {"cheap", "fair", "expensive"}
            assert card["classes"] == ["cheap", "expensive", "fair"]
        np.testing.assert_allclose(got["proba"], _sql(conn, "predict_proba", project), atol=1e-6)


def test_export_of_a_model_by_id_and_of_a_numeric_multiclass(
    conn: psycopg.Connection, url: str, tmp_path: Path
) -> None:
    """``--model ID`` exports that model, live or not; iris's classes are numbers."""
    conn.execute(
        "SELECT * FROM pyml.train('export_iris', 'classification', 'pyml.iris', 'target',"
        " 'random_forest', '{\"n_estimators\": 10, \"random_state\": 0}')"
    )
    (first,) = conn.execute("SELECT pyml.deployed_model('export_iris')").fetchone()
    conn.execute(
        "SELECT * FROM pyml.train('export_iris', algorithm => 'linear',"
        " hyperparams => '{\"max_iter\": 500}', automatic_deploy => false)"
    )
    out = _export(url, "--model", str(first), "-o", str(tmp_path / "iris.onnx"))
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "iris.json").read_text())["model_id"] == first
    cur = conn.execute(
        "SELECT sepal_length, sepal_width, petal_length, petal_width,"
        " pyml.predict('export_iris', i) FROM pyml.iris i ORDER BY 1, 2, 3, 4"
    )
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    rows, want = [], []
    for *values, prediction in cur.fetchall():
        rows.append(dict(zip(names, values, strict=True)))
        want.append(prediction)
    got = _outside(tmp_path / "iris.onnx", rows, True, True)
    assert got["one"] == want and set(want) == {0.0, 1.0, 2.0}
    assert set(got["label"]) == {"0", "1", "2"}


def test_export_errors(conn: psycopg.Connection, url: str, gadgets: str, tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    out = _export(url, "no_such_project", "-o", str(target))
    assert out.returncode == 1
    assert out.stderr.startswith('pyml: error: project "no_such_project" does not exist')
    # No live model: trained without deploying.
    _train(conn, "export_undeployed", "price", "linear", automatic_deploy=False)
    out = _export(url, "export_undeployed", "-o", str(target))
    assert out.returncode == 1 and "has no deployed model" in out.stderr, out.stderr
    # A model without an ONNX part: the server's reason, as DETAIL.
    kernel = _train(conn, "export_kernel_ridge", "price", "kernel_ridge")
    out = _export(url, "--model", str(kernel), "-o", str(target))
    assert out.returncode == 1
    assert out.stderr.startswith("pyml: error: "), out.stderr
    assert "DETAIL:  " in out.stderr and "KernelRidge" in out.stderr, out.stderr
    out = _export(url, "export_kernel_ridge", "-o", str(tmp_path / "card.json"))
    assert out.returncode == 1 and 'must not end in ".json"' in out.stderr
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    out = _export(unreachable, "export_kernel_ridge", "-o", str(target))
    assert out.returncode == 1 and "Connection refused" in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written on any error
