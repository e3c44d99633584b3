"""Preprocessing: a model trained with ``preprocess => ...`` on mixed-type rows, served by pyml.

Data: ``houses`` (id int, city text, district text, size real, rooms int, garden boolean,
grade text, price float8), made by numpy with a fixed seed and loaded by COPY. city has 5
values and ~6 % NULL, plus a sixth value (``toulouse``) in a few of the last 25 % of the rows
only: those are pyml's test rows (``test_sampling => 'last'``), so the fitted preprocessing
has never seen it. size is lognormal with ~8 % NULL, grade ~5 % NULL; price depends on
city x size, district, grade, garden and rooms, plus noise.

Models (LightGBM, pyml's defaults, ``test_sampling => 'last'``):

- ``bench_pre``: ``pyml.train`` on the view ``houses_train`` (no id) with PREPROCESS: target
  encoding of city and district, one-hot grade, size imputed by the mean and standardized,
  rooms standardized, garden as it is.
- ``bench_pre_num``: the baseline a user would build without preprocessing: the same 6
  features as numbers in ``houses_num`` (category codes, -1 for NULL or a city not in the
  list, size -1 when NULL), no preprocessing, predicted with ``ARRAY[...]::float8[]``.

Both are exported from ``pyml.files`` in this process: the parts go through
``pyml.core.artifacts.load`` (which checks their sha256 and loads the fitted ColumnTransformer
of the ``skops-preprocessor`` part), and the ``lightgbm-text`` part into
``lightgbm.Booster(model_str=...)``: what a Python service using scikit-learn would run.

Online (one connection, prepared statements, every call once per round in a random order,
warm-up rounds excluded): ``pyml.predict`` of a ``ROW(...)`` of the row's values, of the table
row ``h`` itself, the numeric model with an ARRAY, and the no-op PL/Python floor
``bench_noop(float8[])`` on the same array, one row of the table per round. Then, in a loop
of their own (a client busy for milliseconds between two SQL calls slows the next one, as the
idle backend has to wake up), in this process: ``ColumnTransformer.transform`` +
``Booster.predict`` of a 1-row array (the service), and pyml's plain-Python ``RowTransform`` +
``Booster.predict`` (what pyml's transform costs without the SQL call around it), both with
one LightGBM thread: its default OpenMP threads spin after each call, which slows a 1-row
predict and, on 2 cores, whatever runs next.

Batch: ``pyml.predict_into`` of every row of ``houses`` and of ``houses_num``, against the
service's batch job in this process: the table read with a binary SELECT (timed apart), then
``ColumnTransformer.transform`` and ``Booster.predict`` of the whole matrix (best of
``REPEATS``).

Every pyml prediction (ROW, table row, predict_into, and the numeric model's) is compared
with the exported model on the same rows; a relative difference over TOLERANCE is an error.
"""

# ruff: noqa: S608  (SQL built from the bench's own constant table, column and project names)
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row

from bench import pgbench, pgcopy
from bench.config import TEST_SIZE, BenchError, Settings
from bench.db import Server, connect, scalar
from bench.online import compare

PROJECT = "bench_pre"
NUM_PROJECT = "bench_pre_num"
TABLE, VIEW = "houses", "houses_train"
NUM_TABLE, NUM_VIEW = "houses_num", "houses_num_train"
SCORES, NUM_SCORES = "scores", "scores_num"
COLUMNS = ("city", "district", "size", "rooms", "garden", "grade")  # training order
PREPROCESS = {
    "city": {"encode": "target"},
    "district": {"encode": "target"},
    "grade": {"encode": "one_hot"},
    "size": {"impute": "mean", "scale": "standard"},
    "rooms": {"scale": "standard"},
}
TOLERANCE = 1e-4  # relative: pyml returns real, the exported model float64
SEED = 2024
WARMUP = 100  # rounds of every call before the measured ones
REPEATS = 3  # the in-process batch transform + predict: best of this many

