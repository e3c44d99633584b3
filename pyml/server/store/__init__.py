"""The store: the only place that issues SQL (through :mod:`pyml.server._db`).

This module holds the registry (projects, snapshots, models, artifacts,
deployments, grants); :mod:`pyml.server.store._relations` holds what touches user relations.
Every value is a bound parameter; names are resolved and quoted by PostgreSQL. Rows come out
typed, never as dicts: :mod:`pyml.server.store._rows` (and :mod:`pyml.core.registry` for the
rows pure code reads too) has a type for each kind.

Registry statements run through ``db.registry`` (the extension owner's rights; the
caller's privilege was checked before), recording the caller by name where a row
says who did it; statements on the caller's relations and the privilege checks
themselves run as the caller (``db.query``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pyml.core.registry import FileRow, ModelRow
from pyml.errors import UndefinedObject
from pyml.server._db import Db
from pyml.server.store._monitoring import (
    collect_lines,
    cron_database,
    cron_schedule,
    current_role_setting,
    delete_monitor,
    drop_spool_position,
    due_monitors,
    finish_round,
    get_monitor,
    insert_report,
    insert_served,
    logged_window,
    may_act_as,
    model_settings,
    notify,
    positive_interval,
    prediction_logging,
    save_monitor,
    set_prediction_logging,
    set_role,
    spool_positions,
    try_lock_round,
)
from pyml.server.store._relations import (
    Column,
    PredictionTable,
    Relation,
    as_text,
    caller_search_path,
    create_dataset_table,
    decode_float8_array,
    finish_predictions,
    float4_attributes,
    materialize,
    prediction_table,
    pyml_table,
    read_chunks,
    read_columns,
    relation_by_oid,
    resolve_relation,
    write_predictions,
)
from pyml.server.store._rows import (
    Context,
    DeploymentRow,
    DueMonitor,
    LoggedCall,
    ModelInput,
    ModelSettings,
    ModelSnapshot,
    MonitorRow,
    PredictionLogging,
    ProjectRow,
    ReportRow,
    SnapshotRow,
    StatementChunk,
    StreamEvent,
    parse_model,
    parse_snapshot,
)
from pyml.server.store._settings import SizeSetting, train_memory_limit
from pyml.server.store._streams import (
    FAST_NUMBER_TYPES,
    Stream,
    ack,
    column_numbers,
    create_triggers,
    delete_stream,
    drop_triggers,
    enqueue,
    event_statement,
    find_stream,
    get_stream,
    is_async_trigger,
    is_plain_number,
    is_sync_trigger,
    list_streams,
    project_has_streams,
    prune,
    publish,
    queue_statement,
    read_events,
    relation_privilege,
    save_stream,
    small_insert_query,
    statement_chunk,
    statement_query,
    take_queued,
    transition_rows,
)

__all__ = [
    # rows (see pyml.server.store._rows and pyml.core.registry)
    "Context",
    "DeploymentRow",
    "DueMonitor",
    "FileRow",
    "LoggedCall",
    "ModelInput",
    "ModelRow",
    "ModelSettings",
    "ModelSnapshot",
    "MonitorRow",
    "PredictionLogging",
    "ProjectRow",
    "ReportRow",
    "SnapshotRow",
    "StatementChunk",
    "StreamEvent",
    # relations
    "Column",
    "PredictionTable",
    "Relation",
    "as_text",
    "caller_search_path",
    "create_dataset_table",
    "decode_float8_array",
    "finish_predictions",
    "float4_attributes",
    "materialize",
    "prediction_table",
    "pyml_table",
    "read_chunks",
    "read_columns",
    "relation_by_oid",
    "resolve_relation",
    "write_predictions",
    # monitoring
    "collect_lines",
    "cron_database",
    "cron_schedule",
    "current_role_setting",
    "delete_monitor",
    "drop_spool_position",
    "due_monitors",
    "finish_round",
    "get_monitor",
    "insert_report",
    "insert_served",
    "logged_window",
    "may_act_as",
    "model_settings",
    "notify",
    "positive_interval",
    "prediction_logging",
    "save_monitor",
    "set_prediction_logging",
    "set_role",
    "spool_positions",
    "try_lock_round",
    # streams
    "FAST_NUMBER_TYPES",
    "Stream",
    "ack",
    "column_numbers",
    "create_triggers",
    "delete_stream",
    "drop_triggers",
    "enqueue",
    "event_statement",
    "find_stream",
    "get_stream",
    "is_async_trigger",
    "is_plain_number",
    "is_sync_trigger",
    "list_streams",
    "project_has_streams",
    "prune",
    "publish",
    "queue_statement",
    "read_events",
    "relation_privilege",
    "save_stream",
    "small_insert_query",
    "statement_chunk",
    "statement_query",
    "take_queued",
    "transition_rows",
    # settings
    "SizeSetting",
    "train_memory_limit",
]


def context(db: Db) -> Context:
    """Who and where: for lineage."""
    return Context(
        **db.query(
            "SELECT CURRENT_USER::text AS database_user,"
            " pg_catalog.current_database()::text AS database,"
            " pg_catalog.current_setting('server_version') AS server_version,"
            " pg_catalog.clock_timestamp() AS at"
        )[0]
    )


# ---------------------------------------------------------------------------
# Projects and snapshots
# ---------------------------------------------------------------------------


def get_project(db: Db, name: str) -> ProjectRow | None:
    rows = db.query(
        "SELECT id, name, task, owner FROM pyml.projects WHERE name = $1", [name], ["text"]
    )
    return ProjectRow(**rows[0]) if rows else None


def require_project(db: Db, name: str) -> ProjectRow:
    project = get_project(db, name)
    if project is None:
        raise UndefinedObject(f'project "{name}" does not exist')
    return project


def create_project(db: Db, name: str, task: str) -> tuple[ProjectRow, bool]:
    """Create the project, owned by the caller; or return it when a concurrent session
    just did. The second value says whether this call created it."""
    rows = db.registry.write(
        "INSERT INTO pyml.projects (name, task, owner) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO NOTHING RETURNING id, name, task, owner",
        [name, task, db.caller().name],
        ["text", "text", "text"],
    )
    return (ProjectRow(**rows[0]), True) if rows else (require_project(db, name), False)


def touch_project(db: Db, project_id: int) -> None:
    db.registry.execute(
        "UPDATE pyml.projects SET updated_at = pg_catalog.clock_timestamp() WHERE id = $1",
        [project_id],
        ["int8"],
    )


def lock_project(db: Db, project_id: int) -> None:
    """Lock the project's row until the end of the transaction. Everything that decides
    what goes live (automatic deploys, deploy, monitoring rounds) takes it first, so
    two such decisions on one project never interleave, and locks come in one order."""
    db.registry.write(
        "SELECT FROM pyml.projects WHERE id = $1 FOR NO KEY UPDATE", [project_id], ["int8"]
    )


# ---------------------------------------------------------------------------
# Privileges (see pyml.privileges)
# ---------------------------------------------------------------------------


def has_privilege(db: Db, project_id: int, privilege: str) -> bool:
    """Whether the current role holds ``privilege`` on the project (asked as the caller)."""
    return bool(
        db.query(
            "SELECT pyml._has_privilege($1, $2) AS ok", [project_id, privilege], ["int8", "text"]
        )[0]["ok"]
    )


def role_name(db: Db, role: str) -> str:
    """The name of a role given as ``regrole`` text (quoted when it must be)."""
    return str(
        db.query(
            "SELECT rolname::text AS name FROM pg_catalog.pg_roles WHERE oid = $1::regrole",
            [role],
            ["text"],
        )[0]["name"]
    )


def save_grant(db: Db, project_id: int, grantee: str, privilege: str, by: str) -> None:
    db.registry.execute(
        "INSERT INTO pyml._grants (project_id, grantee, privilege, granted_by)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        [project_id, grantee, privilege, by],
        ["int8", "text", "text", "text"],
    )


def delete_grant(db: Db, project_id: int, grantee: str, privilege: str) -> bool:
    return (
        db.registry.execute(
            "DELETE FROM pyml._grants WHERE project_id = $1 AND grantee = $2 AND privilege = $3",
            [project_id, grantee, privilege],
            ["int8", "text", "text"],
        )
        > 0
    )


def insert_snapshot(db: Db, **fields: Any) -> int:
    return int(
        db.registry.write(
            "INSERT INTO pyml.snapshots (relation_name, y_column_name, test_size, test_sampling,"
            " columns, row_count, data_fingerprint, materialized, preprocess, created_by)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9::jsonb, $10) RETURNING id",
            [
                fields["relation_name"],
                fields["y_column_name"],
                fields["test_size"],
                fields["test_sampling"],
                json.dumps(fields["columns"]),
                fields["row_count"],
                fields["data_fingerprint"],
                fields["materialized"],
                json.dumps(fields.get("preprocess", {})),
                db.caller().name,
            ],
            ["text", "text[]", "float4", "text", "text", "int8", "text", "bool", "text", "text"],
        )[0]["id"]
    )


def set_snapshot_relation(db: Db, snapshot_id: int, relation_name: str) -> None:
    """Point a just-created snapshot at its materialized copy (same transaction)."""
    db.registry.execute(
        "UPDATE pyml.snapshots SET relation_name = $2, materialized = true WHERE id = $1",
        [snapshot_id, relation_name],
        ["int8", "text"],
    )


def last_snapshot(db: Db, project_id: int) -> SnapshotRow | None:
    """The snapshot of the project's last model (None when no model has one)."""
    rows = db.registry.query(
        "SELECT s.id, s.relation_name, s.y_column_name, s.test_size, s.test_sampling,"
        " s.preprocess::text AS preprocess"
        " FROM pyml.snapshots s JOIN pyml.models m ON m.snapshot_id = s.id"
        " WHERE m.project_id = $1 ORDER BY m.id DESC LIMIT 1",
        [project_id],
        ["int8"],
    )
    return parse_snapshot(rows[0]) if rows else None


