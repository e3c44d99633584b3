"""What a report shows: a project's monitoring rounds and deployments, read in one snapshot.

One read-only, repeatable-read transaction over ``pyml.drift_reports``, ``pyml.deployments``,
``pyml.models``, ``pyml.monitors`` and ``pyml.projects``; every value bound.
"""

from __future__ import annotations

import datetime
import math
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import class_row


class Project(NamedTuple):
    id: int
    name: str
    task: str


class Monitor(NamedTuple):
    relation_name: str
    every: str
    psi_threshold: float
    retrain: bool
    last_round_at: datetime.datetime | None


class Round(NamedTuple):
    """One row of ``pyml.drift_reports``."""

    id: int
    created_at: datetime.datetime
    model_id: int
    relation_name: str | None
    row_count: int
    psi_threshold: float
    features: list[dict[str, Any]]
    drifted: bool
    retrained: bool
    deployed: bool
    new_model_id: int | None
    decision: str
    metric: str | None
    old_score: float | None
    new_score: float | None
    holdout_rows: int | None
    detail: str | None


class Deployment(NamedTuple):
    """One row of ``pyml.deployments`` with its model's algorithm and key metric."""

    id: int
    created_at: datetime.datetime
    model_id: int
    strategy: str
    created_by: str
    algorithm: str
    score: Any  # models.metrics -> key metric (jsonb: usually a number)


class History(NamedTuple):
    """Everything the report shows."""

    project: Project
    monitor: Monitor | None
    rounds: list[Round]  # the last ``--last`` rounds, oldest first
    total_rounds: int
    deployments: list[Deployment]  # every deployment, oldest first


# ---------------------------------------------------------------------------
# Reading (one read-only snapshot; every value bound)
# ---------------------------------------------------------------------------

_ROUNDS = """
SELECT id, created_at, model_id, relation_name, row_count, psi_threshold, features, drifted,
       retrained, deployed, new_model_id, decision, metric, old_score, new_score,
       holdout_rows, detail
FROM pyml.drift_reports
WHERE project_id = %s
ORDER BY id DESC
LIMIT %s
"""

_DEPLOYMENTS = """
SELECT d.id, d.created_at, d.model_id, d.strategy, d.created_by, m.algorithm,
       m.metrics -> %s AS score
FROM pyml.deployments d
JOIN pyml.models m ON m.id = d.model_id
WHERE d.project_id = %s
ORDER BY d.id
"""


def read_history(url: str, project_name: str, last: int) -> History | None:
    """The project's rounds and deployments, or None when there is no such project."""
    with psycopg.connect(url, application_name="pyml report") as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        project = (
            conn.cursor(row_factory=class_row(Project))
            .execute("SELECT id, name, task FROM pyml.projects WHERE name = %s", (project_name,))
            .fetchone()
        )
        if project is None:
            return None
        monitor = (
            conn.cursor(row_factory=class_row(Monitor))
            .execute(
                "SELECT relation_name, every::text AS every, psi_threshold, retrain, last_round_at"
                " FROM pyml.monitors WHERE project_id = %s",
                (project.id,),
            )
            .fetchone()
        )
        rounds = (
            conn.cursor(row_factory=class_row(Round))
            .execute(_ROUNDS, (project.id, last))
            .fetchall()
        )
        (total,) = conn.execute(
            "SELECT count(*) FROM pyml.drift_reports WHERE project_id = %s", (project.id,)
        ).fetchone() or (0,)
        deployments = (
            conn.cursor(row_factory=class_row(Deployment))
            .execute(_DEPLOYMENTS, (key_metric().get(project.task, ""), project.id))
            .fetchall()
        )
    return History(project, monitor, rounds[::-1], int(total), deployments)


# ---------------------------------------------------------------------------
# Shared by the figure and the page
# ---------------------------------------------------------------------------


def number(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def is_prediction(feature: str) -> bool:
    from pyml.core.statistics import PREDICTION

    return feature == PREDICTION or feature.startswith(f"{PREDICTION}[")


def key_metric() -> dict[str, str]:
    from pyml.core.metrics import KEY_METRIC  # imported when used: `pyml --help` stays quick

    return KEY_METRIC
