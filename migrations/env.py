"""Alembic environment: where the database is, and what autogenerate may touch.

The database URL comes from ``-x url=...`` or else the environment variable
``PYML_DATABASE_URL``. Plain ``postgresql://`` URLs (what ``pyml up`` prints) are
run with the psycopg 3 driver (``postgresql+psycopg://``).

Schema ``pyml`` belongs to the extension scripts: ``include_name`` and
``include_object`` hide it from autogenerate, which therefore never proposes to
create, alter or drop anything in it. Revisions change it only through
``CREATE EXTENSION`` / ``ALTER EXTENSION pyml UPDATE TO``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.util import CommandError
from sqlalchemy import MetaData, create_engine, pool
from sqlalchemy.engine import URL, make_url

URL_ENV = "PYML_DATABASE_URL"
EXTENSION_SCHEMA = "pyml"

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


def database_url() -> URL:
    """The target database, from ``-x url=...``, else ``$PYML_DATABASE_URL``."""
    raw = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(URL_ENV)
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


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Reflect nothing from schema pyml."""
    if type_ == "schema":
        return name != EXTENSION_SCHEMA
    return parent_names.get("schema_name") != EXTENSION_SCHEMA


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Compare nothing in schema pyml, whether reflected or declared in target_metadata."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return getattr(table, "schema", None) != EXTENSION_SCHEMA


def _options() -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "include_schemas": True,
        "include_name": include_name,
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
            context.configure(connection=connection, **_options())
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
