"""Training: read a snapshot, split, fit, evaluate, store, maybe deploy.

The steps that touch the database go through :mod:`pyml.server.store`; everything
else here works on numpy arrays and estimators.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import metadata
from typing import Any, NamedTuple

import numpy as np

from pyml.core import algorithms, artifacts
from pyml.core import preprocess as _preprocess
from pyml.core import statistics as stats
from pyml.core.metrics import KEY_METRIC, evaluate
from pyml.core.model import Model
from pyml.core.registry import jsonable
from pyml.core.split import split, take
from pyml.core.timing import Phases
from pyml.errors import (
    DataException,
    InvalidParameterValue,
    NullValueNotAllowed,
    ObjectNotInPrerequisiteState,
    UndefinedObject,
)
from pyml.server import _beside, privileges, search, store
from pyml.server._db import Db

SEED = algorithms.DEFAULT_SEED


@dataclass
class TrainRequest:
    project_name: str
    task: str | None = None
    relation_name: str | None = None
    y_column_name: list[str] | None = None
    algorithm: str | None = None  # None: the task's default (algorithms.DEFAULTS)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    search: str | None = None
    search_params: dict[str, Any] = field(default_factory=dict)
    search_args: dict[str, Any] = field(default_factory=dict)
    test_size: float = 0.25
    test_sampling: str = "stratified"
    runtime: str = "python"
    automatic_deploy: bool = True
    materialize_snapshot: bool = False
    preprocess: dict[str, Any] = field(default_factory=dict)
    search_path: str | None = None  # the caller's, to resolve relation_name


@dataclass
class TrainResult:
    project: str
    task: str
    algorithm: str
    deployed: bool
    model_id: int
    metrics: dict[str, Any] = field(default_factory=dict)
    # The test rows (inputs, labels as class indices or targets), the classes and the input
    # names, kept in
    # memory for a caller that scores another model on the same rows (pyml.check).
    holdout: tuple[np.ndarray, np.ndarray, list[Any] | None, list[str]] | None = None


@dataclass
class Snapshot:
    """Training data as read, with how to split it."""

    id: int
    relation: str
    y_columns: list[str]
    test_size: float
    test_sampling: str
    data: TrainingData
    rows: Split | None = None  # the split, when already made (a new snapshot's statistics)
    # A new snapshot not recorded yet (id 0): what record() writes, the relation read and
    # the preprocessing asked for
    unrecorded: tuple[store.Relation, dict[str, Any]] | None = None

    def record(self, db: Db, phases: Phases | None = None) -> None:
        """Write a new snapshot's row: its statistics (of the training rows), fingerprint
        and preprocessing. ``pyml.train`` does it while the model is converted to ONNX."""
        if self.unrecorded is None:
            return
        relation, preprocess = self.unrecorded
        phases = phases or Phases()
        assert self.data.summary is not None  # begun as it was read (read_training_data)
        with phases("statistics"):
            columns = self.data.summary.columns()
        with phases("snapshot"):
            self.id = store.insert_snapshot(
                db,
                relation_name=relation.qualified,
                y_column_name=self.y_columns,
                test_size=self.test_size,
                test_sampling=self.test_sampling,
                columns=columns,
                row_count=len(self.data.X),
                data_fingerprint=self.data.fingerprint,
                materialized=False,
                preprocess=preprocess,
            )
        self.unrecorded = None


class Split(NamedTuple):
    """Labels as class indices (or float targets), and the training and test rows."""

    classes: list[Any] | None
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray


def split_rows(data: TrainingData, task: str | None, test_size: float, sampling: str) -> Split:
    """Encode the labels and split the rows, the same way for every caller."""
    return _split(len(data.X), data.labels, task, test_size, sampling)


def _split(n: int, labels: Any, task: str | None, test_size: float, sampling: str) -> Split:
    if task is None or task in algorithms.UNSUPERVISED_TASKS:
        classes, y = None, np.zeros(n)  # no label (or no task yet): split only
    else:
        classes, y = encode_labels(labels, task)
    train, test = split(n, test_size, sampling, y if task == "classification" else None)
    return Split(classes, y, train, test)


class TrainingData(NamedTuple):
    """The rows of a relation, read for training."""

    X: np.ndarray  # inputs: float64, or object when some columns are categories (text)
    labels: Any  # native labels (classification), float targets, or None
    names: list[str]  # input names: columns, array columns as column[i]
    fingerprint: str
    columns: list[str]  # the feature columns
    rules: dict[str, _preprocess.Rule]  # preprocessing of each feature column
    described: list[tuple[dict[str, Any], Any, dict[str, Any]]]  # per column (features, then
    # labels): name, type and role; the values as read; the preprocessing asked for
    rows: Split | None = None  # a new snapshot's split ...
    summary: Description | None = None  # ... and the statistics of its training rows

    def input_rules(self) -> list[_preprocess.Rule]:
        return _preprocess.input_rules(self.rules, self.columns, self.names)


# ---------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------


def train(db: Db, req: TrainRequest) -> TrainResult:
    phases = Phases()
    started = phases.started
    with phases("project"):
        project = _project(db, req)
    task = project.task
    with phases("validate"):
        algorithm = algorithms.resolve(req.algorithm, task)
        estimator = algorithm.make(req.hyperparams)  # checks hyperparameters before reading
        search.check(algorithm, req)

    snapshot = _snapshot(db, req, project, task, phases)
    data = snapshot.data
    load_time = time.perf_counter() - started
    db.notice(
        f"pyml: loaded {len(data.X)} rows x {data.X.shape[1]} features from "
        f"{snapshot.relation} in {load_time:.2f}s"
    )
    with phases("split"):
        classes, y, train_idx, test_idx = snapshot.rows or split_rows(
            data, task, snapshot.test_size, snapshot.test_sampling
        )
    db.notice(
        f"pyml: fitting {algorithm.name} on {len(train_idx)} rows, testing on {len(test_idx)}"
    )

    from pyml.server import fitting

    with phases("imports"):  # once a session: every child inherits them
        fitting.import_converters(algorithm.library)
    forking = time.perf_counter()
    with fitting.start(db, algorithm, estimator, data, y, train_idx, test_idx, task, req) as child:
        fit = child.model()
        phases.add("child", time.perf_counter() - forking)  # fork, fit, the model back
        for name, seconds in fit.timings.items():
            phases.add(f"child_{name}", seconds)
        fit_time, parts, preprocess, search_results = (
            fit.seconds,
            fit.parts,
            fit.preprocess,
            fit.search_results,
        )
        X_test = take(data.X, test_idx)  # a view for test_sampling 'last'
        snapshot.record(db, phases)  # a new snapshot's row, while the child converts
        onnx = None
        if parts[0].format == "skops":  # predicts through its ONNX part: wait for it
            with phases("onnx_wait"):
                onnx = child.onnx()
        score_started = time.perf_counter()
        with phases("artifacts"):
            loaded = artifacts.load(_rows(parts))  # what serving will load: check it now
            model = _Scored(
                onnx=artifacts.onnx_part(_rows(_with(parts, onnx))),
                id=None,
                project=project.name,
                task=task,
                algorithm=algorithm.name,
                feature_names=data.names,
                classes=classes,
                format=loaded.format,
                parts=loaded.parts,
                columns=data.columns,
                preprocess=preprocess,
                preprocessor=loaded.preprocessor,
            )
        with phases("evaluate"):
            metrics: dict[str, Any] = evaluate(model, X_test, y[test_idx])
        score_time = time.perf_counter() - score_started
        with phases("baseline"):  # the predictions evaluate() made (see _Scored)
            baseline = prediction_baseline(model, X_test)
        with phases("lineage"):
            where = store.context(db)
            lineage = _lineage(algorithm, where, snapshot)
        if onnx is None:  # converted while this process evaluated
            with phases("onnx_wait"):
                onnx = child.onnx()
            with phases("artifacts"):
                artifacts.onnx_part(_rows(_with(parts, onnx)))  # what serving will check
        for name, seconds in onnx.timings.items():
            phases.add(f"child_{name}", seconds)
    parts = _with(parts, onnx)
    if not onnx.record["converted"]:
        db.notice(f"pyml: no ONNX part: {onnx.record['reason']}")
    metrics.update(fit_time=fit_time, score_time=score_time)
    if onnx.record["converted"]:
        metrics["onnx_max_diff"] = onnx.record["max_diff"]
    if search_results is not None:
        metrics["search_results"] = search_results
    db.notice(f"pyml: {algorithm.name} trained in {fit_time:.2f}s, {_metric_text(metrics, task)}")

    lineage["timings"] = {
        "load": load_time,
        "fit": fit_time,
        "score": score_time,
        **phases.seconds,
        "total": phases.total(),
    }
    with phases("registry"):  # after the lineage is written: in the DEBUG2 message only
        model_id = store.insert_model(
            db,
            parts,
            project_id=project.id,
            snapshot_id=snapshot.id,
            algorithm=algorithm.name,
            hyperparams=fit.hyperparams,
            search=req.search,
            search_params=jsonable(req.search_params),
            search_args=jsonable(req.search_args),
            status="successful",
            metrics=jsonable(metrics),
            num_features=len(data.names),
            feature_names=data.names,
            classes=jsonable(classes),
            preprocess=preprocess,
            runtime=req.runtime,
            lineage={**lineage, "onnx": jsonable(onnx.record)},
            baseline=baseline,
        )
        store.touch_project(db, project.id)
        deployed = req.automatic_deploy and _deploy_if_better(db, project, model_id, metrics)
    db.debug(f"pyml.train: model {model_id}: {phases.text()}")
    return TrainResult(
        project.name,
        task,
        algorithm.name,
        deployed,
        model_id,
        metrics,
        (X_test, y[test_idx], classes, data.names),
    )


def _with(parts: list[artifacts.Part], onnx: Any) -> list[artifacts.Part]:
    """The model's parts and its ONNX part (:class:`pyml.server.fitting.Converted`), if any."""
    return parts if onnx is None or onnx.part is None else [*parts, onnx.part]


