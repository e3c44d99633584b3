"""Cold start: the first pyml.predict in a brand-new session, timed apart from the connect."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg

from bench.models import Trained


def sessions(uri: str, query: str, params: tuple[Any, ...], count: int) -> dict[str, Any]:
    connect_ms, first_ms, second_ms = [], [], []
    for _ in range(count):
        t0 = time.perf_counter()
        conn = psycopg.connect(uri, autocommit=True)
        t1 = time.perf_counter()
        try:
            conn.execute(query, params).fetchone()
            t2 = time.perf_counter()
            conn.execute(query, params).fetchone()
            t3 = time.perf_counter()
        finally:
            conn.close()
        connect_ms.append((t1 - t0) * 1000)
        first_ms.append((t2 - t1) * 1000)
        second_ms.append((t3 - t2) * 1000)
    return {
        "sessions": count,
        "connect_ms_median": float(np.median(connect_ms)),
        "first_call_ms_median": float(np.median(first_ms)),
        "first_call_ms_min": float(np.min(first_ms)),
        "first_call_ms_max": float(np.max(first_ms)),
        "second_call_ms_median": float(np.median(second_ms)),
    }


def run(uri: str, models: list[Trained], X: dict[int, np.ndarray], count: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in sorted({m.spec.features for m in models}):
        # The floor: starting PL/Python itself, with a function that imports nothing.
        out[f"noop{k}"] = sessions(
            uri, "SELECT bench_noop(%s::float8[])", (X[k][0].tolist(),), count
        )
    for m in models:
        row = X[m.spec.features][0].tolist()
        out[m.spec.key] = sessions(
            uri, "SELECT pyml.predict(%s, %s::float8[])", (m.spec.project, row), count
        )
    return out
