"""Streaming: rows scored as they arrive, written to an outbox, announced with NOTIFY.

``sync`` streams score each INSERT or UPDATE statement inside its transaction (a
statement-level trigger reads the transition table: a multi-row INSERT or a COPY
is one vectorized batch). ``async`` streams only queue the rows; :func:`work`
scores them in batches, one transaction per batch. Either way each prediction is
one row of ``pyml.stream_events`` naming the model that made it, and a NOTIFY on
the stream's channel wakes consumers when the transaction commits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pyml import store
from pyml._db import Db
from pyml.errors import (
    ActiveSqlTransaction,
    InvalidParameterValue,
    NullValueNotAllowed,
    ObjectNotInPrerequisiteState,
    PymlError,
    UndefinedObject,
)

if TYPE_CHECKING:
    from pyml._session import Serving
    from pyml.predict import Model

MODES = ("sync", "async")
CHUNK_ROWS = 50_000  # rows of one statement scored at a time
INLINE_EVENTS = 100  # at most this many events travel in a NOTIFY payload
PAYLOAD_BYTES = 7_900  # NOTIFY payloads must stay under 8000 bytes


# ---------------------------------------------------------------------------
# Defining streams
# ---------------------------------------------------------------------------


def create(db: Db, project_name: str, source_relation: str, key_column: str, mode: str,
           channel: str | None, search_path: str | None = None) -> int:
    """Stream ``source_relation`` through the live model of ``project_name``; the stream id."""
    if mode not in MODES:
        raise InvalidParameterValue(f'invalid mode "{mode}"', hint='Use "sync" or "async".')
    if channel is not None and not 0 < len(channel.encode()) < 64:
        raise InvalidParameterValue(f'invalid channel "{channel}"',
                                    detail="A channel name has 1 to 63 bytes.")
    project, model_id = store.live_model_id(db, project_name)
    if model_id is None:
        raise ObjectNotInPrerequisiteState(
            f'project "{project_name}" has no deployed model',
            hint=f"Call pyml.deploy('{project_name}') before streaming it.",
        )
    relation = store.resolve_relation(db, source_relation, search_path)
    relation.column(key_column)
    for name in store.feature_columns(db, model_id):
        column = relation.column(name)
        if not column.is_numeric:
            raise InvalidParameterValue(
                f'column "{name}" of "{relation.qualified}" has type {column.type}',
                detail="The live model reads it as a number.",
            )
    stream_id = store.save_stream(db, project["id"], relation.oid, key_column, mode, channel)
    store.create_triggers(db, store.get_stream(db, stream_id))
    return stream_id


def drop(db: Db, project_name: str, source_relation: str,
         search_path: str | None = None) -> dict[str, int]:
    """Stop streaming; the stream's events, queue and consumers go with it."""
    project = store.require_project(db, project_name)
    relation = store.resolve_relation(db, source_relation, search_path)
    stream = store.find_stream(db, project["id"], relation.oid)
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

    def __init__(self, query: str, width: int, features: list[str], more: str = ""):
        self.query = query
        self.more = more  # the query for the chunks after the first
        self.width = width
        self.features = features


def _columns(db: Db, relation: store.Relation, model: Model, key_column: str
             ) -> tuple[store.Column, list[store.Column]]:
    return relation.column(key_column), [
        relation.column(name) for name in store.feature_columns(db, model.id)
    ]


def score_statement(db: Db, serving: Serving, plans: dict[Any, _Plan], args: Sequence[str],
                    relation_oid: int, update: bool) -> int:
    """The trigger of a sync stream: score the statement's new (or changed) rows.

    ``args`` are the trigger's arguments (stream id, project, key column, channel).
    A row that cannot be scored fails the statement: nothing of it is written.
    """
    stream = _trigger_stream(args)
    model = serving.live_model(db, stream.project)
    plan = plans.get((stream.id, model.id, update, relation_oid))
    if plan is None:
        relation = store.relation_by_oid(db, relation_oid)
        key, features = _columns(db, relation, model, stream.key_column)
        width = sum(1 for _ in features)
        plan = plans[(stream.id, model.id, update, relation_oid)] = _Plan(
            store.statement_query(key, features, update, CHUNK_ROWS, first=True), width,
            [c.name for c in features],
            store.statement_query(key, features, update, CHUNK_ROWS, first=False))
    scored = offset = 0
    while True:
        query = plan.query if offset == 0 else plan.more
        batch = store.read_statement(db, query, offset, plan.width)
        if batch.keys:
            _require_features(batch, plan, stream)
            predictions = _predict(model, batch.X)
            store.publish(db, stream, batch.keys, predictions, [None] * len(batch.keys),
                          model.id, _inline(batch.keys))
            scored += len(batch.keys)
        if batch.taken < CHUNK_ROWS:
            return scored
        offset += CHUNK_ROWS


