"""pyml.version and the session bootstrap."""

import psycopg
import pytest

import pyml


def test_version_matches_package(conn: psycopg.Connection) -> None:
    assert conn.execute("SELECT pyml.version()").fetchone() == (pyml.__version__,)


def test_extension_version_matches_package(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pyml'").fetchone()
    assert row == (pyml.__version__,)


def test_session_set_of_venv_is_ignored(connect) -> None:
    """A session cannot point the backend at other code: only the server configuration counts."""
    session = connect()
    session.execute("SET pyml.venv = '/nonexistent'")
    assert session.execute("SELECT pyml.version()").fetchone() == (pyml.__version__,)


def test_version_mismatch_is_refused(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("UPDATE pg_extension SET extversion = '0.0.1' WHERE extname = 'pyml'")
        try:
            with psycopg.connect(admin_url, autocommit=True) as fresh:
                with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as info:
                    fresh.execute("SELECT pyml.version()")
                assert "does not match the installed extension version" in str(info.value)
                hint = info.value.diag.message_hint
                assert hint and "ALTER EXTENSION" in hint
        finally:
            admin.execute(
                "UPDATE pg_extension SET extversion = %s WHERE extname = 'pyml'",
                (pyml.__version__,),
            )