# ---------------------------------------------------------------------------
# Models and artifacts
# ---------------------------------------------------------------------------

_MODEL_COLUMNS = (
    "project_id",
    "snapshot_id",
    "algorithm",
    "hyperparams",
    "search",
    "search_params",
    "search_args",
    "status",
    "metrics",
    "num_features",
    "feature_names",
    "classes",
    "preprocess",
    "runtime",
    "lineage",
    "baseline",
    "created_by",
)
_MODEL_TYPES = (
    "int8",
    "int8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "text[]",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
)
_JSONB = {
    "hyperparams",
    "search_params",
    "search_args",
    "metrics",
    "classes",
    "preprocess",
    "lineage",
    "baseline",
}


def insert_model(db: Db, parts: Sequence[Any], **fields: Any) -> int:
    """Insert a trained model and its artifact parts; return the model id."""
    fields = {**fields, "created_by": db.caller().name}
    values = [
        json.dumps(fields[c]) if c in _JSONB and fields[c] is not None else fields[c]
        for c in _MODEL_COLUMNS
    ]
    placeholders = ", ".join(
        f"${i}::jsonb" if c in _JSONB else f"${i}" for i, c in enumerate(_MODEL_COLUMNS, start=1)
    )
    model_id = int(
        db.registry.write(
            f"INSERT INTO pyml.models ({', '.join(_MODEL_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
            " RETURNING id",
            values,
            _MODEL_TYPES,
        )[0]["id"]
    )
    for part in parts:
        db.registry.execute(
            "INSERT INTO pyml.files (model_id, part, format, sha256, data)"
            " VALUES ($1, $2, $3, $4, $5)",
            [model_id, part.part, part.format, part.sha256, part.data],
            ["int8", "int4", "text", "text", "bytea"],
        )
    return model_id


