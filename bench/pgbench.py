"""pgbench with custom scripts, -M prepared, per-transaction logs (--log).

Several scripts in one run (``-f a -f b ...``, equal weights) interleave at random on the same
connections, so a prediction and its floors are measured under the same conditions, which
matters on a machine shared with other work.

Every new connection pays pyml's cold start (loading the model) on its first call, which
pgbench's own latency and tps would mix in. So the logs are read instead: the measured window
opens ``warmup`` seconds after the last client finished its first call of every script and
closes at the last logged transaction; latencies and throughput come from that window only.
"""

from __future__ import annotations

import glob
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import PG_BIN, BenchError
from bench.db import Server


def random_features_script(call: str, k: int) -> str:
    """A script that draws k uniform features and calls ``call`` with ARRAY[...]::float8[]."""
    lines = [f"\\set f{i} random(0, 999999) / 1000000.0" for i in range(1, k + 1)]
    array = "ARRAY[" + ", ".join(f":f{i}" for i in range(1, k + 1)) + "]::float8[]"
    return "\n".join(lines) + f"\nSELECT {call.format(array=array)};\n"


def latency_stats(latencies_s: np.ndarray) -> dict[str, float]:
    ms = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    if not len(ms):
        raise BenchError("no latencies in the measured window")
    return {
        "n": int(len(ms)),
        "mean_ms": float(ms.mean()),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


def run(
    server: Server,
    scripts: dict[str, str],
    *,
    clients: int,
    seconds: float,
    warmup: float,
    cold_allowance: float,
    threads: int = 1,
) -> dict[str, dict[str, Any]]:
    """Run the scripts in one pgbench (each transaction picks one at random, equal weights);
    per script, stats of its transactions in the measured window."""
    total = math.ceil(cold_allowance + warmup + seconds)
    names = list(scripts)
    with tempfile.TemporaryDirectory(prefix="pyml-pgbench-") as tmp:
        files = []
        for i, name in enumerate(names):
            path = Path(tmp) / f"{i}-{name}.sql"
            path.write_text(scripts[name])
            files += ["-f", str(path)]
        prefix = os.path.join(tmp, "log")
        argv = [
            str(PG_BIN / "pgbench"),
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-U",
            server.user,
            "-n",
            "-M",
            "prepared",
            *files,
            "-c",
            str(clients),
            "-j",
            str(min(threads, clients)),
            "-T",
            str(total),
            "--log",
            f"--log-prefix={prefix}",
            server.database,
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0:
            raise BenchError(f"pgbench failed ({' '.join(argv)}):\n{proc.stdout}{proc.stderr}")
        client, script, latency_us, done = _read_logs(glob.glob(prefix + ".*"))
        command = " ".join(argv).replace(tmp, "<tmp>")
    # Every (client, script) pair's first call is cold: the window opens after the last one.
    firsts = {
        (c, k): done[(client == c) & (script == k)].min()
        for c in np.unique(client)
        for k in np.unique(script)
    }
    if len(np.unique(client)) != clients or len(np.unique(script)) != len(names):
        raise BenchError(f"pgbench: not every client ran every script ({command})")
    start = max(firsts.values()) + warmup
    end = float(done.max())
    measured = end - start
    if measured < 0.5 * seconds:
        raise BenchError(
            f"pgbench: only {measured:.1f}s measured of {seconds}s (cold starts took longer than"
            f" the {cold_allowance:.0f}s allowed)"
        )
    window = done > start
    tps_match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", proc.stdout)
    out = {}
    for k, name in enumerate(names):
        mine = window & (script == k)
        first = (script == k) & (done == done[script == k].min())
        out[name] = {
            **latency_stats(latency_us[mine] / 1e6),
            "clients": clients,
            "threads": min(threads, clients),
            "scripts": len(names),
            "measured_seconds": measured,
            "tps": float(mine.sum() / measured),
            "pgbench_tps_all_scripts": float(tps_match.group(1)) if tps_match else None,
            "first_call_ms": float(latency_us[first][0] / 1000),
            "command": command,
        }
    return out


def _read_logs(paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(client id, script number, latency in µs, completion time in s) of each transaction."""
    if not paths:
        raise BenchError("pgbench wrote no log")
    parts = []
    for path in paths:
        # client_id transaction_no time script_no time_epoch time_us
        data = np.loadtxt(path, dtype=np.float64, usecols=(0, 2, 3, 4, 5), ndmin=2)
        if data.size:
            parts.append(data)
    if not parts:
        raise BenchError("pgbench logged no transaction")
    data = np.vstack(parts)
    done = data[:, 3] + data[:, 4] / 1e6
    return data[:, 0].astype(np.int64), data[:, 2].astype(np.int64), data[:, 1], done
