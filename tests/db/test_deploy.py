"""pyml.deploy strategies, the deployment history, its views, and deleting models and projects."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

ROW = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]  # a diabetes-like row


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    """The single value of a one-row, one-column query."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def train(
    conn: psycopg.Connection,
    project: str,
    relation: str = "pyml.diabetes",
    label: str = "target",
    algorithm: str = "linear",
    hyperparams: dict[str, Any] | None = None,
    automatic_deploy: bool = True,
    test_sampling: str = "stratified",
    task: str = "regression",
) -> int:
    """Train one model; return its id."""
    conn.execute(
        "SELECT * FROM pyml.train(%s, task => %s, relation_name => %s, y_column_name => %s,"
        " algorithm => %s, hyperparams => %s::jsonb, automatic_deploy => %s,"
        " test_sampling => %s)",
        (
            project,
            task,
            relation,
            label,
            algorithm,
            json.dumps(hyperparams or {}),
            automatic_deploy,
            test_sampling,
        ),
    )
    return int(
        one(
            conn,
            "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s",
            (project,),
        )
    )


def live(conn: psycopg.Connection, project: str) -> int | None:
    """The model of the project's latest deployment, read from the table itself."""
    row = conn.execute(
        "SELECT d.model_id FROM pyml.deployments d JOIN pyml.projects p ON p.id = d.project_id"
        " WHERE p.name = %s ORDER BY d.id DESC LIMIT 1",
        (project,),
    ).fetchone()
    return None if row is None else int(row[0])


