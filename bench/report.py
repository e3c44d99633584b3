"""bench/RESULTS.md (tables of figures and ratios) and bench/results.json (everything)."""

# ruff: noqa: S608  (Markdown that quotes SQL, no query is built here)
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench import drift_speed, logging_cost, model_service, onnx_serving, training


def _ms(x: float | None) -> str:
    return "–" if x is None else (f"{x:.3f}" if x < 10 else f"{x:,.1f}")


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _met(goal: dict[str, Any]) -> str:
    return {True: "**met**", False: "not met", None: "–"}[goal["met"]]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def markdown(r: dict[str, Any]) -> str:
    m, s = r["machine"], r["settings"]
    out = [
        "# pyml benchmark results",
        "",
        f"Made by `{r['command']}` ({r['mode']} mode) on {m['date']}, in"
        f" {r['total_seconds'] / 60:.1f} min. Figures only: nothing here is asserted by tests;"
        " every path's predictions were checked against the raw model (see *Correctness*).",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; RAM {m['ram_gb']} GB; Linux {m['kernel']}",
        f"- PostgreSQL {m['postgresql']} ("
        + ", ".join(f"{k} {v}" for k, v in m["postgresql_settings"].items())
        + f"); pyml {m['pyml']} (git {m['git']})",
        f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        f"- Load average: {r['load']['before']:.2f} before, {r['load']['after']:.2f} after"
        + (
            " (taken before the streaming part, whose idle listeners load the machine themselves)"
            if r.get("streaming")
            else ""
        ),
        "",
        "## What was measured",
        "",
    ]
    measured = _measured(r)[:-1] if r["models"] else []  # none made by --only preprocessing
    if r.get("preprocessing"):
        measured.append(
            "- Preprocessing: a model trained with `preprocess => ...` on mixed-type"
            " rows (table `houses`), against a numeric model and the same model"
            " exported into this process; see *Preprocessing* below and"
            " `bench/preprocessing.py`."
        )
    if r.get("logging"):
        measured.append(
            "- Prediction log: online `pyml.predict` with `pyml.log_predictions`"
            " off, at 0.01 and at 1.0, and `pyml.collect_predictions()`; see"
            " *Prediction log* below and `bench/logging_cost.py`."
        )
    if r.get("training"):
        measured.append(
            "- Training in a child process: the fit step run directly and by"
            " `pyml.server._isolate.run`, and `pyml.train` against the code from before"
            " the isolation; see *Training in a child process* below and"
            " `bench/training.py`."
        )
    if r.get("onnx"):
        measured.append(
            "- ONNX serving (issue 16): the random forest online against the no-op floor,"
            " first calls of new sessions per algorithm, set query and predict_into, ROW"
            " calls of preprocessing models against numeric ARRAY calls, backend PSS, and the"
            " ONNX graph against the original in this process; see *ONNX serving* below and"
            " `bench/onnx_serving.py`."
        )
    if r.get("drift"):
        sizes = " and ".join(f"{n:,}" for n in r["drift"].get("new_rows", []))
        measured.append(
            f"- Drift: `pyml.drift` of {sizes} new rows (8 features, LightGBM)"
            " against a Python client doing the same with COPY, numpy and scipy,"
            " and the plain reads of the same columns; see *Drift* below and"
            " `bench/drift_speed.py`."
        )
    out += [*measured, ""]
    if r.get("only"):
        out += [
            f"Only the part `{r['only']}` was run (`--only`): the other sections are missing.",
            "",
        ]
    if r["errors"]:
        out += (
            ["## Errors", "", "These measurements failed; their figures are missing below.", ""]
            + [f"- **{name}**: `{e.splitlines()[0][:400]}`" for name, e in r["errors"].items()]
            + [""]
        )
    if r["goals"]:
        out += ["## Goals", ""]
        out += _table(
            ["goal", "ratio / value", "target", "result", "figures"],
            [
                [
                    g["goal"],
                    "–" if g["value"] is None else f"{g['value']:.3g}",
                    ("<= " if g["kind"] == "max" else ">= ") + f"{g['target']:g}",
                    _met(g),
                    g["detail"],
                ]
                for g in r["goals"]
            ],
        )
    out += _online(r) + _throughput(r) + _cold(r) + _batch(r) + _training(r) + _memory(r)
    out += _preprocessing(r) + logging_cost.markdown(r) + drift_speed.markdown(r)
    out += training.markdown(r) + onnx_serving.markdown(r)
    out += model_service.markdown(r)
    out += _streaming(r)
    out += [
        "## Correctness",
        "",
        "Predictions compared with the raw model (relative"
        f" tolerance {s['tolerance']:g}, float32, unless a line says otherwise):",
        "",
    ]
    out += [
        f"- {c['what']}: "
        + (
            f"{c['rows']:,} rows, max abs diff {c['max_abs_diff']:.2g}"
            if "rows" in c
            else f"sum {c['sum']:.6g} = {c['raw_sum']:.6g}"
        )
        + (
            f" (max relative diff {c['max_rel_diff']:.2g}, tolerance {c['tolerance']:g})"
            if "tolerance" in c
            else ""
        )
        for c in r["checks"]
    ]
    out += ["", "## Phases", ""]
    load = r.get("phase_load", {})
    out += _table(
        ["phase", "seconds", "load average after"],
        [[k, f"{v:.1f}", f"{load.get(k, 0):.2f}"] for k, v in r["phases"].items()],
    )
    if r["warnings"]:
        out += ["## Warnings", ""] + [f"- {w}" for w in r["warnings"]] + [""]
    return "\n".join(out)


