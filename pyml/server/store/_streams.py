"""Streams: their definitions, triggers, queue and outbox (part of the store: all SQL).

Names in the generated statements come from the catalog, quoted by PostgreSQL
(``quote_ident``, ``quote_literal``, ``format``); values are bound parameters.
Definitions, queue and outbox are registry tables (``db.registry``); a statement's rows are
read by the trigger, as the role whose statement fired it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from pyml.errors import InvalidParameterValue, UndefinedObject
from pyml.server._db import Db
from pyml.server.store._relations import Column, _as_float8
from pyml.server.store._rows import StatementChunk, StreamEvent


class Stream(NamedTuple):
    id: int
    project_id: int
    project: str
    source: str  # schema-qualified and quoted (regclass output with pyml's search_path)
    source_oid: int
    key_column: str
    mode: str
    channel: str


_STREAM = (
    "SELECT s.id, s.project_id, p.name AS project, s.source_relation::text AS source,"
    " s.source_relation::oid::int8 AS source_oid, s.key_column, s.mode, s.channel"
    " FROM pyml.stream_definitions s"
    " JOIN pyml.projects p ON p.id = s.project_id"
)


def get_stream(db: Db, stream_id: int) -> Stream:
    rows = db.registry.query(_STREAM + " WHERE s.id = $1", [stream_id], ["int8"])
    if not rows:
        raise UndefinedObject(f"stream {stream_id} does not exist")
    return Stream(**rows[0])


def find_stream(db: Db, project_id: int, relation_oid: int) -> Stream | None:
    rows = db.registry.query(
        _STREAM + " WHERE s.project_id = $1 AND s.source_relation = $2::oid",
        [project_id, relation_oid],
        ["int8", "int8"],
    )
    return Stream(**rows[0]) if rows else None


def list_streams(db: Db, stream_id: int | None = None, mode: str | None = None) -> list[Stream]:
    rows = db.registry.query(
        _STREAM + " WHERE ($1::int8 IS NULL OR s.id = $1) AND ($2::text IS NULL OR s.mode = $2)"
        " ORDER BY s.id",
        [stream_id, mode],
        ["int8", "text"],
    )
    return [Stream(**r) for r in rows]


def project_has_streams(db: Db, project_id: int) -> list[str]:
    rows = db.registry.query(
        "SELECT source_relation::text AS source FROM pyml.stream_definitions"
        " WHERE project_id = $1 ORDER BY id",
        [project_id],
        ["int8"],
    )
    return [r["source"] for r in rows]


def save_stream(
    db: Db, project_id: int, relation_oid: int, key_column: str, mode: str, channel: str | None
) -> int:
    """Create the stream, or update the one on (project, relation); return its id."""
    return int(
        db.registry.write(
            "INSERT INTO pyml.stream_definitions (project_id, source_relation, key_column, mode,"
            " channel, created_by) VALUES ($1, $2::oid, $3, $4, coalesce($5, 'pyml_' || $1), $6)"
            " ON CONFLICT (project_id, source_relation) DO UPDATE"
            " SET key_column = EXCLUDED.key_column,"
            " mode = EXCLUDED.mode, channel = EXCLUDED.channel RETURNING id",
            [project_id, relation_oid, key_column, mode, channel, db.caller().name],
            ["int8", "int8", "text", "text", "text", "text"],
        )[0]["id"]
    )


def delete_stream(db: Db, stream: Stream) -> dict[str, int]:
    """Drop the stream's triggers and rows; return how many rows of each kind went."""
    drop_triggers(db, stream)
    counts = {
        "events": db.registry.execute(
            "DELETE FROM pyml.stream_events WHERE stream_id = $1", [stream.id], ["int8"]
        ),
        "queued": db.registry.execute(
            "DELETE FROM pyml.stream_queue WHERE stream_id = $1", [stream.id], ["int8"]
        ),
    }
    db.registry.execute("DELETE FROM pyml.stream_definitions WHERE id = $1", [stream.id], ["int8"])
    return counts


# ---------------------------------------------------------------------------
# Triggers
# ---------------------------------------------------------------------------


