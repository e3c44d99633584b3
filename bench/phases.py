"""Where batch scoring's time goes (issue 19): ``python -m bench.phases [--rows 100000,1000000]``.

For each size, a table of N rows x 10 ``float8`` features (+ id, label; fixed seed) in the
database ``pyml_phases`` (recreated) is scored with one LightGBM model (100 trees, 31 leaves,
trained by ``pyml.train`` on the first size's table), every path in this process's run, the
paths interleaved, best of ``--repeats``:

- raw: LightGBM's ``Booster.predict`` of the matrix already in this process (the limit with
  LightGBM's predictor, which the client job uses);
- kernel: pyml's tree kernel (:mod:`pyml.core._trees`, what the database predicts with) on
  the same matrix, its answers checked equal to raw's to the bit;
- client job: binary ``COPY (SELECT id, f1..f10) TO STDOUT`` parsed by numpy, ``predict``,
  binary ``COPY ... FROM STDIN`` of (id, prediction, model_id) into a table like
  predict_into's (:func:`bench.batch.client_job`), with LightGBM's predictor (the issue's
  baseline), and the same job predicting with pyml's kernel (a client that installed pyml);
- ``pyml.predict_into`` into a new table, with its phases as the server measured them
  (``client_min_messages = debug2``: ``pyml: predict_into wrote N rows: read ..., ...``);
- ``pyml.predict_batch`` in chunks of 100,000 rows (one statement, as in bench/batch.py).

Every path's predictions are checked against raw (sum over all rows, and a sample of rows).
Prints markdown (the section of bench/RESULTS.md); ``--write`` also replaces that section.
"""

# ruff: noqa: S608  (SQL built from the bench's own constant names)
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from bench import data
from bench.batch import client_job
from bench.config import ROOT, BenchError, ModelSpec
from bench.db import Server, connect, loadavg, start_server
from bench.models import Trained, export, predict_raw

DATABASE = "pyml_phases"
K = 10
PROJECT = "phases"
CHUNK = 100_000
HEADING = "## Where batch scoring's time goes (issue 19)"
_PHASE = re.compile(r"([a-z][a-z ()]*?) (\d+\.\d+) s")


def build(conn: psycopg.Connection, table: str, rows: int) -> None:
    """``table(id bigint, f1..f10 float8, label float8)``, uniform features, fixed seed."""
    names = ", ".join(f"f{i}" for i in range(1, K + 1))
    features = ", ".join(f"random() AS f{i}" for i in range(1, K + 1))
    conn.execute("SELECT setseed(0.19)")
    conn.execute(
        f"CREATE TABLE {table} AS SELECT id, {names}, {data.LABEL_10} + 0.2 * (random() - 0.5)"
        f" AS label FROM (SELECT i::bigint AS id, {features}"
        f" FROM generate_series(1, {int(rows)}) AS i) AS s"
    )
    conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
    conn.execute(f"VACUUM ANALYZE {table}")


def prepare(server: Server, sizes: list[int]) -> Trained:
    data.recreate_database(server)
    with connect(server.uri) as conn:
        for rows in [100, *sizes]:
            build(conn, f"p{rows}", rows)
        first = f"p{sizes[0]}"
        conn.execute(
            f"CREATE VIEW {first}_train AS SELECT {', '.join(f'f{i}' for i in range(1, K + 1))},"
            f" label FROM {first}"
        )
        conn.execute(
            "SELECT * FROM pyml.train(%s, 'regression', %s, 'label',"
            " algorithm => 'lightgbm', hyperparams => %s, test_sampling => 'last')",
            (PROJECT, f"{first}_train", Jsonb(_HYPERPARAMS)),
        )
        model_id = conn.execute("SELECT pyml.deployed_model(%s)", (PROJECT,)).fetchone()[0]
        fmt, predictor = export(conn, model_id)
    spec = ModelSpec("lgbm", PROJECT, first, K, "lightgbm", dict(_HYPERPARAMS), "LightGBM")
    return Trained(spec, model_id, dict(_HYPERPARAMS), fmt, predictor, [], 0)


_HYPERPARAMS = {"n_estimators": 100, "num_leaves": 31}


def _phases(notices: list[str], said: str = "pyml: predict_into wrote") -> dict[str, float]:
    for text in notices:
        if text.startswith(said):
            return {name: float(s) for name, s in _PHASE.findall(text.split(": ", 2)[2])}
    raise BenchError(f"the server said nothing of its phases ({said}): {notices!r}")