def get_model(db: Db, model_id: int) -> ModelRow:
    rows = db.registry.query(
        "SELECT m.id, m.project_id, p.name AS project, p.task, m.algorithm, m.status,"
        " m.metrics::text AS metrics, m.num_features, m.feature_names, m.classes::text AS classes,"
        " m.snapshot_id, m.preprocess::text AS preprocess"
        " FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id WHERE m.id = $1",
        [model_id],
        ["int8"],
    )
    if not rows:
        raise UndefinedObject(f"model {model_id} does not exist")
    return parse_model(rows[0])


def model_export_facts(db: Db, model_id: int) -> tuple[str, dict[str, Any]]:
    """When a model was stored (ISO 8601 text) and its ONNX conversion (lineage ``onnx``:
    the check's figures, or why there is no ONNX part; {} for a model older than that)."""
    rows = db.registry.query(
        "SELECT pg_catalog.to_json(created_at) #>> '{}' AS created_at,"
        " (lineage -> 'onnx')::text AS onnx FROM pyml.models WHERE id = $1",
        [model_id],
        ["int8"],
    )
    if not rows:
        raise UndefinedObject(f"model {model_id} does not exist")
    return rows[0]["created_at"], json.loads(rows[0]["onnx"] or "{}")


def model_snapshot(db: Db, model_id: int) -> ModelSnapshot:
    """The snapshot a model was trained on, with the project's task."""
    rows = db.registry.query(
        "SELECT s.relation_name, s.y_column_name, s.test_size, s.test_sampling, p.task"
        " FROM pyml.models m JOIN pyml.snapshots s ON s.id = m.snapshot_id"
        " JOIN pyml.projects p ON p.id = m.project_id WHERE m.id = $1",
        [model_id],
        ["int8"],
    )
    if not rows:
        raise UndefinedObject(f"the training data of model {model_id} is gone")
    return ModelSnapshot(**rows[0])


