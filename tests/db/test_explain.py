"""pyml.explain and pyml.feature_importance: contributions that add up, importances that rank."""

# ruff: noqa: S608  (SQL built from this module's own constants)
from __future__ import annotations

import json
import math
from typing import Any

import psycopg
import pytest

DIABETES = "ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]"
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def train(
    conn: psycopg.Connection,
    project: str,
    algorithm: str,
    *,
    task: str = "regression",
    relation: str = "pyml.diabetes",
    label: str = "target",
    hyperparams: dict[str, Any] | None = None,
) -> int:
    conn.execute(
        "SELECT * FROM pyml.train(%s, task => %s, relation_name => %s, y_column_name => %s,"
        " algorithm => %s, hyperparams => %s::jsonb, automatic_deploy => false)",
        (project, task, relation, label, algorithm, json.dumps(hyperparams or {})),
    )
    return int(
        one(
            conn,
            "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p"
            " ON p.id = m.project_id WHERE p.name = %s",
            (project,),
        )
    )


def contributions(conn: psycopg.Connection, model_id: int, offset: int = 0) -> dict[str, float]:
    rows = conn.execute(
        "SELECT e.feature, e.contribution FROM (SELECT * FROM pyml.diabetes LIMIT 1 OFFSET %s) d,"
        f" pyml.explain(%s::bigint, {DIABETES}) e",
        (offset, model_id),
    ).fetchall()
    return dict(rows)


@pytest.fixture(scope="module")
def regressors(conn: psycopg.Connection) -> dict[str, int]:
    return {
        algorithm: train(conn, f"explain {algorithm}", algorithm, hyperparams=params)
        for algorithm, params in (
            ("lightgbm", {"n_estimators": 30}),
            ("random_forest", {"n_estimators": 15}),
            ("extra_trees", {"n_estimators": 15}),
            ("gradient_boosting_trees", {"n_estimators": 20}),
            ("linear", {}),
            ("ridge", {}),
        )
    }


@pytest.mark.parametrize(
    "algorithm",
    ["lightgbm", "random_forest", "extra_trees", "gradient_boosting_trees", "linear", "ridge"],
)
@pytest.mark.parametrize("offset", [0, 17, 200])
def test_contributions_sum_to_the_prediction(
    conn: psycopg.Connection, regressors: dict[str, int], algorithm: str, offset: int
) -> None:
    model_id = regressors[algorithm]
    parts = contributions(conn, model_id, offset)
    assert list(parts) == [*FEATURES, "__bias__"]
    predicted = one(
        conn,
        f"SELECT pyml.predict(%s::bigint, {DIABETES}) FROM pyml.diabetes LIMIT 1 OFFSET %s",
        (model_id, offset),
    )
    assert math.isclose(sum(parts.values()), predicted, rel_tol=1e-4, abs_tol=1e-3)
    assert any(abs(v) > 1e-6 for k, v in parts.items() if k != "__bias__")


def test_a_row_and_an_array_explain_alike(
    conn: psycopg.Connection, regressors: dict[str, int]
) -> None:
    model_id = regressors["lightgbm"]
    from_row: dict[str, float] = dict(
        conn.execute(
            "SELECT e.* FROM (SELECT * FROM pyml.diabetes LIMIT 1) d,"
            " pyml.explain(%s::bigint, d) e",
            (model_id,),
        ).fetchall()
    )
    assert from_row == contributions(conn, model_id)
    conn.execute("SELECT pyml.deploy(%s::bigint)", (model_id,))
    by_project: dict[str, float] = dict(
        conn.execute(
            f"SELECT e.* FROM (SELECT * FROM pyml.diabetes LIMIT 1) d,"
            f" pyml.explain('explain lightgbm', {DIABETES}::real[]) e"
        ).fetchall()
    )
    assert by_project == from_row


def _sigmoid(score: float) -> float:
    return 1 / (1 + math.exp(-score))


@pytest.mark.parametrize(
    ("algorithm", "params", "to_probability"),
    [
        ("lightgbm", {"n_estimators": 20}, _sigmoid),  # log-odds
        ("random_forest", {"n_estimators": 10}, lambda p: p),  # the probability itself
        ("linear", {"max_iter": 5000}, _sigmoid),  # the decision function
    ],
)
def test_binary_classifiers_explain_the_second_class_score(
    conn: psycopg.Connection, algorithm: str, params: dict[str, Any], to_probability: Any
) -> None:
    model_id = train(
        conn,
        f"explain bc {algorithm}",
        algorithm,
        task="classification",
        relation="pyml.breast_cancer",
        label="malignant",
        hyperparams=params,
    )
    for offset in (0, 3, 100):
        total = one(
            conn,
            "SELECT sum(e.contribution) FROM (SELECT * FROM pyml.breast_cancer"
            " LIMIT 1 OFFSET %s) b, pyml.explain(%s::bigint, b) e",
            (offset, model_id),
        )
        proba = one(
            conn,
            "SELECT pyml.predict_proba(%s::bigint, b) FROM pyml.breast_cancer b LIMIT 1 OFFSET %s",
            (model_id, offset),
        )
        assert math.isclose(to_probability(total), proba[1], abs_tol=1e-4)


