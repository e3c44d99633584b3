"""The model registry: the only module that writes SQL.

Every value is a bound parameter. Relation and column names never come from
the caller's text: they are resolved by PostgreSQL (``regclass``) and quoted by
it (``format('%I.%I')``, ``quote_ident``) before they appear in a query.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from pyml._db import Db, Row
from pyml.errors import (
    DataException,
    InvalidParameterValue,
    UndefinedColumn,
    UndefinedObject,
    UndefinedTable,
)

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
        if _sqlstate(exc) is None:
            raise
        found = None
    if found is None:
        raise UndefinedTable(f'relation "{name}" does not exist')
    oid, qualified = found
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
    ``(n, width)``), moved in PostgreSQL's binary array format rather than one
    Python object per value. ``native`` columns (labels) come back as lists.
    """
    return _read(db, _columns_query(relation, numeric, native), [], [], relation, numeric, native)


def read_chunks(
    db: Db, relation: Relation, numeric: Sequence[Column], native: Sequence[Column] = (),
    rows_per_chunk: int = 100_000,
) -> Iterator[tuple[int, list[np.ndarray], list[list[Any]]]]:
    """Like :func:`read_columns`, a bounded number of rows at a time.

    Tables are read in ranges of physical blocks (TID range scans, each block once);
    anything else (a view) in one piece.
    """
    info = db.query(
        "SELECT c.relkind::text AS kind,"
        " (pg_catalog.pg_relation_size(c.oid)"
        "  / pg_catalog.current_setting('block_size')::int8) AS blocks,"
        " CASE WHEN c.relpages > 0 AND c.reltuples > 0"
        "      THEN c.reltuples / c.relpages ELSE 100 END AS rows_per_block"
        " FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
        [relation.oid],
        ["int8"],
    )[0]
    if info["kind"] not in ("r", "m"):
        yield read_columns(db, relation, numeric, native)
        return
    step = max(1, int(rows_per_chunk / max(float(info["rows_per_block"]), 1.0)))
    query = _columns_query(relation, numeric, native) + (
        " WHERE ctid >= pg_catalog.format('(%s,0)', $1::int8)::tid"
        " AND ctid < pg_catalog.format('(%s,0)', $2::int8)::tid"
    )
    for start in range(0, int(info["blocks"]), step):
        chunk = _read(db, query, [start, start + step], ["int8", "int8"], relation, numeric,
                      native)
        if chunk[0]:
            yield chunk


def _columns_query(relation: Relation, numeric: Sequence[Column],
                   native: Sequence[Column]) -> str:
    select = ["pg_catalog.count(*) AS n"]
    for i, column in enumerate(numeric):
        select.append(f"pg_catalog.array_send(pg_catalog.array_agg({_as_float8(column)})) AS f{i}")
    for i, column in enumerate(native):
        select.append(f"pg_catalog.array_agg({column.ident}) AS l{i}")
    return f"SELECT {', '.join(select)} FROM {relation.qualified}"  # noqa: S608


def _read(db: Db, query: str, params: list[Any], types: list[str], relation: Relation,
          numeric: Sequence[Column], native: Sequence[Column]
          ) -> tuple[int, list[np.ndarray], list[list[Any]]]:
    try:
        row = db.query(query, params, types)[0]
    except Exception as exc:
        if _sqlstate(exc) in ("2202E", "22004", "22000"):
            raise DataException(
                f'cannot read the array columns of "{relation.qualified}"',
                detail="Array features must be non-NULL and of the same size in every row.",
            ) from exc
        raise
    n = int(row["n"])
    values = [decode_float8_array(row[f"f{i}"], n) for i in range(len(numeric))]
    labels = [list(row[f"l{i}"] or []) for i in range(len(native))]
    return n, values, labels


def _as_float8(column: Column) -> str:
    if column.is_array:
        if column.elem_category == "B":
            return f"{column.ident}::int4[]::float8[]"
        return f"{column.ident}::float8[]"
    if column.category == "B":
        return f"coalesce({column.ident}::int4::float8, 'NaN')"
    return f"coalesce({column.ident}::float8, 'NaN')"


