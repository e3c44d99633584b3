"""psycopg 3 adapters for what ML code passes: numpy arrays, mixed number lists, dicts as jsonb.

Nothing is registered on import: :func:`register` installs the dumpers on one connection, cursor
or adapters map, and psycopg's own rules stay in force everywhere else. psycopg already adapts
numpy scalars (``np.float32`` → ``real``, ``np.int64`` → ``bigint``, ...); these dumpers add:

- ``numpy.ndarray`` of any shape → the array type of its dtype: ``float32`` (and ``float16``) →
  ``real[]``, ``float64`` → ``double precision[]``, ``int8``/``int16``/``uint8`` →
  ``smallint[]``, ``int32``/``uint16`` → ``integer[]``, ``int64``/``uint32`` → ``bigint[]``,
  ``bool`` → ``boolean[]``; sent in binary, with the array's dimensions (a 2-D array is a 2-D
  PostgreSQL array, as ``array_agg`` of row arrays makes). Other dtypes, masked arrays and 0-d
  arrays go through ``tolist()`` (masked values become NULL).
- ``list`` mixing ints and floats (Python or numpy numbers, at any nesting depth) →
  ``double precision[]``; a list mixing only integer types → an integer array. Lists of one
  type are dumped by psycopg's own list dumper, unchanged.
- ``dict`` → ``jsonb``, serialised with numpy values allowed (``np.int64(50)`` → ``50``).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg import abc, postgres
from psycopg.abc import AdaptContext, Buffer, DumperKey
from psycopg.adapt import AdaptersMap, Dumper, PyFormat, RecursiveDumper
from psycopg.pq import Format
from psycopg.types.array import BaseListDumper, ListBinaryDumper, ListDumper
from psycopg.types.json import Jsonb, JsonbBinaryDumper, JsonbDumper

_HEAD = struct.Struct("!iiI")  # binary array: dimensions, has nulls, element type oid
_DIM = struct.Struct("!ii")  # per dimension: length, lower bound

# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"object of type {type(value).__name__} is not JSON serializable")


def json_dumps(value: Any) -> str:
    """``value`` as JSON text, numpy scalars and arrays included; NaN and infinities refused
    (JSON has no spelling for them, and jsonb would refuse them)."""
    return json.dumps(value, default=_json_default, allow_nan=False)


class DictJsonbDumper(JsonbDumper):
    """``dict`` → ``jsonb`` (text format)."""

    def dump(self, obj: Any) -> Buffer | None:
        return super().dump(Jsonb(obj, dumps=json_dumps))


class DictJsonbBinaryDumper(JsonbBinaryDumper):
    """``dict`` → ``jsonb`` (binary format)."""

    def dump(self, obj: Any) -> Buffer | None:
        return super().dump(Jsonb(obj, dumps=json_dumps))


# ---------------------------------------------------------------------------
# numpy arrays
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Wire:
    """How a numeric dtype travels: PostgreSQL element type and its big-endian numpy dtype."""

    type_name: str
    dtype: np.dtype[Any]
    element_oid: int
    array_oid: int
    text: Callable[[Any], str]


def _wire(type_name: str, dtype: str, text: Callable[[Any], str] = str) -> _Wire:
    info = postgres.types[type_name]
    return _Wire(type_name, np.dtype(dtype), info.oid, info.array_oid, text)


_FLOAT4 = _wire("float4", ">f4")
_FLOAT8 = _wire("float8", ">f8")
_INT2 = _wire("int2", ">i2")
_INT4 = _wire("int4", ">i4")
_INT8 = _wire("int8", ">i8")
_BOOL = _wire("bool", "u1", lambda b: "t" if b else "f")

# (dtype kind, item size) -> wire; anything else goes through tolist()
_WIRES: dict[tuple[str, int], _Wire] = {
    ("f", 2): _FLOAT4,
    ("f", 4): _FLOAT4,
    ("f", 8): _FLOAT8,
    ("i", 1): _INT2,
    ("i", 2): _INT2,
    ("i", 4): _INT4,
    ("i", 8): _INT8,
    ("u", 1): _INT2,
    ("u", 2): _INT4,
    ("u", 4): _INT8,
    ("b", 1): _BOOL,
}


def _wire_of(obj: np.ndarray[Any, Any]) -> _Wire | None:
    if obj.ndim == 0 or isinstance(obj, np.ma.MaskedArray):
        return None
    return _WIRES.get((obj.dtype.kind, obj.dtype.itemsize))


def _as_python(obj: np.ndarray[Any, Any]) -> Any:
    """What an array without a wire type is dumped as: nested lists, or the scalar of a 0-d
    array (a masked value becomes None)."""
    if obj.ndim == 0:
        return None if obj is np.ma.masked else obj[()]
    return obj.tolist()


class NDArrayDumper(RecursiveDumper):
    """``numpy.ndarray`` → a PostgreSQL array of the dtype's type (see the module docstring).

    Registered for ``numpy.ndarray``; :meth:`upgrade` hands each dtype its own dumper.
    """

    def get_key(self, obj: np.ndarray[Any, Any], format: PyFormat) -> DumperKey:
        wire = _wire_of(obj)
        if wire is not None:
            return (self.cls, wire.dtype.type)
        value = _as_python(obj)
        fmt = PyFormat.from_pq(self.format)
        base = self._tx.adapters.get_dumper(type(value), fmt)(type(value), self._tx)
        return (self.cls, base.get_key(value, fmt))

    def upgrade(self, obj: np.ndarray[Any, Any], format: PyFormat) -> Dumper:
        wire = _wire_of(obj)
        if wire is not None:
            if self.format == Format.BINARY:
                return _ArrayBinaryDumper(self.cls, self._tx, wire)
            return _ArrayTextDumper(self.cls, self._tx, wire)
        inner = self._tx.get_dumper(_as_python(obj), PyFormat.from_pq(self.format))
        return _converting(self.cls, self._tx, inner, _as_python)

    def dump(self, obj: np.ndarray[Any, Any]) -> Buffer | None:
        return self.upgrade(obj, PyFormat.from_pq(self.format)).dump(obj)


class NDArrayBinaryDumper(NDArrayDumper):
    format = Format.BINARY


class _ArrayTextDumper(Dumper):
    def __init__(self, cls: type, context: AdaptContext | None, wire: _Wire):
        super().__init__(cls, context)
        self.wire = wire
        self.oid = wire.array_oid

    def dump(self, obj: np.ndarray[Any, Any]) -> Buffer | None:
        if obj.size == 0:
            return b"{}"
        text = self.wire.text

        def nested(items: list[Any]) -> str:
            if items and isinstance(items[0], list):
                return "{" + ",".join(nested(item) for item in items) + "}"
            return "{" + ",".join(text(item) for item in items) + "}"

        return nested(obj.tolist()).encode()


class _ArrayBinaryDumper(_ArrayTextDumper):
    format = Format.BINARY

    def dump(self, obj: np.ndarray[Any, Any]) -> Buffer | None:
        wire = self.wire
        values = np.asarray(obj, dtype=wire.dtype)
        if values.size == 0:  # PostgreSQL's empty array has no dimensions
            return _HEAD.pack(0, 0, wire.element_oid)
        # every element is its length, then its bytes: one packed record array
        body = np.empty(values.size, dtype=[("length", ">i4"), ("value", wire.dtype)])
        body["length"] = wire.dtype.itemsize
        body["value"] = values.reshape(-1)
        head = _HEAD.pack(values.ndim, 0, wire.element_oid)
        dims = b"".join(_DIM.pack(length, 1) for length in values.shape)
        return head + dims + body.tobytes()


# ---------------------------------------------------------------------------
# Lists mixing number types
# ---------------------------------------------------------------------------

_FLOATS = (float, np.floating)
_NUMBERS = (int, float, np.integer, np.floating, np.bool_)


def _flat_types(items: list[Any], found: set[type]) -> None:
    for item in items:
        if isinstance(item, list):
            _flat_types(item, found)
        elif item is not None:
            found.add(type(item))


def _number_mix(obj: list[Any]) -> type | None:
    """``float`` or ``int`` when ``obj`` mixes number types psycopg would refuse to mix
    (ints and floats, Python and numpy numbers), else None (psycopg's own rules apply)."""
    found = set(map(type, obj))
    if len(found) == 1 and list not in found:
        return None  # the common case: one type, not nested
    found = set()
    _flat_types(obj, found)
    if len(found) < 2 or not all(issubclass(t, _NUMBERS) for t in found):
        return None
    return float if any(issubclass(t, _FLOATS) for t in found) else int


def _extreme(obj: list[Any]) -> int:
    """The integer of ``obj`` (nested) psycopg would size an integer array by."""
    found: list[int] = []

    def walk(items: list[Any]) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item)
            elif item is not None:
                found.append(int(item))

    walk(obj)
    return max(max(found), -min(found) - 1)