def history(conn: psycopg.Connection, project: str) -> list[tuple[int, str]]:
    """(model_id, strategy) of every deployment of the project, oldest first."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT d.model_id, d.strategy FROM pyml.deployments d"
            " JOIN pyml.projects p ON p.id = d.project_id WHERE p.name = %s ORDER BY d.id",
            (project,),
        ).fetchall()
    ]


def deploy(
    conn: psycopg.Connection, project: str, strategy: str, algorithm: str | None = None
) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT * FROM pyml.deploy(%s, strategy => %s, algorithm => %s)",
        (project, strategy, algorithm),
    ).fetchone()
    assert row is not None
    return tuple(row)


def now(conn: psycopg.Connection) -> datetime:
    return one(conn, "SELECT clock_timestamp()")


@pytest.fixture
def two_models(conn: psycopg.Connection, project: str) -> tuple[int, int]:
    """A project with a linear model (live, new_score) and a LightGBM model (not deployed)."""
    linear = train(conn, project)
    lightgbm = train(
        conn, project, algorithm="lightgbm", hyperparams={"n_estimators": 5}, automatic_deploy=False
    )
    assert history(conn, project) == [(linear, "new_score")]
    return linear, lightgbm


@pytest.fixture
def negative_scores(conn: psycopg.Connection, project: str) -> tuple[int, int]:
    """Two models whose r2 are negative: as text, "-0.51..." sorts above "-0.09...".

    Train on the first 30 rows, test on the last 10, which follow another pattern. Lasso with a
    large alpha predicts a constant (r2 about -0.09), linear extrapolates (r2 about -0.51).
    """
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT i::real AS x,"
            " (CASE WHEN i <= 30 THEN 0.65 + 0.01 * (i - 15.5) ELSE mod(i, 2) END)::real AS y"
            " FROM generate_series(1, 40) AS i ORDER BY i"
        ).format(sql.Identifier("public", project))
    )
    relation = f"public.{project}"
    lasso = train(conn, project, relation, "y", "lasso", {"alpha": 10.0}, test_sampling="last")
    linear = train(
        conn, project, relation, "y", "linear", automatic_deploy=False, test_sampling="last"
    )
    r2: dict[int, float] = dict(
        conn.execute(
            "SELECT id, (metrics->>'r2')::float8 FROM pyml.models WHERE id IN (%s, %s)",
            (lasso, linear),
        ).fetchall()
    )
    assert r2[linear] < r2[lasso] < 0
    # The case where a comparison of the JSON text would pick the worse model.
    assert one(
        conn,
        "SELECT (SELECT metrics->>'r2' FROM pyml.models WHERE id = %s)"
        " > (SELECT metrics->>'r2' FROM pyml.models WHERE id = %s)",
        (linear, lasso),
    )
    return lasso, linear


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


def test_best_score_compares_numbers(
    conn: psycopg.Connection, project: str, negative_scores: tuple[int, int]
) -> None:
    lasso, linear = negative_scores
    assert history(conn, project) == [(lasso, "new_score")]
    assert deploy(conn, project, "most_recent") == (project, "most_recent", "linear", linear)
    assert deploy(conn, project, "best_score") == (project, "best_score", "lasso", lasso)
    assert live(conn, project) == lasso


def test_best_score_is_the_default(
    conn: psycopg.Connection, project: str, negative_scores: tuple[int, int]
) -> None:
    lasso, linear = negative_scores
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (linear,))
    row = conn.execute("SELECT * FROM pyml.deploy(%s)", (project,)).fetchone()
    assert row == (project, "best_score", "lasso", lasso)


def test_new_model_is_deployed_only_when_it_scores_better(
    conn: psycopg.Connection, project: str, negative_scores: tuple[int, int]
) -> None:
    lasso, _ = negative_scores
    worse = train(conn, project, f"public.{project}", "y", "linear", test_sampling="last")
    assert live(conn, project) == lasso
    assert history(conn, project) == [(lasso, "new_score")]
    assert worse != lasso


def test_best_score_with_algorithm_filter(
    conn: psycopg.Connection, project: str, negative_scores: tuple[int, int]
) -> None:
    lasso, linear = negative_scores
    assert deploy(conn, project, "best_score", "linear") == (
        project,
        "best_score",
        "linear",
        linear,
    )
    assert live(conn, project) == linear


def test_most_recent(conn: psycopg.Connection, project: str, two_models: tuple[int, int]) -> None:
    linear, lightgbm = two_models
    assert deploy(conn, project, "most_recent") == (project, "most_recent", "lightgbm", lightgbm)
    assert history(conn, project) == [(linear, "new_score"), (lightgbm, "most_recent")]


def test_most_recent_with_algorithm_filter(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, lightgbm = two_models
    deploy(conn, project, "most_recent")
    assert deploy(conn, project, "most_recent", "linear") == (
        project,
        "most_recent",
        "linear",
        linear,
    )
    assert live(conn, project) == linear


def test_predict_uses_the_deployed_model(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, lightgbm = two_models
    by_linear = one(conn, "SELECT pyml.predict(%s::bigint, %s::float8[])", (linear, ROW))
    by_lightgbm = one(conn, "SELECT pyml.predict(%s::bigint, %s::float8[])", (lightgbm, ROW))
    assert by_linear != pytest.approx(by_lightgbm, rel=1e-3)
    predict = "SELECT pyml.predict(%s::text, %s::float8[])"
    assert one(conn, predict, (project, ROW)) == pytest.approx(by_linear, rel=1e-6)
    deploy(conn, project, "most_recent")
    assert one(conn, predict, (project, ROW)) == pytest.approx(by_lightgbm, rel=1e-6)
    deploy(conn, project, "rollback")
    assert one(conn, predict, (project, ROW)) == pytest.approx(by_linear, rel=1e-6)


def test_rollback_goes_to_the_previous_model(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, lightgbm = two_models
    deploy(conn, project, "most_recent")
    assert deploy(conn, project, "rollback") == (project, "rollback", "linear", linear)
    assert history(conn, project) == [
        (linear, "new_score"),
        (lightgbm, "most_recent"),
        (linear, "rollback"),
    ]


def test_rollback_with_three_models(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, lightgbm = two_models
    third = train(conn, project, algorithm="ridge", automatic_deploy=False)
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (lightgbm,))
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (third,))
    assert deploy(conn, project, "rollback")[3] == lightgbm
    assert live(conn, project) == lightgbm
    assert linear not in (lightgbm, third)


def test_rollback_skips_redeployments_of_the_live_model(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    """The model live before the current one, even when the current one was deployed twice."""
    linear, lightgbm = two_models
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (lightgbm,))
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (lightgbm,))
    assert deploy(conn, project, "rollback")[3] == linear
    assert live(conn, project) == linear


def test_rollback_with_one_deployment(conn: psycopg.Connection, project: str) -> None:
    model = train(conn, project)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        deploy(conn, project, "rollback")
    assert history(conn, project) == [(model, "new_score")]


def test_deploy_model_id_is_specific(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, lightgbm = two_models
    row = conn.execute("SELECT * FROM pyml.deploy(model_id => %s::bigint)", (lightgbm,)).fetchone()
    assert row == (project, "specific", "lightgbm", lightgbm)
    assert history(conn, project) == [(linear, "new_score"), (lightgbm, "specific")]
    assert (
        one(conn, "SELECT model_id FROM pyml.deployed_models WHERE project = %s", (project,))
        == lightgbm
    )


def test_deploy_unknown_model(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (10**12,))


def test_deploy_unknown_project(conn: psycopg.Connection, project: str) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        deploy(conn, project, "best_score")


def test_deploy_unknown_strategy(conn: psycopg.Connection, project: str) -> None:
    model = train(conn, project)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        deploy(conn, project, "newest")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        deploy(conn, project, "best_score", "no_such_algorithm")
    assert history(conn, project) == [(model, "new_score")]


# ---------------------------------------------------------------------------
# History: append-only, who and when, which model was live when
# ---------------------------------------------------------------------------


def test_deployment_records_who_and_when(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    _, lightgbm = two_models
    before = now(conn)
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (lightgbm,))
    after = now(conn)
    row = conn.execute(
        "SELECT d.created_by = current_user, d.created_by, d.created_at"
        " FROM pyml.deployments d JOIN pyml.projects p ON p.id = d.project_id"
        " WHERE p.name = %s ORDER BY d.id DESC LIMIT 1",
        (project,),
    ).fetchone()
    assert row is not None
    same_user, created_by, created_at = row
    assert same_user and created_by == "pyml_tester"
    assert before <= created_at <= after


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE pyml.deployments SET strategy = 'specific' WHERE project_id = %s",
        "UPDATE pyml.deployments SET created_by = 'someone_else' WHERE project_id = %s",
        "UPDATE pyml.deployments SET model_id = model_id WHERE project_id = %s",
    ],
    ids=["strategy", "created_by", "no-op"],
)
def test_deployments_cannot_be_updated(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int], change: str, admin_url: str
) -> None:
    """Not by the project's owner (no role writes registry tables directly), and not by a
    superuser (deployments are history)."""
    deploy(conn, project, "most_recent")
    project_id = one(conn, "SELECT id FROM pyml.projects WHERE name = %s", (project,))
    before = conn.execute(
        "SELECT * FROM pyml.deployments WHERE project_id = %s ORDER BY id", (project_id,)
    ).fetchall()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        conn.execute(change, (project_id,))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="cannot be changed"):
            admin.execute(change, (project_id,))
    after = conn.execute(
        "SELECT * FROM pyml.deployments WHERE project_id = %s ORDER BY id", (project_id,)
    ).fetchall()
    assert after == before


def test_deployments_cannot_be_updated_by_a_superuser(
    conn: psycopg.Connection, project: str, admin_url: str, two_models: tuple[int, int]
) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            admin.execute(
                "UPDATE pyml.deployments SET strategy = 'specific' WHERE project_id ="
                " (SELECT id FROM pyml.projects WHERE name = %s)",
                (project,),
            )
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            admin.execute(
                "UPDATE pyml.models SET metrics = '{\"r2\": 1.0}' WHERE project_id ="
                " (SELECT id FROM pyml.projects WHERE name = %s)",
                (project,),
            )
    assert history(conn, project)[0][1] == "new_score"


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE pyml.models SET metrics = '{\"r2\": 1.0}' WHERE id = %s",
        "UPDATE pyml.models SET algorithm = 'ridge' WHERE id = %s",
        "UPDATE pyml.models SET status = 'failed' WHERE id = %s",
    ],
    ids=["metrics", "algorithm", "status"],
)
def test_models_cannot_be_updated(
    conn: psycopg.Connection, two_models: tuple[int, int], change: str, admin_url: str
) -> None:
    linear, _ = two_models
    before = conn.execute("SELECT * FROM pyml.models WHERE id = %s", (linear,)).fetchone()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(change, (linear,))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            admin.execute(change, (linear,))
    assert conn.execute("SELECT * FROM pyml.models WHERE id = %s", (linear,)).fetchone() == before


def test_deployed_model_at_a_time(conn: psycopg.Connection, project: str) -> None:
    t0 = now(conn)
    linear = train(conn, project)
    t1 = now(conn)
    lightgbm = train(
        conn, project, algorithm="lightgbm", hyperparams={"n_estimators": 5}, automatic_deploy=False
    )
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (lightgbm,))
    t2 = now(conn)
    deploy(conn, project, "rollback")
    t3 = now(conn)
    at = "SELECT pyml.deployed_model(%s, %s)"
    assert one(conn, at, (project, t0)) is None
    assert one(conn, at, (project, t1)) == linear
    assert one(conn, at, (project, t2)) == lightgbm
    assert one(conn, at, (project, t3)) == linear
    assert one(conn, "SELECT pyml.deployed_model(%s)", (project,)) == linear
    assert (
        one(conn, "SELECT pyml.deployed_model(project_name => %s, at => %s)", (project, t2))
        == lightgbm
    )


def test_deployed_model_unknown_project(conn: psycopg.Connection, project: str) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.deployed_model(%s)", (project,))


# ---------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------


def test_overview_has_one_row_per_deployment(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    deploy(conn, project, "most_recent")
    deploy(conn, project, "rollback")
    rows = conn.execute(
        "SELECT algorithm FROM pyml.overview WHERE project = %s", (project,)
    ).fetchall()
    assert sorted(r[0] for r in rows) == ["lightgbm", "linear", "linear"]


def test_trained_models_has_one_row_per_model(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, lightgbm = two_models
    third = train(conn, project, algorithm="ridge", automatic_deploy=False)
    query = "SELECT id, deployed FROM pyml.trained_models WHERE project = %s ORDER BY id"
    assert conn.execute(query, (project,)).fetchall() == [
        (linear, True),
        (lightgbm, False),
        (third, False),
    ]
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (lightgbm,))
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (third,))
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (lightgbm,))
    assert conn.execute(query, (project,)).fetchall() == [
        (linear, False),
        (lightgbm, True),
        (third, False),
    ]


def test_trained_models_one_deployed_per_project(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    train(conn, f"{project}_undeployed", automatic_deploy=False)
    rows = conn.execute(
        "SELECT project, count(*) FILTER (WHERE deployed) FROM pyml.trained_models GROUP BY project"
    ).fetchall()
    assert {project, f"{project}_undeployed"} <= {r[0] for r in rows}
    deployed = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT p.name FROM pyml.deployments d"
            " JOIN pyml.projects p ON p.id = d.project_id"
        ).fetchall()
    }
    for name, live_count in rows:
        assert live_count == (1 if name in deployed else 0), name


def test_deployed_models_is_the_live_model(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, lightgbm = two_models
    query = "SELECT model_id, algorithm FROM pyml.deployed_models WHERE project = %s"
    assert conn.execute(query, (project,)).fetchall() == [(linear, "linear")]
    deploy(conn, project, "most_recent")
    assert conn.execute(query, (project,)).fetchall() == [(lightgbm, "lightgbm")]
    per_project = conn.execute(
        "SELECT project, count(*) FROM pyml.deployed_models GROUP BY project HAVING count(*) > 1"
    ).fetchall()
    assert per_project == []


# ---------------------------------------------------------------------------
# Deleting models and projects
# ---------------------------------------------------------------------------


def _files(conn: psycopg.Connection, model_id: int) -> int:
    return int(one(conn, "SELECT count(*) FROM pyml.files WHERE model_id = %s", (model_id,)))


def _models(conn: psycopg.Connection, *ids: int) -> int:
    return int(one(conn, "SELECT count(*) FROM pyml.models WHERE id = ANY(%s)", (list(ids),)))


def test_delete_model_refuses_the_live_model(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, _ = two_models
    assert _files(conn, linear) > 0
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("SELECT pyml.delete_model(%s)", (linear,))
    assert _models(conn, linear) == 1
    assert _files(conn, linear) > 0
    assert one(conn, "SELECT pyml.predict(%s::text, %s::float8[])", (project, ROW)) is not None


def test_delete_model_with_force(conn: psycopg.Connection, two_models: tuple[int, int]) -> None:
    linear, lightgbm = two_models
    conn.execute("SELECT pyml.delete_model(%s, force => true)", (linear,))
    assert _models(conn, linear) == 0
    assert _files(conn, linear) == 0
    assert _models(conn, lightgbm) == 1


def test_delete_model_not_live(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, lightgbm = two_models
    assert _files(conn, lightgbm) > 0
    conn.execute("SELECT pyml.delete_model(%s)", (lightgbm,))
    assert _models(conn, lightgbm) == 0
    assert _files(conn, lightgbm) == 0
    assert live(conn, project) == linear
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.predict(%s::bigint, %s::float8[])", (lightgbm, ROW))


def test_delete_unknown_model(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.delete_model(%s)", (10**12,))


def test_delete_project_refuses_a_live_model(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, lightgbm = two_models
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("SELECT pyml.delete_project(%s)", (project,))
    assert one(conn, "SELECT count(*) FROM pyml.projects WHERE name = %s", (project,)) == 1
    assert _models(conn, linear, lightgbm) == 2


def test_delete_project_with_force(
    conn: psycopg.Connection, project: str, two_models: tuple[int, int]
) -> None:
    linear, lightgbm = two_models
    deploy(conn, project, "most_recent")
    project_id = one(conn, "SELECT id FROM pyml.projects WHERE name = %s", (project,))
    conn.execute("SELECT pyml.delete_project(%s, force => true)", (project,))
    assert one(conn, "SELECT count(*) FROM pyml.projects WHERE name = %s", (project,)) == 0
    assert _models(conn, linear, lightgbm) == 0
    assert _files(conn, linear) + _files(conn, lightgbm) == 0
    assert (
        one(conn, "SELECT count(*) FROM pyml.deployments WHERE project_id = %s", (project_id,)) == 0
    )
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.predict(%s::text, %s::float8[])", (project, ROW))


def test_delete_project_without_deployment(conn: psycopg.Connection, project: str) -> None:
    model = train(conn, project, automatic_deploy=False)
    conn.execute("SELECT pyml.delete_project(%s)", (project,))
    assert one(conn, "SELECT count(*) FROM pyml.projects WHERE name = %s", (project,)) == 0
    assert _models(conn, model) == 0
    assert _files(conn, model) == 0


def test_delete_unknown_project(conn: psycopg.Connection, project: str) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.delete_project(%s)", (project,))
