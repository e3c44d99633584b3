"""What language plpyml (PostgreSQL-style errors, src/pyml.c) costs the online path.

    .venv/bin/python -m bench.error_language [--url URL] [--rounds N]

``pyml.predict(text, real[])`` runs in language plpyml: PL/Python's own handler, called
inside a PG_TRY that rewrites pyml's errors. The baseline is the same function, same body,
same attributes, created here in plain plpython3u (``bench_lang.predict_plpython``). Both
are called on the same live LightGBM model (100 trees, 31 leaves, 10 real features) with the
same rows, in the same session, alternating between the two paths round by round:

- one call per statement: prepared ``SELECT f(project, row)`` from psycopg (round trip
  included), mean, p50 and p99 per path;
- in the server: ``SELECT sum(f(project, x)) FROM rows`` over 20,000 rows, the executor
  calling the function once per row, time per call.

Printed: the figures per path and the ratio plpyml / plpython3u. Nothing is asserted.
"""

# ruff: noqa: S608 (constant SQL of the bench, no user input)

from __future__ import annotations

import argparse
import statistics
import time

import psycopg

from pyml.client.cluster import Cluster

FEATURES = 10
ROWS = 20_000
PROJECT = "bench language"
PATHS = {"plpyml": "pyml.predict", "plpython3u": "bench_lang.predict_plpython"}


def prepare(conn: psycopg.Connection) -> None:
    conn.execute("SET client_min_messages = warning")
    conn.execute("DROP SCHEMA IF EXISTS bench_lang CASCADE")
    conn.execute("CREATE SCHEMA bench_lang")
    columns = ", ".join(f"f{i} real" for i in range(FEATURES))
    values = ", ".join("random()::real" for _ in range(FEATURES))
    conn.execute(f"CREATE TABLE bench_lang.rows ({columns}, y real)")
    conn.execute("SELECT setseed(0.42)")
    conn.execute(f"INSERT INTO bench_lang.rows SELECT {values}, 0 FROM generate_series(1, {ROWS})")
    conn.execute("UPDATE bench_lang.rows SET y = f0 * 3 + sin(f1 * 6) + f2 * f3")
    conn.execute(
        "CREATE TABLE bench_lang.x AS SELECT ARRAY["
        + ", ".join(f"f{i}" for i in range(FEATURES))
        + "] AS x FROM bench_lang.rows"
    )
    if conn.execute("SELECT 1 FROM pyml.projects WHERE name = %s", (PROJECT,)).fetchone():
        conn.execute("SELECT pyml.delete_project(%s, force => true)", (PROJECT,))
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'bench_lang.rows', 'y', 'lightgbm',"
        " '{\"n_estimators\": 100, \"num_leaves\": 31}', test_sampling => 'last')",
        (PROJECT,),
    )
    # The baseline: pyml.predict(text, real[]) as it is, in plain plpython3u.
    (source, config, volatility) = conn.execute(
        "SELECT prosrc, proconfig, provolatile FROM pg_catalog.pg_proc"
        " WHERE oid = 'pyml.predict(text, real[])'::regprocedure"
    ).fetchone()
    settings = " ".join(
        f"SET {item.split('=', 1)[0]} = {item.split('=', 1)[1]}" for item in config or []
    )
    stable = {"s": "STABLE", "i": "IMMUTABLE", "v": "VOLATILE"}[volatility]
    conn.execute(
        f"CREATE FUNCTION bench_lang.predict_plpython(project_name text,"
        f" features real[]) RETURNS real LANGUAGE plpython3u {stable} {settings}"
        f" AS $bench${source}$bench$"
    )


def one_call_rounds(
    conn: psycopg.Connection, rows: list[list[float]], rounds: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    with conn.cursor() as cur:
        for function in PATHS.values():  # warm: model loaded, plans prepared
            for row in rows[:50]:
                cur.execute(f"SELECT {function}(%s, %s::real[])", (PROJECT, row), prepare=True)
        for r in range(rounds):
            order = list(PATHS.items()) if r % 2 == 0 else list(PATHS.items())[::-1]
            for path, function in order:
                query = f"SELECT {function}(%s, %s::real[])"
                for row in rows:
                    started = time.perf_counter()
                    cur.execute(query, (PROJECT, row), prepare=True)
                    cur.fetchone()
                    times[path].append(time.perf_counter() - started)
    return times


def in_server_rounds(conn: psycopg.Connection, rounds: int) -> dict[str, list[float]]:
    per_call: dict[str, list[float]] = {path: [] for path in PATHS}
    for r in range(rounds):
        order = list(PATHS.items()) if r % 2 == 0 else list(PATHS.items())[::-1]
        for path, function in order:
            started = time.perf_counter()
            conn.execute(f"SELECT sum({function}(%s, x)) FROM bench_lang.x", (PROJECT,))
            per_call[path].append((time.perf_counter() - started) / ROWS)
    return per_call


def _us(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "mean": statistics.fmean(values) * 1e6,
        "p50": ordered[len(ordered) // 2] * 1e6,
        "p99": ordered[int(len(ordered) * 0.99)] * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database with pyml (default: the local server's)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    url = args.url or Cluster.for_checkout().uri()
    with psycopg.connect(url, autocommit=True) as conn:
        prepare(conn)
        rows = [list(r[0]) for r in conn.execute("SELECT x FROM bench_lang.x LIMIT 500")]
        calls = one_call_rounds(conn, rows, args.rounds)
        server = in_server_rounds(conn, args.rounds)
        conn.execute("DROP SCHEMA bench_lang CASCADE")
        conn.execute("SELECT pyml.delete_project(%s, force => true)", (PROJECT,))
    print(
        f"one call per statement ({args.rounds} rounds x {len(rows)} calls per path,"
        " alternating), microseconds:"
    )
    figures = {path: _us(values) for path, values in calls.items()}
    for path, f in figures.items():
        print(f"  {path:11s} mean {f['mean']:7.1f}  p50 {f['p50']:7.1f}  p99 {f['p99']:7.1f}")
    ratio = figures["plpyml"]["mean"] / figures["plpython3u"]["mean"]
    print(f"  plpyml / plpython3u, mean: {ratio:.4f} ({(ratio - 1) * 100:+.2f} %)")
    print(
        f"in the server (sum over {ROWS:,} rows, {args.rounds} rounds per path),"
        " microseconds per call (median of rounds):"
    )
    medians = {path: statistics.median(values) * 1e6 for path, values in server.items()}
    for path, value in medians.items():
        print(f"  {path:11s} {value:7.2f}")
    ratio = medians["plpyml"] / medians["plpython3u"]
    print(f"  plpyml / plpython3u: {ratio:.4f} ({(ratio - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    main()
