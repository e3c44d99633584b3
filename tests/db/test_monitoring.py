"""Drift, monitoring rounds and the prediction log, on a real server.

The data: orders with a numeric price and quantity, a text colour, and an amount that
depends on all three. Samples are drawn in SQL with a fixed seed, so every number
below is reproducible; shifted samples move one numeric and one categorical feature.
"""
# ruff: noqa: S608

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from pyml.client.cluster import Cluster

LABEL = "amount"
PREPROCESS = '{"color": {"encode": "native"}}'


def _orders(
    conn: psycopg.Connection,
    name: str,
    n: int,
    seed: float,
    *,
    shift: float = 0.0,
    red: float = 1 / 3,
    slope: float = 2.0,
    label: bool = True,
) -> None:
    """``n`` orders: price ~ U(shift, shift + 100), qty ~ U{0..10}, colour red with
    probability ``red`` (else green or blue alike), amount = slope * price + 3 * qty
    (+ 40 for red) + noise."""
    table = sql.Identifier(name)
    conn.execute(
        sql.SQL("CREATE TABLE {} (price real, qty int, color text, amount real)").format(table)
    )
    conn.execute("SELECT setseed(%s)", (seed,))
    conn.execute(
        sql.SQL(
            "INSERT INTO {} SELECT price, qty, color,"
            " %s * price + 3 * qty + CASE color WHEN 'red' THEN 40 ELSE 0 END + random() * 5"
            " FROM (SELECT (random() * 100 + %s)::real AS price, (random() * 10)::int AS qty,"
            "  CASE WHEN r < %s THEN 'red' WHEN r < %s + (1 - %s) / 2 THEN 'green' ELSE 'blue' END"
            "  AS color FROM (SELECT random() AS r FROM generate_series(1, %s)) g) t"
        ).format(table),
        (slope, shift, red, red, red, n),
    )
    if not label:
        conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN amount").format(table))


def _train(
    conn: psycopg.Connection,
    project: str,
    relation: str = "orders_train",
    algorithm: str = "lightgbm",
) -> int:
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', %s, %s, %s, preprocess => %s)",
        (project, relation, LABEL, algorithm, PREPROCESS),
    )
    return conn.execute("SELECT pyml.deployed_model(%s)", (project,)).fetchone()[0]


def _drift(
    conn: psycopg.Connection, project: str, relation: str | None = None
) -> dict[tuple[str, str], tuple[float, float, bool]]:
    rows = conn.execute("SELECT * FROM pyml.drift(%s, %s)", (project, relation)).fetchall()
    return {(f, m): (v, t, d) for f, m, v, t, d in rows}


def _drifted(found: dict[tuple[str, str], tuple[float, float, bool]]) -> set[str]:
    return {feature for (feature, _), (_, _, drifted) in found.items() if drifted}


@pytest.fixture(scope="module", autouse=True)
def _data(conn: psycopg.Connection) -> None:
    _orders(conn, "orders_train", 3000, 0.1)
    _orders(conn, "orders_same", 1500, 0.2)  # the same distribution, another draw
    _orders(conn, "orders_shift", 1500, 0.3, shift=30.0, red=0.7)


# ---------------------------------------------------------------------------
# pyml.drift
# ---------------------------------------------------------------------------


def test_a_stable_sample_flags_nothing(conn: psycopg.Connection, project: str) -> None:
    _train(conn, project)
    found = _drift(conn, project, "orders_same")
    assert set(found) == {
        ("price", "psi"),
        ("price", "ks"),
        ("qty", "psi"),
        ("qty", "ks"),
        ("color", "psi"),
        ("color", "js"),
        ("__prediction__", "psi"),
        ("__prediction__", "ks"),
    }
    assert _drifted(found) == set()
    assert found[("price", "psi")][1] == pytest.approx(0.2)
    assert found[("price", "ks")][1] == pytest.approx(0.1)
    assert found[("color", "js")][1] == pytest.approx(0.1)
    assert all(0 <= value < 0.05 for value, _, _ in found.values())