def _measured(r: dict[str, Any]) -> list[str]:
    """What the generic part measured: its tables, models and methods."""
    s = r["settings"]
    out = [
        f"- Data (database `{r.get('database', 'pyml_bench')}`, recreated): `t10` ="
        f" {s['rows']:,} rows x 10 `real`"
        f" features + id + label, `t50` = {s['rows']:,} rows x 50 features; uniform features,"
        " non-linear label, fixed seed. Models trained by `pyml.train(..., task =>"
        " 'regression', test_sampling => 'last')` (the first 75 % of rows train).",
    ]
    out += [f"- `{k}`: {v['label']}, model id {v['model_id']}" for k, v in r["models"].items()]
    out += [
        "- Online, one client: pgbench `-M prepared` with one script per call, each drawing"
        " uniform random features with `\\set` and calling e.g. `SELECT pyml.predict('p',"
        " ARRAY[:f1, ...]::float8[])`; the floors `SELECT 1` and `bench_noop(float8[])` (a"
        " PL/Python function returning 0) and the LightGBM models run interleaved in one pgbench"
        f" (`-f` per script, picked at random per transaction; {s['latency_seconds'] * 2.5:g} s),"
        f" the random forest alone ({s['latency_seconds'] / 2:g} s). Latencies from `--log`,"
        " counted from every client's first (cold) call of every script +"
        f" {s['warmup_seconds']} s. psycopg: {s['calls']:,} prepared executes per call,"
        " round-robin over the same calls on one connection (`SELECT pyml.predict('p',"
        " %s::float8[])` with rows of the table), `perf_counter` around each; the random forest"
        " alone, 1/20 of the calls.",
        f"- HTTP: `bench/microservice.py`: FastAPI on uvicorn, {s['http_workers']} worker"
        " processes (SO_REUSEPORT listeners, `OMP_NUM_THREADS=1`), the same model exported"
        " from `pyml.files`; JSON POST with keep-alive, same rows as psycopg. (Plain `uvicorn"
        " --workers 2` leaves TCP_NODELAY off and adds ~40 ms to every request: not used.)",
        f"- Throughput: {', '.join(str(c) for c in s['clients'])} clients for"
        f" {s['throughput_seconds']} s measured, after every client's cold start (pgbench"
        f" `-j {s['threads']}`; HTTP: the connections driven by 2 client processes, asyncio).",
        "- Batch: every row of the table with the same model (the random forest's set query:"
        f" the first {s['rf_set_rows']:,} rows, at ~12 ms a row); formulations in"
        " `bench/batch.py`; `predict_batch` in chunks of"
        f" {s['batch_chunk']:,} rows (one statement, `CROSS JOIN LATERAL` over id ranges).",
        "",
    ]
    return out


