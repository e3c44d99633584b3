"""Read scaling (issue 18): what one server, and a primary with a hot standby, serve.

    .venv/bin/python -m bench.read_scaling [--quick] [--rounds N] [--no-standby] [--pgbouncer]

Database ``pyml_bench_scaling`` on the checkout's server (``pyml up``): table ``t10`` (10 real
features, fixed seed) and project ``bench_scaling``, LightGBM (100 trees, 31 leaves) deployed,
plus a second model (15 leaves) that the deploy-follow part switches to and back.

Each *point* is one or two pgbench processes (``-M prepared``, C clients, ``-j min(C, 2)``)
calling ``SELECT pyml.predict('bench_scaling', ARRAY[f1..f10])`` with random features in a
loop (``predict``), or ``pyml.predict_batch`` of one 64-row array (``batch64``: 64
predictions a call; up to 64 rows LightGBM predicts on the calling thread). Once every
client is connected and past its cold first calls, a window of ``--seconds`` is measured; in
it:

- predictions = transactions completed in the window (pgbench's per-transaction log) x rows
  per call; latency p50/p99 from the same log;
- server CPU = utime + stime (``/proc/PID/stat``) of the pgbench connections' backends (their
  pids from ``pg_stat_activity``), and apart, of every other process of the cluster
  (postmaster, background processes, WAL sender / startup on a standby);
- client CPU = pgbench's own;
- the machine's busy CPU (``/proc/stat``): what is left after server and client is other
  people's load on this shared machine.

Points: one server at 1, 4 and 16 clients; the standby alone at 4; primary + hot standby on
this machine with the clients split between them (2+2, 8+8). Every round runs every point
(order rotated from round to round, so drifting load from elsewhere hits them alike); medians
and min-max over rounds.

Then, with a standby: replay lag while the primary takes single-row INSERTs (2 clients; the
standby idle, then serving 8 clients): ``pg_current_wal_lsn()`` on the primary and
``pg_last_wal_replay_lsn()`` on the standby sampled every 10 ms; lag in bytes, and in time
(from the primary's LSN reaching L to the standby's replay passing L). And deploys: the time
from a deploy's commit returning on the primary to ``pyml.deployed_model`` on the standby
naming the new model, and to a standby session that has already served the project
returning the new model's prediction.

Memory: PSS/RSS (``/proc/PID/smaps_rollup``) of a backend fresh, after PL/Python and pyml
are loaded, and after 200 predictions (model cached), on the primary.

``--pgbouncer``: PgBouncer (transaction pooling, pool of 4 server connections) in front of
the primary, at 16 and 64 clients, against 16 direct clients (all ``-M extended``: PgBouncer
before 1.21 cannot keep prepared statements in transaction mode).

``--tabulate JSON...``: the summary of earlier runs (their results.json, or the list of runs in
bench/results-scaling.json), every point's rounds pooled; nothing is run.

The standby: ``pyml.client.cluster.Standby`` (``pg_basebackup -R`` of the running cluster
into ``.pyml/standby/bench-scaling``, own port, run as the cluster's user), removed at the
end. Results: JSON to ``--output`` (default /tmp/pyml-bench-scaling/results.json) and a
markdown summary on stdout, to paste into bench/RESULTS.md. Nothing is asserted.
"""

# ruff: noqa: S608 (constant SQL of the bench, no user input)

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # python bench/read_scaling.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import psycopg

from bench import data, db, machine
from bench.config import PG_BIN, BenchError
from bench.pgbench import random_features_script

DATABASE = "pyml_bench_scaling"
PROJECT = "bench_scaling"
FEATURES = 10
BATCH_ROWS = 64  # LightGBM predicts up to 64 rows on the calling thread (README, Performance)
HZ = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.010  # seconds between LSN samples
PSS_CALLS = 200


# -- targets: a server the bench can reach and whose processes it can read --------------------


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    data: Path  # data directory (postmaster.pid)
    host: str = "127.0.0.1"
    user: str = "postgres"
    database: str = DATABASE

    @property
    def uri(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])


def _cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / HZ


def _children(parent: int) -> list[int]:
    out = []
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == parent:
            out.append(int(path.split("/")[2]))
    return out


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) seconds of all cores since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / HZ, sum(values[:8]) / HZ