def test_a_shift_flags_exactly_the_shifted_features(conn: psycopg.Connection, project: str) -> None:
    _train(conn, project)
    found = _drift(conn, project, "orders_shift")
    assert _drifted(found) - {"__prediction__"} == {"price", "color"}
    assert found[("price", "psi")][2] and found[("price", "ks")][2]
    assert found[("color", "psi")][2] and found[("color", "js")][2]
    # KS against the training rows' percentiles: close to scipy's two-sample statistic
    # against every row of the training table (3/4 of which trained the model).
    from scipy.stats import ks_2samp

    train, new = (
        [r[0] for r in conn.execute(f"SELECT price FROM {t}")]
        for t in ("orders_train", "orders_shift")
    )
    assert found[("price", "ks")][0] == pytest.approx(ks_2samp(train, new).statistic, abs=0.03)
    assert found[("__prediction__", "psi")][2]  # prices drive the amount


def test_drift_of_a_given_model_and_bad_input(conn: psycopg.Connection, project: str) -> None:
    first = _train(conn, project)
    _train(conn, project, algorithm="linear")
    rows = conn.execute(
        "SELECT count(*) FROM pyml.drift(%s, 'orders_same', %s)", (project, first)
    ).fetchone()
    assert rows[0] == 8
    cases = [
        (("no such project", "orders_same", None), "42704"),
        ((project, "no_such_table", None), "42P01"),
        ((project, "orders_same", 10**9), "42704"),
    ]
    for args, sqlstate in cases:
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT * FROM pyml.drift(%s, %s, %s)", args)
        assert err.value.sqlstate == sqlstate, args
    conn.execute("CREATE TABLE orders_no_qty AS SELECT price, color FROM orders_same")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute("SELECT * FROM pyml.drift(%s, 'orders_no_qty')", (project,))
    conn.execute(
        "SELECT * FROM pyml.train('monitoring other', 'regression', 'orders_train',"
        " 'amount', 'linear', preprocess => %s)",
        (PREPROCESS,),
    )
    other = conn.execute("SELECT pyml.deployed_model('monitoring other')").fetchone()[0]
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="belongs to"):
        conn.execute("SELECT * FROM pyml.drift(%s, 'orders_same', %s)", (project, other))


def test_drift_without_a_deployed_model_is_55000(conn: psycopg.Connection, project: str) -> None:
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'orders_train', 'amount',"
        " 'linear', automatic_deploy => false, preprocess => %s)",
        (project, PREPROCESS),
    )
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no deployed model"):
        conn.execute("SELECT * FROM pyml.drift(%s, 'orders_same')", (project,))


# ---------------------------------------------------------------------------
# pyml.check: rounds, decisions, reports, NOTIFY
# ---------------------------------------------------------------------------


