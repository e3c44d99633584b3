"""What fitting in a child process costs: the runner against a direct call, and ``pyml.train``
against the code from before the isolation (``--only training``).

Two measurements, each interleaved (the two paths alternate, in turns ABBA...) with medians:

- runner: in this process, the fit step exactly as ``pyml.train`` builds it
  (``pyml.server.fitting.fit_work``: search, fit, artifacts) called directly, against the
  same work run by ``pyml.server._isolate.run`` (OpenMP paused, fork, memory limit, pipe,
  reap); each followed by
  what the backend does next (load the artifacts, predict the test rows). Same data, same
  process.
- end to end: ``pyml.train`` from a client, in a session running this checkout's code, against
  a session of the same server running the code of the commit before ``pyml/_isolate.py`` was
  added (``git archive`` into /tmp, put first on that session's ``sys.path`` before pyml is
  loaded). The stored artifacts of both are compared byte for byte.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from bench import data
from bench.config import ROOT, TEST_SIZE, BenchError, Settings
from bench.db import Server, connect

TABLE = "train100k"  # t10-like: 100,000 rows x 10 features, label
TABLE_ROWS = 100_000
# Predictions of the same model may differ in the last bits: a random forest with n_jobs sums
# its trees in the order its threads finish.
RTOL = 1e-12


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    relation: str
    target: str
    algorithm: str
    hyperparams: dict[str, Any] = field(default_factory=dict)
    search: str | None = None
    search_params: dict[str, Any] = field(default_factory=dict)
    search_args: dict[str, Any] = field(default_factory=dict)


# One thread per fit: on 2 busy cores (other work on the machine), LightGBM's OpenMP threads
# wait for each other at every barrier and a fit's time varies tenfold from run to run, which
# hides what is measured here (the fixed costs of the child process: they do not depend on the
# fit's threads).
ONE = {"n_jobs": 1}
CASES = (
    Case("linear_diabetes", "linear, pyml.diabetes", "pyml.diabetes", "target", "linear"),
    Case("lgbm_diabetes", "lightgbm, pyml.diabetes", "pyml.diabetes", "target", "lightgbm", ONE),
    Case(
        "grid_diabetes",
        "lightgbm grid search (6 candidates x 3 folds), pyml.diabetes",
        "pyml.diabetes",
        "target",
        "lightgbm",
        ONE,
        search="grid",
        search_params={"num_leaves": [7, 15, 31], "n_estimators": [50, 100]},
        search_args={"cv": 3},
    ),
    Case(
        "lgbm_100k",
        f"lightgbm, {TABLE} (100k rows)",
        f"{TABLE}_train",
        "label",
        "lightgbm",
        {"n_estimators": 100, "num_leaves": 31, **ONE},
    ),
    Case(
        "rf_100k",
        f"random forest, {TABLE} (100k rows)",
        f"{TABLE}_train",
        "label",
        "random_forest",
        {"n_estimators": 20, "max_depth": 10, "max_samples": 0.25, **ONE},
    ),
)


@dataclass
class Prepared:
    base: Path  # the code from before the isolation
    base_commit: str
    X: dict[str, np.ndarray]  # relation -> features as pyml reads them, in order
    y: dict[str, np.ndarray]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def base_code() -> tuple[Path, str]:
    """The ``pyml`` package of the commit before the one that added ``pyml/_isolate.py``."""
    added = _git("log", "--diff-filter=A", "--format=%H", "-n", "1", "--", "pyml/_isolate.py")
    if not added:
        raise BenchError("pyml/_isolate.py has no commit that adds it: nothing to compare")
    commit = _git("rev-parse", f"{added}^")
    target = Path(f"/tmp/pyml-bench-base-{commit[:12]}")
    if not (target / "pyml" / "train.py").exists():
        archive = subprocess.run(
            ["git", "archive", commit, "pyml"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o755)  # the server runs as another user
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target, commit


def _read(conn: psycopg.Connection, relation: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    """The relation's rows in the order pyml reads them (a sequential scan)."""
    schema, _, name = relation.rpartition(".")
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum",
            (relation,),
        )
    ]
    features = [c for c in columns if c != target]
    query = sql.SQL("SELECT {}, {}::float8 FROM {}").format(
        sql.SQL(", ").join(sql.SQL("{}::float8").format(sql.Identifier(c)) for c in features),
        sql.Identifier(target),
        sql.Identifier(*(p for p in (schema, name) if p)),
    )
    table = np.array(conn.execute(query).fetchall(), dtype=np.float64)
    return np.ascontiguousarray(table[:, :-1]), table[:, -1].copy()


