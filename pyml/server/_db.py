"""How the package runs SQL: the :class:`Db` protocol and its in-server implementation.

Queries are written once, with ``$n`` placeholders and the parameter types
given separately; values are always bound, never formatted into SQL text. An
out-of-server implementation (psycopg) can serve the same store later.

Two identities. pyml's SQL functions run with the caller's rights, so ``db.query``
reads the caller's relations as the caller would. ``db.registry`` runs a statement
on pyml's own tables with the extension owner's rights instead, through the
SECURITY DEFINER functions ``pyml._registry_read()`` / ``_registry_write()``: the
statement and its parameters are handed over in this session's Python (``GD``),
never as SQL arguments, so nobody can call those functions with a statement of
their own. Callers check the caller's privilege first (:mod:`pyml.server.privileges`);
registry statements touch pyml's tables only, never a user's relation.

:meth:`Registry.write_on_return` hands a write to pyml's language handler instead
(src/deferred.c, through :mod:`pyml.server._native`), which runs it in C as the function
returns, as the function's owner: for a trigger's last write, without PL/Python's
subtransaction.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol

Row = dict[str, Any]  # a result row, by column name: the store makes typed rows of them


class Caller(NamedTuple):
    """The role a statement runs as (``current_user``): oid and name."""

    oid: int
    name: str


class Db(Protocol):
    """What :mod:`pyml.server.store` needs from a database connection."""

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

    def debug(self, message: str) -> None:
        """Say how a job went (DEBUG2, PL/Python's debug level: seen with
        ``client_min_messages = debug2``)."""
        ...

    def atomic(self) -> AbstractContextManager[Any]:
        """A block whose statements all take effect, or none (a subtransaction)."""
        ...

    def check(self) -> None:
        """Raise if the statement was cancelled (long Python work calls this now and then)."""
        ...

    def caller(self) -> Caller:
        """The role the current statement runs as (before any registry statement)."""
        ...

    def user_oid(self) -> int:
        """``current_user``'s oid (inside a registry statement: its caller's)."""
        ...

    @property
    def registry(self) -> Registry:
        """Statements on pyml's own tables, run with the extension owner's rights."""
        ...


class Registry(Protocol):
    """Reads and writes of pyml's tables (see the module docstring)."""

    def query(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> list[Row]:
        """A read: sees the calling statement's snapshot."""
        ...

    def write(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> list[Row]:
        """A write (or a row lock), returning rows."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> int:
        """A write; how many rows it processed."""
        ...

    def run(self, block: Callable[[], Any]) -> Any:
        """Run ``block`` with the extension owner's rights: several statements on pyml's own
        objects in one call (``db.query`` inside it runs as the owner)."""
        ...

    def write_on_return(
        self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()
    ) -> None:
        """A write run when the pyml function running returns, with the same rights and
        effect as :meth:`write` and nothing returned; at once (by :meth:`write`) when it
        cannot wait. For the last write of a trigger: it saves PL/Python's subtransaction."""
        ...


def _text(value: Any, utf8: bool) -> bytes | None:
    """A parameter's text form for the type input functions, or None for NULL; ValueError
    for a value that has none here (an array, a non-ASCII text outside UTF8 databases)."""
    if value is None:
        return None
    if value is True or value is False:
        return b"t" if value else b"f"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        if value != value:
            return b"NaN"
        if value in (float("inf"), float("-inf")):
            return b"Infinity" if value > 0 else b"-Infinity"
        return repr(value).encode()
    if isinstance(value, str) and (utf8 or value.isascii()):
        return value.encode()
    raise ValueError(value)


def user_id_function() -> Callable[[], int]:
    """PostgreSQL's ``GetUserId()``, called in this backend through ctypes: the current
    user's oid in about 0.1 µs, where ``SELECT current_user`` costs an SPI round trip.
    It follows SET ROLE and SECURITY DEFINER functions exactly as ``current_user`` does."""
    function = ctypes.CDLL(None).GetUserId
    function.restype = ctypes.c_uint32
    function.argtypes = []
    return function


class PlpyDb:
    """Runs queries through PL/Python's SPI, with plans prepared once per session."""

    def __init__(self, plpy: Any):
        self.plpy = plpy
        self._plans: dict[tuple[str, tuple[str, ...]], Any] = {}
        # The registry statement queued for pyml._registry_read() / _registry_write(), and
        # what it returned or raised: that function runs in this session, so it finds them.
        self._queued: tuple[Callable[[], Any], Caller] | None = None
        self._result: Any = None
        self._error: BaseException | None = None
        self._names: dict[int, str] = {}
        self._user_id: Callable[[], int] | None = None
        self._inside: list[Caller] = []  # callers of the registry statements being run
        self.registry = _PlpyRegistry(self)

    def defer(self, sql: str, params: Sequence[Any], types: Sequence[str]) -> bool:
        """Hand a registry write to the language handler for when the running plpyml
        function returns (src/deferred.c); False when it cannot take it."""
        from pyml.server import _native

        defer = _native.defer_write()
        if defer is None or self._inside or len(params) != len(types):
            return False
        try:
            values = [_text(value, _native.server_is_utf8()) for value in params]
        except ValueError:
            return False
        n = len(values)
        return not defer(
            sql.encode(),
            n,
            (ctypes.c_char_p * n)(*[name.encode() for name in types]),
            (ctypes.c_char_p * n)(*values),
        )

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

    def debug(self, message: str) -> None:
        self.plpy.debug(message)

    def atomic(self) -> AbstractContextManager[Any]:
        return self.plpy.subtransaction()  # type: ignore[no-any-return]

    def check(self) -> None:
        # Executing anything lets PostgreSQL act on a pending cancel: the query raises
        # QueryCanceled, which ends the Python code and the statement.
        self.query("SELECT")

    def user_oid(self) -> int:
        """``current_user``'s oid (inside a registry statement: its caller's)."""
        if self._inside:
            return self._inside[-1].oid
        if self._user_id is None:
            self._user_id = user_id_function()
        return self._user_id()

    def caller(self) -> Caller:
        if self._inside:
            return self._inside[-1]
        oid = self.user_oid()
        name = self._names.get(oid)
        if name is None:
            name = self._names[oid] = str(
                self.query("SELECT CURRENT_USER::text AS name")[0]["name"]
            )
        return Caller(oid, name)

    def as_owner(self, gate: str, run: Callable[[], Any]) -> Any:
        """Run ``run`` (SPI statements on pyml's tables) inside ``pyml.<gate>()``."""
        if self._inside:  # already in a registry statement
            return run()
        self._queued, self._result, self._error = (run, self.caller()), None, None
        try:
            self._plan(f"SELECT pyml.{gate}()", ()).execute([])
        except self.plpy.SPIError:
            error, self._error = self._error, None
            if error is not None:
                raise error from None
            raise
        finally:
            self._queued = None
        result, self._result = self._result, None
        return result

    def run_queued(self) -> None:
        """The body of ``pyml._registry_read()`` / ``_registry_write()``: run the queued
        statement (42501 when nothing was queued, i.e. a direct call)."""
        task, self._queued = self._queued, None
        if task is None:
            from pyml.errors import InsufficientPrivilege

            raise InsufficientPrivilege(
                "pyml's registry functions are internal to pyml",
                hint="Use pyml's public functions.",
            )
        run, caller = task
        self._inside.append(caller)
        try:
            self._result = run()
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._inside.pop()


class _PlpyRegistry:
    """:class:`Registry` for :class:`PlpyDb`."""

    def __init__(self, db: PlpyDb):
        self._db = db

    def query(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> list[Row]:
        return self._db.as_owner(  # type: ignore[no-any-return]
            "_registry_read", lambda: self._db.query(sql, params, types)
        )

    def write(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> list[Row]:
        return self._db.as_owner(  # type: ignore[no-any-return]
            "_registry_write", lambda: self._db.query(sql, params, types)
        )

    def execute(self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()) -> int:
        return self._db.as_owner(  # type: ignore[no-any-return]
            "_registry_write", lambda: self._db.execute(sql, params, types)
        )

    def run(self, block: Callable[[], Any]) -> Any:
        return self._db.as_owner("_registry_write", block)

    def write_on_return(
        self, sql: str, params: Sequence[Any] = (), types: Sequence[str] = ()
    ) -> None:
        if not self._db.defer(sql, params, types):
            self.write(sql, params, types)
