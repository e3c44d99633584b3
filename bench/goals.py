"""The issue's goals, each a ratio computed from the results and marked met or not met.

A goal whose figures are missing (its measurement failed) is listed as not measured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class _Goals(list):
    def add(
        self, name: str, target: float, kind: str, compute: Callable[[], tuple[float, str]]
    ) -> None:
        """kind 'max': value <= target; 'min': value >= target."""
        try:
            value, detail = compute()
        except (KeyError, TypeError, ZeroDivisionError, ValueError):
            value, detail = None, "not measured (see Errors)"
        met = None if value is None else (value <= target if kind == "max" else value >= target)
        self.append(
            {
                "goal": name,
                "value": value,
                "target": target,
                "kind": kind,
                "met": met,
                "detail": detail,
            }
        )


def evaluate(r: dict[str, Any], only: str | None = None) -> list[dict[str, Any]]:
    """The goals of every part, or of one part (``--only``)."""
    if only == "streaming":
        return streaming(r)
    if only == "training":
        return training(r)
    if only == "onnx":
        return onnx(r)
    if only in ("preprocessing", "logging", "drift"):  # figures and ratios only: no goal
        return []
    if only == "serve":
        return service(r)
    return serving(r) + service(r) + streaming(r) + training(r) + onnx(r)


def service(r: dict[str, Any]) -> list[dict[str, Any]]:
    """pyml serve against the FastAPI microservice (bench/model_service.py)."""
    from bench import model_service

    goals = _Goals()
    if "serve" in r or r.get("only") is None:
        for name, target, kind, compute in model_service.goals(r):
            goals.add(name, target, kind, compute)
    return goals


def onnx(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 16's serving goals (``bench/onnx_serving.py``)."""
    from bench import onnx_serving

    goals = _Goals()
    if "onnx" not in r:  # the part did not run
        return goals
    for name, target, kind, compute in onnx_serving.goals(r):
        goals.add(name, target, kind, compute)
    return goals


