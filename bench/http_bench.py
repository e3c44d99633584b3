"""Runs bench/microservice.py under uvicorn and measures it like pyml's online path.

Latency from one client with keep-alive (httpx, and the leaner http.client). Throughput with 4
and 16 keep-alive connections driven by 2 client processes (asyncio, prebuilt requests), as
pgbench -j 2 drives its clients from 2 threads: 16 Python client processes would take the
2 cores from the server. Requests completed in a common window after a warm-up are counted.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np

from bench.config import ROOT, BenchError, Settings
from bench.pgbench import latency_stats

HEADERS = {"Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def service(uri: str, project: str, workers: int) -> Iterator[dict[str, Any]]:
    """uvicorn on 127.0.0.1 and a random free port; stopped (its process group) at the end."""
    port = _free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.microservice",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    # One worker process per core, one OpenMP thread each: LightGBM's default of a thread per
    # core makes 2 workers' spinning OpenMP threads fight over 2 cores (3x lower throughput).
    env = {
        **os.environ,
        "PYML_BENCH_URI": uri,
        "PYML_BENCH_PROJECT": project,
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = _wait_ready(proc, port)
        command = "OMP_NUM_THREADS=1 python " + " ".join(argv[1:])
        yield {
            "port": port,
            "pid": proc.pid,
            "health": health,
            "command": command.replace(str(port), "<port>"),
        }
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the service's process group (its workers too); SIGKILL what is left after 20 s."""

    def alive() -> bool:
        try:
            os.killpg(proc.pid, 0)
            return True
        except ProcessLookupError:
            return False

    if alive():
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while alive() and time.monotonic() < deadline:
        proc.poll()  # reap the leader so the group can empty
        time.sleep(0.1)
    if alive():
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_ready(proc: subprocess.Popen[str], port: int, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"microservice exited ({proc.returncode}):\n{proc.stdout.read()}")
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            if r.status_code == 200 and r.json().get("model_id") is not None:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise BenchError("microservice did not start in time")


def _bodies(features: np.ndarray) -> list[bytes]:
    return [json.dumps({"features": row.tolist()}).encode() for row in features]


def latency_httpx(
    port: int, features: np.ndarray, warmup: int = 200
) -> tuple[dict[str, float], list[float]]:
    bodies = _bodies(features)
    url = f"http://127.0.0.1:{port}/predict"
    with httpx.Client(headers=HEADERS) as client:  # keep-alive connection pool
        for i in range(warmup):
            client.post(url, content=bodies[i % len(bodies)]).raise_for_status()
        latencies, values = np.empty(len(bodies)), []
        for i, body in enumerate(bodies):
            t0 = time.perf_counter()
            r = client.post(url, content=body)
            r.raise_for_status()
            values.append(r.json()["prediction"])
            latencies[i] = time.perf_counter() - t0
    return latency_stats(latencies), values


def latency_http_client(
    port: int, features: np.ndarray, warmup: int = 200
) -> tuple[dict[str, float], list[float]]:
    bodies = _bodies(features)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    try:
        for i in range(warmup):
            _post(conn, bodies[i % len(bodies)])
        latencies, values = np.empty(len(bodies)), []
        for i, body in enumerate(bodies):
            t0 = time.perf_counter()
            payload = _post(conn, body)
            latencies[i] = time.perf_counter() - t0
            values.append(json.loads(payload)["prediction"])
    finally:
        conn.close()
    return latency_stats(latencies), values


def _post(conn: http.client.HTTPConnection, body: bytes) -> bytes:
    conn.request("POST", "/predict", body=body, headers=HEADERS)
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise BenchError(f"microservice answered {response.status}: {payload[:200]!r}")
    return payload


def _request(body: bytes) -> bytes:
    return (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


async def _connection(
    port: int, requests: Sequence[bytes], start_at: float, end_at: float, latencies: list[float]
) -> int:
    """One keep-alive connection in a closed loop; returns the warm-up request count."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    warm, i = 0, 0
    try:
        while True:
            t0 = time.perf_counter()
            writer.write(requests[i % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise BenchError(f"microservice answered {head[:40]!r}")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            t1 = time.perf_counter()
            now = time.time()
            if now > end_at:
                return warm
            if now >= start_at:
                latencies.append(t1 - t0)
            else:
                warm += 1
            i += 1
    finally:
        writer.close()


def _client_process(
    port: int, bodies: Sequence[bytes], connections: int, start_at: float, end_at: float, queue: Any
) -> None:
    """Like a pgbench thread: several connections driven by one process (asyncio)."""
    import asyncio

    requests = [_request(b) for b in bodies]
    latencies: list[float] = []

    async def main() -> list[int]:
        return await asyncio.gather(
            *(_connection(port, requests, start_at, end_at, latencies) for _ in range(connections))
        )

    try:
        warm = asyncio.run(main())
        queue.put((min(warm), latencies, None))
    except Exception as exc:  # reported to the parent
        queue.put((0, latencies, repr(exc)))


def throughput(
    port: int, features: np.ndarray, clients: int, seconds: float, warmup: float, processes: int = 2
) -> dict[str, Any]:
    """``clients`` keep-alive connections spread over ``processes`` client processes."""
    bodies = _bodies(features[:1000])
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 2.0 + warmup  # spawning and importing the clients takes ~1 s
    end_at = start_at + seconds
    processes = min(processes, clients)
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    procs = [
        ctx.Process(target=_client_process, args=(port, bodies, n, start_at, end_at, queue))
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
    if any(w == 0 for w, _, _ in results):
        raise BenchError("an HTTP connection made no warm-up request before the measured window")
    latencies = np.concatenate([np.asarray(lat) for _, lat, _ in results])
    return {
        **latency_stats(latencies),
        "clients": clients,
        "client_processes": processes,
        "measured_seconds": seconds,
        "tps": float(len(latencies) / seconds),
    }


def run(uri: str, project: str, settings: Settings, features: np.ndarray) -> dict[str, Any]:
    """Everything HTTP for one project; predictions returned for the correctness check."""
    out: dict[str, Any] = {"workers": settings.http_workers}
    with service(uri, project, settings.http_workers) as svc:
        out["command"] = svc["command"]
        out["httpx"], values = latency_httpx(svc["port"], features[: settings.calls])
        out["http.client"], _ = latency_http_client(svc["port"], features[: settings.calls])
        for clients in settings.clients:
            out[f"c{clients}"] = throughput(
                svc["port"], features, clients, settings.throughput_seconds, settings.warmup_seconds
            )
    out["values"] = values
    return out