def _online(r: dict[str, Any]) -> list[str]:
    rows = []
    for client in ("pgbench", "psycopg"):
        for name, o in r["online"].get(client, {}).items():
            rows.append(
                [name, client, _ms(o["mean_ms"]), _ms(o["p50_ms"]), _ms(o["p99_ms"]), f"{o['n']:,}"]
            )
    http = r.get("http")
    if http:
        for client in ("httpx", "http.client"):
            o = http[client]
            rows.append(
                [
                    f"{http['model']} over HTTP",
                    client,
                    _ms(o["mean_ms"]),
                    _ms(o["p50_ms"]),
                    _ms(o["p99_ms"]),
                    f"{o['n']:,}",
                ]
            )
    if not rows:
        return []
    return ["## Online latency (one client, ms)", ""] + _table(
        ["call", "client", "mean", "p50", "p99", "calls"], rows
    )


def _throughput(r: dict[str, Any]) -> list[str]:
    rows = []
    for name, o in r.get("throughput", {}).items():
        rows.append(
            [
                name,
                "pgbench",
                str(o["clients"]),
                _rate(o["tps"]),
                _ms(o["mean_ms"]),
                _ms(o["p99_ms"]),
            ]
        )
    http = r.get("http")
    if http:
        for key, o in http.items():
            if key.startswith("c") and isinstance(o, dict) and "tps" in o:
                rows.append(
                    [
                        f"{http['model']} over HTTP",
                        "http.client",
                        str(o["clients"]),
                        _rate(o["tps"]),
                        _ms(o["mean_ms"]),
                        _ms(o["p99_ms"]),
                    ]
                )
    if not rows:
        return []
    return ["## Throughput (calls/s)", ""] + _table(
        ["call", "client", "clients", "calls/s", "mean ms", "p99 ms"], rows
    )


def _cold(r: dict[str, Any]) -> list[str]:
    rows = [
        [
            k,
            str(c["sessions"]),
            _ms(c["connect_ms_median"]),
            _ms(c["first_call_ms_median"]),
            f"{_ms(c['first_call_ms_min'])}–{_ms(c['first_call_ms_max'])}",
            _ms(c["second_call_ms_median"]),
        ]
        for k, c in r.get("cold_start", {}).items()
    ]
    if not rows:
        return []
    return ["## Cold start (new sessions, ms, medians)", ""] + _table(
        ["call", "sessions", "connect", "first call", "first call min–max", "second call"], rows
    )


def _batch(r: dict[str, Any]) -> list[str]:
    if not r["batch"]:
        return []
    out = ["## Batch scoring", ""]
    for key, b in r["batch"].items():
        raw, client = b["raw"]["rows_per_s"], b["client_job"]["rows_per_s"]
        rows = []
        for path, label in (
            ("raw", "raw `predict(X)` in memory (the limit)"),
            ("set_query", "per-row set query"),
            ("predict_into", "`pyml.predict_into`"),
            ("predict_batch", "`pyml.predict_batch` (chunked)"),
            ("client_job", "client job: COPY out, predict, COPY in"),
        ):
            x = b[path]
            rows.append(
                [
                    label,
                    f"{x.get('rows', b['rows']):,}",
                    f"{x['seconds']:.2f}",
                    _rate(x["rows_per_s"]),
                    f"{x['rows_per_s'] / raw:.2f}",
                    f"{x['rows_per_s'] / client:.2f}",
                ]
            )
        c = b["client_job"]
        out += [f"`{key}` ({b['rows']:,} rows):", ""] + _table(
            ["path", "rows", "seconds", "rows/s", "x raw", "x client job"], rows
        )
        out += [
            f"Client job split: fetch {c['fetch_seconds']:.2f} s, predict"
            f" {c['predict_seconds']:.2f} s, write {c['write_seconds']:.2f} s.",
            "",
        ]
    return out