def decode_float8_array(data: bytes | None, n: int) -> np.ndarray:
    """Decode ``array_send`` output of a float8 array into an ``(n,)`` or ``(n, width)`` array."""
    import numpy as np

    if data is None or n == 0:
        return np.empty((0,), dtype=np.float64)
    buf = memoryview(bytes(data))
    ndim, has_null = np.frombuffer(buf, ">i4", 2)
    if ndim == 0:  # an empty array
        return np.empty((0,), dtype=np.float64)
    dims = np.frombuffer(buf, ">i4", 2 * ndim, offset=12)[0::2]
    offset = 12 + 8 * int(ndim)
    count = int(np.prod(dims))
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
    return flat.reshape(int(dims[0]), -1) if ndim > 1 else flat


def materialize(db: Db, relation: Relation, snapshot_id: int) -> str:
    """Copy the relation into ``pyml.snapshot_<id>``; return its qualified name."""
    name = pyml_table(db, f"snapshot_{snapshot_id}")
    db.query(f"CREATE TABLE {name} AS SELECT * FROM {relation.qualified}")  # noqa: S608
    return str(name)


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


def context(db: Db) -> Row:
    """Who and where: for lineage."""
    return db.query(
        "SELECT CURRENT_USER::text AS database_user,"
        " pg_catalog.current_database()::text AS database,"
        " pg_catalog.current_setting('server_version') AS server_version,"
        " pg_catalog.clock_timestamp() AS at"
    )[0]


# ---------------------------------------------------------------------------
# Projects and snapshots
# ---------------------------------------------------------------------------


def get_project(db: Db, name: str) -> Row | None:
    rows = db.query(
        "SELECT id, name, task FROM pyml.projects WHERE name = $1", [name], ["text"]
    )
    return rows[0] if rows else None


def require_project(db: Db, name: str) -> Row:
    project = get_project(db, name)
    if project is None:
        raise UndefinedObject(f'project "{name}" does not exist')
    return project


def create_project(db: Db, name: str, task: str) -> Row:
    """Create the project, or return it when a concurrent session just did."""
    rows = db.query(
        "INSERT INTO pyml.projects (name, task) VALUES ($1, $2)"
        " ON CONFLICT (name) DO NOTHING RETURNING id, name, task",
        [name, task],
        ["text", "text"],
    )
    return rows[0] if rows else require_project(db, name)


def touch_project(db: Db, project_id: int) -> None:
    db.query(
        "UPDATE pyml.projects SET updated_at = pg_catalog.clock_timestamp() WHERE id = $1",
        [project_id],
        ["int8"],
    )


def insert_snapshot(db: Db, **fields: Any) -> int:
    return int(
        db.query(
            "INSERT INTO pyml.snapshots (relation_name, y_column_name, test_size, test_sampling,"
            " columns, row_count, data_fingerprint, materialized, preprocess)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9::jsonb) RETURNING id",
            [
                fields["relation_name"],
                fields["y_column_name"],
                fields["test_size"],
                fields["test_sampling"],
                json.dumps(fields["columns"]),
                fields["row_count"],
                fields["data_fingerprint"],
                fields["materialized"],
                json.dumps(fields.get("preprocess", {})),
            ],
            ["text", "text[]", "float4", "text", "text", "int8", "text", "bool", "text"],
        )[0]["id"]
    )


def set_snapshot_relation(db: Db, snapshot_id: int, relation_name: str) -> None:
    """Point a just-created snapshot at its materialized copy (same transaction)."""
    db.query(
        "UPDATE pyml.snapshots SET relation_name = $2, materialized = true WHERE id = $1",
        [snapshot_id, relation_name],
        ["int8", "text"],
    )


def last_snapshot(db: Db, project_id: int) -> Row | None:
    rows = db.query(
        "SELECT s.* FROM pyml.snapshots s JOIN pyml.models m ON m.snapshot_id = s.id"
        " WHERE m.project_id = $1 ORDER BY m.id DESC LIMIT 1",
        [project_id],
        ["int8"],
    )
    return rows[0] if rows else None


# ---------------------------------------------------------------------------
# Models and artifacts
# ---------------------------------------------------------------------------

