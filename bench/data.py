"""The bench database: recreated each run, tables made by generate_series with a fixed seed."""

# ruff: noqa: S608  (SQL built from the bench's own constant table and column names)
from __future__ import annotations

import numpy as np
import psycopg

from bench import pgcopy
from bench.db import Server, connect

NOOP = (
    "CREATE FUNCTION bench_noop(f float8[]) RETURNS real LANGUAGE plpython3u STABLE"
    " AS $$ return 0.0 $$"
)

# A non-linear target of the first features plus noise; the 50-feature table adds a few more.
LABEL_10 = (
    "sin(6 * f1) + 2 * f2 * f3 + (f4 > 0.5)::int - f5 * f5 + 0.5 * f6 + 0.3 * f7 * f8"
    " - 0.2 * f9 + 0.1 * f10"
)
LABEL_50 = LABEL_10 + " + 0.5 * f11 * f12 + cos(4 * f20) - 0.3 * f33 + 0.2 * f47 * f48"


def recreate_database(server: Server) -> None:
    name = psycopg.sql.Identifier(server.database).as_string(None)
    with connect(server.admin_uri) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
        # A sequential scan of a table over shared_buffers / 4 starts where the last one
        # stopped (synchronized scans), so rows come back in a different order from run to
        # run, and pyml.train's 'last' split would take other rows than the raw fit. Off here:
        # every scan reads in heap (= id) order.
        conn.execute(f"ALTER DATABASE {name} SET synchronize_seqscans = off")
    with connect(server.uri) as conn:
        conn.execute("CREATE EXTENSION pyml CASCADE")
        conn.execute(NOOP)


def _features(k: int) -> str:
    return ", ".join(f"random()::real AS f{i}" for i in range(1, k + 1))


def build_table(
    conn: psycopg.Connection,
    table: str,
    rows: int,
    k: int,
    *,
    label: bool = True,
    unlogged: bool = False,
    seed: float = 0.42,
) -> None:
    """``table(id bigint, f1..fk real[, label real])``, features uniform in [0, 1)."""
    names = ", ".join(f"f{i}" for i in range(1, k + 1))
    label_sql = ""
    if label:
        expr = LABEL_50 if k >= 50 else LABEL_10
        label_sql = f", ({expr} + 0.2 * (random() - 0.5))::real AS label"
    conn.execute("SELECT setseed(%s)", (seed,))
    conn.execute(
        f"CREATE {'UNLOGGED ' if unlogged else ''}TABLE {table} AS"
        f" SELECT id, {names}{label_sql}"
        f" FROM (SELECT i::bigint AS id, {_features(k)}"
        f" FROM generate_series(1, {int(rows)}) AS i) AS s"
    )
    if label:
        conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
        # pyml.train: every column but the label is a feature, so train on a view without id.
        conn.execute(f"CREATE VIEW {table}_train AS SELECT {names}, label FROM {table}")
    conn.execute(f"VACUUM ANALYZE {table}")


def read_features(
    conn: psycopg.Connection,
    table: str,
    k: int,
    where: str = "",
    sort: bool = True,
    feature_type: str = "float4",
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, X)``, X as float64 ``(n, k)``, by binary COPY; sorted by id unless told not.
    The features are columns of ``feature_type`` (``float4``: real, or ``float8``)."""
    names = ", ".join(f"f{i}" for i in range(1, k + 1))
    columns = pgcopy.copy_out(
        conn, f"SELECT id, {names} FROM {table} {where}", ["int8"] + [feature_type] * k
    )
    ids, X = columns[0], np.column_stack(columns[1:]).astype(np.float64)
    if sort and len(ids) > 1 and (np.diff(ids) < 0).any():
        order = np.argsort(ids, kind="stable")
        ids, X = ids[order], X[order]
    return ids, X


def read_labels(conn: psycopg.Connection, table: str) -> np.ndarray:
    """Labels in id order."""
    ids, y = pgcopy.copy_out(conn, f"SELECT id, label FROM {table}", ["int8", "float4"])
    return y[np.argsort(ids, kind="stable")].astype(np.float64)


def sample_ids(rows: int, count: int, seed: int = 7) -> np.ndarray:
    """Sorted distinct ids in 1..rows, the rows every path is compared on."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(np.arange(1, rows + 1), size=min(count, rows), replace=False))
