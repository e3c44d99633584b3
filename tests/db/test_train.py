"""pyml.train, pyml.train_joint and pyml.snapshot against the real server (API.md section 2)."""

from __future__ import annotations

import importlib.util
import json
import math
import platform
import re
from collections.abc import Callable
from typing import Any

import lightgbm
import numpy
import psycopg
import pytest
import sklearn
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

import pyml

# SQL type of each optional argument of pyml.train / pyml.train_joint.
ARG_TYPES = {
    "task": "text",
    "relation_name": "text",
    "y_column_name": "text",
    "algorithm": "text",
    "hyperparams": "jsonb",
    "search": "text",
    "search_params": "jsonb",
    "search_args": "jsonb",
    "test_size": "real",
    "test_sampling": "text",
    "runtime": "text",
    "automatic_deploy": "boolean",
    "materialize_snapshot": "boolean",
    "preprocess": "jsonb",
}

TIMINGS = {"fit_time", "score_time"}
REGRESSION_METRICS = {"r2", "mean_absolute_error", "mean_squared_error"} | TIMINGS
CLASSIFICATION_METRICS = {"f1", "precision", "recall", "accuracy", "mcc"} | TIMINGS

# Every algorithm of API.md section 2 for each task where scikit-learn/LightGBM has an
# estimator, with hyperparameters that keep the test fast (and prove they are used).
REGRESSORS: dict[str, dict[str, Any]] = {
    "linear": {},
    "ridge": {"alpha": 0.5},
    "lasso": {"alpha": 0.1},
    "elastic_net": {"alpha": 0.1},
    "least_angle": {},
    "lasso_least_angle": {"alpha": 0.1},
    "orthogonal_matching_pursuit": {},
    "bayesian_ridge": {},
    "automatic_relevance_determination": {},
    "stochastic_gradient_descent": {"max_iter": 500},
    "passive_aggressive": {},
    "ransac": {},
    "theil_sen": {"max_subpopulation": 200},
    "huber": {"max_iter": 500},
    "quantile": {"alpha": 0.0},
    "kernel_ridge": {},
    "gaussian_process": {},
    "svm": {},
    "nu_svm": {},
    "linear_svm": {},
    "knn": {"n_neighbors": 3},
    "ada_boost": {"n_estimators": 5},
    "bagging": {"n_estimators": 3},
    "extra_trees": {"n_estimators": 5},
    "gradient_boosting_trees": {"n_estimators": 5},
    "hist_gradient_boosting": {"max_iter": 5},
    "random_forest": {"n_estimators": 5},
    "lightgbm": {"n_estimators": 5},
}
CLASSIFIERS: dict[str, dict[str, Any]] = {
    "linear": {"max_iter": 500},
    "ridge": {"alpha": 0.5},
    "stochastic_gradient_descent": {"max_iter": 500},
    "perceptron": {},
    "passive_aggressive": {},
    "gaussian_process": {},
    "svm": {},
    "nu_svm": {"nu": 0.3},
    "linear_svm": {},
    "knn": {"n_neighbors": 3},
    "ada_boost": {"n_estimators": 5},
    "bagging": {"n_estimators": 3},
    "extra_trees": {"n_estimators": 5},
    "gradient_boosting_trees": {"n_estimators": 5},
    "hist_gradient_boosting": {"max_iter": 5},
    "random_forest": {"n_estimators": 5},
    "lightgbm": {"n_estimators": 5},
}
# Classifiers whose default estimator has predict_proba (so binary metrics include log_loss).
WITH_PROBA = {
    "linear",
    "gaussian_process",
    "knn",
    "ada_boost",
    "bagging",
    "extra_trees",
    "gradient_boosting_trees",
    "hist_gradient_boosting",
    "random_forest",
    "lightgbm",
}

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _call(function: str, project: str, args: dict[str, Any]) -> tuple[sql.Composed, list[Any]]:
    """``SELECT * FROM pyml.<function>(project, name => value::type, ...)`` and its params."""
    parts: list[sql.Composable] = [sql.SQL("%s")]
    params: list[Any] = [project]
    for name, value in args.items():
        sqltype = ARG_TYPES[name]
        if name == "y_column_name" and function == "train_joint":
            sqltype = "text[]"
        if sqltype == "jsonb" and value is not None:
            value = Jsonb(value)
        parts.append(sql.SQL("{} => %s::{}").format(sql.Identifier(name), sql.SQL(sqltype)))
        params.append(value)
    query = sql.SQL("SELECT * FROM pyml.{}({})").format(
        sql.Identifier(function), sql.SQL(", ").join(parts)
    )
    return query, params


def train(conn: psycopg.Connection, project: str, **args: Any) -> tuple[Any, ...]:
    """Call pyml.train with named arguments; return its single row."""
    query, params = _call("train", project, args)
    rows = conn.execute(query, params).fetchall()
    assert len(rows) == 1
    return rows[0]


