"""Streams in SQL: triggers, the outbox, NOTIFY payloads, consumers, async queues, errors.

Every stream reads a table of its own, made with the ten diabetes feature columns, an ``id``
key and a ``note`` column that no model uses. Event ids are not assumed to arrive sorted:
delivery order is the order pyml.stream_read returns.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pyml.client.cluster import Cluster

FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
VIEW_COLUMNS = [
    "stream_id",
    "project",
    "source_relation",
    "key_column",
    "mode",
    "channel",
    "lag",
    "events",
    "consumers",
    "created_at",
]
MODES = ["sync", "async"]
PAYLOAD_LIMIT = 8000  # bytes: PostgreSQL refuses longer NOTIFY payloads
WAIT = 30.0  # seconds: the most any NOTIFY may take to arrive (a deadline, not a measure)

Connect = Callable[..., psycopg.Connection]


@dataclass(frozen=True)
class Trained:
    project: str
    model_id: int


@dataclass(frozen=True)
class Payload:
    channel: str
    size: int  # bytes
    data: dict[str, Any]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    """The single value of a one-row, one-column query."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def train(
    conn: psycopg.Connection,
    project: str,
    relation: str = "pyml.diabetes",
    label: str = "target",
    task: str = "regression",
    algorithm: str = "linear",
    hyperparams: dict[str, Any] | None = None,
    automatic_deploy: bool = True,
) -> int:
    """Train one model; return its id."""
    conn.execute(
        "SELECT * FROM pyml.train(%s, task => %s, relation_name => %s, y_column_name => %s,"
        " algorithm => %s, hyperparams => %s::jsonb, automatic_deploy => %s)",
        (
            project,
            task,
            relation,
            label,
            algorithm,
            json.dumps(hyperparams or {}),
            automatic_deploy,
        ),
    )
    return int(
        one(
            conn,
            "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s",
            (project,),
        )
    )


def features(i: int) -> list[float]:
    """The feature values of row ``i`` (as SQL computes them in :func:`insert`)."""
    return [((i * (2 * j + 3) + j) % 101 - 50) / 1000 for j in range(len(FEATURES))]


FEATURE_EXPRESSIONS = sql.SQL(", ").join(
    sql.SQL("(mod(i * {} + {}, 101) - 50) / 1000.0").format(2 * j + 3, j)
    for j in range(len(FEATURES))
)
FEATURE_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, FEATURES))


def make_table(conn: psycopg.Connection, name: str, key: str = "id bigint PRIMARY KEY") -> str:
    conn.execute(
        sql.SQL("CREATE TABLE {} ({}, {}, note text)").format(
            sql.Identifier("public", name),
            sql.SQL(key),
            sql.SQL(", ").join(sql.SQL("{} real").format(sql.Identifier(f)) for f in FEATURES),
        )
    )
    return name


def insert(conn: psycopg.Connection, table: str, first: int, last: int) -> None:
    """Rows ``first`` to ``last`` (ids and features from the row number) in one statement."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (id, {}) SELECT i, {} FROM generate_series(%s::int8, %s) AS i"
        ).format(sql.Identifier(table), FEATURE_COLUMNS, FEATURE_EXPRESSIONS),
        (first, last),
    )


def stream(
    conn: psycopg.Connection,
    project: str,
    table: str,
    mode: str = "sync",
    key_column: str = "id",
    channel: str | None = None,
) -> int:
    return int(
        one(
            conn,
            "SELECT pyml.stream(%s, %s, key_column => %s, mode => %s, channel => %s)",
            (project, table, key_column, mode, channel),
        )
    )


def settle(conn: psycopg.Connection, mode: str, stream_id: int) -> None:
    """Async streams: score what is queued (sync streams have nothing to do)."""
    if mode == "async":
        conn.execute("CALL pyml.stream_work(%s)", (stream_id,))


def events(conn: psycopg.Connection, stream_id: int) -> list[tuple[Any, ...]]:
    """(event_id, key, prediction, model_id, error) of the stream's outbox, by event id."""
    return [
        tuple(r)
        for r in conn.execute(
            "SELECT event_id, key, prediction, model_id, error FROM pyml.stream_events"
            " WHERE stream_id = %s ORDER BY event_id",
            (stream_id,),
        ).fetchall()
    ]


def keys(conn: psycopg.Connection, stream_id: int) -> list[str]:
    return [r[1] for r in events(conn, stream_id)]


def view(conn: psycopg.Connection, stream_id: int) -> dict[str, Any] | None:
    cur = conn.execute("SELECT * FROM pyml.streams WHERE stream_id = %s", (stream_id,))
    row = cur.fetchone()
    assert cur.description is not None
    return None if row is None else dict(zip([c.name for c in cur.description], row, strict=True))


def read(
    conn: psycopg.Connection,
    stream_id: int,
    consumer: str,
    max_rows: int = 1000,
    after_event: int | None = None,
) -> list[tuple[Any, ...]]:
    """(event_id, key, prediction, model_id, scored_at) in delivery order."""
    return [
        tuple(r)
        for r in conn.execute(
            "SELECT event_id, key, prediction, model_id, scored_at"
            " FROM pyml.stream_read(%s, %s, %s, %s)",
            (stream_id, consumer, max_rows, after_event),
        ).fetchall()
    ]


def ack(conn: psycopg.Connection, stream_id: int, consumer: str, event_id: int) -> None:
    conn.execute("SELECT pyml.stream_ack(%s, %s, %s)", (stream_id, consumer, event_id))


def drain(
    conn: psycopg.Connection, stream_id: int, consumer: str, max_rows: int = 1000
) -> list[tuple[Any, ...]]:
    """Read and ack until nothing is left; every event read, in delivery order."""
    seen: list[tuple[Any, ...]] = []
    while rows := read(conn, stream_id, consumer, max_rows):
        seen.extend(rows)
        ack(conn, stream_id, consumer, rows[-1][0])
    return seen


def row_features(conn: psycopg.Connection, table: str, row_id: int) -> list[float]:
    return one(
        conn,
        sql.SQL("SELECT ARRAY[{}]::float8[] FROM {} WHERE id = %s").format(
            FEATURE_COLUMNS, sql.Identifier(table)
        ),
        (row_id,),
    )


def triggers(conn: psycopg.Connection, table: str) -> int:
    return int(
        one(
            conn,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            (table,),
        )
    )


def predictions_match(conn: psycopg.Connection, stream_id: int, table: str, every: int = 1) -> int:
    """Check each event (of rows whose id is a multiple of ``every``) against pyml.predict with
    the model the event names and the row's features; the number of events checked."""
    rows = conn.execute(
        sql.SQL(
            "SELECT e.key, e.prediction, pyml.predict(e.model_id, ARRAY[{}]::float8[])"
            " FROM pyml.stream_events e JOIN {} t ON t.id::text = e.key"
            " WHERE e.stream_id = %s AND t.id %% %s = 0 ORDER BY e.event_id"
        ).format(
            sql.SQL(", ").join(sql.Identifier("t", f) for f in FEATURES), sql.Identifier(table)
        ),
        (stream_id, every),
    ).fetchall()
    for key, prediction, expected in rows:
        assert prediction is not None, key
        assert prediction == pytest.approx(expected, rel=1e-5, abs=1e-5), key
    return len(rows)


def listen(listener: psycopg.Connection, *channels: str) -> None:
    for channel in channels:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))


def receive(
    listener: psycopg.Connection, *, events: int | None = None, notifications: int | None = None
) -> list[Payload]:
    """NOTIFY payloads until they announce ``events`` events in all, or until
    ``notifications`` arrived; fails if that does not happen within WAIT seconds."""
    got: list[Payload] = []
    announced = 0
    deadline = time.monotonic() + WAIT

    def done() -> bool:
        if events is not None:
            return announced >= events
        return len(got) >= (notifications or 1)

    while not done():
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {got!r} arrived"
        for n in listener.notifies(timeout=remaining, stop_after=1):
            size = len(n.payload.encode())
            try:
                data = json.loads(n.payload)
            except ValueError:
                data = {"raw": n.payload}
            got.append(Payload(n.channel, size, data))
            if isinstance(data, dict) and isinstance(data.get("count"), int):
                announced += data["count"]
    for payload in got:
        assert payload.size < PAYLOAD_LIMIT, payload
    return got


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diabetes(conn: psycopg.Connection) -> Trained:
    """A linear regression, deployed; most streams score with it."""
    return Trained("stream_diabetes", train(conn, "stream_diabetes"))


