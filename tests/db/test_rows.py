"""The store's row types against the installed registry: every field reads a column of that
name's table, with the Python type PL/Python gives that column's SQL type (``| None`` where
the column, or the outer join it comes through, can be NULL).

(That each query's columns are its type's fields is checked whenever the query runs: the rows
are built as ``Type(**row)``, which refuses a missing or an extra column.)
"""

from __future__ import annotations

import typing
from typing import Any

import psycopg
import pytest

from pyml.server import store

# What PL/Python makes of each SQL type (timestamps and intervals arrive as text).
PYTHON: dict[str, Any] = {
    "bigint": int,
    "integer": int,
    "text": str,
    "real": float,
    "double precision": float,
    "boolean": bool,
    "bytea": bytes,
    "text[]": list[str],
    "timestamp with time zone": str,
    "interval": str,
}

OUTER = "?"  # after a column: read through an outer join (NULL when there is no row)

# For each row type, the column each field reads. Fields computed by the query are left out
# (COMPUTED below says which); a jsonb column's Python type is its constructor's choice.
ROWS: dict[type, dict[str, str]] = {
    store.ProjectRow: {
        "id": "projects.id",
        "name": "projects.name",
        "task": "projects.task",
        "owner": "projects.owner",
    },
    store.SnapshotRow: {f: f"snapshots.{f}" for f in store.SnapshotRow._fields},
    store.ModelSnapshot: {
        **{f: f"snapshots.{f}" for f in store.ModelSnapshot._fields},
        "task": "projects.task",
    },
    store.ModelRow: {
        **{f: f"models.{f}" for f in store.ModelRow._fields},
        "project": "projects.name",
        "task": "projects.task",
    },
    store.FileRow: {f: f"files.{f}" for f in store.FileRow._fields},
    store.DeploymentRow: {f: f"deployments.{f}" for f in store.DeploymentRow._fields},
    store.ModelSettings: {
        **{
            f: f"models.{f}"
            for f in ("id", "project_id", "algorithm", "hyperparams", "preprocess", "baseline")
        },
        **{
            f: f"snapshots.{f}{OUTER}"
            for f in ("columns", "relation_name", "y_column_name", "test_size", "test_sampling")
        },
    },
    store.PredictionLogging: {
        f: f"prediction_logging.{f}" for f in store.PredictionLogging._fields
    },
    store.LoggedCall: {f: f"prediction_log.{f}" for f in store.LoggedCall._fields},
    store.MonitorRow: {f: f"monitors.{f}" for f in store.MonitorRow._fields if f != "due"},
    store.DueMonitor: {
        "id": "monitors.id",
        "project_id": "monitors.project_id",
        "project": "projects.name",
        "created_by": "monitors.created_by",
    },
    store.ReportRow: {f: f"drift_reports.{f}" for f in store.ReportRow._fields},
    store.Stream: {
        "id": "stream_definitions.id",
        "project_id": "stream_definitions.project_id",
        "project": "projects.name",
        "key_column": "stream_definitions.key_column",
        "mode": "stream_definitions.mode",
        "channel": "stream_definitions.channel",
    },
    store.StreamEvent: {f: f"stream_events.{f}" for f in store.StreamEvent._fields},
}
COMPUTED: dict[type, set[str]] = {
    store.MonitorRow: {"due"},
    store.Stream: {"source", "source_oid"},  # source_relation as text, and its oid
}
# Rows of no table: who and where (lineage), a model's columns (from snapshot jsonb), a
# chunk of a statement's transition table.
NOT_TABLE_ROWS = {store.Context, store.ModelInput, store.StatementChunk}


def _columns(conn: psycopg.Connection, relation: str) -> dict[str, tuple[str, bool]]:
    rows = conn.execute(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull"
        " FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s::regclass"
        " AND a.attnum > 0 AND NOT a.attisdropped",
        (f"pyml.{relation}",),
    ).fetchall()
    return {name: (sqltype, notnull) for name, sqltype, notnull in rows}


def test_every_row_type_is_described() -> None:
    named = {getattr(store, name) for name in store.__all__}
    row_types = {
        t
        for t in named
        if isinstance(t, type)
        and issubclass(t, tuple)
        and t.__module__ in ("pyml.server.store._rows", "pyml.core.registry")
    }
    assert row_types | {store.Stream} == set(ROWS) | NOT_TABLE_ROWS


@pytest.mark.parametrize("row_type", list(ROWS), ids=lambda t: t.__name__)
def test_fields_read_their_columns(conn: psycopg.Connection, row_type: type) -> None:
    sources = ROWS[row_type]
    assert set(sources) | COMPUTED.get(row_type, set()) == set(row_type._fields)  # type: ignore[attr-defined]
    hints = typing.get_type_hints(row_type)
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    for field, source in sources.items():
        relation, column = source.rstrip(OUTER).split(".")
        if relation not in tables:
            tables[relation] = _columns(conn, relation)
        assert column in tables[relation], f"{row_type.__name__}.{field}: no column {source}"
        sqltype, notnull = tables[relation][column]
        if sqltype == "jsonb":
            continue
        expected = PYTHON[sqltype]
        if not notnull or source.endswith(OUTER):
            expected = expected | None
        assert hints[field] == expected, f"{row_type.__name__}.{field} reads {source} ({sqltype})"
