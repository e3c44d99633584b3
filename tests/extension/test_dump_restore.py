"""Models are data: pg_dump/pg_restore carries trained models to another database.

Two models are trained in the module's database (LightGBM on breast_cancer, linear on
diabetes), the database is dumped (custom format) and restored into a new empty one;
the registry rows come back unchanged, and both databases predict the same numbers.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pyml.client.cluster import PG_BIN, Cluster

pytestmark = pytest.mark.slow

REGISTRY = {
    "projects": "id",
    "snapshots": "id",
    "models": "id",
    "files": "model_id, part",
    "deployments": "id",
}
FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
FEATURES_DDL = ", ".join(f"{f} real" for f in FEATURES)
BREAST_CANCER = "Dump Breast Cancer"
DIABETES = "Dump Diabetes"


def _run(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{argv[0]} failed:\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="module")
def trained(admin_url: str, url: str) -> str:
    """The module's database with two trained, deployed models; returns its superuser URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        row = conn.execute(
            "SELECT deployed FROM pyml.train(%s, 'classification', 'pyml.breast_cancer',"
            " 'malignant', algorithm => 'lightgbm')",
            (BREAST_CANCER,),
        ).fetchone()
        assert row == (True,)
        row = conn.execute(
            "SELECT deployed FROM pyml.train(%s, 'regression', 'pyml.diabetes', 'target')",
            (DIABETES,),
        ).fetchone()
        assert row == (True,)
        # Streamed tables with constraints: a partitioned one (sync) and a plain one (async).
        conn.execute(
            f"CREATE TABLE readings (id bigint PRIMARY KEY, {FEATURES_DDL}) PARTITION BY RANGE (id)"
        )
        conn.execute("CREATE TABLE readings_1 PARTITION OF readings FOR VALUES FROM (0) TO (1000)")
        conn.execute(f"CREATE TABLE queued (id bigint PRIMARY KEY, {FEATURES_DDL})")
        conn.execute("SELECT pyml.stream(%s, 'readings')", (DIABETES,))
        conn.execute("SELECT pyml.stream(%s, 'queued', mode => 'async')", (DIABETES,))
        conn.execute(
            "CREATE TABLE readings_2 PARTITION OF readings FOR VALUES FROM (1000) TO (2000)"
        )
    return admin_url