def _smaps(pid: int) -> dict[str, float]:
    """Rss and Pss (and its split) of a process, MB."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"):
                out[key.lower()] = int(value.split()[0]) / 1024
    return out


# -- the database, the models, the standby ---------------------------------------------------


def prepare(server: db.Server, rows: int) -> dict[str, int]:
    """Database, table, the deployed model (100 trees x 31 leaves) and a second one (15)."""
    data.recreate_database(server)
    with db.connect(server.uri) as conn:
        conn.execute("SET client_min_messages = warning")
        data.build_table(conn, "t10", rows, FEATURES)
        conn.execute("CREATE TABLE writes (id bigserial PRIMARY KEY, x real[], at timestamptz)")
        ids = {}
        for key, leaves in (("a", 31), ("b", 15)):
            conn.execute(
                "SELECT * FROM pyml.train(project_name => %s, task => 'regression',"
                " relation_name => 't10_train', y_column_name => 'label',"
                " algorithm => 'lightgbm', hyperparams => %s::jsonb,"
                " test_sampling => 'last', automatic_deploy => false)",
                (PROJECT, json.dumps({"n_estimators": 100, "num_leaves": leaves})),
            )
            ids[key] = db.scalar(
                conn,
                "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p"
                " ON p.id = m.project_id WHERE p.name = %s",
                (PROJECT,),
            )
        conn.execute("SELECT pyml.deploy(%s)", (ids["a"],))
        conn.execute("CHECKPOINT")
    return ids


@contextmanager
def standby(primary: Target, name: str = "bench-scaling") -> Iterator[Target]:
    """A hot standby of the checkout's cluster (``pyml.client.cluster.Standby``: a
    ``pg_basebackup -R`` in ``.pyml/standby/NAME``, own port), removed afterwards."""
    from pyml.client.cluster import Cluster, Standby

    node = Standby(Cluster.for_checkout(), name)
    node.remove()  # a leftover of an interrupted run is stale: a fresh base backup
    node.start()
    try:
        target = Target("standby", node.port, node.data)
        _wait_ready(target)
        yield target
    finally:
        node.remove()


def _free_port(start: int) -> int:
    import socket

    for port in range(start, start + 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise BenchError(f"no free TCP port in {start}..{start + 199}")


def _wait_ready(target: Target, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(target.uri, autocommit=True) as conn:
                if db.scalar(conn, "SELECT pyml.deployed_model(%s)", (PROJECT,)) is not None:
                    return
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise BenchError(f"{target.name}: the project never appeared")
        time.sleep(0.2)


# -- a point: pgbench processes, a measured window -------------------------------------------


@dataclass(frozen=True)
class Load:
    target: Target
    clients: int


def predict_script() -> str:
    return random_features_script(f"pyml.predict('{PROJECT}', {{array}})", FEATURES)


def batch_script(rows: int = BATCH_ROWS, seed: int = 5) -> str:
    values = np.random.default_rng(seed).random(rows * FEATURES).round(6)
    array = "ARRAY[" + ",".join(f"{v:g}" for v in values) + "]::real[]"
    return f"SELECT count(*) FROM pyml.predict_batch('{PROJECT}', {array});\n"


def _pgbench_backends(conn: psycopg.Connection) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'"
            " AND datname = current_database()"
        ).fetchall()
    ]


def _communicate(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """A pgbench's output; killed (and BenchError) when it outlives its -T by far."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise BenchError(f"pgbench hung (killed after {timeout:.0f} s):\n{out}{err}") from None


