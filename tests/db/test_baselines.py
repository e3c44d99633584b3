"""Training-time baselines: statistics of the training rows kept with the snapshot, and the
distribution of the model's test predictions kept with the model (for drift checks)."""

from __future__ import annotations

import psycopg
import pytest


def _latest(conn: psycopg.Connection, project: str) -> tuple[dict, list[dict], int]:
    return conn.execute(
        "SELECT m.baseline, s.columns, s.row_count FROM pyml.models m"
        " JOIN pyml.projects p ON p.id = m.project_id JOIN pyml.snapshots s"
        " ON s.id = m.snapshot_id WHERE p.name = %s ORDER BY m.id DESC LIMIT 1",
        (project,),
    ).fetchone()


def test_statistics_of_the_training_rows_only(conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TABLE base_diabetes AS SELECT row_number() OVER () AS n, * FROM pyml.diabetes"
    )
    conn.execute(
        "CREATE VIEW base_diabetes_v AS SELECT age, sex, bmi, bp, s1, s2, s3, s4, s5,"
        " s6, target FROM base_diabetes ORDER BY n"
    )
    conn.execute(
        "SELECT * FROM pyml.train('baseline', 'regression', 'base_diabetes_v',"
        " 'target', 'ridge', test_sampling => 'last')"
    )
    baseline, columns, row_count = _latest(conn, "baseline")
    assert row_count == 442
    training = 442 - round(0.25 * 442)  # 'last': the first rows train
    bmi = next(c for c in columns if c["name"] == "bmi")
    mean, low, high, nulls = conn.execute(
        "SELECT avg(bmi::float8), min(bmi::float8), max(bmi::float8), count(*) - count(bmi)"
        " FROM base_diabetes WHERE n <= %s",
        (training,),
    ).fetchone()
    assert bmi["count"] == training and bmi["nulls"] == nulls
    assert bmi["mean"] == pytest.approx(mean, rel=1e-9)
    assert (bmi["min"], bmi["max"]) == pytest.approx((low, high))
    assert len(bmi["quantiles"]) == 11 and sum(bmi["histogram"]["counts"]) == training
    label = next(c for c in columns if c["role"] == "label")
    assert label["name"] == "target" and label["count"] == training

    # The predictions on the test rows (the last ones), as the model makes them.
    p_mean, p_low, p_high, tested = conn.execute(
        "SELECT avg(p), min(p), max(p), count(*) FROM (SELECT pyml.predict('baseline',"
        " ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]) AS p FROM base_diabetes"
        " WHERE n > %s) t",
        (training,),
    ).fetchone()
    assert baseline["count"] == tested == 442 - training
    assert baseline["mean"] == pytest.approx(p_mean, rel=1e-5)
    assert (baseline["min"], baseline["max"]) == pytest.approx((p_low, p_high), rel=1e-5)


def test_class_and_cluster_baselines_are_counts(conn: psycopg.Connection) -> None:
    conn.execute(
        "SELECT * FROM pyml.train('baseline classes', 'classification', 'pyml.iris',"
        " 'target', 'random_forest', '{\"n_estimators\": 10}')"
    )
    baseline, columns, _ = _latest(conn, "baseline classes")
    assert set(baseline["categories"]) <= {"0", "1", "2"}
    assert sum(baseline["categories"].values()) == baseline["count"] == round(0.25 * 150)
    label = next(c for c in columns if c["role"] == "label")
    assert sum(label["categories"].values()) == 150 - round(0.25 * 150)
    conn.execute(
        "SELECT * FROM pyml.train('baseline clusters', 'clustering', 'pyml.iris',"
        " NULL, 'kmeans', '{\"n_clusters\": 3}')"
    )
    baseline, _, _ = _latest(conn, "baseline clusters")
    assert set(baseline["categories"]) <= {"0", "1", "2"}


def test_text_columns_have_category_counts(conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TABLE base_text AS SELECT (ARRAY['a', 'b', NULL])[1 + i % 3] AS kind,"
        " i::float8 AS x, (i % 7)::float8 AS y FROM generate_series(1, 300) i"
    )
    conn.execute(
        "SELECT * FROM pyml.train('baseline text', 'regression', 'base_text', 'y',"
        " test_sampling => 'last')"
    )
    _, columns, _ = _latest(conn, "baseline text")
    kind = next(c for c in columns if c["name"] == "kind")
    assert kind["count"] == 225 and kind["nulls"] == 75
    assert kind["categories"] == {"a": 75, "b": 75}
