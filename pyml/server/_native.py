"""pyml's own library (``src/``, loaded in the backend as ``pyml.so``) as seen from Python.

Entry points called through ctypes by the Python that runs in the backend (pyml's only:
plpyml and plpython3u are untrusted languages). None raises a PostgreSQL error: each says
by its result whether it took what it was given.

- ``pyml_defer_write`` (src/deferred.c): a registry write run by the language handler when
  the running plpyml function returns, without PL/Python's subtransaction.
- ``pyml_stream_fast`` (src/stream.c): how a sync stream's trigger may score its next
  single-row INSERTs in C; ``pyml_stream_queue``: how an async stream's trigger may queue
  them.
- ``pyml_read_held`` and ``pyml_read_take`` (src/scan.c): the bytes a read of
  ``pyml._read_columns_held`` holds, copied once into an array of this Python's.

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
def _read_held() -> Any:
    return _function("pyml_read_held", [ctypes.c_uint64], ctypes.c_int64)


@functools.cache
def _read_take() -> Any:
    return _function("pyml_read_take", [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_int64])


def take_read(token: int) -> Any:
    """The bytes held under ``token`` by ``pyml._read_columns_held``, as a new uint8 array
    (aligned for float8 and int8 views); the held copy is freed."""
    import numpy as np

    if _read_held() is None or _read_take() is None:
        raise RuntimeError("this pyml.so holds no reads: install pyml's library again")
    size = _read_held()(token)
    if size < 0:
        raise RuntimeError(f"no read is held under token {token}")
    into = np.empty(size, dtype=np.uint8)
    if _read_take()(token, into.ctypes.data, size) != 0:
        raise RuntimeError(f"the read held under token {token} could not be taken")
    return into


@functools.cache
def server_is_utf8() -> bool:
    """Whether the database's encoding is UTF8 (what Python's str encodes to)."""
    encoding = _library().GetDatabaseEncoding
    encoding.restype = ctypes.c_int
    return bool(encoding() == _UTF8)
