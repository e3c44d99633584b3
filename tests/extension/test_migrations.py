"""migrations/ (alembic): one head, install equals CREATE EXTENSION, up/down round trip.

Each test works in fresh empty databases (cloned from template0, dropped afterwards)
of the local cluster, as superuser: CREATE EXTENSION pyml needs one.
"""

from __future__ import annotations

import argparse
import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy import MetaData, create_engine, pool
from sqlalchemy.exc import SAWarning

from pyml._cluster import SUPERUSER, Cluster

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
# STYLE: alembic files are YYYY_MM_DD_HHMM-<rev>_<slug>.py
REVISION_FILE = re.compile(r"^\d{4}_\d{2}_\d{2}_\d{4}-(?P<rev>[0-9a-f]+)_[a-z0-9_]+\.py$")

# --------------------------------------------------------------------------------------
# Catalog snapshot of everything the extension owns (pg_depend deptype 'e'), with the
# details a different install path could get wrong. No OIDs: two databases compare equal.
# --------------------------------------------------------------------------------------

MEMBERS_VIEW = """
CREATE TEMP VIEW members AS
SELECT d.classid, d.objid
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_extension e ON d.refclassid = 'pg_catalog.pg_extension'::regclass
    AND d.refobjid = e.oid
WHERE e.extname = 'pyml' AND d.deptype = 'e'
"""

