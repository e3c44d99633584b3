"""The benchmark: ``python -m bench.run [--quick]`` (or ``make bench [BENCH_ARGS=--quick]``).

Starts (or reuses) the checkout's server, recreates database ``pyml_bench``, trains the models
with ``pyml.train``, measures online, HTTP, batch, training, cold start, memory and streaming,
checks that every path gives the raw model's numbers, and writes bench/RESULTS.md and
bench/results.json. Only pyml's public SQL API is used (but for the preprocessing and drift
parts, which load the exported model with ``pyml.core.artifacts.load`` in this process; the drift
part also runs ``pyml.drift``'s statistics functions here).

``--only streaming`` (or ``--only preprocessing``, ``logging``, ``drift``, ``training``,
``onnx``, ``serve``, ``batch``) runs
one part (with the tables and the models it needs) and writes its results to
/tmp/pyml-bench-PART unless ``--output`` says elsewhere (never to bench/).

A measurement that fails (an error from pyml, or predictions that disagree with the raw model)
is reported under *Errors*, the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench import (
    batch,
    coldstart,
    config,
    data,
    db,
    drift_speed,
    goals,
    http_bench,
    logging_cost,
    machine,
    memory,
    model_service,
    models,
    online,
    onnx_serving,
    preprocessing,
    report,
    streaming,
    training,
)
from bench.config import BENCH_DIR, DATABASE, LGBM, MODELS, RF

# parts that --only can run on their own
ONLY = ("streaming", "preprocessing", "logging", "drift", "training", "onnx", "serve", "batch")


class Sections:
    """Times each section; an exception ends the section, is recorded, and the run goes on."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.load: dict[str, float] = {}  # 1-minute load average at the end of each section

    @contextmanager
    def __call__(self, name: str, required: bool = False) -> Iterator[None]:
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            yield
        except Exception as exc:
            if required:
                raise
            self.errors[name] = f"{type(exc).__name__}: {exc}".strip()
            print(f"[bench] {name}: FAILED\n{traceback.format_exc()}", file=sys.stderr)
        finally:
            self.seconds[name] = time.perf_counter() - t0
            self.load[name] = db.loadavg()
            print(f"[bench] {name}: {self.seconds[name]:.1f}s", flush=True)


def set_rows(settings: config.Settings, spec: config.ModelSpec) -> int:
    """Rows of the per-row set query: all, but a prefix for the (slow per row) random forest."""
    return settings.rf_set_rows if spec.algorithm == "random_forest" else settings.rows


