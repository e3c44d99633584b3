"""Streaming: rows scored as they arrive, written to an outbox, announced with NOTIFY.

``sync`` streams score each INSERT or UPDATE statement inside its transaction (a
statement-level trigger reads the transition table: a multi-row INSERT or a COPY
is one vectorized batch). ``async`` streams only queue the rows; :func:`work`
scores them in batches, one transaction per batch. Either way each prediction is
one row of ``pyml.stream_events`` naming the model that made it, and a NOTIFY on
the stream's channel wakes consumers when the transaction commits.
"""

from __future__ import annotations

import ctypes
import json
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pyml.core.preprocess import infinity_text
from pyml.errors import (
    ActiveSqlTransaction,
    DataException,
    FeatureNotSupported,
    InsufficientPrivilege,
    InvalidParameterValue,
    ObjectNotInPrerequisiteState,
    PymlError,
    UndefinedObject,
)
from pyml.server import _native, privileges, store
from pyml.server._board import Freshness
from pyml.server._db import Db
from pyml.server._rowtext import Layout, bad_feature, parse_record

if TYPE_CHECKING:
    from pyml.core.model import Model
    from pyml.server.session import Session

MODES = ("sync", "async")
INLINE_EVENTS = 100  # at most this many events travel in a NOTIFY payload
PAYLOAD_BYTES = 7_900  # NOTIFY payloads must stay under 8000 bytes


# ---------------------------------------------------------------------------
# Defining streams
# ---------------------------------------------------------------------------


def create(
    db: Db,
    project_name: str,
    source_relation: str,
    key_column: str,
    mode: str,
    channel: str | None,
    search_path: str | None = None,
) -> int:
    """Stream ``source_relation`` through the live model of ``project_name``; the stream id."""
    if mode not in MODES:
        raise InvalidParameterValue(f'invalid mode "{mode}"', hint='Use "sync" or "async".')
    if channel is not None and not 0 < len(channel.encode()) < 64:
        raise InvalidParameterValue(
            f'invalid channel "{channel}"', detail="A channel name has 1 to 63 bytes."
        )
    project, model_id = store.live_model_id(db, project_name)
    privileges.require(db, project, "admin")
    if model_id is None:
        raise ObjectNotInPrerequisiteState(
            f'project "{project_name}" has no deployed model',
            hint=f"Call pyml.deploy('{project_name}') before streaming it.",
        )
    relation = store.resolve_relation(db, source_relation, search_path)
    if not store.relation_privilege(db, relation.oid, "TRIGGER"):
        raise InsufficientPrivilege(
            f"permission denied for table {relation.qualified}",
            detail="A stream puts triggers on it, which needs the TRIGGER privilege.",
        )
    relation.column(key_column)
    preprocess = store.get_model(db, model_id).preprocess
    for name in store.feature_columns(db, model_id):
        column = relation.column(name)
        if "encode" in preprocess.get(name, {}):  # a category column: read as text
            raise FeatureNotSupported(
                f'the live model of "{project_name}" encodes column "{name}" as categories, '
                "which streams cannot score yet",
                hint="Stream a model trained on numeric columns, or score with pyml.predict_into.",
            )
        if not column.is_numeric:
            raise InvalidParameterValue(
                f'column "{name}" of "{relation.qualified}" has type {column.type}',
                detail="The live model reads it as a number.",
            )
    stream_id = store.save_stream(db, project.id, relation.oid, key_column, mode, channel)
    store.create_triggers(db, store.get_stream(db, stream_id))
    return stream_id


def drop(
    db: Db, project_name: str, source_relation: str, search_path: str | None = None
) -> dict[str, int]:
    """Stop streaming; the stream's events, queue and consumers go with it."""
    project = store.require_project(db, project_name)
    privileges.require(db, project, "admin")
    relation = store.resolve_relation(db, source_relation, search_path)
    stream = store.find_stream(db, project.id, relation.oid)
    if stream is None:
        raise UndefinedObject(
            f'relation "{source_relation}" is not streamed by project "{project_name}"'
        )
    return store.delete_stream(db, stream)


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


class _Plan:
    """How to read a stream's rows for one model (cached per session)."""

    def __init__(self, query: str, width: int, features: list[str]):
        self.query = query
        self.width = width
        self.features = features


