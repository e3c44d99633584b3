"""Where ``pyml.train``'s time goes, phase by phase, against the raw fit (issue 19).

    .venv/bin/python -m bench.train_phases --rows 100000,1000000

For each size: a table of N rows x 10 float8 features and a float8 label (fixed seed), in a
database of its own; ``pyml.train`` (LightGBM regression, n_estimators 100, num_leaves 31,
test_sampling 'last') in a warm session (one untimed train first) and in cold sessions (a new
connection each, so the backend imports pyml and its libraries); and the raw
``LGBMRegressor.fit`` in this process, on the same training rows with the hyperparameters
pyml recorded, in turns with the warm ``pyml.train`` runs (each pair's ratio is reported
too: the machine's speed drifts between minutes). Best of ``--runs`` each.

The phases come from inside the server: lineage ``timings`` of the model each train stored
(``pyml.models.lineage -> 'timings'``). What happens after the lineage is built (the model's
INSERT, the automatic deploy) and the call's round trip are the client's wall time minus the
lineage total ("registry writes").

The goals: the fixed cost around the fit (wall time minus the fit in the child) <= 0.3 s at
100k rows; ``pyml.train`` <= 1.3x the raw fit at 1M rows.
"""

# ruff: noqa: S608  (SQL built from the bench's own table and column names)
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from typing import Any

import numpy as np
import psycopg

from bench import data, pgcopy
from bench.db import Server, connect, loadavg, scalar, start_server

DATABASE = "pyml_bench_train_phases"
FEATURES = 10
SEED = 0.42
HYPERPARAMS = {"n_estimators": 100, "num_leaves": 31}
TEST_SIZE = 0.25
LABEL = (
    "sin(6 * f1) + 2 * f2 * f3 + (f4 > 0.5)::int - f5 * f5 + 0.5 * f6 + 0.3 * f7 * f8"
    " - 0.2 * f9 + 0.1 * f10"
)

# (phase key in lineage timings, row label); the child's keys come from pyml.server.fitting.
ROWS = (
    ("project", "project lookup"),
    ("validate", "validate algorithm and hyperparameters"),
    ("read", "read (SPI)"),
    ("check", "check inputs and labels"),
    ("split", "split"),
    ("statistics", "statistics of the training rows"),
    ("inputs_wait", "wait for the second thread (fingerprint, matrix)"),
    ("beside_fingerprint", "second thread: fingerprint (beside the 3 rows above)"),
    ("beside_convert", "second thread: columns to matrix (beside them)"),
    ("snapshot", "snapshot write"),
    ("imports", "import the ONNX converters (backend, once a session)"),
    ("child_start", "child: fork, until its work starts"),
    ("child_fit", "child: fit"),
    ("child_serialize", "child: serialize"),
    ("child_share", "child: the model through the pipe"),
    ("child", "child until the model is back (wall, the 4 rows above)"),
    ("child_import", "child: converter imports (waited for)"),
    ("child_onnx", "child: ONNX conversion and check (overlaps the next rows)"),
    ("child_send", "child: the ONNX part through the pipe"),
    ("artifacts", "load and validate artifacts"),
    ("evaluate", "evaluate (metrics)"),
    ("baseline", "prediction baseline"),
    ("lineage", "lineage (versions, context)"),
    ("onnx_wait", "wait for the ONNX part"),
    ("registry", "registry writes, deploy, round trip"),
    ("total", "total (client wall)"),
)


def build_table(conn: psycopg.Connection, table: str, rows: int) -> None:
    """``table(id, f1..f10 float8, label float8)``, features uniform in [0, 1), and the view
    ``table_train`` without id."""
    names = ", ".join(f"f{i}" for i in range(1, FEATURES + 1))
    draws = ", ".join(f"random() AS f{i}" for i in range(1, FEATURES + 1))
    conn.execute("SELECT setseed(%s)", (SEED,))
    conn.execute(
        f"CREATE TABLE {table} AS SELECT id, {names},"
        f" ({LABEL} + 0.2 * (random() - 0.5))::float8 AS label"
        f" FROM (SELECT i::bigint AS id, {draws} FROM generate_series(1, {int(rows)}) AS i) s"
    )
    conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
    conn.execute(f"CREATE VIEW {table}_train AS SELECT {names}, label FROM {table}")
    conn.execute(f"VACUUM ANALYZE {table}")


