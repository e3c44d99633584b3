# ruff: noqa: S608  (SQL built from this file's constants; values are bound)
"""ONNX parts (issue 16): stored at training, served through onnxruntime, exported.

For every kind of model: ``pyml.predict`` in SQL (through onnxruntime for scikit-learn
models), the original estimator (its skops part, loaded here with its preprocessing) and
the exported file run by onnxruntime in a fresh process agree on the rows; a model that
does not convert still trains and serves, and its export says why (0A000).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from typing import Any

import numpy as np
import psycopg
import pytest

from pyml.core import artifacts
from pyml.core import preprocess as _preprocess
from pyml.core.registry import FileRow

N = 300
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def shops(conn: psycopg.Connection) -> str:
    """Numbers with NULLs, a text column with NULLs, a number label and a text label."""
    rng = np.random.default_rng(16)
    city = rng.choice(["paris", "lyon", "nice"], N).astype(object)
    city[rng.random(N) < 0.1] = None
    size = rng.normal(50, 12, N)
    staff = rng.integers(1, 9, N).astype(float)
    sales = size * 2 + staff * 5 + np.array([{"paris": 30}.get(c, 0) for c in city])
    sales = sales + rng.normal(0, 3, N)
    band = np.where(sales < np.quantile(sales, 0.5), "low", "high")
    conn.execute(
        "CREATE TABLE shops (id int PRIMARY KEY, city text, size float8, staff float8,"
        " sales float8, band text, big boolean)"
    )
    with conn.cursor().copy("COPY shops FROM STDIN") as copy:
        for i in range(N):
            observed = None if rng.random() < 0.08 else float(size[i])
            big = bool(sales[i] > np.quantile(sales, 0.7))
            copy.write_row((i, city[i], observed, staff[i], sales[i], band[i], big))
    conn.execute(f"CREATE VIEW shops_numbers AS {NUMBERS.format('sales')}")
    return "shops"


def _train(
    conn: psycopg.Connection,
    project: str,
    task: str,
    relation: str,
    label: Any,
    algorithm: str,
    hyperparams: str = "{}",
    preprocess: str | None = None,
) -> int:
    conn.execute(
        "SELECT * FROM pyml.train(%s, %s, %s, %s, algorithm => %s, hyperparams => %s,"
        " preprocess => %s::jsonb)",
        [project, task, relation, label, algorithm, hyperparams, preprocess],
    )
    row = conn.execute(
        "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s",
        [project],
    ).fetchone()
    assert row is not None
    return int(row[0])


def _value(conn: psycopg.Connection, query: str, params: list[Any]) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _original(conn: psycopg.Connection, model_id: int) -> artifacts.Loaded:
    rows = conn.execute(
        "SELECT part, format, sha256, data FROM pyml.files WHERE model_id = %s"
        " AND format <> 'onnx'",
        [model_id],
    ).fetchall()
    return artifacts.load([FileRow(p, f, s, bytes(d)) for p, f, s, d in rows])


def _fresh_process(data: bytes, columns: dict[str, list[Any]], tmp_path: Any) -> list[Any]:
    """The exported bytes run by onnxruntime in a new Python process: its outputs."""
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    script = """
import json, sys
import numpy as np
import onnxruntime as ort
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
columns = json.loads(sys.stdin.read())
feeds = {}
for node in sess.get_inputs():
    values = columns[node.name]
    if node.type == "tensor(string)":
        feeds[node.name] = np.array(["" if v is None else v for v in values], dtype=object)
    else:
        dtype = np.float32 if node.type == "tensor(float)" else np.float64
        feeds[node.name] = np.array([np.nan if v is None else v for v in values], dtype=dtype)
    feeds[node.name] = feeds[node.name].reshape(-1, 1)
print(json.dumps([o.tolist() for o in sess.run(None, feeds)]))
assert "sklearn" not in sys.modules and "pyml" not in sys.modules
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        input=json.dumps(columns),
        capture_output=True,
        text=True,
        check=True,
    )
    outputs: list[Any] = json.loads(done.stdout)
    return outputs