def training(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Fitting in a child process costs at most 10 % of pyml.train's time."""
    goals = _Goals()
    if "training" not in r:  # the part did not run
        return goals
    cases = (r["training"].get("end to end") or {}).get("cases")
    if cases is None:  # it failed: see Errors

        def missing() -> tuple[float, str]:
            raise KeyError("end to end")

        goals.add("pyml.train in a child process <= 1.1 x in the backend", 1.1, "max", missing)
        return goals
    for key, c in cases.items():

        def ratio(c: dict[str, Any] = c) -> tuple[float, str]:
            return (
                c["isolated"]["median"] / c["in_process"]["median"],
                f"{c['isolated']['median']:.3f} s vs {c['in_process']['median']:.3f} s",
            )

        goals.add(
            f"{key}: pyml.train in a child process <= 1.1 x in the backend", 1.1, "max", ratio
        )
    return goals


def serving(r: dict[str, Any]) -> list[dict[str, Any]]:
    goals = _Goals()
    online, models, batch = r.get("online", {}), r["models"], r.get("batch", {})
    for key, m in models.items():
        k = m["features"]
        for client in ("pgbench", "psycopg"):

            def mean(client: str = client, key: str = key, k: int = k) -> tuple[float, str]:
                pred, noop = online[client][key], online[client][f"noop{k}"]
                return (
                    pred["mean_ms"] / noop["mean_ms"],
                    f"{pred['mean_ms']:.3f} ms vs {noop['mean_ms']:.3f} ms",
                )

            def p99(client: str = client, key: str = key) -> tuple[float, str]:
                pred, one = online[client][key], online[client]["select1"]
                return (
                    pred["p99_ms"] / one["p99_ms"],
                    f"{pred['p99_ms']:.3f} ms vs {one['p99_ms']:.3f} ms",
                )

            goals.add(
                f"{key}: online mean <= 1.1 x no-op PL/Python mean ({client})", 1.1, "max", mean
            )
            goals.add(f"{key}: online p99 <= 2 x SELECT 1 p99 ({client})", 2.0, "max", p99)

    http = r.get("http") or {}
    key = http.get("model", "lgbm")

    def faster_http() -> str:
        return min(("httpx", "http.client"), key=lambda c: http[c]["mean_ms"])

    def http_mean() -> tuple[float, str]:
        best, ours = faster_http(), online["psycopg"][key]["mean_ms"]
        return (
            http[best]["mean_ms"] / ours,
            f"HTTP ({best}) {http[best]['mean_ms']:.3f} ms vs pyml (psycopg) {ours:.3f} ms",
        )

    def http_p50() -> tuple[float, str]:
        best, ours = faster_http(), online["pgbench"][key]["p50_ms"]
        return (
            http[best]["p50_ms"] / ours,
            f"HTTP ({best}) {http[best]['p50_ms']:.3f} ms vs pyml (pgbench) {ours:.3f} ms",
        )

    goals.add(
        f"{key}: >= 10x lower latency than the HTTP microservice (mean, Python clients)",
        10.0,
        "min",
        http_mean,
    )
    goals.add(
        f"{key}: >= 10x lower latency than the HTTP microservice (p50, pgbench)",
        10.0,
        "min",
        http_p50,
    )

    for key in models:

        def set_query(key: str = key) -> tuple[float, str]:
            b = batch[key]
            rate, raw = b["set_query"]["rows_per_s"], b["raw"]["rows_per_s"]
            return rate / raw, f"{rate:,.0f} vs {raw:,.0f} rows/s"

        goals.add(f"{key}: set query >= 0.2 x raw vectorized throughput", 0.2, "min", set_query)
        for path in ("predict_into", "predict_batch"):

            def vs_raw(key: str = key, path: str = path) -> tuple[float, str]:
                rate, raw = batch[key][path]["rows_per_s"], batch[key]["raw"]["rows_per_s"]
                return rate / raw, f"{rate:,.0f} vs {raw:,.0f} rows/s (table read included)"

            def vs_client(key: str = key, path: str = path) -> tuple[float, str]:
                rate = batch[key][path]["rows_per_s"]
                client = batch[key]["client_job"]["rows_per_s"]
                return rate / client, f"{rate:,.0f} vs {client:,.0f} rows/s"

            goals.add(f"{key}: {path} >= 0.85 x raw vectorized throughput", 0.85, "min", vs_raw)
            goals.add(
                f"{key}: {path} >= 2x faster than the client-side batch job", 2.0, "min", vs_client
            )

    for key, m in models.items():

        def training(m: dict[str, Any] = m) -> tuple[float, str]:
            return (
                m["train_seconds"] / m["raw_fit_seconds"],
                f"{m['train_seconds']:.2f} s vs {m['raw_fit_seconds']:.2f} s",
            )

        goals.add(f"{key}: pyml.train <= 1.3 x raw fit time", 1.3, "max", training)
    for key in models:

        def cold(key: str = key) -> tuple[float, str]:
            ms = r["cold_start"][key]["first_call_ms_median"]
            return ms, f"{ms:.0f} ms"

        goals.add(f"{key}: cold first predict <= 50 ms (median of new sessions)", 50.0, "max", cold)

    mem = r.get("memory") or {}

    def bounded() -> tuple[float, str]:
        ref = mem["reference"]
        growth_ref = max(ref["peak_growth_mb"], 1.0)
        return (
            mem["peak_growth_mb"] / growth_ref,
            f"+{mem['peak_growth_mb']:,.0f} MB for {mem['rows']:,} rows vs"
            f" +{ref['peak_growth_mb']:,.0f} MB for {ref['rows']:,}"
            f" (peak RSS {mem['peak_rss_mb']:,.0f} MB)",
        )

    goals.add(
        "lgbm: memory bounded (predict_into's peak RSS growth on the large table"
        " <= 2 x its growth on t10)",
        2.0,
        "max",
        bounded,
    )
    return goals


def streaming(r: dict[str, Any]) -> list[dict[str, Any]]:
    goals = _Goals()
    s = r.get("streaming") or {}
    key = s.get("model", "lgbm")
    for mode, target in (("sync", 0.8), ("async", 0.95)):

        def inserts(mode: str = mode) -> tuple[float, str]:
            ours, plain = s["inserts"][mode]["rows_per_s"], s["inserts"]["plain"]["rows_per_s"]
            return ours / plain, f"{ours:,.0f} vs {plain:,.0f} inserts/s (one client)"

        article = "an" if mode == "async" else "a"
        goals.add(
            f"{key}: single-row INSERTs with {article} {mode} stream >= {target:g} x plain"
            " INSERT throughput",
            target,
            "min",
            inserts,
        )

    def listen() -> dict[str, Any]:  # None (TypeError below) when not measured
        return next(
            (
                x
                for x in s["latency"]["runs"]
                if x["consumer"] == "listen" and x["idle_listeners"] == 0
            ),
            None,
        )

    for stat, target in (("p50", 1.0), ("p99", 5.0)):

        def e2e(stat: str = stat) -> tuple[float, str]:
            run = listen()
            return run[f"{stat}_ms"], (
                f"{run[f'{stat}_ms']:.2f} ms ({run['from_sent'][f'{stat}_ms']:.2f} ms from the"
                f" INSERT sent), {run['events']:,} events at {run['achieved_rate']:,.0f}/s"
            )

        goals.add(
            f"{key}: stream commit -> consumer {stat} <= {target:g} ms at"
            f" {r['settings'].get('stream_rate', 1000):,} events/s",
            target,
            "max",
            e2e,
        )
    return goals
