"""What CREATE EXTENSION pyml installs: a golden member list, comments, settings, docs.

``expected/contents.txt`` is the reviewed list of every object the extension owns
(``pg_depend`` deptype ``e``, described by ``pg_describe_object``). A change to the
extension's surface shows up as a diff of that file: update it in the same commit.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import psycopg
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXPECTED = HERE / "expected" / "contents.txt"

MEMBERS = """
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS member
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_extension e
    ON d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.refobjid = e.oid
WHERE e.extname = 'pyml' AND d.deptype = 'e'
ORDER BY 1
"""

FUNCTIONS = """
SELECT p.oid::pg_catalog.regprocedure::text AS signature, p.proname AS name,
       pg_catalog.obj_description(p.oid, 'pg_proc') AS comment,
       p.proconfig AS config
FROM pg_catalog.pg_proc p
WHERE p.pronamespace = 'pyml'::pg_catalog.regnamespace
ORDER BY 1
"""

# Every column of the extension's tables, views and composite types (a type's pg_depend row
# names the type, not its pg_class row), with its COMMENT (NULL: none).
COLUMNS = """
WITH members AS (
    SELECT d.classid, d.objid
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_extension e
        ON d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.refobjid = e.oid
    WHERE e.extname = 'pyml' AND d.deptype = 'e'
)
SELECT pg_catalog.format('%s.%I', c.oid::pg_catalog.regclass, a.attname) AS "column",
       pg_catalog.col_description(c.oid, a.attnum) AS comment
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
  AND (('pg_catalog.pg_class'::pg_catalog.regclass, c.oid) IN (SELECT * FROM members)
       OR ('pg_catalog.pg_type'::pg_catalog.regclass, c.reltype) IN (SELECT * FROM members))
ORDER BY 1
"""

REGISTRY = ("projects", "snapshots", "models", "files", "deployments")
SEARCH_PATH = "search_path=pg_catalog, pg_temp"


@pytest.fixture(scope="module")
def admin(admin_url: str):
    with psycopg.connect(admin_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def functions(admin: psycopg.Connection) -> list[tuple[str, str, str | None, list[str] | None]]:
    rows = admin.execute(FUNCTIONS).fetchall()
    assert rows, "no function in schema pyml"
    return rows


def test_members_match_golden_file(admin: psycopg.Connection) -> None:
    actual = [row[0] + "\n" for row in admin.execute(MEMBERS)]
    expected = EXPECTED.read_text().splitlines(keepends=True)
    diff = "".join(difflib.unified_diff(expected, actual, str(EXPECTED), "installed extension"))
    assert actual == expected, f"extension members differ from {EXPECTED.name}:\n{diff}"


def test_every_function_has_a_comment(functions) -> None:
    missing = [signature for signature, _, comment, _ in functions if not comment]
    assert missing == []


def test_every_column_has_a_comment(admin: psycopg.Connection) -> None:
    """What psql's \\d+ shows as Description, for every table, view and result type."""
    comments: dict[str, str | None] = dict(admin.execute(COLUMNS).fetchall())
    # The query sees tables, views (security_invoker too) and composite types.
    assert {
        "pyml.models.classes",
        "pyml._grants.grantee",
        "pyml.trained_models.deployed",
        "pyml.project_privileges.privilege",
        "pyml.train_result.deployed",
    } <= set(comments)
    missing = [column for column, comment in comments.items() if not comment]
    assert missing == []


# PostgreSQL forbids COMMIT in a procedure that has a SET clause: this one sets
# search_path itself at the start of each of its transactions.
COMMITS = {"pyml.stream_work(bigint,integer)"}


# The handler and validator of language plpyml (src/pyml.c) resolve no names; a SET clause on
# the handler would wrap every call of every pyml function in a GUC save and restore.
LANGUAGE = {"pyml._plpyml_call_handler()", "pyml._plpyml_validator(oid)"}
# The same for the transition functions of pyml._float8s_agg and _int8s_agg (src/arrays.c),
# called once per row read; an aggregate itself cannot have a SET clause.
LANGUAGE |= {
    "pyml._float8s_add(internal,double precision)",
    "pyml._int8s_add(internal,bigint)",
    "pyml._float8s_agg(double precision)",
    "pyml._int8s_agg(bigint)",
}


def test_every_function_pins_search_path(functions) -> None:
    unpinned = [
        signature
        for signature, _, _, config in functions
        if SEARCH_PATH not in (config or []) and signature not in COMMITS | LANGUAGE
    ]
    assert unpinned == []


def test_procedures_that_commit_pin_search_path_themselves(admin: psycopg.Connection) -> None:
    for signature in COMMITS:
        (source,) = admin.execute(
            "SELECT prosrc FROM pg_catalog.pg_proc WHERE oid = %s::regprocedure", (signature,)
        ).fetchone()
        first = source.strip().splitlines()[0]
        assert "set_config('search_path', 'pg_catalog, pg_temp', true)" in first


def _reference_table_lines() -> list[str]:
    """Table rows of README.md's "## Reference" section."""
    lines, inside = [], False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Reference"
        elif inside and line.startswith("|"):
            lines.append(line)
    return lines


def test_every_public_function_is_in_the_readme_reference(functions) -> None:
    rows = _reference_table_lines()
    assert rows, "README.md has no table rows under '## Reference'"
    names = sorted({name for _, name, _, _ in functions if not name.startswith("_")})
    undocumented = [
        name
        for name in names
        if not any(re.search(rf"\bpyml\.{re.escape(name)}\b", row) for row in rows)
    ]
    assert undocumented == [], "functions missing from README.md's Reference"


def test_registry_tables_are_dumped_with_their_rows(admin: psycopg.Connection) -> None:
    """pg_dump keeps rows of extension tables only when registered in extconfig."""
    (config,) = admin.execute(
        "SELECT e.extconfig::pg_catalog.regclass[]::text[] FROM pg_catalog.pg_extension e"
        " WHERE e.extname = 'pyml'"
    ).fetchone()
    config = set(config or [])
    tables = {f"pyml.{name}" for name in REGISTRY}
    assert tables <= config
    # Their identity sequences too, or restored databases would hand out used ids again.
    sequences = {
        row[0]
        for row in admin.execute(
            "SELECT pg_catalog.pg_get_serial_sequence(t, a.attname)"
            " FROM pg_catalog.unnest(%s::text[]) t"
            " JOIN pg_catalog.pg_attribute a ON a.attrelid = t::pg_catalog.regclass"
            " WHERE a.attidentity <> '' AND NOT a.attisdropped",
            (sorted(tables),),
        )
    }
    assert sequences == {f"pyml.{name}_id_seq" for name in REGISTRY if name != "files"}
    assert sequences <= config
