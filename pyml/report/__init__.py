"""``pyml report PROJECT``: a project's monitoring history, written for people.

One self-contained HTML file (or, for a path ending in ``.png``, the figure
alone): the latest monitoring round, a figure of the PSI of every feature over
the rounds above the deployment history, then a table of every round and of
every deployment. The report only reads: one read-only, repeatable-read
transaction over ``pyml.drift_reports``, ``pyml.deployments``, ``pyml.models``,
``pyml.monitors`` and ``pyml.projects``. matplotlib draws the figure (Agg, no
display needed).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import math
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import class_row

URL_HELP = "database URL (default: $PYML_URL, else the local server's database pyml)"
DEFAULT_LAST = 50


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
# Command line
# ---------------------------------------------------------------------------


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "report", help="write a report of a project's monitoring history (HTML or PNG)",
        description="Write a report of a project's monitoring history: drift per feature "
        "over the rounds, decisions and deployments (one HTML file, or the figure as PNG).")
    parser.add_argument("project", help="the project to report on")
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--output", "-o", metavar="PATH", type=Path,
                        help="where to write (default: <project>-report.html); "
                        "a path ending in .png gets the figure only")
    parser.add_argument("--last", type=_positive_int, default=DEFAULT_LAST, metavar="N",
                        help=f"monitoring rounds shown (default: {DEFAULT_LAST})")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def run(url: str, args: argparse.Namespace) -> int:
    """Write the report of ``args.project``; print its path. Returns the exit status."""
    if importlib.util.find_spec("matplotlib") is None:
        print("pyml: error: pyml report needs matplotlib (pip install matplotlib)",
              file=sys.stderr)
        return 1
    try:
        history = read_history(url, args.project, args.last)
    except psycopg.Error as exc:
        print(f"pyml: error: {exc}".rstrip(), file=sys.stderr)
        return 1
    if history is None:
        print(f'pyml: error: project "{args.project}" does not exist', file=sys.stderr)
        return 1
    from pyml.report.figure import figure_png
    from pyml.report.page import render_html

    path = Path(args.output) if args.output else default_output(args.project)
    png = figure_png(history)
    data = png if path.suffix.lower() == ".png" else render_html(history, png).encode()
    try:
        path.write_bytes(data)
    except OSError as exc:
        print(f'pyml: error: cannot write "{path}": {exc.strerror}', file=sys.stderr)
        return 1
    print(path)
    return 0


def default_output(project: str) -> Path:
    """``<project>-report.html`` in the current directory, the name made safe for a file."""
    stem = re.sub(r"[^\w.-]+", "_", project).strip("._") or "project"
    return Path(f"{stem}-report.html")


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
        project = conn.cursor(row_factory=class_row(Project)).execute(
            "SELECT id, name, task FROM pyml.projects WHERE name = %s", (project_name,)
        ).fetchone()
        if project is None:
            return None
        monitor = conn.cursor(row_factory=class_row(Monitor)).execute(
            "SELECT relation_name, every::text AS every, psi_threshold, retrain, last_round_at"
            " FROM pyml.monitors WHERE project_id = %s", (project.id,)
        ).fetchone()
        rounds = conn.cursor(row_factory=class_row(Round)).execute(
            _ROUNDS, (project.id, last)).fetchall()
        (total,) = conn.execute(
            "SELECT count(*) FROM pyml.drift_reports WHERE project_id = %s", (project.id,)
        ).fetchone() or (0,)
        deployments = conn.cursor(row_factory=class_row(Deployment)).execute(
            _DEPLOYMENTS, (_key_metric().get(project.task, ""), project.id)).fetchall()
    return History(project, monitor, rounds[::-1], int(total), deployments)



# ---------------------------------------------------------------------------
# Shared by the figure and the page
# ---------------------------------------------------------------------------


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _is_prediction(feature: str) -> bool:
    from pyml.monitor import PREDICTION

    return feature == PREDICTION or feature.startswith(f"{PREDICTION}[")


def _key_metric() -> dict[str, str]:
    from pyml.train import KEY_METRIC  # imported when used: `pyml --help` stays quick

    return KEY_METRIC
