"""Scoring a whole table: per-row set query, predict_into, predict_batch, raw, client-side job.

- raw: ``predictor.predict(X)`` on a float64 numpy array already in this process (the limit;
  best of 3).
- set query: ``SELECT count(*), sum(pyml.predict(p, ARRAY[f1..fk])::float8) FROM t``.
- predict_into: ``pyml.predict_into(p, t, scores, 'id')`` into a new table.
- predict_batch: one statement over all rows in chunks of ``batch_chunk`` rows by id range:
  ``generate_series`` of chunk numbers, ``CROSS JOIN LATERAL pyml.predict_batch(p, (SELECT
  array_agg(ARRAY[f1..fk] ORDER BY id) FROM t WHERE id in the chunk))``, summed.
- client job: binary COPY of (id, features) out -> numpy -> predict -> binary COPY of
  (id, prediction, model_id) into a table shaped like predict_into's.

Every path scores every row of the same table with the same model; sums over all rows and
the values of a sample of rows must agree with raw, or the bench stops.
"""

# ruff: noqa: S608  (SQL built from the bench's own constant table and column names)
from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg

from bench import data, memory, pgcopy
from bench.config import BenchError, Settings
from bench.db import connect
from bench.models import Trained, predict_raw
from bench.online import compare


def _array(k: int) -> str:
    return "ARRAY[" + ", ".join(f"f{i}" for i in range(1, k + 1)) + "]"


def _timed(conn: psycopg.Connection, query: str, params: Any = None) -> tuple[Any, float]:
    t0 = time.perf_counter()
    row = conn.execute(query, params).fetchone()
    return row, time.perf_counter() - t0


def _check_sum(what: str, got: float, expected: np.ndarray, tolerance: float) -> dict[str, Any]:
    scale = float(np.abs(expected).sum()) or 1.0
    want = float(expected.sum())
    if abs(got - want) > tolerance * scale:
        raise BenchError(f"{what}: sum over all rows {got!r}, raw gives {want!r}")
    return {"what": what, "sum": got, "raw_sum": want, "ok": True}


def raw(model: Trained, X: np.ndarray) -> tuple[np.ndarray, float]:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        predictions = predict_raw(model, X)
        best = min(best, time.perf_counter() - t0)
    return predictions, best


def client_job(
    uri: str, model: Trained, table: str, target: str, feature_type: str = "float4"
) -> dict[str, Any]:
    k = model.spec.features
    with connect(uri) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {target}")
        conn.execute(
            f"CREATE TABLE {target} (id bigint, prediction real, model_id bigint,"
            " scored_at timestamptz NOT NULL DEFAULT now())"
        )
        t0 = time.perf_counter()
        ids, X = data.read_features(conn, table, k, sort=False, feature_type=feature_type)
        t1 = time.perf_counter()
        predictions = predict_raw(model, X).astype(np.float32)
        t2 = time.perf_counter()
        with conn.transaction():
            pgcopy.copy_in(
                conn,
                target,
                ["id", "prediction", "model_id"],
                [ids, predictions, np.full(len(ids), model.model_id)],
                ["int8", "float4", "int8"],
            )
        t3 = time.perf_counter()
    return {
        "rows": len(ids),
        "seconds": t3 - t0,
        "rows_per_s": len(ids) / (t3 - t0),
        "fetch_seconds": t1 - t0,
        "predict_seconds": t2 - t1,
        "write_seconds": t3 - t2,
    }