def drift(uri: str, table: str) -> dict[str, Any]:
    """``pyml.drift`` of the table against the model's training rows, with its phases."""
    notices: list[str] = []
    with connect(uri) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("SET client_min_messages = debug2")
        conn.execute("SELECT count(*) FROM pyml.drift(%s, 'p100')", (PROJECT,))  # warm
        notices.clear()
        t0 = time.perf_counter()
        conn.execute("SELECT count(*) FROM pyml.drift(%s, %s)", (PROJECT, table)).fetchone()
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "phases": _phases(notices, "pyml: drift compared")}


def predict_into(uri: str, table: str, target: str) -> dict[str, Any]:
    notices: list[str] = []
    with connect(uri) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("SET client_min_messages = debug2")
        conn.execute(f"DROP TABLE IF EXISTS {target}")
        conn.execute("SELECT pyml.predict(%s, %s::float8[])", (PROJECT, [0.5] * K))  # warm
        t0 = time.perf_counter()
        rows = conn.execute(
            "SELECT pyml.predict_into(%s, %s, %s, 'id')", (PROJECT, table, target)
        ).fetchone()[0]
        seconds = time.perf_counter() - t0
    return {"rows": rows, "seconds": seconds, "phases": _phases(notices)}


def predict_batch(uri: str, table: str, n: int) -> dict[str, Any]:
    array = "ARRAY[" + ", ".join(f"f{i}" for i in range(1, K + 1)) + "]"
    with connect(uri) as conn:
        conn.execute("SELECT pyml.predict(%s, %s::float8[])", (PROJECT, [0.5] * K))
        t0 = time.perf_counter()
        count, total = conn.execute(
            "SELECT count(*), sum(p::float8) FROM generate_series(0, %s - 1) AS c(i)"
            " CROSS JOIN LATERAL pyml.predict_batch(%s, (SELECT array_agg("
            f"{array} ORDER BY id) FROM {table}"
            " WHERE id > c.i * %s AND id <= (c.i + 1) * %s)) AS p",
            (-(-n // CHUNK), PROJECT, CHUNK, CHUNK),
        ).fetchone()
        seconds = time.perf_counter() - t0
    return {"rows": count, "seconds": seconds, "sum": total}


def _check(what: str, got: float, expected: np.ndarray) -> None:
    want = float(expected.astype(np.float32).astype(np.float64).sum())
    if abs(got - want) > 1e-6 * float(np.abs(expected).sum()):
        raise BenchError(f"{what}: sum {got!r}, raw gives {want!r}")


def measure(server: Server, model: Trained, rows: int, repeats: int) -> dict[str, Any]:
    table = f"p{rows}"
    with connect(server.uri) as conn:
        ids, X = data.read_features(conn, table, K, sort=True, feature_type="float8")
    expected = predict_raw(model, X)
    kernel = _kernel(model)
    if not np.array_equal(kernel.predict(X), expected):
        raise BenchError("pyml's tree kernel and LightGBM differ")
    runs: dict[str, list[dict[str, Any]]] = {
        "raw": [],
        "kernel": [],
        "client": [],
        "client_kernel": [],
        "into": [],
        "batch": [],
        "drift": [],
    }
    paths: dict[str, Callable[[], dict[str, Any]]] = {
        "raw": lambda: _raw(model, X),
        "kernel": lambda: _timed(lambda: kernel.predict(X)),
        "client": lambda: client_job(server.uri, model, table, f"c{rows}", "float8"),
        "client_kernel": lambda: client_job(
            server.uri, replace(model, predictor=kernel), table, f"k{rows}", "float8"
        ),
        "into": lambda: predict_into(server.uri, table, f"s{rows}"),
        "batch": lambda: predict_batch(server.uri, table, rows),
        "drift": lambda: drift(server.uri, table),
    }
    load = [loadavg()]
    for turn in range(repeats):
        order = list(paths) if turn % 2 == 0 else list(reversed(paths))
        for name in order:
            runs[name].append(paths[name]())
    load.append(loadavg())
    with connect(server.uri) as conn:
        for target, what in (
            (f"s{rows}", "predict_into"),
            (f"c{rows}", "client job"),
            (f"k{rows}", "client job (kernel)"),
        ):
            got = conn.execute(f"SELECT sum(prediction::float8) FROM {target}").fetchone()[0]
            _check(what, got, expected)
            sample = data.sample_ids(rows, 200)
            values = conn.execute(
                f"SELECT prediction FROM {target} WHERE id = ANY(%s) ORDER BY id",
                (sample.tolist(),),
            ).fetchall()
            diff = np.max(np.abs(np.array([v[0] for v in values]) - expected[sample - 1]))
            if diff > 1e-5 * max(1.0, float(np.abs(expected).max())):
                raise BenchError(f"{what}: rows differ from raw by {diff}")
    for run in runs["batch"]:
        _check("predict_batch", run["sum"], expected)
    best = {name: min(r, key=lambda r: r["seconds"]) for name, r in runs.items()}
    return {"rows": rows, "best": best, "runs": runs, "load": load}


def _raw(model: Trained, X: np.ndarray) -> dict[str, Any]:
    return _timed(lambda: predict_raw(model, X))


def _timed(call: Callable[[], Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    call()
    return {"seconds": time.perf_counter() - t0}


def _kernel(model: Trained) -> Any:
    """The model as the database loads it: its artifact through pyml's checks, predicting
    with pyml's tree kernel."""
    from pyml.core import _trees
    from pyml.core.artifacts import _load_lightgbm

    booster = _load_lightgbm(model.predictor.model_to_string().encode())
    if booster.forest is None or _trees.library() is None:
        raise BenchError("pyml's tree kernel does not serve this model")
    return booster


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        HEADING,
        "",
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f" ({os.cpu_count()} cores). One LightGBM model (100 trees, 31 leaves), tables of"
        " N rows x 10 `float8` features; every path in the same run, interleaved, best of"
        f" {len(results[0]['runs']['raw'])}; predictions checked against raw. See"
        " `bench/phases.py`.",
        "",
        "| rows | path | seconds | x client job | x raw (LightGBM) | load |",
        "|---|---|---|---|---|---|",
    ]
    labels = {
        "raw": "raw: LightGBM's `Booster.predict`, matrix in memory",
        "kernel": "pyml's tree kernel, matrix in memory",
        "client": "client job: binary COPY out, numpy, LightGBM's predict, binary COPY in",
        "client_kernel": "the client job predicting with pyml's tree kernel",
        "into": "`pyml.predict_into`",
        "batch": "`pyml.predict_batch`, chunks of 100,000",
    }
    for r in results:
        best = r["best"]
        for name, label in labels.items():  # drift: its own table below
            s = best[name]["seconds"]
            lines.append(
                f"| {r['rows']:,} | {label} | {s:.3f} | {best['client']['seconds'] / s:.2f}"
                f" | {best['raw']['seconds'] / s:.2f} | {r['load'][0]:.1f}-{r['load'][1]:.1f} |"
            )
    lines += [
        "",
        "Phases (seconds; `predict (worker)` overlaps the main thread's `read`, `convert` and"
        " `write`; the client job's phases are serial):",
        "",
    ]
    names: list[str] = []
    for r in results:
        names += [n for n in r["best"]["into"]["phases"] if n not in names]
    lines.append("| rows | path | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for r in results:
        into = r["best"]["into"]["phases"]
        lines.append(
            f"| {r['rows']:,} | `predict_into` | "
            + " | ".join(f"{into[n]:.3f}" if n in into else "" for n in names)
            + " |"
        )
        client = r["best"]["client"]
        lines.append(
            f"| {r['rows']:,} | client job | read {client['fetch_seconds']:.3f}, predict"
            f" {client['predict_seconds']:.3f}, write {client['write_seconds']:.3f}"
            + " |"
            * len(names)
        )
    lines += [
        "",
        "`pyml.drift` of the same tables against the model's training rows (seconds):",
        "",
    ]
    names = []
    for r in results:
        names += [n for n in r["best"]["drift"]["phases"] if n not in names]
    lines.append("| rows | wall | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for r in results:
        d = r["best"]["drift"]
        cells = " | ".join(f"{d['phases'][n]:.3f}" if n in d["phases"] else "" for n in names)
        lines.append(f"| {r['rows']:,} | {d['seconds']:.3f} | {cells} |")
    return "\n".join(lines) + "\n"


def write_section(
    text: str, heading: str = HEADING, path: Path = ROOT / "bench" / "RESULTS.md"
) -> None:
    """Replace (or append) the section of RESULTS.md under ``heading``, up to the next
    ``## `` heading, with ``text``."""
    old = path.read_text()
    start = old.find(heading)
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text)
        return
    end = old.find("\n## ", start + len(heading))
    path.write_text(old[:start] + text + (old[end + 1 :] if end >= 0 else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="100000,1000000", help="sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="replace the section of RESULTS.md")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.rows.split(",")]
    server = start_server(DATABASE)
    model = prepare(server, sizes)
    results = [measure(server, model, rows, args.repeats) for rows in sizes]
    command = "python -m bench.phases " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(results, command.strip())
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
