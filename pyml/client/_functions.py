"""Typed calls of pyml's SQL functions over a psycopg connection.

Each helper runs one SQL function with bound parameters, on a cursor of its own with pyml's
adapters (:func:`pyml.client.register` is not needed, and the connection's adapters are left as
they are), forwards the server's NOTICEs to the ``pyml`` logger while it runs, and returns
Python values: results of ``real`` columns come back as PostgreSQL prints them (psql's
``212.05505``, not ``212.0550537109375``: ``pyml.client`` says why). Errors are the
server's, as psycopg raises them (``psycopg.errors.InvalidParameterValue`` and so on).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias, overload

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql

from pyml.client import _signatures
from pyml.client._adapt import register

LOGGER = logging.getLogger("pyml")

Label: TypeAlias = str | int | float | bool
"""A class label, as ``pyml.models.classes`` holds it (JSON: text, number or boolean)."""

Features: TypeAlias = Sequence[Any] | NDArray[Any]
"""One row of features (1-D), or rows of them (2-D): a numpy array or (nested) lists."""

_LEVELS = {
    "DEBUG": logging.DEBUG,
    "LOG": logging.INFO,
    "INFO": logging.INFO,
    "NOTICE": logging.INFO,
    "WARNING": logging.WARNING,
}


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What ``pyml.train`` returned, with the trained model's id and metrics."""

    project: str
    task: str
    algorithm: str
    deployed: bool
    model_id: int | None  # None only when the caller may not read the project's models
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeployResult:
    """What ``pyml.deploy`` returned."""

    project: str
    strategy: str
    algorithm: str
    model_id: int


@contextmanager
def log_notices(conn: psycopg.Connection[Any], logger: logging.Logger = LOGGER) -> Iterator[None]:
    """Forward the server's NOTICEs (and WARNINGs, INFOs, ...) on ``conn`` to ``logger`` while
    the block runs: NOTICE and INFO at level INFO, WARNING at WARNING, DEBUG at DEBUG; DETAIL
    and HINT follow the message on their own lines, as psql shows them. What reaches the
    client is still decided by the session's ``client_min_messages``."""

    def forward(diag: psycopg.errors.Diagnostic) -> None:
        lines = [diag.message_primary or ""]
        if diag.message_detail:
            lines.append(f"DETAIL:  {diag.message_detail}")
        if diag.message_hint:
            lines.append(f"HINT:  {diag.message_hint}")
        level = _LEVELS.get(diag.severity_nonlocalized or "", logging.INFO)
        logger.log(level, "%s", "\n".join(lines))

    conn.add_notice_handler(forward)
    try:
        yield
    finally:
        conn.remove_notice_handler(forward)


def _cursor(conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    cur = conn.cursor()
    register(cur)  # this cursor only: the connection's adapters stay the user's
    return cur


def _call(
    name: str, signature: Mapping[str, str], given: Mapping[str, Any], columns: Sequence[str]
) -> tuple[sql.Composed, list[Any]]:
    """``SELECT <columns> FROM pyml.<name>(arg => $n::type, ...)`` and its parameters."""
    found = _signatures.arguments(signature, given)
    args = sql.SQL(", ").join(
        sql.SQL("{} => {}::{}").format(sql.Identifier(arg), sql.Placeholder(), sql.SQL(sql_type))
        for arg, _, sql_type in found
    )
    query = sql.SQL("SELECT {} FROM pyml.{}({})").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(name), args
    )
    return query, [value for _, value, _ in found]


def _target(project: str | int) -> sql.SQL:
    """The first argument of a predict function: a project name or a model id."""
    if isinstance(project, bool) or not isinstance(project, str | int):
        raise TypeError(f"project must be a project name or a model id, got {project!r}")
    return sql.SQL("%s::text" if isinstance(project, str) else "%s::bigint")


def _features(features: Features) -> Any:
    """A parameter psycopg can send: arrays and lists as they are, tuples as lists."""
    if isinstance(features, tuple):
        return [_features(item) if isinstance(item, tuple) else item for item in features]
    return features


def _rows(features: Features) -> bool:
    """Whether ``features`` holds rows (2-D) rather than one row."""
    if isinstance(features, np.ndarray):
        return features.ndim >= 2
    return bool(len(features)) and isinstance(features[0], Sequence | np.ndarray)