def prepare(server: Server, settings: Settings) -> tuple[Prepared, dict[str, Any]]:
    base, commit = base_code()
    started = time.perf_counter()
    with connect(server.uri) as conn:
        conn.execute("SELECT * FROM pyml.load_dataset('diabetes')")
        data.build_table(conn, TABLE, TABLE_ROWS, 10)
        X, y = {}, {}
        for case in CASES:
            if case.relation not in X:
                X[case.relation], y[case.relation] = _read(conn, case.relation, case.target)
    figures = {
        "base_commit": commit,
        "base_code": str(base),
        "rows": {r: len(v) for r, v in X.items()},
        "build_seconds": time.perf_counter() - started,
    }
    return Prepared(base, commit, X, y), figures


def _rounds(settings: Settings, seconds: float) -> int:
    """Rounds of a path that takes ``seconds``: within a time budget, at least 5."""
    budget = 5.0 if settings.quick else 10.0
    return int(min(31 if settings.quick else 41, max(5, budget / max(seconds, 1e-3))))


def _split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """test_sampling 'last': the first rows train."""
    n_test = int(round(TEST_SIZE * n))
    return np.arange(n - n_test), np.arange(n - n_test, n)


def _summary(seconds: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
        "runs": len(seconds),
    }


def _interleaved(paths: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Time each path ``rounds`` times, alternating which goes first (ABBA...)."""
    names = list(paths)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            paths[name]()
            times[name].append(time.perf_counter() - started)
    return times


# -- the runner against a direct call, in this process ----------------------------------------


def _step(
    case: Case, p: Prepared, limit: Any, checked: list[int], out: dict[str, Any]
) -> Callable[[bool], None]:
    """One fit step of ``case``, direct or isolated; keeps its artifacts and predictions in
    ``out`` and counts the cancellation checks in ``checked``."""
    from pyml.core import algorithms
    from pyml.core import artifacts as _artifacts
    from pyml.server import _isolate, fitting
    from pyml.server import training as train

    X, y = p.X[case.relation], p.y[case.relation]
    train_idx, test_idx = _split(len(X))
    algorithm = algorithms.resolve(case.algorithm, "regression")
    req = train.TrainRequest(
        project_name=case.key,
        algorithm=case.algorithm,
        hyperparams=case.hyperparams,
        search=case.search,
        search_params=case.search_params,
        search_args=case.search_args,
    )
    names = [f"x{i}" for i in range(X.shape[1])]
    rows = train.TrainingData(X, y, names, "", names, {}, [])

    def step(isolated: bool) -> None:
        estimator = algorithm.make(req.hyperparams)
        work = fitting.fit_work(
            algorithm, estimator, rows, y, train_idx, test_idx, "regression", req
        )
        blobs: Sequence[bytes]
        if isolated:
            value, blobs = _isolate.run(
                work, check=lambda: checked.append(1), notice=lambda _: None, limit=limit
            )
        else:
            value, blobs = work(lambda _: None)
        loaded = _artifacts.load(
            [
                {
                    "part": part,
                    "format": fmt,
                    "sha256": _artifacts.Part(part, fmt, b).sha256,
                    "data": b,
                }
                for (part, fmt), b in zip(value["parts"], blobs, strict=True)
            ]
        )
        predicted = np.asarray(loaded.parts[0].predict(X[test_idx]), dtype=np.float64)
        out["isolated" if isolated else "direct"] = (blobs, predicted)

    return step


def runner(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    from pyml.server import _isolate

    limit = _isolate.memory_limit(None, None)  # the default: a quarter of physical memory
    results: dict[str, Any] = {"limit_bytes": limit.bytes, "cases": {}}
    checks: list[dict[str, Any]] = []
    for case in CASES:
        X = p.X[case.relation]
        train_idx, test_idx = _split(len(X))
        checked: list[int] = []
        out: dict[str, Any] = {}
        step = _step(case, p, limit, checked, out)
        step(False)
        step(True)  # warm-up of both, not counted
        warm = time.perf_counter()
        step(True)
        n = _rounds(settings, time.perf_counter() - warm)
        times = _interleaved({"direct": partial(step, False), "isolated": partial(step, True)}, n)
        direct, isolated = _summary(times["direct"]), _summary(times["isolated"])
        same_bytes = out["direct"][0] == out["isolated"][0]  # skops files carry timestamps
        direct_values, isolated_values = out["direct"][1], out["isolated"][1]
        diff = float(np.max(np.abs(direct_values - isolated_values)))
        rel = diff / max(float(np.max(np.abs(direct_values))), 1e-300)
        checks.append(
            {
                "what": f"training runner, {case.key}: isolated fit vs direct fit"
                " (predictions on the test rows)",
                "rows": len(test_idx),
                "max_abs_diff": diff,
                "max_rel_diff": rel,
                "tolerance": RTOL,
            }
        )
        if rel > RTOL:
            raise BenchError(f"{case.key}: the isolated fit predicts differently ({diff:.3g})")
        results["cases"][case.key] = {
            "label": case.label,
            "train_rows": len(train_idx),
            "direct": direct,
            "isolated": isolated,
            "overhead_s": isolated["median"] - direct["median"],
            "overhead": isolated["median"] / direct["median"] - 1,
            "artifact_bytes": sum(len(b) for b in out["direct"][0]),
            "same_bytes": same_bytes,
            "checks_per_run": len(checked) / (n + 2),
        }
    # The runner's own cost: work that returns at once (fork, pipe, reap; OpenMP paused).
    step = _noop(limit)
    step(False)
    step(True)
    times = _interleaved(
        {"direct": lambda: step(False), "isolated": lambda: step(True)},
        31 if settings.quick else 61,
    )
    direct, isolated = _summary(times["direct"]), _summary(times["isolated"])
    results["noop"] = {
        "label": "no fit: work that returns at once",
        "direct": direct,
        "isolated": isolated,
        "overhead_s": isolated["median"] - direct["median"],
    }
    results["checks"] = checks
    return results


def _noop(limit: Any) -> Callable[[bool], None]:
    from pyml.server import _isolate

    def work(progress: Callable[[str], None]) -> tuple[dict[str, Any], list[bytes]]:
        return {}, [b"model"]

    def step(isolated: bool) -> None:
        if isolated:
            _isolate.run(work, check=lambda: None, notice=lambda _: None, limit=limit)
        else:
            work(lambda _: None)

    return step


# -- pyml.train: this checkout against the code from before the isolation ---------------------


def _session(server: Server, base: Path | None) -> psycopg.Connection:
    """A session running this checkout's pyml, or the one in ``base`` (first on sys.path)."""
    conn = connect(server.uri)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    if base is not None:
        conn.execute(
            sql.SQL("DO $$ import sys; sys.path.insert(0, {}) $$ LANGUAGE plpython3u").format(
                sql.Literal(str(base))
            )
        )
    try:
        conn.execute("SELECT pyml.version()")  # loads the package
    except psycopg.Error as exc:
        conn.close()
        if base is None:
            raise
        # The extension's bootstrap names the module it loads (pyml.server._sqlapi since the
        # package was split by where code runs): older code cannot serve this checkout's SQL.
        raise BenchError(
            f"the code of {base.name} cannot serve this checkout's SQL, so there"
            f" is no end-to-end comparison (the runner's stands): {exc}"
        ) from None
    conn.execute("DO $$ import pyml; plpy.notice(pyml.__file__) $$ LANGUAGE plpython3u")
    expected = str((base or ROOT) / "pyml")
    if not notices or not notices[-1].startswith(expected):
        raise BenchError(f"session runs pyml from {notices[-1:]}, expected {expected}")
    return conn


def _train(conn: psycopg.Connection, project: str, case: Case) -> int:
    """``pyml.train`` of ``case``; the new model's id."""
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', %s, %s, %s, hyperparams => %s::jsonb,"
        " search => %s, search_params => %s::jsonb, search_args => %s::jsonb,"
        " test_size => %s::real, test_sampling => 'last', automatic_deploy => false)",
        (
            project,
            case.relation,
            case.target,
            case.algorithm,
            json.dumps(case.hyperparams),
            case.search,
            json.dumps(case.search_params) if case.search_params else None,
            json.dumps(case.search_args) if case.search_args else None,
            TEST_SIZE,
        ),
    )
    return int(
        conn.execute(
            "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s",
            (project,),
        ).fetchone()[0]
    )


