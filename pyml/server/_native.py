"""pyml's own library (``src/``, loaded in the backend as ``pyml.so``) as seen from Python.

Entry points called through ctypes by the Python that runs in the backend (pyml's only:
plpyml and plpython3u are untrusted languages). None raises a PostgreSQL error: each says
by its result whether it took what it was given.

- ``pyml_defer_write`` (src/deferred.c): a registry write run by the language handler when
  the running plpyml function returns, without PL/Python's subtransaction.
- ``pyml_stream_fast`` (src/stream.c): how a sync stream's trigger may score its next
  single-row INSERTs in C; ``pyml_stream_queue``: how an async stream's trigger may queue
  them.
- ``pyml_read_give`` and ``pyml_read_free`` (src/scan.c): the columns a read of
  ``pyml._read_columns_held`` holds, given to this Python as they are (no copy), and
  freed when its last array of them goes.

Each is looked up once a backend (a backend is one session).
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

_UTF8 = 6  # PostgreSQL's PG_UTF8 (mb/pg_wchar.h)


def _library() -> ctypes.CDLL:
    # the backend loaded pyml.so with RTLD_GLOBAL: its symbols are the process's
    return ctypes.CDLL(None)


def _function(name: str, argtypes: list[Any], restype: Any = ctypes.c_int) -> Any:
    """One of the entry points (an int its result, unless said), or None when this build of
    the library lacks it."""
    try:
        function = getattr(_library(), name)
    except AttributeError:
        return None
    function.restype = restype
    function.argtypes = argtypes
    return function


@functools.cache
def defer_write() -> Any:
    """``pyml_defer_write`` (or None)."""
    return _function(
        "pyml_defer_write",
        [
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(ctypes.c_char_p),
        ],
    )


@functools.cache
def stream_fast() -> Any:
    """``pyml_stream_fast`` (or None)."""
    return _function(
        "pyml_stream_fast",
        [
            ctypes.c_uint32,  # relation oid
            ctypes.c_int,  # features
            ctypes.POINTER(ctypes.c_int16),  # their attribute numbers
            ctypes.POINTER(ctypes.c_uint32),  # their type oids
            ctypes.c_int16,  # the key's attribute number
            ctypes.c_uint32,  # its type oid
            ctypes.c_void_p,  # pyml_trees_predict_row
            ctypes.c_void_p,  # the model's tables
            ctypes.c_int,  # classes (kernel outputs)
            ctypes.c_int,  # the answer: 0 the value, 1 binary label, 2 label of the largest
            ctypes.POINTER(ctypes.c_double),  # labels
            ctypes.c_void_p,  # the notice board's generation
            ctypes.c_uint64,  # the generation seen
            ctypes.c_int64,  # deadline, CLOCK_MONOTONIC nanoseconds
            ctypes.c_int,  # NOTIFY payload limit
            ctypes.c_char_p,  # the event's statement
            ctypes.c_char_p,  # stream id
            ctypes.c_char_p,  # model id
            ctypes.c_char_p,  # channel
        ],
    )


@functools.cache
def stream_queue() -> Any:
    """``pyml_stream_queue`` (or None)."""
    return _function("pyml_stream_queue", [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_char_p])


@functools.cache
def _read_give() -> Any:
    return _function(
        "pyml_read_give", [ctypes.c_uint64, ctypes.POINTER(ctypes.c_int64)], ctypes.c_void_p
    )


@functools.cache
def _read_free() -> Any:
    return _function("pyml_read_free", [ctypes.c_void_p], None)


class _Given:
    """A read's buffer given by pyml.so, as numpy sees it (``__array_interface__``: float8
    values, ``(width, capacity)``); freed by pyml.so when the last array of it goes (every
    array made from it keeps it as its base)."""

    def __init__(self, address: int, width: int, capacity: int, free: Any) -> None:
        self.__array_interface__ = {
            "data": (address, False),
            "shape": (width, capacity),
            "typestr": "<f8",
            "version": 3,
        }
        self._address, self._free = address, free

    def __del__(self) -> None:
        self._free(self._address)


def take_read(token: int) -> tuple[Any, int]:
    """The columns read by ``pyml._read_columns_held`` under ``token``, taken as they are:
    a float64 array ``(width, capacity)`` whose row i is column i (an int8 key's values
    as float8 bytes: ``view(np.int64)``), and the number of rows read (the first of each
    row). Its memory goes with the last array of it."""
    import numpy as np

    give, free = _read_give(), _read_free()
    if give is None or free is None:
        raise RuntimeError("this pyml.so holds no reads: install pyml's library again")
    shape = (ctypes.c_int64 * 3)()
    address = give(token, shape)
    if not address:
        raise RuntimeError(f"no read is held under token {token}")
    width, capacity, rows = shape
    return np.asarray(_Given(address, width, capacity, free)), rows


@functools.cache
def server_is_utf8() -> bool:
    """Whether the database's encoding is UTF8 (what Python's str encodes to)."""
    encoding = _library().GetDatabaseEncoding
    encoding.restype = ctypes.c_int
    return bool(encoding() == _UTF8)