def model_files(db: Db, model_id: int) -> list[FileRow]:
    rows = db.registry.query(
        "SELECT part, format, sha256, data FROM pyml.files WHERE model_id = $1 ORDER BY part",
        [model_id],
        ["int8"],
    )
    return [FileRow(**r) for r in rows]


def feature_columns(db: Db, model_id: int | None) -> list[str]:
    """The relation columns a model was trained on, in order (from its snapshot)."""
    rows = db.registry.query(
        "SELECT e.c ->> 'name' AS name FROM pyml.models m"
        " JOIN pyml.snapshots s ON s.id = m.snapshot_id,"
        " pg_catalog.jsonb_array_elements(s.columns) WITH ORDINALITY AS e(c, i)"
        " WHERE m.id = $1 AND e.c ->> 'role' = 'feature' ORDER BY e.i",
        [model_id],
        ["int8"],
    )
    return [r["name"] for r in rows]


def model_inputs(db: Db, model_id: int) -> list[ModelInput]:
    """A model's training columns, in order: name, SQL type, role (feature or label)."""
    rows = db.registry.query(
        "SELECT e.c ->> 'name' AS name, e.c ->> 'type' AS type, e.c ->> 'role' AS role"
        " FROM pyml.models m JOIN pyml.snapshots s ON s.id = m.snapshot_id,"
        " pg_catalog.jsonb_array_elements(s.columns) WITH ORDINALITY AS e(c, i)"
        " WHERE m.id = $1 ORDER BY e.i",
        [model_id],
        ["int8"],
    )
    return [ModelInput(**r) for r in rows]


def delete_model(db: Db, model_id: int) -> None:
    snapshot = db.registry.write(
        "DELETE FROM pyml.models WHERE id = $1 RETURNING snapshot_id", [model_id], ["int8"]
    )
    _drop_orphan_snapshots(db, [r["snapshot_id"] for r in snapshot])


def delete_project(db: Db, project_id: int) -> None:
    snapshots = db.registry.query(
        "SELECT DISTINCT snapshot_id FROM pyml.models WHERE project_id = $1",
        [project_id],
        ["int8"],
    )
    db.registry.execute("DELETE FROM pyml.projects WHERE id = $1", [project_id], ["int8"])
    _drop_orphan_snapshots(db, [r["snapshot_id"] for r in snapshots])


def _drop_orphan_snapshots(db: Db, snapshot_ids: list[int | None]) -> None:
    ids = [i for i in snapshot_ids if i is not None]
    if not ids:
        return
    orphans = db.registry.write(
        "DELETE FROM pyml.snapshots s WHERE s.id = ANY($1)"
        " AND NOT EXISTS (SELECT FROM pyml.models m WHERE m.snapshot_id = s.id)"
        " RETURNING s.id, s.materialized",
        [ids],
        ["int8[]"],
    )
    for orphan in orphans:
        if orphan["materialized"]:
            table = pyml_table(db, f"snapshot_{orphan['id']}")  # quoted by format('%I')
            db.registry.execute(f"DROP TABLE IF EXISTS {table}")


