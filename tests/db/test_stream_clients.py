"""The client side of streams: the Python Consumer, `pyml listen` and `pyml worker`.

The commands run as subprocesses of the checkout's own `.venv/bin/pyml`, against the test
database (``--url``). Waiting for a subprocess to catch up polls the database with a deadline;
nothing here measures time.
"""

from __future__ import annotations

import datetime
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest
from psycopg import sql

from pyml.client.consumer import Consumer, Event

ROOT = Path(__file__).resolve().parents[2]
PYML = str(ROOT / ".venv" / "bin" / "pyml")
FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
DEADLINE = 60.0  # seconds a subprocess may take to catch up (a deadline, not a measure)

Connect = Callable[..., psycopg.Connection]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    """The single value of a one-row, one-column query."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def train(conn: psycopg.Connection, project: str, algorithm: str = "linear") -> int:
    """Train (and deploy) a regression on pyml.diabetes; the model id."""
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'pyml.diabetes', 'target', algorithm => %s)",
        (project, algorithm),
    )
    return int(
        one(conn, "SELECT model_id FROM pyml.deployed_models WHERE project = %s", (project,))
    )


FEATURE_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, FEATURES))
FEATURE_EXPRESSIONS = sql.SQL(", ").join(
    sql.SQL("(mod(i * {} + {}, 101) - 50) / 1000.0").format(2 * j + 3, j)
    for j in range(len(FEATURES))
)


def make_table(conn: psycopg.Connection, name: str) -> str:
    conn.execute(
        sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, {}, note text)").format(
            sql.Identifier("public", name),
            sql.SQL(", ").join(sql.SQL("{} real").format(sql.Identifier(f)) for f in FEATURES),
        )
    )
    return name


def insert(conn: psycopg.Connection, table: str, first: int, last: int) -> None:
    """Rows ``first`` to ``last`` in one statement."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (id, {}) SELECT i, {} FROM generate_series(%s::int8, %s) AS i"
        ).format(sql.Identifier(table), FEATURE_COLUMNS, FEATURE_EXPRESSIONS),
        (first, last),
    )


def stream(conn: psycopg.Connection, project: str, table: str, mode: str = "sync") -> int:
    return int(one(conn, "SELECT pyml.stream(%s, %s, mode => %s)", (project, table, mode)))


def outbox(conn: psycopg.Connection, stream_id: int) -> dict[int, tuple[str, float | None]]:
    """event_id -> (key, prediction) of the stream's outbox."""
    return {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT event_id, key, prediction FROM pyml.stream_events WHERE stream_id = %s",
            (stream_id,),
        ).fetchall()
    }


def lag(conn: psycopg.Connection, stream_id: int) -> int:
    return int(one(conn, "SELECT lag FROM pyml.streams WHERE stream_id = %s", (stream_id,)))


