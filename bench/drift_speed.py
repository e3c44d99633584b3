"""Drift: how fast ``pyml.drift`` compares a million new rows with what a model trained on.

Data, made in SQL (``generate_series``, ``setseed``; nothing downloaded): ``drift_train``
(200k rows; 50k with ``--quick``) and the new rows ``drift_new_100k`` and, in full mode,
``drift_new_1m``: id bigint, six numbers (a real ~ N(0, 1); b float8 lognormal, ~5 % NULL;
cnt int 0..100; u float8 uniform; w real uniform, ~10 % NULL; k int, geometric), two text
categories (cat1: 5 values, ~3 % NULL; cat2: 20 values) and the label y (float8, a function
of every feature plus noise). The new rows come from the same distributions but for SHIFTED:
a moved by one standard deviation, cat2's shares skewed towards its first values.

Models (LightGBM, pyml's defaults, ``test_sampling => 'last'``, so the training rows are the
first 75 % of ``drift_train`` in heap order, ``synchronize_seqscans`` being off):
``bench_drift`` on the 8 features, with PREPROCESS (the categories ``native``; b and w are
imputed, as a column with NULLs must be), and ``bench_drift_num`` on the six numbers alone
(NUM_PREPROCESS): what the categories cost.

Timed, per table of new rows, in rounds (every path once per round, in a random order, after
one warm-up call each; median and min of the rounds):

- ``SELECT * FROM pyml.drift(project, table)`` of both projects, each on a connection of its
  own (the warm-up is the session's first call: boot and model load; its time is reported).
- the Python client doing the same work itself, on a third connection: the new rows' numbers
  by binary COPY (``coalesce(x::float8, 'NaN')``, decoded by numpy in bulk) and their
  categories by a text COPY (split in bulk), so two scans; the training table the same way
  (the client has no stored statistics: it reads the training rows every time); then, per
  number, PSI on the training deciles (NULL a bin of its own, as pyml) and
  ``scipy.stats.ks_2samp``, per category PSI and ``scipy.spatial.distance.jensenshannon``
  (base 2), and the model exported from ``pyml.files`` (``bench.preprocessing.export``: the
  skops ColumnTransformer and ``lightgbm.Booster(model_str=...)``) predicting the new rows and
  the training table's test rows, compared the same way (``__prediction__``). Each phase is
  timed too.
- floors on that connection: ``SELECT count(*)``, a count of each of the 8 columns, and the
  query pyml reads the columns with (one ``array_agg`` per column: ``array_send`` of float8
  for numbers, text for categories) once aggregated in the server with nothing sent back
  (``length``/``cardinality`` of each array) and once into PL/Python (``bench_drift_read``, a
  PL/Python function of this part that runs the query with ``plpy.execute``).

Where pyml's time goes: the read into PL/Python (above), the statistics computed by pyml's
own functions (``pyml.core.statistics.numeric_drift`` / ``categorical_drift``, pure numpy)
on the same values in this process, and the client's phases that do what pyml does to predict
(the object input matrix, the exported ColumnTransformer's transform, ``Booster.predict``);
the rest of ``pyml.drift`` is the difference. This part imports
``pyml.drift`` and (through ``bench.preprocessing.export``) ``pyml.core.artifacts``.

Correctness (an error, not a figure, when wrong), on the largest table: every value pyml.drift
returns for a feature equals pyml's functions run in this process on the client's values
(1e-9), and the ``__prediction__`` values within 1e-6 (predictions from the exported model);
pyml's KS of every number (and of the predictions) is within KS_TOLERANCE of
``ks_2samp`` against the training rows (pyml measures against 101 training percentiles of a
sample, so not exactly); the features pyml marks drifted are exactly SHIFTED, plus
``__prediction__`` when the client's own statistics of the predictions exceed pyml's
thresholds, and the client marks the same set. ``ks_2samp`` against the whole training table
(test rows included) is reported, not checked. The backend's peak RSS (VmHWM) of the pyml.drift
sessions is reported when /proc is readable.
"""

# ruff: noqa: S608  (SQL built from the bench's own constant table, column and project names)
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from bench import pgcopy
from bench.config import TEST_SIZE, BenchError, Settings
from bench.db import Server, connect, scalar
from bench.preprocessing import Exported, export