def train_joint(conn: psycopg.Connection, project: str, **args: Any) -> tuple[Any, ...]:
    query, params = _call("train_joint", project, args)
    rows = conn.execute(query, params).fetchall()
    assert len(rows) == 1
    return rows[0]


def last_model(conn: psycopg.Connection, project: str) -> dict[str, Any]:
    """The newest pyml.models row of ``project``."""
    row = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT m.* FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s ORDER BY m.id DESC LIMIT 1",
            (project,),
        )
        .fetchone()
    )
    assert row is not None, f"no model for project {project}"
    return row


def models(conn: psycopg.Connection, project: str) -> list[dict[str, Any]]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT m.* FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s ORDER BY m.id",
            (project,),
        )
        .fetchall()
    )


def snapshot_row(conn: psycopg.Connection, snapshot_id: int) -> dict[str, Any]:
    row = (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM pyml.snapshots WHERE id = %s", (snapshot_id,))
        .fetchone()
    )
    assert row is not None
    return row


def live_model_id(conn: psycopg.Connection, project: str) -> int | None:
    row = conn.execute(
        "SELECT model_id FROM pyml.deployed_models WHERE project = %s", (project,)
    ).fetchone()
    return None if row is None else row[0]


def without_timings(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in TIMINGS}


def assert_numeric_metrics(metrics: dict[str, Any], keys: set[str]) -> None:
    assert keys <= set(metrics), f"missing metrics: {keys - set(metrics)}"
    for key in keys:
        value = metrics[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
        assert math.isfinite(value), (key, value)
    for key in TIMINGS:
        assert metrics[key] >= 0


def table_name(name: str) -> str:
    """A short, plain table name derived from a test's project name."""
    return re.sub(r"\W+", "_", name).strip("_").lower()[:50]


def create_table(conn: psycopg.Connection, name: str, definition: str, rows_sql: str) -> str:
    """(Re)create ``public.<name>`` and fill it with ``INSERT ... <rows_sql>``.

    Returns the qualified name, as passed to ``relation_name``.
    """
    name = table_name(name)
    table = sql.Identifier("public", name)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(definition)))
    conn.execute(sql.SQL("INSERT INTO {} {}").format(table, sql.SQL(rows_sql)))
    return f"public.{name}"


def offset_table(conn: psycopg.Connection, name: str, offset: float) -> str:
    """40 rows ``y = 2x``; the last 10 have ``offset`` added.

    Trained with ``test_sampling => 'last', test_size => 10``, a linear model fits the
    first 30 rows exactly and misses each test row by ``offset``, so the test metrics
    are known: MAE = |offset|, MSE = offset², r2 = 1 - offset² / 33.
    """
    rows = (
        f"SELECT i, 2 * i + CASE WHEN i > 30 THEN {float(offset)!r} ELSE 0 END"  # noqa: S608
        " FROM generate_series(1, 40) AS i ORDER BY i"
    )
    return create_table(conn, name, "x real, y real", rows)


# ---------------------------------------------------------------------------
# Every algorithm, every task
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", sorted(REGRESSORS))
def test_regression_algorithm(conn: psycopg.Connection, project: str, algorithm: str) -> None:
    hyperparams = REGRESSORS[algorithm]
    result = train(
        conn,
        project,
        task="regression",
        relation_name="pyml.diabetes",
        y_column_name="target",
        algorithm=algorithm,
        hyperparams=hyperparams,
    )
    assert result == (project, "regression", algorithm, True)

    model = last_model(conn, project)
    assert model["status"] == "successful"
    assert model["algorithm"] == algorithm
    assert isinstance(model["hyperparams"], dict)
    for key, value in hyperparams.items():
        assert model["hyperparams"][key] == value
    # The values actually used, not only the ones passed.
    assert len(model["hyperparams"]) > len(hyperparams)
    assert_numeric_metrics(model["metrics"], REGRESSION_METRICS)
    metrics = model["metrics"]
    assert metrics["r2"] <= 1
    assert 0 <= metrics["mean_absolute_error"] ** 2 <= metrics["mean_squared_error"] * (1 + 1e-9)
    assert model["num_features"] == 10
    assert model["feature_names"] == DIABETES_FEATURES
    assert model["classes"] is None
    assert live_model_id(conn, project) == model["id"]


