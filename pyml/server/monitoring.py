"""Monitoring: drift of new rows from what a model was trained on, and rounds that retrain.

:func:`drift` reads the new rows in bulk (or the logged calls of a recent window)
and compares each feature with the statistics kept at training time
(``pyml.snapshots.columns``) and the predictions with the model's baseline
(``pyml.models.baseline``); the training data is never read again. :func:`check`
runs one round: report, retrain on the current relation with the live model's
settings, score both models on the candidate's fresh holdout, deploy only a better
candidate, record everything in ``pyml.drift_reports`` and NOTIFY ``pyml_monitor``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from pyml.core import metrics, params
from pyml.core import preprocess as _preprocess
from pyml.core import statistics as stats
from pyml.core.metrics import KEY_METRIC
from pyml.core.model import Model, label_text
from pyml.core.statistics import PREDICTION
from pyml.core.timing import Phases
from pyml.errors import (
    DataException,
    InvalidParameterValue,
    ObjectNotInPrerequisiteState,
    PymlError,
)
from pyml.server import _spool, privileges, store
from pyml.server._db import Db

CHANNEL = "pyml_monitor"
DEFAULT_WINDOW = "1 day"  # logged calls compared when there is no relation (and no monitor)

LoadModel = Callable[[int], Model]
_ANONYMOUS = re.compile(r"f[0-9]+")  # the field names of an anonymous ROW(...)


class Drift(NamedTuple):
    feature: str
    metric: str
    value: float
    threshold: float
    drifted: bool


class Round(NamedTuple):
    drifted: bool
    retrained: bool
    deployed: bool
    old_model_id: int
    new_model_id: int | None
    report_id: int


# ---------------------------------------------------------------------------
# Drift
# ---------------------------------------------------------------------------


def model_for(
    db: Db, project_name: str, model_id: int | None, load: LoadModel, privilege: str | None
) -> tuple[store.ProjectRow, Model]:
    """The project and the model to check: ``model_id`` (of that project) or the live one,
    for a caller who holds ``privilege`` on the project (None: checked already)."""
    project, live_id = store.live_model_id(db, project_name)
    if privilege is not None:
        privileges.require(db, project, privilege)
    if model_id is None:
        if live_id is None:
            raise ObjectNotInPrerequisiteState(
                f'project "{project_name}" has no deployed model',
                hint="Pass model_id, or deploy a model first.",
            )
        model_id = live_id
    model = load(model_id)
    if model.project != project.name:
        raise ObjectNotInPrerequisiteState(
            f'model {model_id} belongs to project "{model.project}", not "{project_name}"'
        )
    return project, model


def drift(
    db: Db,
    model: Model,
    relation_name: str | None,
    psi_threshold: float,
    search_path: str | None = None,
    window: str = DEFAULT_WINDOW,
    settings: store.ModelSettings | None = None,
) -> tuple[list[Drift], int]:
    """Per feature PSI and KS (numbers) or PSI and Jensen-Shannon (categories), and the
    same for the predictions; with the number of rows compared. ``settings``: the model's
    ``store.model_settings``, when the caller has them already."""
    phases = Phases()
    with phases("settings"):
        settings = settings or store.model_settings(db, model.stored_id)
    columns = settings.columns
    if not columns:
        raise ObjectNotInPrerequisiteState(
            f"model {model.id} has no training statistics (its snapshot was deleted)"
        )
    features = {c["name"]: c for c in columns if c.get("role") == "feature"}
    if relation_name is None:
        with phases("read log"):
            values, predictions, n = _logged(db, model, features, window)
    else:
        values, predictions, n = _relation(db, model, features, relation_name, search_path, phases)
    source = f'relation "{relation_name}"' if relation_name else f"the last {window} of calls"
    db.notice(f"pyml: comparing {n} rows of {source} with the training rows of model {model.id}")
    rows: list[Drift] = []
    with phases("compare"):
        for name, trained in features.items():
            rows += _compare(name, trained, values[name], psi_threshold)
        baseline = settings.baseline
        if baseline is not None and predictions is not None:
            if "targets" in baseline:
                for j, target in enumerate(baseline["targets"]):
                    column = predictions[:, j]
                    rows += _compare(f"{PREDICTION}[{j + 1}]", target, column, psi_threshold)
            else:
                rows += _compare(PREDICTION, baseline, predictions, psi_threshold)
    db.debug(f"pyml: drift compared {n} rows: {phases.text()}")
    return rows, n


def _compare(name: str, baseline: dict[str, Any], values: Any, psi_threshold: float) -> list[Drift]:
    if "categories" in baseline:
        psi, js = stats.categorical_drift(baseline, values)
        return [_row(name, "psi", psi, psi_threshold), _row(name, "js", js, stats.JS_THRESHOLD)]
    psi, ks = stats.numeric_drift(baseline, values)
    return [_row(name, "psi", psi, psi_threshold), _row(name, "ks", ks, stats.KS_THRESHOLD)]


def _row(name: str, metric: str, value: float, threshold: float) -> Drift:
    return Drift(name, metric, value, threshold, bool(value > threshold))


def _relation(
    db: Db,
    model: Model,
    features: dict[str, Any],
    relation_name: str,
    search_path: str | None,
    phases: Phases,
) -> tuple[dict[str, Any], Any, int]:
    """The features of every row of the relation (one scan), and the model's predictions
    for the rows it can score (rows with a NULL it cannot take, or an infinite number, are
    left out: the statistics of the features keep them)."""
    with phases("read"):
        relation = store.resolve_relation(db, relation_name, search_path)
        columns = [relation.column(name) for name in features]
        texts = [c for c in columns if "categories" in features[c.name]]
        numbers = [c for c in columns if "categories" not in features[c.name]]
        n, arrays, lists = store.read_columns(
            db, relation, numbers, [store.as_text(c) for c in texts]
        )
    if n == 0:
        raise DataException(f'relation "{relation.qualified}" has no rows')
    with phases("convert"):
        values: dict[str, Any] = dict(zip([c.name for c in numbers], arrays, strict=True))
        values.update(zip([c.name for c in texts], lists, strict=True))
        blocks = [
            values[name] if isinstance(values[name], list) else values[name].reshape(n, -1)
            for name in features
        ]
        X = _preprocess.inputs(n, blocks) if model.has_preprocessing else np.hstack(blocks)
        refused = model.refused_rows(X)  # a NULL the model does not impute, an infinite number
    with phases("predict"):
        return values, _predictions(model, X[~refused]), n


def _predictions(model: Model, X: np.ndarray) -> Any:
    if len(X) == 0 or model.task == "decomposition":
        return None
    if model.task == "classification":
        return model.predict_label(X)
    predicted = model.predict(X)
    if model.task == "clustering":
        return [str(int(c)) for c in predicted]
    return predicted


def _logged(
    db: Db, model: Model, features: dict[str, Any], window: str
) -> tuple[dict[str, Any], Any, int]:
    """The features and predictions of the model's logged calls of the last ``window``."""
    rows = store.logged_window(db, model.stored_id, window)
    if not rows:
        raise DataException(
            f"model {model.id} has no logged predictions in the last {window}",
            hint=f"Call pyml.log_predictions('{model.project}') to log live predictions, "
            "or pass relation_name.",
        )
    inputs: dict[str, list[Any]] = {}
    predicted: list[Any] = []
    for row in rows:
        given = row.features
        if isinstance(given, list):
            given = dict(zip(model.feature_names, given, strict=False))
        elif (
            given
            and not given.keys() & features.keys()
            and all(_ANONYMOUS.fullmatch(k) for k in given)
        ):  # ROW(...): by position
            given = dict(zip(features, given.values(), strict=False))
        for name, value in given.items():
            inputs.setdefault(name, []).append(value)
        for name in features:
            if name not in given and f"{name}[1]" not in given:
                inputs.setdefault(name, []).append(None)
        predicted.append(row.prediction)
    values: dict[str, Any] = {}
    for name, baseline in features.items():
        if "categories" in baseline:
            values[name] = [None if v is None else _category(v) for v in inputs.get(name, [])]
        elif name in inputs:
            values[name] = _floats(inputs[name])
        else:  # an array column: its elements, flattened
            parts = [_floats(v) for k, v in inputs.items() if k.startswith(f"{name}[")]
            values[name] = np.concatenate(parts) if parts else np.array([])
    return values, _logged_predictions(model, predicted), len(rows)


