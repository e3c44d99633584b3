"""The shape of the registry rows pure code reads: a model as it is loaded, and its stored parts.

The server's store (:mod:`pyml.server.store`) builds them from its queries; a client reading
the same tables can build them too (psycopg's ``class_row``: jsonb arrives parsed, bytea as
bytes). The store's other rows, which only the server reads, are in
``pyml.server.store._rows``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np


class ModelRow(NamedTuple):
    """What serving loads of a row of ``pyml.models``, with its project's name and task."""

    id: int
    project_id: int
    project: str  # projects.name
    task: str  # projects.task
    algorithm: str
    status: str  # in_progress, successful or failed
    metrics: dict[str, Any]  # jsonb ({} when NULL)
    num_features: int | None
    feature_names: list[str] | None
    classes: list[Any] | None  # jsonb: the class labels, in the order of the model's outputs
    snapshot_id: int | None  # NULL once the snapshot is deleted
    preprocess: dict[str, Any]  # jsonb: the rule of each column, and what was fitted for it


class FileRow(NamedTuple):
    """One stored part of a model: a row of ``pyml.files`` (its model_id aside), see
    :mod:`pyml.core.artifacts`."""

    part: int
    format: str
    sha256: str  # of data, as stored: checked before loading
    data: bytes


def jsonable(value: Any) -> Any:
    """``value`` as JSON-compatible data for the catalog: numpy scalars unwrapped, Decimal
    as float, non-finite floats as null, anything else as text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)
