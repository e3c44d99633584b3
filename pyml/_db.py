"""How the package runs SQL: the :class:`Db` protocol and its in-server implementation.

Queries are written once, with ``$n`` placeholders and the parameter types
given separately; values are always bound, never formatted into SQL text. An
out-of-server implementation (psycopg) can serve the same store later.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Row = dict[str, Any]


class Db(Protocol):
    """What :mod:`pyml.store` needs from a database connection."""

    def query(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> list[Row]:
        """Run ``sql`` with ``$1..$n`` bound to ``params`` (of SQL ``types``); return rows."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> int:
        """Run a statement that returns no rows; return how many rows it processed."""
        ...

    def notice(self, message: str) -> None:
        """Report progress to the caller."""
        ...

    def warning(self, message: str) -> None:
        """Report a problem the caller's statement goes on despite."""
        ...

    def atomic(self) -> AbstractContextManager[Any]:
        """A block whose statements all take effect, or none (a subtransaction)."""
        ...

    def check(self) -> None:
        """Raise if the statement was cancelled (long Python work calls this now and then)."""
        ...


class PlpyDb:
    """Runs queries through PL/Python's SPI, with plans prepared once per session."""

    def __init__(self, plpy: Any, plans: dict[Any, Any]):
        self.plpy = plpy
        self._plans = plans

    def _plan(self, sql: str, types: Sequence[str]) -> Any:
        key = (sql, tuple(types))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self.plpy.prepare(sql, list(types))
        return plan

    def query(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> list[Row]:
        return list(self._plan(sql, types).execute(list(params)))

    def execute(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> int:
        return int(self._plan(sql, types).execute(list(params)).nrows())

    def notice(self, message: str) -> None:
        self.plpy.notice(message)

    def warning(self, message: str) -> None:
        self.plpy.warning(message)

    def atomic(self) -> AbstractContextManager[Any]:
        return self.plpy.subtransaction()  # type: ignore[no-any-return]

    def check(self) -> None:
        # Executing anything lets PostgreSQL act on a pending cancel: the query raises
        # QueryCanceled, which ends the Python code and the statement.
        self.query("SELECT")