def create_triggers(db: Db, stream: Stream) -> None:
    """(Re)create the statement-level triggers of ``stream`` on its relation and partitions,
    as the caller (who must have the TRIGGER privilege on the relation)."""
    db.query("SELECT pyml._stream_install($1)", [stream.id], ["int8"])


def drop_triggers(db: Db, stream: Stream) -> None:
    """Drop the stream's own triggers (as the extension owner: the caller, an admin of the
    project, need not own the relation)."""
    db.registry.write("SELECT pyml._stream_uninstall($1)", [stream.id], ["int8"])


def relation_privilege(db: Db, relation_oid: int, privilege: str) -> bool:
    """Whether the current role has ``privilege`` on a relation (asked as the caller)."""
    return bool(
        db.query(
            "SELECT pg_catalog.has_table_privilege($1::oid, $2) AS ok",
            [relation_oid, privilege],
            ["int8", "text"],
        )[0]["ok"]
    )


# ---------------------------------------------------------------------------
# Scoring: reading the rows of a statement or of the queue
# ---------------------------------------------------------------------------


def _features(features: Sequence[Column], alias: str) -> str:
    parts = [_as_float8(c._replace(ident=f"{alias}.{c.ident}")) for c in features]
    return (
        "pg_catalog.array_send(pg_catalog.array_agg(ARRAY[]::float8[] || "
        + " || ".join(parts)
        + "))"
    )


def statement_query(key: Column, features: Sequence[Column], update: bool, rows: int) -> str:
    """Read ``rows`` rows of a trigger's transition table, from offset $1: how many were
    taken, how many are returned, their keys (text) and their features (``array_send`` of
    float8, NULL as NaN). For an UPDATE, only rows whose features changed (by key)."""
    idents = ", ".join(f"n.{c.ident}" for c in features)
    changed = ""
    if update:
        old = ", ".join(f"o.{c.ident}" for c in features)
        changed = (
            f" WHERE NOT EXISTS (SELECT FROM pyml_old o WHERE o.{key.ident} = n.{key.ident}"  # noqa: S608
            f" AND ROW({old}) IS NOT DISTINCT FROM ROW({idents}))"
        )
    chunk = f"LIMIT {int(rows)} OFFSET $1"
    # Identifiers were quoted by PostgreSQL (Relation.columns); no value is formatted in.
    taken = (
        f"(SELECT pg_catalog.count(*) FROM (SELECT FROM pyml_new {chunk}) AS c)"  # noqa: S608
        if update
        else "pg_catalog.count(*)"
    )
    return (
        f"SELECT {taken} AS taken, pg_catalog.count(*) AS n,"  # noqa: S608
        f" pg_catalog.array_agg(n.{key.ident}::text) AS keys, {_features(features, 'n')} AS x"
        f" FROM (SELECT * FROM pyml_new {chunk}) AS n" + changed
    )


PLAIN_NUMBERS = frozenset(("real", "double precision", "smallint", "integer", "bigint"))


def is_plain_number(column: Column) -> bool:
    """A scalar of a built-in numeric type: its ``::float8`` is what its text gives."""
    return column.type in PLAIN_NUMBERS or (
        column.type.startswith("numeric") and column.category == "N"
    )


# The type oids of the plain numbers src/stream.c reads from a row itself (real, double
# precision, smallint, integer, bigint).
FAST_NUMBER_TYPES = frozenset((700, 701, 21, 23, 20))