@pytest.fixture
def table(conn: psycopg.Connection, request: pytest.FixtureRequest) -> str:
    """A fresh source table named after the test."""
    words = "".join(c if c.isalnum() else "_" for c in request.node.name.removeprefix("test_"))
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    return make_table(conn, f"src_{words[:30].lower()}_{digest}")


@pytest.fixture
def listener(url: str) -> Iterator[psycopg.Connection]:
    """A session that LISTENs (and does nothing else, so no notification is missed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def two_models(conn: psycopg.Connection, project: str) -> tuple[int, int]:
    """A project with a linear model (live) and a ridge model (not deployed)."""
    first = train(conn, project)
    second = train(
        conn, project, algorithm="ridge", hyperparams={"alpha": 0.5}, automatic_deploy=False
    )
    row = features(1)
    values = [
        one(conn, "SELECT pyml.predict(%s::bigint, %s::float8[])", (m, row))
        for m in (first, second)
    ]
    assert values[0] != pytest.approx(values[1], rel=1e-3)  # the models can be told apart
    return first, second


@pytest.fixture(scope="module")
def plain_url(cluster: Cluster, admin_url: str, database: str) -> str:
    """A role with no privilege on pyml's tables (only what PUBLIC gets) that may create tables
    in public."""
    role = "pyml_stream_plain"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            try:
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            except psycopg.errors.UniqueViolation:  # created meanwhile by a parallel run
                pass
        admin.execute(
            sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(sql.Identifier(role))
        )
    return f"postgresql://{role}@127.0.0.1:{cluster.port}/{database}"


# ---------------------------------------------------------------------------
# Defining a stream; the pyml.streams view
# ---------------------------------------------------------------------------


def test_view_describes_the_stream(conn: psycopg.Connection, diabetes: Trained, table: str) -> None:
    stream_id = stream(conn, diabetes.project, table)
    cur = conn.execute("SELECT * FROM pyml.streams WHERE stream_id = %s", (stream_id,))
    assert cur.description is not None
    names = [c.name for c in cur.description]
    assert [n for n in names if n in VIEW_COLUMNS] == VIEW_COLUMNS
    project_id = one(conn, "SELECT id FROM pyml.projects WHERE name = %s", (diabetes.project,))
    info = view(conn, stream_id)
    assert info is not None
    assert info["project"] == diabetes.project
    assert info["source_relation"] in (table, f"public.{table}")
    assert (info["key_column"], info["mode"], info["channel"]) == (
        "id",
        "sync",
        f"pyml_{project_id}",
    )
    assert (info["lag"], info["events"], info["consumers"]) == (0, 0, 0)
    assert info["created_at"] is not None
    insert(conn, table, 1, 3)
    read(conn, stream_id, "reader")
    info = view(conn, stream_id)
    assert info is not None
    assert (info["lag"], info["events"], info["consumers"]) == (0, 3, 1)


def test_stream_again_updates_it_and_keeps_its_id(
    conn: psycopg.Connection, url: str, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, f"public.{table}")
    count = triggers(conn, table)
    assert count > 0
    assert stream(conn, diabetes.project, table, "async", channel="readings_async") == stream_id
    assert triggers(conn, table) == count  # recreated, not added
    assert (
        one(
            conn,
            "SELECT count(*) FROM pyml.stream_definitions WHERE source_relation = %s::regclass",
            (table,),
        )
        == 1
    )
    info = view(conn, stream_id)
    assert info is not None
    assert (info["mode"], info["channel"]) == ("async", "readings_async")
    insert(conn, table, 1, 2)
    info = view(conn, stream_id)
    assert info is not None
    assert (info["lag"], info["events"]) == (2, 0)  # queued once, not scored
    settle(conn, "async", stream_id)
    assert sorted(keys(conn, stream_id)) == ["1", "2"]


def test_notifications_go_to_the_current_channel(
    conn: psycopg.Connection, listener: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table, channel="readings_first")
    stream(conn, diabetes.project, table, channel="readings_second")
    listen(listener, "readings_first", "readings_second")
    insert(conn, table, 1, 1)
    [payload] = receive(listener, notifications=1)
    assert payload.channel == "readings_second"
    assert payload.data["stream"] == stream_id
    # Nothing else was sent on the old channel before this marker.
    conn.execute("SELECT pg_notify('readings_first', 'marker')")
    [marker] = receive(listener, notifications=1)
    assert (marker.channel, marker.data) == ("readings_first", {"raw": "marker"})


def test_stream_on_a_schema_qualified_relation_with_a_text_key(
    conn: psycopg.Connection, diabetes: Trained
) -> None:
    name = make_table(conn, "src_text_key", key="serial text PRIMARY KEY, id bigint")
    stream_id = stream(conn, diabetes.project, f"public.{name}", key_column="serial")
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (serial, id, {}) SELECT 'sensor-' || i, i, {}"
            " FROM generate_series(1, 3) AS i"
        ).format(sql.Identifier(name), FEATURE_COLUMNS, FEATURE_EXPRESSIONS)
    )
    assert sorted(keys(conn, stream_id)) == ["sensor-1", "sensor-2", "sensor-3"]
    for (_, key, prediction, model_id, error), i in zip(
        sorted(events(conn, stream_id), key=lambda e: e[1]), (1, 2, 3), strict=True
    ):
        expected = one(
            conn, "SELECT pyml.predict(%s::bigint, %s::float8[])", (diabetes.model_id, features(i))
        )
        assert key == f"sensor-{i}"
        assert (model_id, error) == (diabetes.model_id, None)
        assert prediction == pytest.approx(expected, rel=1e-5, abs=1e-5)


# ---------------------------------------------------------------------------
# Errors when defining and dropping streams
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("project_name", "relation", "key_column", "mode", "channel", "error"),
    [
        ("{project}", "no_such_table", "id", "sync", None, psycopg.errors.UndefinedTable),
        ("{project}", "{table}", "no_such_column", "sync", None, psycopg.errors.UndefinedColumn),
        ("{project}", "{table}", "id", "batch", None, psycopg.errors.InvalidParameterValue),
        ("{project}", "{table}", "id", "sync", "", psycopg.errors.InvalidParameterValue),
        ("{project}", "{table}", "id", "sync", "x" * 64, psycopg.errors.InvalidParameterValue),
        ("no such project", "{table}", "id", "sync", None, psycopg.errors.UndefinedObject),
    ],
    ids=[
        "missing-relation",
        "missing-key",
        "bad-mode",
        "empty-channel",
        "long-channel",
        "unknown-project",
    ],
)
def test_stream_errors(
    conn: psycopg.Connection,
    diabetes: Trained,
    table: str,
    project_name: str,
    relation: str,
    key_column: str,
    mode: str,
    channel: str | None,
    error: type[psycopg.Error],
) -> None:
    args = (
        project_name.format(project=diabetes.project),
        relation.format(table=table),
        key_column,
        mode,
        channel,
    )
    with pytest.raises(error):
        conn.execute("SELECT pyml.stream(%s, %s, %s, %s, %s)", args)
    assert triggers(conn, table) == 0
    assert (
        one(
            conn,
            "SELECT count(*) FROM pyml.stream_definitions WHERE source_relation = %s::regclass",
            (table,),
        )
        == 0
    )


def test_stream_needs_every_feature_column(
    conn: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN bmi").format(sql.Identifier(table)))
    with pytest.raises(psycopg.errors.UndefinedColumn, match="bmi"):
        stream(conn, diabetes.project, table)
    assert triggers(conn, table) == 0


def test_stream_needs_a_deployed_model(conn: psycopg.Connection, project: str, table: str) -> None:
    train(conn, project, automatic_deploy=False)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        stream(conn, project, table)
    assert triggers(conn, table) == 0


def test_unstream_errors(conn: psycopg.Connection, diabetes: Trained, table: str) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.unstream(%s, %s)", (diabetes.project, table))
    stream(conn, diabetes.project, table)
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.unstream(%s, %s)", ("no such project", table))
    assert triggers(conn, table) > 0  # the stream is still there


# ---------------------------------------------------------------------------
# Scoring: sync and async
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_inserted_row_is_scored_by_the_live_model(
    conn: psycopg.Connection, diabetes: Trained, table: str, mode: str
) -> None:
    stream_id = stream(conn, diabetes.project, table, mode)
    insert(conn, table, 1, 5)
    insert(conn, table, 6, 6)
    settle(conn, mode, stream_id)
    rows = events(conn, stream_id)
    assert sorted(r[1] for r in rows) == [str(i) for i in range(1, 7)]
    assert {(r[3], r[4]) for r in rows} == {(diabetes.model_id, None)}
    assert predictions_match(conn, stream_id, table) == 6
    read_rows = read(conn, stream_id, "reader")
    assert sorted(r[1] for r in read_rows) == [str(i) for i in range(1, 7)]
    assert all(r[4] is not None for r in read_rows)  # scored_at


@pytest.mark.parametrize("mode", MODES)
def test_rolled_back_insert_gives_no_event_and_no_notify(
    conn: psycopg.Connection,
    connect: Connect,
    listener: psycopg.Connection,
    diabetes: Trained,
    table: str,
    mode: str,
) -> None:
    stream_id = stream(conn, diabetes.project, table, mode)
    channel = one(conn, "SELECT channel FROM pyml.streams WHERE stream_id = %s", (stream_id,))
    listen(listener, channel)
    writer = connect(autocommit=False)
    insert(writer, table, 1, 10)
    writer.rollback()
    # A savepoint rolled back inside a committed transaction leaves nothing either.
    insert(writer, table, 11, 11)
    writer.execute("SAVEPOINT s")
    insert(writer, table, 12, 20)
    writer.execute("ROLLBACK TO SAVEPOINT s")
    writer.commit()
    settle(conn, mode, stream_id)
    assert keys(conn, stream_id) == ["11"]
    assert [r[1] for r in read(conn, stream_id, "reader")] == ["11"]
    # The first notification on the channel is the committed row's: none came before it.
    [payload] = receive(listener, notifications=1)
    assert payload.data["count"] == 1
    assert [e[1] for e in payload.data["events"]] == ["11"]


def test_notify_payload_of_a_small_statement(
    conn: psycopg.Connection, listener: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table)
    listen(
        listener, one(conn, "SELECT channel FROM pyml.streams WHERE stream_id = %s", (stream_id,))
    )
    insert(conn, table, 1, 3)
    [payload] = receive(listener, notifications=1)
    outbox = events(conn, stream_id)
    assert payload.data["stream"] == stream_id
    assert payload.data["model"] == diabetes.model_id
    assert payload.data["count"] == 3
    assert payload.data["first"] == min(e[0] for e in outbox)
    assert payload.data["last"] == max(e[0] for e in outbox)
    inline = sorted(payload.data["events"], key=lambda e: e[0])
    assert [(e[0], e[1]) for e in inline] == [(e[0], e[1]) for e in outbox]
    for (_, _, value), (_, _, prediction, _, _) in zip(inline, outbox, strict=True):
        assert value == pytest.approx(prediction, rel=1e-6)


def test_multi_row_insert_is_one_batch_and_one_notify(
    conn: psycopg.Connection, listener: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table)
    listen(
        listener, one(conn, "SELECT channel FROM pyml.streams WHERE stream_id = %s", (stream_id,))
    )
    insert(conn, table, 1, 500)
    insert(conn, table, 501, 501)  # a marker: its notification comes after the first's
    payloads = receive(listener, events=501)
    assert [p.data["count"] for p in payloads] == [500, 1]
    assert len(set(keys(conn, stream_id))) == 501
    assert predictions_match(conn, stream_id, table, every=50) == 10


def test_copy_of_50000_rows(
    conn: psycopg.Connection, listener: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table)
    listen(
        listener, one(conn, "SELECT channel FROM pyml.streams WHERE stream_id = %s", (stream_id,))
    )
    with (
        conn.cursor() as cur,
        cur.copy(
            sql.SQL("COPY {} (id, {}) FROM STDIN").format(sql.Identifier(table), FEATURE_COLUMNS)
        ) as copy,
    ):
        for i in range(1, 50_001):
            copy.write_row((i, *features(i)))
    payloads = receive(listener, events=50_000)
    assert sum(p.data["count"] for p in payloads) == 50_000
    assert len(payloads) <= 5  # scored in batches, announced per batch, not per row
    assert all(p.data["stream"] == stream_id for p in payloads)
    row = conn.execute(
        "SELECT count(*), count(DISTINCT key), min(event_id), max(event_id),"
        " count(*) FILTER (WHERE model_id = %s AND error IS NULL AND prediction IS NOT NULL)"
        " FROM pyml.stream_events WHERE stream_id = %s",
        (diabetes.model_id, stream_id),
    ).fetchone()
    assert row is not None
    count, distinct, first, last, good = row
    assert (count, distinct, good) == (50_000, 50_000, 50_000)
    assert min(p.data["first"] for p in payloads) == first
    assert max(p.data["last"] for p in payloads) == last
    assert predictions_match(conn, stream_id, table, every=2500) == 20


def test_payload_of_a_10000_row_statement_is_a_range(
    conn: psycopg.Connection, listener: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table)
    listen(
        listener, one(conn, "SELECT channel FROM pyml.streams WHERE stream_id = %s", (stream_id,))
    )
    insert(conn, table, 1, 10_000)
    [payload] = receive(listener, events=10_000)
    first, last = conn.execute(
        "SELECT min(event_id), max(event_id) FROM pyml.stream_events WHERE stream_id = %s",
        (stream_id,),
    ).fetchone() or (0, 0)
    assert payload.data["count"] == 10_000
    assert payload.data["events"] is None
    assert (payload.data["first"], payload.data["last"]) == (first, last)
    assert (payload.data["stream"], payload.data["model"]) == (stream_id, diabetes.model_id)


@pytest.mark.parametrize("rows", [20, 150])
@pytest.mark.parametrize(
    "text",
    ['"quoted" \\ back', "é" * 70, "x" * 250, "🌡" * 40],
    ids=["escapes", "accents", "long", "emoji"],
)
def test_payload_with_long_keys_stays_under_the_limit(
    conn: psycopg.Connection,
    listener: psycopg.Connection,
    diabetes: Trained,
    request: pytest.FixtureRequest,
    rows: int,
    text: str,
) -> None:
    name = make_table(
        conn,
        f"src_keys_{request.node.callspec.id}".replace("-", "_"),
        key="serial text PRIMARY KEY, id bigint",
    )
    stream_id = stream(conn, diabetes.project, name, key_column="serial")
    listen(
        listener, one(conn, "SELECT channel FROM pyml.streams WHERE stream_id = %s", (stream_id,))
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (serial, id, {}) SELECT %s || i, i, {} FROM generate_series(1, %s) AS i"
        ).format(sql.Identifier(name), FEATURE_COLUMNS, FEATURE_EXPRESSIONS),
        (text, rows),
    )
    payloads = receive(listener, events=rows)  # each checked to be under 8000 bytes
    outbox = {e[0]: e[1] for e in events(conn, stream_id)}
    assert len(outbox) == rows
    for payload in payloads:
        if payload.data["events"] is not None:
            assert len(payload.data["events"]) == payload.data["count"]
            assert {e[0]: e[1] for e in payload.data["events"]} == {
                i: k
                for i, k in outbox.items()
                if payload.data["first"] <= i <= payload.data["last"]
            }


def test_classification_streams_class_labels(conn: psycopg.Connection, project: str) -> None:
    model = train(
        conn,
        project,
        "pyml.breast_cancer",
        "malignant",
        "classification",
        hyperparams={"max_iter": 5000},
    )
    conn.execute(
        "CREATE TABLE tumours AS SELECT 0::bigint AS id, b.* FROM pyml.breast_cancer b WITH NO DATA"
    )
    conn.execute("ALTER TABLE tumours DROP COLUMN malignant")
    stream_id = stream(conn, project, "tumours")
    conn.execute(
        "INSERT INTO tumours SELECT r.* FROM (SELECT row_number() OVER () AS n, b"
        " FROM pyml.breast_cancer b LIMIT 60) s,"
        " jsonb_populate_record(NULL::tumours, to_jsonb(s.b) || jsonb_build_object('id', s.n)) r"
    )
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'pyml.breast_cancer'::regclass"
            " AND attnum > 0 AND NOT attisdropped AND attname <> 'malignant' ORDER BY attnum"
        ).fetchall()
    ]
    assert len(columns) == 30 and "mean radius" in columns
    rows = conn.execute(
        sql.SQL(
            "SELECT e.prediction, pyml.predict(e.model_id, ARRAY[{}]::float8[]), e.model_id"
            " FROM pyml.stream_events e JOIN tumours t ON t.id::text = e.key"
            " WHERE e.stream_id = %s"
        ).format(sql.SQL(", ").join(sql.Identifier("t", c) for c in columns)),
        (stream_id,),
    ).fetchall()
    assert len(rows) == 60
    assert {r[0] for r in rows} == {0.0, 1.0}  # labels as numbers, both classes seen
    assert all(
        prediction == expected and model_id == model for prediction, expected, model_id in rows
    )


# ---------------------------------------------------------------------------
# UPDATEs and NULL features
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_update_of_a_feature_column_is_rescored(
    conn: psycopg.Connection, diabetes: Trained, table: str, mode: str
) -> None:
    stream_id = stream(conn, diabetes.project, table, mode)
    insert(conn, table, 1, 3)
    settle(conn, mode, stream_id)
    before = events(conn, stream_id)
    assert len(before) == 3
    ident = sql.Identifier(table)
    # Not a feature, or features set to the values they had: nothing to score.
    conn.execute(sql.SQL("UPDATE {} SET note = 'checked'").format(ident))
    conn.execute(sql.SQL("UPDATE {} SET bmi = bmi, note = 'again'").format(ident))
    settle(conn, mode, stream_id)
    assert events(conn, stream_id) == before
    # One row's feature changes: that row, and only it, is scored again.
    conn.execute(
        sql.SQL(
            "UPDATE {} SET bmi = CASE WHEN id = 2 THEN bmi + 0.05 ELSE bmi END, note = 'changed'"
        ).format(ident)
    )
    settle(conn, mode, stream_id)
    after = events(conn, stream_id)
    assert after[:3] == before
    [(_, key, prediction, model_id, error)] = after[3:]
    assert (key, model_id, error) == ("2", diabetes.model_id, None)
    expected = one(
        conn,
        "SELECT pyml.predict(%s::bigint, %s::float8[])",
        (diabetes.model_id, row_features(conn, table, 2)),
    )
    assert prediction == pytest.approx(expected, rel=1e-5, abs=1e-5)
    old = next(e[2] for e in before if e[1] == "2")
    assert prediction != pytest.approx(old, rel=1e-4)


def test_sync_null_feature_fails_the_insert(
    conn: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table)
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (id, {}) VALUES (1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s),"
                " (2, %s, %s, NULL, %s, %s, %s, %s, %s, %s, %s)"
            ).format(sql.Identifier(table), FEATURE_COLUMNS),
            (*features(1), *(v for j, v in enumerate(features(2)) if j != 2)),
        )
    assert one(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))) == 0
    assert events(conn, stream_id) == []
    insert(conn, table, 3, 3)  # the stream still works
    assert keys(conn, stream_id) == ["3"]


def test_async_null_feature_becomes_an_event_with_its_error(
    conn: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table, "async")
    insert(conn, table, 1, 3)
    settle(conn, "async", stream_id)
    before = events(conn, stream_id)
    conn.execute(sql.SQL("UPDATE {} SET bmi = NULL WHERE id = 2").format(sql.Identifier(table)))
    settle(conn, "async", stream_id)
    after = events(conn, stream_id)
    assert after[:3] == before
    [(event_id, key, prediction, model_id, error)] = after[3:]
    assert (key, prediction, model_id) == ("2", None, diabetes.model_id)
    assert error and "bmi" in error
    read_rows = read(conn, stream_id, "reader")
    assert [(r[0], r[2]) for r in read_rows][-1] == (event_id, None)
    assert view(conn, stream_id)["lag"] == 0


def test_async_insert_of_a_null_feature_is_not_refused(
    conn: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table, "async")
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (id, {}) VALUES (1, %s, %s, NULL, %s, %s, %s, %s, %s, %s, %s),"
            " (2, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        ).format(sql.Identifier(table), FEATURE_COLUMNS),
        (*(v for j, v in enumerate(features(1)) if j != 2), *features(2)),
    )
    settle(conn, "async", stream_id)
    rows = {r[1]: r for r in events(conn, stream_id)}
    assert sorted(rows) == ["1", "2"]
    assert rows["1"][2] is None and rows["1"][4] and "bmi" in rows["1"][4]
    assert rows["2"][2] is not None and rows["2"][4] is None
    assert predictions_match(conn, stream_id, table, every=2) == 1


# ---------------------------------------------------------------------------
# Async: the queue, stream_work
# ---------------------------------------------------------------------------


def test_async_rows_wait_in_the_queue_until_stream_work(
    conn: psycopg.Connection, listener: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table, "async")
    listen(
        listener, one(conn, "SELECT channel FROM pyml.streams WHERE stream_id = %s", (stream_id,))
    )
    for first in range(1, 21, 4):
        insert(conn, table, first, first + 3)
    info = view(conn, stream_id)
    assert info is not None
    assert (info["lag"], info["events"]) == (20, 0)
    assert read(conn, stream_id, "reader") == []
    conn.execute("CALL pyml.stream_work(%s, batch_size => 7)", (stream_id,))
    info = view(conn, stream_id)
    assert info is not None
    assert (info["lag"], info["events"]) == (0, 20)
    assert sorted(keys(conn, stream_id), key=int) == [str(i) for i in range(1, 21)]
    assert predictions_match(conn, stream_id, table) == 20
    payloads = receive(listener, events=20)
    assert sorted(p.data["count"] for p in payloads) == [6, 7, 7]  # one per batch
    delivered = [r[1] for r in drain(conn, stream_id, "reader")]
    assert sorted(delivered, key=int) == [str(i) for i in range(1, 21)]


def test_stream_work_of_one_stream_leaves_the_others(
    conn: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    other = make_table(conn, f"{table}_other")
    mine = stream(conn, diabetes.project, table, "async")
    theirs = stream(conn, diabetes.project, other, "async")
    insert(conn, table, 1, 5)
    insert(conn, other, 1, 5)
    conn.execute("CALL pyml.stream_work(%s)", (mine,))
    assert [view(conn, s)["lag"] for s in (mine, theirs)] == [0, 5]
    assert len(events(conn, mine)) == 5 and events(conn, theirs) == []
    conn.execute("CALL pyml.stream_work()")
    assert len(events(conn, theirs)) == 5


def test_async_rows_are_scored_by_the_model_live_when_they_are_worked(
    conn: psycopg.Connection, two_models: tuple[int, int], project: str, table: str
) -> None:
    first, second = two_models
    stream_id = stream(conn, project, table, "async")
    insert(conn, table, 1, 3)
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (second,))
    settle(conn, "async", stream_id)
    assert {r[3] for r in events(conn, stream_id)} == {second}
    assert predictions_match(conn, stream_id, table) == 3
    assert first != second


# ---------------------------------------------------------------------------
# Redeploying mid-stream
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_redeploy_mid_stream(
    conn: psycopg.Connection,
    connect: Connect,
    listener: psycopg.Connection,
    two_models: tuple[int, int],
    project: str,
    table: str,
    mode: str,
) -> None:
    """The writer's session has the first model cached; a deploy committed by another session
    switches the model of its next statement."""
    first, second = two_models
    writer = connect()
    stream_id = stream(conn, project, table, mode)
    listen(
        listener, one(conn, "SELECT channel FROM pyml.streams WHERE stream_id = %s", (stream_id,))
    )
    insert(writer, table, 1, 3)
    settle(writer, mode, stream_id)
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (second,))
    insert(writer, table, 4, 6)
    settle(writer, mode, stream_id)
    conn.execute("SELECT * FROM pyml.deploy(%s, 'rollback')", (project,))
    insert(writer, table, 7, 9)
    settle(writer, mode, stream_id)
    outbox = events(conn, stream_id)
    assert len(outbox) == 9
    assert {r[1]: r[3] for r in outbox} == {
        str(i): first if i <= 3 or i >= 7 else second for i in range(1, 10)
    }
    assert predictions_match(conn, stream_id, table) == 9
    assert [r[3] for r in read(conn, stream_id, "reader")] == [first] * 3 + [second] * 3 + [
        first
    ] * 3
    assert [p.data["model"] for p in receive(listener, events=9)] == [first, second, first]


# ---------------------------------------------------------------------------
# Consumers: stream_read, stream_ack, stream_prune
# ---------------------------------------------------------------------------


def test_read_does_not_move_the_position_and_ack_does(
    conn: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table)
    for i in range(1, 6):
        insert(conn, table, i, i)
    first_read = read(conn, stream_id, "a")
    assert [r[1] for r in first_read] == ["1", "2", "3", "4", "5"]
    assert read(conn, stream_id, "a") == first_read
    assert read(conn, stream_id, "a", max_rows=2) == first_read[:2]
    ids = [r[0] for r in first_read]
    ack(conn, stream_id, "a", ids[1])
    assert read(conn, stream_id, "a") == first_read[2:]
    assert read(conn, stream_id, "b") == first_read  # consumers are independent
    # Acking an earlier event than the last ack changes nothing.
    ack(conn, stream_id, "a", ids[3])
    ack(conn, stream_id, "a", ids[0])
    assert read(conn, stream_id, "a") == first_read[4:]
    ack(conn, stream_id, "a", ids[4])
    assert read(conn, stream_id, "a") == []
    assert (
        one(conn, "SELECT count(*) FROM pyml.stream_consumers WHERE stream_id = %s", (stream_id,))
        == 2
    )


def test_read_after_an_event(conn: psycopg.Connection, diabetes: Trained, table: str) -> None:
    stream_id = stream(conn, diabetes.project, table)
    for i in range(1, 6):
        insert(conn, table, i, i)
    everything = read(conn, stream_id, "a")
    ids = [r[0] for r in everything]
    assert read(conn, stream_id, "a", after_event=ids[1]) == everything[2:]
    assert read(conn, stream_id, "a") == everything  # after_event moves nothing
    ack(conn, stream_id, "a", ids[3])
    # Never before the ack: what was acked is not read again.
    try:
        rows = read(conn, stream_id, "a", after_event=ids[0])
    except psycopg.errors.InvalidParameterValue:
        pass
    else:
        assert rows == everything[4:]


@pytest.mark.parametrize("event", ["unknown", "of-another-stream"])
def test_ack_of_an_event_not_in_the_stream(
    conn: psycopg.Connection, diabetes: Trained, table: str, event: str
) -> None:
    stream_id = stream(conn, diabetes.project, table)
    other = make_table(conn, f"{table}_other")
    other_id = stream(conn, diabetes.project, other)
    insert(conn, table, 1, 3)
    insert(conn, other, 1, 1)
    before = read(conn, stream_id, "a")
    ack(conn, stream_id, "a", before[0][0])
    event_id = 10**12 if event == "unknown" else events(conn, other_id)[0][0]
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        ack(conn, stream_id, "a", event_id)
    assert read(conn, stream_id, "a") == before[1:]


def test_prune_deletes_what_every_consumer_acked(
    conn: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table)
    unread = make_table(conn, f"{table}_unread")
    unread_id = stream(conn, diabetes.project, unread)  # no consumer: keeps everything
    for i in range(1, 6):
        insert(conn, table, i, i)
    insert(conn, unread, 1, 4)
    everything = read(conn, stream_id, "fast")
    read(conn, stream_id, "slow")
    ids = [r[0] for r in everything]
    assert one(conn, "SELECT pyml.stream_prune(%s)", (stream_id,)) == 0  # "slow" acked nothing
    ack(conn, stream_id, "fast", ids[3])
    ack(conn, stream_id, "slow", ids[1])
    assert one(conn, "SELECT pyml.stream_prune(%s)", (stream_id,)) == 2
    assert keys(conn, stream_id) == ["3", "4", "5"]
    one(conn, "SELECT pyml.stream_prune()")  # every stream (of other tests too)
    assert keys(conn, stream_id) == ["3", "4", "5"]
    assert len(events(conn, unread_id)) == 4
    # Pruning loses nothing: each consumer goes on from where it was.
    assert read(conn, stream_id, "slow") == everything[2:]
    assert read(conn, stream_id, "fast") == everything[4:]
    ack(conn, stream_id, "slow", ids[4])  # now "fast" (at event 4) is the one behind
    assert one(conn, "SELECT pyml.stream_prune(%s)", (stream_id,)) == 2
    assert keys(conn, stream_id) == ["5"]
    assert one(conn, "SELECT pyml.stream_prune(%s)", (stream_id,)) == 0
    ack(conn, stream_id, "fast", ids[4])
    assert one(conn, "SELECT pyml.stream_prune(%s)", (stream_id,)) == 1
    assert keys(conn, stream_id) == []
    assert read(conn, stream_id, "fast") == read(conn, stream_id, "slow") == []
    assert len(events(conn, unread_id)) == 4


# ---------------------------------------------------------------------------
# Ordering: concurrent writers, late commits
# ---------------------------------------------------------------------------


def test_a_late_commit_is_delivered_not_skipped(
    conn: psycopg.Connection, connect: Connect, diabetes: Trained, table: str
) -> None:
    """A transaction that began first (older xid) but commits last: the consumer must not read
    (and ack) past its event before it commits."""
    stream_id = stream(conn, diabetes.project, table)
    slow = connect(autocommit=False)
    fast = connect()
    try:
        slow.execute("SELECT pg_current_xact_id()")  # an xid older than the fast writer's
        insert(fast, table, 1, 1)
        assert read(conn, stream_id, "c") == []  # held back: the slow one may still write
        insert(slow, table, 2, 2)
        assert read(conn, stream_id, "c") == []
        slow.commit()
    finally:
        slow.rollback()
    rows = read(conn, stream_id, "c")
    assert [r[1] for r in rows] == ["2", "1"]  # delivery order: the older transaction first
    ack(conn, stream_id, "c", rows[-1][0])
    assert read(conn, stream_id, "c") == []


def test_an_open_transaction_without_xid_holds_nothing_back(
    conn: psycopg.Connection, connect: Connect, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table)
    reader_only = connect(autocommit=False)
    try:
        reader_only.execute("SELECT count(*) FROM pyml.stream_events")
        insert(conn, table, 1, 2)
        assert [r[1] for r in read(conn, stream_id, "c")] == ["1", "2"]
    finally:
        reader_only.rollback()


@pytest.mark.slow
def test_concurrent_writers_and_a_reader_every_key_exactly_once(
    conn: psycopg.Connection, connect: Connect, diabetes: Trained, table: str
) -> None:
    """4 sessions insert 5,000 rows each, one row per transaction, while one consumer reads
    and acks: it sees every key exactly once, each writer's rows in its commit order."""
    writers, rows_each = 4, 5_000
    stream_id = stream(conn, diabetes.project, table)
    sessions = [connect() for _ in range(writers)]
    reader = connect()
    reading = threading.Event()  # the consumer has read events while the writers were busy
    statement = sql.SQL("INSERT INTO {} (id, {}) VALUES (%s, {})").format(
        sql.Identifier(table),
        FEATURE_COLUMNS,
        sql.SQL(", ").join(sql.Placeholder() * len(FEATURES)),
    )

    def write(w: int) -> None:
        session = sessions[w]
        session.execute("SET synchronous_commit = off")
        for n in range(rows_each):
            if n == rows_each // 2 and not reading.wait(timeout=120):
                raise AssertionError("the consumer read nothing while the writers ran")
            i = w * rows_each + n + 1
            session.execute(statement, (i, *features(i)))

    seen: list[str] = []
    seen_ids: set[int] = set()
    deadline = time.monotonic() + 300
    with ThreadPoolExecutor(max_workers=writers) as pool:
        futures = [pool.submit(write, w) for w in range(writers)]
        try:
            while time.monotonic() < deadline:
                finished = all(f.done() for f in futures)  # before the read: then none is left
                rows = read(reader, stream_id, "c", 500)
                if rows:
                    assert seen_ids.isdisjoint(r[0] for r in rows), "an event was read twice"
                    seen_ids.update(r[0] for r in rows)
                    seen.extend(r[1] for r in rows)
                    ack(reader, stream_id, "c", rows[-1][0])
                    reading.set()
                elif finished:
                    break
        finally:
            reading.set()  # never leave a writer waiting
        for f in futures:
            f.result()
    expected = [str(i) for i in range(1, writers * rows_each + 1)]
    assert len(seen) == len(set(seen)), "a key was delivered twice"
    assert sorted(seen, key=int) == expected
    for w in range(writers):  # each writer's transactions arrive in its commit order
        mine = [int(k) for k in seen if (int(k) - 1) // rows_each == w]
        assert mine == sorted(mine)
    count, distinct = conn.execute(
        "SELECT count(*), count(DISTINCT key) FROM pyml.stream_events WHERE stream_id = %s",
        (stream_id,),
    ).fetchone() or (0, 0)
    assert (count, distinct) == (writers * rows_each, writers * rows_each)
    assert predictions_match(conn, stream_id, table, every=1000) == 20


# ---------------------------------------------------------------------------
# Stopping a stream: unstream, DROP TABLE; privileges of writers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_unstream_drops_triggers_events_queue_and_consumers(
    url: str, conn: psycopg.Connection, diabetes: Trained, table: str, mode: str
) -> None:
    stream_id = stream(conn, diabetes.project, table, mode)
    insert(conn, table, 1, 3)
    settle(conn, mode, stream_id)
    insert(conn, table, 4, 5)  # async: still queued
    read(conn, stream_id, "reader")
    assert triggers(conn, table) > 0
    dropped = len(events(conn, stream_id))
    assert dropped == (5 if mode == "sync" else 3)
    with psycopg.connect(url, autocommit=True) as session:
        notices: list[str] = []
        session.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        session.execute("SELECT pyml.unstream(%s, %s)", (diabetes.project, table))
    assert any(str(dropped) in n for n in notices), notices  # the count of events dropped
    assert triggers(conn, table) == 0
    assert view(conn, stream_id) is None
    for relation in ("stream_events", "stream_queue", "stream_consumers", "stream_definitions"):
        column = "id" if relation == "stream_definitions" else "stream_id"
        assert (
            one(
                conn,
                sql.SQL("SELECT count(*) FROM pyml.{} WHERE {} = %s").format(
                    sql.Identifier(relation), sql.Identifier(column)
                ),
                (stream_id,),
            )
            == 0
        ), relation
    total = one(conn, "SELECT count(*) FROM pyml.stream_events")
    queued = one(conn, "SELECT count(*) FROM pyml.stream_queue")
    insert(conn, table, 6, 8)
    conn.execute("CALL pyml.stream_work()")
    assert one(conn, "SELECT count(*) FROM pyml.stream_events") == total
    assert one(conn, "SELECT count(*) FROM pyml.stream_queue") == queued
    # ... and the relation can be streamed again, from scratch.
    again = stream(conn, diabetes.project, table, mode)
    insert(conn, table, 9, 9)
    settle(conn, mode, again)
    assert keys(conn, again) == ["9"]