def _check(conn: psycopg.Connection, project: str) -> dict:
    cur = conn.execute("SELECT * FROM pyml.check(%s)", (project,))
    names = [c.name for c in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def _report(conn: psycopg.Connection, report_id: int) -> dict:
    cur = conn.execute("SELECT * FROM pyml.drift_reports WHERE id = %s", (report_id,))
    names = [c.name for c in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def test_a_retrain_that_helps_is_deployed(
    conn: psycopg.Connection, connect: Callable[..., psycopg.Connection], project: str
) -> None:
    live = _train(conn, project)
    # New orders: prices moved, more red, and the amount now grows 3 per unit of price.
    _orders(conn, "orders_new_regime", 2000, 0.4, shift=30.0, red=0.7, slope=3.0)
    conn.execute("SELECT pyml.monitor(%s, 'orders_new_regime', '1 hour')", (project,))
    listener = connect(autocommit=True)
    listener.execute("LISTEN pyml_monitor")

    result = _check(conn, project)

    assert result["drifted"] and result["retrained"] and result["deployed"]
    assert result["old_model_id"] == live and result["new_model_id"] > live
    new = result["new_model_id"]
    assert conn.execute("SELECT pyml.deployed_model(%s)", (project,)).fetchone()[0] == new
    strategy = conn.execute(
        "SELECT strategy FROM pyml.deployments WHERE model_id = %s", (new,)
    ).fetchone()[0]
    assert strategy == "retrain"
    report = _report(conn, result["report_id"])
    assert report["decision"] == "deployed" and report["metric"] == "r2"
    assert report["old_score"] < report["new_score"]
    assert report["relation_name"] == "public.orders_new_regime"
    assert report["row_count"] == 2000 and report["holdout_rows"] == 500
    assert {f["feature"] for f in report["features"] if f["drifted"]} >= {"price", "color"}
    # The live model's score is its r2 on the candidate's held-out rows: recompute it.
    old = conn.execute(
        "WITH t AS (SELECT amount, pyml.predict(%s, ROW(price, qty, color)) AS p"
        "  FROM orders_new_regime)"
        " SELECT 1 - sum((amount - p) ^ 2) / sum((amount - avg_a) ^ 2)"
        " FROM t, (SELECT avg(amount) AS avg_a FROM orders_new_regime) a",
        (live,),
    ).fetchone()
    assert old[0] < 0.9 and report["new_score"] > 0.99  # the old rule no longer holds

    notes = list(listener.notifies(timeout=5, stop_after=1))
    assert len(notes) == 1
    payload = json.loads(notes[0].payload)
    assert payload["report_id"] == result["report_id"] and payload["decision"] == "deployed"
    assert payload["project"] == project and payload["new_model_id"] == new
    assert {"price", "color"} <= set(payload["drifted_features"])
    assert payload["old_score"] == pytest.approx(report["old_score"])

    lineage = conn.execute("SELECT pyml.lineage(%s)", (new,)).fetchone()[0]
    assert [r["id"] for r in lineage["drift_reports"]] == [result["report_id"]]
    assert lineage["drift_reports"][0]["decision"] == "deployed"
    assert lineage["deployments"][0]["strategy"] == "retrain"


def test_a_retrain_that_does_not_help_is_recorded_and_not_deployed(
    conn: psycopg.Connection, project: str
) -> None:
    # Ten features, two of which matter; the live model learnt from 4,000 rows. The new
    # rows move an irrelevant feature and are too few (12 to train) for a better fit.
    columns = ", ".join(f"x{i} real" for i in range(1, 11))
    values = ", ".join(f"(random() * 10{' + 20' if i == 3 else ''})::real" for i in range(1, 11))
    for name, n, shifted in (("wide_train", 4000, False), ("wide_new", 16, True)):
        conn.execute(f"CREATE TABLE {name} ({columns}, y real)")
        conn.execute("SELECT setseed(0.5)")
        select = values if shifted else values.replace(" + 20", "")
        conn.execute(
            f"INSERT INTO {name} SELECT *, 2 * x1 + 3 * x2 + random() * 10"
            f" FROM (SELECT {select} FROM generate_series(1, {n})) t(x1, x2, x3, x4,"
            " x5, x6, x7, x8, x9, x10)"
        )
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'wide_train', 'y', 'linear')", (project,)
    )
    live = conn.execute("SELECT pyml.deployed_model(%s)", (project,)).fetchone()[0]
    models = conn.execute("SELECT count(*) FROM pyml.models").fetchone()[0]
    conn.execute("SELECT pyml.monitor(%s, 'wide_new')", (project,))

    result = _check(conn, project)

    assert result["drifted"] and result["retrained"] and not result["deployed"]
    assert conn.execute("SELECT pyml.deployed_model(%s)", (project,)).fetchone()[0] == live
    report = _report(conn, result["report_id"])
    assert report["decision"] == "kept" and report["new_model_id"] == result["new_model_id"]
    assert report["new_score"] < report["old_score"]
    assert report["holdout_rows"] == 4
    assert "x3" in {f["feature"] for f in report["features"] if f["drifted"]}
    # The candidate stays in the registry (trained, not deployed), like any other model.
    assert conn.execute("SELECT count(*) FROM pyml.models").fetchone()[0] == models + 1
    lineage = conn.execute("SELECT pyml.lineage(%s)", (result["new_model_id"],)).fetchone()[0]
    assert lineage["drift_reports"][0]["decision"] == "kept" and not lineage["live"]