@pytest.mark.parametrize(
    ("algorithm", "task", "relation", "label"),
    [
        ("svm", "regression", "pyml.diabetes", "target"),
        ("knn", "classification", "pyml.breast_cancer", "malignant"),
    ],
)
def test_no_exact_method_uses_shap(
    conn: psycopg.Connection, algorithm: str, task: str, relation: str, label: str
) -> None:
    """SHAP's KernelExplainer (shap is in the dev extras): contributions plus the bias (the
    mean output over held-out rows) sum to the value, or the second class's probability."""
    model_id = train(
        conn, f"shap {algorithm}", algorithm, task=task, relation=relation, label=label
    )
    features = one(conn, "SELECT feature_names FROM pyml.models WHERE id = %s", (model_id,))
    rows: dict[str, float] = dict(
        conn.execute(
            f"SELECT e.feature, e.contribution FROM (SELECT * FROM {relation} LIMIT 1) r,"
            " pyml.explain(%s::bigint, r) e",
            (model_id,),
        ).fetchall()
    )
    assert list(rows) == [*features, "__bias__"]
    output = (
        "pyml.predict(%s::bigint, r)"
        if task == "regression"
        else "(pyml.predict_proba(%s::bigint, r))[2]"
    )
    expected = one(conn, f"SELECT {output} FROM (SELECT * FROM {relation} LIMIT 1) r", (model_id,))
    assert math.isclose(sum(rows.values()), expected, rel_tol=1e-4, abs_tol=1e-4)
    assert any(abs(v) > 1e-6 for f, v in rows.items() if f != "__bias__")


def test_explain_errors(conn: psycopg.Connection, regressors: dict[str, int]) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT * FROM pyml.explain('no such project', ARRAY[1, 2])")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute(
            "SELECT * FROM pyml.explain(%s::bigint, ARRAY[1, 2])", (regressors["lightgbm"],)
        )
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        conn.execute(
            "SELECT * FROM pyml.explain(%s::bigint, ARRAY[1,2,3,4,5,6,7,8,9,NULL])",
            (regressors["lightgbm"],),
        )


def importances(conn: psycopg.Connection, project: str) -> dict[str, float]:
    return dict(conn.execute("SELECT * FROM pyml.feature_importance(%s)", (project,)).fetchall())


@pytest.mark.parametrize("algorithm", ["lightgbm", "random_forest", "linear"])
def test_native_importances_are_normalised(
    conn: psycopg.Connection, regressors: dict[str, int], algorithm: str
) -> None:
    conn.execute("SELECT pyml.deploy(%s::bigint)", (regressors[algorithm],))
    found = importances(conn, f"explain {algorithm}")
    assert list(found) == FEATURES
    assert math.isclose(sum(found.values()), 1.0, rel_tol=1e-5)
    assert all(v >= 0 for v in found.values())
    # bmi and s5 drive diabetes progression: every model ranks one of them in its top three
    top = sorted(found, key=found.__getitem__, reverse=True)[:3]
    assert {"bmi", "s5"} & set(top)


def test_permutation_importance_otherwise(conn: psycopg.Connection) -> None:
    train(conn, "explain knn", "knn")
    conn.execute("SELECT pyml.deploy('explain knn', 'most_recent')")
    found = importances(conn, "explain knn")
    assert list(found) == FEATURES
    top = sorted(found, key=found.__getitem__, reverse=True)[:3]
    assert {"bmi", "s5"} & set(top)


def test_feature_importance_needs_a_live_model(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        importances(conn, "no such project")
    train(conn, "explain undeployed", "linear")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        importances(conn, "explain undeployed")


def test_clustering_models_have_no_feature_importance(conn: psycopg.Connection) -> None:
    """Permutation importance needs labels: refused (0A000), not a column of zeros."""
    conn.execute(
        "SELECT * FROM pyml.train('explain kmeans', 'clustering', 'pyml.diabetes',"
        " algorithm => 'kmeans')"
    )
    with pytest.raises(psycopg.errors.FeatureNotSupported) as info:
        importances(conn, "explain kmeans")
    assert info.value.diag.message_primary == (
        "feature importance of a clustering model is not supported"
    )
    with pytest.raises(psycopg.errors.FeatureNotSupported) as info:  # with or without shap
        conn.execute(
            "SELECT * FROM pyml.explain('explain kmeans', ARRAY[1,2,3,4,5,6,7,8,9,10,11]::real[])"
        )
    assert info.value.diag.message_primary == "explaining a clustering model is not supported"
