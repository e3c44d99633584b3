"""One distributed training, on the client's side: the relation and its key, the partitions
read by the workers (:mod:`._work`), the split, the fit, the evaluation and the bundle."""

from __future__ import annotations

import platform
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, NamedTuple

import numpy as np
import psycopg
from psycopg import sql

from pyml import errors
from pyml.client.distributed import _combine, _work
from pyml.core import artifacts
from pyml.core import preprocess as _preprocess
from pyml.core.registry import jsonable
from pyml.core.split import split
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

CHECK_ROWS = 10_000  # test rows that check the ONNX part (as pyml.train)
_INTEGER_TYPES = ("smallint", "integer", "bigint")
# What lightgbm.dask sets itself (and warns about when given): left out of its parameters.
_CLUSTER_PARAMETERS = ("num_machines", "num_threads")


class Column(NamedTuple):
    name: str
    type: str
    category: str  # pg_type.typcategory


class Relation(NamedTuple):
    qualified: str  # schema-qualified and quoted by PostgreSQL (format('%I.%I'))
    schema: str
    name: str
    columns: list[Column]


def module(name: str) -> Any:
    """A module of the dask extra (typed in part only: used as ``Any``)."""
    import importlib

    return importlib.import_module(name)


def one(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    assert row is not None
    return row[0]


def task_of(conn: psycopg.Connection[Any], project: str, task: str | None) -> str:
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


def relation_of(conn: psycopg.Connection[Any], name: str) -> Relation:
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
    return Relation(row[3], row[1], row[2], [Column(*c) for c in columns])


def key_of(conn: psycopg.Connection[Any], relation: Relation, key: str | None) -> Column:
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
    cluster: dict[str, Any] = field(default_factory=dict)  # the cluster, as the lineage names it


class Run:
    """One training: the relation, its partitions on the cluster, what they hold."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        relation: Relation,
        label: str,
        task: str,
        key: Column,
    ) -> None:
        self.conn, self.relation, self.task, self.key = conn, relation, task, key
        self.client: Any = None  # the Dask client, once the cluster is there
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
                raise error_of(found)
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
            fingerprint=_combine.fingerprint(
                [*self.names, self.label.name], self.digests, self.regression
            ),
            baseline=_combine.baseline(model, X_test),
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
        dask, da = module("dask"), module("dask.array")
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
        described = _combine.numeric(client, prepared, numeric)
        columns = [
            {"name": c.name, "type": c.type, "role": "feature", **d}
            for c, d in zip(self.features, described, strict=False)
        ]
        if self.regression:
            label = described[-1]
        else:
            label = _combine.categories(
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
            **fit.cluster,
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
                "scheme": _combine.FINGERPRINT_SCHEME,
                "partitions": len(self.sizes),
                "note": "sha256 over the column names and one sha256 per partition (key "
                "order); not comparable with pyml.fingerprint",
            },
            "timings": {
                "load": load_time,
                **fit.timings,
                "total": time.perf_counter() - started,
            },
            "onnx": jsonable(fit.onnx),
        }
        return {
            "format": bundle.FORMAT,
            "version": bundle.VERSION,
            "source": {
                "pyml_version": __version__,
                "exported_at": datetime.now(UTC).isoformat(),
                "database": where[1],
                "trained_by": "dask",
                "cluster": jsonable(cluster),
            },
            "project": {"name": project, "task": self.task},
            "snapshot": {
                "relation_name": self.relation.qualified,
                "y_column_name": [self.label.name],
                "test_size": fit.split["test_size"],
                "test_sampling": fit.split["test_sampling"],
                "columns": jsonable(fit.columns),
                "row_count": self.rows,
                "data_fingerprint": fit.fingerprint,
                "preprocess": {},
            },
            "model": {
                "algorithm": "lightgbm",
                "hyperparams": jsonable(fit.hyperparams),
                "metrics": jsonable(fit.metrics),
                "num_features": len(self.names),
                "feature_names": self.names,
                "classes": jsonable(fit.classes),
                "preprocess": {},
                "runtime": "python",
                "lineage": jsonable(lineage),
                "baseline": jsonable(fit.baseline),
            },
            "files": bundle.files_of(fit.parts),
        }


def _float8(column: Column) -> sql.Composable:
    """A numeric column of the subquery as float8, NULL as NaN (as pyml.train reads it)."""
    ident = sql.SQL("s.{}").format(sql.Identifier(column.name))
    if column.category == "B":
        return sql.SQL("coalesce({}::pg_catalog.int4::pg_catalog.float8, 'NaN')").format(ident)
    return sql.SQL("coalesce({}::pg_catalog.float8, 'NaN')").format(ident)


def error_of(failure: _work.Failure) -> PymlError:
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
