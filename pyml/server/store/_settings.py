"""Settings read from the server: the server configuration's value and the session's."""

from __future__ import annotations

import re
from typing import NamedTuple

from pyml.errors import InvalidParameterValue
from pyml.server._db import Db

TRAIN_MEMORY_LIMIT = "pyml.train_memory_limit"

# What pg_size_bytes accepts: a number, then an optional unit (any case).
_SIZE = re.compile(
    r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*(bytes|b|kb|mb|gb|tb|pb)?\s*", re.IGNORECASE
)
_UNITS = {"": 0, "bytes": 0, "b": 0, "kb": 10, "mb": 20, "gb": 30, "tb": 40, "pb": 50}


class SizeSetting(NamedTuple):
    """A size setting in bytes: the server configuration's value and the session's (None
    where it is not set)."""

    server: int | None
    session: int | None


def train_memory_limit(db: Db) -> SizeSetting:
    """``pyml.train_memory_limit`` in the server's configuration files (postgresql.conf,
    ALTER SYSTEM; ``pg_file_settings``, which only privileged roles may read: asked as the
    extension owner) and in this session (``SET``, or a role's or database's setting)."""
    server: int | None = None
    rows = db.registry.query(
        "SELECT setting, sourcefile, sourceline FROM pg_catalog.pg_file_settings"
        " WHERE pg_catalog.lower(name) = $1 AND error IS NULL ORDER BY seqno DESC LIMIT 1",
        [TRAIN_MEMORY_LIMIT],
        ["text"],
    )
    if rows:
        row = rows[0]
        server = _size(
            db,
            row["setting"],
            "The server's configuration sets it in "
            f'"{row["sourcefile"]}" line {row["sourceline"]}.',
        )
    text = db.query(
        "SELECT pg_catalog.current_setting($1, true) AS value", [TRAIN_MEMORY_LIMIT], ["text"]
    )[0]["value"]
    session = _size(db, text, None) if text else None
    return SizeSetting(server, session)


def _size(db: Db, text: str, where: str | None) -> int:
    """``text`` in bytes, by ``pg_size_bytes``; 22023 for anything but a positive size."""
    match = _SIZE.fullmatch(text)
    if match is not None:
        number, unit = match.groups()
        if 0 < float(number) * 2 ** _UNITS[(unit or "").lower()] < 2**62:
            size = int(
                db.query("SELECT pg_catalog.pg_size_bytes($1) AS size", [text], ["text"])[0]["size"]
            )
            if size > 0:
                return size
    raise InvalidParameterValue(
        f'invalid value for setting "{TRAIN_MEMORY_LIMIT}": "{text}"',
        detail=where,
        hint="Give a positive size, such as '512MB' or '2GB'.",
    )