def _load_seconds(notices: list[str]) -> str:
    """pyml's own NOTICE 'loaded n rows x k features from t in 1.23s', when it says so."""
    for notice in notices:
        found = re.search(r"loaded .* in ([\d.]+)\s*s", notice)
        if found:
            return f"{float(found.group(1)):.2f}"
    return "–"


def _training(r: dict[str, Any]) -> list[str]:
    if not r["models"] or any(m["raw_fit_seconds"] is None for m in r["models"].values()):
        return []  # no raw fit (--only onnx): nothing to compare pyml.train with
    rows = [
        [
            k,
            f"{m['train_rows']:,}",
            f"{m['train_seconds']:.2f}",
            _load_seconds(m["notices"]),
            "–" if m["pyml_fit_seconds"] is None else f"{m['pyml_fit_seconds']:.2f}",
            f"{m['raw_fit_seconds']:.2f}",
            f"{m['train_seconds'] / m['raw_fit_seconds']:.2f}",
            "yes"
            if m["raw_reproduces"].get("same")
            else f"no (max diff {m['raw_reproduces'].get('max_abs_diff', 0):.2g})",
        ]
        for k, m in r["models"].items()
    ]
    n = r["settings"].get("train_repeats", 1)
    best = f"; best of {n} runs each" if n > 1 else ""
    return [
        "## Training (seconds)",
        "",
        "`pyml.train` wall time from the client against"
        " `fit` alone of the same estimator, with the hyperparameters pyml recorded, on the"
        f" same rows in memory{best}.",
        "",
    ] + _table(
        [
            "model",
            "training rows",
            "pyml.train",
            "pyml's data load",
            "pyml's own fit_time",
            "raw fit",
            "x raw",
            "raw fit = stored model",
        ],
        rows,
    )


def _memory(r: dict[str, Any]) -> list[str]:
    mem = r.get("memory")
    if not mem:
        return []
    rows = []
    ref = mem.get("reference") or {}
    for label, x in (
        (f"{ref.get('rows', 0):,} rows (t10)", ref),
        (f"{mem['rows']:,} rows (generate_series)", mem),
    ):
        if not x:
            continue
        rows.append(
            [
                label,
                f"{x['seconds']:.1f}",
                _rate(x["rows_per_s"]),
                f"{x['baseline_rss_mb']:,.0f}",
                f"{x['peak_rss_mb']:,.0f}",
                f"{x['peak_growth_mb']:,.0f}",
            ]
        )
    return [
        f"## Memory: backend RSS during `predict_into` ({mem['model']})",
        "",
        "VmRSS of the backend (`pg_backend_pid()`) sampled every 100 ms from a thread,"
        " with VmHWM at the end; baseline after the model is loaded.",
        "",
    ] + _table(["scored", "seconds", "rows/s", "baseline MB", "peak MB", "growth MB"], rows)