# ---------------------------------------------------------------------------
# Training and deployment
# ---------------------------------------------------------------------------

# The model the current transaction inserted last in a project. pyml.train writes it in a
# subtransaction of ours, and a row's xmin is an id of this transaction exactly when
# pg_xact_status says "in progress": rows of other transactions still running are invisible,
# and those of transactions that have ended are "committed". So a concurrent training of the
# same project that commits first is never taken for ours. xmin is 32 bits wide:
# pg_xact_status takes the 64-bit id, and refuses ids from the future, so only rows whose xmin
# is at most 2^31 ahead of our own id are asked about, widened from it (ids of ours come after
# it; a row that old cannot exist unfrozen, and frozen rows show xmin 2).
_TRAINED_MODEL = """
SELECT m.id, m.metrics
FROM pyml.models m
JOIN pyml.projects p ON p.id = m.project_id
CROSS JOIN (SELECT pg_current_xact_id()::text::bigint AS mine) x
CROSS JOIN LATERAL (SELECT m.xmin::text::bigint AS xmin,
                           (m.xmin::text::bigint - x.mine %% 4294967296 + 4294967296)
                           %% 4294967296 AS ahead) r
WHERE p.name = %s
  AND CASE WHEN r.xmin >= 3 AND r.ahead < 2147483648
           THEN pg_xact_status((x.mine + r.ahead)::text::xid8) END = 'in progress'
ORDER BY m.id DESC
LIMIT 1
"""


def train(
    conn: psycopg.Connection[Any],
    project_name: str,
    *,
    task: str | None = None,
    relation_name: str | None = None,
    y_column_name: str | Sequence[str] | None = None,
    algorithm: str | None = None,
    hyperparams: Mapping[str, Any] | str | None = None,
    search: str | None = None,
    search_params: Mapping[str, Any] | str | None = None,
    search_args: Mapping[str, Any] | str | None = None,
    test_size: float | None = None,
    test_sampling: str | None = None,
    runtime: str | None = None,
    automatic_deploy: bool | None = None,
    materialize_snapshot: bool | None = None,
    preprocess: Mapping[str, Any] | str | None = None,
) -> TrainResult:
    """``pyml.train`` (``pyml.train_joint`` when ``y_column_name`` lists several columns).

    Arguments left at None take the SQL function's defaults; the jsonb ones take dicts (numpy
    values allowed) or JSON text. Training and the read of the new model's id and metrics run
    in one transaction (a savepoint inside yours, else its own, committed at the end).
    """
    name, signature = _signatures.train_function(y_column_name)
    given = dict(
        project_name=project_name,
        task=task,
        relation_name=relation_name,
        y_column_name=y_column_name,
        algorithm=algorithm,
        hyperparams=hyperparams,
        search=search,
        search_params=search_params,
        search_args=search_args,
        test_size=test_size,
        test_sampling=test_sampling,
        runtime=runtime,
        automatic_deploy=automatic_deploy,
        materialize_snapshot=materialize_snapshot,
        preprocess=preprocess,
    )
    query, params = _call(name, signature, given, list(_signatures.TRAIN_COLUMNS))
    with log_notices(conn), conn.transaction(), _cursor(conn) as cur:
        row = cur.execute(query, params).fetchone()
        assert row is not None, "pyml.train returns one row"
        model = cur.execute(_TRAINED_MODEL, (row[0],)).fetchone()
    model_id, metrics = model if model else (None, None)
    project, task_, algorithm_, deployed = row
    return TrainResult(project, task_, algorithm_, deployed, model_id, metrics or {})


def deploy(
    conn: psycopg.Connection[Any],
    project: str | int,
    strategy: str | None = None,
    algorithm: str | None = None,
) -> DeployResult:
    """``pyml.deploy``: by strategy (``best_score``, ``most_recent``, ``rollback``) among a
    project's models, optionally of one algorithm; or one model, by id."""
    if isinstance(project, int) and not isinstance(project, bool):
        if strategy is not None or algorithm is not None:
            raise TypeError("deploying a model by id takes no strategy or algorithm")
        query, params = _call(
            "deploy",
            _signatures.DEPLOY_BY_ID,
            {"model_id": project},
            list(_signatures.DEPLOY_COLUMNS),
        )
    else:
        given = {"project_name": project, "strategy": strategy, "algorithm": algorithm}
        query, params = _call("deploy", _signatures.DEPLOY, given, list(_signatures.DEPLOY_COLUMNS))
    with log_notices(conn), _cursor(conn) as cur:
        row = cur.execute(query, params).fetchone()
    assert row is not None, "pyml.deploy returns one row"
    return DeployResult(*row)