def pending(conn: psycopg.Connection, stream_id: int, consumer: str) -> list[str]:
    """Keys a consumer has not acknowledged (read without moving it)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT key FROM pyml.stream_read(%s, %s, 1000000)", (stream_id, consumer)
        ).fetchall()
    ]


def predictions_match(conn: psycopg.Connection, stream_id: int, table: str) -> int:
    """Every event of the stream against pyml.predict of its row; the number checked."""
    rows = conn.execute(
        sql.SQL(
            "SELECT e.key, e.prediction, pyml.predict(e.model_id, ARRAY[{}]::float8[])"
            " FROM pyml.stream_events e JOIN {} t ON t.id::text = e.key"
            " WHERE e.stream_id = %s"
        ).format(
            sql.SQL(", ").join(sql.Identifier("t", f) for f in FEATURES), sql.Identifier(table)
        ),
        (stream_id,),
    ).fetchall()
    for key, prediction, expected in rows:
        assert prediction == pytest.approx(expected, rel=1e-5, abs=1e-5), key
    return len(rows)


def eventually(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYML, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env or clean_env(),
        timeout=DEADLINE * 2,
    )


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYML_URL"}


def lines_of(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Output:
    """The stdout lines of a running subprocess, read by a thread (never blocks the test)."""

    def __init__(self, stdout: IO[str]):
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stdout,), daemon=True)
        self._thread.start()
        self._ended = False

    def _pump(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line)
        self._lines.put(None)

    def take(self, n: int) -> list[str]:
        """The next ``n`` lines; fails if they do not come within DEADLINE seconds."""
        got: list[str] = []
        deadline = time.monotonic() + DEADLINE
        while len(got) < n:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"only {len(got)} of {n} lines came") from None
            if line is None:
                raise AssertionError(f"the output ended after {len(got)} of {n} lines")
            got.append(line)
        return got

    def rest(self) -> list[str]:
        """Every remaining line, up to the end of the output (the process has ended)."""
        got: list[str] = []
        while (line := self._lines.get(timeout=DEADLINE)) is not None:
            got.append(line)
        return got


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `pyml` subprocesses (stderr to a file); those still running at the end are
    terminated."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        stderr = open(tmp_path / f"stderr-{len(started)}.txt", "w")
        proc = subprocess.Popen(
            [PYML, *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
            env=clean_env(),
        )
        stderr.close()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def table(conn: psycopg.Connection, request: pytest.FixtureRequest) -> str:
    words = "".join(c if c.isalnum() else "_" for c in request.node.name.removeprefix("test_"))
    return make_table(conn, f"src_{words[:40].lower()}")


@pytest.fixture
def model(conn: psycopg.Connection, project: str) -> int:
    """The project of the test, with a deployed linear regression."""
    return train(conn, project)


def backends(conn: psycopg.Connection, application: str) -> int:
    return int(
        one(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (application,),
        )
    )


def with_application(url: str, application: str) -> str:
    return f"{url}?application_name={application}"


# ---------------------------------------------------------------------------
# pyml.client.consumer.Consumer
# ---------------------------------------------------------------------------


def test_consumer_reads_acks_and_resumes(
    conn: psycopg.Connection, url: str, model: int, project: str, table: str
) -> None:
    stream_id = stream(conn, project, table)
    insert(conn, table, 1, 5)
    with Consumer(url, stream_id, "alerts") as consumer:
        events = consumer.read(timeout=DEADLINE)
        assert sorted(e.key for e in events) == ["1", "2", "3", "4", "5"]
        for event in events:
            assert isinstance(event, Event)
            assert event._fields == ("event_id", "key", "prediction", "model_id", "scored_at")
            assert event.model_id == model
            assert isinstance(event.scored_at, datetime.datetime)
            assert event.prediction == pytest.approx(outbox(conn, stream_id)[event.event_id][1])
        consumer.ack(events[2])
    with Consumer(url, stream_id, "alerts") as again:  # a restart: from the last ack on
        assert again.read(timeout=DEADLINE) == events[3:]
    with Consumer(url, stream_id, "audit") as other:  # another name: everything
        assert other.read(timeout=DEADLINE) == events


def test_unacked_events_come_back_after_a_restart(
    conn: psycopg.Connection, url: str, model: int, project: str, table: str
) -> None:
    stream_id = stream(conn, project, table)
    insert(conn, table, 1, 3)
    with Consumer(url, stream_id, "c", batch_size=2) as consumer:
        first = consumer.read(timeout=DEADLINE)
        second = consumer.read(timeout=DEADLINE)
        assert sorted(e.key for e in first + second) == ["1", "2", "3"]  # once in a session
        assert len(first) == 2
        consumer.ack(first[-1])
    with Consumer(url, stream_id, "c") as again:
        assert again.read(timeout=DEADLINE) == second


def test_consumer_of_a_project_reads_its_only_stream(
    conn: psycopg.Connection, url: str, model: int, project: str, table: str
) -> None:
    stream_id = stream(conn, project, table)
    insert(conn, table, 1, 2)
    with Consumer(url, project, "c") as consumer:
        events = consumer.read(timeout=DEADLINE)
    assert sorted(e.key for e in events) == ["1", "2"]
    assert {e.event_id for e in events} == set(outbox(conn, stream_id))


def test_consumer_read_without_events_returns_nothing(
    conn: psycopg.Connection, url: str, model: int, project: str, table: str
) -> None:
    stream_id = stream(conn, project, table)
    with Consumer(url, stream_id, "c", wait=0.2) as consumer:
        assert consumer.read(timeout=0.2) == []
        insert(conn, table, 1, 1)
        assert [e.key for e in consumer.read(timeout=DEADLINE)] == ["1"]


def test_consumer_of_an_unknown_stream(url: str) -> None:
    with pytest.raises((LookupError, psycopg.Error)):
        Consumer(url, 10**12, "c")


def test_closed_consumer_cannot_read(
    conn: psycopg.Connection, url: str, model: int, project: str, table: str
) -> None:
    stream_id = stream(conn, project, table)
    with Consumer(url, stream_id, "c") as consumer:
        consumer.read(timeout=0)
    with pytest.raises(psycopg.Error):
        consumer.read(timeout=0)


def test_iterating_waits_for_new_events(
    conn: psycopg.Connection, connect: Connect, url: str, model: int, project: str, table: str
) -> None:
    """The iterator blocks until rows arrive, across statements, and acks as it goes."""
    stream_id = stream(conn, project, table)
    received: list[Event] = []
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            with Consumer(url, stream_id, "iterating", wait=0.5) as consumer:
                for event in consumer:
                    received.append(event)
                    consumer.ack(event)
                    if len(received) == 6:
                        return
        except BaseException as exc:  # reported by the test thread
            failure.append(exc)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    eventually(
        lambda: (
            one(
                conn,
                "SELECT count(*) FROM pyml.stream_consumers WHERE stream_id = %s",
                (stream_id,),
            )
            == 1
        ),
        "the consumer started reading",
    )
    writer = connect()
    for first in (1, 3, 5):
        insert(writer, table, first, first + 1)
    thread.join(timeout=DEADLINE)
    assert not thread.is_alive(), f"received only {len(received)} events"
    assert failure == []
    assert sorted(e.key for e in received) == ["1", "2", "3", "4", "5", "6"]
    assert pending(conn, stream_id, "iterating") == []  # all acked


# ---------------------------------------------------------------------------
# pyml listen
# ---------------------------------------------------------------------------


def test_listen_prints_one_json_line_per_prediction(
    conn: psycopg.Connection, url: str, model: int, project: str, table: str
) -> None:
    stream_id = stream(conn, project, table)
    insert(conn, table, 1, 5)
    done = run("listen", project, "--consumer", "printer", "--url", url, "--max-events", "5")
    assert done.returncode == 0, done.stderr
    lines = lines_of(done.stdout)
    assert sorted(line["key"] for line in lines) == ["1", "2", "3", "4", "5"]
    events = outbox(conn, stream_id)
    for line in lines:
        assert {"event_id", "key", "prediction", "model_id", "scored_at"} <= set(line)
        assert line["model_id"] == model
        assert line["prediction"] == pytest.approx(events[line["event_id"]][1], rel=1e-6)
        datetime.datetime.fromisoformat(line["scored_at"])
    assert pending(conn, stream_id, "printer") == []  # acked after printing
    again = run("listen", project, "--consumer", "printer", "--url", url, "--idle-exit", "1")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == ""  # nothing seen twice


def test_listen_killed_mid_read_and_restarted(
    conn: psycopg.Connection,
    connect: Connect,
    url: str,
    model: int,
    project: str,
    table: str,
    processes: Callable[..., subprocess.Popen[str]],
) -> None:
    """SIGKILL while rows are still arriving; the restarted consumer gets every key it had not
    acknowledged, and nothing it had."""
    statements, rows = 300, 10
    everything = {str(i) for i in range(1, statements * rows + 1)}
    stream_id = stream(conn, project, table)
    listener = processes("listen", project, "--consumer", "c", "--url", url, "--batch-size", "50")
    assert listener.stdout is not None
    output = Output(listener.stdout)
    writer = connect()

    def write() -> None:
        for s in range(statements):
            insert(writer, table, s * rows + 1, (s + 1) * rows)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    first = output.take(200)
    listener.send_signal(signal.SIGKILL)
    listener.wait(timeout=DEADLINE)
    first += output.rest()
    thread.join(timeout=DEADLINE * 2)
    assert not thread.is_alive()
    first_keys = [line["key"] for line in map(json.loads, first)]
    assert len(first_keys) == len(set(first_keys))
    unacked = pending(conn, stream_id, "c")
    acked = everything - set(unacked)
    assert acked <= set(first_keys), "acknowledged without being printed"
    assert acked, "nothing was acknowledged before the kill"
    done = run("listen", project, "--consumer", "c", "--url", url, "--idle-exit", "2")
    assert done.returncode == 0, done.stderr
    second_keys = [line["key"] for line in lines_of(done.stdout)]
    assert len(second_keys) == len(set(second_keys))
    assert acked.isdisjoint(second_keys), "an acknowledged event was delivered again"
    assert set(second_keys) == everything - acked
    assert set(first_keys) | set(second_keys) == everything
    assert pending(conn, stream_id, "c") == []


def test_listen_to_a_project_with_two_streams(
    conn: psycopg.Connection, url: str, model: int, project: str, table: str
) -> None:
    other = make_table(conn, f"{table}_2")
    stream(conn, project, table)
    other_id = stream(conn, project, other)
    insert(conn, table, 1, 2)
    insert(conn, other, 11, 12)
    ambiguous = run("listen", project, "--consumer", "c", "--url", url, "--idle-exit", "1")
    assert ambiguous.returncode != 0
    assert ambiguous.stdout.strip() == ""
    assert ambiguous.stderr.strip() != ""
    env = {**clean_env(), "PYML_URL": url}  # the URL from the environment this time
    done = run(
        "listen", project, "--consumer", "c", "--source", other, "--max-events", "2", env=env
    )
    assert done.returncode == 0, done.stderr
    lines = lines_of(done.stdout)
    assert sorted(line["key"] for line in lines) == ["11", "12"]
    assert {line["event_id"] for line in lines} == set(outbox(conn, other_id))


# ---------------------------------------------------------------------------
# pyml worker
# ---------------------------------------------------------------------------


def test_worker_once_scores_the_queue(
    conn: psycopg.Connection, url: str, model: int, project: str, table: str
) -> None:
    stream_id = stream(conn, project, table, "async")
    for first in range(1, 50, 10):
        insert(conn, table, first, first + 9)
    assert lag(conn, stream_id) == 50
    assert outbox(conn, stream_id) == {}
    done = run("worker", "--once", "--url", url, "--batch-size", "16")
    assert done.returncode == 0, done.stderr
    assert lag(conn, stream_id) == 0
    assert sorted(k for k, _ in outbox(conn, stream_id).values()) == sorted(
        str(i) for i in range(1, 51)
    )
    assert predictions_match(conn, stream_id, table) == 50


def test_worker_stopped_then_restarted_catches_up(
    conn: psycopg.Connection,
    url: str,
    model: int,
    project: str,
    table: str,
    processes: Callable[..., subprocess.Popen[str]],
) -> None:
    stream_id = stream(conn, project, table, "async")
    application = "pyml_stream_worker_test"
    worker_url = with_application(url, application)

    def scored() -> int:
        return len(outbox(conn, stream_id))

    worker = processes("worker", "--url", worker_url, "--batch-size", "100")
    insert(conn, table, 1, 200)
    eventually(lambda: scored() == 200 and lag(conn, stream_id) == 0, "the worker scored 200")
    worker.terminate()
    worker.wait(timeout=DEADLINE)
    eventually(lambda: backends(conn, application) == 0, "the worker's session ended")
    # Stopped: rows wait in the queue.
    for first in range(201, 501, 50):
        insert(conn, table, first, first + 49)
    assert lag(conn, stream_id) == 300
    assert scored() == 200
    worker = processes("worker", "--url", worker_url, "--batch-size", "100")
    eventually(lambda: scored() == 500 and lag(conn, stream_id) == 0, "the worker caught up")
    keys = [k for k, _ in outbox(conn, stream_id).values()]
    assert sorted(keys, key=int) == [str(i) for i in range(1, 501)]
    assert predictions_match(conn, stream_id, table) == 500
    # Running, it keeps up with new rows (woken by the inserts).
    insert(conn, table, 501, 510)
    eventually(lambda: scored() == 510, "the worker scored new rows")


def test_worker_killed_mid_queue_then_restarted_every_key_once(
    conn: psycopg.Connection,
    url: str,
    model: int,
    project: str,
    table: str,
    processes: Callable[..., subprocess.Popen[str]],
) -> None:
    stream_id = stream(conn, project, table, "async")
    application = "pyml_stream_worker_killed"
    insert(conn, table, 1, 6000)
    worker = processes("worker", "--url", with_application(url, application), "--batch-size", "100")
    eventually(lambda: len(outbox(conn, stream_id)) > 0, "the worker scored a batch")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=DEADLINE)
    # Its session may still be working through the queue: a second worker shares it.
    done = run("worker", "--once", "--url", url, "--batch-size", "100")
    assert done.returncode == 0, done.stderr
    eventually(lambda: backends(conn, application) == 0, "the killed worker's session ended")
    done = run("worker", "--once", "--url", url)
    assert done.returncode == 0, done.stderr
    assert lag(conn, stream_id) == 0
    keys = [k for k, _ in outbox(conn, stream_id).values()]
    assert len(keys) == 6000
    assert set(keys) == {str(i) for i in range(1, 6001)}


def test_two_workers_at_once_score_each_row_once(
    conn: psycopg.Connection,
    url: str,
    model: int,
    project: str,
    table: str,
    processes: Callable[..., subprocess.Popen[str]],
) -> None:
    stream_id = stream(conn, project, table, "async")
    for first in range(1, 4001, 500):
        insert(conn, table, first, first + 499)
    workers = [processes("worker", "--once", "--url", url, "--batch-size", "50") for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=DEADLINE * 2) == 0
    assert lag(conn, stream_id) == 0
    keys = [k for k, _ in outbox(conn, stream_id).values()]
    assert len(keys) == 4000 and set(keys) == {str(i) for i in range(1, 4001)}


def test_worker_prunes_acknowledged_events(
    conn: psycopg.Connection,
    url: str,
    model: int,
    project: str,
    table: str,
    processes: Callable[..., subprocess.Popen[str]],
) -> None:
    stream_id = stream(conn, project, table)
    insert(conn, table, 1, 10)
    with Consumer(url, stream_id, "c") as consumer:
        events = consumer.read(timeout=DEADLINE)
        assert len(events) == 10
        consumer.ack(events[6])
    processes("worker", "--url", url, "--prune-every", "0.2")
    eventually(lambda: len(outbox(conn, stream_id)) == 3, "the acknowledged events were pruned")
    assert sorted(k for k, _ in outbox(conn, stream_id).values()) == ["10", "8", "9"]
    assert pending(conn, stream_id, "c") == ["8", "9", "10"]