def _element(dumper: BaseListDumper, obj: list[Any], format: PyFormat) -> _ConvertingDumper | None:
    """For a list mixing number types, a dumper of its elements as one type (converting
    each), else None."""
    to = _number_mix(obj)
    if to is None:
        return None
    fmt = PyFormat.from_pq(dumper.format)
    sample = 0.0 if to is float else _extreme(obj)
    return _converting(float, dumper._tx, dumper._tx.get_dumper(sample, fmt), to)


def _mixed_key(
    dumper: BaseListDumper,
    obj: list[Any],
    format: PyFormat,
    base: Callable[[list[Any], PyFormat], DumperKey],
) -> DumperKey:
    element = _element(dumper, obj, format)
    if element is None:
        return base(obj, format)
    return (dumper.cls, type(element), type(element.inner))


def _mixed_upgrade(
    dumper: BaseListDumper,
    obj: list[Any],
    format: PyFormat,
    base: Callable[[list[Any], PyFormat], BaseListDumper],
) -> BaseListDumper:
    element = _element(dumper, obj, format)
    if element is None:
        return base(obj, format)
    upgraded = type(dumper)(dumper.cls, dumper._tx)
    upgraded.sub_dumper = element
    upgraded.oid = postgres.types[element.oid].array_oid
    return upgraded


