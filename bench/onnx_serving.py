"""ONNX serving (issue 16): what serving scikit-learn models through onnxruntime changes.

One run, same data, every figure next to its floor or baseline (``--only onnx``, or a part of
the full run):

- online: ``pyml.predict`` of the random forest (the bench's ``rf``: 20 trees, depth 10, on
  ``t10``) against the no-op PL/Python floor ``bench_noop(float8[])`` and ``SELECT 1``, on one
  psycopg connection (every call once per round, random order; the rounds split in
  ``BLOCKS`` blocks whose ratios show the noise) and in one pgbench (``-f`` per call, picked
  at random per transaction);
- cold start: the first call in a new session (connect excluded, as ``bench/coldstart.py``)
  of one model per algorithm that can have an ONNX part (:data:`CASES`, plus ``rf``), and of
  the floor; sessions interleaved, round after round, so load hits every model alike;
- set query ``SELECT sum(pyml.predict('bench_rf', ARRAY[...])) FROM t10`` over a prefix of
  the table sized to take a few seconds, against the forest's vectorized ``predict`` of the
  whole table in this process (best of 3);
- ``pyml.predict_into`` of the forest over ``t10`` (new session, model loaded first), median
  of :data:`REPEATS` runs; compared with the figure of ``results-onnx-before.json`` when that
  file was measured in the same mode;
- preprocessing: ``pyml.predict(p, ROW(...))`` of models trained with ``preprocess => ...``
  on ``houses`` (text columns, NULLs imputed; ``bench/preprocessing.py``'s data) against the
  same algorithm's numeric model called with ``ARRAY[...]::float8[]``, interleaved on one
  connection; a random forest (ONNX path) and LightGBM (its C API);
- memory: ``/proc/PID/smaps_rollup`` of a backend (``pg_backend_pid()``) after
  :data:`PSS_CALLS` calls: the forest, LightGBM, the preprocessing forest, the PL/Python floor
  and a bare ``SELECT 1`` session; median of interleaved sessions;
- ONNX against the original, in this process: the model's ONNX graph (``pyml.export`` when
  the server has it, else :func:`pyml.core.onnxpart.convert` of the stored estimator) run by
  onnxruntime with one thread, against the stored estimator (preprocessing included): one row
  (mean per call over the rows of a round, median of rounds) and 10,000 rows (best of 3), and
  the largest difference on those rows (:func:`pyml.core.onnxpart.check`).

Every online value is compared with the stored model (``rf`` within the bench's float32
tolerance, the preprocessing models within 1e-4 relative); the set query and predict_into
by their sums over all rows scored.
"""

# ruff: noqa: S608  (SQL built from the bench's own constant table, column and project names)
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row

from bench import data, pgbench, preprocessing
from bench.config import BENCH_DIR, RF, BenchError, Settings
from bench.db import Server, connect, scalar
from bench.models import Trained
from bench.online import compare

SMALL = "onnx_small"  # t10-like rows for the small models of the cold-start list
SMALL_ROWS = 5_000
BLOCKS = 5  # online rounds split in this many blocks: a ratio per block shows the noise
REPEATS = 3  # predict_into, set query, 10k-row predictions: runs each
PSS_CALLS = 20  # calls a backend makes before its memory is read
PRE_TOLERANCE = 1e-4  # relative: pyml returns real, the stored model float64
BEFORE = BENCH_DIR / "results-onnx-before.json"
ONE_ROW_ROUNDS = 5
ROWS_10K = 10_000

TREES = {"n_estimators": 20, "max_depth": 10, "max_samples": 0.25, "n_jobs": 2}


@dataclass(frozen=True)
class Case:
    """A model of the cold-start list, trained here by ``pyml.train``."""

    key: str
    project: str
    task: str
    algorithm: str
    relation: str  # a view without id
    label: str | None
    hyperparams: dict[str, Any]
    call: str  # "array" | "row" | "decompose"
    preprocess: dict[str, Any] = field(default_factory=dict)
    cold: bool = True  # in the cold-start list

    @property
    def text(self) -> list[bool] | None:
        """Which model inputs are text (the ``houses`` categories); None: none."""
        if self.call != "row":
            return None
        return [c in ("city", "district", "grade") for c in preprocessing.COLUMNS]


CASES = (
    Case("linear", "onnx_linear", "regression", "linear", f"{SMALL}_train", "label", {}, "array"),
    Case(
        "gradient_boosting",
        "onnx_gbt",
        "regression",
        "gradient_boosting_trees",
        f"{SMALL}_train",
        "label",
        {"n_estimators": 100},
        "array",
    ),
    Case("svm", "onnx_svm", "classification", "svm", f"{SMALL}_bin", "label", {}, "array"),
    Case("knn", "onnx_knn", "classification", "knn", f"{SMALL}_cls", "label", {}, "array"),
    Case(
        "extra_trees",
        "onnx_extra_trees",
        "classification",
        "extra_trees",
        f"{SMALL}_cls",
        "label",
        {"n_estimators": 20, "max_depth": 10},
        "array",
    ),
    Case(
        "hist_gradient_boosting",
        "onnx_hgb",
        "regression",
        "hist_gradient_boosting",
        f"{SMALL}_train",
        "label",
        {},
        "array",
    ),
    Case(
        "kmeans",
        "onnx_kmeans",
        "clustering",
        "kmeans",
        f"{SMALL}_x",
        None,
        {"n_clusters": 5},
        "array",
    ),
    Case(
        "pca",
        "onnx_pca",
        "decomposition",
        "pca",
        f"{SMALL}_x",
        None,
        {"n_components": 3},
        "decompose",
    ),
    Case(
        "lightgbm",
        "onnx_lgbm",
        "regression",
        "lightgbm",
        f"{SMALL}_train",
        "label",
        {"n_estimators": 100, "num_leaves": 31},
        "array",
    ),
    Case(
        "pre_rf",
        "onnx_pre_rf",
        "regression",
        "random_forest",
        preprocessing.VIEW,
        "price",
        TREES,
        "row",
        preprocessing.PREPROCESS,
    ),
    Case(
        "pre_rf_num",
        "onnx_pre_rf_num",
        "regression",
        "random_forest",
        preprocessing.NUM_VIEW,
        "price",
        TREES,
        "array",
        cold=False,
    ),
    Case(
        "pre_lgbm",
        "onnx_pre_lgbm",
        "regression",
        "lightgbm",
        preprocessing.VIEW,
        "price",
        {},
        "row",
        preprocessing.PREPROCESS,
    ),
    Case(
        "pre_lgbm_num",
        "onnx_pre_lgbm_num",
        "regression",
        "lightgbm",
        preprocessing.NUM_VIEW,
        "price",
        {},
        "array",
        cold=False,
    ),
)
BY_KEY = {c.key: c for c in CASES}