def _columns(
    db: Db, relation: store.Relation, model: Model, key_column: str
) -> tuple[store.Column, list[store.Column]]:
    return relation.column(key_column), [
        relation.column(name) for name in store.feature_columns(db, model.id)
    ]


class Scored(NamedTuple):
    """What the sync trigger writes to the outbox for some rows of a statement."""

    keys: list[str | None]
    predictions: list[float]
    model_id: int | None
    inline: bool


def predict_rows(
    session: Session,
    args: Sequence[str],
    relation_oid: int,
    new_rows: list[str],
    old_rows: list[str] | None,
) -> Scored:
    """The sync trigger, for a small statement: its rows in their text form (the row
    type's output). For an UPDATE, rows whose features did not change (same key, same
    values) are skipped. A NULL feature fails the statement."""
    stream = _trigger_stream(args)
    model = session.serving.live_model(session.db, stream.project)
    rows = [parse_record(text) for text in new_rows]
    layout = _layout(session, relation_oid, len(rows[0]))
    reader = _reader(session, relation_oid, layout, stream.key_column, model)
    key_at, feature_at = reader.key_at, reader.feature_at
    if old_rows is not None:
        before = {
            (old[key_at], tuple(old[i] for i in feature_at)) for old in map(parse_record, old_rows)
        }
        rows = [
            row
            for row in rows
            if row[key_at] is None or (row[key_at], tuple(row[i] for i in feature_at)) not in before
        ]
    if not rows:
        return Scored([], [], model.id, False)
    keys = [row[key_at] for row in rows]
    values = []
    for row in rows:
        numbers = reader.numbers(row)
        if numbers is None:  # NULL, NaN, Infinity, an array, a boolean: said or refused here
            numbers = layout.numbers(
                row, feature_at, stream.key_column, row[key_at], model.imputed_columns()
            )
        values.append(numbers)
    return Scored(keys, _predict_small(model, values), model.id, _inline(keys))


def _predict_small(model: Model, values: list[list[float]]) -> list[float]:
    if len(values) == 1:  # the online path: for LightGBM one C call, no numpy
        return [model.online_predictor()(values[0])]
    import numpy as np

    predictions = model.predict(np.asarray(values, dtype=np.float64)).astype("float32")
    return predictions.tolist()  # type: ignore[no-any-return]


_UNSET = object()


def insert_rows(session: Session, stream: store.Stream, relation_oid: int) -> Scored | None:
    """The sync trigger, for a small INSERT whose features are plain numbers (most of them):
    its keys and features read in one query of typed values (no row text to parse), scored.
    None when the statement must be read the general way (:func:`predict_rows` or batches),
    which then says or refuses what it must as it always did: more than SMALL rows, a NULL,
    NaN or Infinity among the features, features of other types, no live model, a table
    altered since the query was prepared."""
    db = session.db
    try:
        model = session.serving.live_model(db, stream.project)
    except PymlError:
        return None
    plans = session.streams.plans
    key = ("insert", relation_oid, model.id, stream.key_column)
    query = plans.get(key, _UNSET)
    if query is _UNSET:
        query = plans[key] = _insert_query(db, relation_oid, model, stream.key_column)
    if query is None:
        return None
    try:
        rows = db.query(query)
    except Exception as exc:  # a query error (plpy.SPIError), rolled back
        if not str(getattr(exc, "sqlstate", None) or "").startswith("42"):
            raise  # not the query's own: a cancel, a lack of memory, ...
        del plans[key]  # a column went or changed its type: prepared again next time
        return None
    if len(rows) > SMALL:
        return None
    values = []
    for row in rows:
        numbers = row["x"]
        if None in numbers:
            return None
        total = sum(numbers)
        if total - total:  # NaN or +-Infinity somewhere (0.0 when every value is finite)
            return None
        values.append(numbers)
    if not values:
        return Scored([], [], model.id, False)
    keys = [row["k"] for row in rows]
    if len(values) == 1:
        _describe(session, stream, relation_oid, model)
    return Scored(keys, _predict_small(model, values), model.id, _inline(keys))


class _Described(NamedTuple):
    """The last description of a trigger in C: a model that cannot be scored in C there
    while nothing changes (the generation and the rights' deadline seen), or one that is
    (generation -1: the next row C leaves to Python describes it again)."""

    model: Model
    generation: int
    until: float


