"""Monitoring rows: monitors, drift reports, the prediction log and its spool positions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pyml.server._db import Db
from pyml.server.store._rows import (
    DueMonitor,
    LoggedCall,
    ModelSettings,
    MonitorRow,
    PredictionLogging,
    ReportRow,
    parse_logged_call,
    parse_settings,
)


def prediction_logging(db: Db, project_name: str) -> PredictionLogging | None:
    """The project's id and logging rate, or None when its calls are not logged."""
    rows = db.registry.query(
        "SELECT p.id AS project_id, l.sample_rate::float8 AS sample_rate"
        " FROM pyml.projects p JOIN pyml.prediction_logging l ON l.project_id = p.id"
        " WHERE p.name = $1 AND l.sample_rate > 0",
        [project_name],
        ["text"],
    )
    return PredictionLogging(**rows[0]) if rows else None


def set_prediction_logging(db: Db, project_id: int, rate: float) -> None:
    db.registry.execute(
        "INSERT INTO pyml.prediction_logging (project_id, sample_rate, updated_by)"
        " VALUES ($1, $2, $3)"
        " ON CONFLICT (project_id) DO UPDATE SET sample_rate = EXCLUDED.sample_rate,"
        " updated_at = pg_catalog.clock_timestamp(), updated_by = EXCLUDED.updated_by",
        [project_id, rate, db.caller().name],
        ["int8", "float4", "text"],
    )


def insert_served(db: Db, project_id: int, model_id: int, calls: str) -> int:
    """Log calls answered outside the database (``pyml serve``): ``calls`` is a JSON array
    of ``[features, prediction, epoch seconds]``, already checked. Nothing is logged when
    the project's logging is off. Returns the rows written."""
    return db.registry.execute(
        "INSERT INTO pyml.logged_predictions"
        " (project_id, model_id, features, prediction, logged_at)"
        " SELECT $1, $2, c -> 0, COALESCE(c -> 1, 'null'::jsonb),"
        "        pg_catalog.to_timestamp((c ->> 2)::float8)"
        " FROM pg_catalog.jsonb_array_elements($3::jsonb) AS c"
        " WHERE EXISTS (SELECT FROM pyml.prediction_logging l"
        "               WHERE l.project_id = $1 AND l.sample_rate > 0)",
        [project_id, model_id, calls],
        ["int8", "int8", "text"],
    )


def spool_positions(db: Db, lock: bool = False) -> dict[str, int]:
    """How far each spool file was collected (committed). With ``lock``, first wait for any
    other collector of this database to finish (one collector at a time)."""
    if lock:
        db.query(
            "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pyml.prediction_spool'))"
        )
    rows = db.registry.query("SELECT file, collected FROM pyml.prediction_spool")
    return {r["file"]: int(r["collected"]) for r in rows}


def collect_lines(db: Db, file: str, lines: Sequence[str], collected: int) -> None:
    """Insert spool lines (JSON arrays: project, model, features, prediction, epoch) and
    record the file's new position, in the caller's transaction."""
    db.registry.execute(
        "INSERT INTO pyml.logged_predictions"
        " (project_id, model_id, features, prediction, logged_at)"
        " SELECT (l ->> 0)::int8, (l ->> 1)::int8, l -> 2, l -> 3,"
        "        pg_catalog.to_timestamp((l ->> 4)::float8)"
        " FROM unnest($1::text[]) AS u(line), LATERAL (SELECT u.line::jsonb AS l) j"
        " WHERE EXISTS (SELECT FROM pyml.projects p WHERE p.id = (l ->> 0)::int8)",
        [list(lines)],
        ["text[]"],
    )
    db.registry.execute(
        "INSERT INTO pyml.prediction_spool (file, collected) VALUES ($1, $2)"
        " ON CONFLICT (file) DO UPDATE SET collected = EXCLUDED.collected",
        [file, collected],
        ["text", "int8"],
    )


def drop_spool_position(db: Db, file: str) -> None:
    db.registry.execute("DELETE FROM pyml.prediction_spool WHERE file = $1", [file], ["text"])


def logged_window(db: Db, model_id: int, window: str) -> list[LoggedCall]:
    """The model's logged calls of the last ``window`` (an interval), collected or not."""
    rows = db.registry.query(
        "SELECT features::text AS features, prediction::text AS prediction"
        " FROM pyml.prediction_log WHERE model_id = $1"
        " AND logged_at >= pg_catalog.now() - $2::interval",
        [model_id, window],
        ["int8", "text"],
    )
    return [parse_logged_call(r) for r in rows]


# ---------------------------------------------------------------------------
# Monitors and reports
# ---------------------------------------------------------------------------


def get_monitor(db: Db, project_id: int) -> MonitorRow | None:
    rows = db.registry.query(
        "SELECT id, relation_name, every::text AS every, psi_threshold::float8 AS psi_threshold,"
        " retrain, created_by,"
        " (last_round_at IS NULL OR last_round_at + every <= pg_catalog.now()) AS due"
        " FROM pyml.monitors WHERE project_id = $1",
        [project_id],
        ["int8"],
    )
    return MonitorRow(**rows[0]) if rows else None


def save_monitor(
    db: Db, project_id: int, relation_name: str, every: str, psi_threshold: float, retrain: bool
) -> int:
    return int(
        db.registry.write(
            "INSERT INTO pyml.monitors (project_id, relation_name, every, psi_threshold, retrain,"
            " created_by) VALUES ($1, $2, $3::interval, $4, $5, $6)"
            " ON CONFLICT (project_id) DO UPDATE SET relation_name = EXCLUDED.relation_name,"
            " every = EXCLUDED.every, psi_threshold = EXCLUDED.psi_threshold,"
            " retrain = EXCLUDED.retrain, created_at = pg_catalog.clock_timestamp(),"
            " created_by = EXCLUDED.created_by"
            " RETURNING id",
            [project_id, relation_name, every, psi_threshold, retrain, db.caller().name],
            ["int8", "text", "text", "float4", "bool", "text"],
        )[0]["id"]
    )


