"""The prediction log: what ``pyml.log_predictions`` costs an online ``pyml.predict`` call.

Data: ``pyml.load_dataset('diabetes')`` (442 rows, 10 ``real`` features, shipped with
scikit-learn, nothing downloaded). Models: LightGBM (pyml's defaults) and linear regression,
each trained three times by ``pyml.train(..., test_sampling => 'last')`` on the same rows into
three projects (the same model, so the same predictions): ``bench_log_<model>_off`` (never
logged: the baseline), ``_1pct`` (``sample_rate`` 0.01) and ``_all`` (1.0). The three levels
then run interleaved on one connection instead of one after the other, so load from elsewhere
on the machine hits them alike.

Online (one psycopg connection, prepared statements, every call once per round in a random
order, one row of the table per round, cycled): ``pyml.predict(project, %s::real[])`` of each
project, then in a loop of their own (see PATHS) ``pyml.predict(project, ROW(%s::real, ...))``
of the LightGBM ``off`` and ``all`` projects. Warm-up rounds first, with logging off
everywhere; then logging is switched on by ``pyml.log_predictions`` from a second connection,
while the measured session stays open (it must notice on its next call, through the notice
board), and the measured rounds run. Then
``sample_rate`` 0 from the second connection and ``ZERO_CALLS`` more rounds, none of which
may be logged.

Correctness (an error, not a figure, when wrong): the ``off`` projects log nothing, the
``all`` projects log exactly one row per measured call and path (``features`` a JSON array for
ARRAY calls, an object for ROW calls), the ``1pct`` projects a count within ``SIGMAS``
binomial standard deviations of 1 % (and at least one); the logged predictions and features of
the ``all`` projects are the ones returned and sent, in call order; logging changes no
prediction (every level gives the ``off`` project's values).

Collect: ``pyml.collect_predictions()`` after the measured session closed, timed, with the rows
it moved (every logged call of the run), then a second, empty one; ``count(*)`` of
``pyml.prediction_log`` is timed before (rows read from the spool files) and after (from the
table), and must not change.
"""

# ruff: noqa: S608  (SQL built from the bench's own constant table, column and project names)
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from bench import pgbench
from bench.config import BenchError, Settings
from bench.db import Server, connect, scalar
from bench.online import compare

DATASET = "diabetes"
TABLE = "pyml.diabetes"
LABEL = "target"
MODELS = {"lgbm": "lightgbm", "linear": "linear"}  # key -> pyml algorithm
LEVELS = {"off": None, "1pct": 0.01, "all": 1.0}  # key -> sample_rate (None: never set)
ROW_LEVELS = ("off", "all")  # the ROW path, LightGBM only
# Measured in a loop each, ARRAY calls first. (A ROW call used to predict with LightGBM's
# OpenMP threads and at times took ~6.5 ms on busy cores; it now uses one thread, as ARRAY.)
PATHS = ("array", "row")
WARMUP = 200  # rounds with logging off, before logging is switched on
ZERO_CALLS = 200  # rounds after sample_rate 0: none of them may be logged
SIGMAS = 5.0  # the 1 % count must be within this many binomial standard deviations
SEED = 2025


def project(model: str, level: str) -> str:
    return f"bench_log_{model}_{level}"


@dataclass
class Call:
    name: str  # e.g. lgbm/array/1pct
    model: str
    path: str  # array | row
    level: str
    query: str


@dataclass
class Prepared:
    columns: list[str]  # feature columns, in training order
    rows: list[tuple[float, ...]]  # the table's feature rows, heap order
    projects: dict[str, dict[str, Any]]  # project name -> project_id, model_id, ...
    # filled by online(): what collect() must find
    logged_rows: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)


# -- data and models -------------------------------------------------------------------------


