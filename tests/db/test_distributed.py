"""pyml train-distributed: LightGBM on a Dask cluster (a LocalCluster of 2 worker processes),
each worker reading its own key range under one exported snapshot, registered with
pyml.import_model as a normal model.

Compared with pyml.train on the same rows and hyperparameters: the split is the same (the
statistics of the training rows are equal), and the test metric is within a small tolerance
(LightGBM's data-parallel learner does not grow exactly the same trees as the serial one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from pyml.client import cli, distributed
from pyml.client.distributed import _combine, _run, _work
from pyml.errors import NullValueNotAllowed, UndefinedTable

ROWS = 30_000
# |metric(train-distributed) - metric(pyml.train)| on the same test rows: measured 6e-5 (r2) and
# 5e-4 (f1) on these tables; the tolerances leave room for LightGBM's data-parallel learner,
# which does not grow exactly the serial learner's trees.
R2_TOLERANCE = 0.005
F1_TOLERANCE = 0.01
HYPERPARAMS = {"n_estimators": 40, "num_leaves": 15}


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One LocalCluster (2 worker processes) for the module's tests that name a scheduler."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield str(cluster.scheduler_address)


@pytest.fixture(scope="module")
def houses(conn: psycopg.Connection) -> str:
    """Numbers, an integer, a boolean and a real; a price to learn (regression)."""
    conn.execute(
        "CREATE TABLE dask_houses AS SELECT i AS id, sin(i * 0.7) AS x1, i %% 17 AS x2,"
        " i %% 3 = 0 AS x3, cos(i * 1.3)::real AS x4,"
        " 3 * sin(i * 0.7) + (i %% 17) * 0.5 + (i %% 3 = 0)::int + 0.4 * cos(i * 1.3)"
        "  + 0.1 * sin(i * 12.9898) AS price"
        " FROM generate_series(1, %s) AS i",
        (ROWS,),
    )
    conn.execute("ALTER TABLE dask_houses ADD PRIMARY KEY (id)")
    return "dask_houses"


@pytest.fixture(scope="module")
def kinds(conn: psycopg.Connection) -> str:
    """Three text classes (a few labels flipped), a bigint key that is not the first column."""
    conn.execute(
        "CREATE TABLE dask_kinds AS SELECT sin(i * 0.7) AS x1, i %% 11 AS x2, i::bigint AS k,"
        " CASE WHEN (i * 7919) %% 23 = 0 THEN 'c'"
        "  WHEN sin(i * 0.7) + (i %% 11) * 0.1 > 0.8 THEN 'a'"
        "  WHEN sin(i * 0.7) > -0.3 THEN 'b' ELSE 'c' END AS kind"
        " FROM generate_series(1, %s) AS i",
        (ROWS,),
    )
    conn.execute("ALTER TABLE dask_kinds ADD PRIMARY KEY (k)")
    return "dask_kinds"


def _model(conn: psycopg.Connection, project: str) -> dict[str, Any]:
    """The project's newest model with its snapshot: metrics, classes, hyperparams, columns."""
    row = conn.execute(
        "SELECT m.id, m.metrics, m.classes, s.columns, s.row_count, s.data_fingerprint,"
        " s.test_size, s.test_sampling, s.relation_name"
        " FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " JOIN pyml.snapshots s ON s.id = m.snapshot_id WHERE p.name = %s"
        " ORDER BY m.id DESC LIMIT 1",
        (project,),
    ).fetchone()
    assert row is not None
    keys = "id metrics classes columns rows fingerprint test_size sampling relation"
    return dict(zip(keys.split(), row, strict=True))