_MODEL_COLUMNS = (
    "project_id", "snapshot_id", "algorithm", "hyperparams", "search", "search_params",
    "search_args", "status", "metrics", "num_features", "feature_names", "classes",
    "preprocess", "runtime", "lineage",
)
_MODEL_TYPES = (
    "int8", "int8", "text", "text", "text", "text", "text", "text", "text", "int4", "text[]",
    "text", "text", "text", "text",
)
_JSONB = {"hyperparams", "search_params", "search_args", "metrics", "classes", "preprocess",
          "lineage"}


def insert_model(db: Db, parts: Sequence[Any], **fields: Any) -> int:
    """Insert a trained model and its artifact parts; return the model id."""
    values = [
        json.dumps(fields[c]) if c in _JSONB and fields[c] is not None else fields[c]
        for c in _MODEL_COLUMNS
    ]
    placeholders = ", ".join(
        f"${i}::jsonb" if c in _JSONB else f"${i}" for i, c in enumerate(_MODEL_COLUMNS, start=1)
    )
    model_id = int(
        db.query(
            f"INSERT INTO pyml.models ({', '.join(_MODEL_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
            " RETURNING id",
            values,
            _MODEL_TYPES,
        )[0]["id"]
    )
    for part in parts:
        db.query(
            "INSERT INTO pyml.files (model_id, part, format, sha256, data)"
            " VALUES ($1, $2, $3, $4, $5)",
            [model_id, part.part, part.format, part.sha256, part.data],
            ["int8", "int4", "text", "text", "bytea"],
        )
    return model_id


def get_model(db: Db, model_id: int) -> Row:
    rows = db.query(
        "SELECT m.id, m.project_id, p.name AS project, p.task, m.algorithm, m.status,"
        " m.metrics::text AS metrics, m.num_features, m.feature_names, m.classes::text AS classes,"
        " m.snapshot_id"
        " FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id WHERE m.id = $1",
        [model_id],
        ["int8"],
    )
    if not rows:
        raise UndefinedObject(f"model {model_id} does not exist")
    row = dict(rows[0])
    row["metrics"] = json.loads(row["metrics"]) if row["metrics"] else {}
    row["classes"] = json.loads(row["classes"]) if row["classes"] else None
    return row


def model_files(db: Db, model_id: int) -> list[Row]:
    return db.query(
        "SELECT part, format, sha256, data FROM pyml.files WHERE model_id = $1 ORDER BY part",
        [model_id],
        ["int8"],
    )


def feature_columns(db: Db, model_id: int | None) -> list[str]:
    """The relation columns a model was trained on, in order (from its snapshot)."""
    rows = db.query(
        "SELECT e.c ->> 'name' AS name FROM pyml.models m"
        " JOIN pyml.snapshots s ON s.id = m.snapshot_id,"
        " pg_catalog.jsonb_array_elements(s.columns) WITH ORDINALITY AS e(c, i)"
        " WHERE m.id = $1 AND e.c ->> 'role' = 'feature' ORDER BY e.i",
        [model_id],
        ["int8"],
    )
    return [r["name"] for r in rows]


def write_predictions(db: Db, table: str, key: Column, keys: Sequence[Any],
                      predictions: Sequence[float], model_id: int | None) -> int:
    """Append predictions to ``table`` (from :func:`prediction_table`); return the row count."""
    return db.execute(
        f"INSERT INTO {table} ({key.ident}, prediction, model_id, scored_at)"  # noqa: S608
        f" SELECT k, p, $3, pg_catalog.now()"
        f" FROM unnest($1::{key.type}[], $2::float4[]) AS u(k, p)",
        [keys, predictions, model_id],
        [f"{key.type}[]", "float4[]", "int8"],
    )


def prediction_table(db: Db, target: str, key: Column, search_path: str | None = None) -> str:
    """The quoted name of ``target``, created (like CREATE TABLE would, in the caller's path)
    with columns (<key>, prediction, model_id, scored_at) when it does not exist."""
    with caller_search_path(db, search_path):
        return _prediction_table(db, target, key)


