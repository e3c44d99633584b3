"""What runs on the Dask workers: each reads its own key range under the exported snapshot,
and answers small questions about the rows it holds (the split, statistics, fingerprint).

Everything here is a plain function of picklable arguments (Dask ships it to the workers by
reference to this module). The rows stay on the worker that read them; only the answers
travel. Errors the user should see (:class:`~pyml.errors.PymlError`, a psycopg error) are
returned as :class:`Failure` values rather than raised: the client raises them itself, with
their SQLSTATE, message, DETAIL and HINT intact.
"""

from __future__ import annotations

import hashlib
import json
import struct
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from pyml.core import statistics as stats

if TYPE_CHECKING:
    from psycopg import sql


class Failure(NamedTuple):
    """An error on a worker, as the client re-raises it."""

    sqlstate: str
    message: str
    detail: str | None
    hint: str | None


class Piece(NamedTuple):
    """One partition as read: its rows in key order."""

    n: int
    X: np.ndarray  # (n, features) float64, NULL as NaN
    labels: Any  # classification: native values (list); regression: float64 (NaN for NULL)
    digest: bytes  # the fingerprint of these rows (pyml.train's scheme over this partition)


class Prepared(NamedTuple):
    """One partition split: training and test rows, labels encoded as pyml.train does."""

    X_train: np.ndarray
    y_train: np.ndarray  # class indices (int64) or float targets
    X_test: np.ndarray
    y_test: np.ndarray
    label_train: Any  # the training rows' labels as read (statistics of the label column)


def read(url: str, snapshot: str, query: sql.Composed, params: list[Any], regression: bool) -> Any:
    """Connect, adopt the exported snapshot and read one key range with ``query`` (its
    identifiers quoted by the client, its values bound here): one row of ``n``, one
    ``array_send`` per numeric column, the label (``array_agg``, native) last."""
    import psycopg
    from psycopg import sql  # noqa: F811 - at run time too

    try:
        with psycopg.connect(url, connect_timeout=30) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                # The snapshot id came from pg_export_snapshot(), quoted as a literal: SET
                # TRANSACTION SNAPSHOT takes no bound parameter.
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                row = conn.execute(query, params).fetchone()
    except psycopg.Error as exc:
        return _failure(exc)
    assert row is not None
    n = int(row[0])
    columns = [floats(data, n) for data in row[1:-1]]
    labels: Any = floats(row[-1], n) if regression else list(row[-1] or [])
    X = np.column_stack(columns) if columns else np.empty((n, 0))
    return Piece(n, X, labels, digest(columns, labels, regression))


def _failure(exc: Exception) -> Failure:
    import psycopg

    if isinstance(exc, psycopg.Error):
        diag = exc.diag
        return Failure(
            diag.sqlstate or "08000",
            diag.message_primary or str(exc).strip(),
            diag.message_detail,
            diag.message_hint,
        )
    from pyml.errors import PymlError

    if isinstance(exc, PymlError):
        return Failure(exc.sqlstate, exc.message, exc.detail, exc.hint)
    raise exc


_HEAD = struct.Struct(">iii")  # array_send: ndim, has_null, element type; then the dimensions
_ELEMENT = np.dtype([("length", ">i4"), ("value", ">f8")])


def floats(data: bytes | None, n: int) -> np.ndarray:
    """A one-dimensional float8 array in ``array_send`` format, as float64 (no NULLs: the
    query coalesces them to NaN, as pyml.train's reading does)."""
    if data is None or n == 0:
        return np.empty((0,), dtype=np.float64)
    ndim, has_null, _ = _HEAD.unpack_from(data, 0)
    if ndim != 1 or has_null:
        raise ValueError("expected a one-dimensional float8 array without NULLs")
    return np.frombuffer(data, dtype=_ELEMENT, count=n, offset=12 + 8)["value"].astype(np.float64)


def digest(columns: list[np.ndarray], labels: Any, regression: bool) -> bytes:
    """The sha256 of a partition's rows, in pyml.train's layout: each feature column's
    float64 bytes, then the label's (float64 bytes, or JSON of the native values). The
    client hashes the column names and these digests together (``fingerprint``)."""
    h = hashlib.sha256()
    for values in columns:
        h.update(b"\0" + values.tobytes())
    if regression:
        h.update(b"\0" + np.asarray(labels, dtype=np.float64).tobytes())
    else:
        h.update(b"\0" + json.dumps([_json(v) for v in labels]).encode())
    return h.digest()


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------
# Questions about a partition's rows
# ---------------------------------------------------------------------------


