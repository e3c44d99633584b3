"""The SQL signatures the Python helpers call: argument names and SQL types, in order.

Shared by the psycopg helpers (``pyml.client``) and the SQLAlchemy constructs
(``pyml.client.sqlalchemy``); ``tests/db/test_python_client.py`` checks them against the
installed functions. ``caller_search_path`` is left out on purpose: its default captures the
caller's ``search_path``, which is what a call from the user's session wants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyml.client._adapt import json_dumps

TRAIN: dict[str, str] = {
    "project_name": "text",
    "task": "text",
    "relation_name": "text",
    "y_column_name": "text",
    "algorithm": "text",
    "hyperparams": "jsonb",
    "search": "text",
    "search_params": "jsonb",
    "search_args": "jsonb",
    "test_size": "real",
    "test_sampling": "text",
    "runtime": "text",
    "automatic_deploy": "boolean",
    "materialize_snapshot": "boolean",
    "preprocess": "jsonb",
}
TRAIN_JOINT: dict[str, str] = {**TRAIN, "y_column_name": "text[]"}
TRAIN_COLUMNS: dict[str, str] = {
    "project": "text",
    "task": "text",
    "algorithm": "text",
    "deployed": "boolean",
}

DEPLOY: dict[str, str] = {"project_name": "text", "strategy": "text", "algorithm": "text"}
DEPLOY_BY_ID: dict[str, str] = {"model_id": "bigint"}
DEPLOY_COLUMNS: dict[str, str] = {
    "project": "text",
    "strategy": "text",
    "algorithm": "text",
    "model_id": "bigint",
}


def train_function(y_column_name: object) -> tuple[str, dict[str, str]]:
    """``pyml.train``, or ``pyml.train_joint`` when several label columns are given."""
    if isinstance(y_column_name, Sequence) and not isinstance(y_column_name, str):
        return "train_joint", TRAIN_JOINT
    return "train", TRAIN


def arguments(
    signature: Mapping[str, str],
    given: Mapping[str, Any],
    keep: Callable[[Any], bool] = lambda value: False,
) -> list[tuple[str, Any, str]]:
    """``(name, value, SQL type)`` of the arguments given (not None), in signature order; a
    jsonb value becomes its JSON text (a ``str`` is taken as JSON text already), a sequence of
    label columns a list; values ``keep`` accepts (SQL expressions) are left as they are."""
    unknown = set(given) - set(signature)
    if unknown:
        raise TypeError(f"unexpected arguments: {', '.join(sorted(unknown))}")
    found = []
    for name, sql_type in signature.items():
        value = given.get(name)
        if value is None:
            continue
        if keep(value):
            pass
        elif sql_type == "jsonb" and not isinstance(value, str):
            value = json_dumps(value)
        elif sql_type == "text[]":
            value = list(value)
        found.append((name, value, sql_type))
    return found