CITIES = ("paris", "lyon", "marseille", "lille", "nantes")
UNSEEN = "toulouse"  # only in the test rows: never seen by the fitted preprocessing
CITY_SHARE = (0.3, 0.25, 0.2, 0.15, 0.1)
RATE = np.array([10_500.0, 5_000.0, 4_200.0, 3_600.0, 4_000.0, 3_900.0])  # price per m2
UNSEEN_SHARE = 0.04  # of the test rows
DISTRICTS = tuple(f"d{i}" for i in range(1, 13))
DISTRICT_FACTOR = np.linspace(0.85, 1.15, len(DISTRICTS))
GRADES = ("low", "mid", "high")
GRADE_SHARE = (0.3, 0.5, 0.2)
GRADE_FACTOR = np.array([0.9, 1.0, 1.15])
NULL_SHARE = {"city": 0.06, "size": 0.08, "grade": 0.05}

ROW_QUERY = (
    f"SELECT pyml.predict('{PROJECT}', ROW(%s::text, %s::text, %s::real, %s::int,"
    " %s::boolean, %s::text))"
)
TABLE_ROW_QUERY = f"SELECT pyml.predict('{PROJECT}', h) FROM {TABLE} h WHERE id = %s"
ARRAY_QUERY = f"SELECT pyml.predict('{NUM_PROJECT}', %s::float8[])"
NOOP_QUERY = "SELECT bench_noop(%s::float8[])"


# -- data ------------------------------------------------------------------------------------


@dataclass
class Houses:
    """The rows of ``houses`` (row i has id i + 1) and of ``houses_num``."""

    city: np.ndarray  # object: str or None
    district: np.ndarray  # object: str
    size: np.ndarray  # float32, NaN for NULL
    rooms: np.ndarray  # int64
    garden: np.ndarray  # bool
    grade: np.ndarray  # object: str or None
    price: np.ndarray  # float64
    numeric: np.ndarray  # float64 (n, 6): the numeric model's features, in COLUMNS order
    test_start: int  # rows from here on are pyml's test rows

    @property
    def n(self) -> int:
        return len(self.price)

    def row(self, i: int) -> tuple[Any, ...]:
        """Row i as Python values (None for NULL), in COLUMNS order."""
        size = self.size[i]
        return (
            self.city[i],
            self.district[i],
            None if np.isnan(size) else float(size),
            int(self.rooms[i]),
            bool(self.garden[i]),
            self.grade[i],
        )


def generate(n: int, seed: int = SEED) -> Houses:
    rng = np.random.default_rng(seed)
    test_start = n - int(round(TEST_SIZE * n))
    city_idx = rng.choice(len(CITIES), n, p=CITY_SHARE)
    unseen = (np.arange(n) >= test_start) & (rng.random(n) < UNSEEN_SHARE)
    city_idx[unseen] = len(CITIES)
    district_idx = rng.integers(0, len(DISTRICTS), n)
    size = np.clip(rng.lognormal(np.log(70.0), 0.45, n), 12.0, 500.0).astype(np.float32)
    rooms = np.clip(np.rint(size / 25.0 + rng.normal(0.0, 0.8, n)), 1, 10).astype(np.int64)
    garden = rng.random(n) < 0.35
    grade_idx = rng.choice(len(GRADES), n, p=GRADE_SHARE)
    noise = rng.normal(0.0, 0.08, n)
    price = np.round(
        RATE[city_idx]
        * size
        * DISTRICT_FACTOR[district_idx]
        * GRADE_FACTOR[grade_idx]
        * (1.0 + 0.12 * garden)
        * (1.0 + noise)
        + 5_000.0 * rooms,
        2,
    )
    null = {name: rng.random(n) < share for name, share in NULL_SHARE.items()}
    city = np.array((*CITIES, UNSEEN), dtype=object)[city_idx]
    city[null["city"]] = None
    grade = np.array(GRADES, dtype=object)[grade_idx]
    grade[null["grade"]] = None
    observed = size.copy()
    observed[null["size"]] = np.nan
    numeric = np.column_stack(
        [
            np.where(null["city"] | unseen, -1, city_idx),
            district_idx,
            np.where(null["size"], -1.0, size.astype(np.float64)),
            rooms,
            garden,
            np.where(null["grade"], -1, grade_idx),
        ]
    ).astype(np.float64)
    return Houses(
        city,
        np.array(DISTRICTS, dtype=object)[district_idx],
        observed,
        rooms,
        garden,
        grade,
        price,
        numeric,
        test_start,
    )