# ---------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------


def _scalar(conn: psycopg.Connection[Any], query: sql.Composed, params: Sequence[Any]) -> Any:
    with log_notices(conn), _cursor(conn) as cur:
        row = cur.execute(query, params).fetchone()
    assert row is not None, "a scalar query returns one row"
    return row[0]


@overload
def predict(
    conn: psycopg.Connection[Any], project: str | int, features: Sequence[float]
) -> float: ...
@overload
def predict(
    conn: psycopg.Connection[Any], project: str | int, features: Sequence[Sequence[float]]
) -> NDArray[np.float64]: ...
@overload
def predict(
    conn: psycopg.Connection[Any], project: str | int, features: NDArray[Any]
) -> float | NDArray[np.float64]: ...
def predict(
    conn: psycopg.Connection[Any], project: str | int, features: Features
) -> float | NDArray[np.float64]:
    """``pyml.predict`` of one row (a float), or of rows (a 2-D array or nested lists) with
    ``pyml.predict_batch`` (an array, one prediction per row). ``project`` is a project name
    (its live model) or a model id."""
    if _rows(features):
        return predict_batch(conn, project, features)
    query = sql.SQL("SELECT pyml.predict({}, %s)").format(_target(project))
    return float(_scalar(conn, query, (project, _features(features))))


def predict_batch(
    conn: psycopg.Connection[Any], project: str | int, features: Features
) -> NDArray[np.float64]:
    """``pyml.predict_batch``: one prediction per row of ``features`` (n x k, or n * k values
    in one row), in row order."""
    query = sql.SQL(
        "SELECT array_agg(p ORDER BY n) FROM pyml.predict_batch({}, %s) WITH ORDINALITY AS b(p, n)"
    ).format(_target(project))
    values = _scalar(conn, query, (project, _features(features)))
    return np.array(values or [], dtype=np.float64)


def predict_label(conn: psycopg.Connection[Any], project: str | int, features: Features) -> str:
    """``pyml.predict_label``: the predicted class label of one row, as text."""
    query = sql.SQL("SELECT pyml.predict_label({}, %s)").format(_target(project))
    return str(_scalar(conn, query, (project, _features(features))))


# The live model is read, and predicts, in one statement: the labels are those of the model
# that answered, even when a deployment commits meanwhile.
_PROBA_LIVE = """
SELECT m.classes, pyml.predict_proba(m.id, %s)
FROM pyml.models m
WHERE m.id = (SELECT d.model_id FROM pyml.deployments d
              JOIN pyml.projects p ON p.id = d.project_id
              WHERE p.name = %s ORDER BY d.id DESC LIMIT 1)
"""
_PROBA_MODEL = "SELECT m.classes, pyml.predict_proba(m.id, %s) FROM pyml.models m WHERE m.id = %s"


def predict_proba(
    conn: psycopg.Connection[Any], project: str | int, features: Features
) -> dict[Label, float]:
    """``pyml.predict_proba`` of one row as ``{label: probability}``, labels in
    ``pyml.models.classes`` order, read from the model that predicted (the project's live
    model, or the model of that id)."""
    if _rows(features):
        raise ValueError("predict_proba takes one row of features; call it once per row")
    target = _target(project)
    params = (_features(features), project)
    with log_notices(conn), _cursor(conn) as cur:
        row = cur.execute(
            _PROBA_LIVE if isinstance(project, str) else _PROBA_MODEL, params
        ).fetchone()
        if row is None:
            # nothing to read (no such project or model, nothing deployed, no privilege): the
            # server's own call says which, with its SQLSTATE
            query = sql.SQL("SELECT pyml.predict_proba({}, %s)").format(target)
            cur.execute(query, (project, params[0]))
            raise LookupError(f"the model that predicted for {project!r} cannot be read")
    classes, probabilities = row
    labels = classes if classes is not None else range(len(probabilities))
    return dict(zip(labels, map(float, probabilities), strict=True))