def read_table(conn: psycopg.Connection, table: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels in heap order (the order pyml reads them), by binary COPY."""
    names = ", ".join(f"f{i}" for i in range(1, FEATURES + 1))
    columns = pgcopy.copy_out(
        conn, f"SELECT {names}, label FROM {table}", ["float8"] * (FEATURES + 1)
    )
    return np.ascontiguousarray(np.column_stack(columns[:-1])), columns[-1].copy()


def train_once(
    conn: psycopg.Connection, project: str, table: str, hyperparams: dict[str, Any]
) -> dict[str, float]:
    """One ``pyml.train``; its phases (lineage timings) with the client's wall time."""
    started = time.perf_counter()
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', %s, 'label', 'lightgbm', %s::jsonb,"
        " test_size => %s::real, test_sampling => 'last')",
        (project, f"{table}_train", json.dumps(hyperparams), TEST_SIZE),
    )
    wall = time.perf_counter() - started
    timings = scalar(
        conn,
        "SELECT m.lineage -> 'timings' FROM pyml.models m JOIN pyml.projects p"
        " ON p.id = m.project_id WHERE p.name = %s ORDER BY m.id DESC LIMIT 1",
        (project,),
    )
    phases = {k: float(v) for k, v in timings.items()}
    phases["registry"] = wall - phases["total"]
    phases["total"] = wall
    return phases


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the lowest total."""
    return min(runs, key=lambda r: r["total"])


def raw_params(conn: psycopg.Connection, project: str) -> dict[str, Any]:
    """The hyperparameters pyml recorded for the project's last model."""
    params: dict[str, Any] = scalar(
        conn,
        "SELECT m.hyperparams FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s ORDER BY m.id DESC LIMIT 1",
        (project,),
    )
    return params