def _logged_predictions(model: Model, predicted: list[Any]) -> Any:
    if model.task == "decomposition":
        return None
    if model.task == "regression":
        scalars = [p for p in predicted if not isinstance(p, list)]
        vectors = [p for p in predicted if isinstance(p, list)]
        if vectors and not scalars:
            return np.asarray(vectors, dtype=np.float64)
        return _floats(scalars)
    # A label as text, as the baseline counts it: predict's 2.0 and predict_label's "2" alike
    # (predict_proba's lists have no label to compare).
    return [label_text(p) for p in predicted if not isinstance(p, list)]


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def _category(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------
# A monitoring round
# ---------------------------------------------------------------------------


def check(db: Db, project_name: str, load: LoadModel, *, search_path: str | None = None) -> Round:
    """One round for the project: drift report, maybe a retrain, maybe a deployment.

    Rounds of one project are serialized by the project's row lock, taken first (and
    before any other lock): a round that waited sees what the one before it deployed.
    """
    project = store.require_project(db, project_name)
    privileges.require(db, project, "admin")
    store.lock_project(db, project.id)
    project, live = model_for(db, project_name, None, load, None)
    settings = store.model_settings(db, live.stored_id)
    monitor = store.get_monitor(db, project.id)
    relation = monitor.relation_name if monitor else settings.relation_name
    if relation is None:
        raise ObjectNotInPrerequisiteState(
            f'project "{project_name}" has no relation to check',
            hint="Set one with pyml.monitor(project_name, relation_name).",
        )
    threshold = monitor.psi_threshold if monitor else stats.PSI_THRESHOLD
    retrain = monitor.retrain if monitor else True
    rows, n = drift(db, live, relation, threshold, search_path, settings=settings)
    drifted = any(r.drifted for r in rows)
    outcome: dict[str, Any] = {"decision": "drifted" if drifted else "stable"}
    if drifted and retrain:
        outcome = _retrain(db, project, live, settings, relation, KEY_METRIC[project.task])
    report = store.insert_report(
        db,
        project_id=project.id,
        model_id=live.id,
        relation_name=relation,
        row_count=n,
        psi_threshold=threshold,
        features=[r._asdict() for r in rows],
        drifted=drifted,
        retrained="new_model_id" in outcome,
        deployed=outcome["decision"] == "deployed",
        **outcome,
    )
    if monitor:
        store.finish_round(db, project.id)
    result = Round(
        drifted,
        "new_model_id" in outcome,
        outcome["decision"] == "deployed",
        live.stored_id,
        outcome.get("new_model_id"),
        report.id,
    )
    store.notify(
        db,
        CHANNEL,
        json.dumps(
            {
                "project": project.name,
                "report_id": result.report_id,
                "decision": outcome["decision"],
                "drifted": drifted,
                "drifted_features": sorted({r.feature for r in rows if r.drifted}),
                "retrained": result.retrained,
                "deployed": result.deployed,
                "old_model_id": live.id,
                "new_model_id": result.new_model_id,
                "metric": outcome.get("metric"),
                "old_score": outcome.get("old_score"),
                "new_score": outcome.get("new_score"),
            }
        ),
    )
    return result


def _retrain(
    db: Db,
    project: store.ProjectRow,
    live: Model,
    settings: store.ModelSettings,
    relation: str,
    metric: str,
) -> dict[str, Any]:
    """Train a candidate like the live model on the current relation; score both on the
    candidate's held-out rows; deploy the candidate only if its score is higher."""
    from pyml.server import training as train

    if settings.test_size is None or settings.test_sampling is None:
        raise ObjectNotInPrerequisiteState(
            f"model {live.stored_id} has no snapshot, so a candidate cannot be trained like it",
            hint="Train the project again with pyml.train, then monitor it.",
        )
    request = train.TrainRequest(
        project_name=project.name,
        relation_name=relation,
        y_column_name=list(settings.y_column_name or []),
        algorithm=settings.algorithm,
        hyperparams=settings.hyperparams or {},
        test_size=settings.test_size,
        test_sampling=settings.test_sampling,
        automatic_deploy=False,
        preprocess={
            name: {k: v for k, v in rule.items() if k != "fitted"}
            for name, rule in (settings.preprocess or {}).items()
        },
    )
    try:
        with db.atomic():  # a failed retrain leaves no snapshot or model behind
            result = train.train(db, request)
            assert result.holdout is not None
            X, y, classes, names = result.holdout
            old = metrics.evaluate(
                live, _live_inputs(live, X, names), _live_labels(live, y, classes)
            ).get(metric)
    except PymlError as exc:
        return {"decision": "failed", "detail": exc.message}
    from pyml.server.deployment import inputs_change

    new = result.metrics.get(metric)
    better = _finite(new) > _finite(old)
    changed = inputs_change(db, live.stored_id, result.model_id) if better else None
    if changed is not None:
        db.notice(f"pyml: model {result.model_id} was not deployed: {changed}")
    deployed = better and changed is None
    if deployed:
        store.insert_deployment(db, project.id, result.model_id, "retrain")
    return {
        "decision": "deployed" if deployed else "kept",
        "new_model_id": result.model_id,
        "metric": metric,
        "old_score": _score(old),
        "new_score": _score(new),
        "holdout_rows": len(X),
        **({"detail": changed} if changed else {}),
    }


def _live_inputs(live: Model, X: np.ndarray, names: list[str]) -> np.ndarray:
    """The candidate's held-out inputs in the live model's order."""
    missing = [n for n in live.feature_names if n not in names]
    if missing:
        raise ObjectNotInPrerequisiteState(
            f'the live model\'s input "{missing[0]}" is no longer in the relation'
        )
    return X[:, [names.index(n) for n in live.feature_names]]


def _live_labels(live: Model, y: np.ndarray, classes: list[Any] | None) -> np.ndarray:
    """Held-out labels as the live model's class indices (a class it never saw: -1)."""
    if classes is None or live.classes is None:
        return y
    index = {label_text(c): i for i, c in enumerate(live.classes)}
    return np.array([index.get(label_text(classes[int(i)]), -1) for i in y])


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return -math.inf
    return number if math.isfinite(number) else -math.inf


def _score(value: Any) -> float | None:
    number = _finite(value)
    return number if math.isfinite(number) else None


def run_due(db: Db, load: LoadModel, database: int) -> list[tuple[str, Round | None, str | None]]:
    """Collect the prediction spool, then run every due round the current role may run,
    each in a subtransaction (a failing round is reported, the others run).

    A round runs with the rights of the role that set the monitor (``SET ROLE``), which
    the current role must be able to become (a superuser, as pg_cron's job, can become
    any): it reads the monitored relation as that role would. A round whose project is
    locked (another round, a deploy) is left for the next call.
    """
    collect(db, database)
    done: list[tuple[str, Round | None, str | None]] = []
    before = store.current_role_setting(db)
    for monitor in store.due_monitors(db):
        if not store.may_act_as(db, monitor.created_by):
            continue
        project = monitor.project
        try:
            with db.atomic():
                store.set_role(db, monitor.created_by)
                try:
                    if not (
                        store.try_lock_round(db, monitor.project_id)
                        and _due(store.get_monitor(db, monitor.project_id))
                    ):
                        continue
                    done.append((project, check(db, project, load), None))
                finally:
                    store.set_role(db, before)
        except PymlError as exc:
            db.warning(f'pyml: monitoring round of "{project}" failed: {exc.message}')
            done.append((project, None, exc.message))
            store.finish_round(db, monitor.project_id)
    return done


def _due(monitor: store.MonitorRow | None) -> bool:
    """Still due, as of now (another round may have run while this one waited)."""
    return monitor is not None and monitor.due


# ---------------------------------------------------------------------------
# The prediction log's spool
# ---------------------------------------------------------------------------


def collect(db: Db, database: int) -> int:
    """Move the complete spooled lines of this database into ``pyml.logged_predictions``;
    remove files collected earlier whose session has closed them (or died). Returns the
    rows moved."""
    positions = store.spool_positions(db, lock=True)
    moved = 0
    seen = set()
    for name, path in _spool.files(database):
        seen.add(name)
        start = positions.get(name, 0)
        lines, end = _spool.read_lines(path, start)
        if lines:
            store.collect_lines(db, name, lines, end)
            moved += len(lines)
        elif _spool.abandoned(path):
            # Every complete line of it was collected by a committed transaction; what may
            # follow is a line cut short by a session that was killed while writing it.
            _spool.remove(path)
            if name in positions:
                store.drop_spool_position(db, name)
    for name in positions.keys() - seen:
        store.drop_spool_position(db, name)
    return moved


def pending(db: Db, database: int, may_read: Callable[[int], bool]) -> list[str]:
    """The spooled lines not collected yet (as of this statement's snapshot), of the
    projects ``may_read`` allows."""
    positions = store.spool_positions(db)
    allowed: dict[int, bool] = {}
    lines: list[str] = []
    for name, path in _spool.files(database):
        for line in _spool.read_lines(path, positions.get(name, 0))[0]:
            project_id = _spool.project_of(line)
            if project_id not in allowed:
                allowed[project_id] = may_read(project_id)
            if allowed[project_id]:
                lines.append(line)
    return lines


MAX_SERVED = 100_000  # calls in one pyml.log_served


def log_served(db: Db, model_id: int, calls: str) -> int:
    """``pyml.log_served``: calls of model ``model_id`` answered outside the database (``pyml
    serve``), logged like SQL's (when the project's logging is on). ``calls``: a JSON array
    of ``[features, prediction, epoch seconds]``, features an object by column name or an
    array. Needs ``predict`` on the model's project, the privilege its callers need."""
    model = store.get_model(db, model_id)
    privileges.require(db, privileges.ProjectName(model.project_id, model.project), "predict")
    try:
        given = json.loads(calls)
    except ValueError:
        given = None
    if not isinstance(given, list):
        raise InvalidParameterValue('"calls" must be a JSON array of [features, prediction, time]')
    if len(given) > MAX_SERVED:
        raise InvalidParameterValue(
            f'"calls" must hold at most {MAX_SERVED} calls, got {len(given)}',
            hint="Send the calls in several batches.",
        )
    for i, call in enumerate(given):
        if (
            not isinstance(call, list)
            or len(call) != 3
            or not isinstance(call[0], dict | list)
            or isinstance(call[2], bool)
            or not isinstance(call[2], int | float)
            or not math.isfinite(call[2])
        ):
            raise InvalidParameterValue(
                f'call {i + 1} of "calls" must be [features, prediction, epoch seconds]',
                detail="Features are an object by column name or an array.",
            )
    if not given:
        return 0
    return store.insert_served(db, model.project_id, model_id, calls)


# ---------------------------------------------------------------------------
# Scheduling
# ---------------------------------------------------------------------------

CRON_JOB = "pyml-monitors"
CRON_SCHEDULE = "* * * * *"  # every minute: pyml.run_monitors() runs the rounds that are due
CRON_COMMAND = "SELECT * FROM pyml.run_monitors()"


def schedule(
    db: Db,
    project_name: str,
    relation_name: str,
    every: str,
    psi_threshold: float,
    retrain: bool,
    search_path: str | None = None,
) -> int:
    """``pyml.monitor``: record (or replace) the project's monitor; with pg_cron in this
    database, make sure the job that runs due rounds exists (else say what runs them).
    Returns the monitor id."""
    project = store.require_project(db, project_name)
    privileges.require(db, project, "admin")
    relation = store.resolve_relation(db, relation_name, search_path)
    if every is None or not store.positive_interval(db, every):
        raise InvalidParameterValue(
            f'"every" must be a positive interval, got {params.shown(every)}'
        )
    if psi_threshold is None or not psi_threshold > 0:
        raise InvalidParameterValue(
            f'"psi_threshold" must be positive, got {params.shown(psi_threshold)}'
        )
    monitor_id = store.save_monitor(
        db, project.id, relation.qualified, every, psi_threshold, bool(retrain)
    )
    if store.cron_schedule(db, CRON_JOB, CRON_SCHEDULE, CRON_COMMAND) is None:
        cron_database = store.cron_database(db)
        if cron_database is None:
            db.notice(
                "pyml: pg_cron is not loaded: run `pyml monitor` to run the rounds on schedule"
            )
        else:
            db.notice(
                f'pyml: the rounds run when pg_cron, in database "{cron_database}", '
                "has a job that runs pyml.run_monitors() in this database (pyml up "
                'schedules one for database "pyml"); else run `pyml monitor`'
            )
    return monitor_id