def _copy_text(conn: psycopg.Connection, table: str, columns: list[list[str]]) -> None:
    """COPY (text format) of columns already formatted, ``\\N`` for NULL."""
    payload = ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode()
    with conn.transaction(), conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        step = 8 << 20
        for offset in range(0, len(payload), step):
            copy.write(payload[offset : offset + step])


def _texts(values: np.ndarray) -> list[str]:
    return [r"\N" if v is None else v for v in values.tolist()]


def _numbers(values: np.ndarray, null: np.ndarray | None = None) -> list[str]:
    """Shortest round-trip text of each value (float32 for real columns): COPY reads it back
    exactly."""
    text = values.astype(str)
    if null is not None:
        text = text.astype(object)
        text[null] = r"\N"
    return text.tolist()


def build(conn: psycopg.Connection, h: Houses) -> None:
    n = h.n
    ids = _numbers(np.arange(1, n + 1))
    conn.execute(f"DROP VIEW IF EXISTS {VIEW}, {NUM_VIEW}")
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}, {NUM_TABLE}")
    conn.execute(
        f"CREATE TABLE {TABLE} (id int, city text, district text, size real,"
        " rooms int, garden boolean, grade text, price float8)"
    )
    _copy_text(
        conn,
        TABLE,
        [
            ids,
            _texts(h.city),
            _texts(h.district),
            _numbers(h.size, np.isnan(h.size)),
            _numbers(h.rooms),
            ["t" if g else "f" for g in h.garden.tolist()],
            _texts(h.grade),
            _numbers(h.price),
        ],
    )
    names = ", ".join(COLUMNS)
    conn.execute(
        f"CREATE TABLE {NUM_TABLE} (id int, "
        + ", ".join(f"{c} real" for c in COLUMNS)
        + ", price float8)"
    )
    _copy_text(
        conn,
        NUM_TABLE,
        [
            ids,
            *(_numbers(h.numeric[:, j].astype(np.float32)) for j in range(len(COLUMNS))),
            _numbers(h.price),
        ],
    )
    for table, view in ((TABLE, VIEW), (NUM_TABLE, NUM_VIEW)):
        conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
        # pyml.train: every column but the label is a feature, so train on a view without id.
        conn.execute(f"CREATE VIEW {view} AS SELECT {names}, price FROM {table}")
        conn.execute(f"VACUUM ANALYZE {table}")


# -- models ----------------------------------------------------------------------------------


@dataclass
class Exported:
    """A live model exported from pyml.files into this process."""

    project: str
    model_id: int
    formats: list[str]
    preprocessor: Any  # the fitted ColumnTransformer, or None
    booster: Any  # lightgbm.Booster

    def features(self, X: np.ndarray) -> np.ndarray:
        """What the booster sees."""
        if self.preprocessor is None:
            return np.asarray(X, dtype=np.float64)
        return np.asarray(self.preprocessor.transform(X), dtype=np.float64)

    def predict(self, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        return np.asarray(self.booster.predict(self.features(X), **kwargs), dtype=np.float64)


def export(conn: psycopg.Connection, project: str) -> Exported:
    import lightgbm

    from pyml.core import artifacts

    model_id = int(scalar(conn, "SELECT pyml.deployed_model(%s)", (project,)))
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT part, format, sha256, data FROM pyml.files WHERE model_id = %s ORDER BY part",
            (model_id,),
        )
        .fetchall()
    )
    loaded = artifacts.load(rows)  # checks every part's sha256
    text = [r for r in rows if r["format"] == "lightgbm-text"]
    if loaded.format != "lightgbm-text" or len(text) != 1:
        raise BenchError(
            f"model {model_id}: expected one lightgbm-text part, found"
            f" {[r['format'] for r in rows]}"
        )
    booster = lightgbm.Booster(model_str=bytes(text[0]["data"]).decode())
    return Exported(project, model_id, [r["format"] for r in rows], loaded.preprocessor, booster)


