"""Batch jobs: score a whole relation with one model and write the predictions."""

from __future__ import annotations

import numpy as np

from pyml import store
from pyml._db import Db
from pyml.errors import NullValueNotAllowed
from pyml.predict import Model


def predict_into(db: Db, model: Model, source_relation: str, target_table: str,
                 key_column: str, search_path: str | None = None) -> int:
    """Score every row of ``source_relation``; write (key, prediction, model_id, scored_at).

    Names resolve with ``search_path`` (the caller's), as they would in the caller's SQL.
    """
    relation = store.resolve_relation(db, source_relation, search_path)
    key = relation.column(key_column)
    features = [relation.column(name) for name in store.feature_columns(db, model.id)]
    n, values, (keys,) = store.read_columns(db, relation, features, [key])
    if n == 0:
        store.write_predictions(db, target_table, key, [], [], model.id, search_path)
        return 0
    X = np.hstack([v.reshape(n, -1) for v in values])
    if np.isnan(X).any():
        row = int(np.argwhere(np.isnan(X))[0][0])
        raise NullValueNotAllowed(
            "features must not be NULL", detail=f'The row with {key.name} = {keys[row]} has NULLs.'
        )
    predictions = model.predict(X).astype(np.float32)
    return store.write_predictions(db, target_table, key, keys, predictions.tolist(), model.id,
                                   search_path)