class _Scored(Model):
    """The model just fitted, predicting its test rows once: :func:`evaluate` and
    :func:`prediction_baseline` ask for the same predictions of the same rows (the same
    array object), and get the same arrays back."""

    _memo: dict[str, tuple[np.ndarray, Any]]

    def _once(self, name: str, X: np.ndarray, compute: Any) -> Any:
        memo = self.__dict__.setdefault("_memo", {})
        found = memo.get(name)
        if found is None or found[0] is not X:
            found = memo[name] = (X, compute(X))
        return found[1]

    def values(self, X: np.ndarray) -> np.ndarray:
        return self._once("values", X, super().values)  # type: ignore[no-any-return]

    def class_index(self, X: np.ndarray) -> np.ndarray:
        return self._once("class_index", X, super().class_index)  # type: ignore[no-any-return]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._once("predict", X, super().predict)  # type: ignore[no-any-return]

    def proba(self, X: np.ndarray) -> np.ndarray:
        return self._once("proba", X, super().proba)  # type: ignore[no-any-return]

    def _proba_t(self, X: np.ndarray) -> np.ndarray:
        return self._once("_proba_t", X, super()._proba_t)  # type: ignore[no-any-return]


def test_rows(db: Db, model: Model) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows of a model's snapshot (inputs, encoded labels), split as in
    training: the snapshot's relation is read again."""
    snapshot = store.model_snapshot(db, model.stored_id)
    relation = store.resolve_relation(db, snapshot.relation_name)
    task = snapshot.task
    spec = {
        name: {k: v for k, v in rule.items() if k != "fitted"}
        for name, rule in model.preprocess.items()
    }
    data = read_training_data(db, relation, list(snapshot.y_column_name or []), task, spec)
    rows = split_rows(data, task, snapshot.test_size, snapshot.test_sampling)
    return data.X[rows.test], rows.y[rows.test]