@pytest.mark.parametrize("mode", MODES)
def test_drop_table_removes_its_stream(
    conn: psycopg.Connection, diabetes: Trained, table: str, mode: str
) -> None:
    stream_id = stream(conn, diabetes.project, table, mode)
    insert(conn, table, 1, 3)
    read(conn, stream_id, "reader")
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    assert (
        one(conn, "SELECT count(*) FROM pyml.stream_definitions WHERE id = %s", (stream_id,)) == 0
    )
    assert view(conn, stream_id) is None
    for relation in ("stream_events", "stream_queue", "stream_consumers"):
        assert (
            one(
                conn,
                sql.SQL("SELECT count(*) FROM pyml.{} WHERE stream_id = %s").format(
                    sql.Identifier(relation)
                ),
                (stream_id,),
            )
            == 0
        ), relation
    # A new table of the same name is not streamed, and can be.
    make_table(conn, table)
    insert(conn, table, 1, 1)
    assert (
        one(conn, "SELECT count(*) FROM pyml.stream_queue WHERE stream_id = %s", (stream_id,)) == 0
    )
    again = stream(conn, diabetes.project, table, mode)
    insert(conn, table, 2, 2)
    settle(conn, mode, again)
    assert keys(conn, again) == ["2"]


def test_drop_table_in_a_rolled_back_transaction_keeps_the_stream(
    conn: psycopg.Connection, connect: Connect, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table)
    session = connect(autocommit=False)
    session.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    session.rollback()
    assert view(conn, stream_id) is not None
    insert(conn, table, 1, 1)
    assert keys(conn, stream_id) == ["1"]


