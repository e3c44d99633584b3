"""The boundary between SQL and Python: the only module the SQL stubs call.

Each function here backs one SQL function (overloads share one). It converts
PL/Python values, checks arguments, calls the domain modules, and turns
:class:`~pyml.errors.PymlError` into a PostgreSQL error with its SQLSTATE.
``plpy`` and ``GD`` are always passed in; nothing imports ``plpy``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pyml import __version__
from pyml.core import params
from pyml.errors import (
    InvalidParameterValue,
    PymlError,
)
from pyml.server import privileges, standby, store
from pyml.server._db import PlpyDb
from pyml.server.session import KEY as SESSION
from pyml.server.session import Session

if TYPE_CHECKING:
    from pyml.core.model import Model
    from pyml.server.serving import Serving

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _sql(func: F) -> F:
    """Report :class:`PymlError` as a PostgreSQL error, without a Python traceback."""

    @functools.wraps(func)
    def wrapper(plpy: Any, GD: dict[str, Any], *args: Any) -> Any:
        try:
            return func(plpy, GD, *args)
        except PymlError as exc:
            error = exc
        except plpy.SPIError as exc:
            if getattr(exc, "sqlstate", None) != "25006":
                raise
            # A write that no _writes() check foresaw, on a standby or in a read-only
            # transaction: said like the others rather than as PostgreSQL's own error.
            error = standby.refusal(_db(plpy, GD), f"pyml.{func.__name__.lstrip('_')}")
        _report(plpy, error)  # outside the except block: no Python traceback chained to it

    return wrapper  # type: ignore[return-value]


def _writes(function: str) -> Callable[[F], F]:
    """For a function that writes (under ``@_sql``): on a hot standby or in a read-only
    transaction it fails at once (25006), before reading or fitting anything."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(plpy: Any, GD: dict[str, Any], *args: Any) -> Any:
            standby.require_writable(_db(plpy, GD), function)
            return func(plpy, GD, *args)

        return wrapper  # type: ignore[return-value]

    return decorate


def _report(plpy: Any, error: PymlError) -> None:
    """Raise ``error`` as a PostgreSQL error with its SQLSTATE, detail and hint."""
    fields = {"detail": error.detail, "hint": error.hint, "sqlstate": error.sqlstate}
    plpy.error(error.message, **{k: v for k, v in fields.items() if v is not None})


def _session(plpy: Any, GD: dict[str, Any]) -> Session:
    """The one object this database session keeps in ``GD`` (see pyml.server.session)."""
    current = GD.get(SESSION)
    if current is None:
        current = GD[SESSION] = Session(plpy)
    return current


def _db(plpy: Any, GD: dict[str, Any]) -> PlpyDb:
    return _session(plpy, GD).db


# ---------------------------------------------------------------------------
# Session set-up
# ---------------------------------------------------------------------------


def version_problem(plpy: Any) -> dict[str, str] | None:
    """Why this package must not serve the installed SQL (55000), or None when it may."""
    rows = plpy.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pyml'")
    installed = rows[0]["extversion"] if rows.nrows() else None
    if installed == __version__:
        return None
    return {
        "message": f'pyml Python package version "{__version__}" does not match the installed '
        f'extension version "{installed}"',
        "hint": "Run ALTER EXTENSION pyml UPDATE, or install the matching package in the "
        'virtual environment of setting "pyml.venv", then reconnect.',
        "sqlstate": "55000",
    }


@_sql
def version(plpy: Any, GD: dict[str, Any]) -> str:
    return __version__


