"""PostgreSQL binary COPY <-> numpy for fixed-width, non-NULL columns (int8, float4, float8).

This is how a competent client-side batch job moves a table: one COPY each way, decoded and
encoded by numpy in bulk, no Python object per value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg

from bench.config import BenchError

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
TYPES = {"int8": ">i8", "float4": ">f4", "float8": ">f8"}


def _row_dtype(types: Sequence[str]) -> np.dtype:
    fields: list[tuple[str, str]] = [("nfields", ">i2")]
    for i, name in enumerate(types):
        fields += [(f"len{i}", ">i4"), (f"v{i}", TYPES[name])]
    return np.dtype(fields)


def copy_out(conn: psycopg.Connection, query: str, types: Sequence[str]) -> list[np.ndarray]:
    """Run ``COPY (query) TO STDOUT (FORMAT binary)``; one native-endian array per column."""
    buf = bytearray()
    with conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
        for block in copy:
            buf += block
    if bytes(buf[:11]) != SIGNATURE:
        raise BenchError("binary COPY: bad signature")
    extension = int.from_bytes(buf[15:19], "big")
    start = 19 + extension
    dtype = _row_dtype(types)
    body = len(buf) - start - 2  # the trailer is int16 -1
    if body % dtype.itemsize:
        raise BenchError("binary COPY: rows are not fixed-width (a NULL?)")
    rows = np.frombuffer(buf, dtype, count=body // dtype.itemsize, offset=start)
    if len(rows) and (rows["nfields"] != len(types)).any():
        raise BenchError("binary COPY: unexpected field count")
    out = []
    for i, name in enumerate(types):
        width = np.dtype(TYPES[name]).itemsize
        if len(rows) and (rows[f"len{i}"] != width).any():
            raise BenchError(f"binary COPY: column {i} has NULLs or is not {name}")
        out.append(rows[f"v{i}"].astype(TYPES[name].replace(">", "=")))
    return out


def copy_in(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    arrays: Sequence[np.ndarray],
    types: Sequence[str],
) -> int:
    """``COPY table (columns) FROM STDIN (FORMAT binary)`` from equal-length arrays."""
    n = len(arrays[0])
    rows = np.empty(n, _row_dtype(types))
    rows["nfields"] = len(types)
    for i, (array, name) in enumerate(zip(arrays, types, strict=True)):
        rows[f"len{i}"] = np.dtype(TYPES[name]).itemsize
        rows[f"v{i}"] = array
    payload = SIGNATURE + b"\0" * 8 + rows.tobytes() + b"\xff\xff"
    with conn.cursor().copy(
        f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)"
    ) as copy:
        step = 8 << 20
        for offset in range(0, len(payload), step):
            copy.write(payload[offset : offset + step])
    return n