class NumberListDumper(ListDumper):
    """``list`` → array, like psycopg's, and a list mixing number types → one number type."""

    def get_key(self, obj: list[Any], format: PyFormat) -> DumperKey:
        return _mixed_key(self, obj, format, super().get_key)

    def upgrade(self, obj: list[Any], format: PyFormat) -> BaseListDumper:
        return _mixed_upgrade(self, obj, format, super().upgrade)


class NumberListBinaryDumper(ListBinaryDumper):
    """The binary twin of :class:`NumberListDumper`."""

    def get_key(self, obj: list[Any], format: PyFormat) -> DumperKey:
        return _mixed_key(self, obj, format, super().get_key)

    def upgrade(self, obj: list[Any], format: PyFormat) -> BaseListDumper:
        return _mixed_upgrade(self, obj, format, super().upgrade)


# ---------------------------------------------------------------------------
# A dumper that converts the value, then lets another dumper write it
# ---------------------------------------------------------------------------


class _ConvertingDumper(Dumper):
    def __init__(
        self,
        cls: type,
        context: AdaptContext | None,
        inner: abc.Dumper,
        convert: Callable[[Any], Any],
    ):
        super().__init__(cls, context)
        self.inner = inner
        self.convert = convert
        self.oid = inner.oid

    def dump(self, obj: Any) -> Buffer | None:
        return self.inner.dump(self.convert(obj))

    def quote(self, obj: Any) -> Buffer:
        return self.inner.quote(self.convert(obj))


class _ConvertingBinaryDumper(_ConvertingDumper):
    format = Format.BINARY


def _converting(
    cls: type, context: AdaptContext | None, inner: abc.Dumper, convert: Callable[[Any], Any]
) -> _ConvertingDumper:
    kind = _ConvertingBinaryDumper if inner.format == Format.BINARY else _ConvertingDumper
    return kind(cls, context, inner, convert)


# ---------------------------------------------------------------------------


def register(context: AdaptContext | AdaptersMap) -> None:
    """Install pyml's dumpers on ``context``: a connection, a cursor, or an adapters map.

    Only that context (and the cursors of a connection) changes; nothing is registered
    globally. ``register(psycopg.adapters)`` would make them the default of every new
    connection, if that is what you want.
    """
    adapters = context if isinstance(context, AdaptersMap) else context.adapters
    # The dumper registered last is the one %s placeholders use: binary for arrays (exact and
    # compact), text for lists and dicts, as psycopg registers its own list and Jsonb dumpers.
    adapters.register_dumper(np.ndarray, NDArrayDumper)
    adapters.register_dumper(np.ndarray, NDArrayBinaryDumper)
    adapters.register_dumper(list, NumberListBinaryDumper)
    adapters.register_dumper(list, NumberListDumper)
    adapters.register_dumper(dict, DictJsonbBinaryDumper)
    adapters.register_dumper(dict, DictJsonbDumper)