def _describe(session: Session, stream: store.Stream, relation_oid: int, model: Model) -> None:
    """Tell the language handler how this trigger may score its next single-row INSERTs in
    C (src/stream.c), when the online path is pyml's tree kernel alone and the features are
    float4, float8 or integer columns: for as long as no deployment note is pinned (the
    board's generation does not move) and the cached rights hold (the same deadline)."""
    serving = session.serving
    fresh = serving.fresh
    if not isinstance(fresh, Freshness) or not serving.clean():
        return
    address, generation = fresh.watch()
    key = (relation_oid, stream.id)
    described = session.streams.described
    kept = described.get(key)
    if kept is not None and kept == (model, generation, serving.rights_until):
        return  # this model cannot be scored in C here: asked again in a second at most
    # Here C did not score the row, so anything described before may be stale (the table
    # was altered): described again, which costs a catalog query.
    described[key] = _Described(model, generation, serving.rights_until)
    how = model.kernel_row()
    if how is None or len(model.columns) != model.num_features:
        return
    function = _native.stream_fast()
    if function is None:
        return
    columns = store.column_numbers(session.db, relation_oid, [stream.key_column, *model.columns])
    features = [columns.get(name) for name in model.columns]
    key_column = columns.get(stream.key_column)
    if key_column is None or any(
        c is None or c[1] not in store.FAST_NUMBER_TYPES for c in features
    ):
        return
    n = len(features)
    labels = how.labels or (0.0,)
    kept_now = not function(
        relation_oid,
        n,
        (ctypes.c_int16 * n)(*[c[0] for c in features]),  # type: ignore[index]
        (ctypes.c_uint32 * n)(*[c[1] for c in features]),  # type: ignore[index]
        key_column[0],
        key_column[1],
        how.function,
        how.tables,
        how.outputs,
        how.answer,
        (ctypes.c_double * len(labels))(*labels),
        address,
        generation,
        int(serving.rights_until * 1e9),
        PAYLOAD_BYTES,
        store.event_statement().encode(),
        str(stream.id).encode(),
        str(model.id).encode(),
        stream.channel.encode(),
    )
    # C forgot its former description of this trigger first: the model it named may go
    session.streams.held[key] = model  # the tables C now reads live as long as it
    if kept_now:  # so the next row C does not score is described again
        described[key] = _Described(model, -1, 0.0)


def _insert_query(db: Db, relation_oid: int, model: Model, key_column: str) -> str | None:
    """The query of :func:`insert_rows` for a relation and a model, or None when a feature is
    not a plain number (or a column is missing: the general way says so)."""
    columns = {c.name: c for c in store.relation_by_oid(db, relation_oid).columns}
    if key_column not in columns or any(name not in columns for name in model.columns):
        return None
    features = [columns[name] for name in model.columns]
    if not all(store.is_plain_number(c) for c in features):
        return None
    return store.small_insert_query(columns[key_column], features, SMALL + 1)


class _Reader:
    """Where a stream's key and a model's features are in its relation's row text, and the
    quick way to read the features when every one is a plain number (a scalar of a numeric
    type): ``float`` of each, ``real`` ones rounded to float4 in one ``struct`` call. It gives
    None for any row the general way (:meth:`Layout.numbers`) must read or refuse (a NULL,
    NaN, Infinity, a text ``float`` cannot read), and the same numbers for every other row."""

    def __init__(self, layout: Layout, key_column: str, model: Model):
        self.layout = layout
        self.key_column = key_column
        self.key_at = layout.index(key_column)
        self.feature_at = [layout.index(name) for name in model.columns]
        columns = [layout.relation.columns[i] for i in self.feature_at]
        self.quick = all(c.category == "N" for c in columns)
        self.reals = [j for j, c in enumerate(columns) if c.type == "real"]
        self.all_real = len(self.reals) == len(columns)
        self.float4 = struct.Struct(f"{len(self.reals)}f")

    def numbers(self, row: list[str | None]) -> list[float] | None:
        if not self.quick:
            return None
        try:
            values = [float(row[i]) for i in self.feature_at]  # type: ignore[arg-type]
            if self.all_real:
                values = list(self.float4.unpack(self.float4.pack(*values)))
            elif self.reals:
                rounded = self.float4.unpack(self.float4.pack(*[values[j] for j in self.reals]))
                for j, value in zip(self.reals, rounded, strict=True):
                    values[j] = value
        except (TypeError, ValueError, OverflowError):
            return None
        total = sum(values)
        if total - total:  # NaN or +-Infinity somewhere (0.0 when every value is finite)
            return None
        return values