@_sql
def registry(plpy: Any, GD: dict[str, Any]) -> None:
    """``pyml._registry_read()`` / ``_registry_write()``: run the registry statement this
    session's pyml code queued, with the extension owner's rights (see pyml.server._db)."""
    _db(plpy, GD).run_queued()


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _train_request(
    project_name: str,
    task: str | None,
    relation_name: str | None,
    y_columns: list[str] | None,
    algorithm: str | None,
    hyperparams: str | None,
    search: str | None,
    search_params: str | None,
    search_args: str | None,
    test_size: float,
    test_sampling: str,
    runtime: str | None,
    automatic_deploy: bool,
    materialize_snapshot: bool,
    preprocess: str | None,
    plpy: Any,
) -> Any:
    from pyml.server.training import TrainRequest

    if runtime == "rust":
        plpy.notice('runtime "rust" is not available in pyml; using "python"')
    return TrainRequest(
        project_name=params.non_empty("project_name", project_name),
        task=params.optional_one_of("task", task, params.TASKS),
        relation_name=relation_name,
        y_column_name=y_columns,
        # NULL: the task's default (pyml.core.algorithms.DEFAULTS), once the task is known
        algorithm=None if algorithm is None else params.non_empty("algorithm", algorithm),
        hyperparams=params.json_object("hyperparams", hyperparams),
        search=params.optional_one_of("search", search, params.SEARCHES),
        search_params=params.json_object("search_params", search_params),
        search_args=params.json_object("search_args", search_args),
        test_size=params.test_size(test_size),
        test_sampling=params.one_of("test_sampling", test_sampling, params.TEST_SAMPLINGS),
        runtime="python"
        if runtime in (None, "rust")
        else params.one_of("runtime", runtime, params.RUNTIMES),
        automatic_deploy=bool(automatic_deploy) if automatic_deploy is not None else True,
        materialize_snapshot=bool(materialize_snapshot),
        preprocess=params.json_object("preprocess", preprocess),
    )


@_sql
@_writes("pyml.train")
def train(
    plpy: Any,
    GD: dict[str, Any],
    project_name: str,
    task: str | None,
    relation_name: str | None,
    y_column_name: Any,
    algorithm: str | None,
    hyperparams: str | None,
    search: str | None,
    search_params: str | None,
    search_args: str | None,
    test_size: float,
    test_sampling: str,
    runtime: str | None,
    automatic_deploy: bool,
    materialize_snapshot: bool,
    preprocess: str | None,
    caller_search_path: str | None,
) -> list[tuple[Any, ...]]:
    """``pyml.train`` and ``pyml.train_joint`` (``y_column_name`` text or text[])."""
    from pyml.server import training

    if y_column_name is None:
        y_columns = None
    elif isinstance(y_column_name, str):
        y_columns = [y_column_name]
    else:
        y_columns = list(y_column_name)
        if not y_columns or any(c is None for c in y_columns):
            raise InvalidParameterValue('"y_column_name" must list at least one column')
    req = _train_request(
        project_name,
        task,
        relation_name,
        y_columns,
        algorithm,
        hyperparams,
        search,
        search_params,
        search_args,
        test_size,
        test_sampling,
        runtime,
        automatic_deploy,
        materialize_snapshot,
        preprocess,
        plpy,
    )
    if y_columns is not None and len(y_columns) > 1 and req.task == "classification":
        raise InvalidParameterValue('joint training supports task "regression" only')
    req.search_path = caller_search_path
    result = training.train(_db(plpy, GD), req)
    return [(result.project, result.task, result.algorithm, result.deployed)]


@_sql
@_writes("pyml.snapshot")
def snapshot(
    plpy: Any,
    GD: dict[str, Any],
    relation_name: str,
    y_column_name: str,
    test_size: float,
    test_sampling: str,
    preprocess: str | None,
    caller_search_path: str | None,
) -> list[tuple[str, str]]:
    from pyml.server import training

    snap = training.take_snapshot(
        _db(plpy, GD),
        relation_name,
        [y_column_name],
        None,
        params.test_size(test_size),
        params.one_of("test_sampling", test_sampling, params.TEST_SAMPLINGS),
        materialize=True,
        search_path=caller_search_path,
        preprocess=params.json_object("preprocess", preprocess),
    )
    return [(snap.relation, y_column_name)]


@_sql
def fingerprint(
    plpy: Any,
    GD: dict[str, Any],
    relation_name: str,
    y_column_name: list[str] | None,
    task: str | None,
    preprocess: str | None,
    caller_search_path: str | None,
) -> str:
    """``pyml.fingerprint``: the data fingerprint ``pyml.train`` would record for the rows of
    ``relation_name`` now, read the way training reads them (no privilege needed: the
    relation is read with the caller's rights, as by ``pyml.snapshot``)."""
    from pyml.server import training

    db = _db(plpy, GD)
    relation = store.resolve_relation(db, relation_name, caller_search_path)
    data = training.read_training_data(
        db,
        relation,
        list(y_column_name or []),
        params.optional_one_of("task", task, params.TASKS),
        params.json_object("preprocess", preprocess),
    )
    return data.fingerprint


# ---------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------