# ---------------------------------------------------------------------------
# Deployments
# ---------------------------------------------------------------------------


def live_model_id(db: Db, project_name: str) -> tuple[ProjectRow, int | None]:
    """The project (42704 if unknown) and the id of its live model (None if never deployed)."""
    rows = db.registry.query(
        "SELECT p.id, p.name, p.task, p.owner, (SELECT d.model_id FROM pyml.deployments d"
        " WHERE d.project_id = p.id ORDER BY d.id DESC LIMIT 1) AS model_id"
        " FROM pyml.projects p WHERE p.name = $1",
        [project_name],
        ["text"],
    )
    if not rows:
        raise UndefinedObject(f'project "{project_name}" does not exist')
    project = dict(rows[0])
    model_id: int | None = project.pop("model_id")
    return ProjectRow(**project), model_id


def live_metrics(db: Db, project_id: int) -> dict[str, Any] | None:
    """Metrics of the project's live model, or None when nothing is deployed."""
    rows = db.registry.query(
        "SELECT m.metrics::text AS metrics FROM pyml.deployments d"
        " JOIN pyml.models m ON m.id = d.model_id"
        " WHERE d.project_id = $1 ORDER BY d.id DESC LIMIT 1",
        [project_id],
        ["int8"],
    )
    if not rows:
        return None
    return dict(json.loads(rows[0]["metrics"] or "{}"))


def insert_deployment(db: Db, project_id: int, model_id: int, strategy: str) -> DeploymentRow:
    return DeploymentRow(
        **db.registry.write(
            "INSERT INTO pyml.deployments (project_id, model_id, strategy, created_by)"
            " VALUES ($1, $2, $3, $4) RETURNING id, model_id, strategy, created_at",
            [project_id, model_id, strategy, db.caller().name],
            ["int8", "int8", "text", "text"],
        )[0]
    )


def best_model(db: Db, project_id: int, metric: str, algorithm: str | None) -> int | None:
    """The successful model with the highest ``metric``, compared as a number."""
    rows = db.registry.query(
        "SELECT id FROM pyml.models WHERE project_id = $1 AND status = 'successful'"
        " AND ($2::text IS NULL OR algorithm = $2)"
        " ORDER BY (metrics ->> $3)::float8 DESC NULLS LAST, id DESC"
        " LIMIT 1",
        [project_id, algorithm, metric],
        ["int8", "text", "text"],
    )
    return rows[0]["id"] if rows else None


def most_recent_model(db: Db, project_id: int, algorithm: str | None) -> int | None:
    rows = db.registry.query(
        "SELECT id FROM pyml.models WHERE project_id = $1 AND status = 'successful'"
        " AND ($2::text IS NULL OR algorithm = $2) ORDER BY id DESC LIMIT 1",
        [project_id, algorithm],
        ["int8", "text"],
    )
    return rows[0]["id"] if rows else None


def previous_deployed_model(db: Db, project_id: int) -> int | None:
    """The model that was live before the live one (for rollback); redeploys are skipped."""
    rows = db.registry.query(
        "SELECT d.model_id FROM pyml.deployments d WHERE d.project_id = $1"
        " AND d.model_id <> (SELECT l.model_id FROM pyml.deployments l"
        "                    WHERE l.project_id = $1 ORDER BY l.id DESC LIMIT 1)"
        " ORDER BY d.id DESC LIMIT 1",
        [project_id],
        ["int8"],
    )
    return rows[0]["model_id"] if rows else None


def deployed_model_at(db: Db, project_id: int, at: Any) -> int | None:
    rows = db.registry.query(
        "SELECT model_id FROM pyml.deployments WHERE project_id = $1 AND created_at <= $2"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        [project_id, at],
        ["int8", "timestamptz"],
    )
    return rows[0]["model_id"] if rows else None