def end_to_end(server: Server, settings: Settings, p: Prepared) -> dict[str, Any]:
    sessions = {"isolated": _session(server, None), "in_process": _session(server, p.base)}
    results: dict[str, Any] = {"base_commit": p.base_commit, "cases": {}}
    checks: list[dict[str, Any]] = []
    try:
        for case in CASES:
            last: dict[str, int] = {}

            def call(path: str, case: Case = case, last: dict[str, int] = last) -> None:
                last[path] = _train(sessions[path], f"bench_train_{case.key}_{path}", case)

            call("in_process")
            call("isolated")  # warm-up of both, not counted
            warm = time.perf_counter()
            call("isolated")
            n = _rounds(settings, time.perf_counter() - warm)
            times = _interleaved({path: partial(call, path) for path in sessions}, n)
            with connect(server.uri) as conn:
                stored = {
                    path: [
                        bytes(r[0])
                        for r in conn.execute(
                            "SELECT data FROM pyml.files WHERE model_id = %s ORDER BY part",
                            (model_id,),
                        )
                    ]
                    for path, model_id in last.items()
                }
                metrics = {
                    path: conn.execute(
                        "SELECT metrics FROM pyml.models WHERE id = %s", (model_id,)
                    ).fetchone()[0]
                    for path, model_id in last.items()
                }
            # LightGBM text is the same bytes for the same model; skops files carry timestamps.
            same = stored["isolated"] == stored["in_process"]
            r2 = {path: m.get("r2") for path, m in metrics.items()}
            checks.append(
                {
                    "what": f"pyml.train {case.key}: test r2 with the fit in a child"
                    " = in the backend",
                    "sum": r2["isolated"],
                    "raw_sum": r2["in_process"],
                }
            )
            if (case.algorithm == "lightgbm" and not same) or not np.isclose(
                r2["isolated"], r2["in_process"], rtol=RTOL, atol=0
            ):
                raise BenchError(
                    f"{case.key}: the isolated pyml.train stored another model"
                    f" (same bytes: {same}, r2 {r2})"
                )
            iso, base = _summary(times["isolated"]), _summary(times["in_process"])
            results["cases"][case.key] = {
                "label": case.label,
                "isolated": iso,
                "in_process": base,
                "overhead_s": iso["median"] - base["median"],
                "overhead": iso["median"] / base["median"] - 1,
                "same_bytes": same,
                "fit_time": {path: m.get("fit_time") for path, m in metrics.items()},
            }
    finally:
        for conn in sessions.values():
            conn.close()
    results["checks"] = checks
    return results