def _project(db: Db, req: TrainRequest) -> store.ProjectRow:
    """The project to train: created (owned by the caller) on its first training, else one
    the caller holds the "train" privilege on."""
    project = store.get_project(db, req.project_name)
    if project is None:
        if req.task is None:
            raise UndefinedObject(
                f'project "{req.project_name}" does not exist',
                hint="Pass task => 'regression' or 'classification' to create it.",
            )
        project, created = store.create_project(db, req.project_name, req.task)
        if created:
            return project
    privileges.require(db, project, "train")
    if req.task is not None and req.task != project.task:
        raise ObjectNotInPrerequisiteState(
            f'project "{req.project_name}" has task "{project.task}", not "{req.task}"',
            hint="Use another project name for another task.",
        )
    return project


def _snapshot(
    db: Db, req: TrainRequest, project: store.ProjectRow, task: str, phases: Phases | None = None
) -> Snapshot:
    """Read the training data: the given relation, or the project's last snapshot."""
    if req.relation_name is None:
        previous = store.last_snapshot(db, project.id)
        if previous is None:
            raise ObjectNotInPrerequisiteState(
                f'project "{project.name}" has no snapshot to reuse',
                hint="Pass relation_name and y_column_name.",
            )
        relation = store.resolve_relation(db, previous.relation_name)
        y_columns = list(previous.y_column_name or [])
        # The snapshot's preprocessing, unless this call gives its own.
        spec = req.preprocess or previous.preprocess or {}
        data = read_training_data(db, relation, y_columns, task, spec, phases)
        return Snapshot(
            previous.id,
            relation.qualified,
            y_columns,
            previous.test_size,
            previous.test_sampling,
            data,
        )
    if not req.y_column_name and task not in algorithms.UNSUPERVISED_TASKS:
        raise InvalidParameterValue('"y_column_name" is required with "relation_name"')
    return take_snapshot(
        db,
        req.relation_name,
        req.y_column_name or [],
        task,
        req.test_size,
        req.test_sampling,
        req.materialize_snapshot,
        req.search_path,
        req.preprocess,
        phases,
        record=False,  # pyml.train records it while the child converts the model to ONNX
    )


