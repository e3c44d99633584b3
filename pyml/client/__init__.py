"""Code that runs in a user's process and reaches the database through psycopg.

``cli`` is the ``pyml`` command; ``cluster`` the embedded local server behind ``pyml up``;
``consumer`` reads a stream's predictions as they arrive; ``report`` writes a project's
monitoring history for people; ``demo`` is ``make demo``. Nothing here imports
``pyml.server``: what both sides need lives in ``pyml.core``.

From Python, over a ``psycopg.Connection`` (the public names below, importable from
``pyml.client``; their modules are private):

``register(conn)``
    Installs pyml's psycopg dumpers on one connection, cursor or adapters map (never
    globally): numpy arrays of any shape as the array type of their dtype (``float32`` →
    ``real[]``, ``float64`` → ``double precision[]``, integer → ``smallint[]``/``integer[]``/
    ``bigint[]``, ``bool`` → ``boolean[]``), lists mixing ints and floats as
    ``double precision[]``, dicts as ``jsonb`` (numpy values allowed). psycopg itself adapts
    numpy scalars. (``_adapt``)
``train(conn, project_name, **arguments)`` → ``TrainResult``
    ``pyml.train`` with its keyword arguments (``pyml.train_joint`` for several label
    columns); the result carries project, task, algorithm, deployed, the new model's id and
    its metrics. (``_functions``)
``deploy(conn, project | model_id, strategy=None, algorithm=None)`` → ``DeployResult``
    ``pyml.deploy``: project, strategy, algorithm, model id.
``predict(conn, project | model_id, features)`` → ``float`` (one row) or ``ndarray`` (rows)
``predict_batch(conn, project | model_id, rows)`` → ``ndarray`` of float64, in row order
``predict_label(conn, project | model_id, features)`` → ``str``
``predict_proba(conn, project | model_id, features)`` → ``{label: probability}``
    Labels from ``pyml.models.classes`` of the model that predicted (same statement).
``log_notices(conn)``
    A context manager that forwards the server's NOTICEs to the ``logging`` logger
    ``pyml``; every helper above uses it for the duration of its call.

Results of ``real`` columns are the Python floats of the text PostgreSQL prints (the shortest
decimal that reads back as the same ``real``, e.g. ``212.05505``), as psycopg's default text
results give them: the value psql shows, and ``numpy.float32(x)`` is the stored value
exactly; a binary float4 would print as ``212.0550537109375``, a digit string no one wrote.

``pyml.client.sqlalchemy`` (SQLAlchemy 2, ``pip install 'pyml[sqlalchemy]'``) has the same
functions as SQLAlchemy expressions: typed function elements and ``named()`` arguments.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyml.client._adapt import register
    from pyml.client._functions import (
        DeployResult,
        Label,
        TrainResult,
        deploy,
        log_notices,
        predict,
        predict_batch,
        predict_label,
        predict_proba,
        train,
    )

# Imported on first use: the `pyml` command imports this package and needs neither numpy nor
# psycopg to start a server.
_EXPORTS = {
    "register": "pyml.client._adapt",
    **dict.fromkeys(
        (
            "DeployResult",
            "Label",
            "TrainResult",
            "deploy",
            "log_notices",
            "predict",
            "predict_batch",
            "predict_label",
            "predict_proba",
            "train",
        ),
        "pyml.client._functions",
    ),
}

__all__ = [
    "DeployResult",
    "Label",
    "TrainResult",
    "deploy",
    "log_notices",
    "predict",
    "predict_batch",
    "predict_label",
    "predict_proba",
    "register",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