def _serving(plpy: Any, GD: dict[str, Any]) -> Serving:
    return _session(plpy, GD).serving


def _model(
    plpy: Any, GD: dict[str, Any], project_or_id: str | int, privilege: str = "predict"
) -> Model:
    """The live model of a project (by name) or a model by id, loaded once per session,
    for a caller who holds ``privilege`` on its project (42501 otherwise)."""
    serving = _serving(plpy, GD)
    if isinstance(project_or_id, str):
        return serving.live_model(_db(plpy, GD), project_or_id, privilege)
    return serving.model(_db(plpy, GD), project_or_id, privilege)


def _row(model: Any, features: Any) -> Any:
    from pyml.core.model import features_from_row

    if isinstance(features, dict):
        return features_from_row(features, model)
    return model.input_from_array(features)


def predict(plpy: Any, GD: dict[str, Any], project: str | int, features: Any) -> float:
    """``pyml.predict``: by project name or model id, from an array or a row.

    The online path: when this session already served ``project`` to the current role
    (its privilege checked) and the notice board says nothing changed since, one
    dictionary lookup leads to the model's row predictor (for LightGBM, one C call).
    """
    session = GD.get(SESSION)
    serving = session and session.serving_if_started
    if serving is not None and type(features) is list:
        online = serving.online.get((serving.user_id(), project))
        if online is not None and serving.clean():
            try:
                return online(features)  # type: ignore[no-any-return]
            except PymlError as exc:
                error = exc
            _report(plpy, error)
    return _predict(plpy, GD, project, features)


@_sql
def _predict(plpy: Any, GD: dict[str, Any], project: str | int, features: Any) -> float:
    return _value(plpy, GD, project, features)


def _value(plpy: Any, GD: dict[str, Any], project: str | int, features: Any) -> float:
    model = _model(plpy, GD, project)
    serving = _serving(plpy, GD)
    log = serving.logger(_db(plpy, GD), model)
    if isinstance(features, list):
        online = model.online_predictor()
        if log is not None:
            online = _logging(online, log, model.stored_id)
        serving.online[(serving.user_id(), project)] = online
        return online(features)  # type: ignore[no-any-return]
    value = float(model.predict(_row(model, features))[0])
    if log is not None:
        log(model.id, features, value)
    return value


def _logging(online: Callable[[Any], float], log: Any, model_id: int) -> Callable[[Any], float]:
    """The online predictor, logging a sampled share of its calls (pyml.log_predictions)."""

    def predict(features: Any) -> float:
        value = online(features)
        log(model_id, features, value)
        return value

    return predict


def _log(plpy: Any, GD: dict[str, Any], model: Any, features: Any, prediction: T) -> T:
    log = _serving(plpy, GD).logger(_db(plpy, GD), model)
    if log is not None:
        log(model.id, features, prediction)
    return prediction


@_sql
def predict_label(plpy: Any, GD: dict[str, Any], project: str | int, features: Any) -> str:
    return _label(plpy, GD, project, features)


def _label(plpy: Any, GD: dict[str, Any], project: str | int, features: Any) -> str:
    model = _model(plpy, GD, project)
    return _log(plpy, GD, model, features, model.predict_label(_row(model, features))[0])


@_sql
def predict_proba(plpy: Any, GD: dict[str, Any], project: str | int, features: Any) -> list[float]:
    return _proba(plpy, GD, project, features)


def _proba(plpy: Any, GD: dict[str, Any], project: str | int, features: Any) -> list[float]:
    model = _model(plpy, GD, project)
    return _log(
        plpy, GD, model, features, [float(p) for p in model.predict_proba(_row(model, features))[0]]
    )


def _labelled_proba(
    plpy: Any, GD: dict[str, Any], project: str | int, features: Any
) -> list[tuple[str, float]]:
    """predict_proba's probabilities (logged as predict_proba logs them), each with its
    class label as pyml.predict_label gives it, in ``pyml.models.classes`` order."""
    from pyml.core.model import label_text

    model = _model(plpy, GD, project)
    proba = _log(
        plpy, GD, model, features, [float(p) for p in model.predict_proba(_row(model, features))[0]]
    )
    return [(label_text(c), p) for c, p in zip(model.classes or [], proba, strict=True)]