def run_point(
    loads: Sequence[Load],
    script: str,
    rows_per_call: int,
    seconds: float,
    settle: float,
) -> dict[str, Any]:
    """pgbench against each target at once; figures of the window after ``settle``."""
    tmp = Path(tempfile.mkdtemp(prefix="pyml-scaling-"))
    try:
        (tmp / "script.sql").write_text(script)
        total = int(settle + seconds + 2)
        procs = []
        for i, load in enumerate(loads):
            argv = [
                str(PG_BIN / "pgbench"),
                *("-h", load.target.host, "-p", str(load.target.port), "-U", load.target.user),
                *("-n", "-M", "prepared", "-f", str(tmp / "script.sql")),
                *("-c", str(load.clients), "-j", str(min(2, load.clients)), "-T", str(total)),
                "--log",
                f"--log-prefix={tmp}/log{i}",
                load.target.database,
            ]
            procs.append(
                subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp
                )
            )
        monitors = [psycopg.connect(load.target.uri, autocommit=True) for load in loads]
        try:
            deadline = time.monotonic() + settle + 30
            while any(
                len(_pgbench_backends(m)) < load.clients
                for m, load in zip(monitors, loads, strict=True)
            ):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise BenchError("pgbench clients did not all connect")
                time.sleep(0.05)
            time.sleep(settle)
            backends = [_pgbench_backends(m) for m in monitors]
            postmasters = [load.target.postmaster() for load in loads]

            def sample() -> dict[str, Any]:
                mine = [set(b) for b in backends]
                return {
                    "t": time.time(),
                    "backends": [sum(_cpu(p) for p in b) for b in mine],
                    "others": [
                        _cpu(pm) + sum(_cpu(p) for p in _children(pm) if p not in b)
                        for pm, b in zip(postmasters, mine, strict=True)
                    ],
                    "client": [_cpu(p.pid) for p in procs],
                    "machine": _machine_cpu(),
                }

            s0 = sample()
            time.sleep(seconds)
            s1 = sample()
        finally:
            for m in monitors:
                m.close()
        outputs = [_communicate(p, total + 60) for p in procs]
        for p, (out, err) in zip(procs, outputs, strict=True):
            if p.returncode != 0:
                raise BenchError(f"pgbench failed:\n{out}{err}")
        per_target = []
        t0, t1 = s0["t"], s1["t"]
        window = t1 - t0
        for i, load in enumerate(loads):
            logs = glob.glob(f"{tmp}/log{i}.*")
            arr = np.vstack(
                [np.loadtxt(p, usecols=(0, 2, 4, 5), ndmin=2) for p in logs if os.path.getsize(p)]
            )
            done = arr[:, 2] + arr[:, 3] / 1e6
            first = max(done[arr[:, 0] == c].min() for c in np.unique(arr[:, 0]))
            inside = (done > t0) & (done <= t1)
            calls = int(inside.sum())
            lat = arr[inside, 1] / 1000.0
            predictions = calls * rows_per_call
            server = s1["backends"][i] - s0["backends"][i]
            others = s1["others"][i] - s0["others"][i]
            client = s1["client"][i] - s0["client"][i]
            per_target.append(
                {
                    "target": load.target.name,
                    "clients": load.clients,
                    "calls": calls,
                    "predictions_per_s": predictions / window,
                    "p50_ms": float(np.percentile(lat, 50)) if calls else None,
                    "p99_ms": float(np.percentile(lat, 99)) if calls else None,
                    "backend_cpu_s": server,
                    "other_server_cpu_s": others,
                    "client_cpu_s": client,
                    "backend_us_per_prediction": 1e6 * server / max(predictions, 1),
                    "server_us_per_prediction": 1e6 * (server + others) / max(predictions, 1),
                    "client_us_per_prediction": 1e6 * client / max(predictions, 1),
                    "cold_calls_in_window": bool(first > t0),
                }
            )
        busy = s1["machine"][0] - s0["machine"][0]
        ours = sum(
            t["backend_cpu_s"] + t["other_server_cpu_s"] + t["client_cpu_s"] for t in per_target
        )
        predictions = sum(t["predictions_per_s"] for t in per_target) * window
        return {
            "window_s": window,
            "predictions_per_s": predictions / window,
            "backend_us_per_prediction": 1e6
            * sum(t["backend_cpu_s"] for t in per_target)
            / max(predictions, 1),
            "server_us_per_prediction": 1e6
            * sum(t["backend_cpu_s"] + t["other_server_cpu_s"] for t in per_target)
            / max(predictions, 1),
            "client_us_per_prediction": 1e6
            * sum(t["client_cpu_s"] for t in per_target)
            / max(predictions, 1),
            "machine_busy_cores": busy / window,
            "ours_cores": ours / window,
            "others_cores": max(busy - ours, 0.0) / window,
            # predictions per CPU-second of the server's processes, and of ours (server and
            # pgbench): what a core gives when it is not shared with other people's work
            "predictions_per_server_core": predictions
            / max(sum(t["backend_cpu_s"] + t["other_server_cpu_s"] for t in per_target), 1e-9),
            "predictions_per_core_with_client": predictions / max(ours, 1e-9),
            "load1": db.loadavg(),
            "targets": per_target,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and min-max over rounds of the point's figures."""
    keys = [
        "predictions_per_s",
        "backend_us_per_prediction",
        "server_us_per_prediction",
        "client_us_per_prediction",
        "machine_busy_cores",
        "ours_cores",
        "others_cores",
        "predictions_per_server_core",
        "predictions_per_core_with_client",
        "load1",
    ]
    out: dict[str, Any] = {"rounds": len(runs)}
    for k in keys:
        values = [r[k] for r in runs]
        out[k] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    p50 = [t["p50_ms"] for r in runs for t in r["targets"] if t["p50_ms"] is not None]
    p99 = [t["p99_ms"] for r in runs for t in r["targets"] if t["p99_ms"] is not None]
    out["p50_ms"] = statistics.median(p50) if p50 else None
    out["p99_ms"] = statistics.median(p99) if p99 else None
    split = {}
    for t in runs[0]["targets"]:
        split[t["target"]] = statistics.median(
            x["predictions_per_s"] for r in runs for x in r["targets"] if x["target"] == t["target"]
        )
    out["by_target"] = split
    out["cold_calls_in_window"] = any(t["cold_calls_in_window"] for r in runs for t in r["targets"])
    return out


# -- replay lag and deploys ------------------------------------------------------------------


class LsnSampler:
    """Samples the primary's current LSN and the standby's replay LSN every SAMPLE_EVERY."""

    def __init__(self, primary: Target, standby: Target) -> None:
        self.primary, self.standby = primary, standby
        self.samples_p: list[tuple[float, int]] = []
        self.samples_s: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with (
            psycopg.connect(self.primary.uri, autocommit=True) as p,
            psycopg.connect(self.standby.uri, autocommit=True) as s,
        ):
            qp = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
            qs = "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint"
            while not self._stop.is_set():
                lp = p.execute(qp, prepare=True).fetchone()
                self.samples_p.append((time.time(), int(lp[0]) if lp else 0))
                ls = s.execute(qs, prepare=True).fetchone()
                self.samples_s.append((time.time(), int(ls[0]) if ls else 0))
                time.sleep(SAMPLE_EVERY)

    def __enter__(self) -> LsnSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def lag(self, since: float) -> dict[str, Any]:
        """Byte lag at each standby sample; time lag of each primary sample's LSN."""
        p = np.array([x for x in self.samples_p if x[0] >= since], dtype=np.float64)
        s = np.array(self.samples_s, dtype=np.float64)
        if not len(p) or not len(s):
            raise BenchError("no LSN samples")
        # bytes: the primary's LSN (interpolated at the standby's sample time) minus replay
        at = s[s[:, 0] >= since]
        current = np.interp(at[:, 0], p[:, 0], p[:, 1])
        lag_bytes = np.maximum(current - at[:, 1], 0)
        # time: for each primary sample (t, L), the first standby sample replaying >= L
        replayed = np.maximum.accumulate(s[:, 1])
        idx = np.searchsorted(replayed, p[:, 1], side="left")
        ok = idx < len(s)
        lag_s = s[idx[ok], 0] - p[ok, 0]
        wal_rate = (p[-1, 1] - p[0, 1]) / max(p[-1, 0] - p[0, 0], 1e-9)
        return {
            "samples": int(len(at)),
            "wal_bytes_per_s": float(wal_rate),
            "lag_bytes_p50": float(np.percentile(lag_bytes, 50)),
            "lag_bytes_p99": float(np.percentile(lag_bytes, 99)),
            "lag_bytes_max": float(lag_bytes.max()),
            "lag_ms_p50": float(np.percentile(lag_s, 50) * 1000) if len(lag_s) else None,
            "lag_ms_p99": float(np.percentile(lag_s, 99) * 1000) if len(lag_s) else None,
            "lag_ms_max": float(lag_s.max() * 1000) if len(lag_s) else None,
            "resolution_ms": SAMPLE_EVERY * 1000,
        }


INSERT_SCRIPT = (
    "\\set a random(0, 999999)\n"
    "INSERT INTO writes (x, at) VALUES (ARRAY[:a, :a, :a, :a, :a, :a, :a, :a, :a, :a]"
    "::real[], now());\n"
)


@contextmanager
def background_pgbench(target: Target, script: str, clients: int, seconds: float) -> Iterator[None]:
    tmp = Path(tempfile.mkdtemp(prefix="pyml-scaling-bg-"))
    (tmp / "script.sql").write_text(script)
    proc = subprocess.Popen(
        [
            str(PG_BIN / "pgbench"),
            *("-h", target.host, "-p", str(target.port), "-U", target.user),
            *("-n", "-M", "prepared", "-f", str(tmp / "script.sql")),
            *("-c", str(clients), "-j", str(min(2, clients)), "-T", str(int(seconds) + 1)),
            target.database,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield
    finally:
        out, err = _communicate(proc, seconds + 60)
        shutil.rmtree(tmp, ignore_errors=True)
        if proc.returncode != 0:
            raise BenchError(f"background pgbench failed:\n{out}{err}")


def replay_lag(primary: Target, standby: Target, seconds: float, readers: int) -> dict[str, Any]:
    """Lag while the primary takes INSERTs from 2 clients (and the standby serves readers)."""
    with LsnSampler(primary, standby) as sampler:
        time.sleep(0.5)
        contexts = [background_pgbench(primary, INSERT_SCRIPT, 2, seconds + 1)]
        if readers:
            contexts.append(background_pgbench(standby, predict_script(), readers, seconds + 1))
        for c in contexts:
            c.__enter__()
        try:
            time.sleep(1.0)  # connected, past the readers' cold calls
            since = time.time()
            time.sleep(seconds - 1.0)
            until = time.time()
        finally:
            for c in reversed(contexts):
                c.__exit__(None, None, None)
    out = sampler.lag(since)
    out["seconds"] = until - since
    out["standby_readers"] = readers
    with psycopg.connect(primary.uri, autocommit=True) as conn:
        out["primary_inserts"] = db.scalar(conn, "SELECT count(*) FROM writes")
    return out


def deploy_follow(
    primary: Target, standby: Target, ids: dict[str, int], deploys: int, timeout: float
) -> dict[str, Any]:
    """Deploy b, a, b, ... on the primary; how soon the standby names it and serves it."""
    row = [0.1 * i for i in range(FEATURES)]
    query = "SELECT pyml.predict(%s, %s::real[])"
    expected = {}
    with psycopg.connect(primary.uri, autocommit=True) as conn:
        for model_id in ids.values():
            expected[model_id] = db.scalar(
                conn, "SELECT pyml.predict(%s::bigint, %s::real[])", (model_id, row)
            )
    if len(set(expected.values())) != len(expected):
        raise BenchError(f"the two models predict the same for the probe row: {expected}")
    named_ms: list[float | None] = []
    served_ms: list[float | None] = []
    replay_ms: list[float] = []
    with (
        psycopg.connect(primary.uri, autocommit=True) as p,
        psycopg.connect(standby.uri, autocommit=True) as s_named,
        psycopg.connect(standby.uri, autocommit=True) as s_served,
    ):
        current = db.scalar(p, "SELECT pyml.deployed_model(%s)", (PROJECT,))
        stale = 0
        gaps = np.random.default_rng(11)
        s_served.execute(query, (PROJECT, row), prepare=True).fetchone()  # model cached
        for i in range(deploys):
            new = ids["b"] if current == ids["a"] else ids["a"]
            # a random gap: deploys at a fixed period would keep one phase against the
            # standby session's 0.5 s revalidation and always measure the same delay
            time.sleep(0.3 + float(gaps.random()))
            # A session that missed the previous deploy still serves the model before it,
            # which is the new one once more: its "following" would be a false positive.
            before = s_served.execute(query, (PROJECT, row), prepare=True).fetchone()
            if before is None or before[0] != expected[current]:
                stale += 1
            p.execute("SELECT pyml.deploy(%s::bigint)", (new,))
            committed = time.perf_counter()
            lsn = db.scalar(p, "SELECT pg_current_wal_lsn()::text")
            named = served = replayed = None
            waiting = before is not None and before[0] == expected[current]
            while time.perf_counter() - committed < timeout and (
                (waiting and served is None) or named is None or replayed is None
            ):
                now = time.perf_counter() - committed
                if replayed is None and db.scalar(
                    s_named, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
                ):
                    replayed = now
                if named is None and (
                    db.scalar(s_named, "SELECT pyml.deployed_model(%s)", (PROJECT,)) == new
                ):
                    named = time.perf_counter() - committed
                if served is None and before is not None and before[0] == expected[current]:
                    value = s_served.execute(query, (PROJECT, row), prepare=True).fetchone()
                    if value is not None and value[0] == expected[new]:
                        served = time.perf_counter() - committed
                time.sleep(0.002)
            if replayed is None:
                raise BenchError(f"deploy {i}: the standby never replayed the commit")
            replay_ms.append(replayed * 1000)
            named_ms.append(None if named is None else named * 1000)
            served_ms.append(None if served is None else served * 1000)
            current = new
        p.execute("SELECT pyml.deploy(%s::bigint)", (ids["a"],))

    return follow_summary(replay_ms, named_ms, served_ms, stale, timeout)


def follow_summary(
    replay_ms: list[float],
    named_ms: list[float | None],
    served_ms: list[float | None],
    stale: int,
    timeout: float,
) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    followed = [v for v in served_ms if v is not None]
    named_in_time = [v for v in named_ms if v is not None]
    return {
        "deploys": len(replay_ms),
        "timeout_s": timeout,
        "replayed_ms": stats(replay_ms),
        "named_ms": stats(named_in_time),
        "named_within_timeout": len(named_in_time),
        "served_ms": stats(followed),
        "served_within_timeout": len(followed),
        "served_stale_before_deploy": stale,
        "all": {"replayed": replay_ms, "named": named_ms, "served": served_ms},
    }


# -- memory ----------------------------------------------------------------------------------


def backend_memory(target: Target) -> dict[str, Any]:
    """smaps_rollup of one backend: fresh, pyml loaded (no model), model cached."""
    rows = np.random.default_rng(4).random((PSS_CALLS, FEATURES)).tolist()
    out: dict[str, Any] = {}
    samples: dict[str, list[dict[str, float]]] = {"fresh": [], "pyml": [], "model": []}
    for _ in range(3):
        with psycopg.connect(target.uri, autocommit=True) as conn:
            pid = db.scalar(conn, "SELECT pg_backend_pid()")
            samples["fresh"].append(_smaps(pid))
            conn.execute("SELECT pyml.version()")
            samples["pyml"].append(_smaps(pid))
            for r in rows:
                conn.execute("SELECT pyml.predict(%s, %s::real[])", (PROJECT, r), prepare=True)
            samples["model"].append(_smaps(pid))
    for stage, found in samples.items():
        out[stage] = {k: statistics.median(s[k] for s in found) for k in found[0]}
    with psycopg.connect(target.uri, autocommit=True) as conn:
        out["max_connections"] = int(db.scalar(conn, "SHOW max_connections"))
        out["shared_buffers"] = db.scalar(conn, "SHOW shared_buffers")
    return out


# -- PgBouncer -------------------------------------------------------------------------------


@contextmanager
def pgbouncer(primary: Target, pool_size: int) -> Iterator[tuple[Target, int]]:
    """PgBouncer in transaction mode on its own port, as the cluster's user."""
    from pyml.client.cluster import Cluster

    user = Cluster.for_checkout().user
    exe = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(exe).exists():
        raise BenchError("pgbouncer is not installed (apt-get install pgbouncer)")
    directory = Path(tempfile.mkdtemp(prefix="pyml-scaling-bouncer-"))
    port = _free_port(primary.port + 50)
    (directory / "users.txt").write_text(f'"{primary.user}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{primary.database} = host={primary.host} port={primary.port} dbname={primary.database}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {directory}/users.txt\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\nmin_pool_size = {pool_size}\n"
        "max_client_conn = 500\n"
        "log_connections = 0\nlog_disconnections = 0\n"
        "ignore_startup_parameters = extra_float_digits\n"
        f"logfile = {directory}/pgbouncer.log\npidfile = {directory}/pgbouncer.pid\n"
    )
    shutil.chown(directory, user)
    for f in directory.iterdir():
        shutil.chown(f, user)
    argv = [exe, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", user, "--", *argv]
    # -q: nothing on stderr (a pipe nobody reads would fill up and stall it), log in the file
    argv.insert(len(argv) - 1, "-q")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        target = Target("pgbouncer", port, primary.data)
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(target.uri, autocommit=True).close()
                break
            except psycopg.Error:
                if time.monotonic() > deadline or proc.poll() is not None:
                    log = (directory / "pgbouncer.log").read_text(errors="replace")
                    raise BenchError(f"pgbouncer did not start:\n{log[-2000:]}") from None
                time.sleep(0.1)
        yield target, int((directory / "pgbouncer.pid").read_text())
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def run_pooled(
    primary: Target,
    bouncer: Target | None,
    bouncer_pid: int | None,
    clients: int,
    seconds: float,
    settle: float,
) -> dict[str, Any]:
    """pgbench ``-M extended`` (PgBouncer 1.18 in transaction mode cannot keep prepared
    statements) through PgBouncer, or straight to the primary when ``bouncer`` is None; the
    server's side is measured on the database's client backends."""
    via = bouncer or primary
    tmp = Path(tempfile.mkdtemp(prefix="pyml-scaling-pool-"))
    try:
        (tmp / "script.sql").write_text(predict_script())
        argv = [
            str(PG_BIN / "pgbench"),
            *("-h", via.host, "-p", str(via.port), "-U", via.user),
            *("-n", "-M", "extended", "-f", str(tmp / "script.sql")),
            *("-c", str(clients), "-j", "2", "-T", str(int(settle + seconds + 3))),
            "--log",
            f"--log-prefix={tmp}/log",
            via.database,
        ]
        launched = time.time() - 0.5
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with psycopg.connect(primary.uri, autocommit=True) as mon:
            time.sleep(settle + 1)
            pool = [
                r[0]
                for r in mon.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                    # direct: pgbench's own, not PgBouncer's idle pool (its minimum is filled
                    # in the background, unnamed); pooled: the pool
                    + (
                        " AND backend_start >= to_timestamp(%s) AND application_name = 'pgbench'"
                        if bouncer is None
                        else ""
                    ),
                    (launched,) if bouncer is None else None,
                ).fetchall()
            ]

            def sample() -> tuple[float, float, float, float, float]:
                return (
                    sum(_cpu(p) for p in pool),
                    _cpu(proc.pid),
                    _cpu(bouncer_pid) if bouncer_pid else 0.0,
                    _machine_cpu()[0],
                    time.time(),
                )

            b0, cl0, pb0, m0, t0 = sample()
            time.sleep(seconds)
            b1, cl1, pb1, m1, t1 = sample()
        out, err = _communicate(proc, settle + seconds + 60)
        if proc.returncode != 0:
            raise BenchError(f"pgbench via {via.name} failed:\n{out}{err}")
        arr = np.vstack(
            [
                np.loadtxt(p, usecols=(0, 2, 4, 5), ndmin=2)
                for p in glob.glob(f"{tmp}/log.*")
                if os.path.getsize(p)
            ]
        )
        done = arr[:, 2] + arr[:, 3] / 1e6
        inside = (done > t0) & (done <= t1)
        n = max(int(inside.sum()), 1)
        lat = arr[inside, 1] / 1000.0
        return {
            "via": via.name,
            "clients": clients,
            "server_connections": len(pool),
            "predictions_per_s": n / (t1 - t0),
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
            "backend_us_per_prediction": 1e6 * (b1 - b0) / n,
            "client_us_per_prediction": 1e6 * (cl1 - cl0) / n,
            "pgbouncer_us_per_prediction": 1e6 * (pb1 - pb0) / n,
            "machine_busy_cores": (m1 - m0) / (t1 - t0),
            "load1": db.loadavg(),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the run ---------------------------------------------------------------------------------


def _settle(clients: int) -> float:
    """Seconds after every client connected before the window opens: each backend's first
    call loads PL/Python, pyml and the model (~0.3 s CPU), about clients / 2 cores at a time;
    on a machine loaded by others it took longer (the runs of bench/results-scaling.json used
    1 + 0.2 s a client: 4 of 81 rounds had a cold call inside the window)."""
    return 2.0 + 0.3 * clients


def measure(args: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    server = db.start_server(DATABASE)
    started = time.time()
    r: dict[str, Any] = {
        "command": " ".join(["python -m bench.read_scaling", *sys.argv[1:]]),
        "uptime_before": _uptime(),
        "settings": {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "rows": args.rows,
            "batch_rows": BATCH_ROWS,
            "clients": args.clients,
        },
        "errors": {},
    }

    @contextmanager
    def part(name: str) -> Iterator[None]:
        """A part that fails is recorded (the others still run); results saved after each."""
        print(f"[scaling] {name} ...", flush=True)
        try:
            yield
        except Exception as exc:
            r["errors"][name] = f"{type(exc).__name__}: {exc}"
            print(f"[scaling] {name}: FAILED\n{traceback.format_exc()}", file=sys.stderr)
        finally:
            save(r)

    print("[scaling] database, table, models ...", flush=True)
    ids = prepare(server, args.rows)
    r["models"] = ids
    primary = Target("primary", server.port, Path(_data_directory(server.uri)))
    with db.connect(server.uri) as conn:
        r["machine"] = machine.describe(conn)
    points: dict[str, tuple[list[Load], str, int]] = {}

    def single(target: Target) -> None:
        for c in args.clients:
            points[f"predict/c{c}"] = ([Load(target, c)], predict_script(), 1)
        for c in args.clients:
            points[f"batch{BATCH_ROWS}/c{c}"] = ([Load(target, c)], batch_script(), BATCH_ROWS)

    single(primary)
    with standby(primary) if args.standby else _nothing() as replica:
        if replica is not None:
            r["standby"] = {"how": "pyml.client.cluster.Standby", "port": replica.port}
            for c in args.clients:
                if c >= 2:
                    half = c // 2
                    points[f"predict/c{half}+{half}"] = (
                        [Load(primary, half), Load(replica, half)],
                        predict_script(),
                        1,
                    )
            points["predict/standby c4"] = ([Load(replica, 4)], predict_script(), 1)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in points}
        names = list(points)
        for round_no in range(args.rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                loads, script, rows = points[name]
                clients = sum(load.clients for load in loads)
                with part(f"round {round_no + 1}/{args.rounds}: {name}"):
                    runs[name].append(
                        run_point(
                            loads,
                            script,
                            rows,
                            args.seconds,
                            _settle(max(load.clients for load in loads)) if clients else 1.0,
                        )
                    )
                r["points"] = {name: summarize(found) for name, found in runs.items() if found}
                r["runs"] = runs
        with part("backend memory"):
            r["memory"] = backend_memory(primary)
        if replica is not None:
            with part("replay lag"):
                r["replay_lag"] = [
                    replay_lag(primary, replica, args.lag_seconds, readers) for readers in (0, 8)
                ]
            with part("deploys followed on the standby"):
                r["deploy_follow"] = deploy_follow(primary, replica, ids, args.deploys, 5.0)
    pooled: dict[str, list[dict[str, Any]]] = {}
    with (
        part("pgbouncer") if args.pgbouncer else _nothing(),
        pgbouncer(primary, args.pool_size) if args.pgbouncer else _nothing() as bouncing,
    ):
        if bouncing is not None:
            bouncer, pid = bouncing
            for _ in range(args.rounds):
                for via, clients in ((None, 16), (bouncer, 16), (bouncer, 64)):
                    key = f"{'pgbouncer' if via else 'direct'}/c{clients}"
                    pooled.setdefault(key, []).append(
                        run_pooled(
                            primary,
                            via,
                            pid if via else None,
                            clients,
                            args.seconds,
                            _settle(args.pool_size if via else clients),
                        )
                    )
    if pooled:
        r["pgbouncer"] = pooled_summary(args.pool_size, pooled)
    r["uptime_after"] = _uptime()
    r["total_seconds"] = time.time() - started
    return r


def pooled_summary(pool_size: int, pooled: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "pool_size": pool_size,
        "runs": pooled,
        "points": {
            k: {
                f: statistics.median(x[f] for x in v)
                for f in v[0]
                if isinstance(v[0][f], (int, float)) and f != "clients"
            }
            | {
                "min_predictions_per_s": min(x["predictions_per_s"] for x in v),
                "max_predictions_per_s": max(x["predictions_per_s"] for x in v),
            }
            for k, v in pooled.items()
        },
    }


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs as one: every point's rounds pooled, lag and deploy samples together."""
    r: dict[str, Any] = {
        "command": "; ".join(dict.fromkeys(x["command"] for x in results))
        + f" ({len(results)} runs)",
        "machine": results[0]["machine"]
        | {
            "date": ", ".join(x["machine"]["date"] for x in results),
            "git": ", ".join(dict.fromkeys(x["machine"]["git"] for x in results)),
        },
        "uptime_before": " / ".join(x["uptime_before"] for x in results),
        "uptime_after": " / ".join(x.get("uptime_after", "-") for x in results),
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    for x in results:
        for name, found in x.get("runs", {}).items():
            runs.setdefault(name, []).extend(found)
    r["runs"] = runs
    r["points"] = {name: summarize(found) for name, found in runs.items() if found}
    memory = [x["memory"] for x in results if "memory" in x]
    r["memory"] = memory[-1] | {
        stage: {k: statistics.median(m[stage][k] for m in memory) for k in memory[-1][stage]}
        for stage in ("fresh", "pyml", "model")
    }
    r["replay_lag"] = [lag for x in results for lag in x.get("replay_lag", [])]
    follows = [x["deploy_follow"] for x in results if "deploy_follow" in x]
    if follows:
        every = {k: [v for f in follows for v in f["all"][k]] for k in follows[0]["all"]}
        r["deploy_follow"] = follow_summary(
            every["replayed"],
            every["named"],
            every["served"],
            sum(f["served_stale_before_deploy"] for f in follows),
            follows[0]["timeout_s"],
        )
    pooled: dict[str, list[dict[str, Any]]] = {}
    for x in results:
        for k, v in x.get("pgbouncer", {}).get("runs", {}).items():
            pooled.setdefault(k, []).extend(v)
    if pooled:
        r["pgbouncer"] = pooled_summary(results[-1]["pgbouncer"]["pool_size"], pooled)
    return r


@contextmanager
def _nothing() -> Iterator[Any]:
    yield None


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _data_directory(uri: str) -> str:
    with db.connect(uri) as conn:
        return str(db.scalar(conn, "SHOW data_directory"))


# -- markdown --------------------------------------------------------------------------------


def _spread(x: dict[str, float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(x['median'])} ({fmt.format(x['min'])}-{fmt.format(x['max'])})"


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        f"`{r['command']}`, {m['date']}, git {m['git']}; {m['cpu']}, {m['cores']} cores"
        " shared with other sessions.",
        f"`uptime` before: {r['uptime_before']}; after: {r['uptime_after']}.",
        "",
        "| point | predictions/s median (min-max) | backend CPU µs/prediction |"
        " server CPU µs/pred (all processes) | client (pgbench) CPU µs/pred |"
        " predictions per server CPU-second | p50 / p99 ms a call"
        " | machine busy (cores) | others' load (cores) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in r["points"].items():
        split = ""
        if len(p["by_target"]) > 1:
            split = " (" + " / ".join(f"{k} {v:,.0f}" for k, v in p["by_target"].items()) + ")"
        cold = " (cold calls in the window)" if p["cold_calls_in_window"] else ""
        out.append(
            f"| {name}{cold} | {_spread(p['predictions_per_s'])}{split}"
            f" | {_spread(p['backend_us_per_prediction'])}"
            f" | {_spread(p['server_us_per_prediction'])}"
            f" | {_spread(p['client_us_per_prediction'])}"
            f" | {_spread(p['predictions_per_server_core'])}"
            f" | {p['p50_ms']:.2f} / {p['p99_ms']:.2f}"
            f" | {_spread(p['machine_busy_cores'], '{:.2f}')}"
            f" | {_spread(p['others_cores'], '{:.2f}')} |"
        )
    mem = r["memory"]
    out += [
        "",
        "Backend memory (MB, `/proc/PID/smaps_rollup`, median of 3 sessions):",
        "",
        "| backend | RSS | PSS | PSS anon | PSS file | PSS shmem |",
        "|---|---|---|---|---|---|",
    ]
    for stage, label in (
        ("fresh", "fresh (SELECT 1)"),
        ("pyml", "pyml loaded (pyml.version())"),
        ("model", f"after {PSS_CALLS} predictions (model cached)"),
    ):
        x = mem[stage]
        out.append(
            f"| {label} | {x['rss']:.1f} | {x['pss']:.1f} | {x['pss_anon']:.1f}"
            f" | {x['pss_file']:.1f} | {x['pss_shmem']:.1f} |"
        )
    out.append(
        f"\nmax_connections {mem['max_connections']}, shared_buffers {mem['shared_buffers']}."
    )
    for lag in r.get("replay_lag", []):
        out.append(
            f"\nReplay lag, primary taking single-row INSERTs from 2 clients"
            f" ({lag['wal_bytes_per_s'] / 1e6:.2f} MB/s of WAL), standby serving"
            f" {lag['standby_readers']} pgbench clients, {lag['seconds']:.0f} s sampled every"
            f" {lag['resolution_ms']:.0f} ms: bytes p50 {lag['lag_bytes_p50']:,.0f} / p99"
            f" {lag['lag_bytes_p99']:,.0f} / max {lag['lag_bytes_max']:,.0f}; time p50"
            f" {lag['lag_ms_p50']:.1f} ms / p99 {lag['lag_ms_p99']:.1f} / max"
            f" {lag['lag_ms_max']:.1f}."
        )
    d = r.get("deploy_follow")
    if d:
        served = d["served_ms"]
        out.append(
            f"\nDeploys ({d['deploys']}, alternating two models) from commit on the primary:"
            f" replayed on the standby {_spread(d['replayed_ms'], '{:.1f}')} ms;"
            " `pyml.deployed_model` in a standby session names it"
            + (f" {_spread(d['named_ms'], '{:.1f}')} ms" if d["named_ms"] else ": never")
            + f" ({d['named_within_timeout']} of {d['deploys']} within {d['timeout_s']:.0f} s);"
            " a standby session that already served the project returns the new model's"
            + (f" prediction {_spread(served, '{:.1f}')} ms" if served else " prediction: never")
            + f" ({d['served_within_timeout']} of {d['deploys']} within {d['timeout_s']:.0f} s;"
            f" {d['served_stale_before_deploy']} deploys found the session still serving a"
            " model older than the live one, not counted)."
        )
    pb = r.get("pgbouncer")
    if pb:
        out += [
            "",
            f"PgBouncer {_pgbouncer_version()} (transaction pooling, pool of {pb['pool_size']}"
            " server connections), pgbench -M extended:",
            "",
            "| path | predictions/s median (min-max) | server connections | p50 / p99 ms |"
            " backend CPU µs/pred | pgbouncer CPU µs/pred | client CPU µs/pred |",
            "|---|---|---|---|---|---|---|",
        ]
        for k, p in pb["points"].items():
            out.append(
                f"| {k} | {p['predictions_per_s']:,.0f} ({p['min_predictions_per_s']:,.0f}-"
                f"{p['max_predictions_per_s']:,.0f}) | {p['server_connections']:.0f}"
                f" | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} | {p['backend_us_per_prediction']:.0f}"
                f" | {p['pgbouncer_us_per_prediction']:.0f} | {p['client_us_per_prediction']:.0f} |"
            )
    return "\n".join(out) + "\n"


def _pgbouncer_version() -> str:
    exe = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return proc.stdout.split("\n")[0].replace("PgBouncer", "").strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s windows")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="measured window a point")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of t10")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--no-standby", dest="standby", action="store_false")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument("--deploys", type=int, default=10)
    parser.add_argument("--pgbouncer", action="store_true")
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--output", default="/tmp/pyml-bench-scaling")
    parser.add_argument(
        "--tabulate", nargs="+", metavar="JSON", help="print the summary of earlier runs, pooled"
    )
    args = parser.parse_args()
    if args.tabulate:
        found: list[dict[str, Any]] = []
        for f in args.tabulate:  # a run's results.json, or a list of runs (results-scaling.json)
            loaded = json.loads(Path(f).read_text())
            found += loaded if isinstance(loaded, list) else [loaded]
        print(markdown(combine(found)))
        return
    args.clients = [int(c) for c in args.clients.split(",")]
    if args.quick:
        args.rounds, args.seconds, args.lag_seconds, args.deploys = 1, 2.0, 4.0, 3
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    def save(r: dict[str, Any]) -> None:
        (out / "results.json").write_text(json.dumps(r, indent=2, default=str) + "\n")

    r = measure(args, save)
    save(r)
    text = markdown(r)
    (out / "RESULTS-scaling.md").write_text(text)
    print(text)
    print(f"[scaling] {r['total_seconds']:.0f} s; {out}/results.json", flush=True)


if __name__ == "__main__":
    main()
