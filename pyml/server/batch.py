"""Batch jobs: score a whole relation with one model and write the predictions."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pyml.core import preprocess
from pyml.core.model import Model
from pyml.core.timing import Phases
from pyml.errors import InvalidParameterValue, NullValueNotAllowed
from pyml.server import _beside, store
from pyml.server._db import Db

if TYPE_CHECKING:
    import numpy as np

ROWS_PER_CHUNK = 100_000


def predict_into(
    db: Db,
    model: Model,
    source_relation: str,
    target_table: str,
    key_column: str,
    search_path: str | None = None,
    rows_per_chunk: int = ROWS_PER_CHUNK,
) -> int:
    """Score every row of ``source_relation``; write (key, prediction, model_id, scored_at).

    The row of a key already in ``target_table`` is replaced; rows of other keys are left
    alone. Names resolve with ``search_path`` (the caller's), as they would in the caller's
    SQL. The relation is read in chunks, so memory stays bounded whatever its size, and each
    chunk is scored on a worker thread (the model's C code releases the GIL) while the
    previous chunk is written and the next one read.
    """
    phases = Phases()
    with phases("resolve"):
        relation = store.resolve_relation(db, source_relation, search_path)
        key = relation.column(key_column)
        features = [relation.column(name) for name in store.feature_columns(db, model.id)]
        categories = model.category_columns()
        numbers = [c for c in features if c.name not in categories]
        texts = [store.as_text(c) for c in features if c.name in categories]
        table = store.prediction_table(db, target_table, relation, key, search_path)

    def predict(X: np.ndarray) -> np.ndarray:  # on the worker thread
        with phases("predict (worker)"):
            return model.predict(X)

    def write(scored: tuple[Any, Future[Any]]) -> int:
        keys, future = scored
        with phases("wait for predict"):
            predictions = future.result()
        with phases("write"):
            return store.write_predictions(db, table, keys, predictions, model.id)

    written = 0
    scoring: tuple[Any, Future[Any]] | None = None
    chunks = store.read_chunks(db, relation, numbers, [key, *texts], rows_per_chunk)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyml-score") as pool:
        while True:
            with phases("read"):
                chunk = next(chunks, None)
            if chunk is None:
                break
            n, values, (keys, *text) = chunk
            with phases("convert"):
                if not model.has_preprocessing:
                    X = feature_matrix(n, values, model.feature_names, key.name, keys)
                else:
                    read: dict[str, Any] = dict(zip([c.name for c in numbers], values, strict=True))
                    read.update(zip([c.name for c in texts], text, strict=True))
                    X = preprocess.inputs(n, [read[c.name] for c in features])
                    model.check_inputs(X, _where(key.name, keys))
            with _beside.signals_blocked():  # the pool's thread, started here, gets none
                following = (keys, pool.submit(predict, X))
            if scoring is not None:
                written += write(scoring)
            scoring = following
        if scoring is not None:
            written += write(scoring)
    with phases("finish"):
        store.finish_predictions(db, table)
    db.debug(f"pyml: predict_into wrote {written} rows: {phases.text()}")
    return written


def feature_matrix(
    n: int, values: list[np.ndarray], names: list[str], key_name: str, keys: list[Any]
) -> np.ndarray:
    """Columns as one ``(n, k)`` float64 matrix (inputs named ``names``); a NULL or NaN
    feature is 22004, an infinite one 22023, naming the row's key."""
    import numpy as np

    X = np.hstack([v.reshape(n, -1) for v in values])
    if not np.isfinite(X).all():
        row, column = (int(i) for i in np.argwhere(~np.isfinite(X))[0])
        value = float(X[row, column])
        name = names[column] if column < len(names) else f"feature {column + 1}"
        where = f"The row with {key_name} = {keys[row]} has"
        if value != value:
            raise NullValueNotAllowed(
                "features must not be NULL",
                detail=f'{where} a NULL (or NaN) in "{name}".',
            )
        raise InvalidParameterValue(
            "features must not be infinite",
            detail=f'{where} {preprocess.infinity_text(value)} in "{name}".',
            hint=preprocess.INFINITY_HINT,
        )
    return X


def _where(key_name: str, keys: list[Any]) -> Any:
    return lambda row: f"The row with {key_name} = {keys[row]}."


def predict_batch(model: Model, features: bytes) -> bytes:
    """``pyml.predict_batch``: rows of ``array_send(float8[])``, n x k flattened; the
    predictions as the bytes of n native float4 (made an array by ``pyml._float4s``)."""
    import numpy as np

    flat = store.decode_float8_array(features, -1).ravel()
    X = model.input_from_batch(flat)
    return np.ascontiguousarray(model.predict(X), dtype=np.float32).tobytes()