@pytest.mark.parametrize("mode", MODES)
def test_a_writer_needs_no_privilege_on_pyml(
    conn: psycopg.Connection, plain_url: str, diabetes: Trained, table: str, mode: str
) -> None:
    stream_id = stream(conn, diabetes.project, table, mode)
    conn.execute(
        sql.SQL("GRANT INSERT, UPDATE, SELECT ON {} TO pyml_stream_plain").format(
            sql.Identifier(table)
        )
    )
    with psycopg.connect(plain_url, autocommit=True) as plain:
        insert(plain, table, 1, 3)
        plain.execute(
            sql.SQL("UPDATE {} SET bmi = bmi + 0.01 WHERE id = 1").format(sql.Identifier(table))
        )
    settle(conn, mode, stream_id)
    assert sorted(keys(conn, stream_id)) == ["1", "1", "2", "3"]


def test_a_role_without_privilege_on_pyml_can_drop_its_tables(plain_url: str) -> None:
    """The event trigger that forgets dropped sources must not break DROP TABLE for roles that
    cannot write pyml's tables."""
    with psycopg.connect(plain_url, autocommit=True) as plain:
        plain.execute("CREATE TABLE plain_scratch (a int)")
        plain.execute("DROP TABLE plain_scratch")
        assert plain.execute("SELECT to_regclass('plain_scratch')").fetchone() == (None,)