@_sql
def predict_proba_labels(
    plpy: Any, GD: dict[str, Any], project: str | int, features: Any
) -> list[tuple[str, float]]:
    """``pyml.predict_proba_labels``: one (label, probability) row per class."""
    return _labelled_proba(plpy, GD, project, features)


@_sql
def predict_proba_jsonb(plpy: Any, GD: dict[str, Any], project: str | int, features: Any) -> str:
    """``pyml.predict_proba_jsonb``: ``{label: probability}``, as jsonb text."""
    return _jsonb_proba(_labelled_proba(plpy, GD, project, features))


def _jsonb_proba(labelled: list[tuple[str, float]]) -> str:
    """Each probability as PostgreSQL prints the ``real`` predict_proba returns (the
    shortest decimal that reads back as that number: 0.97, 1, 2.5e-05; NaN: null)."""
    import numpy as np

    values: dict[str, float | int | None] = {}
    for label, p in labelled:
        value = float(str(np.float32(p))) if math.isfinite(p) else None
        values[label] = int(value) if value is not None and value.is_integer() else value
    return json.dumps(values)


def _row_values(plpy: Any, GD: dict[str, Any], features: str, row_type: int) -> dict[str, Any]:
    """A row passed as ``to_json(row)``, with ``real`` columns back to their exact value."""
    from pyml.core.model import as_float4

    values = json.loads(features)
    if not isinstance(values, dict):
        raise InvalidParameterValue(
            "features must be an array or a row",
            hint="Pass ARRAY[...] of numbers, or ROW(...) / a table row.",
        )
    types = _session(plpy, GD).row_types
    float4 = types.get(row_type)
    if float4 is None:
        float4 = types[row_type] = store.float4_attributes(_db(plpy, GD), row_type)
    for name in float4:
        if values.get(name) is not None:
            values[name] = as_float4(values[name])
    return values


@_sql
def predict_row(
    plpy: Any, GD: dict[str, Any], project: str | int, features: str, row_type: int
) -> float:
    return _value(plpy, GD, project, _row_values(plpy, GD, features, row_type))


@_sql
def predict_label_row(
    plpy: Any, GD: dict[str, Any], project: str | int, features: str, row_type: int
) -> str:
    return _label(plpy, GD, project, _row_values(plpy, GD, features, row_type))


@_sql
def predict_proba_row(
    plpy: Any, GD: dict[str, Any], project: str | int, features: str, row_type: int
) -> list[float]:
    return _proba(plpy, GD, project, _row_values(plpy, GD, features, row_type))


@_sql
def predict_proba_labels_row(
    plpy: Any, GD: dict[str, Any], project: str | int, features: str, row_type: int
) -> list[tuple[str, float]]:
    return _labelled_proba(plpy, GD, project, _row_values(plpy, GD, features, row_type))


@_sql
def predict_proba_jsonb_row(
    plpy: Any, GD: dict[str, Any], project: str | int, features: str, row_type: int
) -> str:
    return _jsonb_proba(
        _labelled_proba(plpy, GD, project, _row_values(plpy, GD, features, row_type))
    )


@_sql
def predict_joint(plpy: Any, GD: dict[str, Any], project: str | int, features: Any) -> list[float]:
    model = _model(plpy, GD, project)
    values = model.predict(_row(model, features))
    return _log(plpy, GD, model, features, [float(v) for v in values.reshape(-1)])


@_sql
def predict_batch(plpy: Any, GD: dict[str, Any], project: str | int, features: bytes) -> bytes:
    """``pyml.predict_batch``: ``features`` is ``array_send(float8[])`` of n x k values; the
    n predictions go back as the bytes of n float4 (see pyml._float4s)."""
    from pyml.server import batch

    return batch.predict_batch(_model(plpy, GD, project), features)


@_sql
@_writes("pyml.predict_into")
def predict_into(
    plpy: Any,
    GD: dict[str, Any],
    project_name: str,
    source_relation: str,
    target_table: str,
    key_column: str,
    caller_search_path: str | None,
) -> int:
    from pyml.server import batch

    model = _model(plpy, GD, project_name)
    return batch.predict_into(
        _db(plpy, GD), model, source_relation, target_table, key_column, caller_search_path
    )


@_sql
def decompose(plpy: Any, GD: dict[str, Any], project_name: str, vector: list[Any]) -> list[float]:
    """``pyml.decompose``: the principal components of one vector (decomposition projects)."""
    model = _model(plpy, GD, project_name)
    return [float(v) for v in model.decompose(model.input_from_array(vector))[0]]