@pytest.mark.parametrize("dataset", ["iris", "breast_cancer"])
@pytest.mark.parametrize("algorithm", sorted(CLASSIFIERS))
def test_classification_algorithm(
    conn: psycopg.Connection, project: str, algorithm: str, dataset: str
) -> None:
    hyperparams = CLASSIFIERS[algorithm]
    label = "target" if dataset == "iris" else "malignant"
    result = train(
        conn,
        project,
        task="classification",
        relation_name=f"pyml.{dataset}",
        y_column_name=label,
        algorithm=algorithm,
        hyperparams=hyperparams,
    )
    assert result == (project, "classification", algorithm, True)

    model = last_model(conn, project)
    assert model["status"] == "successful"
    for key, value in hyperparams.items():
        assert model["hyperparams"][key] == value
    assert len(model["hyperparams"]) > len(hyperparams)
    metrics = model["metrics"]
    expected = set(CLASSIFICATION_METRICS)
    if dataset == "breast_cancer":
        expected.add("roc_auc")
        if algorithm in WITH_PROBA:
            expected.add("log_loss")
    assert_numeric_metrics(metrics, expected)
    for key in ("f1", "precision", "recall", "accuracy"):
        assert 0 <= metrics[key] <= 1
    assert -1 <= metrics["mcc"] <= 1
    if dataset == "iris":
        assert model["num_features"] == 4
        assert model["feature_names"] == IRIS_FEATURES
        assert model["classes"] == [0, 1, 2]
        assert "roc_auc" not in metrics  # binary only
    else:
        assert model["num_features"] == 30
        assert model["feature_names"][0] == "mean radius"
        assert model["classes"] == [False, True]
        assert 0 <= metrics["roc_auc"] <= 1
    assert live_model_id(conn, project) == model["id"]


@pytest.mark.parametrize("algorithm", ["xgboost", "xgboost_random_forest", "catboost"])
def test_optional_library_algorithm(conn: psycopg.Connection, project: str, algorithm: str) -> None:
    """Trains when the optional package is installed, else 0A000 with a pip hint."""
    package = "catboost" if algorithm == "catboost" else "xgboost"
    installed = importlib.util.find_spec(package) is not None  # the server runs this venv
    for task, relation, label in (
        ("regression", "pyml.diabetes", "target"),
        ("classification", "pyml.breast_cancer", "malignant"),
    ):
        name = f"{project}_{task}"
        args = dict(
            task=task,
            relation_name=relation,
            y_column_name=label,
            algorithm=algorithm,
            hyperparams={"n_estimators": 5},
        )
        if installed:
            assert train(conn, name, **args) == (name, task, algorithm, True)
            model = last_model(conn, name)
            assert model["status"] == "successful"
            keys = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
            assert_numeric_metrics(model["metrics"], keys)
        else:
            with pytest.raises(psycopg.errors.FeatureNotSupported) as info:
                train(conn, name, **args)
            assert info.value.diag.message_hint is not None
            assert f"pip install {package}" in info.value.diag.message_hint
            assert package in info.value.diag.message_primary
            count = conn.execute("SELECT count(*) FROM pyml.projects WHERE name = %s", (name,))
            assert count.fetchone() == (0,)


# ---------------------------------------------------------------------------
# Hyperparameters, reproducibility, search
# ---------------------------------------------------------------------------


def test_hyperparams_store_values_used(conn: psycopg.Connection, project: str) -> None:
    train(
        conn,
        project,
        task="regression",
        relation_name="pyml.diabetes",
        y_column_name="target",
        algorithm="random_forest",
        hyperparams={"n_estimators": 7, "max_depth": 3},
    )
    used = last_model(conn, project)["hyperparams"]
    assert used["n_estimators"] == 7
    assert used["max_depth"] == 3
    assert used["min_samples_split"] == 2  # a default, stored too
    assert isinstance(used["random_state"], int)  # seeds default to a fixed value


def test_training_is_reproducible(conn: psycopg.Connection, project: str) -> None:
    """A fixed default seed: the same data and settings give the same model."""
    args = dict(
        task="classification",
        relation_name="pyml.iris",
        y_column_name="target",
        algorithm="random_forest",
        hyperparams={"n_estimators": 5},
        test_sampling="random",
    )
    train(conn, project, **args)
    train(conn, project, **args)
    first, second = models(conn, project)
    assert without_timings(first["metrics"]) == without_timings(second["metrics"])
    assert first["hyperparams"] == second["hyperparams"]