# ---------------------------------------------------------------------------
# Never a silent drop, never one stream blocking the others
# ---------------------------------------------------------------------------


def partitioned(conn: psycopg.Connection, table: str) -> str:
    """``<table>_p``, partitioned by range of id like ``table``, with partition ``_1`` for
    ids 0 to 99."""
    parent = f"{table}_p"
    conn.execute(
        sql.SQL("CREATE TABLE {} (LIKE {}) PARTITION BY RANGE (id)").format(
            sql.Identifier(parent), sql.Identifier(table)
        )
    )
    conn.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM (0) TO (100)").format(
            sql.Identifier(f"{parent}_1"), sql.Identifier(parent)
        )
    )
    return parent


def test_rows_inserted_into_a_partition_of_a_streamed_table(
    conn: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    """A partitioned source: rows inserted through a partition are scored too, including a
    partition created or attached after the stream; none is silently left out."""
    parent = partitioned(conn, table)
    stream_id = stream(conn, diabetes.project, parent)
    insert(conn, parent, 1, 2)
    insert(conn, f"{parent}_1", 3, 4)
    conn.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM (100) TO (200)").format(
            sql.Identifier(f"{parent}_2"), sql.Identifier(parent)
        )
    )
    insert(conn, f"{parent}_2", 101, 102)
    conn.execute(
        sql.SQL("CREATE TABLE {} (LIKE {})").format(
            sql.Identifier(f"{parent}_3"), sql.Identifier(table)
        )
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM (200) TO (300)").format(
            sql.Identifier(parent), sql.Identifier(f"{parent}_3")
        )
    )
    insert(conn, f"{parent}_3", 201, 201)
    insert(conn, parent, 202, 202)
    assert sorted(keys(conn, stream_id), key=int) == [
        "1",
        "2",
        "3",
        "4",
        "101",
        "102",
        "201",
        "202",
    ]
    conn.execute(sql.SQL("SELECT pyml.unstream(%s, %s)"), (diabetes.project, parent))
    (left,) = conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE %s", (f"pyml_stream_{stream_id}_%",)
    ).fetchone()
    assert left == 0