def _train(conn: psycopg.Connection, name: str, algorithm: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    row = conn.execute(
        "SELECT deployed FROM pyml.train(project_name => %s, task => 'regression',"
        " relation_name => %s, y_column_name => %s, algorithm => %s,"
        " test_sampling => 'last')",
        (name, TABLE, LABEL, algorithm),
    ).fetchone()
    seconds = time.perf_counter() - t0
    if not (row and row[0]):
        raise BenchError(f"pyml.train did not deploy the first model of {name}")
    model_id = int(scalar(conn, "SELECT pyml.deployed_model(%s)", (name,)))
    project_id = int(scalar(conn, "SELECT id FROM pyml.projects WHERE name = %s", (name,)))
    return {
        "algorithm": algorithm,
        "project_id": project_id,
        "model_id": model_id,
        "train_seconds": seconds,
    }


def prepare(server: Server, settings: Settings) -> tuple[Prepared, dict[str, Any]]:
    """The dataset table and the six projects; (the state, its figures)."""
    with connect(server.uri) as conn:
        t0 = time.perf_counter()
        if scalar(conn, "SELECT to_regclass(%s)", (TABLE,)) is None:
            conn.execute("SELECT * FROM pyml.load_dataset(%s)", (DATASET,))
        load = time.perf_counter() - t0
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped AND attname <> %s ORDER BY attnum",
                (TABLE, LABEL),
            )
        ]
        rows = [
            tuple(float(v) for v in r)
            for r in conn.execute(f"SELECT {', '.join(columns)} FROM {TABLE} ORDER BY ctid")
        ]
        projects = {
            project(m, lv): _train(conn, project(m, lv), algorithm)
            for m, algorithm in MODELS.items()
            for lv in LEVELS
        }
        for name, p in projects.items():
            names = scalar(
                conn, "SELECT feature_names FROM pyml.models WHERE id = %s", (p["model_id"],)
            )
            if list(names or []) != columns:
                raise BenchError(f"{name}: features {names}, expected {columns}")
    figures = {
        "dataset": DATASET,
        "table": TABLE,
        "rows": len(rows),
        "features": columns,
        "load_seconds": load,
        "projects": projects,
    }
    return Prepared(columns, rows, projects), figures


# -- online ----------------------------------------------------------------------------------


def calls(k: int) -> list[Call]:
    array = "%s::real[]"
    row = "ROW(" + ", ".join(["%s::real"] * k) + ")"
    out = [
        Call(f"{m}/array/{lv}", m, "array", lv, f"SELECT pyml.predict('{project(m, lv)}', {array})")
        for m in MODELS
        for lv in LEVELS
    ]
    out += [
        Call(
            f"lgbm/row/{lv}",
            "lgbm",
            "row",
            lv,
            f"SELECT pyml.predict('{project('lgbm', lv)}', {row})",
        )
        for lv in ROW_LEVELS
    ]
    return out


def _executor(
    cur: psycopg.Cursor[Any], call: Call, rows: list[tuple[float, ...]]
) -> Callable[[int], float]:
    params = [(list(r),) for r in rows] if call.path == "array" else rows

    def run(i: int) -> float:
        cur.execute(call.query, params[i % len(params)], prepare=True)
        return float(cur.fetchone()[0])

    return run


def _set_logging(admin: psycopg.Connection, rate_of: dict[str, float]) -> dict[str, float]:
    """``pyml.log_predictions`` for each project; ms of each call."""
    ms = {}
    for name, rate in rate_of.items():
        t0 = time.perf_counter()
        admin.execute("SELECT pyml.log_predictions(%s, %s::real)", (name, rate))
        ms[name] = (time.perf_counter() - t0) * 1000
    return ms


def _counts(conn: psycopg.Connection) -> dict[tuple[str, str], int]:
    """(project, array | object) -> rows of pyml.prediction_log (collected or spooled)."""
    rows = conn.execute(
        "SELECT p.name, jsonb_typeof(l.features), count(*) FROM pyml.prediction_log l"
        " JOIN pyml.projects p ON p.id = l.project_id GROUP BY 1, 2"
    ).fetchall()
    return {(name, kind): int(n) for name, kind, n in rows}


def _bounds(n: int, rate: float) -> tuple[int, int]:
    mu, sd = n * rate, math.sqrt(n * rate * (1 - rate))
    return max(1, math.floor(mu - SIGMAS * sd)), math.ceil(mu + SIGMAS * sd)