def _same_statistics(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """Column statistics equal: exactly, but for the mean and std (rounding, 1e-9)."""
    assert [c["name"] for c in ours] == [c["name"] for c in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert set(a) == set(b), a["name"]
        for key in a:
            if key in ("mean", "std"):
                assert math.isclose(a[key], b[key], rel_tol=1e-9, abs_tol=1e-12), (a["name"], key)
            else:
                assert a[key] == b[key], (a["name"], key)


def _pyml_train(
    conn: psycopg.Connection, project: str, task: str, relation: str, label: str, sampling: str
) -> None:
    conn.execute(
        "SELECT * FROM pyml.train(%s, %s, %s, %s, algorithm => 'lightgbm',"
        " hyperparams => %s::jsonb, test_sampling => %s)",
        (project, task, relation, label, json.dumps(HYPERPARAMS), sampling),
    )


def test_regression_equals_single_machine(
    conn: psycopg.Connection, url: str, scheduler: str, houses: str
) -> None:
    _pyml_train(conn, "dask_houses_single", "regression", houses, "price", "random")
    result = distributed.train(
        "dask_houses_cluster",
        "regression",
        houses,
        "price",
        HYPERPARAMS,
        test_sampling="random",
        url=url,
        scheduler=scheduler,
        partitions=3,
    )
    assert (result.rows, result.partitions, result.deployed) == (ROWS, 3, True)
    single, ours = _model(conn, "dask_houses_single"), _model(conn, "dask_houses_cluster")
    assert ours["id"] == result.model_id
    # The same split: the statistics of the training rows are pyml.train's.
    _same_statistics(ours["columns"], single["columns"])
    assert (ours["rows"], ours["test_size"], ours["sampling"], ours["relation"]) == (
        ROWS,
        0.25,
        "random",
        "public.dask_houses",
    )
    # The same metrics, within the tolerance.
    assert set(ours["metrics"]) >= {"r2", "mean_absolute_error", "mean_squared_error"}
    assert abs(ours["metrics"]["r2"] - single["metrics"]["r2"]) <= R2_TOLERANCE
    assert ours["metrics"]["r2"] > 0.95
    # Deployed and served by pyml.predict, with the quality it recorded.
    predicted, price = zip(
        *conn.execute(
            "SELECT pyml.predict('dask_houses_cluster', ARRAY[id, x1, x2, x3::int, x4]::real[]),"
            " price FROM dask_houses ORDER BY id"
        ).fetchall(),
        strict=True,
    )
    residual = np.asarray(price) - np.asarray(predicted)
    assert 1 - residual.var() / np.var(price) > 0.95
    # The fingerprint is a hash of the partitions (not pyml.fingerprint's, which is one hash
    # of all rows), and the lineage says how the model was trained.
    assert len(ours["fingerprint"]) == 64 and ours["fingerprint"] != single["fingerprint"]
    lineage = conn.execute("SELECT pyml.lineage(%s)", (result.model_id,)).fetchone()[0]
    environment = lineage["environment"]
    assert environment["trained_by"] == "dask"
    dask = environment["dask"]
    assert dask["scheduler"] == scheduler and not dask["local_cluster"]
    assert len(dask["workers"]) == 2 and dask["snapshot"] == result.snapshot
    assert [p["rows"] for p in dask["partitions"]] == [9_999, 10_000, 10_001]  # the terciles
    assert dask["partitions"][0]["key_from"] is None and dask["partitions"][-1]["key_to"] is None
    assert set(dask["libraries"]) == {"dask", "distributed", "lightgbm"}
    assert environment["imported"]["from"]["trained_by"] == "dask"


def test_classification_from_the_command_line(
    conn: psycopg.Connection, url: str, kinds: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """The command starts its own LocalCluster (--workers 2); the stratified split of text
    classes is pyml.train's; the model predicts labels through pyml.predict_label."""
    _pyml_train(conn, "dask_kinds_single", "classification", kinds, "kind", "stratified")
    code = cli.main(
        [
            "train-distributed",
            "dask_kinds_cluster",
            kinds,
            "kind",
            "--task",
            "classification",
            "--hyperparams",
            json.dumps(HYPERPARAMS),
            "--workers",
            "2",
            "--url",
            url,
        ]
    )
    out, err = capfd.readouterr()
    assert code == 0, err
    # The result is the last line (the workers, started by the command, share its stdout).
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["project"] == "dask_kinds_cluster" and printed["partitions"] == 2
    assert printed["scheduler"].startswith("tcp://")
    single, ours = _model(conn, "dask_kinds_single"), _model(conn, "dask_kinds_cluster")
    assert ours["classes"] == single["classes"] == ["a", "b", "c"]
    _same_statistics(ours["columns"], single["columns"])
    assert abs(ours["metrics"]["f1"] - single["metrics"]["f1"]) <= F1_TOLERANCE
    labels = conn.execute(
        "SELECT pyml.predict_label('dask_kinds_cluster', ARRAY[x1, x2, k]::real[]) = kind"
        " FROM dask_kinds"
    ).fetchall()
    assert sum(ok for (ok,) in labels) / ROWS > 0.9
    lineage = conn.execute("SELECT pyml.lineage(%s)", (ours["id"],)).fetchone()[0]
    assert lineage["environment"]["dask"]["local_cluster"] is True
    assert lineage["environment"]["dask"]["key"] == "k"


def test_unknown_relation(
    conn: psycopg.Connection, url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """42P01 before any cluster starts; nothing written."""
    with pytest.raises(UndefinedTable, match='relation "dask_nowhere" does not exist') as caught:
        distributed.train("dask_nowhere", "regression", "dask_nowhere", "y", url=url)
    assert caught.value.sqlstate == "42P01"
    code = cli.main(
        [
            "train-distributed",
            "dask_nowhere",
            "dask_nowhere",
            "y",
            "--task",
            "regression",
            "--url",
            url,
        ]
    )
    assert code == 1
    assert capfd.readouterr().err == 'pyml: error: relation "dask_nowhere" does not exist\n'
    assert (
        conn.execute("SELECT count(*) FROM pyml.projects WHERE name = 'dask_nowhere'").fetchone()[0]
        == 0
    )


def test_worker_error_writes_nothing(
    conn: psycopg.Connection, url: str, scheduler: str, houses: str
) -> None:
    """A NULL feature, found by the worker that reads it: 22004 with pyml.train's message,
    and no project, snapshot or model."""
    conn.execute(
        "CREATE TABLE dask_holes AS SELECT * FROM dask_houses;"
        " ALTER TABLE dask_holes ADD PRIMARY KEY (id);"
        " UPDATE dask_holes SET x1 = NULL WHERE id = 29000"
    )
    with pytest.raises(NullValueNotAllowed, match='"x1"') as caught:
        distributed.train(
            "dask_holes", "regression", "dask_holes", "price", url=url, scheduler=scheduler
        )
    assert caught.value.sqlstate == "22004"
    assert (
        conn.execute("SELECT count(*) FROM pyml.projects WHERE name = 'dask_holes'").fetchone()[0]
        == 0
    )


def test_workers_read_the_exported_snapshot(connect: Any, url: str, houses: str) -> None:
    """A partition read with the exported snapshot's id sees the rows as of the export,
    not rows committed since."""
    exporter = connect(autocommit=False)
    exporter.commit()  # (connect() has set client_min_messages)
    exporter.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    relation = _run.relation_of(exporter, houses)
    run = _run.Run(exporter, relation, "price", "regression", _run.key_of(exporter, relation, None))
    snapshot = exporter.execute("SELECT pg_catalog.pg_export_snapshot()").fetchone()[0]
    writer = connect()
    writer.execute(
        "INSERT INTO dask_houses SELECT id + %s, x1, x2, x3, x4, price FROM dask_houses"
        " WHERE id > %s",
        (ROWS, ROWS - 500),
    )
    try:
        query, values = run._query(ROWS - 1000, None)
        piece = _work.read(url, snapshot, query, values, True)
        assert isinstance(piece, _work.Piece)
        assert piece.n == 1001 and piece.X.shape == (1001, 5)
        assert writer.execute(query.as_string(writer), values).fetchone()[0] == 1501
    finally:
        writer.execute("DELETE FROM dask_houses WHERE id > %s", (ROWS,))
        exporter.rollback()


class _InProcess:
    """Runs what would go to the workers here, at once (the combination is what is tested)."""

    def submit(self, function, *args, **kwargs):
        return function(*args)

    def gather(self, results):
        return list(results)


@pytest.mark.parametrize(
    "values",
    [
        # more than QUANTILE_SAMPLE values: the strided sample crosses partitions
        np.sin(np.arange(250_001) * 0.37) * 1e3,
        np.where(np.arange(1000) % 7 == 0, np.nan, np.arange(1000.0)),  # NULLs
        np.full(50, 2.0**62) + np.arange(50) % 3 * 1024,  # too narrow for ten bins
        np.full(40, 2.0**62),  # one value that +-0.5 does not move
        np.full(30, np.nan),  # no value
    ],
)
def test_statistics_of_partitions_are_describe_numerics(values: np.ndarray) -> None:
    """Statistics combined from uneven partitions equal describe_numeric over all values
    (mean and std to rounding)."""
    from pyml.core import statistics

    cuts = [0, len(values) // 7, len(values) // 7 + 1, len(values) // 2, len(values)]
    prepared = [
        _work.Prepared(
            values[a:b].reshape(-1, 1), np.zeros(b - a), np.empty((0, 1)), np.empty(0), []
        )
        for a, b in zip(cuts, cuts[1:], strict=False)
    ]
    (combined,) = _combine.numeric(_InProcess(), prepared, [0])
    expected = json.loads(json.dumps(statistics.describe_numeric(values)))
    _same_statistics([{"name": "x", **combined}], [{"name": "x", **expected}])