def test_unknown_hyperparameter_is_refused(conn: psycopg.Connection, project: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
        train(
            conn,
            project,
            task="regression",
            relation_name="pyml.diabetes",
            y_column_name="target",
            algorithm="ridge",
            hyperparams={"no_such_knob": 1},
        )
    assert "no_such_knob" in info.value.diag.message_primary


@pytest.mark.parametrize("search", ["grid", "random"])
def test_search_stores_results_and_refits_best(
    conn: psycopg.Connection, project: str, search: str
) -> None:
    candidates = [1, 4, 9, 15, 30]
    search_args = {"cv": 3} if search == "grid" else {"cv": 3, "n_iter": 3}
    result = train(
        conn,
        project,
        task="classification",
        relation_name="pyml.wine",
        y_column_name="target",
        algorithm="knn",
        search=search,
        search_params={"n_neighbors": candidates},
        search_args=search_args,
    )
    assert result == (project, "classification", "knn", True)
    model = last_model(conn, project)
    assert model["status"] == "successful"
    assert model["search"] == search
    assert model["search_params"] == {"n_neighbors": candidates}
    metrics = model["metrics"]
    assert_numeric_metrics(metrics, CLASSIFICATION_METRICS)
    results = metrics["search_results"]
    assert len(results) == (len(candidates) if search == "grid" else 3)
    for candidate in results:
        assert candidate["params"]["n_neighbors"] in candidates
        assert isinstance(candidate["mean_test_score"], float)
        assert isinstance(candidate["std_test_score"], float)
    best = max(results, key=lambda r: r["mean_test_score"])
    chosen = model["hyperparams"]["n_neighbors"]
    assert chosen == best["params"]["n_neighbors"]

    # Refit on all training rows: the same as training the best parameters directly.
    direct = f"{project}_direct"
    train(
        conn,
        direct,
        task="classification",
        relation_name="pyml.wine",
        y_column_name="target",
        algorithm="knn",
        hyperparams={"n_neighbors": chosen},
    )
    direct_metrics = last_model(conn, direct)["metrics"]
    assert without_timings(direct_metrics) == {
        k: v for k, v in without_timings(metrics).items() if k != "search_results"
    }


# ---------------------------------------------------------------------------
# Splitting: test_size and test_sampling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("test_size", [10, 0.25])
def test_test_size_fraction_and_row_count(
    conn: psycopg.Connection, project: str, test_size: float
) -> None:
    """10 rows or a quarter of 40 rows: exactly the 10 offset rows are tested."""
    table = offset_table(conn, f"{project}_data", 5.0)
    train(
        conn,
        project,
        task="regression",
        relation_name=table,
        y_column_name="y",
        test_size=test_size,
        test_sampling="last",
    )
    model = last_model(conn, project)
    assert model["metrics"]["mean_absolute_error"] == pytest.approx(5.0, abs=1e-4)
    assert model["metrics"]["mean_squared_error"] == pytest.approx(25.0, abs=1e-3)
    snapshot = snapshot_row(conn, model["snapshot_id"])
    assert snapshot["test_size"] == pytest.approx(test_size)
    assert snapshot["test_sampling"] == "last"
    assert snapshot["row_count"] == 40


def test_test_size_other_row_count_changes_split(conn: psycopg.Connection, project: str) -> None:
    """With 8 test rows, two offset rows are trained on: the fit is no longer exact."""
    table = offset_table(conn, f"{project}_data", 5.0)
    train(
        conn,
        project,
        task="regression",
        relation_name=table,
        y_column_name="y",
        test_size=8,
        test_sampling="last",
    )
    mae = last_model(conn, project)["metrics"]["mean_absolute_error"]
    assert mae != pytest.approx(5.0, abs=1e-4)


def test_last_sampling_tests_the_last_rows(conn: psycopg.Connection, project: str) -> None:
    table = offset_table(conn, f"{project}_data", 5.0)
    train(
        conn,
        project,
        task="regression",
        relation_name=table,
        y_column_name="y",
        test_size=10,
        test_sampling="last",
    )
    train(
        conn, project, relation_name=table, y_column_name="y", test_size=10, test_sampling="random"
    )
    last, random = models(conn, project)
    assert last["metrics"]["r2"] == pytest.approx(1 - 25 / 33, abs=1e-4)
    assert random["metrics"]["mean_absolute_error"] != pytest.approx(5.0, abs=1e-4)


def test_stratified_sampling_keeps_label_proportions(
    conn: psycopg.Connection, project: str
) -> None:
    """180 "a" then 20 "b", a constant feature: the model always says "a".

    A stratified half keeps 10 "b" among 100 test rows, so accuracy is exactly 0.9
    (the last 100 rows would hold all 20 "b": 0.8).
    """
    table = create_table(
        conn,
        f"{project}_data",
        "x real, label text",
        "SELECT 1, CASE WHEN i > 180 THEN 'b' ELSE 'a' END"
        " FROM generate_series(1, 200) AS i ORDER BY i",
    )
    train(
        conn,
        project,
        task="classification",
        relation_name=table,
        y_column_name="label",
        test_size=0.5,
        test_sampling="stratified",
    )
    metrics = last_model(conn, project)["metrics"]
    assert metrics["accuracy"] == pytest.approx(0.9)


@pytest.mark.parametrize("sampling", ["random", "last", "stratified"])
def test_split_is_reproducible(conn: psycopg.Connection, project: str, sampling: str) -> None:
    args = dict(
        task="classification",
        relation_name="pyml.wine",
        y_column_name="target",
        algorithm="knn",
        test_sampling=sampling,
        test_size=0.3,
    )
    train(conn, project, **args)
    train(conn, project, **args)
    first, second = models(conn, project)
    assert without_timings(first["metrics"]) == without_timings(second["metrics"])
    assert snapshot_row(conn, first["snapshot_id"])["test_sampling"] == sampling


# ---------------------------------------------------------------------------
# Deployment after training
# ---------------------------------------------------------------------------


def test_automatic_deploy_false(conn: psycopg.Connection, project: str) -> None:
    args = dict(task="regression", relation_name="pyml.diabetes", y_column_name="target")
    assert train(conn, project, automatic_deploy=False, **args)[3] is False
    assert live_model_id(conn, project) is None
    deployments = conn.execute(
        "SELECT count(*) FROM pyml.deployments d JOIN pyml.projects p ON p.id = d.project_id"
        " WHERE p.name = %s",
        (project,),
    ).fetchone()
    assert deployments == (0,)
    assert train(conn, project, automatic_deploy=True, **args)[3] is True
    assert live_model_id(conn, project) == last_model(conn, project)["id"]


def test_automatic_deploy_compares_metrics_as_numbers(
    conn: psycopg.Connection, project: str
) -> None:
    """r2 of -2.03, then -0.28 (better), then -0.48 (worse).

    As text, '-0.28' < '-2.03' and '-0.48' > '-0.28': a text comparison would keep
    the first model and then deploy the worst one.
    """
    expected = []
    for step, (offset, deploy) in enumerate([(10.0, True), (6.5, True), (7.0, False)]):
        table = offset_table(conn, f"{project}_{step}", offset)
        result = train(
            conn,
            project,
            task="regression",
            relation_name=table,
            y_column_name="y",
            test_size=10,
            test_sampling="last",
        )
        model = last_model(conn, project)
        assert model["metrics"]["r2"] == pytest.approx(1 - offset**2 / 33, abs=1e-4)
        assert result[3] is deploy, f"step {step}: r2 {model['metrics']['r2']}"
        if deploy:
            expected.append(model["id"])
        assert live_model_id(conn, project) == expected[-1]
    flags = conn.execute(
        "SELECT deployed FROM pyml.trained_models WHERE project = %s ORDER BY id", (project,)
    ).fetchall()
    assert flags == [(False,), (True,), (False,)]


def test_deployed_flag_matches_deployed_models(conn: psycopg.Connection, project: str) -> None:
    """A better model is deployed, a worse one is not; the returned flag tells the truth.

    lasso with alpha 100 predicts about a constant (r2 near 0), linear is better, and
    an almost unregularised ridge comes out slightly worse than linear on this split.
    """
    args = dict(relation_name="pyml.diabetes", y_column_name="target")
    steps = [("lasso", {"alpha": 100.0}), ("linear", {}), ("ridge", {"alpha": 0.01})]
    flags = []
    for algorithm, hyperparams in steps:
        live_before = live_model_id(conn, project)
        deployed = train(
            conn, project, task="regression", algorithm=algorithm, hyperparams=hyperparams, **args
        )[3]
        model = last_model(conn, project)
        if live_before is not None:
            live_r2 = conn.execute(
                "SELECT (metrics->>'r2')::float8 FROM pyml.models WHERE id = %s", (live_before,)
            ).fetchone()
            assert live_r2 is not None
            assert deployed is (model["metrics"]["r2"] > live_r2[0]), algorithm
        assert (live_model_id(conn, project) == model["id"]) is deployed, algorithm
        assert (live_model_id(conn, project) == live_before) is not deployed, algorithm
        flags.append(deployed)
    assert flags == [True, True, False]


# ---------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------


def test_relation_name_null_reuses_last_snapshot(conn: psycopg.Connection, project: str) -> None:
    train(
        conn,
        project,
        task="regression",
        relation_name="pyml.diabetes",
        y_column_name="target",
        test_size=0.2,
        test_sampling="last",
    )
    first = last_model(conn, project)
    result = train(conn, project, algorithm="ridge")
    assert result[:3] == (project, "regression", "ridge")
    second = models(conn, project)[1]
    assert second["algorithm"] == "ridge"
    assert second["status"] == "successful"
    assert second["snapshot_id"] == first["snapshot_id"]
    assert second["feature_names"] == first["feature_names"]


def test_materialize_snapshot(conn: psycopg.Connection, project: str) -> None:
    source = create_table(conn, f"{project}_data", "LIKE pyml.iris", "SELECT * FROM pyml.iris")
    train(
        conn,
        project,
        task="classification",
        relation_name=source,
        y_column_name="target",
        algorithm="knn",
        materialize_snapshot=True,
    )
    model = last_model(conn, project)
    snapshot = snapshot_row(conn, model["snapshot_id"])
    assert snapshot["materialized"] is True
    assert snapshot["relation_name"] == f"pyml.snapshot_{snapshot['id']}"
    assert conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier("pyml", f"snapshot_{snapshot['id']}")
        )
    ).fetchone() == (150,)

    # The copy is what a later training reads, not the changed source.
    conn.execute("DELETE FROM " + source + " WHERE target = 2")  # noqa: S608
    train(conn, project, algorithm="knn")
    again = last_model(conn, project)
    assert again["snapshot_id"] == snapshot["id"]
    assert without_timings(again["metrics"]) == without_timings(model["metrics"])
    assert again["classes"] == [0, 1, 2]