def _train(
    conn: psycopg.Connection, project: str, view: str, preprocess: dict[str, Any]
) -> dict[str, Any]:
    notices: list[str] = []

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(diag.message_primary or "")

    conn.add_notice_handler(on_notice)
    try:
        t0 = time.perf_counter()
        row = conn.execute(
            "SELECT deployed FROM pyml.train(project_name => %s, task => 'regression',"
            " relation_name => %s, y_column_name => 'price', algorithm => 'lightgbm',"
            " test_sampling => 'last', preprocess => %s::jsonb)",
            (project, view, json.dumps(preprocess)),
        ).fetchone()
        seconds = time.perf_counter() - t0
    finally:
        conn.remove_notice_handler(on_notice)
    if not (row and row[0]):
        raise BenchError(f"pyml.train did not deploy the first model of {project}")
    model_id = scalar(conn, "SELECT pyml.deployed_model(%s)", (project,))
    names, metrics, stored = conn.execute(
        "SELECT feature_names, metrics, preprocess FROM pyml.models WHERE id = %s", (model_id,)
    ).fetchone()
    if list(names or []) != list(COLUMNS):
        raise BenchError(f"{project}: features {names}, expected {list(COLUMNS)}")
    return {
        "project": project,
        "view": view,
        "model_id": model_id,
        "train_seconds": seconds,
        "preprocess_given": preprocess,
        "preprocess": stored,
        "metrics": metrics,
        "notices": notices,
    }


@dataclass
class Prepared:
    houses: Houses
    pre: Exported
    num: Exported


def prepare(server: Server, settings: Settings) -> tuple[Prepared, dict[str, Any]]:
    """Tables, both models trained and exported; (the state, its figures)."""
    t0 = time.perf_counter()
    h = generate(settings.rows)
    t1 = time.perf_counter()
    with connect(server.uri) as conn:
        build(conn, h)
        t2 = time.perf_counter()
        models = {
            "pre": _train(conn, PROJECT, VIEW, PREPROCESS),
            "num": _train(conn, NUM_PROJECT, NUM_VIEW, {}),
        }
        pre, num = export(conn, PROJECT), export(conn, NUM_PROJECT)
    if pre.preprocessor is None:
        raise BenchError(f"{PROJECT}: no skops-preprocessor part in pyml.files")
    for key, e in (("pre", pre), ("num", num)):
        models[key]["formats"] = e.formats
    models["pre"]["booster_features"] = int(pre.booster.num_feature())
    test = slice(h.test_start, None)
    data = {
        "rows": h.n,
        "test_rows": h.n - h.test_start,
        "generate_seconds": t1 - t0,
        "load_seconds": t2 - t1,
        "seed": SEED,
        "nulls": {
            "city": int(sum(c is None for c in h.city)),
            "size": int(np.isnan(h.size).sum()),
            "grade": int(sum(g is None for g in h.grade)),
        },
        "unseen_city": UNSEEN,
        "unseen_rows": int((h.city[test] == UNSEEN).sum()),
    }
    return Prepared(h, pre, num), {"data": data, "models": models}


# -- online ----------------------------------------------------------------------------------