def model_lineage(db: Db, model_id: int) -> str:
    """``pyml.lineage``: the model's catalog rows as one jsonb document (text)."""
    rows = db.registry.query(
        "SELECT pg_catalog.jsonb_build_object("
        " 'model_id', m.id, 'status', m.status,"
        " 'project', pg_catalog.jsonb_build_object('id', p.id, 'name', p.name, 'task', p.task),"
        " 'algorithm', m.algorithm, 'hyperparams', m.hyperparams, 'search', m.search,"
        " 'search_params', m.search_params, 'search_args', m.search_args,"
        " 'preprocess', m.preprocess, 'metrics', m.metrics,"
        " 'feature_names', pg_catalog.to_jsonb(m.feature_names), 'classes', m.classes,"
        " 'trained_by', m.created_by, 'trained_at', m.created_at, 'environment', m.lineage,"
        " 'baseline', m.baseline,"
        " 'snapshot', (SELECT pg_catalog.jsonb_build_object("
        "   'id', s.id, 'relation', s.relation_name,"
        "   'y_column_name', pg_catalog.to_jsonb(s.y_column_name), 'test_size', s.test_size,"
        "   'test_sampling', s.test_sampling, 'row_count', s.row_count,"
        "   'data_fingerprint', s.data_fingerprint, 'materialized', s.materialized,"
        "   'preprocess', s.preprocess, 'columns', s.columns, 'created_at', s.created_at)"
        "   FROM pyml.snapshots s WHERE s.id = m.snapshot_id),"
        " 'artifacts', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
        "   'part', f.part, 'format', f.format, 'sha256', f.sha256,"
        "   'bytes', pg_catalog.octet_length(f.data)) ORDER BY f.part)"
        "   FROM pyml.files f WHERE f.model_id = m.id),"
        " 'deployments', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
        "   'id', d.id, 'strategy', d.strategy, 'deployed_at', d.created_at,"
        "   'deployed_by', d.created_by, 'live_until', d.until) ORDER BY d.created_at, d.id)"
        "   FROM (SELECT x.*, pg_catalog.lead(x.created_at) OVER"
        "         (ORDER BY x.created_at, x.id) AS until"
        "         FROM pyml.deployments x WHERE x.project_id = m.project_id) d"
        "   WHERE d.model_id = m.id), '[]'::jsonb),"
        " 'drift_reports', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
        "   'id', r.id, 'at', r.created_at, 'by', r.created_by, 'checked_model_id', r.model_id,"
        "   'relation', r.relation_name, 'row_count', r.row_count, 'decision', r.decision,"
        "   'metric', r.metric, 'old_score', r.old_score, 'new_score', r.new_score,"
        "   'drifted_features', (SELECT coalesce(pg_catalog.jsonb_agg(DISTINCT f ->> 'feature'),"
        "     '[]'::jsonb) FROM pg_catalog.jsonb_array_elements(r.features) f"
        "     WHERE (f ->> 'drifted')::boolean)) ORDER BY r.id)"
        "   FROM pyml.drift_reports r WHERE r.new_model_id = m.id), '[]'::jsonb),"
        " 'live', m.id IS NOT DISTINCT FROM (SELECT x.model_id FROM pyml.deployments x"
        "   WHERE x.project_id = m.project_id ORDER BY x.created_at DESC, x.id DESC LIMIT 1)"
        ")::text AS lineage"
        " FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id WHERE m.id = $1",
        [model_id],
        ["int8"],
    )
    if not rows:
        raise UndefinedObject(f"model {model_id} does not exist")
    return str(rows[0]["lineage"])