# ---------------------------------------------------------------------------
# Explanation
# ---------------------------------------------------------------------------


def _features_json(plpy: Any, GD: dict[str, Any], model: Any, features: str, type_oid: int) -> Any:
    """One row ``(1, k)`` from ``to_json`` of an array of numbers or of a row."""
    from pyml.core.model import as_float4, features_from_row

    values = json.loads(features)
    if isinstance(values, list):
        if type_oid == _FLOAT4_ARRAY:
            values = as_float4(values)
        return model.input_from_array(values)  # nested arrays flatten
    return features_from_row(_row_values(plpy, GD, features, type_oid), model)


_FLOAT4_ARRAY = 1021  # pg_type oid of real[]


@_sql
def explain(
    plpy: Any, GD: dict[str, Any], project: str | int, features: str, type_oid: int
) -> list[tuple[str, float]]:
    """``pyml.explain``: contributions that sum, with ``__bias__``, to the raw prediction."""
    from pyml.core import explanation as explaining

    model = _model(plpy, GD, project)
    inputs = _features_json(plpy, GD, model, features, type_oid)

    def background() -> Any:  # a sample of held-out rows, read once per session and model
        from pyml.server import training

        held_out = _session(plpy, GD).held_out
        if model.stored_id not in held_out:
            X = training.test_rows(_db(plpy, GD), model)[0]
            held_out[model.stored_id] = explaining.background_sample(X)
        return held_out[model.stored_id]

    return explaining.explain(model, inputs, background)


@_sql
def feature_importance(plpy: Any, GD: dict[str, Any], project_name: str) -> list[tuple[str, float]]:
    """``pyml.feature_importance`` of the live model: native importances, else the
    permutation importance on the test split."""
    from pyml.core import explanation as explaining

    model = _model(plpy, GD, project_name)
    values = explaining.importances(model)
    if values is None:
        from pyml.server import training

        X, y = training.test_rows(_db(plpy, GD), model)
        values = explaining.permutation(model, X, y)
    return list(zip(model.feature_names, values, strict=True))


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


@_sql
def export(plpy: Any, GD: dict[str, Any], project_or_id: str | int, format: str) -> bytes:
    """``pyml.export``: the ONNX part of the live model of a project, or of a model; or
    (format ``pyml``) its bundle."""
    from pyml.server import exporting

    model = _model(plpy, GD, project_or_id)
    return exporting.export(_db(plpy, GD), model, format)


@_sql
@_writes("pyml.import_model")
def import_model(
    plpy: Any, GD: dict[str, Any], bundle: bytes | None, project_name: str | None, deploy: bool
) -> int:
    """``pyml.import_model``: a bundle of ``pyml.export(..., format => 'pyml')`` as a new
    model (into ``project_name``, else the bundle's project), deployed unless ``deploy`` is
    false; its id."""
    from pyml.errors import NullValueNotAllowed
    from pyml.server import importing

    if bundle is None:
        raise NullValueNotAllowed('"bundle" must not be NULL')
    name = None if project_name is None else params.non_empty("project_name", project_name)
    return importing.import_model(
        _db(plpy, GD), bytes(bundle), name, True if deploy is None else bool(deploy)
    )


@_sql
def model_card(plpy: Any, GD: dict[str, Any], project_or_id: str | int) -> str:
    """``pyml.model_card``: what a consumer of the export needs, as JSON."""
    from pyml.server import exporting

    model = _model(plpy, GD, project_or_id)
    return json.dumps(exporting.card(_db(plpy, GD), model))


# ---------------------------------------------------------------------------
# Deployment
# ---------------------------------------------------------------------------


@_sql
@_writes("pyml.deploy")
def deploy(
    plpy: Any, GD: dict[str, Any], project_name: str, strategy: str, algorithm: str | None
) -> list[tuple[str, str, str, int]]:
    from pyml.server import deployment

    strategy = params.one_of("strategy", strategy, params.STRATEGIES)
    return [deployment.deploy(_db(plpy, GD), project_name, strategy, algorithm, _loader(plpy, GD))]


@_sql
@_writes("pyml.deploy")
def deploy_model(plpy: Any, GD: dict[str, Any], model_id: int) -> list[tuple[str, str, str, int]]:
    from pyml.server import deployment

    return [deployment.deploy_model(_db(plpy, GD), model_id, _loader(plpy, GD))]


