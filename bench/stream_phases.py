"""Where the time of a single-row INSERT into a table with a sync stream goes, phase by phase.

    .venv/bin/python -m bench.stream_phases [--seconds 20] [--output FILE]

One pgbench client (``-M prepared``, autocommit, one row of 10 random ``real`` features per
INSERT) picks at random, per transaction, one of these tables, so load from elsewhere hits them
alike; each is the one before plus one more phase of the trigger:

- ``plain``: no trigger;
- ``pg_noop``: a PL/pgSQL statement-level AFTER trigger with a transition table that does
  nothing (the trigger and its transition table);
- ``py_noop``: the same in PL/Python (``plpython3u``: the PL/Python call);
- ``stage0`` .. ``stage5``: pyml's own sync path, cut after each phase by a bench trigger
  (language ``plpyml`` with ``SET search_path`` like ``pyml._stream_score``) that calls the
  functions of ``pyml.server.streaming`` one after the other with the arguments of a real sync
  stream: 0 the language handler, ``SET`` and ``GD`` look-up; 1 the session and the trigger's
  verification (cached); 2 reading the statement's rows (SPI: typed values of the key and the
  features, or before issue 19 the row's text); 3 the features from what was read (the text
  parsed, before) and the live model (cached); 4 the prediction (LightGBM, one row); 5 the
  event written to the outbox and the NOTIFY (sent at commit): the whole trigger;
- ``outbox``: the floor, a PL/pgSQL trigger that writes one outbox row and NOTIFYs;
- ``outbox_pyml``: the same with pyml's own event statement (its JSON payload), into
  ``pyml.stream_events`` for a stream of its own;
- ``sync`` and ``async``: real streams (``pyml.stream``; no worker runs while measured).

The stages measure the Python path of pyml's trigger. Since issue 19 a single-row INSERT
takes it only when C cannot score the row (src/stream.c): on a session's first row, once a
second when the cached rights expire, after a deploy, and for rows C leaves to Python (a
NULL, a non-finite feature, a model the kernel does not serve); ``sync`` measures the real
trigger, C for all other rows.

Each phase's cost is the difference of mean latencies (and of medians) between its table and the
one before; ratios are rows a second against ``plain``. Every sync row must have its event.
"""

# ruff: noqa: S608  (SQL built from the bench's own constant table and column names)
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

import psycopg

from bench import data, pgbench, streaming
from bench.config import LGBM
from bench.db import Server, connect, loadavg, start_server
from bench.models import train
from pyml.server import store

DATABASE = "pyml_stream_phases"
ROWS = 20_000  # training rows of the model (its size, 100 trees of 31 leaves, is what counts)
K = 10

# The bench's trigger: pyml's sync path cut after phase TG_ARGV[4]. It runs in the server, as
# PL/Python; it calls pyml's functions, so it follows the code it measures.
STAGE_CODE = """
from pyml.server import _sqlapi, store, streaming
from pyml.server._rowtext import parse_record


def stage(plpy, GD, TD):
    upto, args, relid = int(TD["args"][4]), list(TD["args"][:4]), int(TD["relid"])
    session = _sqlapi._session(plpy, GD)
    _sqlapi._verified(plpy, GD, args, relid, "sync")
    if upto < 2:
        return None
    db = session.db
    stream = streaming._trigger_stream(args)
    if hasattr(streaming, "insert_rows"):  # typed values of plain numbers (since issue 19)
        model = session.serving.live_model(db, stream.project)
        plans = session.streams.plans
        key = ("insert", relid, model.id, stream.key_column)
        if key not in plans:
            plans[key] = streaming._insert_query(db, relid, model, stream.key_column)
        rows = db.query(plans[key])
        if upto < 3:
            return None
        values = []
        for row in rows:
            numbers = row["x"]
            if None in numbers:
                raise ValueError("the bench inserts no NULL")
            total = sum(numbers)
            if total - total:
                raise ValueError("the bench inserts finite numbers")
            values.append(numbers)
        keys = [row["k"] for row in rows]
    else:  # the row's text, parsed
        new_rows, _ = store.transition_rows(db, False, streaming.SMALL + 1)
        if upto < 3:
            return None
        model = session.serving.live_model(db, stream.project)
        rows = [parse_record(text) for text in new_rows]
        layout = streaming._layout(session, relid, len(rows[0]))
        key_at = layout.index(stream.key_column)
        feature_at = [layout.index(name) for name in model.columns]
        imputed = model.imputed_columns()
        values = [
            layout.numbers(row, feature_at, stream.key_column, row[key_at], imputed)
            for row in rows
        ]
        keys = [row[key_at] for row in rows]
    if upto < 4:
        return None
    predictions = [model.online_predictor()(values[0])]
    if upto < 5:
        return None
    scored = streaming.Scored(keys, predictions, model.id, streaming._inline(keys))
    if "last" in streaming._publish.__code__.co_varnames:  # deferred (since issue 19)
        streaming._publish(db, stream, scored, last=True)
    else:
        streaming._publish(db, stream, scored)
    return None


GD["bench_stage"] = stage
"""