SNAPSHOT_QUERIES: dict[str, str] = {
    "extensions": """
        SELECT e.extname, e.extversion, e.extrelocatable, n.nspname,
               e.extconfig::regclass[]::text[], e.extcondition,
               pg_catalog.obj_description(e.oid, 'pg_extension')
        FROM pg_catalog.pg_extension e
        JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
        ORDER BY 1
    """,
    "members": """
        SELECT o.type, o.identity
        FROM members m, pg_catalog.pg_identify_object(m.classid, m.objid, 0) o
        ORDER BY 1, 2
    """,
    "schemas": """
        SELECT n.nspname, pg_catalog.pg_get_userbyid(n.nspowner), n.nspacl::text
        FROM pg_catalog.pg_namespace n
        WHERE n.nspname = 'pyml' OR n.oid IN (
            SELECT objid FROM members WHERE classid = 'pg_catalog.pg_namespace'::regclass)
        ORDER BY 1
    """,
    "functions": """
        SELECT p.oid::regprocedure::text,
               pg_catalog.pg_get_function_identity_arguments(p.oid),
               pg_catalog.pg_get_function_arguments(p.oid),
               pg_catalog.pg_get_function_result(p.oid),
               l.lanname, p.prokind, p.provolatile, p.proisstrict, p.proparallel,
               p.prosecdef, p.proleakproof, p.procost, p.prorows, p.proconfig,
               pg_catalog.pg_get_userbyid(p.proowner), p.proacl::text,
               pg_catalog.md5(p.prosrc)
        FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_language l ON l.oid = p.prolang
        WHERE p.oid IN (SELECT objid FROM members WHERE classid = 'pg_catalog.pg_proc'::regclass)
        ORDER BY 1
    """,
    "relations": """
        SELECT c.oid::regclass::text, c.relkind, c.relpersistence, c.reloptions,
               pg_catalog.pg_get_userbyid(c.relowner), c.relacl::text
        FROM pg_catalog.pg_class c
        WHERE c.oid IN (SELECT objid FROM members WHERE classid = 'pg_catalog.pg_class'::regclass)
        ORDER BY 1
    """,
    "columns": """
        SELECT a.attrelid::regclass::text, a.attnum, a.attname,
               pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
               co.collname, a.attacl::text
        FROM pg_catalog.pg_attribute a
        LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
        WHERE a.attnum > 0 AND NOT a.attisdropped AND (
            a.attrelid IN (SELECT objid FROM members
                           WHERE classid = 'pg_catalog.pg_class'::regclass)
            OR a.attrelid IN (SELECT t.typrelid FROM pg_catalog.pg_type t
                              JOIN members m ON m.objid = t.oid
                              AND m.classid = 'pg_catalog.pg_type'::regclass))
        ORDER BY 1, 2
    """,
    "constraints": """
        SELECT co.conrelid::regclass::text, co.conname, co.contype,
               pg_catalog.pg_get_constraintdef(co.oid)
        FROM pg_catalog.pg_constraint co
        WHERE co.conrelid IN (SELECT objid FROM members
                              WHERE classid = 'pg_catalog.pg_class'::regclass)
        ORDER BY 1, 2
    """,
    "indexes": """
        SELECT i.indexrelid::regclass::text, pg_catalog.pg_get_indexdef(i.indexrelid)
        FROM pg_catalog.pg_index i
        WHERE i.indrelid IN (SELECT objid FROM members
                             WHERE classid = 'pg_catalog.pg_class'::regclass)
        ORDER BY 1
    """,
    "triggers": """
        SELECT tg.tgrelid::regclass::text, tg.tgname, pg_catalog.pg_get_triggerdef(tg.oid)
        FROM pg_catalog.pg_trigger tg
        WHERE NOT tg.tgisinternal AND tg.tgrelid IN (
            SELECT objid FROM members WHERE classid = 'pg_catalog.pg_class'::regclass)
        ORDER BY 1, 2
    """,
    "views": """
        SELECT c.oid::regclass::text, pg_catalog.pg_get_viewdef(c.oid, true)
        FROM pg_catalog.pg_class c
        WHERE c.relkind IN ('v', 'm') AND c.oid IN (
            SELECT objid FROM members WHERE classid = 'pg_catalog.pg_class'::regclass)
        ORDER BY 1
    """,
    "sequences": """
        SELECT s.seqrelid::regclass::text, s.seqtypid::regtype::text, s.seqstart,
               s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle
        FROM pg_catalog.pg_sequence s
        WHERE s.seqrelid IN (SELECT objid FROM members
                             WHERE classid = 'pg_catalog.pg_class'::regclass)
        ORDER BY 1
    """,
    "types": """
        SELECT t.oid::regtype::text, t.typtype, t.typcategory,
               pg_catalog.pg_get_userbyid(t.typowner), t.typacl::text
        FROM pg_catalog.pg_type t
        WHERE t.oid IN (SELECT objid FROM members WHERE classid = 'pg_catalog.pg_type'::regclass)
        ORDER BY 1
    """,
    "comments": """
        SELECT pg_catalog.pg_describe_object(ds.classoid, ds.objoid, ds.objsubid), ds.description
        FROM pg_catalog.pg_description ds
        JOIN members m ON m.classid = ds.classoid AND m.objid = ds.objoid
        ORDER BY 1
    """,
}

Snapshot = dict[str, list[tuple[object, ...]]]


def catalog_snapshot(url: str) -> Snapshot:
    """What the extension installed in the database at ``url``, as comparable rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(MEMBERS_VIEW)
        return {name: conn.execute(query).fetchall() for name, query in SNAPSHOT_QUERIES.items()}


def assert_same_catalog(actual: Snapshot, expected: Snapshot) -> None:
    for section in SNAPSHOT_QUERIES:
        assert actual[section] == expected[section], f"catalog section {section!r} differs"


# --------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------


@pytest.fixture
def new_database(cluster: Cluster) -> Iterator[Callable[[], str]]:
    """Create fresh empty databases (from template0); yields a factory returning URLs."""
    janitors: list[DatabaseJanitor] = []

    def _new() -> str:
        name = f"pyml_migrations_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        janitor = DatabaseJanitor(
            user=SUPERUSER, host="127.0.0.1", port=cluster.port, dbname=name,
            template_dbname="template0",
        )
        janitor.init()
        janitors.append(janitor)
        return cluster.uri(name)

    yield _new
    for janitor in janitors:
        janitor.drop()


def alembic_config(url: str | None = None) -> Config:
    """The project's alembic configuration, as ``-c migrations/alembic.ini [-x url=URL]``."""
    x = [f"url={url}"] if url else None
    config = Config(str(MIGRATIONS / "alembic.ini"), cmd_opts=argparse.Namespace(x=x))
    config.attributes["configure_logger"] = False  # leave pytest's logging alone
    return config


