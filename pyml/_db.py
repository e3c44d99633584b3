"""One way to run SQL for the whole package: inside the server (plpy) or outside (psycopg).

Queries are written once, with ``$n`` placeholders and the parameter types
given separately; values are always bound, never formatted into SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
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


_PLACEHOLDER = re.compile(r"\$(\d+)")


class PsycopgDb:
    """Runs the same queries over a psycopg connection (client side)."""

    def __init__(self, conn: Any, on_notice: Callable[[str], None] | None = None):
        from psycopg.rows import dict_row

        self.conn = conn
        self._row_factory = dict_row
        self._on_notice = on_notice

    def query(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> list[Row]:
        with self.conn.cursor(row_factory=self._row_factory) as cur:
            cur.execute(*self._convert(sql, params))
            return list(cur.fetchall()) if cur.description else []

    def execute(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> int:
        with self.conn.cursor() as cur:
            cur.execute(*self._convert(sql, params))
            return int(cur.rowcount)

    @staticmethod
    def _convert(sql: str, params: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        named = _PLACEHOLDER.sub(lambda m: f"%(p{m.group(1)})s", sql.replace("%", "%%"))
        return named, {f"p{i}": value for i, value in enumerate(params, start=1)}

    def notice(self, message: str) -> None:
        if self._on_notice is not None:
            self._on_notice(message)