def test_a_broken_async_stream_does_not_hold_up_the_others(
    conn: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    """A source that lost a feature column: its rows cannot be scored; the other streams are
    still scored by the same CALL, and the broken stream's rows are not lost."""
    healthy = make_table(conn, f"{table}_ok")
    broken_id = stream(conn, diabetes.project, table, "async")
    healthy_id = stream(conn, diabetes.project, healthy, "async")
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME COLUMN bmi TO bmi_renamed").format(sql.Identifier(table))
    )
    insert(conn, healthy, 1, 3)
    conn.execute(sql.SQL("INSERT INTO {} (id) VALUES (1), (2)").format(sql.Identifier(table)))
    conn.execute("CALL pyml.stream_work()")
    assert sorted(keys(conn, healthy_id)) == ["1", "2", "3"]
    broken = view(conn, broken_id)
    assert broken is not None
    failed = [e for e in events(conn, broken_id) if e[4] is not None]
    assert broken["lag"] + len(failed) == 2  # still queued, or events with their error


# ---------------------------------------------------------------------------
# Single rows read the quick way
# ---------------------------------------------------------------------------


MIXED = {"r": "real", "d": "double precision", "i": "integer", "s": "smallint", "n": "numeric"}
# the features of row i, by column of MIXED
MIXED_VALUES = sql.SQL(
    "(i * 0.37)::real, i * 0.001 + 1e-9, mod(i, 17), mod(i, 5)::smallint,"
    " round(i * 0.0123, 4)::numeric"
)