SECTIONS: dict[str, Callable[[Server, Settings, Prepared], dict[str, Any]]] = {
    "runner": runner,
    "end to end": end_to_end,
}


# -- RESULTS.md ------------------------------------------------------------------------------


def _s(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:,.1f}"


def _pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def markdown(r: dict[str, Any]) -> list[str]:
    """The section *Training in a child process* of RESULTS.md."""
    t = r.get("training")
    if not t:
        return []
    out = ["## Training in a child process (seconds, medians)", ""]
    runner_ = t.get("runner")
    if runner_:
        out += [
            "Runner: in the bench process, the fit step as `pyml.train` builds it"
            " (`pyml.server.fitting.fit_work`: fit, search, artifacts), then loading the"
            " artifacts and predicting the test rows; called directly against run by"
            " `pyml.server._isolate.run` (OpenMP paused, fork, memory limit"
            f" {runner_['limit_bytes'] / 2**30:.1f} GB, pipe, reap). Interleaved rounds."
            " Every model fits on one thread (`n_jobs` 1): on a busy machine OpenMP's"
            " threads make a fit's time vary tenfold, which hides the child's fixed costs.",
            "",
        ]
        out += _table(
            [
                "model",
                "training rows",
                "direct",
                "isolated",
                "overhead",
                "overhead s",
                "artifact bytes",
                "same bytes",
                "runs",
            ],
            [
                [
                    c["label"],
                    f"{c['train_rows']:,}",
                    _s(c["direct"]["median"]),
                    _s(c["isolated"]["median"]),
                    _pct(c["overhead"]),
                    f"{c['overhead_s']:+.3f}",
                    f"{c['artifact_bytes']:,}",
                    "yes" if c["same_bytes"] else "no",
                    str(c["direct"]["runs"]),
                ]
                for c in runner_["cases"].values()
            ],
        )
        noop = runner_.get("noop")
        if noop:
            out += [
                f"The runner's own cost ({noop['label']}):"
                f" {1000 * noop['isolated']['median']:.1f} ms median"
                f" (min {1000 * noop['isolated']['min']:.1f} ms, max"
                f" {1000 * noop['isolated']['max']:.1f} ms over {noop['isolated']['runs']}"
                " runs).",
                "",
            ]
    e2e = t.get("end to end")
    if e2e:
        out += [
            "End to end: `pyml.train(..., test_sampling => 'last', automatic_deploy =>"
            " false)` wall time from the client, this checkout (fit in a child process)"
            f" against the code of commit {e2e['base_commit'][:10]} (fit in the backend),"
            " two sessions of the same server, interleaved rounds. Both store the same"
            " LightGBM text and reach the same test r2.",
            "",
        ]
        out += _table(
            [
                "model",
                "in the backend",
                "in a child",
                "overhead",
                "overhead s",
                "same bytes",
                "runs",
            ],
            [
                [
                    c["label"],
                    _s(c["in_process"]["median"]),
                    _s(c["isolated"]["median"]),
                    _pct(c["overhead"]),
                    f"{c['overhead_s']:+.3f}",
                    "yes" if c["same_bytes"] else "no (skops)",
                    str(c["isolated"]["runs"]),
                ]
                for c in e2e["cases"].values()
            ],
        )
    return out


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]