def due_monitors(db: Db) -> list[DueMonitor]:
    """The monitors whose round is due and whose role (the one that set the monitor) the
    current role may act as (``SET ROLE``); read without locks (see
    pyml.server.monitoring.run_due)."""
    rows = db.registry.query(
        "SELECT m.id, m.project_id, p.name AS project, m.created_by FROM pyml.monitors m"
        " JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE (m.last_round_at IS NULL OR m.last_round_at + m.every <= pg_catalog.now())"
        " ORDER BY m.id"
    )
    return [DueMonitor(**r) for r in rows]


def may_act_as(db: Db, role: str) -> bool:
    """Whether the current role may SET ROLE to ``role`` (asked as the caller)."""
    return bool(
        db.query(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = $1"
            " AND pg_catalog.pg_has_role(r.oid, 'MEMBER')) AS ok",
            [role],
            ["text"],
        )[0]["ok"]
    )


def set_role(db: Db, role: str) -> None:
    """``SET LOCAL ROLE`` (``NONE`` for the session's own); undone if the subtransaction
    around it aborts."""
    db.query("SELECT pg_catalog.set_config('role', $1, true)", [role], ["text"])


def current_role_setting(db: Db) -> str:
    return str(db.query("SELECT pg_catalog.current_setting('role') AS r")[0]["r"])


def try_lock_round(db: Db, project_id: int) -> bool:
    """Lock the project's row for a round unless another round holds it (SKIP LOCKED)."""
    return bool(
        db.registry.write(
            "SELECT id FROM pyml.projects WHERE id = $1 FOR NO KEY UPDATE SKIP LOCKED",
            [project_id],
            ["int8"],
        )
    )


def finish_round(db: Db, project_id: int) -> None:
    db.registry.execute(
        "UPDATE pyml.monitors SET last_round_at = pg_catalog.now() WHERE project_id = $1",
        [project_id],
        ["int8"],
    )


def insert_report(db: Db, **fields: Any) -> ReportRow:
    names = [
        "project_id",
        "model_id",
        "relation_name",
        "row_count",
        "psi_threshold",
        "features",
        "drifted",
        "retrained",
        "deployed",
        "new_model_id",
        "decision",
        "metric",
        "old_score",
        "new_score",
        "holdout_rows",
        "detail",
        "created_by",
    ]
    types = [
        "int8",
        "int8",
        "text",
        "int8",
        "float4",
        "jsonb",
        "bool",
        "bool",
        "bool",
        "int8",
        "text",
        "text",
        "float8",
        "float8",
        "int8",
        "text",
        "text",
    ]
    fields = {**fields, "created_by": db.caller().name}
    values = [json.dumps(fields[n]) if n == "features" else fields.get(n) for n in names]
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    return ReportRow(
        **db.registry.write(
            f"INSERT INTO pyml.drift_reports ({', '.join(names)}) VALUES ({placeholders})"  # noqa: S608
            " RETURNING id, created_at",
            values,
            types,
        )[0]
    )


def notify(db: Db, channel: str, payload: str) -> None:
    db.query("SELECT pg_catalog.pg_notify($1, $2)", [channel, payload], ["text", "text"])


def cron_schedule(db: Db, job: str, schedule: str, command: str) -> int | None:
    """Schedule ``command`` with pg_cron when it is installed in this database and usable by
    the current role; the job id, or None."""
    present = db.query(
        "SELECT 1 FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n"
        " ON n.oid = e.extnamespace WHERE e.extname = 'pg_cron'"
        " AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')"
    )
    if not present:
        return None
    return int(
        db.query(
            "SELECT cron.schedule($1, $2, $3) AS job",
            [job, schedule, command],
            ["text", "text", "text"],
        )[0]["job"]
    )


def cron_database(db: Db) -> str | None:
    """The database pg_cron runs its jobs from, when pg_cron is loaded (a setting only
    superusers may read: asked as the extension owner)."""
    value = db.registry.query("SELECT pg_catalog.current_setting('cron.database_name', true) AS d")[
        0
    ]["d"]
    return str(value) if value else None


def model_settings(db: Db, model_id: int) -> ModelSettings:
    """What a drift check and a retrain need of a model: its training statistics (snapshot
    columns), prediction baseline, and the settings it was trained with."""
    rows = db.registry.query(
        "SELECT m.id, m.project_id, m.algorithm, m.hyperparams::text AS hyperparams,"
        " m.preprocess::text AS preprocess, m.baseline::text AS baseline,"
        " s.columns::text AS columns, s.relation_name, s.y_column_name, s.test_size::float8"
        " AS test_size, s.test_sampling"
        " FROM pyml.models m LEFT JOIN pyml.snapshots s ON s.id = m.snapshot_id"
        " WHERE m.id = $1",
        [model_id],
        ["int8"],
    )
    if not rows:
        from pyml.errors import UndefinedObject

        raise UndefinedObject(f"model {model_id} does not exist")
    return parse_settings(rows[0])


def positive_interval(db: Db, every: str) -> bool:
    """Whether ``every`` is an interval longer than zero (22007 when it is no interval)."""
    return bool(db.query("SELECT $1::interval > interval '0' AS ok", [every], ["text"])[0]["ok"])


def delete_monitor(db: Db, project_id: int) -> bool:
    return (
        db.registry.execute(
            "DELETE FROM pyml.monitors WHERE project_id = $1", [project_id], ["int8"]
        )
        > 0
    )