def _loop(
    calls: dict[str, Callable[[int], Any]], n: int, warmup: int = WARMUP
) -> dict[str, tuple[dict[str, Any], list[Any]]]:
    """Every call once per round in a random order (so none always follows the same other),
    ``perf_counter`` around each; the ``warmup`` rounds first are not counted. A call gets
    the round number (its row)."""
    names = list(calls)
    order = np.random.default_rng(SEED)
    latencies = {k: np.empty(n) for k in names}
    values: dict[str, list[Any]] = {k: [] for k in names}
    first_ms: dict[str, float] = {}
    for i in range(warmup + 1):
        for k in names:
            t0 = time.perf_counter()
            calls[k](i % n)
            if i == 0:
                first_ms[k] = (time.perf_counter() - t0) * 1000
    for i in range(n):
        for j in order.permutation(len(names)):
            k = names[j]
            t0 = time.perf_counter()
            value = calls[k](i)
            latencies[k][i] = time.perf_counter() - t0
            values[k].append(value)
    return {
        k: (
            {**pgbench.latency_stats(latencies[k]), "first_call_ms": first_ms[k], "calls": n},
            values[k],
        )
        for k in names
    }


def _sql(
    cur: psycopg.Cursor[Any], query: str, params: list[tuple[Any, ...]]
) -> Callable[[int], Any]:
    def call(i: int) -> Any:
        cur.execute(query, params[i], prepare=True)
        return cur.fetchone()[0]

    return call


def _check(what: str, got: Any, expected: np.ndarray) -> dict[str, Any]:
    check = compare(what, got, expected, TOLERANCE)
    got = np.asarray(got, dtype=np.float64)
    check["max_rel_diff"] = float(
        np.max(np.abs(got - expected) / np.maximum(1.0, np.abs(expected)), initial=0.0)
    )
    check["tolerance"] = TOLERANCE
    return check


def _input(row: tuple[Any, ...]) -> list[Any]:
    """One row of inputs as pyml reads them: text or None, numbers as float, NaN for NULL."""
    city, district, size, rooms, garden, grade = row
    return [
        city,
        district,
        np.nan if size is None else float(size),
        float(rooms),
        float(garden),
        grade,
    ]


def _matrix(rows: list[tuple[Any, ...]]) -> np.ndarray:
    """Rows of inputs (an object matrix, COLUMNS order) for ColumnTransformer.transform."""
    X = np.empty((len(rows), len(COLUMNS)), dtype=object)
    for i, row in enumerate(rows):
        X[i] = _input(row)
    return X