def _reader(
    session: Session, relation_oid: int, layout: Layout, key_column: str, model: Model
) -> _Reader:
    readers = session.streams.readers
    key = (relation_oid, model.id)
    reader = readers.get(key)
    if reader is None or reader.layout is not layout or reader.key_column != key_column:
        reader = readers[key] = _Reader(layout, key_column, model)
    return reader


def _layout(session: Session, relation_oid: int, fields: int) -> Layout:
    layouts = session.streams.layouts
    layout = layouts.get(relation_oid)
    if layout is None or len(layout.names) != fields:  # new, or the table was altered
        layout = layouts[relation_oid] = Layout(store.relation_by_oid(session.db, relation_oid))
    return layout


SMALL = 64  # up to this many rows, a statement's rows are parsed from their text
CHUNK = 50_000  # beyond, they are read in chunks of binary arrays, this many at a time


def score_statement(session: Session, args: Sequence[str], relation_oid: int, update: bool) -> int:
    """The trigger of sync streams: score the rows of the statement that fired it, write
    them to the outbox and announce them (NOTIFY at commit). Returns the events written.

    It runs as the role whose statement fired it (reading the transition tables); the
    outbox is written through the registry. A row that cannot be scored fails the
    statement: nothing of it is written.
    """
    db, plans = session.db, session.streams.plans
    stream = _trigger_stream(args)
    if not update:
        typed = insert_rows(session, stream, relation_oid)
        if typed is not None:
            return _publish(db, stream, typed, last=True)
    new_rows, old_rows = store.transition_rows(db, update, SMALL + 1)
    if len(new_rows) <= SMALL:
        if not new_rows:
            return 0
        scored = predict_rows(session, args, relation_oid, new_rows, old_rows)
        return _publish(db, stream, scored, last=True)
    model = session.serving.live_model(db, stream.project)
    key = (stream.id, model.id, update, relation_oid)
    plan = plans.get(key)
    if plan is None:
        relation = store.relation_by_oid(db, relation_oid)
        column, features = _columns(db, relation, model, stream.key_column)
        plan = plans[key] = _Plan(
            store.statement_query(column, features, update, CHUNK),
            len(features),
            [c.name for c in features],
        )
    written = offset = 0
    while True:
        chunk = store.statement_chunk(db, plan.query, offset)
        keys = list(chunk.keys or [])
        if keys:
            X = store.decode_float8_array(chunk.x, len(keys)).reshape(len(keys), plan.width)
            _require_features(X, keys, plan, stream.key_column, model)
            predictions = model.predict(X).astype("float32").tolist()
            written += _publish(db, stream, Scored(keys, predictions, model.id, _inline(keys)))
        if chunk.taken < CHUNK:
            return written
        offset += CHUNK


def _publish(db: Db, stream: store.Stream, scored: Scored, last: bool = False) -> int:
    """Write the events of ``scored``; ``last`` when the trigger writes nothing after."""
    if scored.keys:
        store.publish(
            db,
            stream,
            scored.keys,
            scored.predictions,
            [None] * len(scored.keys),
            scored.model_id,
            scored.inline,
            last,
        )
    return len(scored.keys)


def enqueue_statement(
    session: Session, args: Sequence[str], relation_oid: int, update: bool
) -> int:
    """The trigger of async streams: queue the statement's rows (their text; for an UPDATE
    with the old row of the same key) for :func:`work`. Returns the rows queued."""
    db = session.db
    stream_id, key_column = int(args[0]), args[1]
    new_rows, old_rows = store.transition_rows(db, update)
    if not new_rows:
        return 0
    olds: list[str | None] = [None] * len(new_rows)
    if old_rows:
        layout = _layout(session, relation_oid, len(parse_record(new_rows[0])))
        key_at = layout.index(key_column)
        before: dict[str | None, str] = {}
        for text in old_rows:
            before.setdefault(parse_record(text)[key_at], text)
        olds = [
            None if (k := parse_record(text)[key_at]) is None else before.get(k)
            for text in new_rows
        ]
    store.enqueue(db, stream_id, new_rows, olds)
    if not update and len(new_rows) == 1:
        _describe_queue(session, stream_id, relation_oid)
    return len(new_rows)