def test_no_retrain_when_disabled_and_failures_are_recorded(
    conn: psycopg.Connection, project: str
) -> None:
    live = _train(conn, project)
    models = conn.execute("SELECT count(*) FROM pyml.models").fetchone()[0]
    conn.execute("SELECT pyml.monitor(%s, 'orders_shift', retrain => false)", (project,))
    result = _check(conn, project)
    assert result["drifted"] and not result["retrained"] and not result["deployed"]
    assert result["new_model_id"] is None
    assert _report(conn, result["report_id"])["decision"] == "drifted"

    # New rows without the label: drift is measured, the retrain fails, nothing is left.
    _orders(conn, "orders_unlabelled", 500, 0.6, shift=30.0, label=False)
    conn.execute("SELECT pyml.monitor(%s, 'orders_unlabelled')", (project,))
    result = _check(conn, project)
    assert result["drifted"] and not result["retrained"] and not result["deployed"]
    report = _report(conn, result["report_id"])
    assert report["decision"] == "failed" and "amount" in report["detail"]
    assert conn.execute("SELECT count(*) FROM pyml.models").fetchone()[0] == models
    assert conn.execute("SELECT pyml.deployed_model(%s)", (project,)).fetchone()[0] == live


def test_a_round_without_a_monitor_checks_the_training_relation(
    conn: psycopg.Connection, project: str, admin_url: str
) -> None:
    _train(conn, project)
    result = _check(conn, project)
    assert not result["drifted"] and not result["retrained"]
    report = _report(conn, result["report_id"])
    assert report["decision"] == "stable" and report["relation_name"] == "public.orders_train"
    assert report["psi_threshold"] == pytest.approx(0.2) and report["row_count"] == 3000
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # nobody writes directly
        conn.execute(
            "UPDATE pyml.drift_reports SET decision = 'kept' WHERE id = %s", (result["report_id"],)
        )
    with psycopg.connect(admin_url, autocommit=True) as admin:  # and reports are history
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="cannot be changed"):
            admin.execute(
                "UPDATE pyml.drift_reports SET decision = 'kept' WHERE id = %s",
                (result["report_id"],),
            )


def test_monitor_settings_and_errors(conn: psycopg.Connection, project: str) -> None:
    _train(conn, project)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("SET client_min_messages = notice")
    first = conn.execute("SELECT pyml.monitor(%s, 'orders_same')", (project,)).fetchone()[0]
    conn.execute("SET client_min_messages = warning")
    # No pg_cron in this database: the rounds are left to `pyml monitor`, and it says so.
    assert any("run `pyml monitor`" in n for n in notices)
    again = conn.execute(
        "SELECT pyml.monitor(%s, 'orders_shift', '15 minutes', 0.5, false)", (project,)
    ).fetchone()[0]
    assert first == again
    row = conn.execute(
        "SELECT relation_name, every::text, psi_threshold, retrain"
        " FROM pyml.monitors WHERE id = %s",
        (first,),
    ).fetchone()
    assert row == ("public.orders_shift", "00:15:00", 0.5, False)
    cases = [
        (("no such project", "orders_same", "1 hour", 0.2), "42704"),
        ((project, "no_such_table", "1 hour", 0.2), "42P01"),
        ((project, "orders_same", "0 seconds", 0.2), "22023"),
        ((project, "orders_same", "-1 hour", 0.2), "22023"),
        ((project, "orders_same", "1 hour", 0.0), "22023"),
    ]
    for args, sqlstate in cases:
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT pyml.monitor(%s, %s, %s::interval, %s::real)", args)
        assert err.value.sqlstate == sqlstate, args
    # With a 0.5 threshold the shifted sample still drifts (PSI of price is above 1).
    result = _check(conn, project)
    assert result["drifted"] and not result["retrained"]
    # Unmonitoring stops the rounds and keeps the reports.
    assert conn.execute("SELECT pyml.unmonitor(%s)", (project,)).fetchone()[0] is True
    assert conn.execute("SELECT pyml.unmonitor(%s)", (project,)).fetchone()[0] is False
    assert (
        conn.execute("SELECT count(*) FROM pyml.monitors WHERE id = %s", (first,)).fetchone()[0]
        == 0
    )
    assert _report(conn, result["report_id"])["decision"] == "drifted"