def test_not_materialized_by_default(conn: psycopg.Connection, project: str) -> None:
    train(conn, project, task="classification", relation_name="pyml.iris", y_column_name="target")
    snapshot = snapshot_row(conn, last_model(conn, project)["snapshot_id"])
    assert snapshot["materialized"] is False
    assert snapshot["relation_name"] == "pyml.iris"
    table = conn.execute("SELECT to_regclass(%s)", (f"pyml.snapshot_{snapshot['id']}",))
    assert table.fetchone() == (None,)


def test_snapshot_function_returns_materialized_relation(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT * FROM pyml.snapshot('pyml.iris', 'target', test_size => 0.2::real,"
        " test_sampling => 'random')"
    ).fetchall()
    assert len(rows) == 1
    relation, label = rows[0]
    assert label == "target"
    assert conn.execute("SELECT count(*) FROM " + relation).fetchone() == (150,)  # noqa: S608
    snapshot = (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM pyml.snapshots WHERE relation_name = %s", (relation,))
        .fetchone()
    )
    assert snapshot is not None
    assert relation == f"pyml.snapshot_{snapshot['id']}"
    assert snapshot["materialized"] is True
    assert snapshot["y_column_name"] == ["target"]
    assert snapshot["test_size"] == pytest.approx(0.2)
    assert snapshot["test_sampling"] == "random"
    assert snapshot["row_count"] == 150
    columns = [c["name"] for c in snapshot["columns"]]
    assert columns == [*IRIS_FEATURES, "target"]


def test_snapshot_column_statistics(conn: psycopg.Connection, project: str) -> None:
    """Statistics of the training rows only: with test_sampling 'last', the first 112."""
    train(
        conn,
        project,
        task="classification",
        relation_name="pyml.iris",
        y_column_name="target",
        test_sampling="last",
    )
    training = 150 - round(0.25 * 150)
    snapshot = snapshot_row(conn, last_model(conn, project)["snapshot_id"])
    assert snapshot["row_count"] == 150
    assert snapshot["y_column_name"] == ["target"]
    columns = {c["name"]: c for c in snapshot["columns"]}
    assert [c["name"] for c in snapshot["columns"]] == [*IRIS_FEATURES, "target"]
    assert columns["target"]["role"] == "label"
    assert columns["target"]["count"] == training
    assert columns["target"]["nulls"] == 0
    for name in IRIS_FEATURES:
        stats = columns[name]
        assert stats["role"] == "feature"
        assert stats["type"] == "real"
        values = numpy.array(
            [
                r[0]
                for r in conn.execute(
                    sql.SQL("SELECT {}::float8 FROM pyml.iris").format(sql.Identifier(name))
                )
            ],
        )[:training]  # a plain table scans in its physical order, as pyml reads it
        assert stats["count"] == training
        assert stats["nulls"] == 0
        assert stats["mean"] == pytest.approx(values.mean())
        assert stats["std"] in (pytest.approx(values.std()), pytest.approx(values.std(ddof=1)))
        assert stats["min"] == pytest.approx(values.min())
        assert stats["max"] == pytest.approx(values.max())
        quantiles = stats["quantiles"]
        assert quantiles == sorted(quantiles)
        assert quantiles[0] == pytest.approx(values.min())
        assert quantiles[-1] == pytest.approx(values.max())
        histogram = stats["histogram"]
        counts = histogram["counts"] if isinstance(histogram, dict) else histogram
        assert sum(counts) == training


def test_data_fingerprint(conn: psycopg.Connection, project: str) -> None:
    table = create_table(conn, f"{project}_data", "LIKE pyml.iris", "SELECT * FROM pyml.iris")
    args = dict(task="classification", relation_name=table, y_column_name="target", algorithm="knn")
    train(conn, project, **args)
    train(conn, project, **args)
    conn.execute("UPDATE " + table + " SET sepal_length = sepal_length + 1 WHERE target = 0")  # noqa: S608
    train(conn, project, **args)
    fingerprints = [
        snapshot_row(conn, m["snapshot_id"])["data_fingerprint"] for m in models(conn, project)
    ]
    assert len({m["snapshot_id"] for m in models(conn, project)}) == 3
    assert all(isinstance(f, str) and f for f in fingerprints)
    assert fingerprints[0] == fingerprints[1]
    assert fingerprints[2] != fingerprints[0]


def test_lineage(conn: psycopg.Connection, project: str) -> None:
    train(
        conn,
        project,
        task="classification",
        relation_name="pyml.iris",
        y_column_name="target",
        algorithm="lightgbm",
        hyperparams={"n_estimators": 5},
    )
    model = last_model(conn, project)
    lineage = model["lineage"]
    assert lineage["pyml"] == pyml.__version__
    assert lineage["python"] == platform.python_version()  # the server runs this venv's Python
    assert lineage["database_user"] == "pyml_tester"
    assert model["created_by"] == "pyml_tester"
    text = json.dumps(lineage)
    for version in (sklearn.__version__, numpy.__version__, lightgbm.__version__):
        assert f'"{version}"' in text, version
    # where the time went: the four totals, and each phase (seconds, none negative)
    timings = lineage["timings"]
    assert {"load", "fit", "score", "total"} <= set(timings)
    assert {
        "read",
        "beside_fingerprint",
        "statistics",
        "snapshot",
        "child",
        "child_fit",
        "child_onnx",
        "artifacts",
        "evaluate",
        "baseline",
    } <= set(timings)
    assert all(isinstance(v, float) and v >= 0 for v in timings.values())
    assert timings["child_fit"] == timings["fit"] == model["metrics"]["fit_time"]
    assert timings["child"] + timings["read"] <= timings["total"]


def test_train_says_its_phases_at_debug2(conn: psycopg.Connection, project: str) -> None:
    """The DEBUG2 line has the registry writes too (after the lineage is written)."""
    messages: list[str] = []
    conn.add_notice_handler(lambda d: messages.append(d.message_primary or ""))
    conn.execute("SET client_min_messages = debug2")
    train(conn, project, task="regression", relation_name="pyml.diabetes", y_column_name="target")
    conn.execute("RESET client_min_messages")
    (line,) = [m for m in messages if m.startswith("pyml.train: model ")]
    assert "read " in line and "registry " in line and line.endswith(" s")


# ---------------------------------------------------------------------------
# train_joint
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "hyperparams"),
    [
        ("linear", {}),
        ("lightgbm", {"n_estimators": 5, "min_child_samples": 2}),
    ],
)
def test_train_joint(
    conn: psycopg.Connection, project: str, algorithm: str, hyperparams: dict[str, Any]
) -> None:
    result = train_joint(
        conn,
        project,
        task="regression",
        relation_name="pyml.linnerud",
        y_column_name=["weight", "waist", "pulse"],
        algorithm=algorithm,
        hyperparams=hyperparams,
    )
    assert result == (project, "regression", algorithm, True)
    model = last_model(conn, project)
    assert model["status"] == "successful"
    assert model["num_features"] == 3
    assert model["feature_names"] == ["chins", "situps", "jumps"]
    for key, value in hyperparams.items():
        assert model["hyperparams"][key] == value
    assert_numeric_metrics(model["metrics"], REGRESSION_METRICS)
    snapshot = snapshot_row(conn, model["snapshot_id"])
    assert snapshot["y_column_name"] == ["weight", "waist", "pulse"]
    assert [c["role"] for c in snapshot["columns"]] == ["feature"] * 3 + ["label"] * 3
    joint = conn.execute(
        "SELECT pyml.predict_joint(%s, ARRAY[5, 162, 60]::real[])", (project,)
    ).fetchone()[0]
    assert len(joint) == 3


