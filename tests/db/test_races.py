"""Concurrency: what decides which model goes live never interleaves within a project.

Monitoring rounds, deploys and automatic deploys of one project take the project's row
lock first: two rounds started together deploy at most once (and never deadlock), and two
automatic deploys racing end with the better model live.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

Connect = Callable[..., psycopg.Connection]


def _orders(
    conn: psycopg.Connection,
    name: str,
    n: int,
    seed: float,
    *,
    shift: float = 0.0,
    slope: float = 2.0,
) -> None:
    """Orders: amount = slope * price + 3 * qty + noise (see test_monitoring)."""
    conn.execute(
        sql.SQL("CREATE TABLE {} (price real, qty int, amount real)").format(sql.Identifier(name))
    )
    conn.execute("SELECT setseed(%s)", (seed,))
    conn.execute(
        sql.SQL(
            "INSERT INTO {} SELECT price, qty, %s * price + 3 * qty + random() * 5"
            " FROM (SELECT (random() * 100 + %s)::real AS price, (random() * 10)::int AS qty"
            "  FROM generate_series(1, %s)) t"
        ).format(sql.Identifier(name)),
        (slope, shift, n),
    )


@pytest.fixture(scope="module", autouse=True)
def _data(conn: psycopg.Connection) -> None:
    _orders(conn, "race_train", 3000, 0.1)
    _orders(conn, "race_new", 2000, 0.4, shift=30.0, slope=3.0)  # drifted, a new rule


def _together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment on threads; their results (or exceptions)."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # reported by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_rounds_deploy_at_most_once(
    conn: psycopg.Connection, connect: Connect, attempt: int
) -> None:
    """pyml.check() started while run_monitors() (pg_cron's job) runs the same project's
    round: one retrain is deployed, the other round waits or is skipped; no deadlock."""
    project = f"race rounds {attempt}"
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'race_train', 'amount',"
        " 'lightgbm', '{\"n_estimators\": 60}')",
        (project,),
    )
    conn.execute("SELECT pyml.monitor(%s, 'race_new', '1 hour')", (project,))
    manual, scheduler = connect(), connect()
    results = _together(
        lambda: manual.execute("SELECT deployed FROM pyml.check(%s)", (project,)).fetchall(),
        lambda: scheduler.execute(
            "SELECT deployed, error FROM pyml.run_monitors() WHERE project = %s", (project,)
        ).fetchall(),
    )
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    retrains = conn.execute(
        "SELECT count(*) FROM pyml.deployments d JOIN pyml.projects p ON p.id = d.project_id"
        " WHERE p.name = %s AND d.strategy = 'retrain'",
        (project,),
    ).fetchone()[0]
    assert retrains == 1
    decisions = [
        r[0]
        for r in conn.execute(
            "SELECT decision FROM pyml.drift_reports r JOIN pyml.projects p ON p.id = r.project_id"
            " WHERE p.name = %s ORDER BY r.id",
            (project,),
        ).fetchall()
    ]
    assert decisions.count("deployed") == 1
    # The round that came second (if it ran) was checked against the retrained model.
    assert set(decisions) <= {"deployed", "kept", "stable"}


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_automatic_deploys_leave_the_better_model_live(
    conn: psycopg.Connection, connect: Connect, attempt: int
) -> None:
    project = f"race trains {attempt}"
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'race_train', 'amount', 'lasso',"
        " '{\"alpha\": 100000}')",
        (project,),
    )  # a poor live model: both beat it
    first, second = connect(), connect()
    train = "SELECT deployed FROM pyml.train(%s, algorithm => %s, hyperparams => %s::jsonb)"
    results = _together(
        lambda: first.execute(train, (project, "linear", "{}")).fetchall(),
        lambda: second.execute(
            train, (project, "lightgbm", '{"n_estimators": 20, "num_leaves": 4}')
        ).fetchall(),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    best = conn.execute(
        "SELECT m.id FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s ORDER BY (m.metrics ->> 'r2')::float8 DESC LIMIT 1",
        (project,),
    ).fetchone()[0]
    assert conn.execute("SELECT pyml.deployed_model(%s)", (project,)).fetchone()[0] == best


def test_concurrent_deploys_are_serialized(conn: psycopg.Connection, connect: Connect) -> None:
    """Two deploys of one project at once: both succeed, one after the other, and the
    history records both."""
    project = "race deploys"
    for algorithm in ("linear", "ridge"):
        conn.execute(
            "SELECT * FROM pyml.train(%s, 'regression', 'race_train', 'amount', %s,"
            " automatic_deploy => false)",
            (project, algorithm),
        )
    a, b = connect(autocommit=False), connect(autocommit=False)
    a.execute("SELECT * FROM pyml.deploy(%s, 'most_recent')", (project,))  # holds the lock

    def deploy_best() -> None:
        b.execute("SELECT * FROM pyml.deploy(%s, 'best_score')", (project,))
        b.commit()

    blocked = threading.Thread(target=deploy_best)
    blocked.start()
    blocked.join(timeout=1)
    assert blocked.is_alive()  # waits for the first deploy's transaction
    a.commit()
    blocked.join(timeout=30)
    assert not blocked.is_alive()
    strategies = [
        r[0]
        for r in conn.execute(
            "SELECT d.strategy FROM pyml.deployments d JOIN pyml.projects p ON p.id = d.project_id"
            " WHERE p.name = %s ORDER BY d.id",
            (project,),
        ).fetchall()
    ]
    assert strategies == ["most_recent", "best_score"]