def work(db: Db, serving: Serving, plans: dict[Any, _Plan], stream_id: int | None,
         batch_size: int, commit: Callable[[], None]) -> int:
    """Score the queued rows of async streams, ``batch_size`` per transaction.

    A row that cannot be scored becomes an event with its error (prediction NULL).
    Rows of a project with no deployed model stay queued. Returns the rows taken.
    """
    if batch_size < 1:
        raise InvalidParameterValue('"batch_size" must be at least 1')
    streams = store.list_streams(db, stream_id)
    if stream_id is not None and not streams:
        raise UndefinedObject(f"stream {stream_id} does not exist")
    taken = 0
    for stream in streams:
        if stream.mode != "async":
            continue
        try:
            taken += _work_stream(db, serving, plans, stream, batch_size, commit)
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
        db.warning(f"stream {stream.id} ({stream.source}): rows stay queued: "
                   f"{getattr(error, 'message', None) or error}")
    return taken


def _work_stream(db: Db, serving: Serving, plans: dict[Any, _Plan], stream: store.Stream,
                 batch_size: int, commit: Callable[[], None]) -> int:
    taken = 0
    while True:
        try:
            model = serving.live_model(db, stream.project)
        except ObjectNotInPrerequisiteState:
            db.notice(f'stream {stream.id}: project "{stream.project}" has no deployed '
                      "model; its rows stay queued")
            return taken
        with db.atomic():
            plan = plans.get((stream.id, model.id, "queue"))
            if plan is None:
                relation = store.resolve_relation(db, stream.source)
                key, features = _columns(db, relation, model, stream.key_column)
                plan = plans[(stream.id, model.id, "queue")] = _Plan(
                    store.queue_query(db, relation, key, features), len(features),
                    [c.name for c in features])
            batch = store.take_queued(db, plan.query, stream.id, batch_size, plan.width)
            if batch.keys:
                predictions, errors = _predict_or_explain(model, batch, plan)
                store.publish(db, stream, batch.keys, predictions, errors, model.id,
                              _inline(batch.keys))
        commit()
        taken += batch.taken
        if batch.taken < batch_size:
            return taken


def _trigger_stream(args: Sequence[str]) -> store.Stream:
    stream_id, project, key_column, channel = args
    return store.Stream(int(stream_id), 0, project, "", key_column, "sync", channel)


def _predict(model: Model, X: Any) -> list[float]:
    if len(X) == 1:  # one row: the online path (for LightGBM one C call, no numpy round trip)
        return [model.online_predictor()(X[0].tolist())]
    return model.predict(X).astype("float32").tolist()  # type: ignore[no-any-return]


def _require_features(batch: store.Batch, plan: _Plan, stream: store.Stream) -> None:
    import numpy as np

    nulls = np.isnan(batch.X)
    if nulls.any():
        row, column = (int(i) for i in np.argwhere(nulls)[0])
        raise NullValueNotAllowed(
            "features must not be NULL",
            detail=f'The row with {stream.key_column} = {batch.keys[row]} has a NULL in '
            f'"{_feature_name(plan, column)}".',
            hint="The row was not inserted: a sync stream scores it in the same transaction.",
        )


def _feature_name(plan: _Plan, column: int) -> str:
    return plan.features[column] if column < len(plan.features) else f"feature {column}"


def _predict_or_explain(model: Model, batch: store.Batch, plan: _Plan
                        ) -> tuple[list[float | None], list[str | None]]:
    import numpy as np

    nulls = np.isnan(batch.X)
    bad = nulls.any(axis=1)
    predictions: list[float | None] = [None] * len(batch.keys)
    errors: list[str | None] = [None] * len(batch.keys)
    for row in np.flatnonzero(bad):
        column = int(np.flatnonzero(nulls[row])[0])
        errors[row] = f'feature "{_feature_name(plan, column)}" is NULL'
    good = np.flatnonzero(~bad)
    if len(good):
        try:
            values = model.predict(batch.X[good]).astype("float32").tolist()
        except PymlError as exc:
            for row in good:
                errors[row] = exc.message
        else:
            for row, value in zip(good, values, strict=True):
                predictions[row] = value
    return predictions, errors


def _inline(keys: Sequence[str | None]) -> bool:
    """Whether the events fit in the NOTIFY payload (an estimate that errs on the safe side:
    Python escapes non-ASCII text to at least as many bytes as PostgreSQL writes)."""
    if len(keys) > INLINE_EVENTS:
        return False
    return 200 + 48 * len(keys) + len(json.dumps(keys)) < PAYLOAD_BYTES


# ---------------------------------------------------------------------------
# Consuming
# ---------------------------------------------------------------------------


def read(db: Db, stream_id: int, consumer: str, max_rows: int,
         after_event: int | None) -> list[dict[str, Any]]:
    store.get_stream(db, stream_id)
    if not consumer:
        raise InvalidParameterValue("consumer name must not be empty")
    if max_rows < 1:
        raise InvalidParameterValue('"max_rows" must be at least 1')
    return store.read_events(db, stream_id, consumer, max_rows, after_event)


def ack(db: Db, stream_id: int, consumer: str, event_id: int) -> None:
    store.get_stream(db, stream_id)
    if not consumer:
        raise InvalidParameterValue("consumer name must not be empty")
    store.ack(db, stream_id, consumer, event_id)


def prune(db: Db, stream_id: int | None) -> int:
    if stream_id is not None:
        store.get_stream(db, stream_id)
    return store.prune(db, stream_id)