PROJECT = "bench_drift"
NUM_PROJECT = "bench_drift_num"
TRAIN = "drift_train"
TRAIN_VIEW, NUM_VIEW = "drift_train_v", "drift_train_num_v"  # without id
NUMBERS = ("a", "b", "cnt", "u", "w", "k")
CATEGORIES = ("cat1", "cat2")
FEATURES = NUMBERS + CATEGORIES  # training order
LABEL = "y"
SHIFTED = ("a", "cat2")
PREDICTION = "__prediction__"
PREPROCESS = {
    "cat1": {"encode": "native"},
    "cat2": {"encode": "native"},
    "b": {"impute": "median"},
    "w": {"impute": "median"},
}
NUM_PREPROCESS = {"b": {"impute": "median"}, "w": {"impute": "median"}}
# pyml's thresholds (README, Monitoring): a value above them drifted
PSI_THRESHOLD, KS_THRESHOLD, JS_THRESHOLD = 0.2, 0.1, 0.1
EMPTY_SHARE = 1e-4  # a PSI bin empty on one side counts as this share (as pyml)
KS_TOLERANCE = 0.02
EXACT, PREDICTION_TOLERANCE = 1e-9, 1e-6
SEED = 2026
DRIFT = "SELECT feature, metric, value, threshold, drifted FROM pyml.drift(%s, %s)"
READ_FUNCTION = (
    "CREATE OR REPLACE FUNCTION bench_drift_read(query text) RETURNS bigint"
    " LANGUAGE plpython3u AS $$ return plpy.execute(query)[0]['n'] $$"
)


@dataclass(frozen=True)
class Sizes:
    train_rows: int
    new_rows: tuple[int, ...]
    rounds: int


def sizes(settings: Settings) -> Sizes:
    if settings.quick:
        return Sizes(50_000, (100_000,), 3)
    return Sizes(200_000, (100_000, 1_000_000), 5)


def table(rows: int) -> str:
    return f"drift_new_{rows // 1_000_000}m" if rows >= 1_000_000 else f"drift_new_{rows // 1000}k"


# -- data and models -------------------------------------------------------------------------


def _build(
    conn: psycopg.Connection, name: str, rows: int, shift: float, skew: float, seed: float
) -> float:
    """``name`` made by generate_series; a shifted by ``shift``, cat2's shares skewed by the
    power ``skew`` (1: uniform). Seconds taken."""
    t0 = time.perf_counter()
    conn.execute("SELECT setseed(%s)", (seed,))
    conn.execute(f"DROP TABLE IF EXISTS {name} CASCADE")
    conn.execute(
        f"CREATE TABLE {name} AS SELECT i AS id, a, b, cnt, u, w, k, cat1, cat2,"
        " (2 * a + ln(1 + coalesce(b, 1)) + 0.02 * cnt + sin(6 * u) + 0.3 * coalesce(w, 5)"
        "  + 0.1 * k + CASE cat1 WHEN 'c1' THEN 1 WHEN 'c2' THEN -1 ELSE 0 END"
        "  + 0.05 * substr(cat2, 2)::int + 0.3 * (random() - 0.5))::float8 AS y"
        " FROM (SELECT i::bigint AS i,"
        f"  (sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) + {float(shift)})::real AS a,"
        "  CASE WHEN random() < 0.05 THEN NULL ELSE exp(random() * 2) END::float8 AS b,"
        "  (random() * 100)::int AS cnt,"
        "  random()::float8 AS u,"
        "  CASE WHEN random() < 0.10 THEN NULL ELSE (random() * 10)::real END AS w,"
        "  floor(-ln(1 - random()) * 3)::int AS k,"
        "  CASE WHEN random() < 0.03 THEN NULL ELSE"
        "   (ARRAY['c1', 'c2', 'c3', 'c4', 'c5'])[1 + floor(power(random(), 1.5) * 5)::int]"
        "  END AS cat1,"
        f"  'k' || (1 + floor(power(random(), {float(skew)}) * 20)::int) AS cat2"
        f" FROM generate_series(1, {int(rows)}) AS i) AS s"
    )
    conn.execute(f"VACUUM ANALYZE {name}")
    return time.perf_counter() - t0