def online(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    from pyml.core.rowtransform import RowTransform

    h, pre, num = p.houses, p.pre, p.num
    n = min(settings.calls, h.n)
    rows = np.random.default_rng(5).choice(h.n, n, replace=False)  # random order
    values = [h.row(int(i)) for i in rows]
    arrays = [(h.numeric[i].tolist(),) for i in rows]
    ids = [(int(i) + 1,) for i in rows]
    X = _matrix(values)
    expected = pre.predict(X)
    expected_num = num.predict(h.numeric[rows])

    split = np.zeros(n)  # the service's transform alone, per call

    def service(i: int) -> float:  # what a FastAPI handler would do with one JSON row
        x = _matrix(values[i : i + 1])
        t0 = time.perf_counter()
        features = np.asarray(pre.preprocessor.transform(x), dtype=np.float64)
        split[i] = time.perf_counter() - t0
        return float(pre.booster.predict(features, num_threads=1)[0])

    transform = RowTransform(pre.preprocessor)

    def plain(i: int) -> float:
        features = np.array([transform(_input(values[i]))], dtype=np.float64)
        return float(pre.booster.predict(features, num_threads=1)[0])

    with connect(server.uri) as conn:
        cur = conn.cursor()
        results = _loop(
            {
                "row": _sql(cur, ROW_QUERY, values),
                "table_row": _sql(cur, TABLE_ROW_QUERY, ids),
                "array_numeric": _sql(cur, ARRAY_QUERY, arrays),
                "noop": _sql(cur, NOOP_QUERY, arrays),
            },
            n,
        )
    # Apart: a client busy for milliseconds between two SQL calls slows the next one (the
    # idle backend must wake up), which would charge pyml for the in-process work.
    results.update(_loop({"sklearn_in_process": service, "row_transform_in_process": plain}, n))
    out: dict[str, Any] = {name: stats for name, (stats, _) in results.items()}
    ms = split * 1000
    out["sklearn_in_process"]["transform_mean_ms"] = float(ms.mean())
    out["sklearn_in_process"]["transform_p50_ms"] = float(np.percentile(ms, 50))
    sample = X[:, [0, 2, 5]]
    out["sample"] = {
        "rows": n,
        "null_city": int(sum(v is None for v in sample[:, 0])),
        "null_size": int(sum(v != v for v in sample[:, 1])),  # NaN
        "null_grade": int(sum(v is None for v in sample[:, 2])),
        "unseen_city": int(sum(v == UNSEEN for v in sample[:, 0])),
    }
    out["ratios"] = _ratios(out)
    out["warmup_rounds"] = WARMUP
    v = {name: vals for name, (_, vals) in results.items()}
    out["checks"] = [
        _check(f"{PROJECT}: online ROW(...) vs exported model", v["row"], expected),
        _check(f"{PROJECT}: online table row vs exported model", v["table_row"], expected),
        _check(f"{NUM_PROJECT}: online ARRAY vs exported model", v["array_numeric"], expected_num),
        _check(
            f"{PROJECT}: in-process 1-row ColumnTransformer.transform vs the whole sample",
            v["sklearn_in_process"],
            expected,
        ),
        _check(
            f"{PROJECT}: in-process RowTransform vs ColumnTransformer.transform",
            v["row_transform_in_process"],
            expected,
        ),
    ]
    out["row_vs_table_row_max_abs_diff"] = float(
        np.max(
            np.abs(
                np.asarray(v["row"], dtype=np.float64)
                - np.asarray(v["table_row"], dtype=np.float64)
            )
        )
    )
    return out


def _ratios(o: dict[str, Any]) -> dict[str, dict[str, float]]:
    pairs = {
        "ROW / ARRAY of the numeric model": ("row", "array_numeric"),
        "ROW / no-op PL/Python floor": ("row", "noop"),
        "table row / ROW": ("table_row", "row"),
        "ARRAY of the numeric model / no-op floor": ("array_numeric", "noop"),
        "in-process sklearn (1 row) / ROW": ("sklearn_in_process", "row"),
        "in-process sklearn (1 row) / ARRAY of the numeric model": (
            "sklearn_in_process",
            "array_numeric",
        ),
    }
    return {
        label: {stat: o[a][f"{stat}_ms"] / o[b][f"{stat}_ms"] for stat in ("mean", "p50", "p99")}
        for label, (a, b) in pairs.items()
    }


# -- batch -----------------------------------------------------------------------------------


def _predict_into(
    uri: str, project: str, table: str, target: str, warm: tuple[str, Any]
) -> dict[str, Any]:
    """``pyml.predict_into`` of every row, in a session whose model is already loaded."""
    with connect(uri) as conn:
        conn.execute(*warm)
        conn.execute(f"SELECT count(*) FROM {table}")  # the table in cache
        conn.execute(f"DROP TABLE IF EXISTS {target}")
        t0 = time.perf_counter()
        count = int(
            scalar(
                conn,
                "SELECT pyml.predict_into(%s, %s, %s, key_column => 'id')",
                (project, table, target),
            )
        )
        seconds = time.perf_counter() - t0
    return {"rows": count, "seconds": seconds, "rows_per_s": count / seconds}


def _scores(conn: psycopg.Connection, target: str, n: int) -> np.ndarray:
    ids, predictions = pgcopy.copy_out(
        conn, f"SELECT id::int8, prediction FROM {target}", ["int8", "float4"]
    )
    if len(ids) != n or not np.array_equal(np.sort(ids), np.arange(1, n + 1)):
        raise BenchError(f"{target}: {len(ids)} predictions, expected one for each of {n} rows")
    return predictions[np.argsort(ids, kind="stable")].astype(np.float64)


def read_houses(conn: psycopg.Connection) -> tuple[np.ndarray, np.ndarray]:
    """(ids, X) as the service's batch job reads them: a binary SELECT, then an object matrix
    in COLUMNS order (text or None, numbers as float, NaN for NULL)."""
    cur = conn.cursor(binary=True)
    cur.execute(f"SELECT id, {', '.join(COLUMNS)} FROM {TABLE}")
    rows = cur.fetchall()
    n = len(rows)
    ids, city, district, size, rooms, garden, grade = zip(*rows, strict=True) if n else [()] * 7
    X = np.empty((n, len(COLUMNS)), dtype=object)
    X[:, 0], X[:, 1], X[:, 5] = list(city), list(district), list(grade)
    X[:, 2] = np.array([np.nan if v is None else v for v in size], dtype=np.float64)
    X[:, 3] = np.asarray(rooms, dtype=np.float64)
    X[:, 4] = np.asarray(garden, dtype=np.float64)
    ids_array = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids_array, kind="stable")
    return ids_array[order], X[order]


