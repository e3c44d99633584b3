"""pyml.fingerprint: the data fingerprint pyml.train would record, without training (what the
dbt package compares to decide whether to train again)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql


def _fingerprint(
    conn: psycopg.Connection,
    relation: str,
    labels: list[str] | None,
    task: str | None,
    preprocess: dict[str, Any] | None = None,
) -> str:
    row = conn.execute(
        "SELECT pyml.fingerprint(%s, %s::text[], %s, %s::jsonb)",
        (relation, labels, task, json.dumps(preprocess or {})),
    ).fetchone()
    assert row is not None and isinstance(row[0], str) and len(row[0]) == 64
    return row[0]


def _recorded(conn: psycopg.Connection, project: str) -> str:
    """The fingerprint of the snapshot of the project's newest model."""
    row = conn.execute(
        "SELECT s.data_fingerprint FROM pyml.models m JOIN pyml.projects p"
        " ON p.id = m.project_id JOIN pyml.snapshots s ON s.id = m.snapshot_id"
        " WHERE p.name = %s ORDER BY m.id DESC LIMIT 1",
        (project,),
    ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture(scope="module")
def houses(conn: psycopg.Connection) -> str:
    """A table with a text column, a boolean label and a numeric one."""
    conn.execute(
        "CREATE TABLE fp_houses AS SELECT i AS size, (i % 5)::real AS rooms,"
        " (ARRAY['north', 'south', 'east'])[1 + i % 3] AS city, i % 7 < 3 AS premium,"
        " (i * 1.5 + i % 11)::float8 AS price FROM generate_series(1, 120) AS i"
    )
    return "fp_houses"


@pytest.mark.parametrize(
    ("task", "labels", "preprocess", "train"),
    [
        (
            "regression",
            ["price"],
            {"city": {"encode": "one_hot"}},
            "pyml.train(%s, 'regression', 'fp_houses', 'price', preprocess =>"
            ' \'{"city": {"encode": "one_hot"}}\')',
        ),
        (
            "classification",
            ["premium"],
            None,
            "pyml.train(%s, 'classification', 'fp_houses', 'premium')",
        ),
        (
            "regression",
            ["price", "rooms"],
            None,
            "pyml.train_joint(%s, 'regression', 'fp_houses', ARRAY['price', 'rooms'])",
        ),
        (
            "clustering",
            None,
            None,
            "pyml.train(%s, 'clustering', 'fp_houses', NULL, 'kmeans', '{\"n_clusters\": 2}')",
        ),
    ],
)
def test_equals_what_training_records(
    conn: psycopg.Connection,
    houses: str,
    project: str,
    task: str,
    labels: list[str] | None,
    preprocess: dict[str, Any] | None,
    train: str,
) -> None:
    before = _fingerprint(conn, houses, labels, task, preprocess)
    conn.execute(f"SELECT * FROM {train}", (project,))  # noqa: S608 (constant SQL)
    assert _recorded(conn, project) == before


def test_follows_the_rows_and_nothing_else(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE fp_rows AS SELECT * FROM pyml.iris")
    first = _fingerprint(conn, "fp_rows", ["target"], "classification")
    assert _fingerprint(conn, "fp_rows", ["target"], "classification") == first
    assert _fingerprint(conn, "public.fp_rows", ["target"], "classification") == first
    # the same rows in a copy under another name: the same data
    conn.execute("CREATE TABLE fp_copy AS SELECT * FROM fp_rows")
    assert _fingerprint(conn, "fp_copy", ["target"], "classification") == first
    conn.execute("UPDATE fp_copy SET sepal_length = sepal_length + 0.5 WHERE target = 2")
    assert _fingerprint(conn, "fp_copy", ["target"], "classification") != first
    # labels read as classes, or as numbers: what training with that task would record
    assert _fingerprint(conn, "fp_rows", ["target"], "regression") != first


def test_is_the_sha256_of_the_columns_as_read(conn: psycopg.Connection) -> None:
    """The fingerprint's bytes, pinned (the dbt package compares fingerprints across pyml
    versions): per feature column its name, a NUL and its values (float8 bytes, or a JSON
    list of text for a category column), then the labels (float8 bytes after their name,
    or a JSON list of class labels)."""
    conn.execute(
        "CREATE TABLE fp_bytes AS SELECT i::float8 / 3 AS a, (i % 7)::int AS b,"
        " (ARRAY['x', 'y', NULL])[i % 3 + 1] AS c, (i % 2 = 0)::int AS y"
        " FROM generate_series(1, 50) i"
    )
    a, b, c, y = zip(
        *conn.execute("SELECT a, b, c, y FROM fp_bytes ORDER BY ctid").fetchall(), strict=True
    )

    def floats(values: Any) -> bytes:
        return np.asarray(values, dtype=np.float64).tobytes()

    features = b"a\0" + floats(a) + b"b\0" + floats(b) + b"c\0" + json.dumps(list(c)).encode()
    regression = hashlib.sha256(features + b"y\0" + floats(y)).hexdigest()
    classes = hashlib.sha256(features + json.dumps(list(y)).encode()).hexdigest()
    assert _fingerprint(conn, "fp_bytes", ["y"], "regression") == regression
    assert _fingerprint(conn, "fp_bytes", ["y"], "classification") == classes


def test_a_plain_view_reads_as_sql_reads_it(conn: psycopg.Connection) -> None:
    """A plain view is read through its table (src/scan.c) and any other view through SQL:
    the same rows in the same order give the same fingerprint, renamed columns, a dropped
    column and a column order of the view's own included."""
    conn.execute(
        "CREATE TABLE fp_base AS SELECT i::float8 / 7 AS a, i % 5 AS gone, (i % 3)::real AS b,"
        " (i % 2)::int AS y FROM generate_series(1, 3000) i"
    )
    conn.execute("ALTER TABLE fp_base DROP COLUMN gone")
    conn.execute("CREATE VIEW fp_plain AS SELECT y AS label, b AS x2, a AS x1 FROM fp_base")
    conn.execute(
        "CREATE VIEW fp_through_sql AS SELECT y AS label, b AS x2, a AS x1 FROM fp_base WHERE true"
    )
    for task in ("regression", "classification"):
        direct = _fingerprint(conn, "fp_plain", ["label"], task)
        assert _fingerprint(conn, "fp_through_sql", ["label"], task) == direct


def test_reads_with_the_callers_rights_and_needs_no_project(
    conn: psycopg.Connection, admin_url: str
) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE fp_private AS SELECT * FROM pyml.iris")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _fingerprint(conn, "fp_private", ["target"], "classification")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("GRANT SELECT ON fp_private TO {}").format(sql.Identifier(conn.info.user))
        )
    _fingerprint(conn, "fp_private", ["target"], "classification")


def test_errors(conn: psycopg.Connection, houses: str) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable):
        _fingerprint(conn, "fp_nowhere", ["price"], "regression")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        _fingerprint(conn, houses, ["nope"], "regression")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        _fingerprint(conn, houses, ["price"], "forecasting")
    with pytest.raises(psycopg.errors.InvalidParameterValue):  # as pyml.train refuses it
        _fingerprint(conn, houses, ["city"], "regression")
