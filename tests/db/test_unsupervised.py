"""Clustering and decomposition projects: train without a label, predict a cluster, decompose."""

from __future__ import annotations

import json
import math
from typing import Any

import psycopg
import pytest

IRIS = "ARRAY[sepal_length, sepal_width, petal_length, petal_width, target]"


def train(
    conn: psycopg.Connection,
    project: str,
    task: str | None,
    algorithm: str,
    hyperparams: dict[str, Any] | None = None,
) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT * FROM pyml.train(%s, task => %s, relation_name => 'pyml.iris',"
        " y_column_name => NULL, algorithm => %s, hyperparams => %s::jsonb)",
        (project, task, algorithm, json.dumps(hyperparams or {})),
    ).fetchone()
    assert row is not None
    return tuple(row)


def metrics(conn: psycopg.Connection, project: str) -> list[dict[str, Any]]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT m.metrics FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s ORDER BY m.id",
            (project,),
        )
    ]


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [
        ("kmeans", {"n_clusters": 3}),
        ("mini_batch_kmeans", {"n_clusters": 3}),
        ("affinity_propagation", {}),
        ("mean_shift", {}),
    ],
)
def test_clustering_predicts_clusters(
    conn: psycopg.Connection, algorithm: str, params: dict[str, Any]
) -> None:
    project = f"clusters {algorithm}"
    assert train(conn, project, "clustering", algorithm, params) == (
        project,
        "clustering",
        algorithm,
        True,
    )
    (found,) = metrics(conn, project)
    assert -1 <= found["silhouette"] <= 1
    clusters = conn.execute(
        f"SELECT pyml.predict(%s, {IRIS}) AS c, count(*) FROM pyml.iris GROUP BY 1",  # noqa: S608
        (project,),
    ).fetchall()
    assert len(clusters) >= 2
    assert all(float(c).is_integer() and c >= 0 for c, _ in clusters)
    assert sum(n for _, n in clusters) == 150


def test_kmeans_separates_setosa(conn: psycopg.Connection) -> None:
    train(conn, "iris kmeans", "clustering", "kmeans", {"n_clusters": 3})
    setosa = conn.execute(
        f"SELECT DISTINCT pyml.predict('iris kmeans', {IRIS}) FROM pyml.iris"  # noqa: S608
        " WHERE target = 0"
    ).fetchall()
    others = conn.execute(
        f"SELECT DISTINCT pyml.predict('iris kmeans', {IRIS}) FROM pyml.iris"  # noqa: S608
        " WHERE target <> 0"
    ).fetchall()
    assert len(setosa) == 1 and setosa[0] not in others


def test_the_best_silhouette_is_deployed(conn: psycopg.Connection) -> None:
    train(conn, "best clusters", "clustering", "kmeans", {"n_clusters": 8})
    train(conn, "best clusters", None, "kmeans", {"n_clusters": 2})
    scores = [m["silhouette"] for m in metrics(conn, "best clusters")]
    (deployed,) = conn.execute(
        "SELECT m.metrics->>'silhouette' FROM pyml.deployed_models d"
        " JOIN pyml.models m ON m.id = d.model_id WHERE d.project = 'best clusters'"
    ).fetchone()
    assert math.isclose(float(deployed), max(scores))


def test_pca_decomposes(conn: psycopg.Connection) -> None:
    assert train(conn, "iris pca", "decomposition", "pca", {"n_components": 2})[3] is True
    (found,) = metrics(conn, "iris pca")
    assert 0.9 < found["cumulative_explained_variance"] <= 1.0
    vector = conn.execute(
        "SELECT pyml.decompose('iris pca', ARRAY[5.1, 3.5, 1.4, 0.2, 0])"
    ).fetchone()[0]
    assert len(vector) == 2
    with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
        conn.execute("SELECT pyml.predict('iris pca', ARRAY[5.1, 3.5, 1.4, 0.2, 0])")
    assert "pyml.decompose" in (info.value.diag.message_hint or "")


def test_decompose_needs_a_decomposition_project(conn: psycopg.Connection) -> None:
    train(conn, "not pca", "clustering", "kmeans", {"n_clusters": 2})
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("SELECT pyml.decompose('not pca', ARRAY[5.1, 3.5, 1.4, 0.2, 0])")
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.decompose('no such project', ARRAY[1])")


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("clustering", "kmeans"),
        ("decomposition", "pca"),
        ("regression", "linear"),
    ],
)
def test_without_an_algorithm_the_task_default_is_used(
    conn: psycopg.Connection, task: str, expected: str
) -> None:
    """As in PostgresML: ``algorithm`` left out (or NULL) is the task's default, on the first
    training and on later ones that reuse the project's snapshot."""
    project = f"default {task}"
    label = "target" if task == "regression" else None
    first = conn.execute(
        "SELECT * FROM pyml.train(%s, %s, 'pyml.iris', %s)", (project, task, label)
    ).fetchone()
    assert first == (project, task, expected, True)
    again = conn.execute("SELECT * FROM pyml.train(%s, algorithm => NULL)", (project,))
    assert again.fetchone() == (project, task, expected, False)
    algorithms = conn.execute(
        "SELECT m.algorithm FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s",
        (project,),
    ).fetchall()
    assert algorithms == [(expected,), (expected,)]


@pytest.mark.parametrize(
    ("task", "algorithm", "error"),
    [
        ("clustering", "linear", psycopg.errors.InvalidParameterValue),
        ("decomposition", "kmeans", psycopg.errors.InvalidParameterValue),
        ("regression", "kmeans", psycopg.errors.InvalidParameterValue),
    ],
)
def test_algorithm_and_task_must_agree(
    conn: psycopg.Connection, task: str, algorithm: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        train(conn, f"mismatch {task} {algorithm}", task, algorithm)


def test_birch_predicts_as_birch_does(conn: psycopg.Connection) -> None:
    """Birch is stored as its prediction rule (nearest subcluster centre); its clusters are
    those of scikit-learn's Birch fitted on the same training rows."""
    from sklearn.cluster import Birch

    conn.execute(
        "CREATE TABLE birch_iris AS SELECT sepal_length, sepal_width, petal_length,"
        " petal_width FROM pyml.iris"
    )
    conn.execute(
        "SELECT * FROM pyml.train('birch', 'clustering', 'birch_iris', NULL, 'birch',"
        " '{\"n_clusters\": 3}', test_sampling => 'last')"
    )
    rows = conn.execute(
        "SELECT sepal_length::float8, sepal_width::float8,"
        " petal_length::float8, petal_width::float8,"
        " pyml.predict('birch', b) FROM birch_iris b"
    ).fetchall()
    X = [r[:4] for r in rows]
    expected = Birch(n_clusters=3).fit(X[: len(X) - round(0.25 * len(X))]).predict(X)
    assert [r[4] for r in rows] == [float(c) for c in expected]
    (hyperparams,) = conn.execute(
        "SELECT m.hyperparams FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = 'birch'"
    ).fetchone()
    assert hyperparams["n_clusters"] == 3 and "threshold" in hyperparams  # Birch's own


def test_search_is_refused_for_clustering(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute(
            "SELECT * FROM pyml.train('search clusters', 'clustering', 'pyml.iris', NULL,"
            " 'kmeans', search => 'grid', search_params => '{\"n_clusters\": [2, 3]}')"
        )
