"""Several sessions: cached models follow committed deploys only; history is never rewritten."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

ROW = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]  # a diabetes-like row
PREDICT = "SELECT pyml.predict(%s::text, %s::float8[])"

Connect = Callable[..., psycopg.Connection]


@dataclass(frozen=True)
class Models:
    project: str
    first: int  # live after training
    second: int  # trained, not deployed
    first_value: float  # prediction of ROW by each model
    second_value: float


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    """The single value of a one-row, one-column query."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def train(
    conn: psycopg.Connection,
    project: str,
    algorithm: str = "linear",
    hyperparams: dict[str, Any] | None = None,
    automatic_deploy: bool = True,
) -> None:
    conn.execute(
        "SELECT * FROM pyml.train(%s, task => 'regression', relation_name => 'pyml.diabetes',"
        " y_column_name => 'target', algorithm => %s, hyperparams => %s::jsonb,"
        " automatic_deploy => %s)",
        (project, algorithm, json.dumps(hyperparams or {}), automatic_deploy),
    )


def model_ids(conn: psycopg.Connection, project: str) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT m.id FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s ORDER BY m.id",
            (project,),
        ).fetchall()
    ]


def deployments(conn: psycopg.Connection, project: str) -> list[tuple[int, str]]:
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT d.model_id, d.strategy FROM pyml.deployments d"
            " JOIN pyml.projects p ON p.id = d.project_id WHERE p.name = %s ORDER BY d.id",
            (project,),
        ).fetchall()
    ]


@pytest.fixture
def models(conn: psycopg.Connection, project: str) -> Models:
    train(conn, project)
    train(conn, project, "lightgbm", {"n_estimators": 10}, automatic_deploy=False)
    first, second = model_ids(conn, project)
    values = [
        one(conn, "SELECT pyml.predict(%s::bigint, %s::float8[])", (i, ROW))
        for i in (first, second)
    ]
    assert values[0] != pytest.approx(values[1], rel=1e-3)  # the two models can be told apart
    assert deployments(conn, project) == [(first, "new_score")]
    return Models(project, first, second, values[0], values[1])


@pytest.fixture(scope="module")
def a(connect: Connect) -> psycopg.Connection:
    """Session A: predicts (kept for the module, so its model cache lives on)."""
    return connect()


@pytest.fixture(scope="module")
def session_b(connect: Connect) -> psycopg.Connection:
    return connect(autocommit=False)