def test_run_monitors_runs_due_rounds_and_the_command(
    conn: psycopg.Connection, url: str, project: str
) -> None:
    _train(conn, project)
    conn.execute("SELECT pyml.monitor(%s, 'orders_same', '1 hour')", (project,))
    rows = conn.execute(
        "SELECT project, drifted, report_id, error FROM pyml.run_monitors() WHERE project = %s",
        (project,),
    ).fetchall()
    assert len(rows) == 1 and rows[0][1] is False and rows[0][2] is not None
    assert rows[0][3] is None
    again = conn.execute(
        "SELECT count(*) FROM pyml.run_monitors() WHERE project = %s", (project,)
    ).fetchone()[0]
    assert again == 0  # not due for another hour
    # The fallback scheduler: `pyml monitor --once` runs what is due and prints it.
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'orders_train', 'amount',"
        " 'linear', preprocess => %s)",
        (project + " cli", PREPROCESS),
    )
    conn.execute("SELECT pyml.monitor(%s, 'orders_shift', retrain => false)", (project + " cli",))
    done = subprocess.run(
        [sys.executable, "-m", "pyml.client.cli", "monitor", "--url", url, "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(p["project"], p["drifted"]) for p in printed] == [(project + " cli", True)]


# ---------------------------------------------------------------------------
# The prediction log
# ---------------------------------------------------------------------------


def _logged(conn: psycopg.Connection, project: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM pyml.prediction_log l JOIN pyml.projects p"
        " ON p.id = l.project_id WHERE p.name = %s",
        (project,),
    ).fetchone()[0]


def test_logged_calls_survive_rollback_and_read_only(
    conn: psycopg.Connection, connect: Callable[..., psycopg.Connection], project: str
) -> None:
    model = _train(conn, project)
    serving = connect(autocommit=True)  # a session already serving the project
    row = "ROW(50::real, 3, 'red')"
    serving.execute(f"SELECT pyml.predict(%s, {row})", (project,))
    assert _logged(conn, project) == 0
    conn.execute("SELECT pyml.log_predictions(%s)", (project,))
    value = serving.execute(f"SELECT pyml.predict(%s, {row})", (project,)).fetchone()[0]
    with serving.transaction(force_rollback=True):
        serving.execute("SET TRANSACTION READ ONLY")
        serving.execute(f"SELECT pyml.predict(%s, {row})", (project,))
        serving.execute("SELECT pyml.predict(%s, t) FROM orders_same t LIMIT 10", (project,))
    assert _logged(conn, project) == 12
    logged = conn.execute(
        "SELECT model_id, features, prediction FROM pyml.prediction_log l"
        " JOIN pyml.projects p ON p.id = l.project_id WHERE p.name = %s"
        " ORDER BY logged_at LIMIT 1",
        (project,),
    ).fetchone()
    assert logged[0] == model
    assert logged[1] == {"f1": 50.0, "f2": 3, "f3": "red"}
    assert logged[2] == pytest.approx(value)
    # Collecting moves the spool into the table: no row lost or doubled.
    conn.execute("SELECT pyml.collect_predictions()")
    assert _logged(conn, project) == 12
    assert (
        conn.execute(
            "SELECT count(*) FROM pyml.logged_predictions l JOIN pyml.projects p"
            " ON p.id = l.project_id WHERE p.name = %s",
            (project,),
        ).fetchone()[0]
        == 12
    )
    # Rate 0 stops logging, in the serving session too.
    conn.execute("SELECT pyml.log_predictions(%s, 0)", (project,))
    serving.execute(f"SELECT pyml.predict(%s, {row})", (project,))
    assert _logged(conn, project) == 12


def test_logging_is_sampled(conn: psycopg.Connection, project: str) -> None:
    model = _train(conn, project, algorithm="linear")
    conn.execute("SELECT pyml.log_predictions(%s, 0.1)", (project,))
    conn.execute(
        "SELECT pyml.predict(%s, ROW(price, qty, color)) FROM orders_same"
        " CROSS JOIN generate_series(1, 2)",
        (project,),
    )
    logged = _logged(conn, project)
    assert 200 <= logged <= 400  # 3,000 calls at 10 %: 300 expected, sd 16
    conn.execute("SELECT pyml.log_predictions(%s, 1.0)", (project,))
    conn.execute(
        "SELECT pyml.predict(%s::bigint, ROW(price, qty, color)) FROM orders_same LIMIT 100",
        (model,),
    )  # by model id too
    assert _logged(conn, project) == logged + 100
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT pyml.log_predictions(%s, 1.5)", (project,))
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.log_predictions('no such project')")


def test_drift_of_the_logged_calls(conn: psycopg.Connection, project: str) -> None:
    stable, shifted = project[:40] + " stable", project[:40] + " shifted"
    for name, source in ((stable, "orders_same"), (shifted, "orders_shift")):
        _train(conn, name)
        with pytest.raises(psycopg.errors.DataException, match="no logged predictions"):
            conn.execute("SELECT * FROM pyml.drift(%s)", (name,))
        conn.execute("SELECT pyml.log_predictions(%s)", (name,))
        conn.execute(f"SELECT pyml.predict(%s, t) FROM {source} t", (name,))
    assert _drifted(_drift(conn, stable)) == set()
    found = _drift(conn, shifted)
    assert _drifted(found) - {"__prediction__"} == {"price", "color"}
    # The same numbers as the relation the calls came from.
    from_relation = _drift(conn, shifted, "orders_shift")
    for key, (value, _, _) in found.items():
        assert value == pytest.approx(from_relation[key][0], abs=1e-6), key


# ---------------------------------------------------------------------------
# pg_cron on the local server
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_round_runs_under_pg_cron(cluster: Cluster) -> None:
    """`pyml up` keeps pg_cron in database postgres, with one job that runs the rounds in
    database pyml: a monitor set there gets its rounds from that job, without any client,
    and pyml itself holds nothing of pg_cron's (so its dumps restore anywhere)."""
    name = f"cron round {time.time_ns()}"
    table = f"cron_orders_{time.time_ns()}"
    with psycopg.connect(cluster.uri("postgres")) as cron:
        jobs = cron.execute(
            "SELECT schedule, command, database, username FROM cron.job"
            " WHERE jobname = 'pyml-monitors'"
        ).fetchall()
    assert jobs == [("* * * * *", "SELECT * FROM pyml.run_monitors()", "pyml", "postgres")]
    with psycopg.connect(cluster.uri(), autocommit=True) as admin:
        assert (
            admin.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_cron'").fetchall()
            == []
        )
        assert admin.execute("SELECT to_regnamespace('cron')").fetchone() == (None,)
        admin.execute("SET client_min_messages = warning")
        try:
            _orders(admin, table, 800, 0.7)
            admin.execute(
                "SELECT * FROM pyml.train(%s, 'regression', %s, 'amount', 'linear',"
                " preprocess => %s)",
                (name, table, PREPROCESS),
            )
            admin.execute("SELECT pyml.monitor(%s, %s, '1 second')", (name, table))
            deadline = time.monotonic() + 130  # the job runs at the start of every minute
            report = None
            while report is None and time.monotonic() < deadline:
                report = admin.execute(
                    "SELECT r.decision, r.created_by FROM pyml.drift_reports r"
                    " JOIN pyml.projects p ON p.id = r.project_id WHERE p.name = %s",
                    (name,),
                ).fetchone()
                time.sleep(1)
            assert report == ("stable", "postgres")
        finally:
            admin.execute(
                "SELECT pyml.delete_project(name, force => true) FROM pyml.projects"
                " WHERE name = %s",
                (name,),
            )
            admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def test_drift_of_logged_class_predictions(conn: psycopg.Connection, project: str) -> None:
    """Labels logged by predict (a number) and predict_label (text) are the same classes."""
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target',"
        " 'random_forest', '{\"n_estimators\": 10}')",
        (project,),
    )
    conn.execute("SELECT pyml.log_predictions(%s)", (project,))
    features = "ARRAY[sepal_length, sepal_width, petal_length, petal_width]"
    conn.execute(f"SELECT pyml.predict(%s, {features}) FROM pyml.iris", (project,))
    conn.execute(f"SELECT pyml.predict_label(%s, {features}) FROM pyml.iris", (project,))
    found = _drift(conn, project)
    assert {m for f, m in found if f == "__prediction__"} == {"psi", "js"}
    # All 150 rows (twice) against the test rows' predictions: the same three classes.
    assert not found[("__prediction__", "psi")][2]
    labels = conn.execute(
        "SELECT array_agg(DISTINCT prediction #>> '{}') FROM pyml.prediction_log l"
        " JOIN pyml.projects p ON p.id = l.project_id WHERE p.name = %s",
        (project,),
    ).fetchone()
    assert set(labels[0]) >= {"0", "1", "2"}
