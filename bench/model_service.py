"""Model as a service (issue 17): ``pyml serve`` against the FastAPI microservice a user would
build (``bench/microservice.py``) and ``pyml.predict`` over SQL, same run, same model, same rows.

Each is measured with 1, 4 and 16 clients in a closed loop (keep-alive connections driven by
up to 2 client processes, as in ``bench/http_bench.py``; pgbench ``-j 2`` for SQL): latency
(mean, p50, p99) and requests per second in a common window after a warm-up. Both services run
2 worker processes (one per core, one OpenMP thread each); ``pyml serve`` without its access log
(the microservice has none), then once more at 16 clients with it. A request is one row: the
V2 body ``{"inputs": [{"name": "features", "shape": [1, 10], "datatype": "FP64", "data": [...]}]}``
for ``pyml serve``, ``{"features": [...]}`` for the microservice, ``pyml.predict(project,
ARRAY[...])`` for SQL.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np

from bench import http_bench, online, pgbench
from bench.config import ROOT, BenchError, Settings
from bench.db import Server
from bench.models import Trained, predict_raw

CLIENTS = (1, 4, 16)
WORKERS = 2


def _v2(row: np.ndarray) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, len(row)],
                    "datatype": "FP64",
                    "data": row.tolist(),
                }
            ]
        }
    ).encode()


def _request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


@contextmanager
def pyml_serve(uri: str, project: str, access_log: bool = False) -> Iterator[dict[str, Any]]:
    """``pyml serve`` with 2 workers on a free port, stopped (SIGTERM, graceful) at the end."""
    port = http_bench._free_port()
    argv = [
        sys.executable,
        "-m",
        "pyml.client.cli",
        "serve",
        "--url",
        uri,
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--project",
        project,
    ]
    if not access_log:
        argv.append("--no-access-log")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(os.devnull, "w")  # noqa: SIM115 - the access log, when on, goes nowhere
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise BenchError(f"pyml serve exited ({proc.returncode})")
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("pyml serve did not start in time")
            time.sleep(0.2)
        command = "OMP_NUM_THREADS=1 pyml " + " ".join(argv[3:]).replace(uri, "<uri>")
        yield {"port": port, "command": command.replace(str(port), "<port>")}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _client_process(
    port: int,
    requests: Sequence[bytes],
    connections: int,
    start_at: float,
    end_at: float,
    queue: Any,
) -> None:
    import asyncio

    latencies: list[float] = []

    async def main() -> list[int]:
        return await asyncio.gather(
            *(
                http_bench._connection(port, requests, start_at, end_at, latencies)
                for _ in range(connections)
            )
        )

    try:
        warm = asyncio.run(main())
        queue.put((min(warm), latencies, None))
    except Exception as exc:  # reported to the parent
        queue.put((0, latencies, repr(exc)))


def throughput(
    port: int, requests: Sequence[bytes], clients: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """``clients`` keep-alive connections in a closed loop over at most 2 client processes."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 2.0 + warmup
    end_at = start_at + seconds
    processes = min(2, clients)
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    procs = [
        ctx.Process(target=_client_process, args=(port, requests, n, start_at, end_at, queue))
        for n in shares
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=end_at - time.time() + 120) for _ in procs]
    for p in procs:
        p.join()
    errors = [e for _, _, e in results if e]
    if errors:
        raise BenchError(f"HTTP client failed: {errors[0]}")
    latencies = np.concatenate([np.asarray(lat) for _, lat, _ in results])
    return {
        **pgbench.latency_stats(latencies),
        "clients": clients,
        "tps": float(len(latencies) / seconds),
    }


def _values(port: int, project: str, rows: np.ndarray) -> list[float]:
    with httpx.Client() as client:
        return [
            client.post(
                f"http://127.0.0.1:{port}/v2/models/{project}/infer", content=_v2(row)
            ).json()["outputs"][0]["data"][0]
            for row in rows
        ]


