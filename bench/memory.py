"""Backend memory while predict_into scores a large table: VmRSS sampled every 100 ms."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from bench import data
from bench.config import BenchError, Settings
from bench.db import Server, connect
from bench.models import Trained, predict_raw
from bench.online import compare


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


class RssSampler(threading.Thread):
    """Samples a backend's RSS from /proc/<pid>/status until stopped."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.baseline = _status(pid)
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()
        self._t0 = time.perf_counter()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                rss = _status(self.pid)["VmRSS"]
            except (OSError, KeyError):
                break
            self.samples.append((time.perf_counter() - self._t0, rss))
            self._halt.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        final = _status(self.pid)
        peak = max([final["VmHWM"], *(s for _, s in self.samples)])
        base = self.baseline["VmRSS"]
        return {
            "baseline_rss_mb": base / 1024,
            "peak_rss_mb": peak / 1024,
            "peak_growth_mb": (peak - base) / 1024,
            "final_rss_mb": final["VmRSS"] / 1024,
            "hwm_before_mb": self.baseline["VmHWM"] / 1024,
            "samples": len(self.samples),
        }


def predict_into_sampled(
    uri: str, model: Trained, source: str, target: str, warm_row: list[float]
) -> dict[str, Any]:
    """predict_into in a new session (model loaded first), its backend's RSS sampled."""
    with connect(uri) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {target}")
        conn.execute("SELECT pyml.predict(%s, %s::float8[])", (model.spec.project, warm_row))
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        sampler = RssSampler(pid)
        sampler.start()
        try:
            t0 = time.perf_counter()
            rows = conn.execute(
                "SELECT pyml.predict_into(%s, %s, %s, 'id')", (model.spec.project, source, target)
            ).fetchone()[0]
            seconds = time.perf_counter() - t0
        finally:
            memory = sampler.stop()
    return {"rows": int(rows), "seconds": seconds, "rows_per_s": rows / seconds, **memory}


def run(
    server: Server, settings: Settings, model: Trained, warm_row: list[float]
) -> dict[str, Any]:
    k, n = model.spec.features, settings.memory_rows
    with connect(server.uri) as conn:
        conn.execute("DROP TABLE IF EXISTS big")
        t0 = time.perf_counter()
        data.build_table(conn, "big", n, k, label=False, unlogged=True, seed=0.17)
        build_seconds = time.perf_counter() - t0
    result = predict_into_sampled(server.uri, model, "big", "big_scores", warm_row)
    result["build_seconds"] = build_seconds
    if result["rows"] != n:
        raise BenchError(f"predict_into scored {result['rows']} rows of {n}")
    with connect(server.uri) as conn:
        sample = data.sample_ids(n, settings.sample_rows, seed=11)
        ids_list = sample.tolist()
        _, X = data.read_features(conn, "big", k, f"WHERE id = ANY('{{{_ints(ids_list)}}}')")
        got = conn.execute(
            "SELECT prediction FROM big_scores WHERE id = ANY(%s) ORDER BY id", (ids_list,)
        ).fetchall()
        result["check"] = compare(
            f"{model.spec.key}: predict_into on {n} rows vs raw",
            np.array([g[0] for g in got]),
            predict_raw(model, X),
            settings.tolerance,
        )
        conn.execute("DROP TABLE big_scores")
        conn.execute("DROP TABLE big")
    return result


def _ints(values: list[int]) -> str:
    return ",".join(str(int(v)) for v in values)