SETUP = (
    "CREATE FUNCTION bench_stage_install() RETURNS void LANGUAGE plpython3u AS $code$"
    + STAGE_CODE
    + "$code$",
    "CREATE FUNCTION bench_stage() RETURNS trigger LANGUAGE plpyml"
    " SET search_path = pg_catalog, pg_temp AS $$\n"
    'if "pyml" not in GD:\n'
    '    plpy.execute("SELECT pyml._boot()")\n'
    'if TD["args"][4] == "0":\n'
    "    return None\n"
    'if "bench_stage" not in GD:\n'
    '    plpy.execute("SELECT public.bench_stage_install()")\n'
    'return GD["bench_stage"](plpy, GD, TD)\n'
    "$$",
    "CREATE FUNCTION bench_pg_noop() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN RETURN NULL; END $$",
    "CREATE FUNCTION bench_py_noop() RETURNS trigger LANGUAGE plpython3u AS $$ return None $$",
    *streaming.OUTBOX_FLOOR,
)

STAGES = 6
# (variant, what it adds to the variant before it)
PHASES = (
    ("plain", "INSERT, commit (no trigger)"),
    ("pg_noop", "AFTER STATEMENT trigger with a transition table (PL/pgSQL, empty)"),
    ("py_noop", "PL/Python call (plpython3u, empty)"),
    ("stage0", "pyml's language handler, SET search_path, GD look-up"),
    ("stage1", "session, trigger verification (cached)"),
    ("stage2", "read the statement's rows (SPI)"),
    ("stage3", "features from what was read (live model, cached)"),
    ("stage4", "predict (LightGBM, one row)"),
    ("stage5", "event into the outbox + NOTIFY (deferred to the language handler, commit)"),
)


def _table(conn: psycopg.Connection, name: str) -> None:
    columns = ", ".join(f"f{i} real" for i in range(1, K + 1))
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(
        f"CREATE TABLE {name} (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, {columns})"
    )


def _trigger(conn: psycopg.Connection, table: str, function: str) -> None:
    conn.execute(
        f"CREATE TRIGGER bench_{table} AFTER INSERT ON {table} REFERENCING NEW TABLE AS"
        f" bench_new FOR EACH STATEMENT EXECUTE FUNCTION {function}"
    )


def _stream(conn: psycopg.Connection, project: str, table: str, mode: str) -> int:
    row = conn.execute("SELECT pyml.stream(%s, %s, 'id', %s)", (project, table, mode)).fetchone()
    assert row is not None
    return int(row[0])


def _outbox_pyml(conn: psycopg.Connection, project: str, table: str) -> None:
    """The floor with pyml's event statement: a stream of the table's own, its trigger
    replaced by a PL/pgSQL one that runs that statement for the row (model id 0)."""
    stream_id = _stream(conn, project, table, "sync")
    conn.execute(f"DROP TRIGGER pyml_stream_{stream_id}_insert ON {table}")
    statement = store.event_statement()
    for n, value in enumerate(
        (str(stream_id), "n.id::text", "0.5::real", "0::bigint", "'bench_outbox'", "true"),
        start=1,
    ):
        statement = statement.replace(f"${n}", value)
    # the statement's one row (a CTE with the INSERT) is the trigger row's: FROM the
    # transition table, whose row the VALUES list cannot name
    statement = statement.replace(" VALUES (", " SELECT ").replace(
        ") RETURNING", " FROM bench_new n RETURNING", 1
    )
    conn.execute(
        "CREATE FUNCTION bench_outbox_pyml() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE sent text; BEGIN "
        + statement.replace(" FROM e", " INTO sent FROM e")
        + "; RETURN NULL; END $$"
    )
    _trigger(conn, table, "bench_outbox_pyml()")