def test_single_rows_of_every_numeric_type_score_like_a_batch(
    conn: psycopg.Connection, project: str
) -> None:
    """A single-row statement reads its row's text (the quick way for plain numbers), a
    statement of more than 64 rows reads binary arrays: the same predictions, and the same
    errors for NaN, NULL and Infinity, whatever the numeric types of the features."""
    columns = sql.SQL(", ".join(f"{name} {kind}" for name, kind in MIXED.items()))
    conn.execute(sql.SQL("CREATE TABLE mixed_train ({}, y float8)").format(columns))
    conn.execute(
        sql.SQL(
            "INSERT INTO mixed_train SELECT {}, i * 0.01 + mod(i, 17) * 0.5"
            " FROM generate_series(1, 200) AS i"
        ).format(MIXED_VALUES)
    )
    model_id = train(conn, project, "mixed_train", "y")
    conn.execute(sql.SQL("CREATE TABLE mixed_source (id bigint PRIMARY KEY, {})").format(columns))
    stream_id = stream(conn, project, "mixed_source")
    for i in range(1, 6):  # one row a statement
        conn.execute(
            sql.SQL(
                "INSERT INTO mixed_source SELECT i, {} FROM (SELECT %s::int8 AS i) AS x"
            ).format(MIXED_VALUES),
            (i,),
        )
    conn.execute(  # 70 rows in one statement
        sql.SQL("INSERT INTO mixed_source SELECT i, {} FROM generate_series(6, 75) AS i").format(
            MIXED_VALUES
        )
    )
    rows = conn.execute(
        "SELECT e.key, e.prediction, pyml.predict(%s::bigint, ARRAY[r, d, i, s, n]::float8[])"
        " FROM pyml.stream_events e JOIN mixed_source t ON t.id::text = e.key"
        " WHERE e.stream_id = %s ORDER BY t.id",
        (model_id, stream_id),
    ).fetchall()
    assert [r[0] for r in rows] == [str(i) for i in range(1, 76)]
    for key, prediction, expected in rows:
        assert prediction == pytest.approx(expected, rel=1e-5, abs=1e-5), key
    cases = [
        ("'NaN'::float8", "d", psycopg.errors.NullValueNotAllowed),
        ("'NaN'::numeric", "n", psycopg.errors.NullValueNotAllowed),
        ("NULL", "i", psycopg.errors.NullValueNotAllowed),
        ("'-Infinity'::real", "r", psycopg.errors.InvalidParameterValue),
    ]
    for value, column, error in cases:
        messages = []
        row = sql.SQL(", ").join(
            sql.SQL(value) if name == column else sql.Identifier("x", name) for name in MIXED
        )
        for count in (1, 70):  # the quick way and the batch say the same
            with pytest.raises(error) as caught:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO mixed_source SELECT 1000 + g, {}"
                        " FROM (SELECT {} FROM (SELECT 3 AS i) AS v) AS x({}),"
                        " generate_series(1, %s) AS g"
                    ).format(row, MIXED_VALUES, sql.SQL(", ".join(MIXED))),
                    (count,),
                )
            diag = caught.value.diag
            messages.append((diag.message_primary, diag.message_detail))
        assert messages[0] == messages[1], value
    assert len(events(conn, stream_id)) == 75


# ---------------------------------------------------------------------------
# Single-row INSERTs scored in C (src/stream.c): a LightGBM model through pyml's tree kernel
# ---------------------------------------------------------------------------

LIGHTGBM = {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 5}
IN_C = "scored a row in C"
QUEUED_IN_C = "queued a row in C"


def single_rows(
    conn: psycopg.Connection, table: str, first: int, last: int, done: str = IN_C
) -> int:
    """Insert rows ``first`` to ``last`` one statement each; how many the trigger scored
    (or queued) in C: its DEBUG2 messages."""
    seen: list[str] = []

    def note(diagnostic: psycopg.errors.Diagnostic) -> None:
        seen.append(diagnostic.message_primary or "")

    conn.execute("SET client_min_messages = debug2")
    conn.add_notice_handler(note)
    try:
        for i in range(first, last + 1):
            insert(conn, table, i, i)
    finally:
        conn.remove_notice_handler(note)
        conn.execute("RESET client_min_messages")
    return sum(done in message for message in seen)


def exact_predictions(
    conn: psycopg.Connection, stream_id: int, table: str, columns: tuple[str, ...] = FEATURES
) -> list[tuple[str, int]]:
    """Each event's prediction equals pyml.predict's (as real) of its row, by column name;
    (key, model id) of the events, in delivery order."""
    rows = conn.execute(
        sql.SQL(
            "SELECT e.key, e.model_id, e.prediction,"
            " pyml.predict(e.model_id, ARRAY[{}]::float8[])::real"
            " FROM pyml.stream_events e JOIN {} t ON t.id::text = e.key"
            " WHERE e.stream_id = %s ORDER BY e.event_id"
        ).format(
            sql.SQL(", ").join(sql.Identifier("t", f) for f in columns), sql.Identifier(table)
        ),
        (stream_id,),
    ).fetchall()
    for key, _, prediction, expected in rows:
        assert prediction == expected, key  # to the bit: the same kernel, the same rounding
    return [(key, model_id) for key, model_id, _, _ in rows]


@pytest.fixture(scope="module")
def boosted(conn: psycopg.Connection) -> Trained:
    """A LightGBM regression of diabetes, deployed: pyml's kernel serves it."""
    project = "stream_boosted"
    return Trained(project, train(conn, project, algorithm="lightgbm", hyperparams=LIGHTGBM))


def test_single_row_inserts_are_scored_in_c_like_predict(
    conn: psycopg.Connection, boosted: Trained, table: str, listener: psycopg.Connection
) -> None:
    stream_id = stream(conn, boosted.project, table, channel="fast_events")
    listen(listener, "fast_events")
    assert single_rows(conn, table, 1, 30) >= 20  # the first (and one a second) in Python
    assert exact_predictions(conn, stream_id, table) == [
        (str(i), boosted.model_id) for i in range(1, 31)
    ]
    payloads = receive(listener, notifications=30)
    assert [p.data["events"][0][1] for p in payloads] == [str(i) for i in range(1, 31)]
    assert all(p.data["count"] == 1 and p.data["model"] == boosted.model_id for p in payloads)


def test_rolled_back_single_row_insert_in_c_writes_nothing(
    conn: psycopg.Connection, boosted: Trained, table: str
) -> None:
    stream_id = stream(conn, boosted.project, table)
    assert single_rows(conn, table, 1, 3) >= 1
    with pytest.raises(psycopg.errors.UniqueViolation):
        with conn.transaction():
            assert single_rows(conn, table, 4, 4) == 1
            insert(conn, table, 4, 4)  # the same key again: the transaction fails
    assert keys(conn, stream_id) == ["1", "2", "3"]


def test_a_deploy_in_another_session_is_scored_by_the_next_row(
    conn: psycopg.Connection, connect: Connect, project: str, table: str
) -> None:
    first = train(conn, project, algorithm="lightgbm", hyperparams=LIGHTGBM)
    second = train(
        conn,
        project,
        algorithm="lightgbm",
        hyperparams={**LIGHTGBM, "n_estimators": 5},
        automatic_deploy=False,
    )
    stream_id = stream(conn, project, table)
    assert single_rows(conn, table, 1, 3) >= 1
    other = connect()
    other.execute("SELECT pyml.deploy(%s::bigint)", (second,))
    assert single_rows(conn, table, 4, 6) >= 1  # described again for the new model
    conn.execute("SELECT pyml.deploy(%s::bigint)", (first,))  # in this session this time
    single_rows(conn, table, 7, 8)
    models = [model for _, model in exact_predictions(conn, stream_id, table)]
    assert models == [first] * 3 + [second] * 3 + [first] * 2


def test_renamed_columns_are_read_by_their_new_names(
    conn: psycopg.Connection, boosted: Trained, table: str
) -> None:
    stream_id = stream(conn, boosted.project, table)
    assert single_rows(conn, table, 1, 3) >= 1
    # age and sex swap names: the model's "age" is now the column that was sex
    for old, new in (("age", "tmp"), ("sex", "age"), ("tmp", "sex")):
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME {} TO {}").format(
                sql.Identifier(table), sql.Identifier(old), sql.Identifier(new)
            )
        )
    assert single_rows(conn, table, 4, 8) >= 1
    assert len(exact_predictions(conn, stream_id, table)) == 8
    conn.execute(
        sql.SQL("ALTER TABLE {} ALTER COLUMN bmi TYPE numeric").format(sql.Identifier(table))
    )
    assert single_rows(conn, table, 9, 10) == 0  # numeric: Python reads it
    assert len(exact_predictions(conn, stream_id, table)) == 10