@_sql
def deployed_model(plpy: Any, GD: dict[str, Any], project_name: str, at: str) -> int | None:
    db = _db(plpy, GD)
    project = store.require_project(db, project_name)
    privileges.require(db, project, "predict")
    return store.deployed_model_at(db, project.id, at)


@_sql
def lineage(plpy: Any, GD: dict[str, Any], model_id: int) -> str:
    db = _db(plpy, GD)
    model = store.get_model(db, model_id)
    privileges.require(db, privileges.ProjectName(model.project_id, model.project), "predict")
    return store.model_lineage(db, model_id)


# ---------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------


def _loader(plpy: Any, GD: dict[str, Any]) -> Any:
    serving, db = _serving(plpy, GD), _db(plpy, GD)
    return lambda model_id: serving.model(db, model_id)


@_sql
def drift(
    plpy: Any,
    GD: dict[str, Any],
    project_name: str,
    relation_name: str | None,
    model_id: int | None,
    caller_search_path: str | None,
) -> list[tuple[Any, ...]]:
    from pyml.core import statistics as stats
    from pyml.server import monitoring

    db = _db(plpy, GD)
    project, model = monitoring.model_for(
        db,
        params.non_empty("project_name", project_name),
        model_id,
        _loader(plpy, GD),
        "predict" if relation_name is not None else "admin",
    )
    window = monitoring.DEFAULT_WINDOW
    if relation_name is None:
        setting = store.get_monitor(db, project.id)
        window = setting.every if setting else window
    rows, _ = monitoring.drift(
        db, model, relation_name, stats.PSI_THRESHOLD, caller_search_path, window
    )
    return [tuple(r) for r in rows]


@_sql
@_writes("pyml.check")
def check(plpy: Any, GD: dict[str, Any], project_name: str) -> list[tuple[Any, ...]]:
    from pyml.server import monitoring

    result = monitoring.check(
        _db(plpy, GD), params.non_empty("project_name", project_name), _loader(plpy, GD)
    )
    return [tuple(result)]


@_sql
@_writes("pyml.monitor")
def monitor(
    plpy: Any,
    GD: dict[str, Any],
    project_name: str,
    relation_name: str,
    every: str,
    psi_threshold: float,
    retrain: bool,
    caller_search_path: str | None,
) -> int:
    from pyml.server import monitoring

    return monitoring.schedule(
        _db(plpy, GD),
        params.non_empty("project_name", project_name),
        params.non_empty("relation_name", relation_name),
        every,
        psi_threshold,
        retrain,
        caller_search_path,
    )


@_sql
@_writes("pyml.unmonitor")
def unmonitor(plpy: Any, GD: dict[str, Any], project_name: str) -> bool:
    db = _db(plpy, GD)
    project = store.require_project(db, project_name)
    privileges.require(db, project, "admin")
    return store.delete_monitor(db, project.id)


@_sql
@_writes("pyml.run_monitors")
def run_monitors(plpy: Any, GD: dict[str, Any]) -> list[tuple[Any, ...]]:
    from pyml.server import monitoring

    done = monitoring.run_due(_db(plpy, GD), _loader(plpy, GD), _serving(plpy, GD).database)
    return [(project, *(r if r is not None else (None,) * 6), error) for project, r, error in done]


@_sql
@_writes("pyml.log_predictions")
def log_predictions(plpy: Any, GD: dict[str, Any], project_name: str, sample_rate: float) -> None:
    if sample_rate is None or not 0.0 <= sample_rate <= 1.0:
        shown = params.shown(sample_rate)
        raise InvalidParameterValue(f'"sample_rate" must be between 0 and 1, got {shown}')
    db = _db(plpy, GD)
    project = store.require_project(db, params.non_empty("project_name", project_name))
    privileges.require(db, project, "admin")
    store.set_prediction_logging(db, project.id, sample_rate)  # announced by its trigger


@_sql
@_writes("pyml.log_served")
def log_served(plpy: Any, GD: dict[str, Any], model_id: int, calls: str) -> int:
    """``pyml.log_served``: calls answered by ``pyml serve``, into the prediction log."""
    from pyml.server import monitoring

    return monitoring.log_served(_db(plpy, GD), model_id, calls)