def run(server: Server, settings: Settings, model: Trained, features: np.ndarray) -> dict[str, Any]:
    project = model.spec.project
    rows = features[:1000]
    out: dict[str, Any] = {"model": model.spec.key, "workers": WORKERS, "clients": list(CLIENTS)}
    seconds, warmup = settings.throughput_seconds, settings.warmup_seconds
    checks = []
    with pyml_serve(server.uri, project) as svc:
        out["pyml serve command"] = svc["command"]
        path = f"/v2/models/{project}/infer"
        requests = [_request(path, _v2(row)) for row in rows]
        for clients in CLIENTS:
            out[f"pyml serve/c{clients}"] = throughput(
                svc["port"], requests, clients, seconds, warmup
            )
        checks.append(
            online.compare(
                f"{model.spec.key}: pyml serve vs raw predict",
                np.asarray(_values(svc["port"], project, rows[:50])),
                predict_raw(model, rows[:50]),
                settings.tolerance,
            )
        )
    with pyml_serve(server.uri, project, access_log=True) as svc:
        requests = [_request(f"/v2/models/{project}/infer", _v2(row)) for row in rows]
        out["pyml serve, access log on/c16"] = throughput(
            svc["port"], requests, 16, seconds, warmup
        )
    with http_bench.service(server.uri, project, WORKERS) as svc:
        out["FastAPI command"] = svc["command"]
        requests = [http_bench._request(b) for b in http_bench._bodies(rows)]
        for clients in CLIENTS:
            out[f"FastAPI/c{clients}"] = throughput(svc["port"], requests, clients, seconds, warmup)
    call, k = online.calls([model])[model.spec.key]
    for clients in CLIENTS:
        result = pgbench.run(
            server,
            {"sql": pgbench.random_features_script(call, k)},
            clients=clients,
            threads=2,
            seconds=seconds,
            warmup=warmup,
            cold_allowance=3.0,
        )["sql"]
        out["SQL command"] = result.pop("command")
        out[f"SQL/c{clients}"] = result
    out["checks"] = checks
    return out


PATHS = ("pyml serve", "FastAPI", "SQL")


def goals(r: dict[str, Any]) -> list[tuple[str, float, str, Any]]:
    """(name, target, kind, compute) of the issue's two goals."""
    s = r.get("serve") or {}

    def p50() -> tuple[float, str]:
        ours, theirs = s["pyml serve/c1"]["p50_ms"], s["FastAPI/c1"]["p50_ms"]
        return ours / theirs, f"{ours:.3f} ms vs {theirs:.3f} ms (1 client)"

    def tps() -> tuple[float, str]:
        ours, theirs = s["pyml serve/c16"]["tps"], s["FastAPI/c16"]["tps"]
        return ours / theirs, f"{ours:,.0f} vs {theirs:,.0f} requests/s (16 clients)"

    return [
        ("pyml serve p50 <= 0.8 x the FastAPI microservice's", 0.8, "max", p50),
        (
            "pyml serve throughput >= 1.5 x the FastAPI microservice's at 16 clients",
            1.5,
            "min",
            tps,
        ),
    ]


def markdown(r: dict[str, Any]) -> list[str]:
    s = r.get("serve")
    if not s:
        return []
    out = [
        "## Model as a service",
        "",
        f"Model `{s['model']}`, one row per request; {s['workers']} worker processes per"
        " service; closed loop, keep-alive (see `bench/model_service.py`).",
        f"`{s.get('pyml serve command', '')}` against `{s.get('FastAPI command', '')}`"
        " and `pyml.predict` through pgbench.",
        "",
        "| path | clients | mean ms | p50 ms | p99 ms | requests/s |",
        "|---|---|---|---|---|---|",
    ]
    for path in PATHS:
        for clients in s["clients"]:
            f = s.get(f"{path}/c{clients}")
            if f:
                out.append(
                    f"| {path} | {clients} | {f['mean_ms']:.3f} | {f['p50_ms']:.3f} |"
                    f" {f['p99_ms']:.3f} | {f['tps']:,.0f} |"
                )
    f = s.get("pyml serve, access log on/c16")
    if f:
        out.append(
            f"| pyml serve, access log on | 16 | {f['mean_ms']:.3f} | {f['p50_ms']:.3f} |"
            f" {f['p99_ms']:.3f} | {f['tps']:,.0f} |"
        )
    return [*out, ""]