ROW_QUERY = (
    "SELECT pyml.predict(%s, ROW(%s::text, %s::text, %s::real, %s::int, %s::boolean, %s::text))"
)
ARRAY_QUERY = "SELECT pyml.predict(%s, %s::float8[])"
DECOMPOSE_QUERY = "SELECT pyml.decompose(%s, %s::real[])"
NOOP_QUERY = "SELECT bench_noop(%s::float8[])"


@dataclass
class Stored:
    """A live model as stored in pyml.files, loaded in this process."""

    key: str
    project: str
    task: str
    model_id: int
    formats: list[str]
    estimator: Any  # a scikit-learn estimator or a lightgbm.Booster
    preprocessor: Any
    names: list[str]
    text: list[bool]
    onnx: bytes | None = None
    onnx_source: str = ""  # "pyml.export", "pyml.files", "onnxpart.convert" or why none


@dataclass
class Prepared:
    rf: Stored
    rf_trained: Trained
    X: np.ndarray  # t10's features, id order
    houses: preprocessing.Houses
    stored: dict[str, Stored]
    figures: dict[str, Any]


# -- data and models -------------------------------------------------------------------------


def _views(conn: psycopg.Connection) -> None:
    names = ", ".join(f"f{i}" for i in range(1, 11))
    conn.execute(
        f"CREATE VIEW {SMALL}_bin AS SELECT {names}, (label > 1.0)::int AS label FROM {SMALL}"
    )
    conn.execute(
        f"CREATE VIEW {SMALL}_cls AS SELECT {names},"
        " CASE WHEN label < 0.5 THEN 0 WHEN label < 1.5 THEN 1 ELSE 2 END AS label"
        f" FROM {SMALL}"
    )
    conn.execute(f"CREATE VIEW {SMALL}_x AS SELECT {names} FROM {SMALL}")


def _train(conn: psycopg.Connection, case: Case) -> dict[str, Any]:
    t0 = time.perf_counter()
    row = conn.execute(
        "SELECT deployed FROM pyml.train(project_name => %s, task => %s, relation_name => %s,"
        " y_column_name => %s, algorithm => %s, hyperparams => %s::jsonb,"
        " test_sampling => 'last', preprocess => %s::jsonb)",
        (
            case.project,
            case.task,
            case.relation,
            case.label,
            case.algorithm,
            json.dumps(case.hyperparams),
            json.dumps(case.preprocess),
        ),
    ).fetchone()
    seconds = time.perf_counter() - t0
    if not (row and row[0]):
        raise BenchError(f"pyml.train did not deploy the first model of {case.project}")
    return {"project": case.project, "train_seconds": seconds}


def _has_export(conn: psycopg.Connection) -> bool:
    return bool(
        scalar(
            conn,
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'pyml' AND p.proname = 'export'",
        )
    )


def load(
    conn: psycopg.Connection,
    key: str,
    project: str,
    task: str,
    text: list[bool] | None,
    rows: Any,
) -> Stored:
    """The live model of ``project`` from pyml.files (sha256 checked) and its ONNX graph:
    ``pyml.export`` when the server has it, else converted here from the stored estimator
    (checked on ``rows``, a few inputs as pyml reads them)."""
    import lightgbm

    from pyml.core import artifacts, onnxpart

    model_id = int(scalar(conn, "SELECT pyml.deployed_model(%s)", (project,)))
    names = list(
        scalar(conn, "SELECT feature_names FROM pyml.models WHERE id = %s", (model_id,)) or []
    )
    files = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT part, format, sha256, data FROM pyml.files WHERE model_id = %s ORDER BY part",
            (model_id,),
        )
        .fetchall()
    )
    formats = [f["format"] for f in files]
    text = [False] * len(names) if text is None else text
    parts = [f for f in files if f["format"] != onnxpart.FORMAT]
    loaded = artifacts.load(parts)
    if loaded.format == "lightgbm-text":
        text_part = next(f for f in parts if f["format"] == "lightgbm-text")
        estimator: Any = lightgbm.Booster(model_str=bytes(text_part["data"]).decode())
    elif loaded.format == "skops":
        estimator = loaded.parts[0]
    else:
        raise BenchError(f"{project}: unexpected format {loaded.format}")
    stored = Stored(
        key, project, task, model_id, formats, estimator, loaded.preprocessor, names, text
    )
    if _has_export(conn):
        try:
            stored.onnx = bytes(scalar(conn, "SELECT pyml.export(%s::bigint)", (model_id,)))
            stored.onnx_source = "pyml.export"
        except psycopg.Error as exc:
            stored.onnx_source = f"pyml.export: {exc.diag.sqlstate}: {exc.diag.message_primary}"
            detail = exc.diag.message_detail
            if detail:
                stored.onnx_source += f" ({detail})"
    elif loaded.format == "lightgbm-text":
        stored.onnx_source = "no pyml.export; a Booster is not converted here"
    else:
        converted = onnxpart.convert(
            estimator, loaded.preprocessor, names, text, task, np.asarray(rows)
        )
        stored.onnx = converted.data
        stored.onnx_source = (
            f"onnxpart.convert ({converted.inputs})" if converted.data else str(converted.reason)
        )
    return stored


