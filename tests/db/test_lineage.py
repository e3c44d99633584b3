"""pyml.lineage: where a model comes from (data, code, people) and where it went."""

from __future__ import annotations

import hashlib

import psycopg
import pytest

import pyml


def _lineage(conn: psycopg.Connection, model_id: int) -> dict:
    (doc,) = conn.execute("SELECT pyml.lineage(%s)", (model_id,)).fetchone()
    return doc


def _models(conn: psycopg.Connection, project: str) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT m.id FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s ORDER BY m.id",
            (project,),
        )
    ]


def test_lineage_traces_data_code_people_and_deployments(conn: psycopg.Connection) -> None:
    project = "lineage diabetes"
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'pyml.diabetes', 'target',"
        ' \'ridge\', \'{"alpha": 0.5}\', preprocess => \'{"bmi": {"scale":'
        ' "standard"}}\')',
        (project,),
    )
    conn.execute(
        "SELECT * FROM pyml.train(%s, algorithm => 'lightgbm', automatic_deploy => false)",
        (project,),
    )
    first, second = _models(conn, project)
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (second,))
    conn.execute("SELECT * FROM pyml.deploy(%s, 'rollback')", (project,))

    doc = _lineage(conn, first)
    assert doc["model_id"] == first and doc["status"] == "successful"
    assert doc["project"]["name"] == project and doc["project"]["task"] == "regression"
    assert doc["algorithm"] == "ridge" and doc["hyperparams"]["alpha"] == 0.5
    assert doc["preprocess"]["bmi"]["scale"] == "standard"
    assert "r2" in doc["metrics"]
    assert doc["baseline"]["count"] == round(0.25 * 442)  # its predictions on the test rows
    (user,) = conn.execute("SELECT current_user").fetchone()
    assert doc["trained_by"] == user and doc["trained_at"]
    env = doc["environment"]
    assert env["pyml"] == pyml.__version__ and env["python"] and env["libraries"]["scikit-learn"]

    snapshot = doc["snapshot"]
    assert snapshot["relation"] == "pyml.diabetes" and snapshot["row_count"] == 442
    assert len(snapshot["data_fingerprint"]) == 64
    assert {c["name"] for c in snapshot["columns"]} >= {"bmi", "target"}

    (data,) = conn.execute(
        "SELECT data FROM pyml.files WHERE model_id = %s AND part = 0", (first,)
    ).fetchone()
    assert doc["artifacts"][0] == {
        "part": 0,
        "format": "skops",
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert doc["artifacts"][1]["format"] == "skops-preprocessor"

    # Deployed at training (new_score), replaced by the second, back by rollback: live now.
    deployments = doc["deployments"]
    assert [d["strategy"] for d in deployments] == ["new_score", "rollback"]
    assert deployments[0]["live_until"] is not None and deployments[1]["live_until"] is None
    assert all(d["deployed_by"] == user for d in deployments)
    assert doc["live"] is True

    other = _lineage(conn, second)
    assert [d["strategy"] for d in other["deployments"]] == ["specific"]
    assert other["deployments"][0]["live_until"] == deployments[1]["deployed_at"]
    assert other["live"] is False
    assert other["artifacts"][0]["format"] == "lightgbm-text"
    (live_then,) = conn.execute(
        "SELECT pyml.deployed_model(%s, %s::timestamptz)",
        (project, other["deployments"][0]["deployed_at"]),
    ).fetchone()
    assert live_then == second


def test_lineage_of_an_undeployed_model(conn: psycopg.Connection) -> None:
    conn.execute(
        "SELECT * FROM pyml.train('lineage iris', 'classification', 'pyml.iris',"
        " 'target', automatic_deploy => false)"
    )
    (model_id,) = _models(conn, "lineage iris")
    doc = _lineage(conn, model_id)
    assert doc["deployments"] == [] and doc["live"] is False
    assert doc["classes"] == [0, 1, 2]


def test_lineage_of_an_unknown_model_is_42704(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.lineage(-1)")
    (nothing,) = conn.execute("SELECT pyml.lineage(NULL)").fetchone()
    assert nothing is None  # STRICT