# ---------------------------------------------------------------------------
# Projects and failures
# ---------------------------------------------------------------------------


def test_task_mismatch(conn: psycopg.Connection, project: str) -> None:
    train(conn, project, task="regression", relation_name="pyml.diabetes", y_column_name="target")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as info:
        train(
            conn, project, task="classification", relation_name="pyml.iris", y_column_name="target"
        )
    assert f'"{project}"' in info.value.diag.message_primary
    assert len(models(conn, project)) == 1
    task = conn.execute("SELECT task FROM pyml.projects WHERE name = %s", (project,))
    assert task.fetchone() == ("regression",)


def test_first_call_needs_task(conn: psycopg.Connection, project: str) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject) as info:
        train(conn, project, relation_name="pyml.iris", y_column_name="target")
    assert f'"{project}"' in info.value.diag.message_primary
    count = conn.execute("SELECT count(*) FROM pyml.projects WHERE name = %s", (project,))
    assert count.fetchone() == (0,)


def test_null_feature(conn: psycopg.Connection, project: str) -> None:
    table = create_table(
        conn,
        f"{project}_data",
        "a real, b real, y real",
        "SELECT i, CASE WHEN i = 7 THEN NULL ELSE i END, i FROM generate_series(1, 20) AS i",
    )
    with pytest.raises(psycopg.errors.NullValueNotAllowed) as info:
        train(conn, project, task="regression", relation_name=table, y_column_name="y")
    assert '"b"' in info.value.diag.message_primary


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_null_label(conn: psycopg.Connection, project: str, task: str) -> None:
    table = create_table(
        conn,
        f"{project}_data",
        "a real, y integer",
        "SELECT i, CASE WHEN i = 7 THEN NULL ELSE i % 2 END FROM generate_series(1, 20) AS i",
    )
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        train(conn, project, task=task, relation_name=table, y_column_name="y")


