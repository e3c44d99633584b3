"""``pyml train-distributed``: LightGBM trained on a Dask cluster, registered as a normal model.

For training data too large for one machine. The client (this module):

1. opens one connection, starts a REPEATABLE READ transaction and exports its snapshot
   (``pg_export_snapshot()``); one query gives the row count and the key column's
   percentiles, which cut the relation into key ranges (partitions);
2. has each partition read by a Dask worker (:mod:`._work`), which connects itself, adopts
   the snapshot (``SET TRANSACTION SNAPSHOT``) and reads its range; the exporting
   transaction stays open until every worker has read, then ends;
3. splits the rows as ``pyml.train`` does (:func:`split`, over the rows in key order), fits
   ``lightgbm.dask.DaskLGBMRegressor`` or ``DaskLGBMClassifier`` on the training rows where
   they lie, and computes on the test rows (brought to the client) the metrics ``pyml.train``
   records (:func:`pyml.core.metrics.evaluate`);
4. records the snapshot's statistics (:func:`pyml.core.statistics.describe_numeric` and
   ``describe_categorical``, computed per partition and combined: see :func:`_numeric`) and a
   fingerprint, and registers the model with ``pyml.import_model`` (a bundle,
   :mod:`pyml.core.bundle`), with a lineage that names the cluster.

The rows never pass through the client, except the test rows and, for a stratified split of
classes, one class index per row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from importlib import metadata
from typing import Any, NamedTuple

import numpy as np
import psycopg
from psycopg import sql

from pyml import errors
from pyml.client.distributed import _work
from pyml.core import algorithms, artifacts, params
from pyml.core import preprocess as _preprocess
from pyml.core import statistics as stats
from pyml.errors import (
    DataException,
    FeatureNotSupported,
    InvalidParameterValue,
    NullValueNotAllowed,
    PymlError,
    UndefinedColumn,
    UndefinedObject,
    UndefinedTable,
)

__all__ = ["DistributedResult", "split", "train"]

SEED = algorithms.DEFAULT_SEED
CHECK_ROWS = 10_000  # test rows that check the ONNX part (as pyml.train)
FINGERPRINT_SCHEME = "pyml-dask-1"
_INTEGER_TYPES = ("smallint", "integer", "bigint")
# What lightgbm.dask sets itself (and warns about when given): left out of its parameters.
_CLUSTER_PARAMETERS = ("num_machines", "num_threads")


@dataclass
class DistributedResult:
    """What ``train`` did: the registered model and how it was trained."""

    project: str
    task: str
    model_id: int
    deployed: bool
    rows: int
    partitions: int
    snapshot: str  # the exported snapshot every worker read under
    scheduler: str
    metrics: dict[str, Any] = field(default_factory=dict)


class _Column(NamedTuple):
    name: str
    type: str
    category: str  # pg_type.typcategory


class _Relation(NamedTuple):
    qualified: str  # schema-qualified and quoted by PostgreSQL (format('%I.%I'))
    schema: str
    name: str
    columns: list[_Column]


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def train(
    project_name: str,
    task: str | None = None,
    relation_name: str | None = None,
    y_column_name: str | Sequence[str] | None = None,
    hyperparams: dict[str, Any] | str | None = None,
    test_size: float = 0.25,
    test_sampling: str = "stratified",
    *,
    url: str,
    scheduler: str | None = None,
    workers: int = 2,
    partitions: int | None = None,
    key: str | None = None,
    deploy: bool = True,
) -> DistributedResult:
    """Train LightGBM on a Dask cluster over ``relation_name`` and register the model in the
    database at ``url`` (``pyml.import_model``; deployed unless ``deploy`` is false).

    The arguments mirror ``pyml.train`` (algorithm ``lightgbm``); ``scheduler`` is a Dask
    scheduler's address (``tcp://host:8786``), else a ``LocalCluster`` of ``workers``
    processes is started; ``partitions`` (default: one per worker) key ranges of column
    ``key`` (default: the relation's one-column primary key, an integer) are read, each by
    one worker. The workers connect to ``url`` themselves.
    """
    started = time.perf_counter()
    params.non_empty("project_name", project_name)
    relation_arg = params.non_empty("relation_name", relation_name)
    labels = [y_column_name] if isinstance(y_column_name, str) else list(y_column_name or [])
    if len(labels) != 1:
        raise InvalidParameterValue(
            f'"y_column_name" must name one label column, got {len(labels)}',
            hint="LightGBM learns one target; train one model per label column.",
        )
    test_size = params.test_size(test_size)
    params.one_of("test_sampling", test_sampling, params.TEST_SAMPLINGS)
    params.optional_one_of("task", task, ("regression", "classification"))
    if workers < 1 or (partitions is not None and partitions < 1):
        raise InvalidParameterValue(
            f'"{"workers" if workers < 1 else "partitions"}" must be at least 1, got '
            f"{workers if workers < 1 else partitions}"
        )
    hyper = params.json_object("hyperparams", hyperparams)
    _require_dask()

    with _cluster(scheduler, workers) as (client, address, local):
        names = sorted(client.scheduler_info()["workers"])
        with psycopg.connect(url, connect_timeout=30) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            task = _task(conn, project_name, task)
            algorithm = algorithms.resolve("lightgbm", task)
            used = algorithm.make(hyper).get_params()  # checks the hyperparameters first
            relation = _relation(conn, relation_arg)
            run = _Run(conn, client, relation, labels[0], task, _key(conn, relation, key))
            snapshot = _one(conn.execute("SELECT pg_catalog.pg_export_snapshot()"))
            bounds = run.bounds(partitions or len(names))
            run.read(url, snapshot, bounds)
            conn.commit()  # every worker has read: the exported snapshot may go
            load_time = time.perf_counter() - started
            result = run.fit(used, test_size, test_sampling)
            result.lineage_extra = {
                "snapshot": snapshot,
                "scheduler": address,
                "local_cluster": local,
                "workers": names,
                "threads": {
                    w: i["nthreads"] for w, i in client.scheduler_info()["workers"].items()
                },
            }
            bundle = run.bundle(project_name, result, load_time, started)
            from pyml.core import bundle as _bundle

            model_id = _one(
                conn.execute(
                    "SELECT pyml.import_model(%s, %s, %s)",
                    (_bundle.dumps(bundle), project_name, deploy),
                )
            )
            conn.commit()
    return DistributedResult(
        project_name,
        task,
        int(model_id),
        deploy,
        run.rows,
        len(bounds),
        snapshot,
        address,
        bundle["model"]["metrics"],
    )


def _require_dask() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
        import lightgbm.dask  # noqa: F401
    except ImportError as exc:
        raise FeatureNotSupported(
            f'training on a Dask cluster needs the Python package "{exc.name}", '
            "which is not installed",
            hint="Install pyml with its dask extra: pip install 'pyml[dask]'",
        ) from exc


@contextmanager
def _cluster(scheduler: str | None, workers: int) -> Iterator[tuple[Any, str, bool]]:
    """A Dask client: of the scheduler at ``scheduler``, else of a LocalCluster of
    ``workers`` processes (one thread each: LightGBM's network is one per process)."""
    distributed = _module("distributed")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster
    if scheduler:
        with Client(scheduler, timeout="30s") as client:
            yield client, scheduler, False
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client, str(cluster.scheduler_address), True


def _module(name: str) -> Any:
    """A module of the dask extra (typed in part only: used as ``Any``)."""
    import importlib

    return importlib.import_module(name)


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    assert row is not None
    return row[0]


def _task(conn: psycopg.Connection[Any], project: str, task: str | None) -> str:
    """The project's task (checked against ``task``), or ``task`` for a new project."""
    row = conn.execute("SELECT task FROM pyml.projects WHERE name = %s", (project,)).fetchone()
    if row is None:
        if task is None:
            raise UndefinedObject(
                f'project "{project}" does not exist',
                hint="Pass task 'regression' or 'classification' to create it.",
            )
        return task
    if task is not None and task != row[0]:
        raise errors.ObjectNotInPrerequisiteState(
            f'project "{project}" has task "{row[0]}", not "{task}"',
            hint="Use another project name for another task.",
        )
    if row[0] not in ("regression", "classification"):
        raise FeatureNotSupported(f'task "{row[0]}" cannot be trained on a Dask cluster')
    return str(row[0])


def _relation(conn: psycopg.Connection[Any], name: str) -> _Relation:
    """Resolve ``name`` as PostgreSQL would (search_path, quoting): 42P01 when missing."""
    try:
        with conn.transaction():  # a savepoint: a name that cannot be parsed is no relation
            row = conn.execute(
                "SELECT c.oid, n.nspname, c.relname,"
                " pg_catalog.format('%%I.%%I', n.nspname, c.relname)"
                " FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.oid = pg_catalog.to_regclass(%s)",
                (name,),
            ).fetchone()
    except (
        psycopg.errors.SyntaxError,
        psycopg.errors.InvalidName,
        psycopg.errors.FeatureNotSupported,
    ):
        row = None
    if row is None:
        raise UndefinedTable(f'relation "{name}" does not exist')
    columns = conn.execute(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), t.typcategory::text"
        " FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
        " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (row[0],),
    ).fetchall()
    return _Relation(row[3], row[1], row[2], [_Column(*c) for c in columns])


def _key(conn: psycopg.Connection[Any], relation: _Relation, key: str | None) -> _Column:
    """The key column: ``key``, else the relation's one-column primary key; an integer."""
    if key is None:
        rows = conn.execute(
            "SELECT a.attname FROM pg_catalog.pg_index i"
            " JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid"
            "  AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid = pg_catalog.to_regclass(%s) AND i.indisprimary"
            "  AND i.indnatts = 1",
            (relation.qualified,),
        ).fetchall()
        if not rows:
            raise InvalidParameterValue(
                f'relation "{relation.qualified}" has no one-column primary key to partition by',
                hint="Name an integer key column (--key COLUMN, key => 'column').",
            )
        key = str(rows[0][0])
    column = next((c for c in relation.columns if c.name == key), None)
    if column is None:
        raise UndefinedColumn(f'column "{key}" does not exist in relation "{relation.qualified}"')
    if column.type not in _INTEGER_TYPES:
        raise InvalidParameterValue(
            f'key column "{key}" has type {column.type}, not an integer type',
            hint="Partitions are ranges of an integer key (a primary key, say).",
        )
    return column


# ---------------------------------------------------------------------------
# One training
# ---------------------------------------------------------------------------


@dataclass
class _Fit:
    classes: list[Any] | None
    metrics: dict[str, Any]
    hyperparams: dict[str, Any]
    parts: list[artifacts.Part]
    columns: list[dict[str, Any]]
    fingerprint: str
    baseline: dict[str, Any] | None
    onnx: dict[str, Any]
    split: dict[str, Any]
    timings: dict[str, float]
    lineage_extra: dict[str, Any] = field(default_factory=dict)


class _Run:
    """One training: the relation, its partitions on the cluster, what they hold."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        client: Any,
        relation: _Relation,
        label: str,
        task: str,
        key: _Column,
    ) -> None:
        self.conn, self.client, self.relation, self.task, self.key = (
            conn,
            client,
            relation,
            task,
            key,
        )
        found = next((c for c in relation.columns if c.name == label), None)
        if found is None:
            raise UndefinedColumn(
                f'column "{label}" does not exist in relation "{relation.qualified}"'
            )
        self.label = found
        self.features = [c for c in relation.columns if c.name != label]
        if not self.features:
            raise DataException(f'relation "{relation.qualified}" has no feature columns')
        rules = _preprocess.resolve(
            {},
            [
                _preprocess.Column(c.name, c.type, c.category, c.category == "A")
                for c in self.features
            ],
            [label],
            task,
        )
        unsupported = [c for c in self.features if c.category not in ("N", "B")]
        if unsupported:
            c = unsupported[0]
            raise FeatureNotSupported(
                f'column "{c.name}" has type {c.type}, which training on a Dask cluster '
                "does not read",
                detail="Feature columns must be numbers or booleans: categories, arrays and "
                "preprocessing are pyml.train's.",
                hint="Leave the column out, or cast it to a number, in a view.",
            )
        self.rules = [rules[c.name] for c in self.features]
        self.names = [c.name for c in self.features]
        self.regression = task == "regression"
        if self.regression and self.label.category not in ("N", "B"):
            raise InvalidParameterValue(
                f'label column "{label}" has type {self.label.type}, which cannot be a '
                "regression target",
                hint="Use task => 'classification' for class labels.",
            )
        self.rows = 0
        self.pieces: list[Any] = []
        self.sizes: list[int] = []
        self.digests: list[bytes] = []
        self.ranges: list[tuple[Any, Any]] = []

    # -- partitions --------------------------------------------------------

    def bounds(self, count: int) -> list[tuple[Any, Any]]:
        """Key ranges [low, high) (None: open) cutting the relation into about ``count``
        parts of equal row counts: the key's percentiles, in one query."""
        fractions = [i / count for i in range(1, count)]
        key = sql.Identifier(self.key.name)
        query = sql.SQL(
            "SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE {key} IS NULL),"
            " pg_catalog.percentile_disc(%s::pg_catalog.float8[]) WITHIN GROUP (ORDER BY {key})"
            " FROM {relation}"
        ).format(key=key, relation=sql.Identifier(self.relation.schema, self.relation.name))
        n, nulls, cuts = self.conn.execute(query, (fractions,)).fetchone() or (0, 0, [])
        if not n:
            raise DataException(f'relation "{self.relation.qualified}" has no rows')
        if nulls:
            raise NullValueNotAllowed(
                f'key column "{self.key.name}" contains NULL values',
                detail=f"{_of(nulls, n)} a NULL key, which no key range holds.",
                hint="Partition by another column (--key), or leave those rows out in a view.",
            )
        edges = sorted({c for c in (cuts or []) if c is not None})
        lows: list[Any] = [None, *edges]
        highs: list[Any] = [*edges, None]
        self.ranges = list(zip(lows, highs, strict=True))
        return self.ranges

    def _query(self, low: Any, high: Any) -> tuple[sql.Composed, list[Any]]:
        key = sql.Identifier(self.key.name)
        where: list[sql.Composable] = []
        values: list[Any] = []
        if low is not None:
            where.append(sql.SQL("{} >= %s").format(key))
            values.append(low)
        if high is not None:
            where.append(sql.SQL("{} < %s").format(key))
            values.append(high)
        condition = sql.SQL(" AND ").join(where) if where else sql.SQL("true")
        wanted = [*self.features, self.label]
        numbers = [*self.features, *([self.label] if self.regression else [])]
        aggregates = [
            sql.SQL("pg_catalog.array_send(pg_catalog.array_agg({}))").format(_float8(c))
            for c in numbers
        ]
        if not self.regression:
            aggregates.append(
                sql.SQL("pg_catalog.array_agg(s.{})").format(sql.Identifier(self.label.name))
            )
        query = sql.SQL(
            "SELECT pg_catalog.count(*), {aggregates} FROM"
            " (SELECT {columns} FROM {relation} WHERE {condition} ORDER BY {key}) AS s"
        ).format(
            aggregates=sql.SQL(", ").join(aggregates),
            columns=sql.SQL(", ").join(sql.Identifier(c.name) for c in wanted),
            relation=sql.Identifier(self.relation.schema, self.relation.name),
            condition=condition,
            key=key,
        )
        return query, values

    def read(self, url: str, snapshot: str, ranges: list[tuple[Any, Any]]) -> None:
        """Each partition read by a worker under ``snapshot``; returns once all have read
        (their rows stay on the workers) and the inputs are checked."""
        self.pieces = []
        for low, high in ranges:
            query, values = self._query(low, high)
            self.pieces.append(
                self.client.submit(
                    _work.read, url, snapshot, query, values, self.regression, pure=False
                )
            )
        summaries = self.client.gather(
            [
                self.client.submit(_work.summary, p, self.rules, self.names, self.regression)
                for p in self.pieces
            ]
        )
        for found in summaries:
            if isinstance(found, _work.Failure):
                raise _error(found)
        self.sizes = [s["n"] for s in summaries]
        self.digests = [s["digest"] for s in summaries]
        self.rows = sum(self.sizes)
        nulls = sum(s["nulls"] for s in summaries)
        infinite = sum(s["infinite"] for s in summaries)
        if nulls:
            raise NullValueNotAllowed(
                f'label column "{self.label.name}" contains NULL values',
                detail=f"{_of(nulls, self.rows)} a NULL (or NaN) label, which no model can "
                "learn from.",
                hint="Leave those rows out, for example with a view.",
            )
        if infinite:
            raise InvalidParameterValue(
                f'label column "{self.label.name}" contains infinite values',
                detail=f"{_of(infinite, self.rows)} Infinity or -Infinity as label.",
                hint="Replace them, or leave those rows out (for example with a view).",
            )
        self.classes: list[Any] | None = None
        if not self.regression:
            self.classes = sorted({c for s in summaries for c in s["classes"]})
            if len(self.classes) < 2:
                raise DataException(
                    "classification needs at least 2 classes in the label column",
                    detail=f"Found only {len(self.classes)}.",
                )

    # -- the split, the fit, the evaluation --------------------------------

    def fit(self, used: dict[str, Any], test_size: float, sampling: str) -> _Fit:
        from pyml.core.metrics import evaluate

        client = self.client
        stratify = None
        if sampling == "stratified" and self.classes is not None:
            stratify = np.concatenate(
                client.gather([client.submit(_work.codes, p, self.classes) for p in self.pieces])
            )
        train_rows, test_rows = split(self.rows, test_size, sampling, stratify)
        test = np.zeros(self.rows, dtype=bool)
        test[test_rows] = True
        offsets = np.cumsum([0, *self.sizes])
        prepared = [
            client.submit(_work.prepare, p, test[offsets[i] : offsets[i + 1]], self.classes)
            for i, p in enumerate(self.pieces)
        ]
        self.pieces = []  # the prepared partitions hold what is needed
        trains = [
            self.sizes[i] - int(test[offsets[i] : offsets[i + 1]].sum())
            for i in range(len(prepared))
        ]
        columns = self._statistics(prepared)

        fit_started = time.perf_counter()
        estimator = self._estimator(used)
        X, y = self._arrays(prepared, trains)
        with warnings.catch_warnings():  # lightgbm.dask sets the threads itself, and says so
            warnings.filterwarnings("ignore", "Parameter .* will be ignored", UserWarning)
            estimator.fit(X, y)
        local = estimator.to_local()
        fit_time = time.perf_counter() - fit_started

        score_started = time.perf_counter()
        X_test = np.concatenate(
            client.gather([client.submit(_work.part, p, "X_test") for p in prepared])
        ).reshape(-1, len(self.names))
        y_test = np.concatenate(
            client.gather([client.submit(_work.part, p, "y_test") for p in prepared])
        )
        parts = [artifacts.Part(0, "lightgbm-text", local.booster_.model_to_string().encode())]
        onnx = self._onnx(local, X_test if len(X_test) else None, parts)
        model = self._model(parts)
        metrics: dict[str, Any] = evaluate(model, X_test, y_test)
        score_time = time.perf_counter() - score_started
        metrics.update(fit_time=fit_time, score_time=score_time)
        if onnx.get("converted"):
            metrics["onnx_max_diff"] = onnx["max_diff"]
        return _Fit(
            classes=self.classes,
            metrics=metrics,
            hyperparams=dict(local.get_params()),
            parts=parts,
            columns=columns,
            fingerprint=fingerprint([*self.names, self.label.name], self.digests, self.regression),
            baseline=_baseline(model, X_test),
            onnx=onnx,
            split={
                "test_size": test_size,
                "test_sampling": sampling,
                "order": f'key column "{self.key.name}", ascending',
                "train_rows": int(len(train_rows)),
                "test_rows": int(len(test_rows)),
            },
            timings={"fit": fit_time, "score": score_time},
        )

    def _estimator(self, used: dict[str, Any]) -> Any:
        import lightgbm.dask
        from lightgbm.basic import _ConfigAliases

        cluster_set = _ConfigAliases.get(*_CLUSTER_PARAMETERS) | {"n_jobs"}
        given = {k: v for k, v in used.items() if k not in cluster_set}
        kind = (
            lightgbm.dask.DaskLGBMRegressor if self.regression else lightgbm.dask.DaskLGBMClassifier
        )
        return kind(client=self.client, **given)

    def _arrays(self, prepared: list[Any], trains: list[int]) -> tuple[Any, Any]:
        dask, da = _module("dask"), _module("dask.array")
        client, width = self.client, len(self.names)
        xs, ys = [], []
        for p, rows in zip(prepared, trains, strict=True):
            if not rows:
                continue
            X = client.submit(_work.part, p, "X_train")
            y = client.submit(_work.part, p, "y_train")
            xs.append(da.from_delayed(dask.delayed(X), shape=(rows, width), dtype=np.float64))
            ys.append(
                da.from_delayed(
                    dask.delayed(y),
                    shape=(rows,),
                    dtype=np.float64 if self.regression else np.int64,
                )
            )
        return da.concatenate(xs), da.concatenate(ys)

    def _onnx(
        self, local: Any, rows: np.ndarray | None, parts: list[artifacts.Part]
    ) -> dict[str, Any]:
        """The ONNX part, as pyml.train makes it (checked on the test rows); appended to
        ``parts`` when the model converts. What to record of it."""
        from pyml.core import onnxpart

        started = time.perf_counter()
        checked = None if rows is None else rows[:CHECK_ROWS]
        converted = onnxpart.convert(
            local, None, self.names, [False] * len(self.names), self.task, checked
        )
        seconds = time.perf_counter() - started
        if converted.data is None:
            return {"converted": False, "reason": converted.reason, "seconds": seconds}
        parts.append(artifacts.Part(len(parts), artifacts.ONNX, converted.data))
        return {
            "converted": True,
            "precision": converted.inputs,
            "max_diff": converted.diff,
            "rows": 0 if checked is None else len(checked),
            "checked_on": "test rows",
            "tolerance": onnxpart.TOLERANCE,
            "seconds": seconds,
        }

    def _model(self, parts: list[artifacts.Part]) -> Any:
        """The model as serving will load it (pyml.core.model.Model)."""
        from pyml.core.model import Model
        from pyml.core.registry import FileRow

        rows = [FileRow(p.part, p.format, p.sha256, p.data) for p in parts]
        loaded = artifacts.load(rows)
        return Model(
            onnx=artifacts.onnx_part(rows),
            id=None,
            project="",
            task=self.task,
            algorithm="lightgbm",
            feature_names=self.names,
            classes=self.classes,
            format=loaded.format,
            parts=loaded.parts,
            columns=self.names,
            preprocess={},
            preprocessor=loaded.preprocessor,
        )

    # -- statistics ----------------------------------------------------------

    def _statistics(self, prepared: list[Any]) -> list[dict[str, Any]]:
        """The snapshot's columns: name, type, role and the statistics of the training rows
        (as pyml.train records them), computed where the rows are and combined."""
        client = self.client
        numeric = list(range(len(self.names) + (1 if self.regression else 0)))
        described = _numeric(client, prepared, numeric)
        columns = [
            {"name": c.name, "type": c.type, "role": "feature", **d}
            for c, d in zip(self.features, described, strict=False)
        ]
        if self.regression:
            label = described[-1]
        else:
            label = _categories(
                client.gather([client.submit(_work.categories, p) for p in prepared])
            )
        columns.append({"name": self.label.name, "type": self.label.type, "role": "label", **label})
        return columns

    # -- the bundle ------------------------------------------------------------

    def bundle(self, project: str, fit: _Fit, load_time: float, started: float) -> dict[str, Any]:
        """The model as a bundle (contract part A), for ``pyml.import_model``."""
        from pyml import __version__
        from pyml.core import bundle

        where = self.conn.execute(
            "SELECT current_user, current_database(), pg_catalog.current_setting('server_version'),"
            " pg_catalog.now()::text"
        ).fetchone()
        assert where is not None
        cluster = {
            **fit.lineage_extra,
            "partitions": [
                {"key_from": _plain(low), "key_to": _plain(high), "rows": n}
                for (low, high), n in zip(self.ranges, self.sizes, strict=True)
            ],
            "key": self.key.name,
            "libraries": _versions("dask", "distributed", "lightgbm"),
        }
        lineage = {
            "pyml": __version__,
            "python": platform.python_version(),
            "libraries": _versions(
                "numpy",
                "scipy",
                "scikit-learn",
                "lightgbm",
                "dask",
                "distributed",
                "onnx",
                "onnxruntime",
                "onnxmltools",
            ),
            "trained_by": "dask",
            "database_user": where[0],
            "database": where[1],
            "server_version": where[2],
            "host": platform.node(),
            "trained_at": where[3],
            "relation": self.relation.qualified,
            "dask": cluster,
            "split": fit.split,
            "fingerprint": {
                "scheme": FINGERPRINT_SCHEME,
                "partitions": len(self.sizes),
                "note": "sha256 over the column names and one sha256 per partition (key "
                "order); not comparable with pyml.fingerprint",
            },
            "timings": {
                "load": load_time,
                **fit.timings,
                "total": time.perf_counter() - started,
            },
            "onnx": _jsonable(fit.onnx),
        }
        return {
            "format": bundle.FORMAT,
            "version": bundle.VERSION,
            "source": {
                "pyml_version": __version__,
                "exported_at": datetime.now(UTC).isoformat(),
                "database": where[1],
                "trained_by": "dask",
                "cluster": _jsonable(cluster),
            },
            "project": {"name": project, "task": self.task},
            "snapshot": {
                "relation_name": self.relation.qualified,
                "y_column_name": [self.label.name],
                "test_size": fit.split["test_size"],
                "test_sampling": fit.split["test_sampling"],
                "columns": _jsonable(fit.columns),
                "row_count": self.rows,
                "data_fingerprint": fit.fingerprint,
                "preprocess": {},
            },
            "model": {
                "algorithm": "lightgbm",
                "hyperparams": _jsonable(fit.hyperparams),
                "metrics": _jsonable(fit.metrics),
                "num_features": len(self.names),
                "feature_names": self.names,
                "classes": _jsonable(fit.classes),
                "preprocess": {},
                "runtime": "python",
                "lineage": _jsonable(lineage),
                "baseline": _jsonable(fit.baseline),
            },
            "files": bundle.files_of(fit.parts),
        }


# ---------------------------------------------------------------------------
# Pure steps
# ---------------------------------------------------------------------------


def split(
    n: int, test_size: float, sampling: str, stratify: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row positions: pyml.train's split (``pyml.server.training.split``,
    which the client may not import), over the rows in key order."""
    from sklearn.model_selection import train_test_split

    n_test = int(round(test_size * n)) if test_size < 1 else int(test_size)
    if n_test < 1 or n_test >= n:
        raise InvalidParameterValue(
            f'"test_size" of {test_size:g} leaves no {"test" if n_test < 1 else "training"} rows',
            detail=f"The data has {n} rows.",
        )
    rows = np.arange(n)
    if sampling == "last":
        return rows[: n - n_test], rows[n - n_test :]
    if sampling == "stratified" and stratify is not None:
        _, counts = np.unique(stratify, return_counts=True)
        if counts.min() >= 2 and n_test >= len(counts) and n - n_test >= len(counts):
            train, test = train_test_split(
                rows, test_size=n_test, random_state=SEED, stratify=stratify
            )
            return np.sort(train), np.sort(test)
    train, test = train_test_split(rows, test_size=n_test, random_state=SEED, shuffle=True)
    return np.sort(train), np.sort(test)


def fingerprint(names: Sequence[str], digests: Sequence[bytes], regression: bool) -> str:
    """The data fingerprint of the partitions: sha256 over the scheme, the column names and
    each partition's digest (:func:`._work.digest`), in key order."""
    h = hashlib.sha256(FINGERPRINT_SCHEME.encode())
    for name in names:
        h.update(b"\0" + name.encode())
    h.update(b"\0regression" if regression else b"\0classes")
    for d in digests:
        h.update(d)
    return h.hexdigest()


def _numeric(client: Any, prepared: list[Any], numeric: list[int]) -> list[dict[str, Any]]:
    """:func:`pyml.core.statistics.describe_numeric` of each numeric column's training rows,
    in three rounds over the partitions: moments; histogram, squared deviations and the
    strided sample (the same values the function samples from all rows); decile bins.

    Equal to describing all rows at once, except for the rounding of the mean and the
    standard deviation (partial sums added, rather than one pairwise sum: ~1e-15 relative).
    """
    first = client.gather([client.submit(_work.moments, p, numeric) for p in prepared])
    asks: list[dict[str, Any]] = []
    totals: list[tuple[int, int]] = []
    for j in range(len(numeric)):
        parts = [f[j] for f in first]
        present = sum(p["present"] for p in parts)
        count = sum(p["count"] for p in parts)
        totals.append((count, present))
        if not present:
            asks.append({"edges": None, "mean": 0.0, "step": 1, "start": 0})
            continue
        low = min(p["min"] for p in parts if p["min"] is not None)
        high = max(p["max"] for p in parts if p["max"] is not None)
        step = -(-present // stats.QUANTILE_SAMPLE)
        asks.append(
            {
                "edges": np.histogram_bin_edges(np.array([low, high]), bins=stats.HISTOGRAM_BINS),
                "mean": math.fsum(p["sum"] for p in parts) / present,
                "step": step,
                "low": low,
                "high": high,
                "starts": _starts([p["present"] for p in parts], step),
            }
        )
    second = client.gather(
        [
            client.submit(
                _work.spread,
                p,
                numeric,
                [{**a, "start": a["starts"][i] if "starts" in a else 0} for a in asks],
            )
            for i, p in enumerate(prepared)
        ]
    )
    described: list[dict[str, Any]] = []
    edges_all: list[Any] = []
    for j, ask in enumerate(asks):
        count, present = totals[j]
        result: dict[str, Any] = {"count": count, "nulls": count - present}
        if not present:
            described.append(result)
            edges_all.append(None)
            continue
        counts = sum(s[j]["counts"] for s in second if s[j]["counts"] is not None)
        sample = np.concatenate([s[j]["sample"] for s in second])
        quantiles = [float(q) for q in np.quantile(sample, stats.QUANTILES)]
        quantiles[0], quantiles[-1] = ask["low"], ask["high"]
        percentiles = np.quantile(sample, np.linspace(0.0, 1.0, stats.PERCENTILES))
        percentiles[0], percentiles[-1] = quantiles[0], quantiles[-1]
        edges = np.unique(quantiles[1:-1])
        squares = math.fsum(s[j]["squares"] for s in second)
        result.update(
            mean=float(ask["mean"]),
            std=float(math.sqrt(squares / present)),
            min=float(ask["low"]),
            max=float(ask["high"]),
            quantiles=quantiles,
            histogram={
                "edges": [float(e) for e in ask["edges"]],
                "counts": [int(c) for c in counts],
            },
            bins={"edges": edges.tolist(), "counts": None},
            percentiles=percentiles.tolist(),
        )
        described.append(result)
        edges_all.append(edges.tolist())
    third = client.gather([client.submit(_work.bins, p, numeric, edges_all) for p in prepared])
    for j, result in enumerate(described):
        if "bins" in result:
            result["bins"]["counts"] = [int(c) for c in sum(t[j] for t in third)]
    return described


def _starts(presents: list[int], step: int) -> list[int]:
    """Where each partition's share of the strided sample ``values[::step]`` starts."""
    starts, before = [], 0
    for count in presents:
        starts.append((-before) % step)
        before += count
    return starts


def _categories(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`pyml.core.statistics.describe_categorical` of all partitions, from each one's."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for part in parts:
        counts.update(part["categories"])
    return {
        "count": sum(p["count"] for p in parts),
        "nulls": sum(p["nulls"] for p in parts),
        "categories": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _baseline(model: Any, X: np.ndarray) -> dict[str, Any] | None:
    """The distribution of the model's predictions on the test rows (pyml.train's
    ``prediction_baseline``: what drift checks compare live predictions with)."""
    if not len(X):
        return None
    if model.task == "classification":
        return stats.describe_categorical(model.predict_label(X))
    return stats.describe_numeric(model.predict(X))


def _float8(column: _Column) -> sql.Composable:
    """A numeric column of the subquery as float8, NULL as NaN (as pyml.train reads it)."""
    ident = sql.SQL("s.{}").format(sql.Identifier(column.name))
    if column.category == "B":
        return sql.SQL("coalesce({}::pg_catalog.int4::pg_catalog.float8, 'NaN')").format(ident)
    return sql.SQL("coalesce({}::pg_catalog.float8, 'NaN')").format(ident)


def _error(failure: _work.Failure) -> PymlError:
    """A worker's error as the PymlError of its SQLSTATE (the base class for another)."""
    for value in vars(errors).values():
        if (
            isinstance(value, type)
            and issubclass(value, PymlError)
            and value.sqlstate == failure.sqlstate
        ):
            return value(failure.message, detail=failure.detail, hint=failure.hint)
    error = PymlError(failure.message, detail=failure.detail, hint=failure.hint)
    error.sqlstate = failure.sqlstate
    return error


def _of(count: int, n: int) -> str:
    return f"{count} of {n} rows {'has' if count == 1 else 'have'}"


def _plain(value: Any) -> Any:
    return int(value) if value is not None else None


def _versions(*names: str) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _jsonable(value: Any) -> Any:
    """``value`` as JSON-compatible data (numpy scalars unwrapped, non-finite floats as
    null, anything else as text): pyml.train's ``jsonable``."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

URL_HELP = "database URL (default: $PYML_URL, else the local server's database pyml)"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``train-distributed`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "train-distributed",
        help="train LightGBM on a Dask cluster and register the model",
        description="Train LightGBM (lightgbm.dask) on a Dask cluster over RELATION, each "
        "worker reading its own key ranges under one exported snapshot, and register the "
        "model with pyml.import_model (deployed unless --no-deploy). Needs pyml[dask].",
    )
    parser.add_argument("project", help="the project (created with --task when new)")
    parser.add_argument("relation", help="the training relation (a table or view)")
    parser.add_argument("label", help="the label column (y_column_name)")
    parser.add_argument("--task", choices=("regression", "classification"))
    parser.add_argument(
        "--hyperparams", default="{}", metavar="JSON", help="LightGBM parameters, a JSON object"
    )
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--test-sampling", choices=params.TEST_SAMPLINGS, default="stratified")
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a Dask scheduler (tcp://host:8786); default: a LocalCluster on this machine",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="LocalCluster worker processes (default 2)"
    )
    parser.add_argument(
        "--partitions", type=int, help="key ranges to read (default: one per worker)"
    )
    parser.add_argument(
        "--key",
        metavar="COLUMN",
        help="integer column to partition by (default: the one-column primary key)",
    )
    parser.add_argument("--no-deploy", action="store_true", help="register without deploying")
    parser.add_argument("--url", help=URL_HELP)
    return parser


def run(url: str, args: argparse.Namespace) -> int:
    """``pyml train-distributed``: 0 and a line of JSON (the result) on stdout, else 1 with
    the error (message, DETAIL, HINT) on stderr."""
    from pyml.client.export import describe

    try:
        result = train(
            args.project,
            args.task,
            args.relation,
            args.label,
            args.hyperparams,
            args.test_size,
            args.test_sampling,
            url=url,
            scheduler=args.scheduler,
            workers=args.workers,
            partitions=args.partitions,
            key=args.key,
            deploy=not args.no_deploy,
        )
    except (psycopg.Error, PymlError, ValueError) as exc:
        print(f"pyml: error: {describe(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(_jsonable(result.__dict__)))
    return 0