def online(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    n = settings.calls
    every = calls(len(p.columns))
    logged = {
        project(m, lv): rate for m in MODELS for lv, rate in LEVELS.items() if rate is not None
    }
    order = np.random.default_rng(SEED)
    latencies = {c.name: np.empty(n) for c in every}
    values: dict[str, list[float]] = {c.name: [] for c in every}
    first_ms: dict[str, float] = {}
    with connect(server.uri) as admin, connect(server.uri) as conn:
        cur = conn.cursor()
        run = {c.name: _executor(cur, c, p.rows) for c in every}
        for i in range(WARMUP):  # logging off everywhere
            for c in every:
                t0 = time.perf_counter()
                run[c.name](i)
                if i == 0:
                    first_ms[c.name] = (time.perf_counter() - t0) * 1000
        before = _counts(admin)
        if before:
            raise BenchError(
                f"pyml.prediction_log has rows before logging was switched on: {before}"
            )
        switch_on_ms = _set_logging(admin, logged)
        first = None  # the first call after the change: the session notices it
        for path in PATHS:  # a loop each: see PATHS
            group = [c for c in every if c.path == path]
            for i in range(n):
                for j in order.permutation(len(group)):
                    c = group[j]
                    t0 = time.perf_counter()
                    value = run[c.name](i)
                    latencies[c.name][i] = time.perf_counter() - t0
                    values[c.name].append(value)
                    if first is None:
                        first = {"call": c.name, "ms": latencies[c.name][i] * 1000}
        switch_off_ms = _set_logging(admin, dict.fromkeys(logged, 0.0))
        for i in range(n, n + ZERO_CALLS):  # sample_rate 0: nothing more may be logged
            for c in every:
                if c.level != "off":
                    run[c.name](i)
    with connect(server.uri) as conn:
        counts = _counts(conn)
        _check_counts(counts, every, n)
        checks = _check_log(conn, p, every, values, n, settings.tolerance)
    for c in every:  # logging changes no prediction
        if c.level != "off":
            base = f"{c.model}/{c.path}/off"
            checks.append(
                compare(
                    f"logging: {c.name} vs {base} (same model, same rows)",
                    values[c.name],
                    values[base],
                    settings.tolerance,
                )
            )
    out: dict[str, Any] = {}
    for c in every:
        stats = pgbench.latency_stats(latencies[c.name])
        kind = "array" if c.path == "array" else "object"
        out[c.name] = {
            **stats,
            "project": project(c.model, c.level),
            "model": c.model,
            "path": c.path,
            "level": c.level,
            "sample_rate": LEVELS[c.level],
            "query": c.query,
            "first_call_ms": first_ms[c.name],
            "logged_rows": counts.get((project(c.model, c.level), kind), 0),
        }
    for c in every:
        base = out[f"{c.model}/{c.path}/off"]
        o = out[c.name]
        o["ratio"] = {s: o[f"{s}_ms"] / base[f"{s}_ms"] for s in ("mean", "p50", "p99")}
        o["added_mean_us"] = (o["mean_ms"] - base["mean_ms"]) * 1000
    p.logged_rows = sum(counts.values())
    p.counts = {f"{name}/{kind}": v for (name, kind), v in sorted(counts.items())}
    return {
        "calls": out,
        "calls_per_path": n,
        "warmup_rounds": WARMUP,
        "zero_rate_rounds": ZERO_CALLS,
        "log_predictions_ms": {"on": switch_on_ms, "off": switch_off_ms},
        "first_after_change": first,
        "logged": p.counts,
        "order": [c.name for c in every],
        "checks": checks,
    }


def _check_counts(counts: dict[tuple[str, str], int], every: list[Call], n: int) -> None:
    """Rows per project and kind against the calls made; BenchError when any is off."""
    expected: dict[tuple[str, str], tuple[int, int]] = {}
    for c in every:
        rate = LEVELS[c.level]
        kind = "array" if c.path == "array" else "object"
        key = (project(c.model, c.level), kind)
        expected[key] = (0, 0) if rate is None else (n, n) if rate >= 1.0 else _bounds(n, rate)
    wrong = [
        f"{name} ({kind}): {counts.get((name, kind), 0)} rows, expected"
        + (f" {lo}" if lo == hi else f" {lo}..{hi}")
        for (name, kind), (lo, hi) in expected.items()
        if not lo <= counts.get((name, kind), 0) <= hi
    ]
    wrong += [
        f"{name} ({kind}): {v} rows, expected none"
        for (name, kind), v in counts.items()
        if (name, kind) not in expected and name.startswith("bench_log_")
    ]
    if wrong:
        raise BenchError(
            f"pyml.prediction_log after {n} measured calls per path (and"
            f" {ZERO_CALLS} at sample_rate 0): " + "; ".join(wrong)
        )


def _check_log(
    conn: psycopg.Connection,
    p: Prepared,
    every: list[Call],
    values: dict[str, list[float]],
    n: int,
    tolerance: float,
) -> list[dict[str, Any]]:
    """The logged rows of the sample_rate 1 projects: the predictions returned and, for
    ARRAY calls, the features sent, in call order."""
    checks = []
    sent = np.array([p.rows[i % len(p.rows)] for i in range(n)], dtype=np.float64)
    for c in every:
        if c.level != "all":
            continue
        kind = "array" if c.path == "array" else "object"
        rows = conn.execute(
            "SELECT l.features::text, (l.prediction #>> '{}')::float8 FROM pyml.prediction_log l"
            " JOIN pyml.projects p ON p.id = l.project_id"
            " WHERE p.name = %s AND jsonb_typeof(l.features) = %s ORDER BY l.logged_at",
            (project(c.model, c.level), kind),
        ).fetchall()
        checks.append(
            compare(
                f"logging: {c.name}: logged predictions vs returned",
                [r[1] for r in rows],
                values[c.name],
                tolerance,
            )
        )
        if c.path == "array":
            features = np.array([json.loads(r[0]) for r in rows], dtype=np.float64)
            checks.append(
                compare(f"logging: {c.name}: logged features vs sent", features, sent, tolerance)
            )
    return checks


# -- collect ---------------------------------------------------------------------------------


def _timed(conn: psycopg.Connection, query: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    value = int(scalar(conn, query))
    return value, time.perf_counter() - t0


def collect(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    if p.logged_rows is None:
        raise BenchError("no logged calls to collect (see the online section)")
    with connect(server.uri) as conn:
        table_before = int(scalar(conn, "SELECT count(*) FROM pyml.logged_predictions"))
        view_spool, view_spool_s = _timed(conn, "SELECT count(*) FROM pyml.prediction_log")
        moved, seconds = _timed(conn, "SELECT pyml.collect_predictions()")
        table_after = int(scalar(conn, "SELECT count(*) FROM pyml.logged_predictions"))
        view_table, view_table_s = _timed(conn, "SELECT count(*) FROM pyml.prediction_log")
        again, again_s = _timed(conn, "SELECT pyml.collect_predictions()")
    expected = p.logged_rows
    problems = []
    if table_before != 0:
        problems.append(f"pyml.logged_predictions had {table_before} rows before collecting")
    if view_spool != expected:
        problems.append(f"pyml.prediction_log showed {view_spool} rows, expected {expected}")
    if moved != expected or table_after != expected:
        problems.append(
            f"pyml.collect_predictions() returned {moved} and"
            f" pyml.logged_predictions has {table_after} rows, expected {expected}"
        )
    if view_table != expected:
        problems.append(
            f"after collecting, pyml.prediction_log shows {view_table} rows, expected {expected}"
        )
    if again != 0:
        problems.append(f"a second pyml.collect_predictions() moved {again} rows, expected 0")
    if problems:
        raise BenchError("; ".join(problems))
    return {
        "rows": moved,
        "seconds": seconds,
        "rows_per_s": moved / seconds if seconds else None,
        "empty_seconds": again_s,
        "view_count_spooled_seconds": view_spool_s,
        "view_count_table_seconds": view_table_s,
        "checks": [],
    }


# name -> measure(server, settings, prepared); each returns its figures and its correctness
# checks under "checks".
SECTIONS: dict[str, Callable[[Server, Settings, Prepared], dict[str, Any]]] = {
    "online": online,
    "collect": collect,
}


# -- RESULTS.md ------------------------------------------------------------------------------


def _ms(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:,.1f}"


LEVEL_LABEL = {"off": "off (never set)", "1pct": "sample_rate 0.01", "all": "sample_rate 1.0"}


def markdown(r: dict[str, Any]) -> list[str]:
    """The section *Prediction log* of RESULTS.md."""
    lg = r.get("logging")
    if not lg:
        return []
    out = ["## Prediction log (`pyml.log_predictions`)", ""]
    if "rows" in lg:
        models = ", ".join(f"`{k}` ({v['algorithm']})" for k, v in lg["projects"].items())
        out += [
            f"Data: `pyml.load_dataset('{lg['dataset']}')`, {lg['rows']} rows x"
            f" {len(lg['features'])} `real` features. The same model trained into three"
            " projects each (`pyml.train(..., test_sampling => 'last')`), so the logging"
            f" levels interleave on one connection: {models}.",
            "",
        ]
    o = lg.get("online")
    if o:
        out += [
            "Online, one psycopg connection (prepared; `perf_counter` around execute + fetch):"
            " every call once per round in a random order, one row of the table per round; the"
            " ARRAY calls in a loop of their own, then the ROW calls."
            f" {o['warmup_rounds']} warm-up rounds with logging"
            " off, then `pyml.log_predictions` from a second connection while this session"
            f" stays open, then {o['calls_per_path']:,} measured rounds. *x off*: against the"
            " same model and path never logged, measured in the same rounds. *rows logged*:"
            " rows of `pyml.prediction_log` for the measured calls (then"
            f" {o['zero_rate_rounds']} more rounds at `sample_rate` 0, which must add none).",
            "",
        ]
        rows = []
        for name in o["order"]:
            c = o["calls"][name]
            ratio = c["ratio"]
            call = (
                "`predict(p, %s::real[])`"
                if c["path"] == "array"
                else "`predict(p, ROW(%s::real, ...))`"
            )
            rows.append(
                [
                    c["model"],
                    call,
                    LEVEL_LABEL[c["level"]],
                    _ms(c["mean_ms"]),
                    _ms(c["p50_ms"]),
                    _ms(c["p99_ms"]),
                    *(f"{ratio[s]:.3f}" for s in ("mean", "p50", "p99")),
                    f"{c['added_mean_us']:+.1f}",
                    f"{c['logged_rows']:,} of {o['calls_per_path']:,}",
                ]
            )
        out += _table(
            [
                "model",
                "call",
                "logging",
                "mean ms",
                "p50 ms",
                "p99 ms",
                "x off mean",
                "x off p50",
                "x off p99",
                "+ mean µs",
                "rows logged",
            ],
            rows,
        )
        on, first = o["log_predictions_ms"]["on"], o["first_after_change"]
        out += [
            f"`pyml.log_predictions` took {min(on.values()):.2f}–{max(on.values()):.2f} ms"
            f" a call; the first call after it (the session noticing the change):"
            f" {_ms(first['ms'])} ms (`{first['call']}`).",
            "",
        ]
    c = lg.get("collect")
    if c:
        out += [
            "Collecting, once the measured session has closed: every row this part logged"
            " (ARRAY and ROW calls, both rates), from the spool files into"
            " `pyml.logged_predictions`.",
            "",
        ]
        out += _table(
            ["step", "rows", "ms", "rows/s"],
            [
                [
                    "`count(*)` of `pyml.prediction_log` (spooled: read from the files)",
                    f"{c['rows']:,}",
                    _ms(c["view_count_spooled_seconds"] * 1000),
                    "–",
                ],
                [
                    "`pyml.collect_predictions()`",
                    f"{c['rows']:,}",
                    _ms(c["seconds"] * 1000),
                    f"{c['rows_per_s']:,.0f}",
                ],
                [
                    "`count(*)` of `pyml.prediction_log` (collected: the table)",
                    f"{c['rows']:,}",
                    _ms(c["view_count_table_seconds"] * 1000),
                    "–",
                ],
                [
                    "`pyml.collect_predictions()` again (nothing left)",
                    "0",
                    _ms(c["empty_seconds"] * 1000),
                    "–",
                ],
            ],
        )
    return out


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]