def summary(piece: Any, rules: list[Any], names: list[str], regression: bool) -> Any:
    """What the client needs of a partition before it splits: rows, fingerprint, the
    label's classes (sorted) or NULL/infinite counts, and the check of the inputs
    (pyml.train's: NULL and infinite features refused)."""
    if isinstance(piece, Failure):
        return piece
    from pyml.core import preprocess
    from pyml.errors import PymlError

    try:
        preprocess.check_inputs(piece.X, rules, names)
    except PymlError as exc:
        return _failure(exc)
    if regression:
        y = piece.labels
        nan, inf = int(np.isnan(y).sum()), int(np.isinf(y).sum())
        return {"n": piece.n, "digest": piece.digest, "nulls": nan, "infinite": inf}
    values = [float(v) if isinstance(v, Decimal) else v for v in piece.labels]
    nulls = sum(v is None for v in values)
    present = [v for v in values if v is not None]
    infinite = sum(isinstance(v, float) and np.isinf(v) for v in present)
    nan = sum(isinstance(v, float) and np.isnan(v) for v in present)
    classes = sorted(set(present)) if not nulls else []
    return {
        "n": piece.n,
        "digest": piece.digest,
        "nulls": nulls + nan,
        "infinite": infinite,
        "classes": classes,
    }


def codes(piece: Piece, classes: list[Any]) -> np.ndarray:
    """The labels as indices into ``classes`` (pyml.train's encoding of class labels)."""
    index = {c: i for i, c in enumerate(classes)}
    values = (float(v) if isinstance(v, Decimal) else v for v in piece.labels)
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=piece.n)


def prepare(piece: Piece, test: np.ndarray, classes: list[Any] | None) -> Prepared:
    """Split the partition: ``test`` marks its test rows."""
    y = codes(piece, classes) if classes is not None else np.asarray(piece.labels, np.float64)
    train = ~test
    labels = piece.labels
    label_train = (
        [labels[i] for i in np.flatnonzero(train)] if isinstance(labels, list) else y[train]
    )
    return Prepared(piece.X[train], y[train], piece.X[test], y[test], label_train)


def part(prepared: Prepared, name: str) -> np.ndarray:
    """One array of a prepared partition (what the Dask arrays are made of)."""
    return getattr(prepared, name)  # type: ignore[no-any-return]


def _column(prepared: Prepared, j: int) -> np.ndarray:
    """Column ``j`` of the training rows: a feature, or (``j`` = features) the label."""
    if j < prepared.X_train.shape[1]:
        return prepared.X_train[:, j]
    return np.asarray(prepared.label_train, dtype=np.float64)


def moments(prepared: Prepared, numeric: list[int]) -> list[dict[str, Any]]:
    """First round of a numeric column's statistics: count, present values, min, max, sum."""
    result = []
    for j in numeric:
        values = _column(prepared, j)
        present = values[~np.isnan(values)]
        result.append(
            {
                "count": int(values.size),
                "present": int(present.size),
                "min": float(present.min()) if present.size else None,
                "max": float(present.max()) if present.size else None,
                "sum": float(present.sum()),
            }
        )
    return result


def spread(prepared: Prepared, numeric: list[int], asks: list[dict[str, Any]]) -> list[Any]:
    """Second round, per column: the histogram's counts over the global edges, the squared
    deviations from the global mean, and this partition's share of the strided sample."""
    result = []
    for j, ask in zip(numeric, asks, strict=True):
        values = _column(prepared, j)
        present = values[~np.isnan(values)]
        if not present.size or ask["edges"] is None:
            result.append({"counts": None, "squares": 0.0, "sample": present[:0]})
            continue
        edges = np.asarray(ask["edges"], dtype=np.float64)
        if edges.size == 2 and edges[0] == edges[1]:  # one value: one bin (describe_numeric's)
            counts = np.array([present.size])
        else:
            counts, _ = np.histogram(present, bins=edges)
        result.append(
            {
                "counts": counts,
                "squares": float(np.sum(np.abs(present - ask["mean"]) ** 2)),
                "sample": present[ask["start"] :: ask["step"]].copy(),
            }
        )
    return result


def bins(prepared: Prepared, numeric: list[int], edges: list[Any]) -> list[Any]:
    """Third round: counts over each column's decile bins."""
    result: list[np.ndarray | None] = []
    for j, column_edges in zip(numeric, edges, strict=True):
        values = _column(prepared, j)
        present = values[~np.isnan(values)]
        if column_edges is None:
            result.append(None)
            continue
        edge_array = np.asarray(column_edges, dtype=np.float64)
        result.append(
            np.bincount(
                np.searchsorted(edge_array, present, side="left"), minlength=edge_array.size + 1
            )
        )
    return result


def categories(prepared: Prepared) -> dict[str, Any]:
    """The label's category counts over the training rows (classification)."""
    return stats.describe_categorical(prepared.label_train)