def prepare(
    server: Server, settings: Settings, rf: Trained, X: np.ndarray
) -> tuple[Prepared, dict[str, Any]]:
    """The small table, houses, every case trained; every live model loaded here."""
    figures: dict[str, Any] = {"models": {}}
    h = preprocessing.generate(max(settings.rows // 10, 10_000))
    with connect(server.uri) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SMALL} CASCADE")
        data.build_table(conn, SMALL, SMALL_ROWS, 10, seed=0.33)
        _views(conn)
        preprocessing.build(conn, h)
        for case in CASES:
            figures["models"][case.key] = _train(conn, case)
        figures["export_in_server"] = _has_export(conn)
        stored = {
            "rf": load(conn, "rf", RF.project, "regression", None, X[-200:]),
        }
        test_rows = preprocessing._matrix([h.row(i) for i in range(h.n - 200, h.n)])
        for case in CASES:
            rows: Any
            if case.call == "row":
                rows = test_rows
            elif case.relation.startswith("houses"):
                rows = h.numeric[-200:]
            else:
                rows = X[-200:]
            stored[case.key] = load(conn, case.key, case.project, case.task, case.text, rows)
    for key, s in stored.items():
        figures["models"].setdefault(key, {"project": s.project})
        figures["models"][key].update(
            {
                "model_id": s.model_id,
                "task": s.task,
                "algorithm": RF.algorithm if key == "rf" else BY_KEY[key].algorithm,
                "formats": s.formats,
                "onnx_source": s.onnx_source,
                "onnx_bytes": len(s.onnx) if s.onnx else None,
            }
        )
    figures["houses_rows"] = h.n
    figures["served_code"] = _served_code()
    figures["small_rows"] = SMALL_ROWS
    return Prepared(stored["rf"], rf, X, h, stored, figures), figures


def _served_code() -> str:
    """The last commit that changed what the server runs (pyml/, sql/, src/), and its subject."""
    import subprocess

    from bench.config import ROOT

    proc = subprocess.run(
        ["git", "log", "-1", "--format=%h %s", "--", "pyml", "sql", "src"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip()[:120] or "unknown"


# -- measuring helpers -----------------------------------------------------------------------


def _interleaved(
    calls: dict[str, Callable[[int], Any]], n: int, warmup: int, seed: int = 16
) -> tuple[dict[str, np.ndarray], dict[str, list[Any]]]:
    """Every call once per round in a random order; seconds per call and values."""
    names = list(calls)
    order = np.random.default_rng(seed)
    for i in range(warmup):
        for k in names:
            calls[k](i % n)
    seconds = {k: np.empty(n) for k in names}
    values: dict[str, list[Any]] = {k: [] for k in names}
    for i in range(n):
        for j in order.permutation(len(names)):
            k = names[j]
            t0 = time.perf_counter()
            value = calls[k](i)
            seconds[k][i] = time.perf_counter() - t0
            values[k].append(value)
    return seconds, values


def _sql(
    cur: psycopg.Cursor[Any], query: str, params: Sequence[tuple[Any, ...]]
) -> Callable[[int], Any]:
    def call(i: int) -> Any:
        cur.execute(query, params[i % len(params)], prepare=True)
        return cur.fetchone()[0]

    return call


def _blocks(num: np.ndarray, den: np.ndarray) -> dict[str, Any]:
    """mean(num) / mean(den) over the whole run and per block of rounds (the noise)."""
    ratios = [
        float(a.mean() / b.mean())
        for a, b in zip(np.array_split(num, BLOCKS), np.array_split(den, BLOCKS), strict=True)
    ]
    return {
        "ratio": float(num.mean() / den.mean()),
        "p50_ratio": float(np.median(num) / np.median(den)),
        "blocks": ratios,
        "block_min": min(ratios),
        "block_max": max(ratios),
    }


def _summary(seconds: Sequence[float]) -> dict[str, Any]:
    a = np.asarray(seconds, dtype=np.float64)
    return {
        "median": float(np.median(a)),
        "min": float(a.min()),
        "max": float(a.max()),
        "runs": len(a),
    }


def _calls(s: Settings) -> int:
    return 3000 if not s.quick else 1500


# -- online ----------------------------------------------------------------------------------


def online(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    """The forest against the no-op floor and SELECT 1: psycopg, then pgbench."""
    n = _calls(settings)
    rows = p.X[np.random.default_rng(4).permutation(len(p.X))[:n]]
    arrays = [(r.tolist(),) for r in rows]
    with connect(server.uri) as conn:
        cur = conn.cursor()
        seconds, values = _interleaved(
            {
                "rf": _sql(cur, ARRAY_QUERY, [(RF.project, *a) for a in arrays]),
                "noop10": _sql(cur, NOOP_QUERY, arrays),
                "select1": _sql(cur, "SELECT 1", [()]),
            },
            n,
            warmup=50,
        )
    out: dict[str, Any] = {
        "psycopg": {k: pgbench.latency_stats(v) for k, v in seconds.items()},
        "calls": n,
    }
    out["psycopg"]["rf_vs_noop"] = _blocks(seconds["rf"], seconds["noop10"])
    out["checks"] = [
        compare(
            "onnx: rf online pyml.predict vs the stored estimator",
            values["rf"][:200],
            p.rf.estimator.predict(rows[:200]),
            settings.tolerance,
        )
    ]
    scripts = {
        "select1": "SELECT 1;\n",
        "noop10": pgbench.random_features_script("bench_noop({array})", 10),
        "rf": pgbench.random_features_script(f"pyml.predict('{RF.project}', {{array}})", 10),
    }
    pg = pgbench.run(
        server,
        scripts,
        clients=1,
        seconds=6.0 if settings.quick else 20.0,
        warmup=settings.warmup_seconds,
        cold_allowance=4.0,
    )
    pg["rf_vs_noop"] = {
        "ratio": pg["rf"]["mean_ms"] / pg["noop10"]["mean_ms"],
        "p50_ratio": pg["rf"]["p50_ms"] / pg["noop10"]["p50_ms"],
    }
    out["pgbench"] = pg
    return out


# -- cold start ------------------------------------------------------------------------------


def _cold_query(p: Prepared, key: str) -> tuple[str, tuple[Any, ...]]:
    x = p.X[0].tolist()
    if key == "noop10":
        return NOOP_QUERY, (x,)
    if key == "rf":
        return ARRAY_QUERY, (RF.project, x)
    case = BY_KEY[key]
    if case.call == "row":
        return ROW_QUERY, (case.project, *p.houses.row(0))
    if case.call == "decompose":
        return DECOMPOSE_QUERY, (case.project, x)
    return ARRAY_QUERY, (case.project, x)


def cold_start(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    """First call of new sessions, connect apart; every model once per round, random order."""
    keys = ["noop10", "rf"] + [c.key for c in CASES if c.cold]
    sessions = 7 if not settings.quick else 5
    first: dict[str, list[float]] = {k: [] for k in keys}
    second: dict[str, list[float]] = {k: [] for k in keys}
    connect_ms: list[float] = []
    order = np.random.default_rng(6)
    for _ in range(sessions):
        for j in order.permutation(len(keys)):
            key = keys[j]
            query, params = _cold_query(p, key)
            t0 = time.perf_counter()
            conn = psycopg.connect(server.uri, autocommit=True)
            t1 = time.perf_counter()
            try:
                conn.execute(query, params).fetchone()
                t2 = time.perf_counter()
                conn.execute(query, params).fetchone()
                t3 = time.perf_counter()
            finally:
                conn.close()
            connect_ms.append((t1 - t0) * 1000)
            first[key].append((t2 - t1) * 1000)
            second[key].append((t3 - t2) * 1000)
    out: dict[str, Any] = {
        "sessions": sessions,
        "connect_ms_median": float(np.median(connect_ms)),
        "models": {},
    }
    for key in keys:
        s = _summary(first[key])
        out["models"][key] = {
            "first_call_ms_median": s["median"],
            "first_call_ms_min": s["min"],
            "first_call_ms_max": s["max"],
            "second_call_ms_median": float(np.median(second[key])),
            "onnx_part": key in p.stored and "onnx" in p.stored[key].formats,
            "onnx_graph": key in p.stored
            and (p.stored[key].onnx is not None or "lightgbm-text" in p.stored[key].formats),
            "call": _cold_query(p, key)[0].split("(")[0].replace("SELECT ", ""),
        }
    out["checks"] = []
    return out


# -- batch -----------------------------------------------------------------------------------


def batch(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    """Set query of the forest (a prefix sized to take a few seconds) and predict_into,
    against its vectorized predict in this process."""
    X, est = p.X, p.rf.estimator
    n = len(X)
    raw_runs = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        expected = np.asarray(est.predict(X), dtype=np.float64)
        raw_runs.append(time.perf_counter() - t0)
    expected32 = expected.astype(np.float32).astype(np.float64)
    out: dict[str, Any] = {
        "rows": n,
        "raw": {"seconds": min(raw_runs), "rows_per_s": n / min(raw_runs), "runs": raw_runs},
        "checks": [],
    }
    array = "ARRAY[" + ", ".join(f"f{i}" for i in range(1, 11)) + "]"
    query = f"SELECT count(*), sum(pyml.predict(%s, {array})::float8) FROM t10 WHERE id <= %s"
    target = 4.0 if settings.quick else 8.0  # seconds a set query should take
    with connect(server.uri) as conn:
        conn.execute("SELECT count(*) FROM t10")
        conn.execute(ARRAY_QUERY, (RF.project, X[0].tolist()))
        t0 = time.perf_counter()
        conn.execute(query, (RF.project, 200)).fetchone()
        probe = 200 / (time.perf_counter() - t0)
        rows = int(min(n, max(200, probe * target / REPEATS)))
        runs = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            count, total = conn.execute(query, (RF.project, rows)).fetchone()
            runs.append(time.perf_counter() - t0)
        out["checks"].append(_sum("onnx: rf set query", total, expected32[:count]))
    best = min(runs)
    out["set_query"] = {
        "rows": int(count),
        "seconds": best,
        "rows_per_s": count / best,
        "runs": runs,
        "median_rows_per_s": count / float(np.median(runs)),
    }
    into = []
    for i in range(REPEATS):
        with connect(server.uri) as conn:
            conn.execute("DROP TABLE IF EXISTS onnx_scores")
            conn.execute(ARRAY_QUERY, (RF.project, X[0].tolist()))
            t0 = time.perf_counter()
            scored = conn.execute(
                "SELECT pyml.predict_into(%s, 't10', 'onnx_scores', 'id')", (RF.project,)
            ).fetchone()[0]
            into.append(time.perf_counter() - t0)
            if i == 0:
                total = scalar(conn, "SELECT sum(prediction::float8) FROM onnx_scores")
                out["checks"].append(_sum("onnx: rf predict_into", total, expected32))
            if scored != n:
                raise BenchError(f"predict_into scored {scored} rows of {n}")
    s = _summary(into)
    out["predict_into"] = {
        "rows": n,
        "seconds": s["median"],
        "rows_per_s": n / s["median"],
        "best_rows_per_s": n / s["min"],
        "worst_rows_per_s": n / s["max"],
        "runs": into,
    }
    before = _before(settings)
    if before is not None:
        out["predict_into"]["before"] = before
    return out


def _before(settings: Settings) -> dict[str, Any] | None:
    """predict_into of results-onnx-before.json (one results.json, or ``{"runs": [...]}`` of
    several: their median), if measured in the same mode."""
    if not BEFORE.exists():
        return None
    saved = json.loads(BEFORE.read_text())
    mode = "quick" if settings.quick else "full"
    rates, code = [], ""
    for r in saved.get("runs", [saved]):
        into = ((r.get("onnx") or {}).get("batch") or {}).get("predict_into")
        if into is None or r.get("mode") != mode:
            continue
        rates.append(into["rows_per_s"])
        code = r["onnx"]["data and models"].get("served_code", r["machine"]["git"])
    if not rates:
        return None
    return {
        "rows_per_s": float(np.median(rates)),
        "runs": rates,
        "git": code.split()[0] if code else "?",
        "file": BEFORE.name,
    }


def _sum(what: str, got: float, expected: np.ndarray, tolerance: float = 1e-5) -> dict[str, Any]:
    want = float(expected.sum())
    scale = float(np.abs(expected).sum()) or 1.0
    if abs(got - want) > tolerance * scale:
        raise BenchError(f"{what}: sum over all rows {got!r}, the stored model gives {want!r}")
    return {"what": what, "sum": got, "raw_sum": want, "ok": True}


# -- preprocessing ---------------------------------------------------------------------------


def _stored_predict(s: Stored, X: np.ndarray) -> np.ndarray:
    from pyml.core import preprocess

    Xt = X if s.preprocessor is None else preprocess.transform(s.preprocessor, X)
    return np.asarray(s.estimator.predict(np.asarray(Xt, dtype=np.float64)), dtype=np.float64)


def rows_vs_arrays(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    """ROW(...) of the preprocessing models against ARRAY of their numeric twins."""
    h = p.houses
    n = _calls(settings)
    idx = np.random.default_rng(5).choice(h.n, n, replace=False)
    values = [h.row(int(i)) for i in idx]
    arrays = [(h.numeric[i].tolist(),) for i in idx]
    with connect(server.uri) as conn:
        cur = conn.cursor()
        calls = {"noop": _sql(cur, NOOP_QUERY, arrays)}
        for pair in ("pre_rf", "pre_lgbm"):
            project, num = BY_KEY[pair].project, BY_KEY[f"{pair}_num"].project
            calls[f"{pair}/row"] = _sql(cur, ROW_QUERY, [(project, *v) for v in values])
            calls[f"{pair}/array"] = _sql(cur, ARRAY_QUERY, [(num, *a) for a in arrays])
        seconds, got = _interleaved(calls, n, warmup=50, seed=7)
    out: dict[str, Any] = {
        "calls": n,
        "latency": {k: pgbench.latency_stats(v) for k, v in seconds.items()},
        "ratios": {},
        "checks": [],
    }
    X = preprocessing._matrix(values)
    for pair in ("pre_rf", "pre_lgbm"):
        out["ratios"][pair] = _blocks(seconds[f"{pair}/row"], seconds[f"{pair}/array"])
        out["ratios"][f"{pair}/array_vs_noop"] = _blocks(seconds[f"{pair}/array"], seconds["noop"])
        for kind, want in (
            ("row", _stored_predict(p.stored[pair], X)),
            ("array", _stored_predict(p.stored[f"{pair}_num"], h.numeric[idx])),
        ):
            check = compare(
                f"onnx: {pair} online {kind} vs the stored model",
                np.asarray(got[f"{pair}/{kind}"], dtype=np.float64),
                want,
                PRE_TOLERANCE * max(1.0, float(np.abs(want).max())),
            )
            out["checks"].append(check)
    return out


# -- memory ----------------------------------------------------------------------------------


def _smaps(pid: int) -> dict[str, float]:
    """Rss and Pss (and its split) of a process, MB."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"):
                out[key.lower()] = int(value.split()[0]) / 1024
    return out


def memory(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    """PSS of a backend after PSS_CALLS calls; sessions interleaved, medians."""
    h = p.houses
    rows = [r.tolist() for r in p.X[:PSS_CALLS]]
    kinds: dict[str, tuple[str, list[tuple[Any, ...]]]] = {
        "select1": ("SELECT 1", [()]),
        "noop10": (NOOP_QUERY, [(r,) for r in rows]),
        "rf": (ARRAY_QUERY, [(RF.project, r) for r in rows]),
        "lightgbm": (ARRAY_QUERY, [(BY_KEY["lightgbm"].project, r) for r in rows]),
        "pre_rf": (ROW_QUERY, [(BY_KEY["pre_rf"].project, *h.row(i)) for i in range(PSS_CALLS)]),
    }
    sessions = 3
    found: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    order = np.random.default_rng(8)
    names = list(kinds)
    for _ in range(sessions):
        for j in order.permutation(len(names)):
            name = names[j]
            query, params = kinds[name]
            with connect(server.uri) as conn:
                pid = int(scalar(conn, "SELECT pg_backend_pid()"))
                for i in range(PSS_CALLS):
                    conn.execute(query, params[i % len(params)]).fetchone()
                found[name].append(_smaps(pid))
    out: dict[str, Any] = {"sessions": sessions, "calls": PSS_CALLS, "backends": {}}
    for name, samples in found.items():
        out["backends"][name] = {
            key: float(np.median([s[key] for s in samples])) for key in samples[0]
        } | {"pss_min": min(s["pss"] for s in samples), "pss_max": max(s["pss"] for s in samples)}
    out["checks"] = []
    return out


# -- ONNX against the original, in this process ----------------------------------------------


def _inputs(p: Prepared, s: Stored, n: int) -> np.ndarray:
    """n input rows as pyml reads them, not the training rows."""
    h = p.houses
    if s.key in BY_KEY and BY_KEY[s.key].call == "row":
        start = h.test_start
        return preprocessing._matrix([h.row(i) for i in range(start, min(start + n, h.n))])
    if s.key.endswith("_num"):
        return h.numeric[h.test_start : h.test_start + n]
    return p.X[-n:]


def _original(s: Stored) -> Callable[[np.ndarray], Any]:
    """What pyml serves today: the stored estimator (after the stored preprocessing)."""
    from pyml.core import preprocess

    est, pre = s.estimator, s.preprocessor
    method = est.transform if s.task == "decomposition" else est.predict

    def run(X: np.ndarray) -> Any:
        Xt = X if pre is None else preprocess.transform(pre, X)
        return method(np.asarray(Xt, dtype=np.float64))

    return run


def in_process(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    """ONNX (onnxruntime, one thread) against the stored estimator: 1 row, 10k rows, diff."""

    out: dict[str, Any] = {"models": {}, "checks": []}
    one = 200 if settings.quick else 500
    for key, s in p.stored.items():
        entry: dict[str, Any] = {"onnx_source": s.onnx_source}
        if s.onnx is not None:
            entry.update(_against(p, s, one))
        out["models"][key] = entry
    return out


def _against(p: Prepared, s: Stored, one: int) -> dict[str, Any]:
    """One model's ONNX graph against its original: 1 row, 10k rows, largest difference."""
    from pyml.core import onnxpart

    assert s.onnx is not None
    entry: dict[str, Any] = {}
    X = _inputs(p, s, ROWS_10K)
    runtime = onnxpart.Runtime(s.onnx)
    sess, feeds_all = runtime.session, runtime.feeds(X)
    singles = [(X[i : i + 1], {k: v[i : i + 1] for k, v in feeds_all.items()}) for i in range(one)]
    original = _original(s)
    paths: dict[str, Callable[[int], Any]] = {
        "original": lambda i: original(singles[i][0]),
        "onnx": lambda i: sess.run(None, singles[i][1]),
    }
    n_jobs = getattr(s.estimator, "n_jobs", None)
    if n_jobs not in (None, 1) and hasattr(s.estimator, "set_params"):
        import copy

        single = Stored(**{**s.__dict__, "estimator": copy.deepcopy(s.estimator)})
        single.estimator.set_params(n_jobs=1)
        original_1 = _original(single)
        paths["original_n_jobs_1"] = lambda i: original_1(singles[i][0])
    per_round: dict[str, list[float]] = {k: [] for k in paths}
    for r in range(ONE_ROW_ROUNDS):
        for k in paths if r % 2 == 0 else reversed(list(paths)):
            paths[k](0)  # warm
            t0 = time.perf_counter()
            for i in range(one):
                paths[k](i)
            per_round[k].append((time.perf_counter() - t0) / one)
    entry["one_row_us"] = {k: _scaled(_summary(v), 1e6) for k, v in per_round.items()}
    big: dict[str, list[float]] = {"original": [], "onnx": []}
    for r in range(REPEATS):
        for k in ("original", "onnx") if r % 2 == 0 else ("onnx", "original"):
            t0 = time.perf_counter()
            if k == "original":
                original(X)
            else:
                sess.run(None, feeds_all)
            big[k].append(time.perf_counter() - t0)
    entry["rows"] = len(X)
    entry["rows_ms"] = {k: _scaled(_summary(v), 1e3) for k, v in big.items()}
    want = onnxpart.expected(s.estimator, s.preprocessor, X, s.task)
    labels = np.asarray(original(X)) if s.task == "classification" else None
    entry["max_diff"] = onnxpart.check(s.onnx, X, want, s.task, labels)
    scale = max(1.0, float(np.max(np.abs(np.asarray(want, dtype=np.float64)))))
    entry["max_rel_diff"] = entry["max_diff"] / scale
    entry["agrees"] = onnxpart.agrees(entry["max_diff"], want)
    entry["n_jobs"] = n_jobs
    return entry


def _scaled(s: dict[str, Any], factor: float) -> dict[str, Any]:
    return {k: (v * factor if k != "runs" else v) for k, v in s.items()}


SECTIONS: dict[str, Callable[[Server, Settings, Prepared], dict[str, Any]]] = {
    "cold start": cold_start,
    "online": online,
    "batch": batch,
    "preprocessing": rows_vs_arrays,
    "memory": memory,
    "in process": in_process,
}


# -- goals and report ------------------------------------------------------------------------


def goals(r: dict[str, Any]) -> list[tuple[str, float, str, Callable[[], tuple[float, str]]]]:
    """(name, target, kind, compute) of the issue's goals, for bench/goals.py."""
    o = r.get("onnx") or {}
    out: list[tuple[str, float, str, Callable[[], tuple[float, str]]]] = []

    def online(client: str) -> Callable[[], tuple[float, str]]:
        def compute() -> tuple[float, str]:
            c = o["online"][client]
            rf, noop = c["rf"]["mean_ms"], c["noop10"]["mean_ms"]
            blocks = c["rf_vs_noop"].get("blocks")
            spread = f"; blocks {min(blocks):.2f}–{max(blocks):.2f}" if blocks else ""
            p50 = c["rf_vs_noop"].get("p50_ratio")
            median = f"; p50 ratio {p50:.2f}" if p50 is not None else ""
            return rf / noop, f"{rf:.3f} ms vs {noop:.3f} ms{spread}{median}"

        return compute

    for client in ("psycopg", "pgbench"):
        out.append(
            (
                f"rf: online mean <= 1.3 x no-op PL/Python mean ({client})",
                1.3,
                "max",
                online(client),
            )
        )
    cold = (o.get("cold start") or {}).get("models", {})
    for key in cold or ["rf"]:
        # the goal holds for models with an ONNX part (here, before the part is stored: the
        # models whose graph converts here, and LightGBM, which onnxmltools converts)
        if key == "noop10" or not cold[key].get("onnx_graph", True):
            continue

        def first(key: str = key) -> tuple[float, str]:
            c = o["cold start"]["models"][key]
            part = "ONNX part" if c["onnx_part"] else "no ONNX part"
            return c["first_call_ms_median"], (
                f"{c['first_call_ms_median']:.0f} ms (min {c['first_call_ms_min']:.0f}, max"
                f" {c['first_call_ms_max']:.0f}); {part}"
            )

        out.append((f"{key}: first call in a new session <= 150 ms (median)", 150.0, "max", first))

    def set_query() -> tuple[float, str]:
        b = o["batch"]
        rate, raw = b["set_query"]["rows_per_s"], b["raw"]["rows_per_s"]
        return rate / raw, f"{rate:,.0f} vs {raw:,.0f} rows/s"

    out.append(("rf: set query >= 0.2 x raw vectorized throughput", 0.2, "min", set_query))

    def into() -> tuple[float, str]:
        i = o["batch"]["predict_into"]
        before = i["before"]
        return i["rows_per_s"] / before["rows_per_s"], (
            f"{i['rows_per_s']:,.0f} vs {before['rows_per_s']:,.0f} rows/s (git"
            f" {before['git']}; this run {i['worst_rows_per_s']:,.0f}–"
            f"{i['best_rows_per_s']:,.0f})"
        )

    if "before" in ((o.get("batch") or {}).get("predict_into") or {}):
        out.append(("rf: predict_into >= 1.0 x before (rows/s)", 1.0, "min", into))
    for pair in ("pre_rf", "pre_lgbm"):

        def row(pair: str = pair) -> tuple[float, str]:
            lat = o["preprocessing"]["latency"]
            ratio = o["preprocessing"]["ratios"][pair]
            return ratio["ratio"], (
                f"{lat[pair + '/row']['mean_ms']:.3f} ms vs {lat[pair + '/array']['mean_ms']:.3f}"
                f" ms; blocks {ratio['block_min']:.2f}–{ratio['block_max']:.2f}; p50 ratio"
                f" {ratio.get('p50_ratio', float('nan')):.2f}"
            )

        out.append((f"{pair}: ROW call <= 1.5 x numeric ARRAY call (mean)", 1.5, "max", row))

    def pss() -> tuple[float, str]:
        b = o["memory"]["backends"]["rf"]
        return b["pss"], (
            f"{b['pss']:.0f} MB (anon {b['pss_anon']:.0f}, file {b['pss_file']:.0f}, shmem"
            f" {b['pss_shmem']:.0f}; RSS {b['rss']:.0f})"
        )

    out.append(("rf: backend PSS after 20 calls <= 60 MB", 60.0, "max", pss))
    return out


def _short(text: str, limit: int = 90) -> str:
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _f(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}" if x < 100 else f"{x:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def markdown(r: dict[str, Any]) -> list[str]:
    """The section *ONNX serving* of RESULTS.md."""
    o = r.get("onnx")
    if not o:
        return []
    out = ["## ONNX serving (issue 16)", ""]
    models = (o.get("data and models") or {}).get("models") or {}
    if models:
        out += [
            f"Models (`bench/onnx_serving.py`): `rf` is the bench's forest on `t10`; the small"
            f" ones on `{SMALL}` ({SMALL_ROWS:,} rows, 10 features); `pre_*` on `houses`"
            f" ({o['data and models'].get('houses_rows', 0):,} rows; text columns, NULLs"
            " imputed), `*_num` their numeric twins. pyml.export in the server:"
            f" {'yes' if o['data and models'].get('export_in_server') else 'no'}; served code:"
            f" {o['data and models'].get('served_code', '?')}.",
            "",
        ]
        out += _table(
            ["key", "project", "task", "algorithm", "parts", "ONNX graph", "bytes"],
            [
                [
                    k,
                    f"`{m['project']}`",
                    m.get("task", ""),
                    m.get("algorithm", ""),
                    ", ".join(m.get("formats", [])),
                    _short(m.get("onnx_source", "")),
                    f"{m['onnx_bytes']:,}" if m.get("onnx_bytes") else "–",
                ]
                for k, m in models.items()
            ],
        )
    on = o.get("online")
    if on:
        ps, pg = on["psycopg"], on["pgbench"]
        out += [
            f"Online, one client (ms): psycopg, {on['calls']:,} rounds of the three calls in a"
            f" random order on one connection; pgbench, the three scripts picked at random per"
            f" transaction. *blocks*: the ratio in each fifth of the psycopg rounds.",
            "",
        ]
        rows = []
        for name in ("rf", "noop10", "select1"):
            rows.append(
                [
                    name,
                    _f(ps[name]["mean_ms"]),
                    _f(ps[name]["p50_ms"]),
                    _f(ps[name]["p99_ms"]),
                    _f(pg[name]["mean_ms"]),
                    _f(pg[name]["p50_ms"]),
                    _f(pg[name]["p99_ms"]),
                ]
            )
        out += _table(["call", "psycopg mean", "p50", "p99", "pgbench mean", "p50", "p99"], rows)
        b = ps["rf_vs_noop"]
        out += [
            f"rf / no-op floor (mean): psycopg {b['ratio']:.2f} (blocks"
            f" {', '.join(f'{x:.2f}' for x in b['blocks'])}), pgbench"
            f" {pg['rf_vs_noop']['ratio']:.2f}; p50 ratios: psycopg"
            f" {b.get('p50_ratio', float('nan')):.2f}, pgbench"
            f" {pg['rf_vs_noop'].get('p50_ratio', float('nan')):.2f}.",
            "",
        ]
    cold = o.get("cold start")
    if cold:
        out += [
            f"First call in a new session (ms; connect apart, median"
            f" {cold['connect_ms_median']:.1f} ms): {cold['sessions']} sessions per model,"
            " every model once per round in a random order.",
            "",
        ]
        out += _table(
            ["model", "call", "ONNX part stored", "first call median", "min–max", "second call"],
            [
                [
                    k,
                    f"`{c['call']}`",
                    "yes" if c["onnx_part"] else "no",
                    _f(c["first_call_ms_median"], 1),
                    f"{_f(c['first_call_ms_min'], 1)}–{_f(c['first_call_ms_max'], 1)}",
                    _f(c["second_call_ms_median"]),
                ]
                for k, c in cold["models"].items()
            ],
        )
    b = o.get("batch")
    if b:
        sq, into, raw = b["set_query"], b["predict_into"], b["raw"]
        out += [
            f"Batch, `rf` over `t10` ({b['rows']:,} rows): raw = the stored forest's"
            f" `predict(X)` in this process (best of {REPEATS}); the set query over the first"
            f" {sq['rows']:,} rows (best of {REPEATS}; median {sq['median_rows_per_s']:,.0f}"
            f" rows/s); predict_into median of {REPEATS} sessions"
            f" ({into['worst_rows_per_s']:,.0f}–{into['best_rows_per_s']:,.0f} rows/s).",
            "",
        ]
        rows = [
            ["raw `predict(X)`", f"{raw['rows_per_s']:,.0f}", "1.000"],
            [
                "set query",
                f"{sq['rows_per_s']:,.0f}",
                f"{sq['rows_per_s'] / raw['rows_per_s']:.4f}",
            ],
            [
                "`pyml.predict_into`",
                f"{into['rows_per_s']:,.0f}",
                f"{into['rows_per_s'] / raw['rows_per_s']:.3f}",
            ],
        ]
        if "before" in into:
            rows.append(
                [
                    f"`pyml.predict_into` before (git {into['before']['git']})",
                    f"{into['before']['rows_per_s']:,.0f}",
                    "",
                ]
            )
        out += _table(["path", "rows/s", "x raw"], rows)
    pre = o.get("preprocessing")
    if pre:
        lat = pre["latency"]
        out += [
            f"Preprocessing (ms): `ROW(...)` of the `houses` models against `ARRAY` of their"
            f" numeric twins and the no-op floor, {pre['calls']:,} rounds in a random order on"
            " one connection.",
            "",
        ]
        out += _table(
            ["call", "mean", "p50", "p99"],
            [[k, _f(v["mean_ms"]), _f(v["p50_ms"]), _f(v["p99_ms"])] for k, v in lat.items()],
        )
        out += _table(
            ["ratio (means)", "whole run", "blocks", "p50 ratio"],
            [
                [
                    k,
                    f"{v['ratio']:.2f}",
                    ", ".join(f"{x:.2f}" for x in v["blocks"]),
                    f"{v.get('p50_ratio', float('nan')):.2f}",
                ]
                for k, v in pre["ratios"].items()
            ],
        )
    mem = o.get("memory")
    if mem:
        out += [
            f"Backend memory after {mem['calls']} calls (MB, `/proc/PID/smaps_rollup`, median"
            f" of {mem['sessions']} sessions):",
            "",
        ]
        out += _table(
            ["backend", "PSS", "min–max", "anon", "file", "shmem", "RSS"],
            [
                [
                    k,
                    f"{v['pss']:.1f}",
                    f"{v['pss_min']:.1f}–{v['pss_max']:.1f}",
                    f"{v['pss_anon']:.1f}",
                    f"{v['pss_file']:.1f}",
                    f"{v['pss_shmem']:.1f}",
                    f"{v['rss']:.1f}",
                ]
                for k, v in mem["backends"].items()
            ],
        )
    ip = o.get("in process")
    if ip:
        out += [
            "ONNX against the original in this process: onnxruntime with one thread against"
            " the stored estimator (with its preprocessing); one row: mean per call over"
            f" the rows of a round, median of {ONE_ROW_ROUNDS} rounds (µs); 10,000 rows: best"
            f" of {REPEATS} (ms); largest difference on those rows (probabilities for"
            " classifiers, labels must agree; clusters: 0 or inf).",
            "",
        ]
        rows = []
        for k, e in ip["models"].items():
            if "one_row_us" not in e:
                rows.append([k, _short(e["onnx_source"]), "–", "–", "–", "–", "–", "–", "–"])
                continue
            one, big = e["one_row_us"], e["rows_ms"]
            single = one.get("original_n_jobs_1")
            rows.append(
                [
                    k,
                    _short(e["onnx_source"]),
                    _f(one["original"]["median"], 1)
                    + (f" ({_f(single['median'], 1)} n_jobs 1)" if single else ""),
                    _f(one["onnx"]["median"], 1),
                    f"{one['original']['median'] / one['onnx']['median']:.1f}",
                    _f(big["original"]["min"], 2),
                    _f(big["onnx"]["min"], 2),
                    f"{e['max_diff']:.2g}",
                    f"{e.get('max_rel_diff', 0.0):.2g}",
                ]
            )
        out += _table(
            [
                "model",
                "graph",
                "1 row original µs",
                "1 row ONNX µs",
                "x",
                "10k original ms",
                "10k ONNX ms",
                "largest diff",
                "relative",
            ],
            rows,
        )
    return out


# -- before and after: several runs side by side ---------------------------------------------


def key_figures(r: dict[str, Any]) -> dict[str, tuple[float, str, float | None]]:
    """name -> (value, kind, goal target) of one run: kind 'max' (value <= target is met),
    'min' (>=) or '' (a figure without a goal)."""
    o = r.get("onnx") or {}
    out: dict[str, tuple[float, str, float | None]] = {}
    on = o.get("online")
    if on:
        ps, pg = on["psycopg"], on["pgbench"]
        out["rf online mean / no-op floor (psycopg)"] = (
            ps["rf"]["mean_ms"] / ps["noop10"]["mean_ms"],
            "max",
            1.3,
        )
        out["rf online p50 / no-op floor p50 (psycopg)"] = (
            ps["rf"]["p50_ms"] / ps["noop10"]["p50_ms"],
            "",
            None,
        )
        out["rf online mean / no-op floor (pgbench)"] = (
            pg["rf"]["mean_ms"] / pg["noop10"]["mean_ms"],
            "max",
            1.3,
        )
        out["rf online p50 / no-op floor p50 (pgbench)"] = (
            pg["rf"]["p50_ms"] / pg["noop10"]["p50_ms"],
            "",
            None,
        )
        out["rf online mean ms (psycopg)"] = (ps["rf"]["mean_ms"], "", None)
        out["no-op floor mean ms (psycopg)"] = (ps["noop10"]["mean_ms"], "", None)
    cold = (o.get("cold start") or {}).get("models") or {}
    for key, c in cold.items():
        goal = key != "noop10" and c.get("onnx_graph", True)
        out[f"first call ms: {key}"] = (
            c["first_call_ms_median"],
            "max" if goal else "",
            150.0 if goal else None,
        )
    b = o.get("batch")
    if b:
        out["rf set query / raw predict(X) (rows/s)"] = (
            b["set_query"]["rows_per_s"] / b["raw"]["rows_per_s"],
            "min",
            0.2,
        )
        out["rf set query rows/s"] = (b["set_query"]["rows_per_s"], "", None)
        out["rf raw predict(X) rows/s"] = (b["raw"]["rows_per_s"], "", None)
        out["rf predict_into rows/s"] = (b["predict_into"]["rows_per_s"], "", None)
    pre = o.get("preprocessing")
    if pre:
        for pair in ("pre_rf", "pre_lgbm"):
            ratio = pre["ratios"][pair]
            out[f"{pair} ROW / numeric ARRAY (mean)"] = (ratio["ratio"], "max", 1.5)
            if "p50_ratio" in ratio:
                p50 = ratio["p50_ratio"]
            else:
                lat = pre["latency"]
                p50 = lat[f"{pair}/row"]["p50_ms"] / lat[f"{pair}/array"]["p50_ms"]
            out[f"{pair} ROW / numeric ARRAY (p50)"] = (p50, "", None)
    mem = o.get("memory")
    if mem:
        for name, v in mem["backends"].items():
            goal = name == "rf"
            out[f"PSS MB: {name}"] = (v["pss"], "max" if goal else "", 60.0 if goal else None)
    return out


def compare_runs(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """A Markdown table: each figure's median (min–max) over the runs before and after."""
    figures_b = [key_figures(r) for r in before]
    figures_a = [key_figures(r) for r in after]
    names = list(dict.fromkeys(n for f in figures_a + figures_b for n in f))

    def cell(values: list[float]) -> str:
        if not values:
            return "–"
        med = float(np.median(values))
        spread = f" ({_g(min(values))}–{_g(max(values))})" if len(values) > 1 else ""
        return _g(med) + spread

    rows = []
    for name in names:
        vb = [f[name][0] for f in figures_b if name in f]
        va = [f[name][0] for f in figures_a if name in f]
        kind, target = next(f[name][1:] for f in figures_a + figures_b if name in f)
        goal, met = "", ""
        if kind and target is not None:
            goal = ("<= " if kind == "max" else ">= ") + f"{target:g}"
            if va:
                med = float(np.median(va))
                ok = med <= target if kind == "max" else med >= target
                met = "**met**" if ok else "not met"
        rows.append([name, cell(vb), cell(va), goal, met])
    return _table(
        [
            "figure",
            f"before: median (min–max), {len(before)} runs",
            f"after: median (min–max), {len(after)} runs",
            "goal",
            "after",
        ],
        rows,
    )


def _g(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 0.01:
        return f"{x:.2f}"
    return f"{x:.2g}"


def head_to_head(before_uri: str, after_uri: str, rounds: int) -> dict[str, Any]:
    """Two servers whose database was prepared by this section (``--only onnx``), one on the
    code before ONNX serving and one after: the same measurements alternating between them
    round by round (the order flipped each round), so load from elsewhere hits both alike.
    Per round: ``predict_into`` of the forest (new session, model loaded first), the first
    call of new sessions for a few models, and 300 rounds of the forest and the no-op floor
    on one connection (means)."""
    X = np.random.default_rng(9).random((300, 10))
    arrays = [(r.tolist(),) for r in X]
    cold_keys = ("rf", "linear", "lightgbm", "pre_rf", "pre_lgbm")
    servers = {"before": before_uri, "after": after_uri}
    found: dict[str, dict[str, list[float]]] = {name: {} for name in servers}

    def add(name: str, what: str, value: float) -> None:
        found[name].setdefault(what, []).append(value)

    with connect(before_uri) as conn:
        house = conn.execute(
            "SELECT city, district, size, rooms, garden, grade FROM houses WHERE id = 1"
        ).fetchone()
    for r in range(rounds):
        order = list(servers) if r % 2 == 0 else list(reversed(servers))
        for name in order:
            uri = servers[name]
            with connect(uri) as conn:
                conn.execute("DROP TABLE IF EXISTS onnx_h2h")
                conn.execute(ARRAY_QUERY, (RF.project, arrays[0][0]))
                t0 = time.perf_counter()
                conn.execute("SELECT pyml.predict_into(%s, 't10', 'onnx_h2h', 'id')", (RF.project,))
                add(name, "predict_into s", time.perf_counter() - t0)
            for key in cold_keys:
                if key == "rf":
                    query, params = ARRAY_QUERY, (RF.project, arrays[0][0])
                elif BY_KEY[key].call == "row":
                    query, params = ROW_QUERY, (BY_KEY[key].project, *house)
                else:
                    query, params = ARRAY_QUERY, (BY_KEY[key].project, arrays[0][0])
                with connect(uri) as conn:
                    t0 = time.perf_counter()
                    conn.execute(query, params).fetchone()
                    add(name, f"first call ms: {key}", (time.perf_counter() - t0) * 1000)
            with connect(uri) as conn:
                cur = conn.cursor()
                seconds, _ = _interleaved(
                    {
                        "rf": _sql(cur, ARRAY_QUERY, [(RF.project, *a) for a in arrays]),
                        "noop": _sql(cur, NOOP_QUERY, arrays),
                    },
                    len(arrays),
                    warmup=20,
                    seed=r,
                )
            add(name, "rf online mean ms", float(seconds["rf"].mean() * 1000))
            add(name, "no-op floor mean ms", float(seconds["noop"].mean() * 1000))
            add(name, "rf / no-op (mean)", float(seconds["rf"].mean() / seconds["noop"].mean()))
            add(
                name,
                "rf / no-op (p50)",
                float(np.median(seconds["rf"]) / np.median(seconds["noop"])),
            )
    return {"rounds": rounds, "servers": servers, "values": found}


def head_to_head_markdown(h: dict[str, Any]) -> list[str]:
    b, a = h["values"]["before"], h["values"]["after"]
    rows = []
    for what in b:
        mb, ma = float(np.median(b[what])), float(np.median(a[what]))
        wins = sum(x < y for x, y in zip(a[what], b[what], strict=True))
        rows.append(
            [
                what,
                f"{_g(mb)} ({_g(min(b[what]))}–{_g(max(b[what]))})",
                f"{_g(ma)} ({_g(min(a[what]))}–{_g(max(a[what]))})",
                f"{ma / mb:.3g}",
                f"{wins} of {len(a[what])}",
            ]
        )
    return _table(
        [
            "figure",
            f"before: median (min–max) of {h['rounds']} rounds",
            "after",
            "after / before",
            "rounds where after < before",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.onnx_serving --after RESULTS_JSON...``: each figure's median over the
    runs of results-onnx-before.json and the given ones. ``--head-to-head BEFORE_URI AFTER_URI``:
    the two servers measured alternately (:func:`head_to_head`)."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m bench.onnx_serving", description=main.__doc__)
    parser.add_argument("--before", type=Path, default=BEFORE)
    parser.add_argument("--after", type=Path, nargs="+")
    parser.add_argument("--head-to-head", nargs=2, metavar=("BEFORE_URI", "AFTER_URI"))
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--output", type=Path, help="the head-to-head figures (JSON)")
    args = parser.parse_args(argv)
    if args.head_to_head:
        before_uri, after_uri = args.head_to_head
        h = head_to_head(before_uri, after_uri, args.rounds)
        if args.output:
            args.output.write_text(json.dumps(h, indent=1) + "\n")
        print("\n".join(head_to_head_markdown(h)))
        return 0
    if not args.after:
        parser.error("--after or --head-to-head")
    saved = json.loads(args.before.read_text())
    after = [json.loads(p.read_text()) for p in args.after]
    print("\n".join(compare_runs(saved.get("runs", [saved]), after)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