@pytest.fixture(scope="module")
def restored(
    cluster: Cluster, trained: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A new database restored from a pg_dump -Fc of the trained one; returns its URL."""
    dump = tmp_path_factory.mktemp("dump") / "pyml.dump"
    _run(str(PG_BIN / "pg_dump"), "-Fc", "-f", str(dump), "-d", trained)
    name = f"pyml_restored_{os.getpid()}"
    identifier = sql.Identifier(name)
    with psycopg.connect(cluster.uri("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(identifier))
    try:
        _run(str(PG_BIN / "pg_restore"), "--exit-on-error", "-d", cluster.uri(name), str(dump))
        yield cluster.uri(name)
    finally:
        with psycopg.connect(cluster.uri("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))


def _rows(url: str, table: str, order: str) -> list[object]:
    with psycopg.connect(url) as conn:
        return [
            row[0]
            for row in conn.execute(
                sql.SQL("SELECT pg_catalog.to_jsonb(t)::text FROM {} t ORDER BY {}").format(
                    sql.Identifier("pyml", table),
                    sql.SQL(order),  # fixed names from REGISTRY
                )
            )
        ]


def _predictions(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every prediction of both live models, in a new session (nothing cached)."""
    with psycopg.connect(url) as conn:
        conn.execute("SET client_min_messages = warning")
        cancer = conn.execute(
            "SELECT pyml.predict(%(p)s, b), pyml.predict_proba(%(p)s, b),"
            " pyml.predict_label(%(p)s, b)"
            ' FROM pyml.breast_cancer b ORDER BY "mean radius", "mean texture"',
            {"p": BREAST_CANCER},
        ).fetchall()
        diabetes = conn.execute(
            "SELECT pyml.predict(%(p)s, ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]),"
            " pyml.predict(%(p)s, d)"
            " FROM pyml.diabetes d ORDER BY target, bmi, bp",
            {"p": DIABETES},
        ).fetchall()
    return {"breast_cancer": cancer, "diabetes": diabetes}


@pytest.mark.parametrize("table", sorted(REGISTRY))
def test_registry_rows_are_restored(trained: str, restored: str, table: str) -> None:
    original = _rows(trained, table, REGISTRY[table])
    assert original, f"pyml.{table} is empty before the dump"
    assert _rows(restored, table, REGISTRY[table]) == original


def test_restored_models_are_the_trained_ones(restored: str) -> None:
    with psycopg.connect(restored) as conn:
        rows = conn.execute(
            "SELECT p.name, m.algorithm, m.status, f.format, f.sha256 = pg_catalog.encode("
            "pg_catalog.sha256(f.data), 'hex'), d.model_id = m.id"
            " FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " JOIN pyml.files f ON f.model_id = m.id"
            " JOIN pyml.deployed_models d ON d.project = p.name"
            " WHERE p.name IN (%s, %s) ORDER BY p.name, f.part",
            (BREAST_CANCER, DIABETES),
        ).fetchall()
    assert rows == [
        (BREAST_CANCER, "lightgbm", "successful", "lightgbm-text", True, True),
        (BREAST_CANCER, "lightgbm", "successful", "onnx", True, True),
        (DIABETES, "linear", "successful", "skops", True, True),
        (DIABETES, "linear", "successful", "onnx", True, True),
    ]


def test_predictions_are_identical(trained: str, restored: str) -> None:
    original = _predictions(trained)
    assert len(original["breast_cancer"]) == 569 and len(original["diabetes"]) == 442
    assert _predictions(restored) == original


def test_restored_sequences_continue(trained: str, restored: str) -> None:
    """Identity sequences are dumped too: a new model gets a new id, not a used one."""
    with psycopg.connect(trained) as conn:
        (last,) = conn.execute("SELECT max(id) FROM pyml.models").fetchone()
    with psycopg.connect(restored, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("SELECT * FROM pyml.train(%s, algorithm => 'ridge')", (DIABETES,))
        (new,) = conn.execute(
            "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s",
            (DIABETES,),
        ).fetchone()
    assert new == last + 1


def test_streams_work_after_restore(restored: str) -> None:
    """Stream definitions and their triggers (on every partition) come back, once each."""
    with psycopg.connect(restored, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        streams = conn.execute(
            "SELECT stream_id, source_relation, mode FROM pyml.streams ORDER BY stream_id"
        ).fetchall()
        assert [(r[1], r[2]) for r in streams] == [("readings", "sync"), ("queued", "async")]
        values = ", ".join(["0.01"] * len(FEATURES))
        for table, key in (("readings", 1), ("readings_2", 1500), ("queued", 7)):
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, {})").format(
                    sql.Identifier(table), sql.SQL(values)
                ),
                (key,),
            )
        conn.execute("CALL pyml.stream_work()")
        events = conn.execute(
            "SELECT stream_id, key FROM pyml.stream_events ORDER BY stream_id, key::int"
        ).fetchall()
    sync_id, async_id = streams[0][0], streams[1][0]
    assert events == [(sync_id, "1"), (sync_id, "1500"), (async_id, "7")]


# ---------------------------------------------------------------------------
# The database pyml of the local server, as `pyml up` made it
# ---------------------------------------------------------------------------

TAG = f"{os.getpid()}_{time.time_ns()}"
OWN_PROJECT = f"Dump pyml {TAG}"
OWN_TABLE = f"dump_pyml_{TAG}"  # training rows (and the monitor's relation)
OWN_STREAM = f"dump_pyml_stream_{TAG}"


