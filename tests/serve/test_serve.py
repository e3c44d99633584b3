"""``pyml serve`` against the real server: every endpoint, the official ``tritonclient``,
answers equal to SQL's, deployments followed under load, auth, malformed requests,
privileges and the prediction log."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

N = 300


def _train(
    conn: psycopg.Connection, project: str, task: str, relation: str, label: str, algorithm: str
) -> int:
    conn.execute(
        "SELECT * FROM pyml.train(%s, %s, %s, %s, algorithm => %s)",
        [project, task, relation, label, algorithm],
    )
    return _live(conn, project)


def _live(conn: psycopg.Connection, project: str) -> int:
    return int(conn.execute("SELECT pyml.deployed_model(%s)", [project]).fetchone()[0])


@pytest.fixture(scope="module")
def models(conn: psycopg.Connection) -> dict[str, int]:
    rng = np.random.default_rng(17)
    conn.execute(
        "CREATE TABLE shops (id int PRIMARY KEY, city text, size float8, staff float8, band text)"
    )
    with conn.cursor().copy("COPY shops FROM STDIN") as copy:
        for i in range(N):
            city = [None, "paris", "lyon", "nice"][int(rng.integers(0, 4))]
            size, staff = float(rng.normal(50, 12)), float(rng.integers(1, 9))
            sales = size * 2 + staff * 5 + (30 if city == "paris" else 0) + rng.normal(0, 3)
            copy.write_row((i, city, size, staff, "high" if sales > 140 else "low"))
    conn.execute("CREATE VIEW shop_rows AS SELECT city, size, staff, band FROM shops")
    return {
        "reg": _train(conn, "serve_reg", "regression", "pyml.diabetes", "target", "lightgbm"),
        "iris": _train(
            conn, "serve_iris", "classification", "pyml.iris", "target", "random_forest"
        ),
        "shops": _train(conn, "serve_shops", "classification", "shop_rows", "band", "linear"),
        "logged": _train(conn, "serve_logged", "regression", "pyml.diabetes", "target", "lightgbm"),
    }


@pytest.fixture(scope="module")
def running(
    url: str, models: dict[str, int], conn: psycopg.Connection, serve: Any
) -> Iterator[Any]:
    conn.execute("SELECT pyml.log_predictions('serve_logged', 1.0)")
    with serve(url) as svc:
        yield svc


def _rows(conn: psycopg.Connection, relation: str, label: str, n: int = 25) -> list[dict[str, Any]]:
    """Random rows of a relation (columns in order), without the label."""
    rows = conn.execute(
        f"SELECT row_to_json(r)::text FROM {relation} r ORDER BY random() LIMIT %s",  # noqa: S608
        [n],
    ).fetchall()
    found = [json.loads(r[0]) for r in rows]
    for row in found:
        row.pop(label)
    return found


def _tensors(rows: list[dict[str, Any]], text: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "shape": [len(rows), 1],
            "datatype": "BYTES" if name in text else "FP64",
            "data": [r[name] for r in rows],
        }
        for name in rows[0]
    ]


def _triton(svc: Any) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"127.0.0.1:{svc.port}")


# ---------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------


def test_health_and_server_metadata(running: Any) -> None:
    assert running.get("/v2/health/live").json() == {"live": True}
    assert running.get("/v2/health/ready").json() == {"ready": True}
    meta = running.get("/v2").json()
    assert meta["name"] == "pyml" and "binary_tensor_data" in meta["extensions"]


def test_model_metadata(running: Any, models: dict[str, int]) -> None:
    meta = running.get("/v2/models/serve_iris").json()
    assert meta["name"] == "serve_iris"
    assert str(models["iris"]) in meta["versions"]
    assert [i["name"] for i in meta["inputs"]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {
        "predict": [-1],
        "predict_proba": [-1, 3],
    }
    shops = running.get("/v2/models/serve_shops").json()
    assert {i["name"]: i["datatype"] for i in shops["inputs"]} == {
        "city": "BYTES",
        "size": "FP64",
        "staff": "FP64",
    }
    assert {o["name"]: o["datatype"] for o in shops["outputs"]}["predict"] == "BYTES"
    pinned = running.get(f"/v2/models/serve_iris/versions/{models['iris']}").json()
    assert pinned["parameters"]["model_id"] == models["iris"]
    assert running.get("/v2/models/serve_iris/ready").json()["ready"] is True


def test_metrics(running: Any) -> None:
    running.post(
        "/v2/models/serve_reg/infer",
        json={"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": [0] * 10}]},
    ).raise_for_status()
    text = running.get("/metrics").text
    assert "pyml_serve_requests_total{" in text and 'route="infer"' in text
    assert "pyml_serve_request_seconds_bucket" in text
    assert "pyml_serve_model_id{" in text and 'model="serve_reg"' in text


def test_access_log_is_json_lines(running: Any, poll: Callable[..., Any]) -> None:
    running.get("/v2/models/serve_reg")

    def logged() -> list[dict[str, Any]]:
        lines = [line for line in running.output().splitlines() if line.startswith("{")]
        return [json.loads(line) for line in lines if '"/v2/models/serve_reg"' in line]

    entry = poll(logged, 10, "the access log line")[-1]
    assert entry["method"] == "GET" and entry["status"] == 200 and entry["ms"] >= 0


# ---------------------------------------------------------------------------
# The same answers as SQL
# ---------------------------------------------------------------------------


def test_regression_equals_sql_with_tritonclient(running: Any, conn: psycopg.Connection) -> None:
    rows = _rows(conn, "pyml.diabetes", "target")
    names = list(rows[0])
    expected = [
        conn.execute(
            "SELECT pyml.predict('serve_reg', %s::float8[])", [[r[n] for n in names]]
        ).fetchone()[0]
        for r in rows
    ]
    client = _triton(running)
    assert client.is_server_live(headers=running.headers)
    assert client.is_server_ready(headers=running.headers)
    assert client.is_model_ready("serve_reg", headers=running.headers)
    meta = client.get_model_metadata("serve_reg", headers=running.headers)
    assert [i["name"] for i in meta["inputs"]] == names
    inputs = []
    for name in names:  # one tensor per column, binary (tritonclient's default)
        column = np.array([[r[name]] for r in rows], dtype=np.float64)
        tensor = triton.InferInput(name, list(column.shape), "FP64")
        tensor.set_data_from_numpy(column)
        inputs.append(tensor)
    result = client.infer("serve_reg", inputs, headers=running.headers)
    # pyml.predict returns real: the float4 of the same double
    np.testing.assert_array_equal(
        result.as_numpy("predict").astype(np.float32), np.asarray(expected, np.float32)
    )
    # one [n, features] FP32 tensor, JSON, a pinned version
    matrix = np.array([[r[n] for n in names] for r in rows], dtype=np.float32)
    tensor = triton.InferInput("features", list(matrix.shape), "FP32")
    tensor.set_data_from_numpy(matrix, binary_data=False)
    result = client.infer(
        "serve_reg",
        [tensor],
        model_version=str(running_model(running, "serve_reg")),
        outputs=[triton.InferRequestedOutput("predict", binary_data=False)],
        headers=running.headers,
    )
    float32_sql = [
        conn.execute("SELECT pyml.predict('serve_reg', %s::real[])", [row.tolist()]).fetchone()[0]
        for row in matrix
    ]
    np.testing.assert_array_equal(
        result.as_numpy("predict").astype(np.float32), np.asarray(float32_sql, np.float32)
    )
    client.close()


def running_model(svc: Any, project: str) -> int:
    return int(svc.get(f"/v2/models/{project}").json()["parameters"]["model_id"])


def test_classification_with_probabilities_equals_sql(
    running: Any, conn: psycopg.Connection
) -> None:
    rows = _rows(conn, "pyml.iris", "target")
    expected = conn.execute(
        "SELECT pyml.predict('serve_iris', r), pyml.predict_proba('serve_iris', r)"
        " FROM jsonb_populate_recordset(NULL::pyml.iris, %s::jsonb) r",
        [json.dumps(rows)],
    ).fetchall()
    body = running.post("/v2/models/serve_iris/infer", json={"inputs": _tensors(rows)}).json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == [e[0] for e in expected]
    assert outputs["predict_proba"]["shape"] == [len(rows), 3]
    np.testing.assert_allclose(
        np.reshape(outputs["predict_proba"]["data"], (-1, 3)),
        [e[1] for e in expected],
        atol=1e-6,  # predict_proba returns real[]
    )
    assert json.loads(outputs["predict_proba"]["parameters"]["classes"]) == ["0", "1", "2"]
    # tritonclient, binary outputs, only the probabilities
    client = _triton(running)
    inputs = []
    for name in rows[0]:
        column = np.array([[r[name]] for r in rows], dtype=np.float64)
        tensor = triton.InferInput(name, list(column.shape), "FP64")
        tensor.set_data_from_numpy(column)
        inputs.append(tensor)
    result = client.infer(
        "serve_iris",
        inputs,
        outputs=[triton.InferRequestedOutput("predict_proba")],
        headers=running.headers,
    )
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), [e[1] for e in expected], atol=1e-6
    )
    assert result.as_numpy("predict") is None
    client.close()


def test_text_columns_and_labels_equal_sql(running: Any, conn: psycopg.Connection) -> None:
    rows = _rows(conn, "shop_rows", "band", 40)
    assert any(r["city"] is None for r in rows)  # NULL text: JSON null
    expected = conn.execute(
        "SELECT pyml.predict_label('serve_shops', r), pyml.predict_proba('serve_shops', r)"
        " FROM jsonb_populate_recordset(NULL::shop_rows, %s::jsonb) r",
        [json.dumps(rows)],
    ).fetchall()
    body = running.post(
        "/v2/models/serve_shops/infer", json={"inputs": _tensors(rows, text=("city",))}
    ).json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["datatype"] == "BYTES"
    assert outputs["predict"]["data"] == [e[0] for e in expected]
    np.testing.assert_allclose(
        np.reshape(outputs["predict_proba"]["data"], (len(rows), -1)),
        [e[1] for e in expected],
        atol=1e-6,  # real[] in SQL; float32 inside the ONNX graph either way
    )
    # tritonclient: BYTES in binary form (rows without NULL: tritonclient cannot send None)
    known = [r for r, e in zip(rows, expected, strict=True) if r["city"] is not None]
    labels = [e[0] for r, e in zip(rows, expected, strict=True) if r["city"] is not None]
    client = _triton(running)
    city = triton.InferInput("city", [len(known), 1], "BYTES")
    city.set_data_from_numpy(np.array([[r["city"]] for r in known], dtype=object))
    numbers = []
    for name in ("size", "staff"):
        tensor = triton.InferInput(name, [len(known)], "FP64")
        tensor.set_data_from_numpy(np.array([r[name] for r in known], dtype=np.float64))
        numbers.append(tensor)
    result = client.infer("serve_shops", [city, *numbers], headers=running.headers)
    assert [v.decode() for v in result.as_numpy("predict")] == labels
    client.close()


# ---------------------------------------------------------------------------
# Deployments
# ---------------------------------------------------------------------------


class Hammer(threading.Thread):
    """A steady client: one keep-alive connection, requests back to back, every answer kept
    as (sent at, status, model version)."""

    def __init__(self, svc: Any, project: str, body: bytes):
        super().__init__(daemon=True)
        self.svc, self.project, self.body = svc, project, body
        self.answers: list[tuple[float, int, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.svc.port, timeout=10)
        headers = {"Content-Type": "application/json", **self.svc.headers}
        deadline = time.monotonic() + 60  # bounded, whatever happens
        while not self.stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            conn.request("POST", f"/v2/models/{self.project}/infer", self.body, headers)
            response = conn.getresponse()
            payload = response.read()
            version = json.loads(payload).get("model_version", "")
            self.answers.append((sent, response.status, version))
        conn.close()


def test_deploy_switches_within_a_second_under_load(
    running: Any, conn: psycopg.Connection, poll: Callable[..., Any]
) -> None:
    first = _train(conn, "serve_switch", "regression", "pyml.diabetes", "target", "linear")
    conn.execute(
        "SELECT * FROM pyml.train('serve_switch', 'regression', 'pyml.diabetes', 'target',"
        " algorithm => 'lightgbm')"
    )
    models: dict[str, int] = dict(
        conn.execute(
            "SELECT algorithm, max(id) FROM pyml.trained_models WHERE project = 'serve_switch'"
            " GROUP BY algorithm"
        ).fetchall()
    )
    live = _live(conn, "serve_switch")
    other = "lightgbm" if live == models["linear"] else "linear"
    assert live in (first, models["lightgbm"])
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": [0.01] * 10}]}
    ).encode()
    hammer = Hammer(running, "serve_switch", body)
    hammer.start()
    try:
        poll(lambda: len(hammer.answers) > 50, 30, "the steady load to start")
        conn.execute("SELECT * FROM pyml.deploy('serve_switch', 'most_recent', %s)", [other])
        committed = time.monotonic()
        new = str(models[other])

        def switched() -> float | None:
            later = [a for a in list(hammer.answers) if a[0] >= committed and a[2] == new]
            return later[0][0] if later else None

        poll(switched, 1.0, "the service to answer with the new model", every=0.01)
        count = len(hammer.answers)
        poll(lambda: len(hammer.answers) > count + 50, 30, "more answers after the switch")
    finally:
        hammer.stop.set()
        hammer.join(timeout=30)
    assert {status for _, status, _ in hammer.answers} == {200}
    assert {version for _, _, version in hammer.answers} == {str(live), new}
    first_new = min(sent for sent, _, version in hammer.answers if version == new)
    assert all(v == new for sent, _, v in hammer.answers if sent > first_new)  # no way back


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------


def test_a_token_is_required_but_for_health(running: Any) -> None:
    import httpx

    bare = httpx.get(running.base + "/v2/models/serve_reg", timeout=10)
    assert bare.status_code == 401 and "bearer token" in bare.json()["error"]
    wrong = httpx.get(
        running.base + "/v2/models/serve_reg", headers={"Authorization": "Bearer no"}, timeout=10
    )
    assert wrong.status_code == 401
    assert httpx.get(running.base + "/metrics", timeout=10).status_code == 401
    assert httpx.get(running.base + "/v2/health/live", timeout=10).status_code == 200
    with pytest.raises(InferenceServerException, match="bearer token"):
        triton.InferenceServerClient(f"127.0.0.1:{running.port}").get_model_metadata("serve_reg")


MALFORMED: list[tuple[str, Any, str]] = [
    ("invalid JSON", b'{"inputs": [', "not valid JSON"),
    ("not an object", b"[1, 2]", "must be a JSON object"),
    ("no inputs", b'{"outputs": []}', '"inputs" must be a list'),
    (
        "wrong shape",
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
        "has shape [1, 3]",
    ),
    (
        "data of the wrong length",
        {"inputs": [{"name": "x", "shape": [2, 10], "datatype": "FP64", "data": [1] * 10}]},
        "has 10 values for shape [2, 10]",
    ),
    (
        "wrong datatype",
        {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP99", "data": [1] * 10}]},
        "unknown datatype",
    ),
    (
        "text for a number",
        {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "BYTES", "data": ["a"] * 10}]},
        "send a numeric datatype",
    ),
    (
        "strings in FP64",
        {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": ["a"] * 10}]},
        "holds str",
    ),
    (
        "missing input",
        {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": [1]}]},
        'missing input "sex"',
    ),
    (
        "NULL where SQL refuses it",
        {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": [None] * 10}]},
        "features must not be NULL",
    ),
    (
        "unknown output",
        {
            "inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": [1] * 10}],
            "outputs": [{"name": "nope"}],
        },
        'unknown output "nope"',
    ),
    ("10 MB body", b'{"inputs": [' + b" " * (10 * 1024 * 1024) + b"]}", "too large"),
]


@pytest.mark.parametrize(("case", "body", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_requests_are_400_and_the_service_stays_up(
    running: Any, case: str, body: Any, message: str
) -> None:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = running.post("/v2/models/serve_reg/infer", **kwargs)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error
    assert "Traceback" not in error
    assert running.get("/v2/health/live").status_code == 200
    ok = running.post(
        "/v2/models/serve_reg/infer",
        json={"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": [0] * 10}]},
    )
    assert ok.status_code == 200


def test_unknown_models_are_404(running: Any, models: dict[str, int]) -> None:
    assert running.get("/v2/models/no_such_project").status_code == 404
    assert running.get("/v2/models/serve_reg/versions/999999").status_code == 404
    other = running.get(f"/v2/models/serve_reg/versions/{models['iris']}")
    assert other.status_code == 404 and "not a model of project" in other.json()["error"]
    assert running.get("/v2/nothing").status_code == 404


def test_only_projects_the_role_may_predict(
    running: Any, admin_url: str, conn: psycopg.Connection, poll: Callable[..., Any]
) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SET client_min_messages = warning")
        _train(admin, "serve_theirs", "regression", "pyml.diabetes", "target", "lightgbm")
        refused = running.get("/v2/models/serve_theirs")
        assert refused.status_code == 403
        assert '"predict" privilege' in refused.json()["error"]
        admin.execute("SELECT pyml.grant('serve_theirs', 'pyml_tester', 'predict')")
        assert running.get("/v2/models/serve_theirs").status_code == 200
        admin.execute("SELECT pyml.revoke('serve_theirs', 'pyml_tester', 'predict')")
        poll(
            lambda: running.get("/v2/models/serve_theirs").status_code == 403,
            15,
            "the revoke to take effect",
            every=0.2,
        )


# ---------------------------------------------------------------------------
# The prediction log
# ---------------------------------------------------------------------------


def test_served_calls_are_logged_and_seen_by_drift(
    running: Any, conn: psycopg.Connection, models: dict[str, int], poll: Callable[..., Any]
) -> None:
    rows = _rows(conn, "pyml.diabetes", "target", 200)
    body = {"inputs": _tensors(rows)}

    def logged() -> int:
        running.post("/v2/models/serve_logged/infer", json=body).raise_for_status()
        return int(
            conn.execute(
                "SELECT count(*) FROM pyml.prediction_log WHERE model_id = %s",
                [models["logged"]],
            ).fetchone()[0]
        )

    poll(lambda: logged() >= 200, 30, "served calls in pyml.prediction_log", every=0.5)
    features, prediction = conn.execute(
        "SELECT features, prediction FROM pyml.prediction_log WHERE model_id = %s LIMIT 1",
        [models["logged"]],
    ).fetchone()
    assert set(features) == set(rows[0]) and isinstance(prediction, float)
    drift = conn.execute("SELECT feature, metric FROM pyml.drift('serve_logged')").fetchall()
    assert ("age", "psi") in drift and ("__prediction__", "psi") in drift


def test_log_served_checks_its_arguments_and_privileges(
    conn: psycopg.Connection, admin_url: str, models: dict[str, int]
) -> None:
    call = json.dumps([[{"age": 0.01}, 151.0, time.time()]])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="must be a JSON array"):
        conn.execute("SELECT pyml.log_served(%s, '{}'::jsonb)", [models["reg"]])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="call 1 of"):
        conn.execute("SELECT pyml.log_served(%s, '[[1, 2]]'::jsonb)", [models["reg"]])
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.log_served(999999, %s::jsonb)", [call])
    # serve_reg's calls are not logged: nothing is written
    assert (
        conn.execute("SELECT pyml.log_served(%s, %s::jsonb)", [models["reg"], call]).fetchone()[0]
        == 0
    )
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SET client_min_messages = warning")
        _train(admin, "serve_private", "regression", "pyml.diabetes", "target", "lightgbm")
        theirs = _live(admin, "serve_private")
        admin.execute("SELECT pyml.log_predictions('serve_private', 1.0)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="serve_private"):
        conn.execute("SELECT pyml.log_served(%s, %s::jsonb)", [theirs, call])


def test_an_array_column_is_one_tensor(running: Any, conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TABLE vectors AS SELECT ARRAY[random(), random(), random()] AS v,"
        " random() AS w, 0.0::float8 AS y FROM generate_series(1, 200)"
    )
    conn.execute("UPDATE vectors SET y = v[1] * 3 + v[2] - v[3] * 2 + w")
    _train(conn, "serve_vectors", "regression", "vectors", "y", "linear")
    meta = running.get("/v2/models/serve_vectors").json()
    assert [i["name"] for i in meta["inputs"]] == ["v[1]", "v[2]", "v[3]", "w"]
    rows = conn.execute(
        "SELECT v, w, pyml.predict('serve_vectors', t) FROM vectors t LIMIT 20"
    ).fetchall()
    body = {
        "inputs": [
            {
                "name": "v",
                "shape": [len(rows), 3],
                "datatype": "FP64",
                "data": [r[0] for r in rows],
            },
            {"name": "w", "shape": [len(rows)], "datatype": "FP64", "data": [r[1] for r in rows]},
        ]
    }
    answer = running.post("/v2/models/serve_vectors/infer", json=body).json()
    np.testing.assert_array_equal(
        np.asarray(answer["outputs"][0]["data"], np.float32),
        np.asarray([r[2] for r in rows], np.float32),
    )