def _preprocessing(r: dict[str, Any]) -> list[str]:
    pre = r.get("preprocessing")
    if not pre:
        return []
    out = ["## Preprocessing (mixed-type rows)", ""]
    d, models = pre.get("data"), pre.get("models", {})
    if d:
        nulls = d["nulls"]
        out += [
            f"Table `houses`: {d['rows']:,} rows made by numpy (seed {d['seed']}) and loaded by"
            f" COPY in {d['load_seconds']:.1f} s: id int, city text (5 values,"
            f" {nulls['city']:,} NULL), district text (12 values), size real (lognormal,"
            f" {nulls['size']:,} NULL), rooms int, garden boolean, grade text (low, mid, high;"
            f" {nulls['grade']:,} NULL), price float8 (city x size, district, grade, garden,"
            f" rooms, noise). A sixth city, `{d['unseen_city']}`, is in {d['unseen_rows']:,}"
            f" of the last {d['test_rows']:,} rows only: pyml's test rows (`test_sampling =>"
            " 'last'`), so the fitted preprocessing never saw it.",
            "",
        ]
    if models:
        p, n = models.get("pre", {}), models.get("num", {})
        rows = []
        for m, what in (
            (
                p,
                "`preprocess => " + json.dumps(p.get("preprocess_given")) + "`"
                f" on `{p.get('view')}`",
            ),
            (
                n,
                f"no preprocessing, on `{n.get('view')}`: the same 6 features as"
                " numbers (category codes, -1 for NULL or a city not in the list;"
                " size -1 when NULL)",
            ),
        ):
            if not m:
                continue
            metrics = m.get("metrics") or {}
            rows.append(
                [
                    f"`{m['project']}`",
                    what,
                    f"{m['train_seconds']:.1f}",
                    f"{metrics.get('r2', float('nan')):.4f}",
                    f"{metrics.get('mean_absolute_error', float('nan')):,.0f}",
                    ", ".join(m.get("formats", [])),
                ]
            )
        out += [
            "Models: `pyml.train(project, 'regression', view, 'price', 'lightgbm',"
            " test_sampling => 'last', preprocess => ...)`, LightGBM with pyml's defaults;"
            " exported here from `pyml.files` (`pyml.core.artifacts.load`: sha256 checked, the"
            " `skops-preprocessor` part loaded as the fitted `ColumnTransformer`; the"
            " `lightgbm-text` part into `lightgbm.Booster(model_str=...)`)"
            + (
                f"; the booster of `{p['project']}` sees {p['booster_features']} columns."
                if "booster_features" in p
                else "."
            ),
            "",
        ]
        out += _table(
            ["project", "features", "pyml.train s", "test r2", "test MAE", "parts in pyml.files"],
            rows,
        )
    o = pre.get("online")
    if o:
        sample = o["sample"]
        sk = o["sklearn_in_process"]
        labels = {
            "row": "`pyml.predict('bench_pre', ROW(%s::text, %s::text, %s::real, %s::int,"
            " %s::boolean, %s::text))`",
            "table_row": "`pyml.predict('bench_pre', h) FROM houses h WHERE id = %s`",
            "array_numeric": "`pyml.predict('bench_pre_num', %s::float8[])` (numeric model)",
            "noop": "`bench_noop(%s::float8[])` (no-op PL/Python floor, same array)",
            "sklearn_in_process": "in this process: `ColumnTransformer.transform` +"
            f" `Booster.predict` of 1 row (transform alone: mean"
            f" {_ms(sk['transform_mean_ms'])}, p50"
            f" {_ms(sk['transform_p50_ms'])})",
            "row_transform_in_process": "in this process: pyml's `RowTransform` +"
            " `Booster.predict` of 1 row",
        }
        out += [
            f"Online, one client (ms): {sample['rows']:,} rows drawn at random from"
            f" `houses` ({sample['null_city']} with a NULL city, {sample['null_size']} NULL"
            f" size, {sample['null_grade']} NULL grade, {sample['unseen_city']} with the"
            " unseen city), one call per row each. The four SQL calls on one psycopg connection"
            " (prepared, `perf_counter` around execute + fetch), each once per round in a"
            f" random order, {o['warmup_rounds']} warm-up rounds not counted; the in-process"
            " calls run in a loop of their own afterwards (a client busy for milliseconds"
            " between two SQL calls slows the next one), with one LightGBM thread as the"
            " microservice runs (its default OpenMP threads spin after each call and slow"
            " a 1-row predict and whatever runs next).",
            "",
        ]
        out += _table(
            ["call", "mean", "p50", "p99", "first call", "calls"],
            [
                [
                    label,
                    _ms(o[k]["mean_ms"]),
                    _ms(o[k]["p50_ms"]),
                    _ms(o[k]["p99_ms"]),
                    _ms(o[k]["first_call_ms"]),
                    f"{o[k]['n']:,}",
                ]
                for k, label in labels.items()
                if k in o
            ],
        )
        out += _table(
            ["ratio", "mean", "p50", "p99"],
            [
                [name, *(f"{x[stat]:.2f}" for stat in ("mean", "p50", "p99"))]
                for name, x in o["ratios"].items()
            ],
        )
    b = pre.get("batch")
    if b:
        into, num, raw = b["predict_into"], b["predict_into_numeric"], b["in_process"]
        base = num["rows_per_s"]
        paths: list[tuple[str, dict[str, Any]]] = [
            ("`pyml.predict_into('bench_pre', 'houses', 'scores')`", into),
            ("`pyml.predict_into('bench_pre_num', 'houses_num', 'scores_num')`", num),
            (
                "in this process: `ColumnTransformer.transform` + `Booster.predict` (table in"
                " memory)",
                raw,
            ),
            (
                "in this process: read + transform + predict",
                {
                    "rows": raw["rows"],
                    "seconds": raw["read_seconds"] + raw["seconds"],
                    "rows_per_s": raw["with_read_rows_per_s"],
                },
            ),
            ("in this process: numeric `Booster.predict` (in memory)", b["in_process_numeric"]),
        ]
        out += [
            f"Batch: every row of `houses` ({b['rows']:,}); `predict_into` in a session"
            " whose model is loaded, table in cache. In this process: the table read by a"
            f" binary SELECT into an object matrix in {raw['read_seconds']:.2f} s, then"
            f" `ColumnTransformer.transform` {raw['transform_seconds']:.2f} s and"
            f" `Booster.predict` {raw['predict_seconds']:.2f} s on the whole matrix (best of"
            f" {raw['repeats']}).",
            "",
        ]
        out += _table(
            ["path", "rows", "seconds", "rows/s", "x numeric predict_into"],
            [
                [
                    label,
                    f"{x['rows']:,}",
                    f"{x['seconds']:.2f}",
                    _rate(x["rows_per_s"]),
                    f"{x['rows_per_s'] / base:.2f}",
                ]
                for label, x in paths
            ],
        )
    return out