def _registry_counts(conn: psycopg.Connection) -> tuple[int, ...]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM pyml.projects), (SELECT count(*) FROM pyml.models),"
        " (SELECT count(*) FROM pyml.snapshots), (SELECT count(*) FROM pyml.files),"
        " (SELECT count(*) FROM pyml.deployments)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_failed_training_leaves_no_rows(conn: psycopg.Connection, project: str) -> None:
    table = create_table(
        conn,
        f"{project}_data",
        "a real, y real",
        "SELECT i, CASE WHEN i = 3 THEN NULL ELSE i END FROM generate_series(1, 20) AS i",
    )
    before = _registry_counts(conn)
    with pytest.raises(psycopg.errors.NullValueNotAllowed):  # a new project
        train(conn, project, task="regression", relation_name=table, y_column_name="y")
    assert _registry_counts(conn) == before
    assert conn.execute(
        "SELECT count(*) FROM pyml.projects WHERE name = %s", (project,)
    ).fetchone() == (0,)

    train(conn, project, task="regression", relation_name="pyml.diabetes", y_column_name="target")
    before = _registry_counts(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue):  # rejected while fitting
        train(conn, project, algorithm="knn", hyperparams={"n_neighbors": -1})
    with pytest.raises(psycopg.errors.NullValueNotAllowed):  # an existing project
        train(conn, project, relation_name=table, y_column_name="y")
    assert _registry_counts(conn) == before
    statuses = conn.execute(
        "SELECT status FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s",
        (project,),
    ).fetchall()
    assert statuses == [("successful",)]