def prepare(server: Server) -> tuple[dict[str, str], int]:
    """The bench database, the model, the tables and their triggers: {variant: table}, and the
    sync stream's id."""
    data.recreate_database(server)
    spec = replace(LGBM, project="bench_stream_phases")
    tables = {name: f"s_{name}" for name, _ in PHASES} | {
        "outbox": "s_outbox",
        "outbox_pyml": "s_outbox_pyml",
        "sync": "s_sync",
        "async": "s_async",
    }
    with connect(server.uri) as conn:
        data.build_table(conn, spec.table, ROWS, K)
        train(conn, spec, ROWS)
        for statement in SETUP:
            conn.execute(statement)
        for table in tables.values():
            _table(conn, table)
        _trigger(conn, tables["pg_noop"], "bench_pg_noop()")
        _trigger(conn, tables["py_noop"], "bench_py_noop()")
        _trigger(conn, tables["outbox"], "bench_outbox_trigger()")
        stream_id = _stream(conn, spec.project, tables["sync"], "sync")
        _outbox_pyml(conn, spec.project, tables["outbox_pyml"])
        _stream(conn, spec.project, tables["async"], "async")
        for n in range(STAGES):
            table = tables[f"stage{n}"]
            # pyml's own arguments (checked by the verification), the phase last; pyml's
            # trigger replaced by the bench's: only insert triggers are measured
            stage_id = _stream(conn, spec.project, table, "sync")
            args = conn.execute(
                "SELECT id, project, key_column, channel FROM pyml.stream_definitions d"
                " JOIN (SELECT id AS pid, name AS project FROM pyml.projects) p"
                " ON p.pid = d.project_id WHERE id = %s",
                (stage_id,),
            ).fetchone()
            assert args is not None
            conn.execute(f"DROP TRIGGER pyml_stream_{stage_id}_insert ON {table}")
            literal = ", ".join(f"'{a}'" for a in args)
            conn.execute(
                f"CREATE TRIGGER bench_{table} AFTER INSERT ON {table} REFERENCING NEW TABLE"
                f" AS pyml_new FOR EACH STATEMENT EXECUTE FUNCTION bench_stage({literal}, '{n}')"
            )
        conn.execute("VACUUM ANALYZE")
    return tables, stream_id


def _script(table: str) -> str:
    lines = [f"\\set f{i} random(0, 999999) / 1000000.0" for i in range(1, K + 1)]
    names = ", ".join(f"f{i}" for i in range(1, K + 1))
    values = ", ".join(f":f{i}" for i in range(1, K + 1))
    return "\n".join(lines) + f"\nINSERT INTO {table} ({names}) VALUES ({values});\n"


def measure(server: Server, tables: dict[str, str], seconds: float) -> dict[str, Any]:
    load_before = loadavg()
    runs = pgbench.run(
        server,
        {variant: _script(table) for variant, table in tables.items()},
        clients=1,
        seconds=seconds,
        warmup=1.0,
        cold_allowance=5.0,
    )
    out: dict[str, Any] = {
        "load": {"before": load_before, "after": loadavg()},
        "command": next(iter(runs.values()))["command"],
        "variants": {
            v: {k: r[k] for k in ("n", "mean_ms", "p50_ms", "p99_ms")} for v, r in runs.items()
        },
    }
    plain = runs["plain"]
    out["ratios"] = {
        v: {"mean": plain["mean_ms"] / r["mean_ms"], "p50": plain["p50_ms"] / r["p50_ms"]}
        for v, r in runs.items()
    }
    phases = []
    for (variant, what), (before, _) in zip(PHASES[1:], PHASES[:-1], strict=True):
        phases.append(
            {
                "variant": variant,
                "phase": what,
                "mean_us": (runs[variant]["mean_ms"] - runs[before]["mean_ms"]) * 1000,
                "p50_us": (runs[variant]["p50_ms"] - runs[before]["p50_ms"]) * 1000,
            }
        )
    out["phases"] = phases
    return out


def check(server: Server, tables: dict[str, str], stream_id: int) -> int:
    """Every row of the sync stream's table has exactly one event; the rows checked."""
    with connect(server.uri) as conn:
        rows = conn.execute(f"SELECT count(*) FROM {tables['sync']}").fetchone()
        events = conn.execute(
            "SELECT count(*), count(DISTINCT key) FROM pyml.stream_events WHERE stream_id = %s",
            (stream_id,),
        ).fetchone()
    assert rows is not None and events is not None
    if not rows[0] == events[0] == events[1]:
        raise AssertionError(f"sync stream: {rows[0]} rows, {events[0]} events ({events[1]} keys)")
    return int(rows[0])


def report(result: dict[str, Any]) -> str:
    v, r = result["variants"], result["ratios"]
    lines = [
        f"load average {result['load']['before']:.2f} before, {result['load']['after']:.2f} after",
        "",
        "| phase (variant) | mean µs | p50 µs |",
        "|---|---|---|",
        f"| INSERT, commit (plain) | {v['plain']['mean_ms'] * 1000:.0f} |"
        f" {v['plain']['p50_ms'] * 1000:.0f} |",
    ]
    for p in result["phases"]:
        lines.append(
            f"| + {p['phase']} ({p['variant']}) | {p['mean_us']:.1f} | {p['p50_us']:.1f} |"
        )
    lines += [
        "",
        "| variant | n | mean ms | p50 ms | rows/s vs plain (mean) | (p50) |",
        "|---|---|---|---|---|---|",
    ]
    for name, stats in v.items():
        lines.append(
            f"| {name} | {stats['n']} | {stats['mean_ms']:.3f} | {stats['p50_ms']:.3f} |"
            f" {r[name]['mean']:.2f} | {r[name]['p50']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--output", help="also write the figures here (JSON)")
    args = parser.parse_args()
    server = start_server(DATABASE)
    tables, stream_id = prepare(server)
    result = measure(server, tables, args.seconds)
    result["sync_rows_checked"] = check(server, tables, stream_id)
    print(report(result))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