def _streaming(r: dict[str, Any]) -> list[str]:
    st = r.get("streaming")
    if not st:
        return []
    s = r["settings"]
    out = [
        f"## Streaming ({st['model']})",
        "",
        "Tables `(id bigint PRIMARY KEY, f1..f10 real)`; each stream's live model is the"
        f" `{st['model']}` model; `bench/streaming.py` says how each figure is taken.",
        "",
    ]
    ins = st.get("inserts")
    if ins:
        plain = ins["plain"]["rows_per_s"]
        rows = [
            [
                f"`{ins[v]['table']}`",
                label,
                _ms(ins[v]["mean_ms"]),
                _ms(ins[v]["p50_ms"]),
                _ms(ins[v]["p99_ms"]),
                _rate(ins[v]["rows_per_s"]),
                f"{ins[v]['rows_per_s'] / plain:.2f}",
                f"{ins[v]['n']:,}",
            ]
            for v, label in (
                ("plain", "none"),
                (
                    "noop",
                    "none; floor: PL/Python statement trigger (transition table) doing nothing",
                ),
                (
                    "outbox",
                    "none; floor: PL/pgSQL statement trigger writing an"
                    " outbox row + NOTIFY, no model",
                ),
                ("sync", "`sync`"),
                ("async", "`async` (no worker while measured)"),
            )
            if v in ins
        ]
        work = ins["async_work"]
        out += [
            "Single-row autocommit INSERTs: one pgbench client (`-M prepared`), the"
            " tables' scripts picked at random per transaction,"
            f" {ins['plain']['measured_seconds']:.1f} s measured; one client with no think"
            " time makes 1000 / mean ms inserts a second.",
            "",
        ]
        out += _table(
            ["table", "stream", "mean ms", "p50 ms", "p99 ms", "inserts/s", "x plain", "inserts"],
            rows,
        )
        out += [
            f"The async queue ({work['rows']:,} rows) was then scored by `CALL"
            f" pyml.stream_work(stream, {work['batch_size']})` in {work['seconds']:.2f} s"
            f" ({_rate(work['rows_per_s'])} rows/s).",
            "",
        ]
    multi = st.get("multirow")
    if multi:
        raw, plain = multi["raw"]["rows_per_s"], multi["plain"]["rows_per_s"]
        rows = [
            [
                label,
                _ms(multi[v]["median_ms"]),
                _ms(multi[v]["p90_ms"]),
                _rate(multi[v]["rows_per_s"]),
                f"{multi[v]['rows_per_s'] / raw:.2f}",
                f"{multi[v]['rows_per_s'] / plain:.2f}",
            ]
            for v, label in (
                ("raw", "raw `Booster.predict` (numpy, in this process)"),
                ("plain", "`INSERT ... SELECT`, no stream"),
                ("sync", "`INSERT ... SELECT`, `sync` stream"),
            )
        ]
        n = multi["rows_per_statement"]
        out += [
            f"Multi-row INSERTs of {n:,} rows (autocommit `INSERT INTO m ... SELECT ..."
            f" FROM t10` over an id range), {multi['statements']} statements each, the"
            f" three paths alternating on the same {n:,} rows:",
            "",
        ]
        out += _table(
            [f"path ({n:,} rows)", "median ms", "p90 ms", "rows/s", "x raw", "x plain INSERT"], rows
        )
    lat = st.get("latency")
    if lat:
        rows = []
        for x in lat["runs"]:
            rows.append(
                [
                    "`Consumer` (LISTEN)"
                    if x["consumer"] == "listen"
                    else f"`stream_read` every {1000 * lat['poll_seconds']:.0f} ms",
                    str(x["idle_listeners"])
                    + (f" ({x['requested']} asked)" if "requested" in x else ""),
                    f"{x['events']:,}",
                    _rate(x["achieved_rate"]),
                    _ms(x["mean_ms"]),
                    _ms(x["p50_ms"]),
                    _ms(x["p95_ms"]),
                    _ms(x["p99_ms"]),
                    _ms(x["max_ms"]),
                    f"{_ms(x['from_sent']['p50_ms'])} / {_ms(x['from_sent']['p99_ms'])}",
                    f"{x['events_per_read']:.1f}",
                    f"{_ms(x['insert_p50_ms'])} / {_ms(x['insert_p99_ms'])}",
                ]
            )
        out += [
            "End-to-end latency (ms): the commit of a single-row INSERT returned to the"
            " writer -> a consumer thread (own connection, same process) has its prediction;"
            " also from the INSERT sent (an upper bound: the commit happens in between)."
            f" The writer is paced at {s['stream_rate']:,} inserts/s for"
            f" {s['stream_seconds']:g} s for each row of the table (inserts/s: the rate it"
            " achieved, lower when it could not keep up); the Consumer and the polling"
            f" consumer alternate, {s.get('stream_rounds', 1)} runs each; idle"
            " listeners are extra connections that LISTEN on the stream's channel and never"
            " read.",
            "",
        ]
        out += _table(
            [
                "consumer",
                "idle listeners",
                "events",
                "inserts/s",
                "mean",
                "p50",
                "p95",
                "p99",
                "max",
                "from sent p50 / p99",
                "events per read",
                "writer INSERT p50 / p99",
            ],
            rows,
        )
        early = [
            f"{x['before_commit_returned']:,} of {x['events']:,} ({x['consumer']},"
            f" {x['idle_listeners']} idle)"
            for x in lat["runs"]
            if x.get("before_commit_returned")
        ]
        if early:
            out += [
                "- Predictions that reached the consumer before the writer saw its commit"
                " return (negative latencies, counted as they are): " + ", ".join(early) + "."
            ]
        out += [
            f"- {x['idle_listeners']} idle listeners: not measured: {x['reason']}."
            for x in lat["skipped"]
        ]
        ss = lat["server_settings"]
        out += [
            f"- Server: fsync {ss['fsync']}, synchronous_commit {ss['synchronous_commit']},"
            f" max_connections {ss['max_connections']}.",
            "",
        ]
    return out


def write(results: dict[str, Any], directory: Path) -> None:
    (directory / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (directory / "RESULTS.md").write_text(markdown(results))
