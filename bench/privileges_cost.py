"""What per-project privileges cost the online path: pyml.predict here against a baseline.

    .venv/bin/python -m bench.privileges_cost --baseline-url postgresql://postgres@127.0.0.1:PORT/pyml

The baseline is a server running the code from before privileges (a checkout of an earlier
commit with its own ``pyml up``). Both servers get the same table (10 real features, 100,000
rows, fixed seed) and the same LightGBM model (100 trees, 31 leaves); one psycopg connection to
each then runs rounds of prepared ``pyml.predict`` calls with the same rows, alternating
between the servers so that load from elsewhere hits both alike. Here the caller is also a
role that only holds ``predict`` through ``pyml.grant`` (the owner's rights come from role
membership, a grantee's from a grant: both are cached the same way). Printed: mean, p50 and
p99 per path, and the ratio to the baseline.
"""

# ruff: noqa: S608 (constant SQL of the bench, no user input)

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import psycopg

from pyml.client.cluster import Cluster

ROWS = 100_000
FEATURES = 10
PROJECT = "bench privileges"
GRANTEE = "bench_predictor"


def _prepare(url: str, grant: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("DROP TABLE IF EXISTS bench_priv")
        columns = ", ".join(f"f{i} real" for i in range(FEATURES))
        values = ", ".join("random()::real" for _ in range(FEATURES))
        conn.execute(f"CREATE TABLE bench_priv (id int, {columns}, y real)")
        conn.execute("SELECT setseed(0.42)")
        conn.execute(
            f"INSERT INTO bench_priv SELECT g, {values}, 0 FROM generate_series(1, {ROWS}) g"
        )
        conn.execute("UPDATE bench_priv SET y = f0 * 3 + sin(f1 * 6) + f2 * f3")
        conn.execute("ALTER TABLE bench_priv DROP COLUMN id")
        if conn.execute("SELECT 1 FROM pyml.projects WHERE name = %s", (PROJECT,)).fetchone():
            conn.execute("SELECT pyml.delete_project(%s, force => true)", (PROJECT,))
        conn.execute(
            "SELECT * FROM pyml.train(%s, 'regression', 'bench_priv', 'y', 'lightgbm',"
            " '{\"n_estimators\": 100, \"num_leaves\": 31}', test_sampling => 'last')",
            (PROJECT,),
        )
        if grant:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (GRANTEE,)).fetchone():
                conn.execute(f"CREATE ROLE {GRANTEE} LOGIN")
            conn.execute("SELECT pyml.grant(%s, %s, 'predict')", (PROJECT, GRANTEE))


def _rows(url: str, n: int) -> list[list[float]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT ARRAY[{', '.join(f'f{i}' for i in range(FEATURES))}] FROM bench_priv LIMIT %s",
            (n,),
        ).fetchall()
    return [list(r[0]) for r in rows]


def _round(conn: psycopg.Connection, rows: list[list[float]]) -> list[float]:
    query = "SELECT pyml.predict(%s, %s::float8[])"
    out = []
    for row in rows:
        t0 = time.perf_counter()
        conn.execute(query, (PROJECT, row), prepare=True).fetchone()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-url", required=True)
    parser.add_argument("--url", help="default: this checkout's server, database pyml")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=5000, help="calls per round and path")
    args = parser.parse_args()
    url = args.url or Cluster.for_checkout().uri()
    _prepare(args.baseline_url, grant=False)
    _prepare(url, grant=True)
    rows = _rows(url, args.calls)
    grantee_url = url.replace("postgres@", f"{GRANTEE}@", 1)
    paths = {
        "baseline (before privileges), owner": args.baseline_url,
        "privileges, owner (superuser)": url,
        "privileges, a role granted predict": grantee_url,
    }
    conns = {name: psycopg.connect(u, autocommit=True) for name, u in paths.items()}
    for conn in conns.values():  # warm: the model loaded, the rights cached
        _round(conn, rows[:200])
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, conn in conns.items():
            times[name] += _round(conn, rows)
    base = statistics.fmean(times[next(iter(paths))])
    print(f"{args.rounds} rounds x {args.calls} prepared calls per path, interleaved\n")
    print("| path | mean ms | p50 ms | p99 ms | mean / baseline |")
    print("|---|---|---|---|---|")
    for name, values in times.items():
        ms = np.asarray(values) * 1000
        print(
            f"| {name} | {ms.mean():.3f} | {np.percentile(ms, 50):.3f} |"
            f" {np.percentile(ms, 99):.3f} | {ms.mean() / 1000 / base:.3f} |"
        )


if __name__ == "__main__":
    main()
