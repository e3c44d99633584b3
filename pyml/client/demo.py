"""The demo behind ``make demo``: train, deploy and predict from plain SQL.

Runs on the embedded local server (``pyml up``) in a database of its own,
``pyml_demo``, recreated on every run. Each step prints the SQL it runs and
what came back.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import psycopg
from psycopg import sql

from pyml.client.cluster import Cluster

DEMO_DB = "pyml_demo"
PROJECT = "Breast Cancer Detection"


def show(
    conn: psycopg.Connection, title: str, query: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    print(f"\n== {title}\n   {psycopg.ClientCursor(conn).mogrify(query, params)}")
    cur = conn.execute(query, params)
    rows = cur.fetchall() if cur.description else []
    if cur.description:
        names = [c.name for c in cur.description]
        cells = [[_fmt(v) for v in row] for row in rows]
        widths = [
            max(len(n), *(len(r[i]) for r in cells)) if cells else len(n)
            for i, n in enumerate(names)
        ]
        print("   " + " | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)))
        print("   " + "-+-".join("-" * w for w in widths))
        for row in cells:
            print("   " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return "{" + ", ".join(_fmt(v) for v in value) + "}"
    return str(value)


def _fresh_database(cluster: Cluster) -> str:
    with psycopg.connect(cluster.uri("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DEMO_DB))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DB)))
    with psycopg.connect(cluster.uri(DEMO_DB), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pyml CASCADE")
    return cluster.uri(DEMO_DB)


def main() -> int:
    cluster = Cluster.for_checkout()
    uri = _fresh_database(cluster)
    print(f"pyml demo on {uri}")
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: print(f"   NOTICE: {d.message_primary}"))
        show(
            conn,
            "1. Load a dataset (offline, shipped with scikit-learn)",
            "SELECT * FROM pyml.load_dataset('breast_cancer')",
        )
        show(
            conn,
            "2. Train a first model: a linear classifier",
            "SELECT * FROM pyml.train(%s, 'classification', 'pyml.breast_cancer', 'malignant')",
            (PROJECT,),
        )
        show(
            conn,
            "3. Train a second: LightGBM (deployed only if it scores better)",
            "SELECT * FROM pyml.train(%s, algorithm => 'lightgbm')",
            (PROJECT,),
        )
        show(
            conn,
            "4. Compare them",
            "SELECT id, algorithm, round((metrics->>'f1')::numeric, 4) AS f1,"
            " round((metrics->>'roc_auc')::numeric, 4) AS roc_auc, deployed"
            " FROM pyml.trained_models WHERE project = %s ORDER BY id",
            (PROJECT,),
        )
        show(
            conn,
            "5. Deploy the best by F1",
            "SELECT * FROM pyml.deploy(%s, 'best_score')",
            (PROJECT,),
        )

        print("\n== 6. Online: one row per call")
        row = conn.execute("SELECT * FROM pyml.breast_cancer LIMIT 1").fetchone()
        assert row is not None
        features = [float(v) for v in row[:-1]]
        query = "SELECT pyml.predict(%s, %s::real[]), pyml.predict_proba(%s, %s::real[])"
        head = ", ".join(f"{v:g}" for v in features[:3])
        print(
            f"   SELECT pyml.predict('{PROJECT}', ARRAY[{head}, ...]::real[]),"
            f" pyml.predict_proba('{PROJECT}', ARRAY[{head}, ...]::real[])"
        )
        predicted = conn.execute(query, (PROJECT, features, PROJECT, features)).fetchone()
        assert predicted is not None
        prediction, proba = predicted
        print(
            f"   -> predict = {prediction:g} (malignant: {row[-1]}), "
            f"proba = [{proba[0]:.4f}, {proba[1]:.4f}]"
        )
        latencies = []
        with conn.cursor() as cur:
            for _ in range(300):
                started = time.perf_counter()
                cur.execute(
                    "SELECT pyml.predict(%s, %s::real[])", (PROJECT, features), prepare=True
                )
                cur.fetchone()
                latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        print(
            f"   300 calls from this client: mean {statistics.fmean(latencies):.3f} ms, "
            f"p50 {latencies[149]:.3f} ms, p99 {latencies[296]:.3f} ms (round trip included)"
        )

        show(
            conn,
            "7. Batch: score the whole table as a set query",
            "SELECT malignant, pyml.predict(%s, b)::int::boolean AS predicted, count(*)"
            " FROM pyml.breast_cancer b GROUP BY 1, 2 ORDER BY 1, 2",
            (PROJECT,),
        )
        conn.execute("ALTER TABLE pyml.breast_cancer ADD COLUMN id serial")
        show(
            conn,
            "8. Batch job: predict_into a table (vectorized)",
            "SELECT pyml.predict_into(%s, 'pyml.breast_cancer', 'public.scores', 'id')",
            (PROJECT,),
        )
        show(
            conn,
            "   ... the scored table",
            "SELECT id, prediction, model_id FROM public.scores ORDER BY id LIMIT 3",
        )
        show(
            conn,
            "9. What is live, and the deployment history",
            "SELECT deployment_id, project, algorithm, model_id, strategy, deployed_by"
            " FROM pyml.overview ORDER BY deployment_id",
        )
        _export(conn)
        _streaming(conn, uri)
        _monitoring(conn)
    print(f"\nDone. Explore with: psql '{uri}'")
    return 0


def _export(conn: psycopg.Connection) -> None:
    """The live model leaves the database (ONNX and its card) and predicts outside it."""
    import tempfile
    from pathlib import Path

    from pyml import edge
    from pyml.client import export

    show(
        conn,
        "10. Export: the live model as ONNX, and its card",
        "SELECT c ->> 'model_id' AS model_id, c ->> 'algorithm' AS algorithm,"
        " jsonb_array_length(c -> 'inputs') AS inputs, c -> 'outputs' ->> 0 AS first_output,"
        " c -> 'parity' ->> 'max_diff' AS max_diff_on_test_rows, c ->> 'bytes' AS bytes"
        " FROM pyml.model_card(%s) c",
        (PROJECT,),
    )
    card, data = export.fetch(conn, PROJECT)  # what `pyml export` writes
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        edge.write_pair(path, card, data)
        model = edge.Predictor(path)  # numpy and onnxruntime only: no database
        rows = conn.execute("SELECT * FROM pyml.breast_cancer ORDER BY id LIMIT 100")
        names = [c.name for c in rows.description or []]
        table = [dict(zip(names, row, strict=True)) for row in rows.fetchall()]
        outside = [model.predict(row) for row in table]
        inside = [
            r[0]
            for r in conn.execute(
                "SELECT pyml.predict(%s, b) FROM pyml.breast_cancer b ORDER BY id LIMIT 100",
                (PROJECT,),
            )
        ]
    same = sum(a == b for a, b in zip(outside, inside, strict=True))
    print(
        f"   {path.name} ({len(data):,} bytes) run by pyml.edge.Predictor in this process, "
        f"no database: {same} of {len(inside)} rows predict as pyml.predict does in SQL"
    )
    print(f"   Try: pyml export '{PROJECT}' -o model.onnx; pyml pull '{PROJECT}' --dir DIR")


def _streaming(conn: psycopg.Connection, uri: str) -> None:
    from pyml.client.consumer import Consumer

    conn.execute("CREATE TABLE arrivals (LIKE pyml.breast_cancer)")
    conn.execute("ALTER TABLE arrivals DROP COLUMN malignant, ALTER COLUMN id SET DEFAULT NULL")
    show(
        conn,
        "11. Streaming: score rows as they arrive (sync: inside the inserting transaction)",
        "SELECT pyml.stream(%s, 'arrivals', 'id') AS stream_id",
        (PROJECT,),
    )
    names = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'arrivals'::regclass"
            " AND attnum > 0 AND NOT attisdropped AND attname <> 'id' ORDER BY attnum"
        )
    ]
    features = sql.SQL(", ").join(map(sql.Identifier, names))
    insert = sql.SQL(
        "INSERT INTO arrivals (id, {0}) SELECT id + %s, {0}"
        " FROM pyml.breast_cancer ORDER BY id LIMIT %s"
    ).format(features)
    with Consumer(uri, PROJECT, "demo") as consumer:
        print("   a consumer LISTENs; single-row inserts, each its own transaction:")
        for i in range(3):
            conn.execute(insert, (1000 + i, 1))
            committed = time.perf_counter()
            events = consumer.read(timeout=2)
            received = time.perf_counter()
            for event in events:
                print(
                    f"   -> event {event.event_id}: key {event.key}, prediction "
                    f"{event.prediction:g}, model {event.model_id} "
                    f"(commit -> consumer {1000 * (received - committed):.2f} ms)"
                )
            consumer.ack(events[-1])
        print("   a 500-row INSERT: one vectorized batch, one NOTIFY")
        conn.execute(insert, (2000, 500))
        events = consumer.read(timeout=2)
        models = sorted({e.model_id for e in events if e.model_id is not None})
        print(f"   -> {len(events)} events, models {models}")
        consumer.ack(events[-1])
    conn.execute("ALTER TABLE arrivals RENAME TO arrivals_sync")
    conn.execute("CREATE TABLE arrivals (LIKE arrivals_sync)")
    show(
        conn,
        "12. Async: the trigger only queues; a worker scores in batches",
        "SELECT pyml.stream(%s, 'arrivals', 'id', mode => 'async') AS stream_id",
        (PROJECT,),
    )
    conn.execute(insert, (3000, 200))
    show(
        conn,
        "   ... queued",
        "SELECT stream_id, mode, lag, events FROM pyml.streams ORDER BY stream_id",
    )
    show(
        conn, "   ... CALL pyml.stream_work() (what `pyml worker` runs)", "CALL pyml.stream_work()"
    )
    show(
        conn,
        "   ... scored",
        "SELECT stream_id, mode, lag, events FROM pyml.streams ORDER BY stream_id",
    )
    print("   Try: pyml listen 'Breast Cancer Detection' --consumer me --source arrivals_sync")


def _monitoring(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE new_patients AS SELECT * FROM pyml.breast_cancer")
    conn.execute("ALTER TABLE new_patients DROP COLUMN id")
    conn.execute(
        'UPDATE new_patients SET "mean radius" = "mean radius" * 1.3,'
        ' "mean texture" = "mean texture" + 4'
    )
    show(
        conn,
        "13. Drift: new patients against the training rows (statistics kept at training)",
        "SELECT * FROM pyml.drift(%s, 'new_patients') ORDER BY value DESC LIMIT 6",
        (PROJECT,),
    )
    show(
        conn,
        "14. A monitoring round: on drift, retrain like the live model, deploy if better",
        "SELECT pyml.monitor(%s, 'new_patients', every => '1 hour')",
        (PROJECT,),
    )
    show(
        conn,
        "   ... one round now (pg_cron or `pyml monitor` run them on schedule)",
        "SELECT * FROM pyml.check(%s)",
        (PROJECT,),
    )
    show(
        conn,
        "   ... the report",
        "SELECT id, decision, metric, round(old_score::numeric, 4)"
        " AS old_score, round(new_score::numeric, 4) AS new_score, holdout_rows"
        " FROM pyml.drift_reports ORDER BY id",
    )


if __name__ == "__main__":
    sys.exit(main())
