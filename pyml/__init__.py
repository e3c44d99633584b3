"""pyml: in-database machine learning for PostgreSQL.

Trained scikit-learn and LightGBM models live in PostgreSQL as versioned rows. The package is
split by where its code runs; the path of a module says it (``tests/unit/test_layout.py``
checks the import rules):

``pyml.server``
    Everything the ``pyml`` extension's SQL functions reach; runs inside PostgreSQL (PL/Python),
    never imports psycopg. ``pyml.server._sqlapi`` is the only module the SQL stubs call;
    ``pyml.server.store`` is the only module that issues SQL.
``pyml.client``
    Runs in a user's process and talks to the database through psycopg: the ``pyml`` command
    (``up``, ``down``, ``status``, ``listen``, ``report``), the local cluster, the stream
    consumer, the demo, the typed helpers and psycopg adapters (``pyml.client.train``,
    ``predict``, ``register``, ...) and SQLAlchemy expressions (``pyml.client.sqlalchemy``).
``pyml.core``
    Pure code both sides use, with no database: model formats and their checks, loaded models
    and prediction, preprocessing and the one-row transform, drift statistics, metrics,
    algorithms, argument checks.
``pyml.edge``
    The device runtime (``Predictor``): predicts with an exported model's ONNX graph and card,
    outside the database; imports only the standard library, numpy, onnxruntime and
    ``pyml.errors``.
``pyml.errors``
    The exceptions, each carrying the SQLSTATE it is reported with.

Inside each subpackage, a module whose name starts with ``_`` is private to it.
"""

from pyml.errors import PymlError

__version__ = "0.1.0"

__all__ = ["PymlError", "__version__"]