def installed_extensions(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute("SELECT extname, extversion FROM pg_extension").fetchall())


def alembic_version(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def psycopg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


def test_one_head_and_dated_file_names() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}"
    assert len(script.get_bases()) == 1, f"several bases: {script.get_bases()}"
    for revision in script.walk_revisions():
        assert revision.path is not None
        name = Path(revision.path).name
        found = REVISION_FILE.match(name)
        assert found, f"{name} does not follow YYYY_MM_DD_HHMM-<rev>_<slug>.py"
        assert found["rev"] == revision.revision


def test_upgrade_head_equals_create_extension(new_database: Callable[[], str]) -> None:
    migrated, plain = new_database(), new_database()

    command.upgrade(alembic_config(psycopg_url(migrated)), "head")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("CREATE EXTENSION pyml CASCADE")

    expected = catalog_snapshot(plain)
    # The snapshot sees the real thing, not two empty lists.
    assert {"pyml._boot()", "pyml.deploy(bigint)", "pyml.version()"} <= {
        row[0] for row in expected["functions"]
    }
    assert {"pyml.models", "pyml.deployments", "pyml.overview"} <= {
        row[0] for row in expected["relations"]
    }
    assert any(row[0] == "pyml.deploy_result" for row in expected["types"])
    assert any("pyml.projects" in row[0] for row in expected["comments"])

    assert_same_catalog(catalog_snapshot(migrated), expected)
    assert installed_extensions(migrated) == installed_extensions(plain)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert alembic_version(migrated) == [head]


def test_upgrade_downgrade_upgrade(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = new_database()
    # The other way to name the database; a plain postgresql:// URL gets the psycopg driver.
    monkeypatch.setenv("PYML_DATABASE_URL", url)
    config = alembic_config()

    command.upgrade(config, "head")
    installed = catalog_snapshot(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO pyml.projects (name, task) VALUES ('kept?', 'regression')")

    command.downgrade(config, "base")
    assert "pyml" not in installed_extensions(url)
    assert "plpython3u" in installed_extensions(url)  # may serve other code: left installed
    assert alembic_version(url) == []
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('pyml.projects')").fetchone() == (None,)
        # CREATE EXTENSION made schema pyml but it is no member of the extension: it stays,
        # empty, and the next upgrade installs into it.
        assert conn.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'pyml'::regnamespace"
        ).fetchone() == (0,)

    command.upgrade(config, "head")
    assert_same_catalog(catalog_snapshot(url), installed)
    with psycopg.connect(url, autocommit=True) as conn:
        # Documented: dropping the extension drops the registry and its rows.
        assert conn.execute("SELECT count(*) FROM pyml.projects").fetchone() == (0,)


def test_autogenerate_leaves_schema_pyml_alone(new_database: Callable[[], str]) -> None:
    url = new_database()
    config = alembic_config(url)
    command.upgrade(config, "head")

    # Without env.py's filters autogenerate would want to drop the registry tables ...
    engine = create_engine(psycopg_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_schemas": True})
            with warnings.catch_warnings():  # SQLAlchemy does not know xid8 (the outbox)
                warnings.filterwarnings("ignore", "Did not recognize type", SAWarning)
                diffs = compare_metadata(context, MetaData())
    finally:
        engine.dispose()
    dropped = {f"{diff[1].schema}.{diff[1].name}" for diff in diffs if diff[0] == "remove_table"}
    assert {"pyml.projects", "pyml.models", "pyml.deployments"} <= dropped

    # ... with them, `alembic check` finds nothing to do.
    command.check(config)
