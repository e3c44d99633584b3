"""Alembic environment: where the database is, and what autogenerate may touch.

The database URL comes from ``-x url=...`` or else the environment variable
``PYML_URL``, the one the ``pyml`` command reads (``PYML_DATABASE_URL``, its former name
here, still works, with a warning). Plain ``postgresql://`` URLs (what ``pyml up``
prints) are run with the psycopg 3 driver (``postgresql+psycopg://``).

Autogenerate (``alembic revision --autogenerate``, ``alembic check``) considers only
what these migrations own: the tables declared in ``target_metadata``, outside schema
``pyml``. Nothing else in the database is reflected, so tables of other extensions
(pg_cron's ``cron.job``), of other tools or made by hand are never proposed for
dropping, nor anything in schema ``pyml``, which belongs to the extension scripts
(revisions change it only through ``CREATE EXTENSION`` / ``ALTER EXTENSION pyml
UPDATE TO``). The price: a table removed from ``target_metadata`` is not detected
either; drop it with ``op.drop_table`` in a revision written by hand.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.util import CommandError
from sqlalchemy import MetaData, create_engine, pool
from sqlalchemy.engine import URL, make_url

URL_ENV = "PYML_URL"  # as for the pyml command
DEPRECATED_URL_ENV = "PYML_DATABASE_URL"  # the name env.py read before
EXTENSION_SCHEMA = "pyml"
Owned = frozenset[tuple[str | None, str]]  # (schema, table); None: the default schema

config = context.config

# Embedding programs (tests) set attributes["configure_logger"] = False to keep their logging.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Tables of your own (outside schema pyml) go here for autogenerate: import your models'
# MetaData instead. The naming convention is the one the extension DDL follows by hand.
target_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
# Embedding programs (tests) may pass theirs in attributes["target_metadata"].
target_metadata = config.attributes.get("target_metadata", target_metadata)


def database_url() -> URL:
    """The target database, from ``-x url=...``, else ``$PYML_URL``, else the deprecated
    ``$PYML_DATABASE_URL`` (with a warning in alembic's log, which its command line prints)."""
    given = context.get_x_argument(as_dictionary=True).get("url")
    raw = given or os.environ.get(URL_ENV)
    if os.environ.get(DEPRECATED_URL_ENV):
        log = logging.getLogger("alembic.env")
        if raw:
            log.warning(
                "$%s is deprecated and ignored: the URL comes from %s",
                DEPRECATED_URL_ENV,
                "-x url" if given else f"${URL_ENV}",
            )
        else:
            raw = os.environ[DEPRECATED_URL_ENV]
            log.warning(
                "$%s is deprecated: set $%s instead (the pyml command reads it too)",
                DEPRECATED_URL_ENV,
                URL_ENV,
            )
    if not raw:
        raise CommandError(
            f"no database URL: pass -x url=postgresql+psycopg://... or set {URL_ENV}"
        )
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername != "postgresql+psycopg":
        raise CommandError(
            f"the database URL must use postgresql+psycopg://, got {url.drivername}:// instead"
        )
    return url


def owned_tables(metadata: MetaData, default_schema: str | None) -> Owned:
    """``(schema, name)`` of the tables these migrations own: those of ``metadata``
    outside schema pyml, with the connection's default schema written None (as
    autogenerate reflects it)."""
    return frozenset(
        (None if table.schema in (None, default_schema) else table.schema, table.name)
        for table in metadata.tables.values()
        if table.schema != EXTENSION_SCHEMA
    )


def name_filter(owned: Owned) -> Callable[[str | None, str, dict[str, str | None]], bool]:
    """``include_name``: reflect the schemas that hold owned tables and, in them, only the
    owned tables (their columns, indexes and constraints with them)."""
    schemas = {schema for schema, _ in owned}

    def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
        if type_ == "schema":
            return name in schemas  # None: the default schema
        if type_ == "table":
            return (parent_names.get("schema_name"), str(name)) in owned
        return True

    return include_name


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Compare nothing in schema pyml, not even what target_metadata declares there."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return getattr(table, "schema", None) != EXTENSION_SCHEMA


def _options(default_schema: str | None = None) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "include_schemas": True,
        "include_name": name_filter(owned_tables(target_metadata, default_schema)),
        "include_object": include_object,
    }


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL instead of running it."""
    context.configure(
        url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"}, **_options()
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection, **_options(connection.dialect.default_schema_name)
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