def _describe_queue(session: Session, stream_id: int, relation_oid: int) -> None:
    """Tell the language handler that this trigger's next single-row INSERTs may be queued
    in C (src/stream.c): the row's text as this trigger reads it, queued by the same
    statement. Nothing it queues depends on a model or on the table's columns of the day:
    once described, only a new trigger of the stream comes back here."""
    function = _native.stream_queue()
    if function is not None:
        function(relation_oid, store.queue_statement().encode(), str(stream_id).encode())


def work(
    session: Session, stream_id: int | None, batch_size: int, commit: Callable[[], None]
) -> int:
    """Score the queued rows of async streams, ``batch_size`` per transaction.

    A row that cannot be scored becomes an event with its error (prediction NULL).
    Rows of a project with no deployed model stay queued. Returns the rows taken.
    """
    if batch_size < 1:
        raise InvalidParameterValue('"batch_size" must be at least 1')
    db = session.db
    streams = store.list_streams(db, stream_id)
    if stream_id is not None and not streams:
        raise UndefinedObject(f"stream {stream_id} does not exist")
    taken = 0
    for stream in streams:
        if stream.mode != "async":
            continue
        try:
            taken += _work_stream(session, stream, batch_size, commit)
        except ActiveSqlTransaction:
            raise
        except PymlError as exc:
            error: Exception = exc
        except Exception as exc:  # a database error (plpy.SPIError): same treatment
            if getattr(exc, "sqlstate", None) is None:
                raise
            error = exc
        else:
            continue
        # The failed batch was rolled back: its rows stay queued. Other streams go on.
        db.warning(
            f"stream {stream.id} ({stream.source}): rows stay queued: "
            f"{getattr(error, 'message', None) or error}"
        )
    return taken


def _work_stream(
    session: Session, stream: store.Stream, batch_size: int, commit: Callable[[], None]
) -> int:
    db, taken = session.db, 0
    while True:
        try:
            model = session.serving.live_model(db, stream.project)
        except ObjectNotInPrerequisiteState:
            db.notice(
                f'stream {stream.id}: project "{stream.project}" has no deployed '
                "model; its rows stay queued"
            )
            return taken
        with db.atomic():
            queued = store.take_queued(db, stream.id, batch_size)
            keys, X, errors = _queued_inputs(session, stream, model, queued)
            if keys:
                predictions = _predict_or_record_errors(model, X, errors)
                store.publish(db, stream, keys, predictions, errors, model.id, _inline(keys))
        commit()
        taken += len(queued)
        if len(queued) < batch_size:
            return taken


def _queued_inputs(
    session: Session, stream: store.Stream, model: Model, queued: list[tuple[str, str | None]]
) -> tuple[list[str | None], Any, list[str | None]]:
    """Keys, inputs (NaN where a row could not be read) and per-row errors of queued rows,
    parsed from their text. An updated row whose features did not change is skipped."""
    import numpy as np

    if not queued:
        return [], None, []
    layout = _layout(session, stream.source_oid, len(parse_record(queued[0][0])))
    key_at = layout.index(stream.key_column)
    feature_at = [layout.index(name) for name in model.columns]
    imputed = model.imputed_columns()
    keys: list[str | None] = []
    rows: list[list[float] | None] = []
    errors: list[str | None] = []
    for new_text, old_text in queued:
        row = parse_record(new_text)
        if old_text is not None:
            old = parse_record(old_text)
            if len(old) == len(row) and all(old[i] == row[i] for i in feature_at):
                continue  # taken off the queue, not scored: its features did not change
        keys.append(row[key_at] if len(row) == len(layout.names) else None)
        try:
            if len(row) != len(layout.names):
                raise DataException(
                    f"the row has {len(row)} columns, the relation "
                    f"{len(layout.names)}: it was altered after the row came"
                )
            rows.append(
                layout.numbers(row, feature_at, stream.key_column, keys[-1], imputed, lenient=True)
            )
            errors.append(None)
        except PymlError as exc:
            rows.append(None)
            errors.append(exc.detail or exc.message)
    width = len(next((r for r in rows if r is not None), []))
    X = np.full((len(rows), width), np.nan)
    for i, values in enumerate(rows):
        if values is not None and len(values) == width:
            X[i] = values
        elif errors[i] is None:
            errors[i] = "the row's array features have another size"
    return keys, X, errors


def _trigger_stream(args: Sequence[str]) -> store.Stream:
    stream_id, project, key_column, channel = args
    return store.Stream(int(stream_id), 0, project, "", 0, key_column, "sync", channel)