def take_snapshot(
    db: Db,
    relation_name: str,
    y_columns: list[str],
    task: str | None,
    test_size: float,
    test_sampling: str,
    materialize: bool,
    search_path: str | None = None,
    preprocess: dict[str, Any] | None = None,
    phases: Phases | None = None,
    record: bool = True,
) -> Snapshot:
    """Read ``relation_name`` and record a snapshot: statistics, fingerprint and the
    preprocessing asked for (checked against the columns). Without ``record`` (and without
    ``materialize``, which copies the relation under the snapshot's id) the row is left to
    :meth:`Snapshot.record`."""
    phases = phases or Phases()
    relation = store.resolve_relation(db, relation_name, search_path)
    data = read_training_data(
        db, relation, y_columns, task, preprocess or {}, phases, (test_size, test_sampling)
    )
    rows = data.rows
    snapshot = Snapshot(
        0,
        relation.qualified,
        y_columns,
        test_size,
        test_sampling,
        data,
        rows,
        (relation, preprocess or {}),
    )
    if record or materialize:
        snapshot.record(db, phases)
    if materialize:
        with phases("snapshot"):
            snapshot.relation = store.materialize(db, relation, snapshot.id)
            store.set_snapshot_relation(db, snapshot.id, snapshot.relation)
    return snapshot