def model_bundle(db: Db, model_id: int) -> str:
    """What a bundle (:mod:`pyml.core.bundle`) says of a model besides its files, as one
    jsonb document (text): its project, its snapshot (null once deleted), its catalog row,
    and where and when it is exported (``source``: database, port, time)."""
    rows = db.registry.query(
        "SELECT pg_catalog.jsonb_build_object("
        " 'source', pg_catalog.jsonb_build_object("
        "   'exported_at', pg_catalog.to_jsonb(pg_catalog.clock_timestamp()),"
        "   'database', pg_catalog.current_database(),"
        "   'port', pg_catalog.current_setting('port'), 'model_id', m.id),"
        " 'project', pg_catalog.jsonb_build_object('name', p.name, 'task', p.task),"
        " 'snapshot', (SELECT pg_catalog.jsonb_build_object("
        "   'relation_name', s.relation_name,"
        "   'y_column_name', pg_catalog.to_jsonb(coalesce(s.y_column_name, '{}'::text[])),"
        "   'test_size', s.test_size, 'test_sampling', s.test_sampling, 'columns', s.columns,"
        "   'row_count', s.row_count, 'data_fingerprint', s.data_fingerprint,"
        "   'preprocess', s.preprocess)"
        "   FROM pyml.snapshots s WHERE s.id = m.snapshot_id),"
        " 'model', pg_catalog.jsonb_build_object("
        "   'algorithm', m.algorithm, 'hyperparams', m.hyperparams,"
        "   'metrics', coalesce(m.metrics, '{}'::jsonb), 'num_features', m.num_features,"
        "   'feature_names', pg_catalog.to_jsonb(m.feature_names), 'classes', m.classes,"
        "   'preprocess', m.preprocess, 'runtime', m.runtime, 'lineage', m.lineage,"
        "   'search', m.search, 'search_params', m.search_params,"
        "   'search_args', m.search_args, 'baseline', m.baseline),"
        " 'status', m.status"
        ")::text AS bundle"
        " FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id WHERE m.id = $1",
        [model_id],
        ["int8"],
    )
    if not rows:
        raise UndefinedObject(f"model {model_id} does not exist")
    return str(rows[0]["bundle"])


def database_oid(db: Db) -> int:
    return int(
        db.query(
            "SELECT oid::int8 AS oid FROM pg_catalog.pg_database"
            " WHERE datname = pg_catalog.current_database()"
        )[0]["oid"]
    )


def in_recovery(db: Db) -> bool:
    """Whether this server is a hot standby (still replaying WAL)."""
    return bool(db.query("SELECT pg_catalog.pg_is_in_recovery() AS r")[0]["r"])


def read_only(db: Db) -> tuple[bool, bool]:
    """(a hot standby, a read-only transaction): why this transaction cannot write."""
    row = db.query(
        "SELECT pg_catalog.pg_is_in_recovery() AS standby,"
        " pg_catalog.current_setting('transaction_read_only')::bool AS read_only"
    )[0]
    return bool(row["standby"]), bool(row["read_only"])


def primary_server(db: Db) -> tuple[str, int] | None:
    """The host and port a standby streams from, when known (pg_stat_wal_receiver shows
    them to the extension owner only; nothing else of the connection string is read)."""
    rows = db.registry.query(
        "SELECT sender_host, sender_port FROM pg_catalog.pg_stat_wal_receiver"
        " WHERE sender_host IS NOT NULL"
    )
    return (str(rows[0]["sender_host"]), int(rows[0]["sender_port"])) if rows else None


def existing_models(db: Db, model_ids: Sequence[int]) -> set[int]:
    """Which of ``model_ids`` still exist."""
    rows = db.registry.query(
        "SELECT id FROM pyml.models WHERE id = ANY($1)", [list(model_ids)], ["int8[]"]
    )
    return {int(r["id"]) for r in rows}


def current_xid(db: Db) -> int:
    return int(db.query("SELECT pg_catalog.pg_current_xact_id()::text::int8 AS xid")[0]["xid"])


def unsettled(db: Db, notes: Sequence[Any]) -> list[Any]:
    """The notes (see pyml.server._board) whose transaction may still change what this session sees.

    Settled: aborted (or too old to tell), or committed and visible in this statement's
    snapshot. A transaction id at or past the snapshot's horizon is still running (or
    began after the snapshot), never asked about: ``pg_xact_status`` would refuse an id
    the server has not reached, such as one of a transaction lost in a crash.
    """
    if not notes:
        return []
    rows = db.query(
        "SELECT u.n FROM unnest($1::int8[]) WITH ORDINALITY AS u(xid, n),"
        " LATERAL (SELECT u.xid::text::xid8 AS xid, pg_catalog.pg_current_snapshot() AS s) c"
        " WHERE CASE WHEN c.xid >= pg_catalog.pg_snapshot_xmax(c.s) THEN true"
        "   ELSE CASE pg_catalog.pg_xact_status(c.xid) WHEN 'in progress' THEN true"
        "     WHEN 'committed' THEN NOT pg_catalog.pg_visible_in_snapshot(c.xid, c.s)"
        "     ELSE false END END",
        [[n.xid for n in notes]],
        ["int8[]"],
    )
    return [notes[r["n"] - 1] for r in rows]
