"""The rows the store returns: one type per kind of row, built from the query's result.

Each type's fields are its query's columns, in name and number: a type whose columns need
no conversion is built as ``Type(**row)``, which raises TypeError for a missing or extra
column, so a query and its type cannot drift apart unnoticed; the others have a small
constructor here that parses their jsonb columns (selected as text) first. Values are what
PL/Python makes of the SQL types: bigint and integer ``int``, real and double ``float``,
arrays lists, bytea ``bytes``; timestamptz and interval come as text (``str``).
``tests/db/test_rows.py`` checks each field against its column in the catalog.

The rows pure code reads too (a model as it is loaded, its files) are in
:mod:`pyml.core.registry`; a stream (``Stream``) is next to its query in
:mod:`pyml.server.store._streams`. :mod:`pyml.server.store` re-exports them all.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from pyml.core.registry import ModelRow
from pyml.server._db import Row


class Context(NamedTuple):
    """Who trains, where, and when (for a model's lineage)."""

    database_user: str
    database: str
    server_version: str
    at: str  # clock_timestamp()


class ProjectRow(NamedTuple):
    """A row of ``pyml.projects`` (its timestamps aside)."""

    id: int
    name: str
    task: str
    owner: str  # the role that created it


class SnapshotRow(NamedTuple):
    """Of a row of ``pyml.snapshots``, what a new model trains on when it reuses it."""

    id: int
    relation_name: str  # schema-qualified and quoted
    y_column_name: list[str] | None
    test_size: float
    test_sampling: str
    preprocess: dict[str, Any]  # jsonb: the preprocessing asked for, by column


def parse_snapshot(row: Row) -> SnapshotRow:
    return SnapshotRow(**{**row, "preprocess": json.loads(row["preprocess"])})


class ModelSnapshot(NamedTuple):
    """The snapshot a model was trained on (where its test rows are), with the project's
    task."""

    relation_name: str
    y_column_name: list[str] | None
    test_size: float
    test_sampling: str
    task: str


class ModelInput(NamedTuple):
    """One training column of a model, from its snapshot's ``columns``."""

    name: str
    type: str  # the SQL type, as format_type prints it
    role: str  # feature or label


def parse_model(row: Row) -> ModelRow:
    return ModelRow(
        **{
            **row,
            "metrics": json.loads(row["metrics"]) if row["metrics"] else {},
            "classes": json.loads(row["classes"]) if row["classes"] else None,
            "preprocess": json.loads(row["preprocess"]),
        }
    )


class DeploymentRow(NamedTuple):
    """A row of ``pyml.deployments`` as inserted."""

    id: int
    model_id: int
    strategy: str
    created_at: str


class ModelSettings(NamedTuple):
    """What a drift check and a retrain need of a model: its training statistics (snapshot
    columns), prediction baseline, and the settings it was trained with. The snapshot's
    fields are None once it is deleted."""

    id: int
    project_id: int
    algorithm: str
    hyperparams: dict[str, Any]  # jsonb
    preprocess: dict[str, Any]  # jsonb: the model's (rules, and what was fitted)
    baseline: dict[str, Any] | None  # jsonb: the distribution of its test predictions
    columns: list[dict[str, Any]] | None  # jsonb: the snapshot's column statistics
    relation_name: str | None
    y_column_name: list[str] | None
    test_size: float | None
    test_sampling: str | None


def parse_settings(row: Row) -> ModelSettings:
    return ModelSettings(
        **{
            **row,
            **{
                name: json.loads(row[name]) if row[name] else None
                for name in ("hyperparams", "preprocess", "baseline", "columns")
            },
        }
    )


class PredictionLogging(NamedTuple):
    """A project whose calls are logged (``pyml.prediction_logging``)."""

    project_id: int
    sample_rate: float


class LoggedCall(NamedTuple):
    """A logged call: its features and prediction (``pyml.prediction_log``)."""

    features: list[Any] | dict[str, Any]  # jsonb: an array, or an object by column
    prediction: Any  # jsonb: a number, a label, or an array


def parse_logged_call(row: Row) -> LoggedCall:
    return LoggedCall(**{name: json.loads(text) for name, text in row.items()})


class MonitorRow(NamedTuple):
    """A row of ``pyml.monitors``, with whether its round is due."""

    id: int
    relation_name: str
    every: str  # interval
    psi_threshold: float
    retrain: bool
    created_by: str  # the role its rounds run as
    due: bool


class DueMonitor(NamedTuple):
    """A monitor whose round is due, with its project's name."""

    id: int
    project_id: int
    project: str
    created_by: str


class ReportRow(NamedTuple):
    """A row of ``pyml.drift_reports`` as inserted: its id and time."""

    id: int
    created_at: str


class StreamEvent(NamedTuple):
    """A row of ``pyml.stream_events`` as ``pyml.stream_read`` returns it."""

    event_id: int
    key: str | None
    prediction: float | None  # NULL: the row could not be scored
    model_id: int | None
    scored_at: str


class StatementChunk(NamedTuple):
    """Rows of a statement read by a query of ``statement_query``: how many were taken,
    how many are returned, their keys and their features (``array_send`` of float8)."""

    taken: int
    n: int
    keys: list[str | None] | None  # None when no row is returned
    x: bytes | None