def read_training_data(
    db: Db,
    relation: store.Relation,
    y_columns: list[str],
    task: str | None,
    preprocess: dict[str, Any] | None = None,
    phases: Phases | None = None,
    snapshot: tuple[float, str] | None = None,
) -> TrainingData:
    """Inputs, labels, names and fingerprint of ``relation``; with ``snapshot`` (a new
    snapshot's test size and sampling), its rows split and its training rows described.

    Numbers come as the raw bytes of float8 values; columns encoded as categories are read
    as text (``::text``), one Python string per value.
    """
    labels = [relation.column(name) for name in y_columns]
    features = [c for c in relation.columns if c.name not in set(y_columns)]
    if not features:
        raise DataException(f'relation "{relation.qualified}" has no feature columns')
    rules = _preprocess.resolve(
        preprocess or {},
        [
            _preprocess.Column(
                c.name, c.type, c.elem_category if c.is_array else c.category, c.is_array
            )
            for c in features
        ],
        y_columns,
        task,
    )
    if task == "regression":
        for column in labels:
            if not column.is_numeric or column.is_array:
                raise InvalidParameterValue(
                    f'label column "{column.name}" has type {column.type}, which cannot be a '
                    "regression target",
                    hint="Use task => 'classification' for class labels.",
                )
    numbers = [c for c in features if not rules[c.name].category]
    categories = [c for c in features if rules[c.name].category]
    native = labels if task == "classification" else []
    numeric = numbers + ([] if native else labels)
    phases = phases or Phases()
    with phases("read"):
        n, values, lists = store.read_columns(
            db, relation, numeric, [*native, *(store.as_text(c) for c in categories)]
        )
    if n == 0:
        raise DataException(f'relation "{relation.qualified}" has no rows')
    read: dict[str, Any] = dict(zip([c.name for c in numbers], values, strict=False))
    read.update(zip([c.name for c in categories], lists[len(native) :], strict=True))

    blocks: list[Any] = []
    names: list[str] = []
    described: list[tuple[dict[str, Any], Any, dict[str, Any]]] = []
    hashed: list[Any] = []  # what the fingerprint hashes, in order (see _fingerprint)
    y: Any
    label_values: list[Any]
    for column in features:  # the columns as blocks of the inputs
        value = read[column.name]
        given = (preprocess or {}).get(column.name)
        head = {"name": column.name, "type": column.type, "role": "feature"}
        described.append((head, value, {"preprocess": given} if given else {}))
        hashed.append(column.name.encode() + b"\0")
        if isinstance(value, list):  # a category column, as text
            hashed.append(lambda value=value: json.dumps(value).encode())
            names.append(column.name)
            blocks.append(value)
            continue
        hashed.append(value)
        if value.ndim == 2:
            names += [f"{column.name}[{i}]" for i in range(1, value.shape[1] + 1)]
        else:
            names.append(column.name)
        blocks.append(value.reshape(n, -1))
    if native:
        y = lists[0]
        label_values = [y]
        hashed.append(lambda: json.dumps(jsonable(y)).encode())
        described.append(({"name": labels[0].name, "type": labels[0].type, "role": "label"}, y, {}))
    elif labels:
        targets = label_values = values[len(numbers) :]
        for column, array in zip(labels, targets, strict=True):
            hashed += [column.name.encode() + b"\0", array]
            described.append(
                ({"name": column.name, "type": column.type, "role": "label"}, array, {})
            )
        y = targets[0] if len(targets) == 1 else np.column_stack(targets)
    else:  # clustering, decomposition
        y, label_values = None, []

    def fingerprint_and_inputs() -> tuple[str, np.ndarray, dict[str, float]]:
        started = time.perf_counter()
        fingerprint = _fingerprint(hashed)
        hashed_at = time.perf_counter()
        X = _preprocess.inputs(n, blocks)
        timings = {"fingerprint": hashed_at - started, "convert": time.perf_counter() - hashed_at}
        return fingerprint, X, timings

    rows: Split | None = None
    summary: Description | None = None
    # The fingerprint and the input matrix on a second thread, while this one checks the
    # values and, for a new snapshot, splits the rows and describes the training rows
    with _beside.beside(fingerprint_and_inputs) as built:
        with phases("check"):
            # Finite numbers everywhere (the usual case) leave nothing to refuse: one pass
            # over each column as read, rather than over the strided columns of X
            if not all(
                isinstance(b, np.ndarray) and b.dtype.kind == "f" and np.isfinite(b).all()
                for b in blocks
            ):
                rules_of_inputs = _preprocess.input_rules(rules, [c.name for c in features], names)
                _preprocess.check_inputs(built.result()[1], rules_of_inputs, names)
            for column, values in zip(labels, label_values, strict=True):
                check_label(
                    column.name,
                    values,
                    supervised=task is not None and task not in algorithms.UNSUPERVISED_TASKS,
                    nan_is_null=column.category == "N",
                )
        if snapshot is not None:
            with phases("split"):
                rows = _split(n, y, task, *snapshot)
            with phases("statistics"):  # the columns it can describe meanwhile
                summary = Description(described, rows.train)
                summary.until(built.done)
        with phases("inputs_wait"):
            fingerprint, X, timings = built.result()
    for name, seconds in timings.items():
        phases.add(f"beside_{name}", seconds)
    return TrainingData(
        X, y, names, fingerprint, [c.name for c in features], rules, described, rows, summary
    )


