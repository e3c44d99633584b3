"""Recovery: a backend killed (SIGKILL) in the middle of train, deploy, predict_into,
stream_work or a monitoring round leaves no half-written model, and every later call works
with no manual step (API.md section 11).

A backend killed by SIGKILL makes the postmaster end every session and run crash
recovery; each test waits until the server accepts connections again, then checks the
registry and calls pyml as a new session would. (The tests run as root; the server runs
as its own user.)
"""
# ruff: noqa: S608

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pyml.client.cluster import Cluster
from pyml.server import _board

pytestmark = pytest.mark.slow

ROW = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]
FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
PROJECT = "recovery"


def _session(url: str) -> psycopg.Connection:
    """A new session, once the server accepts them again (crash recovery takes seconds)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
            conn.execute("SET client_min_messages = warning")
            conn.execute("SELECT 1")
            return conn
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a backend's training process, say)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _crash_during(url: str, statements: list[tuple[str, Any]], after: float) -> None:
    """Run ``statements`` in a new session (one transaction if several) and SIGKILL its
    backend ``after`` seconds into the last one; wait for the server to come back. The
    backend's child processes (if any) must be gone with it."""
    victim = _session(url)
    pid = victim.info.backend_pid
    if len(statements) > 1:
        victim.autocommit = False
    for query, params in statements[:-1]:
        victim.execute(query, params)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            victim.execute(*statements[-1])
        except psycopg.OperationalError as exc:  # the connection died with its backend
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(after)
    assert thread.is_alive(), "the statement ended before the kill: make it longer"
    children = _children(pid)
    # A bystander session: the server ends every session when it resets after the kill, so
    # its end says the reset began (a session opened before that would be cut off later).
    bystander = _session(url)
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=60)
    assert failure, "the killed session did not lose its connection"
    victim.close()
    deadline = time.monotonic() + 60
    while not bystander.closed:
        assert time.monotonic() < deadline, "the server did not reset after the kill"
        try:
            bystander.execute("SELECT 1")
            time.sleep(0.1)
        except psycopg.OperationalError:
            break
    bystander.close()
    _session(url).close()
    deadline = time.monotonic() + 10
    while any(_alive(child) for child in children):
        assert time.monotonic() < deadline, f"orphans of the killed backend: {children}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def setup(url: str, admin_url: str) -> Iterator[None]:
    conn = _session(url)
    conn.execute(
        "CREATE TABLE big AS SELECT row_number() OVER () AS id, d.*"
        " FROM pyml.diabetes d, generate_series(1, 700) g"
    )  # 309,400 rows
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'pyml.diabetes', 'target')", (PROJECT,)
    )
    conn.close()
    yield


def _registry(url: str) -> dict[str, Any]:
    conn = _session(url)
    try:
        return {
            "models": conn.execute("SELECT count(*) FROM pyml.models").fetchone()[0],
            "unfinished": conn.execute(
                "SELECT count(*) FROM pyml.models WHERE status <> 'successful'"
            ).fetchone()[0],
            "artifactless": conn.execute(
                "SELECT count(*) FROM pyml.models m WHERE NOT EXISTS"
                " (SELECT FROM pyml.files f WHERE f.model_id = m.id)"
            ).fetchone()[0],
            "deployments": conn.execute("SELECT count(*) FROM pyml.deployments").fetchone()[0],
            "live": conn.execute("SELECT pyml.deployed_model(%s)", (PROJECT,)).fetchone()[0],
        }
    finally:
        conn.close()


def _everything_works(url: str) -> None:
    """What a user does next, in new sessions: predict, train, deploy, predict again."""
    conn = _session(url)
    try:
        conn.execute("SELECT pyml.predict(%s, %s::real[])", (PROJECT, ROW))
        conn.execute("SELECT * FROM pyml.train(%s, algorithm => 'ridge')", (PROJECT,))
        conn.execute("SELECT * FROM pyml.deploy(%s, 'most_recent')", (PROJECT,))
        conn.execute("SELECT pyml.predict(%s, %s::real[])", (PROJECT, ROW))
        other = _session(url)
        other.execute("SELECT pyml.predict(%s, %s::real[])", (PROJECT, ROW))
        other.close()
    finally:
        conn.close()


def test_killed_during_train(setup: None, url: str) -> None:
    before = _registry(url)
    _crash_during(
        url,
        [
            (
                "SELECT * FROM pyml.train(%s, relation_name => 'big',"
                " y_column_name => 'target', algorithm => 'lightgbm',"
                " hyperparams => '{\"n_estimators\": 2000}')",
                (PROJECT,),
            )
        ],
        3.0,
    )
    after = _registry(url)
    assert after == before  # no model, no snapshot's model, no deployment
    _everything_works(url)


def test_killed_during_an_uncommitted_deploy(setup: None, url: str) -> None:
    """The reported failure: a deploy's note on the board named a transaction the crash
    lost, and every session's predict then failed (22023, "transaction ID is in the
    future") until that id was used again."""
    conn = _session(url)
    conn.execute(
        "SELECT * FROM pyml.train(%s, algorithm => 'lasso', automatic_deploy => false)", (PROJECT,)
    )
    conn.close()
    before = _registry(url)
    _crash_during(
        url,
        [
            ("SELECT * FROM pyml.deploy(%s, 'most_recent')", (PROJECT,)),
            ("SELECT pg_sleep(30)", None),
        ],
        1.0,
    )
    assert _registry(url) == before
    _everything_works(url)


