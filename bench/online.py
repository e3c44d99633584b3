"""Online latency from one client (pgbench and psycopg) and throughput with 4 and 16 clients.

Each prediction is measured against two floors taken the same way on the same connection:
a prepared ``SELECT 1`` and ``bench_noop(float8[])``, a PL/Python function doing nothing with
the same array. From one client the floors and the fast models are interleaved in one run
(pgbench: several ``-f`` scripts picked at random; psycopg: round-robin on one connection), so
load from elsewhere on the machine hits them alike. The random forest (~10 ms a call) runs on
its own, or it would take all the time of the shared run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench import pgbench
from bench.config import BenchError, Settings
from bench.db import Server, connect
from bench.models import Trained, predict_raw

CHECKED_CALLS = 50  # online predictions compared with the raw model


def calls(models: Sequence[Trained]) -> dict[str, tuple[str, int]]:
    """name -> (SQL call with {array}, feature count): the floors then each model."""
    out: dict[str, tuple[str, int]] = {"select1": ("1", 0)}
    for k in sorted({m.spec.features for m in models}):
        out[f"noop{k}"] = ("bench_noop({array})", k)
    for m in models:
        out[m.spec.key] = (f"pyml.predict('{m.spec.project}', {{array}})", m.spec.features)
    return out


def _slow(models: Sequence[Trained]) -> set[str]:
    return {m.spec.key for m in models if m.spec.algorithm == "random_forest"}


def _script(call: str, k: int) -> str:
    return "SELECT 1;\n" if k == 0 else pgbench.random_features_script(call, k)


def _allowance(cold_seconds: float, clients: int, cores: int = 2) -> float:
    """Seconds to let every client's first (cold) calls finish before the measured window."""
    return 2 * cold_seconds * max(1.0, clients / cores) + 1.0


def single_client_pgbench(
    server: Server, settings: Settings, models: Sequence[Trained], cold: dict[str, float]
) -> dict[str, Any]:
    """``cold``: first-call seconds by name (select1, noopK, model keys), from coldstart."""
    slow = _slow(models)
    groups = [[n for n in calls(models) if n not in slow]] + [[n] for n in sorted(slow)]
    out: dict[str, Any] = {}
    for group in groups:
        scripts = {n: _script(*calls(models)[n]) for n in group}
        out.update(
            pgbench.run(
                server,
                scripts,
                clients=1,
                seconds=settings.latency_seconds * len(group) / 2,
                warmup=settings.warmup_seconds,
                cold_allowance=_allowance(sum(cold.get(n, 1.0) for n in group), 1),
            )
        )
    return out


def throughput_pgbench(
    server: Server, settings: Settings, model: Trained, cold: dict[str, float]
) -> dict[str, Any]:
    names = ["select1", f"noop{model.spec.features}", model.spec.key]
    every = calls([model])
    out: dict[str, Any] = {}
    for clients in settings.clients:
        for name in names:
            out[f"{name}/c{clients}"] = pgbench.run(
                server,
                {name: _script(*every[name])},
                clients=clients,
                threads=settings.threads,
                seconds=settings.throughput_seconds,
                warmup=settings.warmup_seconds,
                cold_allowance=_allowance(cold.get(name, 1.0), clients),
            )[name]
    return out


def psycopg_loop(
    uri: str,
    queries: Mapping[str, tuple[str, Sequence[tuple[Any, ...]]]],
    calls: int,
    warmup: int = 100,
) -> dict[str, tuple[dict[str, Any], list[Any]]]:
    """Prepared executes round-robin on one connection, ``perf_counter`` around each.

    ``queries``: name -> (query, parameter tuples, cycled). Returns name -> (stats, values).
    """
    names = list(queries)
    latencies = {n: np.empty(calls) for n in names}
    values: dict[str, list[Any]] = {n: [] for n in names}
    first_ms: dict[str, float] = {}
    with connect(uri) as conn:
        cur = conn.cursor()
        for i in range(warmup + 1):
            for n in names:
                query, params = queries[n]
                t0 = time.perf_counter()
                cur.execute(query, params[i % len(params)], prepare=True)
                cur.fetchone()
                if i == 0:
                    first_ms[n] = (time.perf_counter() - t0) * 1000
        for i in range(calls):
            for j in range(len(names)):
                n = names[(i + j) % len(names)]  # rotate, so no query always follows another
                query, params = queries[n]
                t0 = time.perf_counter()
                cur.execute(query, params[i % len(params)], prepare=True)
                value = cur.fetchone()[0]
                latencies[n][i] = time.perf_counter() - t0
                values[n].append(value)
    return {
        n: (
            {
                **pgbench.latency_stats(latencies[n]),
                "first_call_ms": first_ms[n],
                "calls": calls,
                "interleaved_with": [m for m in names if m != n],
            },
            values[n],
        )
        for n in names
    }


def single_client_psycopg(
    server: Server, settings: Settings, models: Sequence[Trained], features: dict[int, np.ndarray]
) -> dict[str, Any]:
    """``features[k]``: rows of k features drawn from the data, one per call."""
    every, slow = calls(models), _slow(models)
    by_key = {m.spec.key: m for m in models}

    def query(name: str) -> tuple[str, list[tuple[Any, ...]]]:
        call, k = every[name]
        if k == 0:
            return "SELECT 1", [()]
        return (
            "SELECT " + call.format(array="%s::float8[]"),
            [(row.tolist(),) for row in features[k][: settings.calls]],
        )

    out: dict[str, Any] = {}
    fast = {n: query(n) for n in every if n not in slow}
    results = psycopg_loop(server.uri, fast, settings.calls)
    for n in sorted(slow):  # ~10 ms a call: a short loop of its own
        results.update(
            psycopg_loop(server.uri, {n: query(n)}, max(100, settings.calls // 20), warmup=10)
        )
    for name, (stats, values) in results.items():
        model = by_key.get(name)
        if model is not None:
            k = model.spec.features
            stats["check"] = compare(
                f"{name}: online pyml.predict vs raw predict",
                np.asarray(values[:CHECKED_CALLS], dtype=np.float64),
                predict_raw(model, features[k][:CHECKED_CALLS]),
                settings.tolerance,
            )
        out[name] = stats
    return out


def compare(what: str, got: Any, expected: Any, tolerance: float) -> dict[str, Any]:
    """Equal within float32 rounding, or BenchError (the bench measures only right answers)."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    expected = np.asarray(expected, dtype=np.float64).reshape(-1)
    if got.shape != expected.shape:
        raise BenchError(f"{what}: {got.shape[0]} values, expected {expected.shape[0]}")
    diff = np.abs(got - expected)
    limit = tolerance * np.maximum(1.0, np.abs(expected))
    if (diff > limit).any() or np.isnan(got).any():
        i = int(np.argmax(diff - limit))
        raise BenchError(
            f"{what}: results differ: row {i}: {got[i]!r} vs {expected[i]!r}"
            f" ({int((diff > limit).sum())} of {len(got)} rows out of tolerance)"
        )
    return {
        "what": what,
        "rows": int(len(got)),
        "max_abs_diff": float(diff.max(initial=0.0)),
        "ok": True,
    }