def test_rows_c_does_not_score_go_the_python_way(
    conn: psycopg.Connection, boosted: Trained, table: str
) -> None:
    stream_id = stream(conn, boosted.project, table)
    assert single_rows(conn, table, 1, 2) >= 1
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        conn.execute(
            sql.SQL("INSERT INTO {} (id, age) VALUES (3, NULL)").format(sql.Identifier(table))
        )
    insert(conn, table, 5, 6)  # two rows: one batch, in Python
    assert single_rows(conn, table, 7, 7) == 1
    assert [k for k, _ in exact_predictions(conn, stream_id, table)] == ["1", "2", "5", "6", "7"]


@pytest.mark.parametrize(
    ("relation", "label", "classes"),
    [("pyml.breast_cancer", "malignant", {0.0, 1.0}), ("pyml.iris", "target", {0.0, 1.0, 2.0})],
)
def test_single_rows_of_a_classifier_stream_its_labels_from_c(
    conn: psycopg.Connection, relation: str, label: str, classes: set[float]
) -> None:
    project = f"stream_fast_{relation.split('.')[1]}"
    train(conn, project, relation, label, "classification", "lightgbm", LIGHTGBM)
    table = f"fast_{relation.split('.')[1]}"
    conn.execute(
        sql.SQL("CREATE TABLE {} AS SELECT 0::bigint AS id, b.* FROM {} b WITH NO DATA").format(
            sql.Identifier(table), sql.Identifier(*relation.split("."))
        )
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
            sql.Identifier(table), sql.Identifier(label)
        )
    )
    columns = tuple(
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 1"
            " AND NOT attisdropped ORDER BY attnum",
            (table,),
        ).fetchall()
    )
    stream_id = stream(conn, project, table)
    seen: list[str] = []
    conn.add_notice_handler(lambda d: seen.append(d.message_primary or ""))
    conn.execute("SET client_min_messages = debug2")
    try:
        for n in range(1, 41):
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} SELECT r.* FROM (SELECT b FROM {} b OFFSET %s LIMIT 1) s,"
                    " jsonb_populate_record(NULL::{},"
                    " to_jsonb(s.b) || jsonb_build_object('id', %s)) r"
                ).format(
                    sql.Identifier(table),
                    sql.Identifier(*relation.split(".")),
                    sql.Identifier(table),
                ),
                (n * 3, n),
            )
    finally:
        conn.execute("RESET client_min_messages")
    assert sum(IN_C in m for m in seen) >= 20
    events = exact_predictions(conn, stream_id, table, columns)
    assert len(events) == 40
    labels = {
        r[0]
        for r in conn.execute(
            "SELECT prediction FROM pyml.stream_events WHERE stream_id = %s", (stream_id,)
        ).fetchall()
    }
    assert labels == classes


def test_a_writer_without_privileges_is_scored_in_c(
    conn: psycopg.Connection, plain_url: str, boosted: Trained, table: str
) -> None:
    stream_id = stream(conn, boosted.project, table)
    conn.execute(
        sql.SQL("GRANT INSERT, SELECT ON {} TO pyml_stream_plain").format(sql.Identifier(table))
    )
    with psycopg.connect(plain_url, autocommit=True) as plain:
        assert single_rows(plain, table, 1, 10) >= 5
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            plain.execute("INSERT INTO pyml.stream_events (stream_id) VALUES (%s)", (stream_id,))
    assert len(exact_predictions(conn, stream_id, table)) == 10


def queued_as_its_text(conn: psycopg.Connection, table: str, stream_id: int) -> int:
    """Each queued row of the stream is the row's text, as the Python path queues it
    ((r.*)::text, no old row); how many there are."""
    rows = conn.execute(
        sql.SQL(
            "SELECT q.new_row, (t.*)::text, q.old_row FROM pyml.stream_queue q"
            " JOIN {} t ON q.new_row LIKE '(' || t.id || ',%%' WHERE q.stream_id = %s"
        ).format(sql.Identifier(table)),
        (stream_id,),
    ).fetchall()
    assert rows
    for queued, text, old in rows:
        assert queued == text and old is None
    return len(rows)


def test_single_row_inserts_into_an_async_stream_are_queued_in_c(
    conn: psycopg.Connection, diabetes: Trained, table: str
) -> None:
    stream_id = stream(conn, diabetes.project, table, "async")
    conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN note").format(sql.Identifier(table)))
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN note text, ADD COLUMN at date").format(
            sql.Identifier(table)
        )
    )
    assert single_rows(conn, table, 1, 10, QUEUED_IN_C) >= 5
    assert queued_as_its_text(conn, table, stream_id) == 10
    # text that needs quoting, NULL, and a column added after the description
    settle(conn, "async", stream_id)
    conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN late int").format(sql.Identifier(table)))
    conn.execute("SET client_min_messages = debug2")
    seen: list[str] = []
    conn.add_notice_handler(lambda d: seen.append(d.message_primary or ""))
    for i, note in ((11, 'a "b", (c)\\ d'), (12, None), (13, "")):
        conn.execute(
            sql.SQL("INSERT INTO {} (id, {}, note, at, late) VALUES (%s, {}, %s, %s, %s)").format(
                sql.Identifier(table),
                FEATURE_COLUMNS,
                sql.SQL(", ").join(sql.Literal(v) for v in features(i)),
            ),
            (i, note, "2026-12-06", i),
        )
    conn.execute("RESET client_min_messages")
    assert sum(QUEUED_IN_C in m for m in seen) == 3
    assert queued_as_its_text(conn, table, stream_id) == 3
    settle(conn, "async", stream_id)
    assert sorted(keys(conn, stream_id), key=int) == [str(i) for i in range(1, 14)]
    assert predictions_match(conn, stream_id, table) == 13


def test_single_rows_through_a_partition_with_its_own_column_order(
    conn: psycopg.Connection, boosted: Trained, table: str
) -> None:
    """A partition whose columns are in another order (attached after the stream): each
    trigger reads its own relation's columns, in C as in Python."""
    parent = partitioned(conn, table)
    stream_id = stream(conn, boosted.project, parent)
    reversed_columns = sql.SQL(", ").join(
        sql.SQL("{} real").format(sql.Identifier(f)) for f in reversed(FEATURES)
    )
    conn.execute(
        sql.SQL("CREATE TABLE {} (dropped int, note text, {}, id bigint NOT NULL)").format(
            sql.Identifier(f"{parent}_2"), reversed_columns
        )
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} DROP COLUMN dropped").format(sql.Identifier(f"{parent}_2"))
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM (100) TO (200)").format(
            sql.Identifier(parent), sql.Identifier(f"{parent}_2")
        )
    )
    in_c = single_rows(conn, parent, 1, 6)
    in_c += single_rows(conn, f"{parent}_1", 7, 12)
    in_c += single_rows(conn, f"{parent}_2", 101, 106)
    in_c += single_rows(conn, parent, 107, 112)  # routed to the reordered partition
    assert in_c >= 16
    assert len(exact_predictions(conn, stream_id, parent)) == 24


def test_a_forged_trigger_is_refused_after_the_real_one_went_to_c(
    conn: psycopg.Connection, boosted: Trained, table: str
) -> None:
    """A trigger made by hand with a stream's arguments: C has no description of it, and
    the Python way refuses it, however often the stream's own trigger was scored in C."""
    stream_id = stream(conn, boosted.project, table, channel="forged_events")
    assert single_rows(conn, table, 1, 5) >= 3
    forged = make_table(conn, f"{table}_forged")
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER forged AFTER INSERT ON {} REFERENCING NEW TABLE AS pyml_new"
            " FOR EACH STATEMENT EXECUTE FUNCTION pyml._stream_score({}, {}, 'id', 'forged_events')"
        ).format(sql.Identifier(forged), sql.Literal(str(stream_id)), sql.Literal(boosted.project))
    )
    for i in (6, 7):
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="not the source"):
            insert(conn, forged, i, i)
    assert single_rows(conn, table, 8, 8) == 1
    assert [k for k, _ in exact_predictions(conn, stream_id, table)] == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "8",
    ]