def bench(
    settings: config.Settings, command: str, only: str | None = None, database: str = DATABASE
) -> dict[str, Any]:
    started = time.perf_counter()
    section = Sections()
    warnings: list[str] = []
    checks: list[dict[str, Any]] = []
    measure: Callable[..., dict[str, Any]]  # each part's SECTIONS take that part's arguments
    r: dict[str, Any] = {
        "mode": "quick" if settings.quick else "full",
        "command": command,
        "settings": asdict(settings),
        "load": {"before": db.loadavg()},
        "online": {},
        "batch": {},
        "only": only,
        "database": database,
    }
    # the generic tables and models each part needs (the preprocessing part makes its own)
    tables = {
        None: (("t10", 10), ("t50", 50)),
        "streaming": (("t10", 10),),
        "onnx": (("t10", 10),),
        "serve": (("t10", 10),),
        "batch": (("t10", 10),),
    }.get(only, ())
    specs = {
        None: MODELS,
        "streaming": (LGBM,),
        "onnx": (RF,),
        "serve": (LGBM,),
        "batch": (LGBM,),
    }.get(only, ())
    with section("server", required=True):
        server = db.start_server(database)
    with section("data", required=True):
        data.recreate_database(server)
        with db.connect(server.uri) as conn:
            for table, k in tables:
                data.build_table(conn, table, settings.rows, k)
    with section("read data into numpy", required=True), db.connect(server.uri) as conn:
        r["machine"] = machine.describe(conn)
        busy = db.other_activity(conn)
        if busy:
            warnings.append("other sessions were active on the server at start: " + ", ".join(busy))
        ids, X, y = {}, {}, {}
        for table, k in tables:
            ids[k], X[k] = data.read_features(conn, table, k)
            y[k] = data.read_labels(conn, table)
    sample = data.sample_ids(settings.rows, settings.sample_rows) - 1
    trained: list[models.Trained] = []
    with section("training", required=True), db.connect(server.uri) as conn:
        for spec in specs:
            t = models.train(conn, spec, settings.rows)
            if only == "onnx":  # the forest is served, not timed against a raw fit
                trained.append(t)
                continue
            models.raw_fit(t, X[spec.features], y[spec.features], sample)
            repeats = settings.train_repeats if only is None else 1
            for _ in range(repeats - 1):  # best of n: load spikes hit OpenMP
                models.retrain(conn, t)
                models.raw_fit(t, X[spec.features], y[spec.features], sample)
            trained.append(t)
    r["models"] = {
        t.spec.key: {
            "label": t.spec.label,
            "project": t.spec.project,
            "features": t.spec.features,
            "algorithm": t.spec.algorithm,
            "hyperparams": t.spec.hyperparams,
            "hyperparams_used": t.hyperparams,
            "model_id": t.model_id,
            "format": t.format,
            "train_rows": t.train_rows,
            "train_seconds": t.train_seconds,
            "train_runs": t.train_runs,
            "raw_fit_runs": t.raw_fit_runs,
            "pyml_fit_seconds": t.pyml_fit_seconds,
            "raw_fit_seconds": t.raw_fit_seconds,
            "raw_reproduces": t.raw_reproduces,
            "notices": t.notices,
        }
        for t in trained
    }
    lgbm = next((t for t in trained if t.spec is LGBM), None)
    rng = np.random.default_rng(3)
    features = {k: X[k][rng.permutation(len(X[k]))[: max(settings.calls, 1000)]] for k in X}

    if only is None:
        cold = {"select1": 0.05}  # seconds of a first call, for pgbench's warm-up allowance
        with section("cold start"):
            r["cold_start"] = coldstart.run(server.uri, trained, features, settings.cold_sessions)
            cold.update({k: c["first_call_ms_max"] / 1000 for k, c in r["cold_start"].items()})
        with section("online: pgbench, one client"):
            r["online"]["pgbench"] = online.single_client_pgbench(server, settings, trained, cold)
        with section("online: psycopg, one client"):
            ps = online.single_client_psycopg(server, settings, trained, features)
            checks += [o.pop("check") for o in ps.values() if "check" in o]
            r["online"]["psycopg"] = ps
        with section("throughput: pgbench"):
            r["throughput"] = online.throughput_pgbench(server, settings, lgbm, cold)
        with section("HTTP microservice"):
            http = http_bench.run(server.uri, LGBM.project, settings, features[LGBM.features])
            checks.append(
                online.compare(
                    "lgbm: HTTP microservice vs raw predict",
                    np.asarray(http.pop("values")[:50]),
                    models.predict_raw(lgbm, features[LGBM.features][:50]),
                    settings.tolerance,
                )
            )
            http["model"] = LGBM.key
            r["http"] = http
    if only in (None, "serve"):
        with section("model service: pyml serve, FastAPI, SQL"):
            service = model_service.run(server, settings, lgbm, features[LGBM.features])
            checks += service.pop("checks")
            r["serve"] = service
    if only in (None, "batch"):
        for t in trained:
            k = t.spec.features
            with section(f"batch: {t.spec.key}"):
                b = batch.run(server.uri, settings, t, ids[k], X[k], set_rows(settings, t.spec))
                checks += b.pop("checks")
                r["batch"][t.spec.key] = b
    if only is None:
        with section("memory"):
            mem = memory.run(server, settings, lgbm, features[10][0].tolist())
            checks.append(mem.pop("check"))
            mem["model"] = LGBM.key
            mem["reference"] = r["batch"].get(LGBM.key, {}).get("predict_into")
            r["memory"] = mem
    if only in (None, "preprocessing"):
        r["preprocessing"] = {}
        prepared = None
        with section("preprocessing: data and models"):
            prepared, figures = preprocessing.prepare(server, settings)
            r["preprocessing"].update(figures)
        for name, measure in preprocessing.SECTIONS.items():
            with section(f"preprocessing: {name}"):
                if prepared is None:
                    raise config.BenchError("no data or models (see the section before)")
                result = measure(server, settings, prepared)
                checks += result.pop("checks")
                r["preprocessing"][name] = result
        del prepared  # the table's rows, in memory
    if only in (None, "logging"):
        r["logging"] = {}
        logged = None
        with section("prediction log: data and models"):
            logged, figures = logging_cost.prepare(server, settings)
            r["logging"].update(figures)
        for name, measure in logging_cost.SECTIONS.items():
            with section(f"prediction log: {name}"):
                if logged is None:
                    raise config.BenchError("no data or models (see the section before)")
                result = measure(server, settings, logged)
                checks += result.pop("checks")
                r["logging"][name] = result
    if only in (None, "drift"):
        r["drift"] = {}
        drifting = None
        with section("drift: data and models"):
            drifting, figures = drift_speed.prepare(server, settings)
            r["drift"].update(figures)
        for name, measure in drift_speed.SECTIONS.items():
            with section(f"drift: {name}"):
                if drifting is None:
                    raise config.BenchError("no data or models (see the section before)")
                result = measure(server, settings, drifting)
                checks += result.pop("checks")
                r["drift"][name] = result
        del drifting  # the new rows, in memory
    if only in (None, "training"):
        r["training"] = {}
        fitting = None
        with section("training in a child process: data"):
            fitting, figures = training.prepare(server, settings)
            r["training"].update(figures)
        for name, measure in training.SECTIONS.items():
            with section(f"training in a child process: {name}"):
                if fitting is None:
                    raise config.BenchError("no data (see the section before)")
                result = measure(server, settings, fitting)
                checks += result.pop("checks")
                r["training"][name] = result
        del fitting  # the tables' rows, in memory
    if only in (None, "onnx"):
        r["onnx"] = {}
        served = None
        with section("onnx: data and models"):
            rf = next(t for t in trained if t.spec is RF)
            served, figures = onnx_serving.prepare(server, settings, rf, X[RF.features])
            r["onnx"]["data and models"] = figures
        for name, measure in onnx_serving.SECTIONS.items():
            with section(f"onnx: {name}"):
                if served is None:
                    raise config.BenchError("no data or models (see the section before)")
                result = measure(server, settings, served)
                checks += result.pop("checks")
                r["onnx"][name] = result
        del served
    # Before streaming: its 100 idle listeners load the machine themselves (see phase_load).
    r["load"]["after"] = db.loadavg()
    if only in (None, "streaming"):
        r["streaming"] = {"model": LGBM.key}
        for name, measure in streaming.SECTIONS.items():
            with section(f"streaming: {name}"):
                result = measure(server, settings, lgbm, X[LGBM.features])
                checks += result.pop("checks")
                r["streaming"][name] = result
    r["checks"] = checks
    r["errors"] = section.errors
    r["phases"] = section.seconds
    r["phase_load"] = section.load
    if max(r["load"].values()) > 1.0:
        warnings.append(
            f"load average {r['load']['before']:.2f} before and {r['load']['after']:.2f} after:"
            " other work shared the cores, so timings are noisier than on an idle machine"
        )
    r["warnings"] = warnings
    r["total_seconds"] = time.perf_counter() - started
    r["goals"] = goals.evaluate(r, only)
    return r


