"""A real hot standby of the test cluster: its sessions follow deployments replayed there,
every read-only call works, every call that writes says 25006 and names the primary;
``pyml pull`` and ``pyml serve`` pointed at the standby follow deployments too.

The standby is a ``pg_basebackup -R`` of the running test cluster on its own port
(:class:`pyml.client.cluster.Standby`), made once for this module and removed after it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from pyml import edge
from pyml.client.cluster import Cluster, Standby
from pyml.server._board import REPLAY_SECONDS

ROW = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]  # a diabetes row
ROLE = "pyml_tester"


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture(scope="module")
def standby(cluster: Cluster, database: str) -> Iterator[Standby]:
    replica = Standby(cluster, f"test-{os.getpid()}")
    replica.remove()
    replica.start()
    yield replica
    replica.remove()


@pytest.fixture(scope="module")
def standby_url(standby: Standby, database: str) -> str:
    return f"postgresql://{ROLE}@127.0.0.1:{standby.port}/{database}"


@pytest.fixture(scope="module")
def on_standby(standby_url: str) -> Iterator[Callable[[], psycopg.Connection]]:
    opened: list[psycopg.Connection] = []

    def _connect() -> psycopg.Connection:
        conn = psycopg.connect(standby_url, autocommit=True)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


def replayed(primary: psycopg.Connection, standby: psycopg.Connection) -> None:
    """Wait until the standby has replayed everything the primary committed so far."""
    lsn = one(primary, "SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + 60
    while not one(standby, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)):
        assert time.monotonic() < deadline, "the standby did not replay within 60 s"
        time.sleep(0.02)


def train(conn: psycopg.Connection, project: str, algorithm: str, **hyperparams: Any) -> int:
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'pyml.diabetes', 'target',"
        " algorithm => %s, hyperparams => %s::jsonb, automatic_deploy => false)",
        (project, algorithm, json.dumps(hyperparams)),
    )
    return int(one(conn, "SELECT max(id) FROM pyml.models"))


def deploy(conn: psycopg.Connection, model_id: int) -> None:
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (model_id,))


def predict(conn: psycopg.Connection, project: str | int) -> float:
    if isinstance(project, int):
        return float(one(conn, "SELECT pyml.predict(%s::bigint, %s::real[])", (project, ROW)))
    return float(one(conn, "SELECT pyml.predict(%s, %s::real[])", (project, ROW)))


@pytest.fixture(scope="module")
def two_models(conn: psycopg.Connection) -> tuple[str, int, int]:
    """A project with two models that answer differently; the first deployed."""
    project = "standby_follows"
    first = train(conn, project, "linear")
    second = train(conn, project, "lightgbm", n_estimators=20)
    deploy(conn, first)
    return project, first, second


def test_a_standby_session_follows_deployments_replayed_there(
    conn: psycopg.Connection,
    on_standby: Callable[[], psycopg.Connection],
    two_models: tuple[str, int, int],
) -> None:
    project, first, second = two_models
    reader = on_standby()
    replayed(conn, reader)
    answers = {first: predict(conn, first), second: predict(conn, second)}
    assert answers[first] != pytest.approx(answers[second])
    assert predict(reader, project) == pytest.approx(answers[first])  # now cached
    for model_id in (second, first, second):  # deploy, roll back by id, deploy again
        deploy(conn, model_id)
        replayed(conn, reader)
        # The session trusts its cache for REPLAY_SECONDS at most, counted from a look-up
        # made before the replay: one call after that serves the replayed deployment.
        time.sleep(REPLAY_SECONDS + 0.05)
        assert predict(reader, project) == pytest.approx(answers[model_id])
        assert one(reader, "SELECT pyml.deployed_model(%s)", (project,)) == model_id
        # ... and a session that never served the project agrees
        assert predict(on_standby(), project) == pytest.approx(answers[model_id])


def test_a_rollback_replayed_on_the_standby_is_served(
    conn: psycopg.Connection,
    on_standby: Callable[[], psycopg.Connection],
    two_models: tuple[str, int, int],
) -> None:
    project, first, second = two_models
    reader = on_standby()
    deploy(conn, second)
    replayed(conn, reader)
    time.sleep(REPLAY_SECONDS + 0.05)
    assert predict(reader, project) == pytest.approx(predict(conn, second))
    conn.execute("SELECT * FROM pyml.deploy(%s, 'rollback')", (project,))
    live = one(conn, "SELECT pyml.deployed_model(%s)", (project,))
    replayed(conn, reader)
    time.sleep(REPLAY_SECONDS + 0.05)
    assert predict(reader, project) == pytest.approx(predict(conn, live))


def test_a_model_deleted_on_the_primary_is_gone_on_the_standby(
    conn: psycopg.Connection, on_standby: Callable[[], psycopg.Connection]
) -> None:
    project = "standby_deleted"
    kept = train(conn, project, "linear")
    deploy(conn, kept)
    doomed = train(conn, project, "lightgbm", n_estimators=5)
    reader = on_standby()
    replayed(conn, reader)
    predict(reader, doomed)  # loaded and cached by id in the standby session
    conn.execute("SELECT pyml.delete_model(%s)", (doomed,))
    replayed(conn, reader)
    time.sleep(REPLAY_SECONDS + 0.05)
    with pytest.raises(psycopg.errors.UndefinedObject):
        predict(reader, doomed)


def test_a_revoke_replayed_on_the_standby_takes_effect(
    admin_url: str,
    standby: Standby,
    database: str,
    conn: psycopg.Connection,
) -> None:
    project = "standby_grants"
    deploy(conn, train(conn, project, "linear"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS pyml_standby_reader")
        admin.execute("CREATE ROLE pyml_standby_reader LOGIN")
        try:
            conn.execute("SELECT pyml.grant(%s, 'pyml_standby_reader', 'predict')", (project,))
            url = f"postgresql://pyml_standby_reader@127.0.0.1:{standby.port}/{database}"
            with psycopg.connect(url, autocommit=True) as reader:
                replayed(conn, reader)
                predict(reader, project)
                conn.execute("SELECT pyml.revoke(%s, 'pyml_standby_reader', 'predict')", (project,))
                replayed(conn, reader)
                time.sleep(REPLAY_SECONDS + 0.05)
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    predict(reader, project)
        finally:
            admin.execute("DROP OWNED BY pyml_standby_reader")
            admin.execute("DROP ROLE pyml_standby_reader")


READS = [
    ("SELECT pyml.predict(%(p)s, %(row)s::real[])", float),
    ("SELECT pyml.predict_proba(%(p)s, %(row)s::real[])", list),
    ("SELECT count(*) FROM pyml.predict_batch(%(p)s, ARRAY[%(row)s, %(row)s]::real[])", int),
    ("SELECT count(*) FROM pyml.explain(%(p)s, %(row)s::real[])", int),
    ("SELECT count(*) FROM pyml.feature_importance(%(p)s)", int),
    ("SELECT count(*) FROM pyml.drift(%(p)s, 'pyml.breast_cancer')", int),
    ("SELECT pyml.lineage(pyml.deployed_model(%(p)s))::text", str),
    ("SELECT length(pyml.export(%(p)s))", int),
    ("SELECT length(pyml.export(%(p)s, 'pyml')) > 0", bool),
    ("SELECT pyml.model_card(pyml.deployed_model(%(p)s))::text", str),
    ("SELECT pyml.deployed_model(%(p)s)", int),
    ("SELECT count(*) FROM pyml.overview", int),
]


@pytest.fixture(scope="module")
def classifier(conn: psycopg.Connection) -> str:
    project = "standby_reads"
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.breast_cancer', 'malignant',"
        " algorithm => 'lightgbm', hyperparams => '{\"n_estimators\": 10}')",
        (project,),
    )
    return project


@pytest.mark.parametrize(("query", "kind"), READS, ids=[q.split("(")[0][7:] for q, _ in READS])
def test_every_read_only_call_works_on_the_standby(
    conn: psycopg.Connection,
    on_standby: Callable[[], psycopg.Connection],
    classifier: str,
    query: str,
    kind: type,
) -> None:
    row = [0.5] * 30
    reader = on_standby()
    replayed(conn, reader)
    here = one(reader, query, {"p": classifier, "row": row})
    assert isinstance(here, kind)
    if "drift" not in query and "lineage" not in query:
        assert here == one(conn, query, {"p": classifier, "row": row})


WRITES = [
    ("pyml.train", "SELECT * FROM pyml.train(%(p)s, 'regression', 'pyml.diabetes', 'target')"),
    ("pyml.snapshot", "SELECT * FROM pyml.snapshot('pyml.diabetes', 'target')"),
    ("pyml.deploy", "SELECT * FROM pyml.deploy(%(p)s)"),
    ("pyml.deploy", "SELECT * FROM pyml.deploy(%(p)s, 'rollback')"),
    ("pyml.predict_into", "SELECT pyml.predict_into(%(p)s, 'pyml.diabetes', 'out', 'age')"),
    ("pyml.log_predictions", "SELECT pyml.log_predictions(%(p)s)"),
    ("pyml.stream", "SELECT pyml.stream(%(p)s, 'pyml.diabetes', 'age')"),
    ("pyml.stream_work", "CALL pyml.stream_work()"),
    ("pyml.grant", "SELECT pyml.grant(%(p)s, 'pyml_tester', 'predict')"),
    ("pyml.delete_model", "SELECT pyml.delete_model(pyml.deployed_model(%(p)s))"),
    ("pyml.delete_project", "SELECT pyml.delete_project(%(p)s)"),
    ("pyml.monitor", "SELECT pyml.monitor(%(p)s, 'pyml.diabetes')"),
    ("pyml.load_dataset", "SELECT * FROM pyml.load_dataset('wine')"),
    ("pyml.import_model", "SELECT pyml.import_model(pyml.export(%(p)s, 'pyml'))"),
]


@pytest.mark.parametrize(("function", "query"), WRITES, ids=[q for q, _ in WRITES])
def test_every_call_that_writes_says_25006_and_names_the_primary(
    cluster: Cluster,
    conn: psycopg.Connection,
    on_standby: Callable[[], psycopg.Connection],
    two_models: tuple[str, int, int],
    function: str,
    query: str,
) -> None:
    project = two_models[0]
    reader = on_standby()
    replayed(conn, reader)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as caught:
        reader.execute(query, {"p": project})
    diag = caught.value.diag
    message = f"cannot run {function} on a hot standby"
    if function == "pyml.stream_work":  # a plpython3u procedure (it commits): PL/Python's prefix
        message = f"plpy.Error: {message}"
    assert diag.message_primary == message
    assert diag.message_hint is not None
    # the standby's role cannot read pg_stat_wal_receiver; pyml names the primary anyway
    assert f"port {cluster.port}" in diag.message_hint


def test_a_logged_project_is_served_on_the_standby_unlogged(
    conn: psycopg.Connection,
    on_standby: Callable[[], psycopg.Connection],
    two_models: tuple[str, int, int],
) -> None:
    project, _, _ = two_models
    conn.execute("SELECT pyml.log_predictions(%s, 1.0)", (project,))
    try:
        reader = on_standby()
        replayed(conn, reader)
        notices: list[str] = []
        reader.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        predict(reader, project)
        predict(reader, project)
        assert notices == [f'pyml: calls of project "{project}" are not logged on a hot standby']
    finally:
        conn.execute("SELECT pyml.log_predictions(%s, 0)", (project,))


def test_a_read_only_transaction_on_the_primary_is_refused_before_any_work(
    conn: psycopg.Connection, two_models: tuple[str, int, int]
) -> None:
    project = two_models[0]
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as caught:
            conn.execute("SELECT * FROM pyml.deploy(%s)", (project,))
    assert caught.value.diag.message_primary == "cannot run pyml.deploy in a read-only transaction"


PYML = [sys.executable, "-m", "pyml.client.cli"]


def _wait(check: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert process.poll() is None, f"{what}: the process exited"
        assert time.monotonic() < deadline, f"{what}: not within 60 s"
        time.sleep(0.1)


def _installed(directory: Path) -> int | None:
    card = edge.installed(directory)
    return None if card is None else int(card["model_id"])


def test_pyml_pull_from_a_standby_follows_replayed_deployments(
    conn: psycopg.Connection,
    on_standby: Callable[[], psycopg.Connection],
    standby_url: str,
    two_models: tuple[str, int, int],
    tmp_path: Path,
) -> None:
    """A standby cannot LISTEN: the agent polls it every second instead of giving up."""
    project, first, second = two_models
    deploy(conn, first)
    directory = tmp_path / "device"
    log = tmp_path / "pull.log"
    with open(log, "wb") as out:
        agent = subprocess.Popen(
            [*PYML, "pull", project, "--dir", str(directory), "--url", standby_url],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        _wait(lambda: _installed(directory) == first, "the live model installed", agent)
        deploy(conn, second)
        _wait(lambda: _installed(directory) == second, "the redeployed model installed", agent)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    assert "a hot standby: a poll every 1 s" in log.read_text()


def test_pyml_serve_from_a_standby_follows_replayed_deployments(
    conn: psycopg.Connection, standby_url: str, two_models: tuple[str, int, int]
) -> None:
    project, first, second = two_models
    deploy(conn, first)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    service = subprocess.Popen(
        [*PYML, "serve", "--url", standby_url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v2/models/{project}"

    def live() -> int | None:
        try:
            response = httpx.get(base, timeout=5)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return int(response.json()["parameters"]["model_id"])

    try:
        _wait(lambda: live() == first, "the live model served", service)
        deploy(conn, second)
        _wait(lambda: live() == second, "the redeployed model served", service)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
