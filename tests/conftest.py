"""Fixtures: a real PostgreSQL (the one `pyml up` starts) with the real extension.

A template database gets the extension, a non-superuser test role and the six
datasets once per run (pytest-postgresql's DatabaseJanitor); each test module
gets its own copy of it. Tests connect as the non-superuser role.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from pytest_postgresql.janitor import DatabaseJanitor

from pyml.client.cluster import SUPERUSER, Cluster, ClusterError

ROLE = "pyml_tester"
DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "linnerud", "wine")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    cluster = Cluster.for_checkout()
    try:
        cluster.up()
    except (ClusterError, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the local server is required in CI: {exc}")
        pytest.skip(f"no local server (run 'make test'): {exc}")
    return cluster


def _janitor(cluster: Cluster, dbname: str, **kwargs: object) -> DatabaseJanitor:
    return DatabaseJanitor(
        user=SUPERUSER,
        host="127.0.0.1",
        port=cluster.port,
        dbname=dbname,
        **kwargs,  # type: ignore[arg-type]
    )


def _prepare_template(conn: psycopg.Connection) -> None:
    conn.execute("SET client_min_messages = warning")
    conn.execute("CREATE EXTENSION pyml CASCADE")
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
    if not exists:
        try:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(ROLE)))
        except psycopg.errors.UniqueViolation:  # created meanwhile by a parallel test run
            pass
    # The test role works in schema public; pyml needs no grant (every role may use it, and
    # decides per project). The datasets are loaded by the test role, which owns them.
    role = sql.Identifier(ROLE)
    conn.execute(sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(role))
    conn.execute(sql.SQL("SET ROLE {}").format(role))
    for source in DATASETS:
        conn.execute("SELECT * FROM pyml.load_dataset(%s)", (source,))
    conn.execute("RESET ROLE")


@pytest.fixture(scope="session")
def template(cluster: Cluster) -> Iterator[str]:
    name = f"pyml_test_template_{os.getpid()}"
    janitor = _janitor(cluster, name, as_template=True)
    janitor.init()
    with psycopg.connect(cluster.uri(name), autocommit=True) as conn:
        _prepare_template(conn)
    yield name
    janitor.drop()


_counter = itertools.count()


@pytest.fixture(scope="module")
def database(cluster: Cluster, template: str) -> Iterator[str]:
    """A fresh copy of the template for this test module; yields its name."""
    name = f"pyml_test_{os.getpid()}_{next(_counter)}"
    janitor = _janitor(cluster, name, template_dbname=template)
    janitor.init()
    yield name
    janitor.drop()


@pytest.fixture(scope="module")
def admin_url(cluster: Cluster, database: str) -> str:
    """Superuser connection string of the module's database."""
    return cluster.uri(database)


@pytest.fixture(scope="module")
def url(cluster: Cluster, database: str) -> str:
    """Non-superuser connection string of the module's database (what tests use)."""
    return f"postgresql://{ROLE}@127.0.0.1:{cluster.port}/{database}"


@pytest.fixture(scope="module")
def connect(url: str) -> Iterator[Callable[..., psycopg.Connection]]:
    """Open more sessions (closed at the end of the module): ``connect(autocommit=True)``."""
    opened: list[psycopg.Connection] = []

    def _connect(autocommit: bool = True, **kwargs: object) -> psycopg.Connection:
        conn = psycopg.connect(url, autocommit=autocommit, **kwargs)  # type: ignore[arg-type]
        conn.execute("SET client_min_messages = warning")
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture(scope="module")
def conn(connect: Callable[..., psycopg.Connection]) -> psycopg.Connection:
    """The module's shared autocommit session (models stay cached between tests)."""
    return connect()


@pytest.fixture
def project(request: pytest.FixtureRequest) -> str:
    """A project name unique to the test."""
    return f"{request.node.name}"[:60]