def _train(
    conn: psycopg.Connection,
    project: str,
    view: str,
    preprocess: dict[str, Any],
    features: tuple[str, ...],
) -> dict[str, Any]:
    t0 = time.perf_counter()
    row = conn.execute(
        "SELECT deployed FROM pyml.train(project_name => %s, task => 'regression',"
        " relation_name => %s, y_column_name => %s, algorithm => 'lightgbm',"
        " test_sampling => 'last', preprocess => %s::jsonb)",
        (project, view, LABEL, json.dumps(preprocess)),
    ).fetchone()
    seconds = time.perf_counter() - t0
    if not (row and row[0]):
        raise BenchError(f"pyml.train did not deploy the first model of {project}")
    model_id = int(scalar(conn, "SELECT pyml.deployed_model(%s)", (project,)))
    names, metrics = conn.execute(
        "SELECT feature_names, metrics FROM pyml.models WHERE id = %s", (model_id,)
    ).fetchone()
    if list(names or []) != list(features):
        raise BenchError(f"{project}: features {names}, expected {list(features)}")
    return {
        "project": project,
        "view": view,
        "model_id": model_id,
        "train_seconds": seconds,
        "preprocess": preprocess,
        "r2": (metrics or {}).get("r2"),
    }


@dataclass
class Prepared:
    sizes: Sizes
    model: Exported  # bench_drift, exported
    stored: dict[str, Any]  # feature (and PREDICTION) -> pyml's training statistics
    # filled by speed(), for the largest table: what correctness() compares
    last: dict[str, Any] = field(default_factory=dict)


def prepare(server: Server, settings: Settings) -> tuple[Prepared, dict[str, Any]]:
    """Tables and both projects; (the state, its figures)."""
    s = sizes(settings)
    with connect(server.uri) as conn:
        built = {TRAIN: _build(conn, TRAIN, s.train_rows, 0.0, 1.0, 0.11)}
        for i, n in enumerate(s.new_rows):
            built[table(n)] = _build(conn, table(n), n, 1.0, 2.0, 0.21 + i / 100)
        conn.execute(
            f"CREATE OR REPLACE VIEW {TRAIN_VIEW} AS SELECT"
            f" {', '.join(FEATURES)}, {LABEL} FROM {TRAIN}"
        )
        conn.execute(
            f"CREATE OR REPLACE VIEW {NUM_VIEW} AS SELECT"
            f" {', '.join(NUMBERS)}, {LABEL} FROM {TRAIN}"
        )
        conn.execute(READ_FUNCTION)
        models = {
            "full": _train(conn, PROJECT, TRAIN_VIEW, PREPROCESS, FEATURES),
            "numbers": _train(conn, NUM_PROJECT, NUM_VIEW, NUM_PREPROCESS, NUMBERS),
        }
        model = export(conn, PROJECT)
        if model.preprocessor is None:
            raise BenchError(f"{PROJECT}: no skops-preprocessor part in pyml.files")
        columns, baseline = conn.execute(
            "SELECT s.columns, m.baseline FROM pyml.models m"
            " JOIN pyml.snapshots s ON s.id = m.snapshot_id WHERE m.id = %s",
            (model.model_id,),
        ).fetchone()
    stored = {c["name"]: c for c in columns if c.get("role") == "feature"}
    if list(stored) != list(FEATURES) or baseline is None:
        raise BenchError(
            f"{PROJECT}: training statistics of {list(stored)} (expected"
            f" {list(FEATURES)}), prediction baseline {baseline is not None}"
        )
    stored[PREDICTION] = baseline
    figures = {
        "train_rows": s.train_rows,
        "test_rows": int(round(TEST_SIZE * s.train_rows)),
        "new_rows": list(s.new_rows),
        "tables": {TRAIN: s.train_rows, **{table(n): n for n in s.new_rows}},
        "build_seconds": built,
        "rounds": s.rounds,
        "models": models,
        "formats": model.formats,
        "shifted": list(SHIFTED),
        "seed": SEED,
    }
    return Prepared(s, model, stored), figures


# -- the Python client -----------------------------------------------------------------------


def _numbers(
    conn: psycopg.Connection, relation: str, columns: tuple[str, ...], ids: bool = False
) -> list[np.ndarray]:
    """Binary COPY of the columns as float8 (NaN for NULL), decoded by numpy in bulk."""
    select = [f"coalesce({c}::float8, 'NaN')" for c in columns]
    return pgcopy.copy_out(
        conn,
        f"SELECT {', '.join(['id'] * ids + select)} FROM {relation}",
        ["int8"] * ids + ["float8"] * len(columns),
    )