def raw_fit(params: dict[str, Any], X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The time of ``LGBMRegressor(**params).fit`` on the training rows, and its
    predictions of the test rows."""
    import lightgbm

    n_test = int(round(TEST_SIZE * len(X)))
    train = slice(0, len(X) - n_test)
    started = time.perf_counter()
    model = lightgbm.LGBMRegressor(**params).fit(X[train], y[train])
    seconds = time.perf_counter() - started
    return seconds, np.asarray(model.predict(X[len(X) - n_test :]), dtype=np.float64)


def measure(server: Server, rows: int, runs: int, hyperparams: dict[str, Any]) -> dict[str, Any]:
    table = f"tp_{rows}"
    project = f"train_phases_{rows}"
    with connect(server.uri) as conn:
        build_table(conn, table, rows)
        X, y = read_table(conn, table)
        train_once(conn, project, table, hyperparams)  # warm-up: imports, plans, caches
        params = raw_params(conn, project)
        raw_fit(params, X, y)  # warm-up of this process's LightGBM
        # pyml.train and the raw fit taken in turns: the machine's speed drifts over a
        # minute by more than the goal's margin, and each pair sees the same
        warm, raws = [], []
        for _ in range(runs):
            warm.append(train_once(conn, project, table, hyperparams))
            seconds, predicted = raw_fit(params, X, y)
            raws.append(seconds)
    cold = []
    for _ in range(runs):
        with connect(server.uri) as conn:
            cold.append(train_once(conn, project, table, hyperparams))
    with connect(server.uri) as conn:
        # The same model: pyml's stored LightGBM text predicts as the raw fit does.
        text = scalar(
            conn,
            "SELECT f.data FROM pyml.files f JOIN pyml.models m ON m.id = f.model_id"
            " JOIN pyml.projects p ON p.id = m.project_id WHERE p.name = %s"
            " AND f.format = 'lightgbm-text' ORDER BY m.id DESC LIMIT 1",
            (project,),
        )
    import lightgbm

    stored = lightgbm.Booster(model_str=bytes(text).decode())
    n_test = len(predicted)
    diff = float(np.max(np.abs(stored.predict(X[len(X) - n_test :]) - predicted)))
    return {
        "rows": rows,
        "warm": best(warm),
        "cold": best(cold),
        "raw_fit": min(raws),
        # each warm pyml.train over the raw fit that followed it
        "paired": sorted(w["total"] / r for w, r in zip(warm, raws, strict=True)),
        # ... the fit in the child over that raw fit, and each run's time around its fit
        "paired_fit": sorted(w["child_fit"] / r for w, r in zip(warm, raws, strict=True)),
        "around": sorted(w["total"] - w["child_fit"] for w in warm),
        "same_model_max_diff": diff,
        # the stored LightGBM text: the same bytes from any version of pyml.train (same data,
        # same seed); compare runs of two versions
        "model_sha256": hashlib.sha256(bytes(text)).hexdigest(),
    }


def table(results: list[dict[str, Any]]) -> str:
    heads = []
    for r in results:
        heads += [f"{r['rows']:,} warm", f"{r['rows']:,} cold"]
    lines = [
        "| phase (s) | " + " | ".join(heads) + " |",
        "|---|" + "---:|" * len(heads),
    ]
    for key, label in ROWS:
        cells = []
        for r in results:
            for kind in ("warm", "cold"):
                value = r[kind].get(key)
                cells.append("" if value is None else f"{value:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    other = []
    for r in results:
        for kind in ("warm", "cold"):  # child_*, beside_*: inside "child" or beside others
            known = sum(
                v
                for k, v in r[kind].items()
                if k != "total" and not k.startswith(("child_", "beside_"))
            )
            known -= sum(r[kind].get(k, 0.0) for k in ("load", "fit", "score"))
            other.append(f"{r[kind]['total'] - known:.3f}")
    lines.append("| not in a phase | " + " | ".join(other) + " |")
    raw = []
    for r in results:
        raw += [f"{r['raw_fit']:.3f}", ""]
    lines.append("| raw `LGBMRegressor.fit` (bench process) | " + " | ".join(raw) + " |")
    return "\n".join(lines)


def goals(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        for kind in ("warm", "cold"):
            p = r[kind]
            fixed = p["total"] - p["child_fit"]
            lines.append(
                f"- {r['rows']:,} rows, {kind}: total {p['total']:.3f} s, fit in the child"
                f" {p['child_fit']:.3f} s, raw fit {r['raw_fit']:.3f} s; fixed cost around the"
                f" fit {fixed:.3f} s (total - raw fit: {p['total'] - r['raw_fit']:.3f} s);"
                f" pyml.train / raw fit = {p['total'] / r['raw_fit']:.2f}x"
            )
        paired = r["paired"]
        lines.append(
            f"- {r['rows']:,} rows, warm pyml.train / the raw fit run after it, per pair:"
            f" median {paired[len(paired) // 2]:.2f}x (from {paired[0]:.2f} to"
            f" {paired[-1]:.2f})"
        )
        fits, around = r["paired_fit"], r["around"]
        lines.append(
            f"- {r['rows']:,} rows, warm, per pair: the fit in the child / the raw fit, median"
            f" {fits[len(fits) // 2]:.3f} (from {fits[0]:.3f} to {fits[-1]:.3f}); the time"
            f" around the fit, median {around[len(around) // 2]:.3f} s (from {around[0]:.3f})"
        )
        lines.append(
            f"- {r['rows']:,} rows: stored model vs raw fit, largest prediction difference"
            f" {r['same_model_max_diff']:.3g}; stored LightGBM text sha256"
            f" {r['model_sha256'][:16]}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="100000,1000000", help="sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per path (best kept)")
    parser.add_argument(
        "--n-jobs",
        type=int,
        help="n_jobs of both fits (default: LightGBM's, every core); 1 is steadier on a"
        " machine shared with other work (OpenMP threads wait for each other)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    hyperparams = {**HYPERPARAMS, **({"n_jobs": args.n_jobs} if args.n_jobs else {})}
    sizes = [int(s) for s in args.rows.split(",") if s]
    server = start_server(DATABASE)
    data.recreate_database(server)
    load_before = os.getloadavg()
    results = [measure(server, n, args.runs, hyperparams) for n in sizes]
    load_after = os.getloadavg()
    print(
        f"pyml.train phases (best of {args.runs}; LightGBM regression, {hyperparams}, "
        f"{FEATURES} float8 features, test_sampling 'last', test_size {TEST_SIZE})"
    )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"(1 min; {os.cpu_count()} cores); now {loadavg():.2f}\n"
    )
    print(table(results))
    print()
    print(goals(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"results": results, "load": [load_before, load_after]}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