def _prediction_table(db: Db, target: str, key: Column) -> str:
    """The qualified name of ``target``, created (in the first schema of the path) if missing."""
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
    if found is None:
        db.query(
            f"CREATE TABLE {quoted} ({key.ident} {key.type}, prediction real,"
            " model_id bigint, scored_at timestamptz NOT NULL DEFAULT pg_catalog.now())"
        )
        found = _lookup(db, quoted)
        assert found is not None
    return found[1]


def delete_model(db: Db, model_id: int) -> None:
    snapshot = db.query(
        "DELETE FROM pyml.models WHERE id = $1 RETURNING snapshot_id", [model_id], ["int8"]
    )
    _drop_orphan_snapshots(db, [r["snapshot_id"] for r in snapshot])


def delete_project(db: Db, project_id: int) -> None:
    snapshots = db.query(
        "SELECT DISTINCT snapshot_id FROM pyml.models WHERE project_id = $1", [project_id],
        ["int8"],
    )
    db.query("DELETE FROM pyml.projects WHERE id = $1", [project_id], ["int8"])
    _drop_orphan_snapshots(db, [r["snapshot_id"] for r in snapshots])


def _drop_orphan_snapshots(db: Db, snapshot_ids: list[int | None]) -> None:
    ids = [i for i in snapshot_ids if i is not None]
    if not ids:
        return
    orphans = db.query(
        "DELETE FROM pyml.snapshots s WHERE s.id = ANY($1)"
        " AND NOT EXISTS (SELECT FROM pyml.models m WHERE m.snapshot_id = s.id)"
        " RETURNING s.id, s.materialized",
        [ids],
        ["int8[]"],
    )
    for orphan in orphans:
        if orphan["materialized"]:
            table = pyml_table(db, f"snapshot_{orphan['id']}")
            db.query(f"DROP TABLE IF EXISTS {table}")


def pyml_table(db: Db, name: str) -> str:
    """The quoted name of a table in schema pyml."""
    return str(
        db.query("SELECT pg_catalog.format('pyml.%I', $1::text) AS q", [name], ["text"])[0]["q"]
    )


# ---------------------------------------------------------------------------
# Deployments
# ---------------------------------------------------------------------------


def live_model_id(db: Db, project_name: str) -> tuple[Row, int | None]:
    """The project (42704 if unknown) and the id of its live model (None if never deployed)."""
    rows = db.query(
        "SELECT p.id, p.name, p.task, (SELECT d.model_id FROM pyml.deployments d"
        " WHERE d.project_id = p.id ORDER BY d.id DESC LIMIT 1) AS model_id"
        " FROM pyml.projects p WHERE p.name = $1",
        [project_name],
        ["text"],
    )
    if not rows:
        raise UndefinedObject(f'project "{project_name}" does not exist')
    return rows[0], rows[0]["model_id"]


def live_metrics(db: Db, project_id: int) -> dict[str, Any] | None:
    """Metrics of the project's live model, or None when nothing is deployed."""
    rows = db.query(
        "SELECT m.metrics::text AS metrics FROM pyml.deployments d"
        " JOIN pyml.models m ON m.id = d.model_id"
        " WHERE d.project_id = $1 ORDER BY d.id DESC LIMIT 1",
        [project_id],
        ["int8"],
    )
    if not rows:
        return None
    return dict(json.loads(rows[0]["metrics"] or "{}"))


def insert_deployment(db: Db, project_id: int, model_id: int, strategy: str) -> Row:
    return db.query(
        "INSERT INTO pyml.deployments (project_id, model_id, strategy) VALUES ($1, $2, $3)"
        " RETURNING id, model_id, strategy, created_at",
        [project_id, model_id, strategy],
        ["int8", "int8", "text"],
    )[0]


def best_model(db: Db, project_id: int, metric: str, algorithm: str | None) -> int | None:
    """The successful model with the highest ``metric``, compared as a number."""
    rows = db.query(
        "SELECT id FROM pyml.models WHERE project_id = $1 AND status = 'successful'"
        " AND ($2::text IS NULL OR algorithm = $2)"
        " ORDER BY (metrics ->> $3)::float8 DESC NULLS LAST, id DESC"
        " LIMIT 1",
        [project_id, algorithm, metric],
        ["int8", "text", "text"],
    )
    return rows[0]["id"] if rows else None