def run(
    uri: str, settings: Settings, model: Trained, ids: np.ndarray, X: np.ndarray, set_rows: int
) -> dict[str, Any]:
    spec, tol = model.spec, settings.tolerance
    table, n, k = spec.table, len(ids), spec.features
    if not np.array_equal(ids, np.arange(1, n + 1)):
        raise BenchError(f"{table}: ids are not 1..{n} in heap order")
    sample = data.sample_ids(n, settings.sample_rows)
    sample_list = sample.tolist()
    out: dict[str, Any] = {"rows": n, "checks": []}
    checks = out["checks"]

    expected, raw_seconds = raw(model, X)
    expected32 = expected.astype(np.float32).astype(np.float64)  # pyml returns real
    out["raw"] = {"seconds": raw_seconds, "rows_per_s": n / raw_seconds}

    with connect(uri) as conn:
        conn.execute(f"SELECT count(*) FROM {table}")  # the table in cache for everyone
        conn.execute("SELECT pyml.predict(%s, %s::float8[])", (spec.project, X[0].tolist()))

        # -- per-row set query --------------------------------------------------------------
        where = f"WHERE id <= {int(set_rows)}" if set_rows < n else ""
        (count, total), seconds = _timed(
            conn,
            f"SELECT count(*), sum(pyml.predict(%s, {_array(k)})::float8) FROM {table} {where}",
            (spec.project,),
        )
        out["set_query"] = {"rows": count, "seconds": seconds, "rows_per_s": count / seconds}
        checks.append(_check_sum(f"{spec.key}: set query", total, expected32[:count], tol))
        rows = conn.execute(
            f"SELECT pyml.predict(%s, {_array(k)}) FROM {table} WHERE id = ANY(%s) ORDER BY id",
            (spec.project, sample_list[: min(len(sample_list), max(set_rows // 10, 50))]),
        ).fetchall()
        checks.append(
            compare(
                f"{spec.key}: set query vs raw",
                [r[0] for r in rows],
                expected[sample[: len(rows)] - 1],
                tol,
            )
        )

        # -- predict_batch ------------------------------------------------------------------
        chunk = settings.batch_chunk
        chunks = -(-n // chunk)
        (count, total), seconds = _timed(
            conn,
            "SELECT count(*), sum(p::float8) FROM generate_series(0, %s - 1) AS c(i)"
            " CROSS JOIN LATERAL pyml.predict_batch(%s, (SELECT array_agg("
            f"{_array(k)} ORDER BY id) FROM {table}"
            " WHERE id > c.i * %s AND id <= (c.i + 1) * %s)) AS p",
            (chunks, spec.project, chunk, chunk),
        )
        if count != n:
            raise BenchError(f"{spec.key}: predict_batch gave {count} rows of {n}")
        out["predict_batch"] = {
            "rows": count,
            "seconds": seconds,
            "rows_per_s": count / seconds,
            "chunk_rows": chunk,
            "chunks": chunks,
        }
        checks.append(_check_sum(f"{spec.key}: predict_batch", total, expected32, tol))
        rows = conn.execute(
            "SELECT p FROM pyml.predict_batch(%s, (SELECT array_agg("
            f"{_array(k)} ORDER BY id) FROM {table} WHERE id = ANY(%s)))"
            " WITH ORDINALITY AS b(p, i) ORDER BY i",
            (spec.project, sample_list),
        ).fetchall()
        checks.append(
            compare(
                f"{spec.key}: predict_batch vs raw", [r[0] for r in rows], expected[sample - 1], tol
            )
        )

    # -- predict_into (its own session, backend RSS sampled: the memory reference) ----------
    target = f"scores_{spec.key}"
    into = memory.predict_into_sampled(uri, model, table, target, X[0].tolist())
    if into["rows"] != n:
        raise BenchError(f"{spec.key}: predict_into scored {into['rows']} rows of {n}")
    out["predict_into"] = into
    with connect(uri) as conn:
        total = conn.execute(f"SELECT sum(prediction::float8) FROM {target}").fetchone()[0]
        checks.append(_check_sum(f"{spec.key}: predict_into", total, expected32, tol))
        rows = conn.execute(
            f"SELECT prediction FROM {target} WHERE id = ANY(%s) ORDER BY id", (sample_list,)
        ).fetchall()
        checks.append(
            compare(
                f"{spec.key}: predict_into vs raw", [r[0] for r in rows], expected[sample - 1], tol
            )
        )

    # -- the client-side batch job --------------------------------------------------------
    client_target = f"client_scores_{spec.key}"
    out["client_job"] = client_job(uri, model, table, client_target)
    with connect(uri) as conn:
        rows = conn.execute(
            f"SELECT prediction FROM {client_target} WHERE id = ANY(%s) ORDER BY id", (sample_list,)
        ).fetchall()
        checks.append(
            compare(
                f"{spec.key}: client job vs raw", [r[0] for r in rows], expected[sample - 1], tol
            )
        )
    return out
