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

    def notice(self, message: str) -> None:
        """Report progress to the caller."""
        ...


class PlpyDb:
    """Runs queries through PL/Python's SPI, with plans prepared once per session."""

    def __init__(self, plpy: Any, plans: dict[Any, Any]):
        self.plpy = plpy
        self._plans = plans

    def query(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> list[Row]:
        key = (sql, tuple(types))
        plan = self._plans.get(key)
        if plan is None:
            plan = self.plpy.prepare(sql, list(types))
            self._plans[key] = plan
        return list(plan.execute(list(params)))

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
        named = _PLACEHOLDER.sub(lambda m: f"%(p{m.group(1)})s", sql.replace("%", "%%"))
        args = {f"p{i}": value for i, value in enumerate(params, start=1)}
        with self.conn.cursor(row_factory=self._row_factory) as cur:
            cur.execute(named, args)
            return list(cur.fetchall()) if cur.description else []

    def notice(self, message: str) -> None:
        if self._on_notice is not None:
            self._on_notice(message)