def _fingerprint(hashed: list[Any]) -> str:
    """sha256 of the columns as read, in order: names, the bytes of numbers, category and
    class label lists as JSON (``hashed``: bytes, arrays, or functions giving bytes)."""
    digest = hashlib.sha256()
    for piece in hashed:
        if isinstance(piece, np.ndarray):
            digest.update(np.ascontiguousarray(piece).data)  # the bytes of tobytes(), uncopied
        else:
            digest.update(piece if isinstance(piece, bytes) else piece())
    return digest.hexdigest()


class Description:
    """Per column, the statistics of a new snapshot's training rows: count, nulls, and mean,
    std, min, max, deciles and a histogram, or category counts.

    Described a column at a time where a core would wait otherwise: while the second thread
    fingerprints the rows and builds the input matrix (large tables: most columns), then
    while the child process converts the model to ONNX (:meth:`Snapshot.record`)."""

    def __init__(
        self, described: list[tuple[dict[str, Any], Any, dict[str, Any]]], rows: np.ndarray
    ) -> None:
        self._described = described
        self._rows = rows
        self._columns: list[dict[str, Any]] = []

    def until(self, enough: Callable[[], bool]) -> None:
        """Describe the next columns until ``enough()`` (asked before each)."""
        while len(self._columns) < len(self._described) and not enough():
            head, values, extra = self._described[len(self._columns)]
            if isinstance(values, list):
                summary = stats.describe_categorical([values[i] for i in self._rows])
            else:
                summary = stats.describe_numeric(take(values, self._rows))
            self._columns.append({**head, **summary, **extra})

    def columns(self) -> list[dict[str, Any]]:
        """Every column's statistics (the rest described now)."""
        self.until(lambda: False)
        return self._columns


# ---------------------------------------------------------------------------
# Pure steps
# ---------------------------------------------------------------------------


def check_label(name: str, values: Any, supervised: bool, nan_is_null: bool = True) -> None:
    """The values of label column ``name`` (a list as read, or floats with NaN for NULL):
    NULL, and NaN, are 22004 when the task learns from labels; Infinity and -Infinity are
    22023 in any case (a snapshot's statistics need finite numbers too)."""
    if isinstance(values, list):
        if not nan_is_null:  # text, boolean, ...: only NULL can be missing, nothing infinite
            missing, infinite = values.count(None) if supervised else 0, 0
        else:  # numbers (float, Decimal): NaN is a value distinct from NULL in PostgreSQL
            numbers = np.asarray(values, dtype=np.float64)  # None becomes NaN
            missing, infinite = int(np.isnan(numbers).sum()), int(np.isinf(numbers).sum())
    else:
        missing, infinite = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    if missing and supervised:
        raise NullValueNotAllowed(
            f'label column "{name}" contains NULL values',
            detail=f"{_of(missing, len(values))} a NULL "
            f"{'(or NaN) ' if nan_is_null else ''}label, which no model can learn from.",
            hint="Leave those rows out, for example with a view.",
        )
    if infinite:
        raise InvalidParameterValue(
            f'label column "{name}" contains infinite values',
            detail=f"{_of(infinite, len(values))} Infinity or -Infinity as label.",
            hint="Replace them, or leave those rows out (for example with a view).",
        )