def column_numbers(db: Db, relation_oid: int, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """The attribute number and type oid of each of ``names`` that is a column of the
    relation (read as the caller: pg_attribute is readable by all)."""
    rows = db.query(
        "SELECT a.attname, a.attnum, a.atttypid::pg_catalog.int8 AS typ"
        " FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attname = ANY($2)"
        " AND a.attnum > 0 AND NOT a.attisdropped",
        [relation_oid, list(names)],
        ["oid", "text[]"],
    )
    return {r["attname"]: (int(r["attnum"]), int(r["typ"])) for r in rows}


def small_insert_query(key: Column, features: Sequence[Column], rows: int) -> str:
    """Read up to ``rows`` rows of an INSERT's transition table: the key as its type's output
    (what the row's text holds; NULL stays NULL) and the features (plain numbers, see
    :func:`is_plain_number`) as one float8 array per row, NULL as NULL."""
    values = ", ".join(f"n.{c.ident}::pg_catalog.float8" for c in features)
    # Identifiers were quoted by PostgreSQL (Relation.columns); no value is formatted in.
    return (
        f"SELECT CASE WHEN n.{key.ident} IS NOT NULL"  # noqa: S608
        f" THEN pg_catalog.format('%s', n.{key.ident}) END AS k,"
        f" ARRAY[{values}] AS x FROM pyml_new n LIMIT {int(rows)}"
    )


def enqueue(
    db: Db, stream_id: int, new_rows: Sequence[str], old_rows: Sequence[str | None]
) -> None:
    """Queue rows (their text) for pyml.stream_work and wake the worker (NOTIFY pyml_work)."""
    db.registry.write(
        "WITH q AS (INSERT INTO pyml.stream_queue (stream_id, new_row, old_row)"
        " SELECT $1, u.n, u.o FROM unnest($2::text[], $3::text[]) AS u(n, o) RETURNING 1)"
        " SELECT pg_catalog.pg_notify('pyml_work', $1::text) FROM (SELECT FROM q LIMIT 1) AS x",
        [stream_id, list(new_rows), list(old_rows)],
        ["int8", "text[]", "text[]"],
    )


# One row (a single-row INSERT): no arrays. src/stream.c runs it too ($1 the stream id, $2
# the row's text).
_QUEUE_ONE = (
    "WITH q AS (INSERT INTO pyml.stream_queue (stream_id, new_row, old_row)"
    " VALUES ($1, $2, NULL) RETURNING 1)"
    " SELECT pg_catalog.pg_notify('pyml_work', $1::text) FROM q"
)


def queue_statement() -> str:
    """The statement that queues one inserted row and wakes the worker (for src/stream.c)."""
    return _QUEUE_ONE


def take_queued(db: Db, stream_id: int, limit: int) -> list[tuple[str, str | None]]:
    """Take up to ``limit`` queued rows of the stream off the queue, oldest first (SKIP
    LOCKED: workers can share a stream): (new row text, old row text or None)."""
    rows = db.registry.write(
        "WITH q AS (DELETE FROM pyml.stream_queue WHERE id IN ("
        " SELECT id FROM pyml.stream_queue WHERE stream_id = $1 ORDER BY id LIMIT $2"
        " FOR UPDATE SKIP LOCKED) RETURNING id, new_row, old_row)"
        " SELECT new_row, old_row FROM q ORDER BY id",
        [stream_id, limit],
        ["int8", "int8"],
    )
    return [(r["new_row"], r["old_row"]) for r in rows]


# ---------------------------------------------------------------------------
# The outbox
# ---------------------------------------------------------------------------

_PUBLISH = (
    "WITH e AS (INSERT INTO pyml.stream_events (stream_id, key, prediction, model_id, error)"
    " SELECT $1, u.k, u.p, $4, u.e FROM unnest($2::text[], $3::float4[], $5::text[]) AS u(k, p, e)"
    " RETURNING event_id, key, prediction)"
    " SELECT pg_catalog.pg_notify($6, pg_catalog.json_build_object("
    "'stream', $1, 'model', $4, 'first', pg_catalog.min(e.event_id),"
    " 'last', pg_catalog.max(e.event_id), 'count', pg_catalog.count(*), 'events', CASE WHEN $7"
    " THEN pg_catalog.json_agg(pg_catalog.json_build_array(e.event_id, e.key, e.prediction)"
    " ORDER BY e.event_id) END)::text) FROM e"
)
# One scored row (a single-row INSERT, the most frequent statement): no arrays, no aggregate;
# the payload is the same text as _PUBLISH's. src/stream.c runs it too, with its parameters
# in this order: stream id, key, prediction, model id, channel, inline.
_PUBLISH_ONE = (
    "WITH e AS (INSERT INTO pyml.stream_events (stream_id, key, prediction, model_id)"
    " VALUES ($1, $2, $3, $4) RETURNING event_id, key, prediction)"
    " SELECT pg_catalog.pg_notify($5, pg_catalog.json_build_object("
    "'stream', $1, 'model', $4, 'first', e.event_id, 'last', e.event_id, 'count', 1,"
    " 'events', CASE WHEN $6 THEN pg_catalog.json_build_array("
    "pg_catalog.json_build_array(e.event_id, e.key, e.prediction)) END)::text) FROM e"
)


def event_statement() -> str:
    """The statement that writes one event and announces it (for src/stream.c)."""
    return _PUBLISH_ONE


def publish(
    db: Db,
    stream: Stream,
    keys: Sequence[str | None],
    predictions: Sequence[Any],
    errors: Sequence[str | None],
    model_id: int | None,
    inline: bool,
    last: bool = False,
) -> None:
    """Write the events to the outbox and NOTIFY the stream's channel (sent at commit).
    ``last``: this is the trigger's last write; one event is then written as the trigger
    returns (:meth:`Registry.write_on_return`)."""
    if len(keys) == 1 and errors[0] is None:
        (db.registry.write_on_return if last else db.registry.write)(
            _PUBLISH_ONE,
            [stream.id, keys[0], predictions[0], model_id, stream.channel, inline],
            ["int8", "text", "float4", "int8", "text", "bool"],
        )
        return
    db.registry.write(
        _PUBLISH,
        [stream.id, list(keys), list(predictions), model_id, list(errors), stream.channel, inline],
        ["int8", "text[]", "float4[]", "int8", "text[]", "text", "bool"],
    )


def read_events(
    db: Db, stream_id: int, consumer: str, max_rows: int, after_event: int | None
) -> list[StreamEvent]:
    """Events after the consumer's ack (or after ``after_event``), in delivery order.
    A consumer read for the first time is created (so pruning waits for it)."""
    position = _position(db, stream_id, consumer, after_event)
    rows = db.registry.query(
        "SELECT e.event_id, e.key, e.prediction, e.model_id, e.scored_at FROM pyml.stream_events e"
        " WHERE e.stream_id = $1 AND (e.xid, e.event_id) > ($2::xid8, $3::int8)"
        " AND e.xid < pyml._stream_horizon(pg_catalog.pg_current_snapshot())"
        " ORDER BY e.xid, e.event_id LIMIT $4",
        [stream_id, position[0], position[1], max_rows],
        ["int8", "text", "int8", "int4"],
    )
    return [StreamEvent(**r) for r in rows]


def _event_position(db: Db, stream_id: int, event_id: int) -> tuple[str, int]:
    rows = db.registry.query(
        "SELECT xid::text AS xid FROM pyml.stream_events WHERE event_id = $1 AND stream_id = $2",
        [event_id, stream_id],
        ["int8", "int8"],
    )
    if not rows:
        raise InvalidParameterValue(
            f"event {event_id} is not in stream {stream_id}",
            hint="Pass an event_id returned by pyml.stream_read.",
        )
    return rows[0]["xid"], event_id


def _position(db: Db, stream_id: int, consumer: str, after_event: int | None) -> tuple[str, int]:
    rows = db.registry.query(
        "SELECT acked_xid::text AS xid, acked_event FROM pyml.stream_consumers"
        " WHERE stream_id = $1 AND consumer = $2",
        [stream_id, consumer],
        ["int8", "text"],
    )
    if rows:
        acked = (rows[0]["xid"], rows[0]["acked_event"])
    else:  # a new consumer (only its first read writes)
        db.registry.write(
            "INSERT INTO pyml.stream_consumers (stream_id, consumer) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            [stream_id, consumer],
            ["int8", "text"],
        )
        acked = ("0", 0)
    if after_event is None:
        return acked
    after = _event_position(db, stream_id, after_event)
    return after if (int(after[0]), after[1]) > (int(acked[0]), acked[1]) else acked


def ack(db: Db, stream_id: int, consumer: str, event_id: int) -> None:
    """Move the consumer's position to ``event_id`` (never backwards)."""
    xid, _ = _event_position(db, stream_id, event_id)
    db.registry.execute(
        "INSERT INTO pyml.stream_consumers AS c (stream_id, consumer, acked_xid, acked_event,"
        " acked_at) VALUES ($1, $2, $3::xid8, $4, pg_catalog.clock_timestamp())"
        " ON CONFLICT (stream_id, consumer) DO UPDATE SET acked_xid = EXCLUDED.acked_xid,"
        " acked_event = EXCLUDED.acked_event, acked_at = EXCLUDED.acked_at"
        " WHERE (c.acked_xid, c.acked_event) < (EXCLUDED.acked_xid, EXCLUDED.acked_event)",
        [stream_id, consumer, xid, event_id],
        ["int8", "text", "text", "int8"],
    )


def prune(db: Db, stream_id: int | None) -> int:
    """Delete the events every consumer has acked (streams without consumers keep theirs)."""
    return db.registry.execute(
        "DELETE FROM pyml.stream_events e USING ("
        "  SELECT DISTINCT ON (c.stream_id) c.stream_id, c.acked_xid, c.acked_event"
        "  FROM pyml.stream_consumers c WHERE $1::int8 IS NULL OR c.stream_id = $1"
        "  ORDER BY c.stream_id, c.acked_xid, c.acked_event) AS m"
        " WHERE e.stream_id = m.stream_id AND (e.xid, e.event_id) <= (m.acked_xid, m.acked_event)",
        [stream_id],
        ["int8"],
    )


def is_sync_trigger(db: Db, args: Sequence[str], relation_oid: int) -> bool:
    """Whether a trigger's arguments are those pyml gave the sync stream of this relation
    (a trigger someone else created cannot write into another stream's outbox)."""
    if len(args) != 4 or not args[0].isdigit():
        return False
    stream_id, project, key_column, channel = args
    return bool(
        db.registry.query(
            "SELECT FROM pyml.stream_definitions s JOIN pyml.projects p ON p.id = s.project_id"
            " WHERE s.id = $1 AND s.mode = 'sync'"
            " AND (s.source_relation = $2::oid"
            "      OR $2::oid::regclass IN (SELECT pyml._stream_relations(s.source_relation)))"
            " AND p.name = $3 AND s.key_column = $4 AND s.channel = $5",
            [int(stream_id), relation_oid, project, key_column, channel],
            ["int8", "int8", "text", "text", "text"],
        )
    )


def is_async_trigger(db: Db, args: Sequence[str], relation_oid: int) -> bool:
    """Like :func:`is_sync_trigger`, for the trigger of an async stream (stream id, key)."""
    if len(args) != 2 or not args[0].isdigit():
        return False
    stream_id, key_column = args
    return bool(
        db.registry.query(
            "SELECT FROM pyml.stream_definitions s"
            " WHERE s.id = $1 AND s.mode = 'async' AND s.key_column = $3"
            " AND (s.source_relation = $2::oid"
            "      OR $2::oid::regclass IN (SELECT pyml._stream_relations(s.source_relation)))",
            [int(stream_id), relation_oid, key_column],
            ["int8", "int8", "text"],
        )
    )


def transition_rows(
    db: Db, update: bool, limit: int | None = None
) -> tuple[list[str], list[str] | None]:
    """The rows of the firing statement (its transition tables), as row text: the new rows
    and, for an UPDATE, the old ones; at most ``limit`` of each. Read as the caller."""
    cap = "" if limit is None else f" LIMIT {int(limit)}"
    # (r.*) is the whole row even when the relation has a column named r
    new = db.query(
        "SELECT pg_catalog.array_agg(t.x) AS rows"  # noqa: S608
        f" FROM (SELECT (r.*)::pg_catalog.text AS x FROM pyml_new r{cap}) AS t"
    )[0]["rows"]
    old = None
    if update:
        old = db.query(
            "SELECT pg_catalog.array_agg(t.x) AS rows"  # noqa: S608
            f" FROM (SELECT (r.*)::pg_catalog.text AS x FROM pyml_old r{cap}) AS t"
        )[0]["rows"]
    return list(new or []), (list(old or []) if update else None)


def statement_chunk(db: Db, query: str, offset: int) -> StatementChunk:
    """One chunk of the firing statement, read by a query of :func:`statement_query`."""
    return StatementChunk(**db.query(query, [offset], ["int8"])[0])
