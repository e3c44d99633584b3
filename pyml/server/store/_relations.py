"""Relations and their data: resolving names, reading columns, writing tables.

Part of the store (the only place with SQL). Relation and column names never come
from the caller's text: PostgreSQL resolves them (``to_regclass``) and quotes them
(``format('%I.%I')``, ``quote_ident``) before they appear in a query; values are bound.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from pyml.errors import (
    CardinalityViolation,
    DataException,
    InsufficientPrivilege,
    InvalidParameterValue,
    NullValueNotAllowed,
    ObjectNotInPrerequisiteState,
    UndefinedColumn,
    UndefinedTable,
)
from pyml.server import _native
from pyml.server._db import Db

if TYPE_CHECKING:
    import numpy as np

# ---------------------------------------------------------------------------
# Relations and their data
# ---------------------------------------------------------------------------

if TYPE_CHECKING:
    import numpy as np


class Column(NamedTuple):
    name: str
    ident: str  # quoted by PostgreSQL
    type: str
    category: str  # pg_type.typcategory: N numeric, B boolean, S string, A array, ...
    elem_category: str  # for arrays, the element's category

    @property
    def is_numeric(self) -> bool:
        return self.category in ("N", "B") or (
            self.category == "A" and self.elem_category in ("N", "B")
        )

    @property
    def is_array(self) -> bool:
        return self.category == "A"


class Relation(NamedTuple):
    oid: int
    qualified: str  # schema-qualified and quoted, safe to place in SQL text
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise UndefinedColumn(f'column "{name}" does not exist in relation "{self.qualified}"')


def as_text(column: Column) -> Column:
    """``column`` read as text (``::text``, as PostgreSQL prints it): categories."""
    if column.category == "S":
        return column
    return column._replace(ident=f"{column.ident}::pg_catalog.text", type="text", category="S")


def _lookup(db: Db, name: str) -> tuple[int, str] | None:
    """The oid and quoted qualified name of relation ``name``, if it exists."""
    rows = db.query(
        "SELECT c.oid::int8 AS oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS q"
        " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = pg_catalog.to_regclass($1)",
        [name],
        ["text"],
    )
    return (rows[0]["oid"], rows[0]["q"]) if rows else None


@contextmanager
def caller_search_path(db: Db, search_path: str | None) -> Iterator[None]:
    """Resolve names as the caller would: with the caller's search_path, for a moment.

    pyml functions run with ``search_path = pg_catalog, pg_temp``; the caller's value
    comes in as an argument whose default is evaluated in the caller's context.
    """
    if not search_path:
        yield
        return
    db.query("SELECT pg_catalog.set_config('search_path', $1, true)", [search_path], ["text"])
    try:
        yield
    finally:
        db.query("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")


def resolve_relation(db: Db, name: str, search_path: str | None = None) -> Relation:
    """Resolve ``name`` like any SQL name (search_path, quoting); 42P01 if it does not exist."""
    try:
        with caller_search_path(db, search_path):
            found = _lookup(db, name)
    except Exception as exc:  # invalid name syntax: no relation can have that name
        if _sqlstate(exc) not in _NOT_A_NAME:
            raise  # a cancel, say, stays what it is
        found = None
    if found is None:
        raise UndefinedTable(f'relation "{name}" does not exist')
    return _describe(db, *found)


# What to_regclass raises for text that cannot name a relation: invalid name syntax, too
# many dotted names, a cross-database reference.
_NOT_A_NAME = frozenset({"42602", "42601", "0A000"})


def relation_by_oid(db: Db, oid: int) -> Relation:
    """The relation with this oid (from the catalog, e.g. a trigger's table)."""
    rows = db.query(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS q"
        " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = $1::oid",
        [oid],
        ["int8"],
    )
    if not rows:
        raise UndefinedTable(f"relation with oid {oid} does not exist")
    return _describe(db, oid, rows[0]["q"])


def _describe(db: Db, oid: int, qualified: str) -> Relation:
    columns = db.query(
        "SELECT a.attname AS name, pg_catalog.quote_ident(a.attname) AS ident,"
        " pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,"
        " t.typcategory::text AS category, coalesce(e.typcategory::text, '') AS elem_category"
        " FROM pg_catalog.pg_attribute a"
        " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
        " LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'"
        " WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        [oid],
        ["int8"],
    )
    return Relation(oid=oid, qualified=qualified, columns=tuple(Column(**c) for c in columns))


def read_columns(
    db: Db, relation: Relation, numeric: Sequence[Column], native: Sequence[Column] = ()
) -> tuple[int, list[np.ndarray], list[list[Any]]]:
    """Read whole columns in one scan.

    Numeric columns come back as float64 arrays (NULL as NaN; array columns as
    ``(n, width)``), moved as the raw bytes of their float8 values (``pyml._float8s_agg``,
    src/arrays.c), or array columns in PostgreSQL's binary array format, rather than one
    Python object per value. ``native`` columns (labels) come back as lists.
    """
    if not native:
        direct = _read_direct(db, relation, numeric, None, None, None)
        if direct is not None:
            return direct
    query = _columns_query(relation, numeric, native, raw=True, raw_keys=False)
    return _read(db, query, [], [], relation, numeric, native, raw=True, raw_keys=False)


def read_chunks(
    db: Db,
    relation: Relation,
    numeric: Sequence[Column],
    native: Sequence[Column] = (),
    rows_per_chunk: int = 100_000,
) -> Iterator[tuple[int, list[np.ndarray], list[list[Any]]]]:
    """Like :func:`read_columns`, a bounded number of rows at a time; each numeric column
    that is not an array moves as the raw bytes of its float8 values (``pyml._float8s_agg``,
    src/arrays.c), and an integer ``native`` column (the key) as the raw bytes of int8
    values, an int64 array rather than a list (a NULL in it is 22004, said by
    :func:`check_keys`).

    Tables are read in ranges of physical blocks (TID range scans, each block once);
    anything else (a view, a table with inheritance children) in one piece.
    """
    info = db.query(
        "SELECT c.relkind::text AS kind, c.relhassubclass AS children,"
        " (pg_catalog.pg_relation_size(c.oid)"
        "  / pg_catalog.current_setting('block_size')::int8) AS blocks,"
        " CASE WHEN c.relpages > 0 AND c.reltuples > 0"
        "      THEN c.reltuples / c.relpages ELSE 100 END AS rows_per_block"
        " FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
        [relation.oid],
        ["int8"],
    )[0]
    if info["kind"] not in ("r", "m") or info["children"]:  # block ranges of one heap only
        yield read_columns(db, relation, numeric, native)
        return
    rows_per_block = max(float(info["rows_per_block"]), 1.0)
    # At least FEW_CHUNKS chunks when the table is small: while one is scored, the next is
    # read and the last written (bench/phases.py: 100,000 rows 5 % faster in 4 chunks).
    estimated = float(info["blocks"]) * rows_per_block
    rows_per_chunk = min(rows_per_chunk, max(SMALLEST_CHUNK, int(estimated / FEW_CHUNKS)))
    step = max(1, int(rows_per_chunk / rows_per_block))
    key = native[0] if len(native) == 1 and native[0].type in INTEGER_TYPES else None
    if len(native) == (key is not None):  # read straight from the table (src/scan.c)?
        first = _read_direct(db, relation, numeric, key, 0, min(step, int(info["blocks"])))
        if first is not None:
            if first[0]:
                yield first
            for start in range(step, int(info["blocks"]), step):
                chunk = _read_direct(db, relation, numeric, key, start, start + step)
                assert chunk is not None  # nothing that made the first read possible changed
                if chunk[0]:
                    yield chunk
            return
    query = _columns_query(relation, numeric, native, raw=True) + (
        " WHERE ctid >= pg_catalog.format('(%s,0)', $1::int8)::tid"
        " AND ctid < pg_catalog.format('(%s,0)', $2::int8)::tid"
    )
    for start in range(0, int(info["blocks"]), step):
        chunk = _read(
            db, query, [start, start + step], ["int8", "int8"], relation, numeric, native, raw=True
        )
        if chunk[0]:
            yield chunk


INTEGER_TYPES = ("smallint", "integer", "bigint")
SMALLEST_CHUNK = 25_000
FEW_CHUNKS = 4


def _read_direct(
    db: Db,
    relation: Relation,
    numeric: Sequence[Column],
    key: Column | None,
    first: int | None,
    last: int | None,
) -> tuple[int, list[np.ndarray], list[Any]] | None:
    """Blocks ``[first, last)`` (None: all) of a table read by ``pyml._read_columns_held``
    (src/scan.c: as COPY TO reads, as the caller; the columns views of the buffer they
    were read into); None when it may not (a view other than a plain one, row
    security, an array or a type it does not convert): then read through SQL."""
    import numpy as np

    if not numeric or any(c.is_array for c in numeric):
        return None
    try:
        token = db.query(
            "SELECT pyml._read_columns_held($1::oid::regclass, $2, $3, $4, $5) AS t",
            [relation.oid, [c.name for c in numeric], key.name if key else None, first, last],
            ["int8", "text[]", "text", "int8", "int8"],
        )[0]["t"]
    except Exception as exc:
        if key is not None and _sqlstate(exc) == "22004" and "NULL key" in str(exc):
            check_keys(db, relation, key)  # says which key is NULL, and where
        raise
    if token is None:
        return None
    read, n = _native.take_read(token)  # the columns as read: no copy
    values = [read[j, :n] for j in range(len(numeric))]  # views of one buffer
    keys = [read[len(numeric), :n].view(np.int64)] if key else []
    return n, values, keys


def _columns_query(
    relation: Relation,
    numeric: Sequence[Column],
    native: Sequence[Column],
    raw: bool = False,
    raw_keys: bool = True,
) -> str:
    select = ["pg_catalog.count(*) AS n"]
    for i, column in enumerate(numeric):
        if raw and not column.is_array:  # raw float8 bytes, NULL as NaN
            select.append(f"pyml._float8s_agg({_as_float8(column)}) AS f{i}")
        else:
            select.append(
                f"pg_catalog.array_send(pg_catalog.array_agg({_as_float8(column)})) AS f{i}"
            )
    for i, column in enumerate(native):
        if raw and raw_keys and column.type in INTEGER_TYPES:  # raw int8 bytes; NULL: 22004
            select.append(f"pyml._int8s_agg({column.ident}::int8) AS l{i}")
        else:
            select.append(f"pg_catalog.array_agg({column.ident}) AS l{i}")
    return f"SELECT {', '.join(select)} FROM {relation.qualified}"  # noqa: S608


def _read(
    db: Db,
    query: str,
    params: list[Any],
    types: list[str],
    relation: Relation,
    numeric: Sequence[Column],
    native: Sequence[Column],
    raw: bool = False,
    raw_keys: bool = True,
) -> tuple[int, list[np.ndarray], list[Any]]:
    import numpy as np

    try:
        row = db.query(query, params, types)[0]
    except Exception as exc:
        null_key = any(raw and raw_keys and c.type in INTEGER_TYPES for c in native)
        if _sqlstate(exc) == "22004" and null_key and "_int8s_agg" in str(exc):
            check_keys(db, relation, native[0])  # says which key is NULL, and where
        if _sqlstate(exc) in ("2202E", "22004", "22000"):
            raise DataException(
                f'cannot read the array columns of "{relation.qualified}"',
                detail="Array features must be non-NULL and of the same size in every row.",
            ) from exc
        raise
    n = int(row["n"])
    values = [
        np.frombuffer(row[f"f{i}"] or b"", dtype=np.float64).copy()
        if raw and not column.is_array
        else decode_float8_array(row[f"f{i}"], n)
        for i, column in enumerate(numeric)
    ]
    labels: list[Any] = []
    for i, column in enumerate(native):
        if raw and raw_keys and column.type in INTEGER_TYPES:
            labels.append(np.frombuffer(row[f"l{i}"] or b"", dtype=np.int64).copy())
        else:
            labels.append(list(row[f"l{i}"] or []))
    return n, values, labels


def _as_float8(column: Column) -> str:
    if column.is_array:
        if column.elem_category == "B":
            return f"{column.ident}::int4[]::float8[]"
        return f"{column.ident}::float8[]"
    if column.category == "B":
        return f"coalesce({column.ident}::int4::float8, 'NaN')"
    return f"coalesce({column.ident}::float8, 'NaN')"


_HEAD = struct.Struct(">ii")  # array_send: ndim, has_null (then element type, dimensions)


def decode_float8_array(data: bytes | None, n: int) -> np.ndarray:
    """Decode ``array_send`` output of a float8 array into an ``(n,)`` or ``(n, width)`` array."""
    import numpy as np

    if data is None or n == 0:
        return np.empty((0,), dtype=np.float64)
    buf = memoryview(bytes(data))
    ndim, has_null = _HEAD.unpack_from(buf, 0)
    if ndim == 0:  # an empty array
        return np.empty((0,), dtype=np.float64)
    dims = struct.unpack_from(f">{2 * ndim}i", buf, 12)[0::2]
    offset = 12 + 8 * int(ndim)
    count = math.prod(dims)
    if not has_null:
        items = np.frombuffer(buf, np.dtype([("len", ">i4"), ("value", ">f8")]), count, offset)
        flat = items["value"].astype(np.float64)
    else:
        flat = np.empty(count, dtype=np.float64)
        for i in range(count):
            (length,) = np.frombuffer(buf, ">i4", 1, offset)
            offset += 4
            if length < 0:
                flat[i] = np.nan
            else:
                flat[i] = np.frombuffer(buf, ">f8", 1, offset)[0]
                offset += 8
    return flat.reshape(dims[0], -1) if ndim > 1 else flat


def materialize(db: Db, relation: Relation, snapshot_id: int) -> str:
    """Copy the relation into ``pyml.snapshot_<id>``; return its qualified name.

    pyml creates the table (schema pyml is its own) from the relation's column list;
    the caller fills it, reading the relation with its own rights, through an INSERT
    privilege that lasts the statement. The copy is readable by the caller (and
    superusers) only: it is the caller's data.
    """
    # Every name below is quoted by PostgreSQL: the table by format('%I'), the role by
    # quote_ident, columns by quote_ident and their types by format_type (Relation.columns).
    name = pyml_table(db, f"snapshot_{snapshot_id}")
    role = _quoted_role(db)
    columns = ", ".join(f"{c.ident} {c.type}" for c in relation.columns)
    db.registry.execute(f"CREATE TABLE {name} ({columns})")
    db.registry.execute(f"GRANT SELECT, INSERT ON {name} TO {role}")
    db.execute(f"INSERT INTO {name} SELECT * FROM {relation.qualified}")  # noqa: S608
    db.registry.execute(f"REVOKE INSERT ON {name} FROM {role}")
    return str(name)


def _quoted_role(db: Db) -> str:
    """The caller's role name, quoted by PostgreSQL."""
    return str(
        db.query("SELECT pg_catalog.quote_ident($1) AS q", [db.caller().name], ["text"])[0]["q"]
    )


def float4_attributes(db: Db, type_oid: int) -> list[str]:
    """Names of the ``real`` and ``real[]`` attributes of a composite type (none for record)."""
    rows = db.query(
        "SELECT a.attname AS name FROM pg_catalog.pg_type t"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = t.typrelid"
        " WHERE t.oid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped"
        " AND a.atttypid IN ('float4'::regtype, 'float4[]'::regtype)",
        [type_oid],
        ["int8"],
    )
    return [r["name"] for r in rows]


class PredictionTable(NamedTuple):
    """Where :func:`write_predictions` writes: a table with (<key>, prediction, model_id,
    scored_at), unique on its key."""

    name: str  # schema-qualified and quoted
    oid: int
    key: Column  # the key column of the source (its name and type)
    source: Relation  # what is scored (to explain duplicate or NULL keys)
    created: bool  # by this call: empty, plain inserts, PRIMARY KEY (key) once filled


def prediction_table(
    db: Db, target: str, source: Relation, key: Column, search_path: str | None = None
) -> PredictionTable:
    """The table the predictions of ``source`` go to, by ``key``: ``target``, created like
    CREATE TABLE would (in the caller's path) with columns (<key>, prediction, model_id,
    scored_at) when it does not exist (:func:`finish_predictions` adds its primary key).

    An existing table must have a unique index on ``key`` alone (55000): the row of each key
    scored is replaced. ``source`` must then have neither NULL (22004) nor duplicate (21000)
    keys: one scan grouped by key, unless a unique index on a NOT NULL key says so already.
    All checked before anything is scored.
    """
    with caller_search_path(db, search_path):
        oid, name, created = _prediction_table(db, target, key)
    table = PredictionTable(name, oid, key, source, created)
    if not created:
        _require_key_index(db, _describe(db, oid, name), key)
        if not _unique_key(db, source.oid, key.name, not_null=True):
            check_keys(db, source, key)
    return table


def _prediction_table(db: Db, target: str, key: Column) -> tuple[int, str, bool]:
    """The oid and qualified name of ``target``, created (in the first schema of the path) if
    missing; whether it was."""
    try:
        found = _lookup(db, target)
        quoted = db.query(
            "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(p), '.' ORDER BY i) AS q"
            " FROM pg_catalog.unnest(pg_catalog.parse_ident($1)) WITH ORDINALITY AS t(p, i)",
            [target],
            ["text"],
        )[0]["q"]
    except Exception as exc:
        if _sqlstate(exc) is None:
            raise
        raise InvalidParameterValue(f'invalid table name "{target}"') from exc
    if found is not None:
        return found[0], found[1], False
    db.query(
        f"CREATE TABLE {quoted} ({key.ident} {key.type}, prediction real,"
        " model_id bigint, scored_at timestamptz NOT NULL DEFAULT pg_catalog.now())"
    )
    found = _lookup(db, quoted)
    assert found is not None
    return found[0], found[1], True


def _unique_key(db: Db, oid: int, column: str, not_null: bool = False) -> bool:
    """Whether relation ``oid`` has a unique index on ``column`` alone that INSERT ... ON
    CONFLICT (column) can use (valid, immediate, not partial); with ``not_null``, whether the
    column is also NOT NULL (then no two rows share a key, and none lacks one)."""
    return bool(
        db.query(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i"
            " JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid = $1::oid AND a.attname = $2 AND (a.attnotnull OR NOT $3)"
            " AND i.indisunique AND i.indimmediate AND i.indisvalid AND i.indnkeyatts = 1"
            " AND i.indpred IS NULL AND i.indexprs IS NULL) AS found",
            [oid, column, not_null],
            ["int8", "text", "bool"],
        )[0]["found"]
    )


def _require_key_index(db: Db, target: Relation, key: Column) -> None:
    column = target.column(key.name)  # 42703 when the table has no such column
    if not _unique_key(db, target.oid, column.name):
        raise ObjectNotInPrerequisiteState(
            f'table "{target.qualified}" has no unique index on column "{column.name}"',
            detail="pyml.predict_into replaces the row of each key it scores, so the key "
            "must be unique in the target table.",
            hint=f"Add one, for example: ALTER TABLE {target.qualified} ADD PRIMARY KEY "
            f"({column.ident});",
        )


def check_keys(db: Db, source: Relation, key: Column) -> None:
    """22004 if a row of ``source`` has a NULL ``key``, 21000 if two rows share one (one
    scan, grouped by key)."""
    found = db.query(
        "SELECT coalesce(pg_catalog.sum(s.n) FILTER (WHERE s.k IS NULL), 0)::int8 AS nulls,"  # noqa: S608
        " pg_catalog.count(*) FILTER (WHERE s.k IS NOT NULL) AS repeated,"
        " pg_catalog.min(s.k::text) FILTER (WHERE s.k IS NOT NULL) AS example"
        f" FROM (SELECT {key.ident} AS k, pg_catalog.count(*) AS n FROM {source.qualified}"
        f" GROUP BY 1 HAVING pg_catalog.count(*) > 1 OR {key.ident} IS NULL) AS s",
    )[0]
    if found["nulls"]:
        count = found["nulls"]
        rows = "1 row has" if count == 1 else f"{count} rows have"
        raise NullValueNotAllowed(
            f'key column "{key.name}" of relation "{source.qualified}" contains NULL values',
            detail=f"{rows} a NULL key. Predictions are written by key: every row needs one.",
            hint=f"Leave those rows out, for example with a view WHERE {key.ident} IS NOT NULL.",
        )
    if found["repeated"]:
        count = found["repeated"]
        keys = "1 key appears" if count == 1 else f"{count} keys appear"
        raise CardinalityViolation(
            f'relation "{source.qualified}" has more than one row with '
            f"{key.name} = {found['example']}",
            detail=f"{keys} in more than one row. Predictions are written by key: one row per key.",
            hint="Pass a key_column whose values are unique, or score a view with one row per key.",
        )


def write_predictions(
    db: Db,
    table: PredictionTable,
    keys: Sequence[Any] | np.ndarray,
    predictions: Sequence[float] | np.ndarray,
    model_id: int | None,
) -> int:
    """Write predictions to ``table`` (from :func:`prediction_table`): the row of a key
    already there is replaced (prediction, model_id, scored_at); return the row count."""
    import numpy as np

    key = table.key
    # Arrays go over as raw bytes when they can (pyml._float4s, pyml._int8s: src/arrays.c):
    # PL/Python would convert a list one element at a time, which costs more than scoring.
    values = np.ascontiguousarray(predictions, dtype=np.float32).tobytes()
    raw_keys = isinstance(keys, np.ndarray) and key.type in INTEGER_TYPES
    if raw_keys and table.created:  # in bulk, as COPY would (src/insert.c), when it may
        written = db.query(
            "SELECT pyml._insert_predictions($1::oid::regclass, $2, $3, $4) AS n",
            [table.oid, np.ascontiguousarray(keys, dtype=np.int64).tobytes(), values, model_id],
            ["int8", "bytea", "bytea", "int8"],
        )[0]["n"]
        if written is not None:
            return int(written)
    if raw_keys:
        keys_sql, key_type = f"pyml._int8s($1)::{key.type}[]", "bytea"
        key_values: Any = np.ascontiguousarray(keys, dtype=np.int64).tobytes()
    else:
        keys_sql, key_type, key_values = f"$1::{key.type}[]", f"{key.type}[]", list(keys)
    sql = (
        f"INSERT INTO {table.name} ({key.ident}, prediction, model_id, scored_at)"  # noqa: S608
        f" SELECT k, p, $3, pg_catalog.now()"
        f" FROM unnest({keys_sql}, pyml._float4s($2)) AS u(k, p)"
    )
    if not table.created:
        sql += (
            f" ON CONFLICT ({key.ident}) DO UPDATE SET prediction = EXCLUDED.prediction,"
            " model_id = EXCLUDED.model_id, scored_at = EXCLUDED.scored_at"
        )
    with _key_errors(db, table):
        return db.execute(sql, [key_values, values, model_id], [key_type, "bytea", "int8"])


def finish_predictions(db: Db, table: PredictionTable) -> None:
    """A table created by :func:`prediction_table` gets its PRIMARY KEY (key) once filled:
    one sorted index build costs less than an index insertion per row. A duplicate or NULL
    key of the source fails here."""
    if table.created:
        with _key_errors(db, table):
            db.query(f"ALTER TABLE {table.name} ADD PRIMARY KEY ({table.key.ident})")


@contextmanager
def _key_errors(db: Db, table: PredictionTable) -> Iterator[None]:
    """PostgreSQL's unique (23505), not-null (23502) or ON CONFLICT cardinality (21000) error
    on the key, said of the source: which key, how many rows."""
    try:
        yield
    except Exception as exc:
        if _sqlstate(exc) not in ("23505", "23502", "21000"):
            raise
        check_keys(db, table.source, table.key)  # raises, unless the source changed since
        raise


def pyml_table(db: Db, name: str) -> str:
    """The quoted name of a table in schema pyml."""
    return str(
        db.query("SELECT pg_catalog.format('pyml.%I', $1::text) AS q", [name], ["text"])[0]["q"]
    )


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


def create_dataset_table(
    db: Db, name: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
) -> str:
    """(Re)create ``pyml.<name>`` with ``columns`` and insert ``rows``; return its name.

    The table is created by pyml (schema pyml is its own) and handed to the caller, who
    owns it from then on. An existing table is replaced only for its owner (42501), with
    ``DROP TABLE ... CASCADE`` as in PostgresML: views over it are dropped too (PostgreSQL's
    NOTICE "drop cascades to ..." names each).
    """
    table = pyml_table(db, name)
    idents = [
        db.query("SELECT pg_catalog.quote_ident($1) AS q", [col], ["text"])[0]["q"]
        for col, _ in columns
    ]
    # Types come from pyml.datasets (a fixed list), never from the caller.
    definition = ", ".join(
        f"{ident} {sqltype}" for ident, (_, sqltype) in zip(idents, columns, strict=True)
    )
    found = db.query(
        "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') AS mine, r.rolname::text AS owner"
        " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner"
        " WHERE c.oid = pg_catalog.to_regclass($1)",
        [table],
        ["text"],
    )
    if found and not found[0]["mine"]:
        raise InsufficientPrivilege(
            f"permission denied for table {table}",
            detail=f'It belongs to role "{found[0]["owner"]}": only its owner may load it again.',
        )
    role = _quoted_role(db)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    insert = f"INSERT INTO {table} VALUES ({placeholders})"  # noqa: S608
    types = [sqltype.replace("[][]", "[]") for _, sqltype in columns]

    def create() -> None:  # pyml's own table and fixed values: one registry block
        if found:
            db.execute(f"DROP TABLE {table} CASCADE")
        db.execute(f"CREATE TABLE {table} ({definition})")
        for values in rows:
            db.execute(insert, list(values), types)
        db.execute(f"ALTER TABLE {table} OWNER TO {role}")

    db.registry.run(create)
    return table


def _sqlstate(exc: Exception) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(getattr(exc, "diag", None), "sqlstate", None)