def _own_predictions(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        conn.execute("SET client_min_messages = warning")
        return conn.execute(
            sql.SQL(
                "SELECT pyml.predict(%s, ARRAY[x1, x2]), pyml.predict(%s, t) FROM {} t ORDER BY x1"
            ).format(sql.Identifier(OWN_TABLE)),
            (OWN_PROJECT, OWN_PROJECT),
        ).fetchall()


@pytest.fixture(scope="module")
def pyml_database(cluster: Cluster) -> Iterator[str]:
    """The local server's own database pyml, with a project of this module's (a model on a
    materialized snapshot, a monitor, a stream, logged predictions) that is removed
    afterwards; returns its superuser URL."""
    table, stream = sql.Identifier(OWN_TABLE), sql.Identifier(OWN_STREAM)
    with psycopg.connect(cluster.uri(), autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        try:
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} AS SELECT i::real AS x1, (i % 7)::real AS x2,"
                    " (3 * i - 2 * (i % 7) + 5)::real AS y FROM generate_series(1, 200) i"
                ).format(table)
            )
            conn.execute(
                "SELECT * FROM pyml.train(%s, 'regression', %s, 'y', materialize_snapshot => true)",
                (OWN_PROJECT, OWN_TABLE),
            )
            conn.execute(
                "SELECT pyml.monitor(%s, %s, '1 day', retrain => false)", (OWN_PROJECT, OWN_TABLE)
            )
            conn.execute(
                sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, x1 real, x2 real)").format(stream)
            )
            conn.execute("SELECT pyml.stream(%s, %s)", (OWN_PROJECT, OWN_STREAM))
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 10, 3)").format(stream))
            conn.execute("SELECT pyml.log_predictions(%s)", (OWN_PROJECT,))
            _own_predictions(cluster.uri())
            conn.execute("SELECT pyml.collect_predictions()")
            yield cluster.uri()
        finally:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stream))  # and its stream
            conn.execute(
                "SELECT pyml.delete_project(name, force => true) FROM pyml.projects"
                " WHERE name = %s",
                (OWN_PROJECT,),
            )
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))


def test_database_pyml_restores_without_a_message(
    cluster: Cluster, pyml_database: str, tmp_path: Path
) -> None:
    """A pg_dump of the database `pyml up` made restores into another database with no
    error and no warning (neither pg_dump nor pg_restore, run without --exit-on-error so
    that it says everything, prints a line), and the copy predicts the same numbers."""
    dump = tmp_path / "pyml.dump"
    proc = subprocess.run(
        [str(PG_BIN / "pg_dump"), "-Fc", "-f", str(dump), "-d", pyml_database],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    name = f"pyml_restored_pyml_{os.getpid()}"
    identifier = sql.Identifier(name)
    with psycopg.connect(cluster.uri("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(identifier))
    try:
        proc = subprocess.run(
            [str(PG_BIN / "pg_restore"), "-d", cluster.uri(name), str(dump)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
        original = _own_predictions(pyml_database)
        assert len(original) == 200
        assert _own_predictions(cluster.uri(name)) == original
        with psycopg.connect(cluster.uri(name)) as conn:
            assert (
                conn.execute(
                    "SELECT extname FROM pg_extension WHERE extname = 'pg_cron'"
                ).fetchall()
                == []
            )
            kept = conn.execute(
                "SELECT (SELECT count(*) FROM pyml.monitors m WHERE m.project_id = p.id),"
                " (SELECT count(*) FROM pyml.streams s WHERE s.project = p.name),"
                " (SELECT count(*) FROM pyml.logged_predictions l WHERE l.project_id = p.id),"
                " (SELECT to_regclass(format('pyml.snapshot_%%s', max(m.snapshot_id)))::text"
                "  FROM pyml.models m WHERE m.project_id = p.id)"
                " FROM pyml.projects p WHERE p.name = %s",
                (OWN_PROJECT,),
            ).fetchone()
    finally:
        with psycopg.connect(cluster.uri("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
    assert kept is not None and kept[:3] == (1, 1, 400) and kept[3].startswith("pyml.snapshot_")
