"""pyml: in-database machine learning for PostgreSQL.

Trained scikit-learn and LightGBM models live in PostgreSQL as versioned rows;
this package is the logic behind the ``pyml`` extension's SQL functions, and the
client-side tools (``pyml up``, ``pyml down``, ``pyml status``).
"""

from pyml.errors import PymlError

__version__ = "0.1.0"

__all__ = ["PymlError", "__version__"]
