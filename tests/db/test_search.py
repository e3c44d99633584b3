"""Hyperparameter search: progress per candidate, every candidate recorded, cancellation."""

from __future__ import annotations

import psycopg
import pytest


def test_grid_search_reports_each_candidate_and_records_it(conn: psycopg.Connection) -> None:
    conn.execute("SET client_min_messages = notice")
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute(
        "SELECT * FROM pyml.train('search grid', 'regression', 'pyml.diabetes', 'target',"
        " 'ridge', search => 'grid', search_params => '{\"alpha\": [0.01, 0.1, 1, 10]}',"
        " search_args => '{\"cv\": 3}')"
    )
    progress = [n for n in notices if "search candidate" in n]
    assert [n.split(":")[1].split()[-1] for n in progress] == ["1/4", "2/4", "3/4", "4/4"]
    assert all("best so far" in n and "elapsed" in n for n in progress)
    row = conn.execute(
        "SELECT m.metrics, m.hyperparams FROM pyml.models m JOIN pyml.projects p"
        " ON p.id = m.project_id WHERE p.name = 'search grid'"
    ).fetchone()
    assert row is not None
    metrics, hyperparams = row
    results = metrics["search_results"]
    assert sorted(r["params"]["alpha"] for r in results) == [0.01, 0.1, 1, 10]
    for result in results:
        assert {"mean_test_score", "std_test_score", "rank_test_score", "mean_fit_time"} <= set(
            result
        )
    best = min(results, key=lambda r: r["rank_test_score"])
    assert hyperparams["alpha"] == best["params"]["alpha"]  # the refit model is the best
    assert "r2" in metrics  # held-out metrics of the refit model


def test_random_search_tries_n_iter_candidates(conn: psycopg.Connection) -> None:
    conn.execute(
        "SELECT * FROM pyml.train('search random', 'classification', 'pyml.breast_cancer',"
        " 'malignant', 'random_forest', search => 'random',"
        ' search_params => \'{"n_estimators": [5, 10, 20], "max_depth": [2, 3, 4, 5]}\','
        ' search_args => \'{"cv": 2, "n_iter": 3}\')'
    )
    (count,) = conn.execute(
        "SELECT jsonb_array_length(m.metrics->'search_results') FROM pyml.models m"
        " JOIN pyml.projects p ON p.id = m.project_id WHERE p.name = 'search random'"
    ).fetchone()
    assert count == 3


def test_a_cancelled_search_leaves_no_model(conn: psycopg.Connection) -> None:
    """statement_timeout stops the search between folds: not every candidate is tried, and
    nothing of the project is left (the statement's transaction is rolled back)."""
    conn.execute("SET client_min_messages = notice")
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("SET statement_timeout = '1500ms'")
    with pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute(
            "SELECT * FROM pyml.train('search cancelled', 'classification', 'pyml.digits',"
            " 'target', 'random_forest', search => 'grid',"
            " search_params => '{\"n_estimators\": [100, 120, 140, 160, 180, 200, 220, 240]}',"
            " search_args => '{\"cv\": 5}')"
        )
    conn.execute("RESET statement_timeout")
    assert len([n for n in notices if "search candidate" in n]) < 8
    assert conn.execute(
        "SELECT count(*) FROM pyml.projects WHERE name = 'search cancelled'"
    ).fetchone() == (0,)
