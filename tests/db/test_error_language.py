"""Language plpyml (src/pyml.c): pyml's errors read like PostgreSQL's, bugs keep their traceback.

PL/Python writes every error of a function as ``plpy.Error: <message>`` (or
``spiexceptions.<Class>: <message>``) with a Python traceback as CONTEXT. pyml's functions run
in language plpyml, PL/Python's handler inside a PG_TRY that re-throws pyml's own errors and
the PostgreSQL errors that pass through its code without either; any other exception is a bug
and keeps both.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors as e

PROJECT = "lang iris"


@pytest.fixture(scope="module")
def admin(admin_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


@pytest.fixture(scope="module", autouse=True)
def setup(admin: psycopg.Connection, conn: psycopg.Connection) -> None:
    conn.execute("SELECT * FROM pyml.load_dataset('iris')")
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target')", (PROJECT,)
    )
    # Functions of the test's own in language plpyml (only a superuser may create them).
    admin.execute("""
        CREATE FUNCTION public.lang_bug() RETURNS int LANGUAGE plpyml AS $$
        return 1 // 0
        $$""")
    admin.execute("""
        CREATE FUNCTION public.lang_error() RETURNS int LANGUAGE plpyml AS $$
        def inner():
            plpy.error("widget \\"w\\" is broken", detail="It was.", hint="Fix it.",
                       sqlstate="22023")
        inner()
        $$""")
    admin.execute("GRANT EXECUTE ON FUNCTION public.lang_bug(), public.lang_error() TO PUBLIC")
    admin.execute("CREATE TABLE public.lang_secret (a real, y real)")
    admin.execute("INSERT INTO public.lang_secret SELECT g, g FROM generate_series(1, 20) g")


def test_a_pyml_error_has_the_message_alone(conn: psycopg.Connection) -> None:
    with pytest.raises(e.UndefinedObject) as info:
        conn.execute("SELECT pyml.predict('lang no such project', ARRAY[1, 2, 3, 4]::real[])")
    diag = info.value.diag
    assert diag.message_primary == 'project "lang no such project" does not exist'
    assert diag.context is None  # called from the query itself: nothing to add
    assert diag.sqlstate == "42704"


def test_detail_hint_and_the_callers_context_stay(conn: psycopg.Connection) -> None:
    with pytest.raises(e.NullValueNotAllowed) as info:
        conn.execute(
            "DO $$ BEGIN PERFORM pyml.predict('lang iris', ARRAY[1, NULL, 3, 4]::real[]); END $$"
        )
    diag = info.value.diag
    assert diag.message_primary == "features must not be NULL"
    assert diag.message_detail == 'Feature 2 ("sepal_width") is NULL (or NaN).'
    assert diag.message_hint
    assert diag.context is not None
    assert "Traceback" not in diag.context and "PL/Python" not in diag.context
    assert "PL/pgSQL function inline_code_block" in diag.context


def test_the_row_wrapper_adds_no_context(conn: psycopg.Connection) -> None:
    """The row overloads are SQL functions around an internal one: no line of theirs."""
    with pytest.raises(e.NullValueNotAllowed) as info:
        conn.execute("SELECT pyml.predict('lang iris', ROW(1.0, NULL, 2.0, 3.0))")
    assert info.value.diag.message_detail == 'Feature 2 ("sepal_width") is NULL (or NaN).'
    assert info.value.diag.context is None


def test_a_postgresql_error_through_pyml_loses_the_python_class(conn: psycopg.Connection) -> None:
    """Training reads the relation with the caller's rights: PostgreSQL's own error, as is."""
    with pytest.raises(e.InsufficientPrivilege) as info:
        conn.execute(
            "SELECT * FROM pyml.train('lang secret', 'regression', 'public.lang_secret', 'y')"
        )
    diag = info.value.diag
    assert diag.message_primary == "permission denied for table lang_secret"
    assert "Traceback" not in (diag.context or "")
    assert diag.internal_query is None  # pyml's own statement is not the caller's business


def test_an_error_raised_on_purpose_in_plpyml(conn: psycopg.Connection) -> None:
    with pytest.raises(e.InvalidParameterValue) as info:
        conn.execute("SELECT public.lang_error()")
    diag = info.value.diag
    assert (diag.message_primary, diag.message_detail, diag.message_hint) == (
        'widget "w" is broken',
        "It was.",
        "Fix it.",
    )
    assert diag.context is None


def test_a_bug_keeps_its_class_and_traceback(conn: psycopg.Connection) -> None:
    with pytest.raises(e.ExternalRoutineException) as info:
        conn.execute("SELECT public.lang_bug()")
    diag = info.value.diag
    assert diag.message_primary == "ZeroDivisionError: integer division or modulo by zero"
    assert diag.context is not None and diag.context.startswith("Traceback")


def test_the_validator_checks_bodies_at_creation(admin: psycopg.Connection) -> None:
    with pytest.raises(e.ExternalRoutineException) as info:
        admin.execute(
            "CREATE FUNCTION public.lang_broken() RETURNS int LANGUAGE plpyml AS $$ return ( $$"
        )
    assert 'could not compile PL/Python function "lang_broken"' in str(info.value)


def test_only_superusers_write_functions_in_it(conn: psycopg.Connection) -> None:
    with pytest.raises(e.InsufficientPrivilege):
        conn.execute(
            "CREATE FUNCTION public.lang_mine() RETURNS int LANGUAGE plpyml AS $$ return 1 $$"
        )


def test_set_returning_and_trigger_functions_run_through_it(conn: psycopg.Connection) -> None:
    (language,) = conn.execute(
        "SELECT l.lanname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l"
        " ON l.oid = p.prolang WHERE p.oid = 'pyml.stream_read(bigint, text, integer, bigint)'"
        "::regprocedure"
    ).fetchone() or (None,)
    assert language == "plpyml"
    conn.execute(
        "CREATE TABLE public.lang_rows (id int PRIMARY KEY, sepal_length real,"
        " sepal_width real, petal_length real, petal_width real)"
    )
    conn.execute("SELECT pyml.stream(%s, 'public.lang_rows', 'id')", (PROJECT,))
    conn.execute("INSERT INTO public.lang_rows VALUES (1, 5.1, 3.5, 1.4, 0.2)")
    with pytest.raises(e.NullValueNotAllowed) as info:  # the trigger's error, cleaned
        conn.execute("INSERT INTO public.lang_rows VALUES (2, 5.1, NULL, 1.4, 0.2)")
    assert "Traceback" not in (info.value.diag.context or "")
    assert not (info.value.diag.message_primary or "").startswith("plpy")