def _texts(
    conn: psycopg.Connection, relation: str, columns: tuple[str, ...]
) -> list[list[str | None]]:
    """Text COPY of the (plain, tab-free) text columns, split in bulk; None for NULL."""
    buf = bytearray()
    with conn.cursor().copy(
        f"COPY (SELECT {', '.join(columns)} FROM {relation}) TO STDOUT"
    ) as copy:
        for block in copy:
            buf += block
    flat = buf.decode().replace("\t", "\n").split("\n")[:-1]
    k = len(columns)
    return [[None if v == r"\N" else v for v in flat[j::k]] for j in range(k)]


def _matrix(numbers: list[np.ndarray], texts: list[list[str | None]]) -> np.ndarray:
    """The model's inputs, FEATURES order: an object matrix, numbers as floats (NaN = NULL)."""
    n = len(numbers[0])
    X = np.empty((n, len(FEATURES)), dtype=object)
    X[:, : len(NUMBERS)] = np.column_stack(numbers)
    for j, values in enumerate(texts):
        X[:, len(NUMBERS) + j] = values
    return X


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / expected.sum(), EMPTY_SHARE)
    a = np.maximum(actual / actual.sum(), EMPTY_SHARE)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric(train: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    """(PSI on the training deciles, NULL a bin; KS of scipy.stats.ks_2samp)."""
    from scipy.stats import ks_2samp

    old, now = train[~np.isnan(train)], new[~np.isnan(new)]
    edges = np.unique(np.quantile(old, np.linspace(0.1, 0.9, 9)))

    def counts(present: np.ndarray, total: int) -> np.ndarray:
        bins = np.bincount(np.searchsorted(edges, present, side="left"), minlength=edges.size + 1)
        return np.append(bins, total - present.size).astype(np.float64)

    psi = _psi(counts(old, train.size), counts(now, new.size))
    return psi, float(ks_2samp(old, now).statistic)


def _categorical(train: list[str | None], new: list[str | None]) -> tuple[float, float]:
    """(PSI over the categories and NULL, Jensen-Shannon distance base 2)."""
    from scipy.spatial.distance import jensenshannon

    old, now = Counter(train), Counter(new)
    keys = sorted(set(old) | set(now), key=lambda v: (v is None, v or ""))
    e = np.array([old.get(v, 0) for v in keys], dtype=np.float64)
    a = np.array([now.get(v, 0) for v in keys], dtype=np.float64)
    return _psi(e, a), float(jensenshannon(e, a, base=2.0))


@dataclass
class ClientRun:
    phases: dict[str, float]  # seconds of each phase
    values: dict[tuple[str, str], float]  # (feature, metric) -> value
    new: tuple[list[np.ndarray], list[list[str | None]]]  # the new rows as read
    train: tuple[list[np.ndarray], list[list[str | None]]]  # the training table's rows
    cut: int  # training rows are [:cut], test rows [cut:]
    predictions: np.ndarray  # of the new rows


def client(conn: psycopg.Connection, model: Exported, relation: str) -> ClientRun:
    """Everything pyml.drift does, done by a Python client; each phase timed."""
    phases: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        phases[name] = now - t
        t = now

    new = (_numbers(conn, relation, NUMBERS), _texts(conn, relation, CATEGORIES))
    lap("read_new")
    ids, *numbers = _numbers(conn, TRAIN, NUMBERS, ids=True)
    train = (numbers, _texts(conn, TRAIN, CATEGORIES))
    lap("read_train")
    if len(ids) > 1 and (np.diff(ids) <= 0).any():
        raise BenchError(f"{TRAIN} was not read in id order: pyml's 'last' split is unknown")
    n = len(ids)
    cut = n - int(round(TEST_SIZE * n))
    values: dict[tuple[str, str], float] = {}
    for j, name in enumerate(NUMBERS):
        values[(name, "psi")], values[(name, "ks")] = _numeric(train[0][j][:cut], new[0][j])
    for j, name in enumerate(CATEGORIES):
        values[(name, "psi")], values[(name, "js")] = _categorical(train[1][j][:cut], new[1][j])
    lap("statistics")
    X = _matrix(*new)
    lap("inputs_new")
    features = model.features(X)  # ColumnTransformer.transform
    lap("transform_new")
    predictions = np.asarray(model.booster.predict(features), dtype=np.float64)
    lap("predict_new")
    test = model.predict(_matrix([v[cut:] for v in train[0]], [v[cut:] for v in train[1]]))
    lap("predict_test")
    values[(PREDICTION, "psi")], values[(PREDICTION, "ks")] = _numeric(test, predictions)
    lap("prediction_statistics")
    return ClientRun(phases, values, new, train, cut, predictions)


# -- speed -----------------------------------------------------------------------------------


def _read_query(relation: str, server_side: bool) -> str:
    """The query pyml.drift reads the columns with; ``server_side``: aggregated, nothing sent."""
    select = ["count(*) AS n"]
    for i, c in enumerate(NUMBERS):
        agg = f"array_send(array_agg(coalesce({c}::float8, 'NaN')))"
        select.append(f"length({agg})" if server_side else f"{agg} AS f{i}")
    for i, c in enumerate(CATEGORIES):
        select.append(f"cardinality(array_agg({c}))" if server_side else f"array_agg({c}) AS l{i}")
    return f"SELECT {', '.join(select)} FROM {relation}"


def _floors(relation: str) -> dict[str, tuple[str, tuple[Any, ...]]]:
    return {
        "count": (f"SELECT count(*) FROM {relation}", ()),
        "scan_columns": (
            "SELECT " + ", ".join(f"count({c})" for c in FEATURES) + f" FROM {relation}",
            (),
        ),
        "read_in_server": (_read_query(relation, True), ()),
        "read_plpython": ("SELECT bench_drift_read(%s)", (_read_query(relation, False),)),
    }


def _parallel(conn: psycopg.Connection, query: str, params: tuple[Any, ...]) -> bool:
    plan = json.dumps(conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()[0])
    return '"Gather' in plan


def _peak_rss_mb(conn: psycopg.Connection) -> float | None:
    """VmHWM of the connection's backend (the server runs on this machine)."""
    pid = int(scalar(conn, "SELECT pg_backend_pid()"))
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _stats(seconds: list[float], rows: int) -> dict[str, Any]:
    median = float(np.median(seconds))
    return {
        "median_s": median,
        "min_s": float(min(seconds)),
        "max_s": float(max(seconds)),
        "runs": len(seconds),
        "rows_per_s": rows / median if median else None,
        "seconds": seconds,
    }


def _pyml(conn: psycopg.Connection, project: str, relation: str) -> Callable[[], Any]:
    def call() -> list[tuple[Any, ...]]:
        return conn.execute(DRIFT, (project, relation)).fetchall()

    return call


def _measure_size(
    server: Server, p: Prepared, rows: int, rng: np.random.Generator
) -> dict[str, Any]:
    relation = table(rows)
    with connect(server.uri) as full, connect(server.uri) as numbers, connect(server.uri) as conn:
        floors = _floors(relation)

        def fetch(query: str, params: tuple[Any, ...]) -> Callable[[], Any]:
            return lambda: conn.execute(query, params).fetchall()

        paths: dict[str, Callable[[], Any]] = {
            "pyml": _pyml(full, PROJECT, relation),
            "pyml_numbers": _pyml(numbers, NUM_PROJECT, relation),
            "client": lambda: client(conn, p.model, relation),
            **{name: fetch(q, a) for name, (q, a) in floors.items()},
        }
        first: dict[str, float] = {}
        for name, call in paths.items():  # warm-up: the pyml sessions' first calls
            t0 = time.perf_counter()
            call()
            first[name] = time.perf_counter() - t0
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        phases: dict[str, list[float]] = {}
        last: dict[str, Any] = {}
        names = list(paths)
        for _ in range(p.sizes.rounds):
            for j in rng.permutation(len(names)):
                name = names[j]
                t0 = time.perf_counter()
                value = paths[name]()
                seconds[name].append(time.perf_counter() - t0)
                last[name] = value
                if name == "client":
                    for phase, s in value.phases.items():
                        phases.setdefault(phase, []).append(s)
        parallel = {name: _parallel(conn, q, a) for name, (q, a) in floors.items()}
        peak = {"pyml": _peak_rss_mb(full), "pyml_numbers": _peak_rss_mb(numbers)}
    run: ClientRun = last["client"]
    split = _split(p, run)
    out: dict[str, Any] = {
        "table": relation,
        "rows": rows,
        "paths": {name: _stats(s, rows) for name, s in seconds.items()},
        "client_phases": {k: float(np.median(v)) for k, v in phases.items()},
        "first_call_s": first,
        "parallel_plan": parallel,
        "peak_rss_mb": peak,
        "split": split,
    }
    paths_out = out["paths"]
    total = paths_out["pyml"]["median_s"]
    for x in paths_out.values():
        x["x_pyml"] = x["median_s"] / total
    split["pyml_drift_s"] = total
    split["read_plpython_s"] = paths_out["read_plpython"]["median_s"]
    for phase in ("inputs_new", "transform_new", "predict_new"):
        split[f"{phase}_s"] = out["client_phases"][phase]
    split["rest_s"] = total - sum(
        split[k]
        for k in (
            "read_plpython_s",
            "statistics_s",
            "inputs_new_s",
            "transform_new_s",
            "predict_new_s",
        )
    )
    p.last = {
        "rows": rows,
        "table": relation,
        "pyml": last["pyml"],
        "client": run,
        "in_process": split.pop("values"),
    }
    return out


def _split(p: Prepared, run: ClientRun) -> dict[str, Any]:
    """pyml's own statistics functions on the client's values, in this process (median of
    three runs), and the values they give."""
    from pyml.core import statistics as stats

    numbers, texts = run.new
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        values: dict[tuple[str, str], float] = {}
        for j, name in enumerate(NUMBERS):
            values[(name, "psi")], values[(name, "ks")] = stats.numeric_drift(
                p.stored[name], numbers[j]
            )
        for j, name in enumerate(CATEGORIES):
            values[(name, "psi")], values[(name, "js")] = stats.categorical_drift(
                p.stored[name], texts[j]
            )
        values[(PREDICTION, "psi")], values[(PREDICTION, "ks")] = stats.numeric_drift(
            p.stored[PREDICTION], run.predictions
        )
        times.append(time.perf_counter() - t0)
    return {"statistics_s": float(np.median(times)), "values": values}


def speed(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    out: dict[str, Any] = {"sizes": {}}
    for rows in p.sizes.new_rows:
        out["sizes"][str(rows)] = _measure_size(server, p, rows, rng)
    out["rounds"] = p.sizes.rounds
    out["checks"] = []
    return out


# -- correctness -----------------------------------------------------------------------------


def correctness(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    """pyml.drift's rows of the largest table against pyml's functions in this process and
    against the client's numpy/scipy figures; BenchError when any is off."""
    from scipy.stats import ks_2samp

    if not p.last:
        raise BenchError("nothing to check (see the speed section)")
    run: ClientRun = p.last["client"]
    returned = {(f, m): (float(v), float(t), bool(d)) for f, m, v, t, d in p.last["pyml"]}
    expected_keys = set(run.values)
    problems = []
    if set(returned) != expected_keys:
        problems.append(f"pyml.drift returned {sorted(returned)}, expected {sorted(expected_keys)}")
    rows = []
    for key in [k for k in returned if k in expected_keys]:  # pyml.drift's order
        feature, metric = key
        value, threshold, flagged = returned[key]
        mine, client_value = p.last["in_process"][key], run.values[key]
        whole = None
        if metric == "ks" and feature != PREDICTION:
            j = NUMBERS.index(feature)
            old, new = run.train[0][j], run.new[0][j]
            whole = float(ks_2samp(old[~np.isnan(old)], new[~np.isnan(new)]).statistic)
        tolerance = PREDICTION_TOLERANCE if feature == PREDICTION else EXACT
        if not abs(value - mine) <= tolerance * max(1.0, abs(mine)):
            problems.append(
                f"{feature} {metric}: pyml.drift {value!r}, pyml's functions in"
                f" this process {mine!r}"
            )
        if metric == "ks" and not abs(value - client_value) <= KS_TOLERANCE:
            problems.append(
                f"{feature} ks: pyml.drift {value:.4f}, ks_2samp"
                f" {client_value:.4f} (tolerance {KS_TOLERANCE})"
            )
        client_drifted = client_value > threshold
        rows.append(
            {
                "feature": feature,
                "metric": metric,
                "pyml": value,
                "in_process": mine,
                "client": client_value,
                "diff": value - client_value,
                "ks_whole_table": whole,
                "threshold": threshold,
                "drifted": flagged,
                "client_drifted": client_drifted,
            }
        )
    drifted = sorted({r["feature"] for r in rows if r["drifted"]})
    client_set = sorted({r["feature"] for r in rows if r["client_drifted"]})
    predictions_moved = PREDICTION in client_set
    expected = sorted(set(SHIFTED) | ({PREDICTION} if predictions_moved else set()))
    if drifted != expected:
        problems.append(f"pyml.drift marked {drifted} drifted, expected {expected}")
    if client_set != expected:
        problems.append(f"the client's statistics mark {client_set} drifted, expected {expected}")
    if problems:
        raise BenchError("; ".join(problems))
    ks = [r for r in rows if r["metric"] == "ks"]
    checks = [
        {
            "what": f"drift ({p.last['table']}): pyml.drift = pyml's statistics functions on the"
            " same values in this process (each feature's PSI, KS, JS within"
            f" {EXACT:g}, the prediction's within {PREDICTION_TOLERANCE:g} relative)",
            "rows": len(rows),
            "max_abs_diff": max(abs(r["pyml"] - r["in_process"]) for r in rows),
        },
        {
            "what": f"drift ({p.last['table']}): pyml.drift's KS vs scipy.stats.ks_2samp against"
            f" the training rows (numbers and prediction; tolerance {KS_TOLERANCE})",
            "rows": len(ks),
            "max_abs_diff": max(abs(r["diff"]) for r in ks),
        },
        {
            "what": f"drift ({p.last['table']}): drifted features {drifted} = the shifted"
            f" columns {list(SHIFTED)}"
            + (f" + {PREDICTION}" if predictions_moved else "")
            + " = the client's",
            "rows": len(rows),
            "max_abs_diff": 0.0,
        },
    ]
    return {
        "table": p.last["table"],
        "rows": p.last["rows"],
        "values": rows,
        "drifted": drifted,
        "expected": expected,
        "checks": checks,
    }


# name -> measure(server, settings, prepared); each returns its figures and its correctness
# checks under "checks".
SECTIONS: dict[str, Callable[[Server, Settings, Prepared], dict[str, Any]]] = {
    "speed": speed,
    "correctness": correctness,
}


# -- RESULTS.md ------------------------------------------------------------------------------

PATH_LABEL = {
    "pyml": f"`pyml.drift('{PROJECT}', t)`: 6 numbers + 2 categories + prediction",
    "pyml_numbers": f"`pyml.drift('{NUM_PROJECT}', t)`: 6 numbers + prediction",
    "client": "Python client: COPY, numpy/scipy, exported model (phases below)",
    "count": "floor: `SELECT count(*) FROM t`",
    "scan_columns": "floor: `SELECT count(a), ..., count(cat2) FROM t` (the 8 columns)",
    "read_in_server": "pyml's read query aggregated in the server (nothing sent)",
    "read_plpython": "pyml's read query into PL/Python (`plpy.execute`)",
}
PHASE_LABEL = {
    "read_new": "read the new rows (binary COPY of numbers + text COPY of categories)",
    "read_train": "read the training table (the same; pyml never does)",
    "statistics": "PSI + `ks_2samp` per number, PSI + Jensen-Shannon per category",
    "inputs_new": "the new rows as the model's input matrix (object: numbers and text)",
    "transform_new": "the exported ColumnTransformer's `transform` of it",
    "predict_new": "the exported `Booster.predict` of the new rows",
    "predict_test": "input matrix, transform and predict of the training table's test rows",
    "prediction_statistics": "PSI + `ks_2samp` of the predictions",
}


def _s(x: float | None) -> str:
    return "–" if x is None else (f"{x:.3f}" if x < 10 else f"{x:,.1f}")


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _short(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def markdown(r: dict[str, Any]) -> list[str]:
    """The section *Drift* of RESULTS.md."""
    d = r.get("drift")
    if not d:
        return []
    out = ["## Drift (`pyml.drift`)", ""]
    if "train_rows" in d:
        m = d["models"]
        out += [
            f"Data made in SQL (`generate_series`): `{TRAIN}` {d['train_rows']:,} rows"
            " (6 numbers: real, float8, int, two with ~5 % and ~10 % NULL; 2 text"
            " categories with 5 and 20 values; a float8 label), new rows "
            + ", ".join(f"`{t}` ({n:,})" for t, n in d["tables"].items() if t != TRAIN)
            + f" from the same distributions but for {', '.join(d['shifted'])} (a by one"
            " standard deviation, cat2's shares skewed). LightGBM trained by `pyml.train"
            "(..., test_sampling => 'last', preprocess => ...)`:"
            f" `{m['full']['project']}` on the 8 features (categories `native`, the two"
            f" NULL columns imputed; {m['full']['train_seconds']:.1f} s) and"
            f" `{m['numbers']['project']}` on the 6 numbers"
            f" ({m['numbers']['train_seconds']:.1f} s).",
            "",
        ]
    sp = d.get("speed")
    if sp:
        out += [
            "Each path once per round in a random order, after a warm-up call each;"
            f" {sp['rounds']} rounds; seconds of the rounds (median, min). pyml.drift runs"
            " on a connection per project; the client and the floors share a third. *x"
            " pyml.drift*: median against the median of `pyml.drift('bench_drift', t)`.",
            "",
        ]
        for key, x in sp["sizes"].items():
            rows = int(key)
            table_rows = []
            for name, label in PATH_LABEL.items():
                y = x["paths"][name]
                par = " (parallel plan)" if x["parallel_plan"].get(name) else ""
                table_rows.append(
                    [
                        label + par,
                        _s(y["median_s"]),
                        _s(y["min_s"]),
                        _rate(y["rows_per_s"]),
                        f"{y['x_pyml']:.2f}",
                    ]
                )
            out += [f"`{x['table']}`, {rows:,} new rows:", ""]
            out += _table(["path", "median s", "min s", "rows/s", "x pyml.drift"], table_rows)
            ph = x["client_phases"]
            out += _table(
                ["client phase (median)", "s", "share"],
                [
                    [PHASE_LABEL.get(k, k), _s(v), f"{v / sum(ph.values()):.0%}"]
                    for k, v in ph.items()
                ],
            )
            sl = x["split"]
            total = sl["pyml_drift_s"]
            out += [f"Where `pyml.drift`'s {_s(total)} s go ({_short(rows)} rows):", ""]
            out += _table(
                ["part", "s", "share"],
                [
                    [label, _s(sl[k]), f"{sl[k] / total:.0%}"]
                    for k, label in (
                        ("read_plpython_s", "read: pyml's query into PL/Python (floor above)"),
                        (
                            "statistics_s",
                            "statistics: `pyml.core.statistics.numeric_drift` /"
                            " `categorical_drift` on the same values, in this process",
                        ),
                        (
                            "inputs_new_s",
                            "the input matrix (object) of the new rows, in this"
                            " process (client phase above)",
                        ),
                        (
                            "transform_new_s",
                            "the exported ColumnTransformer's `transform`, in this process",
                        ),
                        ("predict_new_s", "the exported `Booster.predict`, in this process"),
                        (
                            "rest_s",
                            "the rest (decoding the arrays, NULL checks, model settings,"
                            " ...): the difference",
                        ),
                    )
                ],
            )
            first = x["first_call_s"]
            peak = x["peak_rss_mb"]
            out += [
                f"First call of a new session: {_s(first['pyml'])} s (`{PROJECT}`),"
                f" {_s(first['pyml_numbers'])} s (`{NUM_PROJECT}`). Backend peak RSS"
                " (VmHWM) of those sessions: "
                + ", ".join(
                    "–" if v is None else f"{v:,.0f} MB"
                    for v in (peak["pyml"], peak["pyml_numbers"])
                )
                + ".",
                "",
            ]
    c = d.get("correctness")
    if c:
        out += [
            f"Values on `{c['table']}` ({c['rows']:,} rows): pyml.drift, and the client's"
            " (numpy PSI on the training rows' deciles, `ks_2samp` against the training"
            " rows, Jensen-Shannon); *KS vs whole table*: `ks_2samp` against every row"
            f" of `{TRAIN}`, test rows included (not checked).",
            "",
        ]
        out += _table(
            [
                "feature",
                "metric",
                "pyml.drift",
                "client",
                "diff",
                "KS vs whole table",
                "threshold",
                "drifted",
            ],
            [
                [
                    v["feature"],
                    v["metric"],
                    f"{v['pyml']:.4f}",
                    f"{v['client']:.4f}",
                    f"{v['diff']:+.4f}",
                    "–" if v["ks_whole_table"] is None else f"{v['ks_whole_table']:.4f}",
                    f"{v['threshold']:g}",
                    "**yes**" if v["drifted"] else "no",
                ]
                for v in c["values"]
            ],
        )
    return out


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]