NUMBERS = "SELECT coalesce(size, 50) AS size, staff, {} FROM shops"
CASES = [
    # project, task, relation (a query), label, algorithm, hyperparams, preprocess, columns
    ("rf_reg", "regression", NUMBERS.format("sales"), "sales", "random_forest",
     '{"n_estimators": 10}', None, ["size", "staff"]),
    ("lin_bin", "classification", NUMBERS.format("big"), "big", "linear", "{}", None,
     ["size", "staff"]),
    ("rf_multi", "classification", NUMBERS.format("band"), "band", "random_forest",
     '{"n_estimators": 10}', None, ["size", "staff"]),
    ("km", "clustering", NUMBERS.format("sales"), None, "kmeans", '{"n_clusters": 3}', None,
     ["size", "staff", "sales"]),
    ("pca", "decomposition", NUMBERS.format("sales"), None, "pca", '{"n_components": 2}', None,
     ["size", "staff", "sales"]),
    ("pre_reg", "regression", "SELECT city, size, staff, sales FROM shops", "sales",
     "ridge", "{}", '{"city": {"encode": "one_hot"}, "size": {"impute": "mean",'
     ' "scale": "standard"}}', ["city", "size", "staff"]),
    ("pre_cls", "classification", "SELECT city, size, staff, band FROM shops", "band",
     "random_forest", '{"n_estimators": 10}', '{"city": {"encode": "target"}, "size":'
     ' {"impute": "median"}}', ["city", "size", "staff"]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_sql_original_and_export_agree(
    conn: psycopg.Connection, shops: str, case: tuple[Any, ...], tmp_path: Any
) -> None:
    project, task, relation, label, algorithm, hyperparams, preprocess, columns = case
    view = f"shops_{project}"
    conn.execute(f"CREATE VIEW {view} AS {relation}")
    relation = view
    model_id = _train(conn, project, task, relation, label, algorithm, hyperparams, preprocess)
    metrics, lineage = conn.execute(
        "SELECT metrics, lineage -> 'onnx' FROM pyml.models WHERE id = %s", [model_id]
    ).fetchone() or (None, None)
    assert lineage["converted"], lineage
    assert metrics["onnx_max_diff"] == lineage["max_diff"] <= 1e-4
    assert lineage["rows"] > 0 and lineage["precision"] in ("double", "cast", "float")

    # every row, new categories and NULLs included
    names = ", ".join(columns)
    rows = conn.execute(f"SELECT {names} FROM {view}").fetchall()
    rows += [("marseille", 40.0, 3.0, 100.0)[: len(columns)]] if "city" in columns else []
    rows += [(None, None, 2.0)] if preprocess else []
    X = np.array(rows, dtype=object if "city" in columns else np.float64)
    loaded = _original(conn, model_id)
    estimator = loaded.parts[0]
    Xt = X if loaded.preprocessor is None else _preprocess.transform(loaded.preprocessor, X)

    # SQL (onnxruntime) against the original
    typed = ", ".join("%s::text" if c == "city" else "%s::float8" for c in columns)
    array = "real[]" if task == "decomposition" else "float8[]"
    target = f"ROW({typed})" if preprocess else f"ARRAY[{typed}]::{array}"
    if task == "decomposition":
        sql = [_value(conn, f"SELECT pyml.decompose(%s, {target})", [project, *r]) for r in rows]
        want = estimator.transform(np.asarray(Xt, dtype=np.float64))
        np.testing.assert_allclose(np.array(sql), want, rtol=1e-5, atol=1e-5)
    else:
        classes = _value(conn, "SELECT classes FROM pyml.models WHERE id = %s", [model_id])
        function = "predict_label" if classes and isinstance(classes[0], str) else "predict"
        sql = [_value(conn, f"SELECT pyml.{function}(%s, {target})", [project, *r]) for r in rows]
        raw = estimator.predict(np.asarray(Xt, dtype=np.float64))
        if task == "classification":
            if isinstance(classes[0], str):
                labels = [
                    conn.execute(
                        f"SELECT pyml.predict_label(%s, {target})", [project, *r]
                    ).fetchone()[0]
                    for r in rows
                ]
                assert labels == [classes[int(i)] for i in raw]
            else:
                assert sql == [float(classes[int(i)]) for i in raw]
            proba = [
                _value(conn, f"SELECT pyml.predict_proba(%s, {target})", [project, *r])
                for r in rows
            ]
            if hasattr(estimator, "predict_proba"):
                want_p = estimator.predict_proba(np.asarray(Xt, dtype=np.float64))
                np.testing.assert_allclose(np.array(proba), want_p, atol=1e-5)
        elif task == "clustering":
            assert sql == [float(v) for v in raw]
        else:
            np.testing.assert_allclose(sql, raw, rtol=1e-5)

    # the export, in a fresh process, against SQL
    data = bytes(conn.execute("SELECT pyml.export(%s)", [project]).fetchone()[0])
    card = _value(conn, "SELECT pyml.model_card(%s)", [model_id])
    assert card["sha256"] == hashlib.sha256(data).hexdigest() and card["bytes"] == len(data)
    assert [i["name"] for i in card["inputs"]] == columns
    assert card["model_id"] == model_id and card["task"] == task
    assert card["parity"]["max_diff"] == lineage["max_diff"]
    outputs = _fresh_process(
        data, {name: [r[j] for r in rows] for j, name in enumerate(columns)}, tmp_path
    )
    first = np.array(outputs[0], dtype=np.float64)
    if task == "regression":
        np.testing.assert_allclose(first.ravel(), sql, rtol=1e-5)
    elif task == "decomposition":
        np.testing.assert_allclose(first, np.array(sql), rtol=1e-5, atol=1e-5)
    elif task == "clustering":
        assert first.ravel().tolist() == sql
    else:
        classes = card["classes"]
        exported = [classes[int(i)] for i in first.ravel()]
        if isinstance(classes[0], str):
            assert exported == labels
        else:
            assert [float(c) for c in exported] == sql
            np.testing.assert_allclose(np.array(outputs[1]), np.array(proba), atol=1e-6)


def test_serving_does_not_import_scikit_learn(conn: psycopg.Connection, shops: str) -> None:
    _train(conn, "lean", "regression", "shops_numbers", "sales", "random_forest",
           '{"n_estimators": 5}')  # fmt: skip
    conn.execute("DISCARD ALL")  # same backend: the module cache stays; check a new one
    with psycopg.connect(conn.info.dsn, autocommit=True) as fresh:
        fresh.execute("SELECT pyml.predict('lean', ARRAY[50, 3]::float8[])")
        fresh.execute("SELECT pyml.predict('lean', ROW(50.0::float8, 3.0::float8))")
        fresh.execute("SELECT pyml.predict_batch('lean', ARRAY[50, 3, 40, 2]::float8[])")
        loaded = fresh.execute(
            "DO $$ BEGIN IF pyml.version() IS NULL THEN RAISE 'no'; END IF; END $$"
        )
        del loaded
        pid = fresh.execute("SELECT pg_backend_pid()").fetchone()[0]
        with open(f"/proc/{pid}/maps") as f:  # noqa: PTH123 - the backend's libraries
            maps = f.read()
    assert "onnxruntime" in maps
    assert "sklearn" not in maps and "_skops" not in maps


def test_a_model_that_does_not_convert_trains_serves_and_says_why(
    conn: psycopg.Connection, shops: str
) -> None:
    model_id = _train(conn, "kr", "regression", "shops_numbers", "sales", "kernel_ridge")
    onnx = conn.execute("SELECT lineage -> 'onnx' FROM pyml.models WHERE id = %s", [model_id])
    record = onnx.fetchone()[0]
    assert not record["converted"] and "KernelRidge" in record["reason"]
    value = conn.execute("SELECT pyml.predict('kr', ARRAY[50, 3]::float8[])").fetchone()
    assert value is not None and math_finite(value[0])
    for call in ("SELECT pyml.export('kr')", "SELECT pyml.model_card('kr')"):
        with pytest.raises(psycopg.errors.FeatureNotSupported) as caught:
            conn.execute(call)
        assert caught.value.diag.message_primary == (
            f'model {model_id} of project "kr" has no ONNX form'
        )
        assert "KernelRidge" in (caught.value.diag.message_detail or "")
    assert conn.execute(
        "SELECT count(*) FROM pyml.files WHERE model_id = %s AND format = 'onnx'", [model_id]
    ).fetchone() == (0,)


def math_finite(value: float) -> bool:
    return bool(np.isfinite(value))


def test_export_errors(conn: psycopg.Connection, shops: str) -> None:
    _train(conn, "errs", "regression", "shops_numbers", "sales", "linear")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='"format" must be one of'):
        conn.execute("SELECT pyml.export('errs', 'pmml')")
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.export('no such project')")
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.export(999999999)")
    assert conn.execute("SELECT pyml.export(NULL::text)").fetchone() == (None,)


def test_export_needs_the_predict_privilege(
    conn: psycopg.Connection, shops: str, admin_url: str
) -> None:
    _train(conn, "mine", "regression", "shops_numbers", "sales", "linear")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS pyml_export_other")
        admin.execute("CREATE ROLE pyml_export_other")
        try:
            admin.execute("SET ROLE pyml_export_other")
            for call in ("SELECT pyml.export('mine')", "SELECT pyml.model_card('mine')"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    admin.execute(call)
            admin.execute("RESET ROLE")
            admin.execute("SELECT pyml.grant('mine', 'pyml_export_other', 'predict')")
            admin.execute("SET ROLE pyml_export_other")
            assert admin.execute("SELECT length(pyml.export('mine')) > 0").fetchone() == (True,)
        finally:
            admin.execute("RESET ROLE")
            admin.execute("DROP OWNED BY pyml_export_other")
            admin.execute("DROP ROLE pyml_export_other")


def test_deployments_are_announced(conn: psycopg.Connection, shops: str, connect: Any) -> None:
    first = _train(conn, "announced", "regression", "shops_numbers", "sales", "linear")
    with connect(autocommit=True) as listener:
        listener.execute("LISTEN pyml_deploy")
        conn.execute("SELECT * FROM pyml.deploy(%s)", [first])
        if not conn.autocommit:
            conn.commit()
        received = [n for n in listener.notifies(timeout=5, stop_after=1)]
    assert received, "no NOTIFY pyml_deploy within 5 s"
    payload = json.loads(received[0].payload)
    assert payload["op"] == "INSERT" and payload["model_id"] == first
    assert set(payload) == {"op", "project_id", "model_id", "deployment_id"}


# ---------------------------------------------------------------------------
# Every algorithm that converts, in SQL
# ---------------------------------------------------------------------------

SMALL = {
    "random_forest": '{"n_estimators": 5}',
    "extra_trees": '{"n_estimators": 5}',
    "bagging": '{"n_estimators": 3}',
    "ada_boost": '{"n_estimators": 5}',
    "gradient_boosting_trees": '{"n_estimators": 5}',
    "lightgbm": '{"n_estimators": 5}',
    "kmeans": '{"n_clusters": 3}',
    "mini_batch_kmeans": '{"n_clusters": 3}',
    "birch": '{"n_clusters": 3}',
    "pca": '{"n_components": 2}',
}
NO_ONNX = {"kernel_ridge", "affinity_propagation", "mean_shift", "hist_gradient_boosting"}
NO_ONNX_CLASSIFIER = {"gaussian_process", "linear_svm"}
OPTIONAL = {"xgboost", "xgboost_random_forest", "catboost"}
NATIVE = {"lightgbm"}  # served through its C API, not onnxruntime (its export: see above)


def _every(task: str) -> list[str]:
    from pyml.core import algorithms

    names = []
    for name in algorithms.ALGORITHMS:
        try:
            algorithms.resolve(name, task)
        except Exception:  # noqa: BLE001 - not an algorithm of this task
            continue
        if name not in OPTIONAL | NO_ONNX | NATIVE and not (
            task == "classification" and name in NO_ONNX_CLASSIFIER
        ):
            names.append(name)
    return names


EVERY = [
    (task, name)
    for task in ("regression", "classification", "clustering", "decomposition")
    for name in _every(task)
]


@pytest.mark.parametrize(("task", "algorithm"), EVERY, ids=[f"{t}-{a}" for t, a in EVERY])
def test_every_converting_algorithm_serves_the_original_in_sql(
    conn: psycopg.Connection, shops: str, task: str, algorithm: str, tmp_path: Any
) -> None:
    project = f"every {task} {algorithm}"
    label = {"regression": "sales", "classification": "band"}.get(task)
    view = "shops_every_" + {"regression": "sales", "classification": "band"}.get(task, "none")
    columns = "coalesce(size, 50) AS size, staff" + (f", {label}" if label else ", sales")
    conn.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT {columns} FROM shops")
    model_id = _train(conn, project, task, view, label, algorithm, SMALL.get(algorithm, "{}"))
    record = _value(conn, "SELECT lineage -> 'onnx' FROM pyml.models WHERE id = %s", [model_id])
    if not record["converted"]:  # the check refused it on these rows: it serves the original
        assert "differs from the original" in record["reason"], record
    rows = conn.execute(f"SELECT size, staff{'' if label else ', sales'} FROM {view}").fetchall()
    X = np.array(rows, dtype=np.float64)
    estimator = _original(conn, model_id).parts[0]
    if task == "decomposition":
        got = np.array(
            [
                _value(conn, "SELECT pyml.decompose(%s, %s::real[])", [project, list(r)])
                for r in rows
            ]
        )
        np.testing.assert_allclose(got, estimator.transform(X.astype(np.float32)), atol=1e-4)
        return
    flat = X.ravel().tolist()
    raw = estimator.predict(X)
    if task == "classification":
        # predict_batch of text classes is not allowed: compare the probabilities and labels
        labels = [
            _value(conn, "SELECT pyml.predict_label(%s, %s::float8[])", [project, list(r)])
            for r in rows
        ]
        classes = _value(conn, "SELECT classes FROM pyml.models WHERE id = %s", [model_id])
        assert labels == [classes[int(i)] for i in raw]
        proba_sql = "SELECT pyml.predict_proba(%s, %s::float8[])"
        if hasattr(estimator, "predict_proba"):
            proba = [_value(conn, proba_sql, [project, list(r)]) for r in rows]
            np.testing.assert_allclose(np.array(proba), estimator.predict_proba(X), atol=1e-5)
        else:
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                conn.execute(proba_sql, [project, flat[:2]])
    else:
        batch = "SELECT * FROM pyml.predict_batch(%s, %s::float8[])"
        got = np.array([r[0] for r in conn.execute(batch, [project, flat])])
        scale = max(1.0, float(np.max(np.abs(raw))))
        np.testing.assert_allclose(got, raw, atol=1e-4 * scale)


PREPROCESS_RULES = [
    '{"city": {"encode": "native"}, "size": {"impute": "zero", "scale": "min_max"}}',
    '{"city": {"encode": {"ordinal": ["lyon", "nice", "paris"]}}, "size": {"impute": "max",'
    ' "scale": "max_abs"}}',
    '{"city": {"encode": "one_hot", "impute": "mode"}, "size": {"impute": "min",'
    ' "scale": "robust"}}',
]


@pytest.mark.parametrize("rules", PREPROCESS_RULES)
def test_every_preprocessing_rule_serves_the_original(
    conn: psycopg.Connection, shops: str, rules: str
) -> None:
    project = f"rules {PREPROCESS_RULES.index(rules)}"
    conn.execute("CREATE OR REPLACE VIEW shops_rules AS SELECT city, size, staff, sales FROM shops")
    model_id = _train(conn, project, "regression", "shops_rules", "sales", "random_forest",
                      '{"n_estimators": 5}', rules)  # fmt: skip
    assert _value(conn, "SELECT lineage -> 'onnx' ->> 'converted' FROM pyml.models WHERE id = %s",
                  [model_id]) == "true"  # fmt: skip
    rows = conn.execute("SELECT city, size, staff FROM shops_rules").fetchall()
    rows += [("marseille", None, 2.0), (None, 45.0, 3.0)]  # unseen, NULLs
    loaded = _original(conn, model_id)
    X = np.array(rows, dtype=object)
    X[:, 1:] = np.where(X[:, 1:] == None, np.nan, X[:, 1:])  # noqa: E711 - NULL numbers: NaN
    raw = loaded.parts[0].predict(_preprocess.transform(loaded.preprocessor, X))
    got = [
        _value(
            conn, "SELECT pyml.predict(%s, ROW(%s::text, %s::float8, %s::float8))", [project, *r]
        )  # fmt: skip
        for r in rows
    ]
    np.testing.assert_allclose(got, raw, rtol=1e-5)