def batch(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    h, pre, num = p.houses, p.pre, p.num
    out: dict[str, Any] = {"rows": h.n}
    warm_row = (f"SELECT pyml.predict('{PROJECT}', h) FROM {TABLE} h WHERE id = 1", None)
    warm_num = (ARRAY_QUERY, (h.numeric[0].tolist(),))
    out["predict_into"] = _predict_into(server.uri, PROJECT, TABLE, SCORES, warm_row)
    out["predict_into_numeric"] = _predict_into(
        server.uri, NUM_PROJECT, NUM_TABLE, NUM_SCORES, warm_num
    )

    with connect(server.uri) as conn:
        t0 = time.perf_counter()
        ids, X = read_houses(conn)
        read = time.perf_counter() - t0
    if not np.array_equal(ids, np.arange(1, h.n + 1)):
        raise BenchError(f"{TABLE}: ids are not 1..{h.n}")
    transform = predict = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        features = pre.features(X)
        t1 = time.perf_counter()
        expected = np.asarray(pre.booster.predict(features), dtype=np.float64)
        t2 = time.perf_counter()
        transform, predict = min(transform, t1 - t0), min(predict, t2 - t1)
    n = h.n
    out["in_process"] = {
        "rows": n,
        "read_seconds": read,
        "transform_seconds": transform,
        "predict_seconds": predict,
        "seconds": transform + predict,
        "rows_per_s": n / (transform + predict),
        "with_read_rows_per_s": n / (read + transform + predict),
        "repeats": REPEATS,
    }
    t0 = time.perf_counter()
    expected_num = num.predict(h.numeric)
    seconds = time.perf_counter() - t0
    out["in_process_numeric"] = {"rows": n, "seconds": seconds, "rows_per_s": n / seconds}
    with connect(server.uri) as conn:
        got, got_num = _scores(conn, SCORES, n), _scores(conn, NUM_SCORES, n)
    out["checks"] = [
        _check(f"{PROJECT}: predict_into vs exported model (every row)", got, expected),
        _check(f"{NUM_PROJECT}: predict_into vs exported model (every row)", got_num, expected_num),
    ]
    return out


# name -> measure(server, settings, prepared); each returns its figures and its correctness
# checks under "checks".
SECTIONS: dict[str, Callable[[Server, Settings, Prepared], dict[str, Any]]] = {
    "online": online,
    "batch": batch,
}