def test_runtime_rust_gives_notice_and_trains(
    connect: Callable[..., psycopg.Connection], project: str
) -> None:
    session = connect()
    session.execute("SET client_min_messages = notice")
    # A Diagnostic is only valid inside the handler: keep its fields.
    notices: list[tuple[str | None, str | None]] = []
    session.add_notice_handler(
        lambda d: notices.append((d.severity_nonlocalized, d.message_primary))
    )
    result = train(
        session,
        project,
        task="classification",
        relation_name="pyml.iris",
        y_column_name="target",
        runtime="rust",
    )
    assert result == (project, "classification", "linear", True)
    assert any("rust" in (message or "") for _, message in notices)
    assert all(severity in ("NOTICE", "INFO") for severity, _ in notices)
    model = last_model(session, project)
    assert model["status"] == "successful"
    assert model["runtime"] == "python"


def test_text_label_classification(conn: psycopg.Connection, project: str) -> None:
    table = create_table(
        conn,
        f"{project}_data",
        "sepal_length real, sepal_width real, petal_length real, petal_width real, species text",
        "SELECT sepal_length, sepal_width, petal_length, petal_width,"
        " (ARRAY['setosa', 'versicolor', 'virginica'])[target + 1] FROM pyml.iris",
    )
    result = train(
        conn,
        project,
        task="classification",
        relation_name=table,
        y_column_name="species",
        algorithm="random_forest",
        hyperparams={"n_estimators": 5},
    )
    assert result == (project, "classification", "random_forest", True)
    model = last_model(conn, project)
    assert model["classes"] == ["setosa", "versicolor", "virginica"]
    types = conn.execute(
        "SELECT DISTINCT jsonb_typeof(c) FROM pyml.models, jsonb_array_elements(classes) c"
        " WHERE id = %s",
        (model["id"],),
    ).fetchall()
    assert types == [("string",)]
    assert_numeric_metrics(model["metrics"], CLASSIFICATION_METRICS)


# ---------------------------------------------------------------------------
# How relation_name is resolved
# ---------------------------------------------------------------------------


def test_relation_name_quoted_identifiers(conn: psycopg.Connection, project: str) -> None:
    conn.execute('DROP TABLE IF EXISTS public."Iris Copy"')
    conn.execute('CREATE TABLE public."Iris Copy" AS SELECT * FROM pyml.iris')
    train(
        conn,
        project,
        task="classification",
        relation_name='public."Iris Copy"',
        y_column_name="target",
    )
    snapshot = snapshot_row(conn, last_model(conn, project)["snapshot_id"])
    assert snapshot["relation_name"] == 'public."Iris Copy"'
    assert snapshot["row_count"] == 150


def test_relation_name_uses_the_callers_search_path(
    connect: Callable[..., psycopg.Connection], project: str
) -> None:
    """An unqualified name is resolved like in any SQL statement of the caller."""
    session = connect()
    session.execute("SET search_path = pyml, public")
    train(session, project, task="classification", relation_name="iris", y_column_name="target")
    snapshot = snapshot_row(session, last_model(session, project)["snapshot_id"])
    assert snapshot["relation_name"] == "pyml.iris"


def test_relation_name_temporary_table(
    connect: Callable[..., psycopg.Connection], project: str
) -> None:
    session = connect()
    session.execute("CREATE TEMPORARY TABLE scratch AS SELECT * FROM pyml.iris")
    train(session, project, task="classification", relation_name="scratch", y_column_name="target")
    assert last_model(session, project)["status"] == "successful"


def test_training_reads_rows_in_table_order(conn: psycopg.Connection) -> None:
    """Synchronized scans would start a large table's scan where another scan is, making
    'last', seeded splits and the fingerprint depend on other sessions: they are off."""
    rows = conn.execute(
        "SELECT p.proname, p.proconfig FROM pg_proc p"
        " WHERE p.pronamespace = 'pyml'::regnamespace"
        " AND p.proname IN ('train', 'train_joint', 'snapshot')"
    ).fetchall()
    assert len(rows) == 3
    for name, config in rows:
        assert "synchronize_seqscans=off" in config, name