def test_a_note_from_a_transaction_the_server_has_not_reached_is_harmless(
    setup: None, url: str, cluster: Cluster
) -> None:
    """Even a note that survived (naming a transaction id past the server's next one) never
    makes a call fail: it counts as not settled until the id is reached."""
    conn = _session(url)
    database = conn.execute(
        "SELECT oid FROM pg_database WHERE datname = current_database()"
    ).fetchone()[0]
    xid = int(conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
    conn.execute("SELECT pyml.predict(%s, %s::real[])", (PROJECT, ROW))  # the board exists
    board = _board.Board(str(cluster.data / _board.PATH))
    board.pin(database, _board.DEPLOYED, 10**9, 1, xid + 10**6)
    fresh = _session(url)
    for session in (conn, fresh):
        for _ in range(3):
            session.execute("SELECT pyml.predict(%s, %s::real[])", (PROJECT, ROW))
    fresh.close()
    conn.close()


def test_killed_during_predict_into(setup: None, url: str) -> None:
    conn = _session(url)
    conn.execute(  # 2.5M rows: predict_into of big alone (309,400) ends within the second
        "CREATE TABLE bigger AS SELECT row_number() OVER () AS id, b.age, b.sex, b.bmi, b.bp,"
        " b.s1, b.s2, b.s3, b.s4, b.s5, b.s6, b.target FROM big b, generate_series(1, 8) g"
    )
    conn.close()
    _crash_during(
        url, [("SELECT pyml.predict_into(%s, 'bigger', 'big_scores', 'id')", (PROJECT,))], 1.0
    )
    conn = _session(url)
    assert conn.execute("SELECT to_regclass('big_scores')").fetchone()[0] is None
    assert (
        conn.execute(
            "SELECT pyml.predict_into(%s, 'big', 'big_scores', 'id')", (PROJECT,)
        ).fetchone()[0]
        > 0
    )
    conn.close()
    _everything_works(url)


def test_killed_during_stream_work(setup: None, url: str) -> None:
    """Batches committed before the kill stay scored; the one in flight goes back to the
    queue: after a restart of the worker every key has exactly one event."""
    conn = _session(url)
    columns = ", ".join(f"{f} real" for f in FEATURES)
    conn.execute(f"CREATE TABLE queued (id bigint PRIMARY KEY, {columns})")
    stream = conn.execute(
        "SELECT pyml.stream(%s, 'queued', mode => 'async')", (PROJECT,)
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO queued SELECT g, "
        + ", ".join(["%s"] * 10)
        + " FROM generate_series(1, 240000) g",  # long enough to be killed mid-way, even
        ROW,  # with the model served through onnxruntime (4x what it took before)
    )
    conn.close()
    _crash_during(url, [("CALL pyml.stream_work(%s, 200)", (stream,))], 1.5)
    conn = _session(url)
    conn.execute("CALL pyml.stream_work(%s, 5000)", (stream,))
    keys = conn.execute(
        "SELECT count(*), count(DISTINCT key) FROM pyml.stream_events WHERE stream_id = %s",
        (stream,),
    ).fetchone()
    assert keys == (240000, 240000)
    assert conn.execute("SELECT count(*) FROM pyml.stream_queue").fetchone()[0] == 0
    conn.execute("SELECT pyml.unstream(%s, 'queued')", (PROJECT,))
    conn.close()
    _everything_works(url)


def test_killed_during_a_monitoring_round(setup: None, url: str) -> None:
    conn = _session(url)
    conn.execute(
        "CREATE TABLE drifted AS SELECT age * 3 AS age, sex, bmi + 0.1 AS bmi, bp,"
        " s1, s2, s3, s4, s5, s6, target * 2 AS target FROM big"
    )
    conn.execute(
        "SELECT * FROM pyml.train(%s, relation_name => 'pyml.diabetes',"
        " y_column_name => 'target', algorithm => 'lightgbm',"
        " hyperparams => '{\"n_estimators\": 600}')",
        (PROJECT,),
    )  # a slow retrain
    conn.execute("SELECT * FROM pyml.deploy(%s, 'most_recent')", (PROJECT,))
    conn.execute("SELECT pyml.monitor(%s, 'drifted', '1 hour')", (PROJECT,))
    conn.close()
    before = _registry(url)
    _crash_during(url, [("SELECT * FROM pyml.check(%s)", (PROJECT,))], 3.0)
    assert _registry(url) == before
    conn = _session(url)
    assert conn.execute("SELECT count(*) FROM pyml.drift_reports").fetchone()[0] == 0
    conn.execute("SELECT pyml.unmonitor(%s)", (PROJECT,))
    conn.close()
    _everything_works(url)


def test_a_spool_line_cut_by_a_killed_session_is_dropped(
    setup: None, url: str, admin_url: str, cluster: Cluster
) -> None:
    """A session killed while it appended to its prediction spool leaves a cut line: the
    collector moves the complete lines and removes the file, whose writer is gone."""
    conn = _session(url)
    database, project_id, model_id = conn.execute(
        "SELECT (SELECT oid FROM pg_database WHERE datname = current_database()), p.id,"
        " pyml.deployed_model(p.name) FROM pyml.projects p WHERE p.name = %s",
        (PROJECT,),
    ).fetchone()
    spool = cluster.data / "pyml" / "log"
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / f"{database}-999999-{time.time_ns() // 1000}.jsonl"
    whole = f"[{project_id},{model_id},[1,2],3.5,{time.time()}]\n"
    path.write_text(whole + whole + f"[{project_id},{model_id},[1,")
    os.chown(path, spool.stat().st_uid, spool.stat().st_gid)
    assert conn.execute("SELECT pyml.collect_predictions()").fetchone()[0] == 2
    conn.execute("SELECT pyml.collect_predictions()")  # a later round removes it
    assert not path.exists()
    conn.close()
    with psycopg.connect(admin_url) as admin:
        assert (
            admin.execute(
                "SELECT count(*) FROM pyml.prediction_spool WHERE file = %s", (path.name,)
            ).fetchone()[0]
            == 0
        )