@_sql
@_writes("pyml.collect_predictions")
def collect_predictions(plpy: Any, GD: dict[str, Any]) -> int:
    from pyml.server import monitoring

    return monitoring.collect(_db(plpy, GD), _serving(plpy, GD).database)


@_sql
def spooled_predictions(plpy: Any, GD: dict[str, Any]) -> list[str]:
    """The spooled lines of the projects the caller administers (they hold callers'
    features, like pyml.logged_predictions)."""
    from pyml.server import monitoring

    db = _db(plpy, GD)
    return monitoring.pending(
        db,
        _serving(plpy, GD).database,
        lambda project_id: privileges.holds(db, project_id, "admin"),
    )


# ---------------------------------------------------------------------------
# Data and management
# ---------------------------------------------------------------------------


@_sql
@_writes("pyml.load_dataset")
def load_dataset(
    plpy: Any,
    GD: dict[str, Any],
    source: str,
    subset: str | None,
    limit: int | None,
    kwargs: str | None,
) -> list[tuple[str, int]]:
    from pyml.core import datasets

    data = datasets.load(source, subset, limit, params.json_object("kwargs", kwargs))
    table = store.create_dataset_table(_db(plpy, GD), data.name, data.columns, data.rows)
    return [(table, len(data.rows))]


@_sql
@_writes("pyml.grant")
def grant(plpy: Any, GD: dict[str, Any], project_name: str, grantee: str, privilege: str) -> None:
    privileges.grant(_db(plpy, GD), project_name, grantee, privilege)


@_sql
@_writes("pyml.revoke")
def revoke(plpy: Any, GD: dict[str, Any], project_name: str, grantee: str, privilege: str) -> None:
    privileges.revoke(_db(plpy, GD), project_name, grantee, privilege)


@_sql
@_writes("pyml.delete_model")
def delete_model(plpy: Any, GD: dict[str, Any], model_id: int, force: bool) -> None:
    from pyml.server import deployment

    deployment.delete_model(_db(plpy, GD), model_id, bool(force))
    serving = _session(plpy, GD).serving_if_started
    if serving is not None:
        serving.forget(model_id)


@_sql
@_writes("pyml.delete_project")
def delete_project(plpy: Any, GD: dict[str, Any], project_name: str, force: bool) -> None:
    from pyml.server import deployment

    deployment.delete_project(_db(plpy, GD), project_name, bool(force))


def announce(plpy: Any, GD: dict[str, Any], TD: dict[str, Any]) -> None:
    """Trigger on pyml.deployments, pyml.prediction_logging, pyml._grants and the owner of
    pyml.projects: pin a note for the sessions' caches (see pyml.server._board)."""
    from pyml.server import _board
    from pyml.server.serving import announce

    board = _session(plpy, GD).board()
    if board is None:  # sessions then look the live model up on every call
        return
    row = TD["old"] if TD["event"] == "DELETE" else TD["new"]
    if TD["table_name"] == "prediction_logging":
        announce(_db(plpy, GD), board, _board.LOGGING, row["project_id"], 0)
        return
    if TD["table_name"] in ("_grants", "projects"):
        project_id = row["project_id"] if TD["table_name"] == "_grants" else row["id"]
        announce(_db(plpy, GD), board, _board.PRIVILEGES, project_id, 0)
        return
    kind = _board.DEPLOYED if TD["event"] == "INSERT" else _board.DELETED
    announce(_db(plpy, GD), board, kind, row["id"], row["model_id"])


# ---------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------


@_sql
@_writes("pyml.stream")
def stream(
    plpy: Any,
    GD: dict[str, Any],
    project_name: str,
    source_relation: str,
    key_column: str,
    mode: str,
    channel: str | None,
    caller_search_path: str | None,
) -> int:
    from pyml.server import streaming

    return streaming.create(
        _db(plpy, GD),
        params.non_empty("project_name", project_name),
        params.non_empty("source_relation", source_relation),
        params.non_empty("key_column", key_column),
        params.non_empty("mode", mode),
        channel,
        caller_search_path,
    )