def _refused(X: Any, model: Model) -> Any:
    """The cells of ``X`` the model refuses: NULL (NaN) where it does not impute, and
    Infinity or -Infinity anywhere. None when there is none (one pass over ``X``)."""
    import numpy as np

    if np.isfinite(X).all():
        return None
    refused = np.isinf(X) | (np.isnan(X) & model.strict_inputs())
    return refused if refused.any() else None


def _require_features(
    X: Any, keys: Sequence[str | None], plan: _Plan, key_column: str, model: Model
) -> None:
    import numpy as np

    refused = _refused(X, model)
    if refused is not None:
        row, column = (int(i) for i in np.argwhere(refused)[0])
        raise bad_feature(key_column, keys[row], _feature_name(plan, column), float(X[row, column]))


def _feature_name(plan: _Plan, column: int) -> str:
    return plan.features[column] if column < len(plan.features) else f"feature {column}"


def _predict_or_record_errors(model: Model, X: Any, errors: list[str | None]) -> list[float | None]:
    """Predictions of the rows without an error; a prediction that fails records its error
    on the rows it was for (``errors`` is updated)."""
    import numpy as np

    predictions: list[float | None] = [None] * len(errors)
    refused = _refused(X, model) if len(errors) else None
    if refused is not None:
        for row in np.flatnonzero(refused.any(axis=1)):
            if errors[row] is None:
                column = int(np.flatnonzero(refused[row])[0])
                value = float(X[row, column])
                errors[row] = f'feature "{model.feature_names[column]}" is ' + (
                    "NULL" if value != value else infinity_text(value)
                )
    good = np.flatnonzero([e is None for e in errors])
    if len(good):
        try:
            values = model.predict(X[good]).astype("float32").tolist()
        except PymlError as exc:
            for row in good:
                errors[row] = exc.message
        else:
            for row, value in zip(good, values, strict=True):
                predictions[row] = value
    return predictions


def _inline(keys: Sequence[str | None]) -> bool:
    """Whether the events fit in the NOTIFY payload (an estimate that errs on the safe side:
    Python escapes non-ASCII text to at least as many bytes as PostgreSQL writes)."""
    if len(keys) > INLINE_EVENTS:
        return False
    if len(keys) == 1 and keys[0] is not None and 252 + 12 * len(keys[0]) < PAYLOAD_BYTES:
        return True  # one key: its JSON list has at most 12 * len + 4 characters
    return 200 + 48 * len(keys) + len(json.dumps(keys)) < PAYLOAD_BYTES


# ---------------------------------------------------------------------------
# Consuming
# ---------------------------------------------------------------------------


def _require_reader(session: Session, stream: store.Stream) -> None:
    """A consumer needs a privilege on the project and SELECT on the streamed relation:
    the events are predictions about its rows, named by their keys. The project's privilege
    is remembered as the session's rights are (a grant or revoke of it is seen by the next
    call); SELECT is asked every time (a few µs: a REVOKE on the table is seen at once)."""
    db, serving = session.db, session.serving
    serving.refresh(db)
    serving.authorize(db, privileges.ProjectName(stream.project_id, stream.project), "predict")
    if not store.relation_privilege(db, stream.source_oid, "SELECT"):
        raise InsufficientPrivilege(
            f"permission denied for table {stream.source}",
            detail=f"The events of stream {stream.id} are predictions about its rows.",
        )


def read(
    session: Session, stream_id: int, consumer: str, max_rows: int, after_event: int | None
) -> list[dict[str, Any]]:
    """``pyml.stream_read``: the events, as the rows of its result."""
    db = session.db
    _require_reader(session, store.get_stream(db, stream_id))
    if not consumer:
        raise InvalidParameterValue("consumer name must not be empty")
    if max_rows < 1:
        raise InvalidParameterValue('"max_rows" must be at least 1')
    return [e._asdict() for e in store.read_events(db, stream_id, consumer, max_rows, after_event)]


def ack(session: Session, stream_id: int, consumer: str, event_id: int) -> None:
    db = session.db
    _require_reader(session, store.get_stream(db, stream_id))
    if not consumer:
        raise InvalidParameterValue("consumer name must not be empty")
    store.ack(db, stream_id, consumer, event_id)


def prune(db: Db, stream_id: int | None) -> int:
    if stream_id is not None:
        store.get_stream(db, stream_id)
    return store.prune(db, stream_id)
