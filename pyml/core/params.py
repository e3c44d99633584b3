"""Declarative checks of SQL arguments, with scikit-learn-style messages."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from pyml.errors import InvalidParameterValue, NullValueNotAllowed

TASKS = ("regression", "classification", "clustering", "decomposition")
TEST_SAMPLINGS = ("random", "last", "stratified")
SEARCHES = ("grid", "random")
STRATEGIES = ("best_score", "most_recent", "rollback")
RUNTIMES = ("python", "rust")


def one_of(name: str, value: Any, choices: Sequence[str]) -> Any:
    if value not in choices:
        raise InvalidParameterValue(f'"{name}" must be one of {", ".join(choices)}; got "{value}"')
    return value


def optional_one_of(name: str, value: Any, choices: Sequence[str]) -> Any:
    return None if value is None else one_of(name, value, choices)


def test_size(value: float) -> float:
    """A fraction in (0, 1), or a row count (> 1, whole)."""
    ok = value is not None and math.isfinite(value) and value > 0 and value != 1
    if ok and value > 1:
        ok = float(value).is_integer()
    if not ok:
        raise InvalidParameterValue(
            f'"test_size" must be in the range (0, 1) or a whole number of rows > 1, got {value:g}'
        )
    return float(value)


def json_object(name: str, value: str | dict[str, Any] | None) -> dict[str, Any]:
    """A jsonb argument (PL/Python passes it as text) that must be an object."""
    if value is None:
        return {}
    parsed = json.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, dict):
        raise InvalidParameterValue(f'"{name}" must be a JSON object, got {type(parsed).__name__}')
    return parsed


def non_empty(name: str, value: str | None) -> str:
    if value is None:
        raise NullValueNotAllowed(f'"{name}" must not be NULL')
    if not str(value).strip():
        raise InvalidParameterValue(f'"{name}" must not be empty')
    return value


def shown(value: Any) -> str:
    """An argument as a message shows it: NULL, a ``real`` by its own shortest digits (not
    the float8 it arrives as), text in double quotes."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        import numpy as np

        return str(np.float32(value)) if float(np.float32(value)) == value else f"{value:g}"
    return f'"{value}"'