def most_recent_model(db: Db, project_id: int, algorithm: str | None) -> int | None:
    rows = db.query(
        "SELECT id FROM pyml.models WHERE project_id = $1 AND status = 'successful'"
        " AND ($2::text IS NULL OR algorithm = $2) ORDER BY id DESC LIMIT 1",
        [project_id, algorithm],
        ["int8", "text"],
    )
    return rows[0]["id"] if rows else None


def previous_deployed_model(db: Db, project_id: int) -> int | None:
    """The model that was live before the live one (for rollback); redeploys are skipped."""
    rows = db.query(
        "SELECT d.model_id FROM pyml.deployments d WHERE d.project_id = $1"
        " AND d.model_id <> (SELECT l.model_id FROM pyml.deployments l"
        "                    WHERE l.project_id = $1 ORDER BY l.id DESC LIMIT 1)"
        " ORDER BY d.id DESC LIMIT 1",
        [project_id],
        ["int8"],
    )
    return rows[0]["model_id"] if rows else None


def deployed_model_at(db: Db, project_id: int, at: Any) -> int | None:
    rows = db.query(
        "SELECT model_id FROM pyml.deployments WHERE project_id = $1 AND created_at <= $2"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        [project_id, at],
        ["int8", "timestamptz"],
    )
    return rows[0]["model_id"] if rows else None


def database_oid(db: Db) -> int:
    return int(db.query(
        "SELECT oid::int8 AS oid FROM pg_catalog.pg_database"
        " WHERE datname = pg_catalog.current_database()"
    )[0]["oid"])


def current_xid(db: Db) -> int:
    return int(db.query("SELECT pg_catalog.pg_current_xact_id()::text::int8 AS xid")[0]["xid"])


def unsettled(db: Db, notes: Sequence[Any]) -> list[Any]:
    """The notes (see pyml._board) whose transaction may still change what this session sees.

    Settled: aborted (or too old to tell), or committed with its effect visible here.
    """
    if not notes:
        return []
    rows = db.query(
        "SELECT u.n FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[])"
        "   WITH ORDINALITY AS u(kind, id, model_id, xid, n)"
        " CROSS JOIN LATERAL (SELECT pg_catalog.pg_xact_status(u.xid::text::xid8) AS status) x"
        " WHERE NOT (coalesce(x.status, 'aborted') = 'aborted'"
        "   OR (x.status = 'committed' AND CASE u.kind"
        "     WHEN 1 THEN EXISTS (SELECT FROM pyml.deployments d WHERE d.id = u.id)"
        "              OR NOT EXISTS (SELECT FROM pyml.models m WHERE m.id = u.model_id)"
        "     ELSE NOT EXISTS (SELECT FROM pyml.deployments d WHERE d.id = u.id) END))",
        [[n.kind for n in notes], [n.id for n in notes], [n.model_id for n in notes],
         [n.xid for n in notes]],
        ["int8[]", "int8[]", "int8[]", "int8[]"],
    )
    return [notes[r["n"] - 1] for r in rows]


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


def create_dataset_table(db: Db, name: str, columns: Sequence[tuple[str, str]],
                         rows: Sequence[Sequence[Any]]) -> str:
    """(Re)create ``pyml.<name>`` with ``columns`` and insert ``rows``; return its name."""
    table = pyml_table(db, name)
    idents = [
        db.query("SELECT pg_catalog.quote_ident($1) AS q", [col], ["text"])[0]["q"]
        for col, _ in columns
    ]
    # Types come from pyml.datasets (a fixed list), never from the caller.
    definition = ", ".join(f"{ident} {sqltype}" for ident, (_, sqltype) in zip(idents, columns,
                                                                               strict=True))
    if db.query("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS e", [table], ["text"])[0]["e"]:
        db.query(f"DROP TABLE {table}")
    db.query(f"CREATE TABLE {table} ({definition})")
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    insert = f"INSERT INTO {table} VALUES ({placeholders})"  # noqa: S608
    types = [sqltype.replace("[][]", "[]") for _, sqltype in columns]
    for values in rows:
        db.query(insert, list(values), types)
    return table


def _sqlstate(exc: Exception) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(getattr(exc, "diag", None), "sqlstate", None)