def _of(count: int, n: int) -> str:
    return f"{count} of {n} rows {'has' if count == 1 else 'have'}"


def encode_labels(labels: Any, task: str) -> tuple[list[Any] | None, np.ndarray]:
    """Classes (sorted) and the labels as class indices; or float targets for regression."""
    if task != "classification":
        y = np.asarray(labels, dtype=np.float64)
        if np.isnan(y).any():  # (read_training_data has refused them, naming the column)
            raise NullValueNotAllowed("the label column contains NULL values")
        return None, y
    values = [float(v) if isinstance(v, Decimal) else v for v in labels]
    if any(v is None for v in values):
        raise NullValueNotAllowed("the label column contains NULL values")
    classes = sorted(set(values))
    if len(classes) < 2:
        raise DataException(
            "classification needs at least 2 classes in the label column",
            detail=f"Found only {len(classes)}.",
        )
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))


def prediction_baseline(model: Model, X: np.ndarray) -> dict[str, Any] | None:
    """The distribution of the model's predictions on the test rows ``X``: what drift
    checks compare live predictions with. Numbers (regression) as deciles and a
    histogram; classes and clusters as counts."""
    if model.task == "decomposition":
        return None
    if model.task == "classification":
        return stats.describe_categorical(model.predict_label(X))
    predicted = model.predict(X)
    if model.task == "clustering":
        return stats.describe_categorical([str(int(c)) for c in predicted])
    if predicted.ndim == 2:  # joint: one distribution per target
        return {
            "targets": [stats.describe_numeric(predicted[:, j]) for j in range(predicted.shape[1])]
        }
    return stats.describe_numeric(predicted)


def _deploy_if_better(
    db: Db, project: store.ProjectRow, model_id: int, metrics: dict[str, Any]
) -> bool:
    """The automatic deploy (strategy new_score): when nothing is live, or the new model
    beats the live one on the task's key metric and takes the same inputs. A NOTICE says
    why a model was kept rather than deployed, when it is not only for its score."""
    from pyml.server.deployment import inputs_change

    name = project.name
    if not privileges.holds(db, project.id, "deploy"):
        db.notice(
            f'pyml: model {model_id} was not deployed: role "{db.caller().name}" does '
            f'not have the "deploy" privilege on project "{name}"'
        )
        return False
    store.lock_project(db, project.id)  # one decision at a time (see pyml.deploy)
    _, live_id = store.live_model_id(db, name)
    if live_id is not None:
        reason = inputs_change(db, live_id, model_id)
        if reason is not None:
            db.notice(f"pyml: model {model_id} was not deployed: {reason}")
            return False
        key = KEY_METRIC[project.task]
        live = store.live_metrics(db, project.id) or {}
        if not _number(metrics.get(key)) > _number(live.get(key)):
            return False
    store.insert_deployment(db, project.id, model_id, "new_score")
    return True


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("-inf")
    return number if np.isfinite(number) else float("-inf")


def _metric_text(metrics: dict[str, Any], task: str) -> str:
    key = KEY_METRIC[task]
    if key not in metrics:
        return f"{key} undefined"
    return f"{key} = {metrics[key]:.4f}"


def _rows(parts: list[artifacts.Part]) -> list[store.FileRow]:
    return [store.FileRow(p.part, p.format, p.sha256, p.data) for p in parts]


def _lineage(
    algorithm: algorithms.Algorithm, where: store.Context, snapshot: Snapshot
) -> dict[str, Any]:
    from pyml import __version__

    libraries = {}
    for dist in (
        "numpy",
        "scipy",
        "scikit-learn",
        "skops",
        algorithm.library,
        "onnx",
        "onnxruntime",
        "skl2onnx",
        "onnxmltools",
    ):
        name = "scikit-learn" if dist == "sklearn" else dist
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "pyml": __version__,
        "python": platform.python_version(),
        "libraries": libraries,
        "database_user": where.database_user,
        "database": where.database,
        "server_version": where.server_version,
        "host": platform.node(),
        "trained_at": where.at,
        "snapshot_id": snapshot.id,
        "relation": snapshot.relation,
    }