@pytest.fixture
def b(session_b: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Session B: deploys, in explicit transactions (rolled back after each test)."""
    yield session_b
    session_b.rollback()


def predicts(session: psycopg.Connection, models: Models) -> float:
    return float(one(session, PREDICT, (models.project, ROW)))


# ---------------------------------------------------------------------------
# Cached models and deploys of other sessions
# ---------------------------------------------------------------------------


def test_committed_deploy_is_used_by_the_next_predict(
    a: psycopg.Connection, b: psycopg.Connection, models: Models
) -> None:
    assert predicts(a, models) == pytest.approx(models.first_value, rel=1e-6)
    assert predicts(a, models) == pytest.approx(models.first_value, rel=1e-6)  # now cached
    b.execute("SELECT * FROM pyml.deploy(%s::bigint)", (models.second,))
    b.commit()
    assert predicts(a, models) == pytest.approx(models.second_value, rel=1e-6)
    b.execute("SELECT * FROM pyml.deploy(%s, 'rollback')", (models.project,))
    b.commit()
    assert predicts(a, models) == pytest.approx(models.first_value, rel=1e-6)


def test_committed_deploy_is_seen_inside_a_read_committed_transaction(
    connect: Connect, b: psycopg.Connection, models: Models
) -> None:
    session = connect(autocommit=False)
    try:
        assert predicts(session, models) == pytest.approx(models.first_value, rel=1e-6)
        b.execute("SELECT * FROM pyml.deploy(%s::bigint)", (models.second,))
        b.commit()
        assert predicts(session, models) == pytest.approx(models.second_value, rel=1e-6)
    finally:
        session.rollback()


def test_rolled_back_deploy_changes_nothing(
    a: psycopg.Connection, b: psycopg.Connection, models: Models
) -> None:
    assert predicts(a, models) == pytest.approx(models.first_value, rel=1e-6)
    b.execute("SELECT * FROM pyml.deploy(%s::bigint)", (models.second,))
    # Deploy is transactional: B itself sees its deploy before committing ...
    assert predicts(b, models) == pytest.approx(models.second_value, rel=1e-6)
    b.rollback()
    # ... and nobody, B included, once it is rolled back.
    assert predicts(a, models) == pytest.approx(models.first_value, rel=1e-6)
    assert predicts(b, models) == pytest.approx(models.first_value, rel=1e-6)
    b.rollback()
    assert deployments(a, models.project) == [(models.first, "new_score")]
    assert one(a, "SELECT pyml.deployed_model(%s)", (models.project,)) == models.first


def test_rolled_back_strategy_deploy_changes_nothing(
    a: psycopg.Connection, b: psycopg.Connection, models: Models
) -> None:
    predicts(a, models)
    b.execute("SELECT * FROM pyml.deploy(%s, 'most_recent')", (models.project,))
    b.rollback()
    assert predicts(a, models) == pytest.approx(models.first_value, rel=1e-6)
    assert deployments(a, models.project) == [(models.first, "new_score")]


def test_uncommitted_deploy_is_not_seen(
    a: psycopg.Connection, b: psycopg.Connection, models: Models
) -> None:
    assert predicts(a, models) == pytest.approx(models.first_value, rel=1e-6)
    b.execute("SELECT * FROM pyml.deploy(%s::bigint)", (models.second,))
    assert predicts(a, models) == pytest.approx(models.first_value, rel=1e-6)
    assert one(a, "SELECT pyml.deployed_model(%s)", (models.project,)) == models.first
    b.commit()
    assert predicts(a, models) == pytest.approx(models.second_value, rel=1e-6)
    assert one(a, "SELECT pyml.deployed_model(%s)", (models.project,)) == models.second


def test_set_query_follows_committed_deploys(
    a: psycopg.Connection, b: psycopg.Connection, models: Models
) -> None:
    query = (
        "SELECT sum(pyml.predict(%s::text, d)) FROM"
        " (SELECT * FROM pyml.diabetes ORDER BY ctid LIMIT 20) d"
    )
    before = one(a, query, (models.project,))
    b.execute("SELECT * FROM pyml.deploy(%s::bigint)", (models.second,))
    b.commit()
    after = one(a, query, (models.project,))
    by_id = one(
        a,
        "SELECT sum(pyml.predict(%s::bigint, d)) FROM"
        " (SELECT * FROM pyml.diabetes ORDER BY ctid LIMIT 20) d",
        (models.second,),
    )
    assert after == pytest.approx(by_id, rel=1e-6)
    assert after != pytest.approx(before, rel=1e-4)


# ---------------------------------------------------------------------------
# Models are history
# ---------------------------------------------------------------------------


def test_model_row_is_never_rewritten(
    a: psycopg.Connection, b: psycopg.Connection, models: Models
) -> None:
    snapshot = "SELECT xmin::text, to_jsonb(m) FROM pyml.models m WHERE id = %s"
    before = a.execute(snapshot, (models.second,)).fetchone()
    b.execute("SELECT * FROM pyml.deploy(%s::bigint)", (models.second,))
    b.commit()
    predicts(a, models)
    b.execute("SELECT * FROM pyml.deploy(%s, 'rollback')", (models.project,))
    b.commit()
    assert a.execute(snapshot, (models.second,)).fetchone() == before


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE pyml.models SET metrics = '{\"r2\": 1.0}' WHERE id = %s",
        "UPDATE pyml.models SET hyperparams = '{}' WHERE id = %s",
        "UPDATE pyml.models SET feature_names = feature_names WHERE id = %s",
    ],
    ids=["metrics", "hyperparams", "no-op"],
)
def test_update_of_a_model_is_refused(a: psycopg.Connection, models: Models, change: str) -> None:
    snapshot = "SELECT xmin::text, to_jsonb(m) FROM pyml.models m WHERE id = %s"
    before = a.execute(snapshot, (models.first,)).fetchone()
    with pytest.raises(psycopg.Error):
        a.execute(change, (models.first,))
    assert a.execute(snapshot, (models.first,)).fetchone() == before
    assert predicts(a, models) == pytest.approx(models.first_value, rel=1e-6)


def test_update_of_a_model_is_refused_to_a_superuser(
    a: psycopg.Connection, admin_url: str, models: Models
) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        with pytest.raises(psycopg.Error):
            admin.execute(
                "UPDATE pyml.models SET metrics = '{\"r2\": 1.0}' WHERE id = %s", (models.second,)
            )
        with pytest.raises(psycopg.Error):
            admin.execute(
                "UPDATE pyml.files SET data = '\\x00' WHERE model_id = %s", (models.second,)
            )
    assert one(
        a, "SELECT (metrics->>'r2')::float8 < 1 FROM pyml.models WHERE id = %s", (models.second,)
    )
    value = one(a, "SELECT pyml.predict(%s::bigint, %s::float8[])", (models.second, ROW))
    assert value == pytest.approx(models.second_value, rel=1e-6)


# ---------------------------------------------------------------------------
# Concurrent training
# ---------------------------------------------------------------------------


def _train_in_two_sessions(connect: Connect, project: str) -> None:
    """Session A trains in an open transaction; B trains meanwhile; then A commits."""
    first = connect(autocommit=False)
    second = connect()
    second.execute("SET statement_timeout = '60s'")
    try:
        train(first, project, "linear")
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(train, second, project, "lightgbm", {"n_estimators": 5})
            try:
                future.result(timeout=1.0)  # B may finish, or wait for A's commit
            except TimeoutError:
                pass
            first.commit()
            future.result(timeout=90)
    finally:
        first.rollback()


def test_concurrent_training_in_an_existing_project(
    connect: Connect, conn: psycopg.Connection, project: str
) -> None:
    train(conn, project, "ridge")
    _train_in_two_sessions(connect, project)
    rows = conn.execute(
        "SELECT m.algorithm, m.status FROM pyml.models m JOIN pyml.projects p"
        " ON p.id = m.project_id WHERE p.name = %s ORDER BY m.id",
        (project,),
    ).fetchall()
    assert sorted(rows) == [
        ("lightgbm", "successful"),
        ("linear", "successful"),
        ("ridge", "successful"),
    ]
    assert one(conn, PREDICT, (project, ROW)) is not None


def test_concurrent_training_of_a_new_project(
    connect: Connect, conn: psycopg.Connection, project: str
) -> None:
    _train_in_two_sessions(connect, project)
    assert one(conn, "SELECT count(*) FROM pyml.projects WHERE name = %s", (project,)) == 1
    rows = conn.execute(
        "SELECT m.algorithm, m.status FROM pyml.models m JOIN pyml.projects p"
        " ON p.id = m.project_id WHERE p.name = %s ORDER BY m.id",
        (project,),
    ).fetchall()
    assert sorted(rows) == [("lightgbm", "successful"), ("linear", "successful")]


def test_concurrent_training_at_once(
    connect: Connect, conn: psycopg.Connection, project: str
) -> None:
    """Two autocommit sessions start training the same project at the same moment."""
    train(conn, project, "ridge")
    sessions = [connect(), connect()]
    for session in sessions:
        session.execute("SET statement_timeout = '60s'")
        session.execute("SELECT pyml.version()")  # load the package before the race
    algorithms = ["linear", "lasso"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(train, s, project, algo)
            for s, algo in zip(sessions, algorithms, strict=True)
        ]
        for future in futures:
            future.result(timeout=90)
    rows = conn.execute(
        "SELECT m.algorithm FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s AND m.status = 'successful'",
        (project,),
    ).fetchall()
    assert sorted(r[0] for r in rows) == ["lasso", "linear", "ridge"]


def test_a_deployment_inserted_by_hand_reaches_cached_sessions(
    connect: Callable[..., psycopg.Connection], project: str, admin_url: str
) -> None:
    """Whatever adds a deployment row (not only pyml.deploy: a superuser by hand), other
    sessions' caches notice."""
    writer, reader = connect(), connect()
    features = [0.05, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]
    first = writer.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'pyml.diabetes', 'target')", (project,)
    ).fetchone()
    assert first is not None
    query = "SELECT pyml.predict(%s, %s::float8[])"
    before = reader.execute(query, (project, features)).fetchone()
    writer.execute(
        "SELECT * FROM pyml.train(%s, algorithm => 'lightgbm', automatic_deploy => false,"
        " hyperparams => '{\"n_estimators\": 5}')",
        (project,),
    )
    lightgbm_id = writer.execute(
        "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s",
        (project,),
    ).fetchone()[0]
    expected = reader.execute(
        "SELECT pyml.predict(%s::bigint, %s::float8[])", (lightgbm_id, features)
    ).fetchone()
    assert expected != before
    assert reader.execute(query, (project, features)).fetchone() == before  # cached, unchanged
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            "INSERT INTO pyml.deployments (project_id, model_id, strategy)"
            " SELECT project_id, id, 'specific' FROM pyml.models WHERE id = %s",
            (lightgbm_id,),
        )
    assert reader.execute(query, (project, features)).fetchone() == expected