def _database_name(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name) or name in ("postgres", "pyml"):
        raise argparse.ArgumentTypeError(f"not a bench database name: {name!r}")
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="100k rows, short runs (also: PYML_BENCH_QUICK=1)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="directory for RESULTS.md and results.json (default: bench/;"
        " with --only: /tmp/pyml-bench-PART)",
    )
    parser.add_argument(
        "--only", choices=ONLY, help="only this part, with the data and model it needs"
    )
    parser.add_argument(
        "--database",
        default=DATABASE,
        type=_database_name,
        help=f"the database to recreate and use (default: {DATABASE})",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="RESULTS_JSON",
        help="only rewrite RESULTS.md from an earlier results.json",
    )
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = BENCH_DIR if args.only is None else Path(f"/tmp/pyml-bench-{args.only}")
    if args.only and args.output.resolve() == BENCH_DIR:
        parser.error("--only writes partial results: give an --output other than bench/")
    if args.from_json:
        report.write(json.loads(args.from_json.read_text()), args.output)
        return 0
    quick = args.quick or config.quick_from_env()
    flags = " ".join(
        ["--quick"] * args.quick
        + [f"--only {args.only}"] * bool(args.only)
        + [f"--database {args.database}"] * (args.database != DATABASE)
    )
    if "MAKELEVEL" in os.environ:
        command = "make bench" + (
            f" BENCH_ARGS={flags!r}" if " " in flags else f" BENCH_ARGS={flags}" if flags else ""
        )
    else:
        entry = "python bench/run.py" if __package__ in (None, "") else "python -m bench.run"
        command = entry + (f" {flags}" if flags else "")
    if quick and not args.quick:
        command = f"{config.QUICK_ENV}=1 {command}"
    try:
        results = bench(config.settings(quick), command, args.only, args.database)
    except Exception:
        traceback.print_exc()
        print("[bench] FAILED before anything could be measured", file=sys.stderr)
        return 1
    args.output.mkdir(parents=True, exist_ok=True)
    report.write(results, args.output)
    met = sum(1 for g in results["goals"] if g["met"])
    print(
        f"[bench] done in {results['total_seconds'] / 60:.1f} min; {met} of"
        f" {len(results['goals'])} goals met; wrote {args.output}/RESULTS.md",
        flush=True,
    )
    for name, error in results["errors"].items():
        print(f"[bench] FAILED: {name}: {error.splitlines()[0]}", file=sys.stderr)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