@_sql
@_writes("pyml.unstream")
def unstream(
    plpy: Any,
    GD: dict[str, Any],
    project_name: str,
    source_relation: str,
    caller_search_path: str | None,
) -> None:
    from pyml.server import streaming

    dropped = streaming.drop(
        _db(plpy, GD),
        params.non_empty("project_name", project_name),
        params.non_empty("source_relation", source_relation),
        caller_search_path,
    )
    if dropped["queued"]:
        plpy.notice(
            _count(dropped["queued"], "queued row was", "queued rows were")
            + " dropped without being scored"
        )
    if dropped["events"]:
        plpy.notice(
            _count(dropped["events"], "event was", "events were") + " dropped from the outbox"
        )


@_sql
def stream_read(
    plpy: Any,
    GD: dict[str, Any],
    stream_id: int,
    consumer: str,
    max_rows: int,
    after_event: int | None,
) -> list[dict[str, Any]]:
    from pyml.server import streaming

    if stream_id is None or consumer is None or max_rows is None:
        raise InvalidParameterValue("stream_id, consumer and max_rows must not be NULL")
    return streaming.read(_session(plpy, GD), stream_id, consumer, max_rows, after_event)


@_sql
@_writes("pyml.stream_ack")
def stream_ack(plpy: Any, GD: dict[str, Any], stream_id: int, consumer: str, event_id: int) -> None:
    from pyml.server import streaming

    streaming.ack(_session(plpy, GD), stream_id, consumer, event_id)


@_sql
@_writes("pyml.stream_prune")
def stream_prune(plpy: Any, GD: dict[str, Any], stream_id: int | None) -> int:
    from pyml.server import streaming

    return streaming.prune(_db(plpy, GD), stream_id)


@_sql
@_writes("pyml.stream_work")
def stream_work(
    plpy: Any, GD: dict[str, Any], stream_id: int | None, batch_size: int | None
) -> None:
    from pyml.server import streaming

    def commit() -> None:
        try:
            plpy.commit()
        except plpy.SPIError as exc:
            if getattr(exc, "sqlstate", None) != "2D000":
                raise
            from pyml.errors import ActiveSqlTransaction

            raise ActiveSqlTransaction(
                "pyml.stream_work cannot run inside a transaction block",
                detail="It commits after each batch of rows it scores.",
                hint="CALL it on its own (autocommit), as pyml worker does.",
            ) from None
        plpy.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")

    streaming.work(
        _session(plpy, GD), stream_id, 1000 if batch_size is None else batch_size, commit
    )


def _verified(plpy: Any, GD: dict[str, Any], args: list[str], relid: int, mode: str) -> None:
    """Refuse a trigger someone made with pyml's function but another stream's arguments."""
    verified = _session(plpy, GD).streams.verified
    key = (tuple(args), relid, mode)  # args is a list
    if key not in verified:
        check = store.is_sync_trigger if mode == "sync" else store.is_async_trigger
        if not check(_db(plpy, GD), args, relid):
            from pyml.errors import ObjectNotInPrerequisiteState

            relation = store.relation_by_oid(_db(plpy, GD), relid).qualified
            raise ObjectNotInPrerequisiteState(
                f'relation "{relation}" is not the source of {mode} stream '
                f"{args[0] if args else '(none)'}",
                detail=f"Its trigger calls pyml._stream_{'score' if mode == 'sync' else 'enqueue'}"
                " with arguments pyml.stream did not give it.",
                hint="Drop that trigger; pyml.stream installs the triggers of a stream.",
            )
        verified.add(key)


@_sql
def stream_score(plpy: Any, GD: dict[str, Any], TD: dict[str, Any]) -> None:
    """``pyml._stream_score()``, the trigger of sync streams (after each statement)."""
    from pyml.server import streaming

    args, relid = list(TD["args"] or []), int(TD["relid"])
    _verified(plpy, GD, args, relid, "sync")
    streaming.score_statement(_session(plpy, GD), args, relid, TD["event"] == "UPDATE")


@_sql
def stream_enqueue(plpy: Any, GD: dict[str, Any], TD: dict[str, Any]) -> None:
    """``pyml._stream_enqueue()``, the trigger of async streams: queue the statement's rows."""
    from pyml.server import streaming

    args, relid = list(TD["args"] or []), int(TD["relid"])
    _verified(plpy, GD, args, relid, "async")
    streaming.enqueue_statement(_session(plpy, GD), args, relid, TD["event"] == "UPDATE")


def _count(n: int, one: str, many: str) -> str:
    """``1 event was``, ``2 events were``: a count with its noun and verb agreeing."""
    return f"{n} {one if n == 1 else many}"
