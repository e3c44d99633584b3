"""The prediction spool: logged ``predict`` calls, appended to files outside any transaction.

``predict`` is STABLE and may run in a read-only transaction, a parallel worker,
or a transaction that rolls back, so a logged call cannot be an INSERT. Each
session appends one JSON line per logged call to its own file in the data
directory (``pyml/log/<database oid>-<pid>-<start>.jsonl``): one ``write``
with ``O_APPEND``, a few microseconds. While a session has its file open it
holds a shared ``flock`` on it, so a collector can tell an abandoned file.

:func:`pyml.server.store.collect_predictions` moves complete lines into
``pyml.logged_predictions`` and records, in the same transaction, how far each
file was collected; :func:`pending` reads what is not collected yet, which the
view ``pyml.prediction_log`` shows along with the table. No SQL here.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

SEGMENT_BYTES = 64 << 20  # a session starts a new file after this many bytes


def directory() -> str:
    """The spool directory: the data directory is the backends' working directory."""
    return os.path.join(os.getcwd(), "pyml", "log")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


class Spool:
    """One session's spool file (opened on first use)."""

    def __init__(self, database: int, path: str | None = None):
        self.database = database
        self.directory = path or directory()
        self._fd = -1
        self._written = 0

    def _open(self) -> int:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        name = f"{self.database}-{os.getpid()}-{time.time_ns() // 1000}.jsonl"
        fd = os.open(
            os.path.join(self.directory, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
        )
        fcntl.flock(fd, fcntl.LOCK_SH)  # "a writer has this file open"
        if self._fd >= 0:
            os.close(self._fd)  # the previous segment: now idle, collectable
        self._fd, self._written = fd, 0
        return fd

    def append(self, project_id: int, model_id: int | None, features: Any, prediction: Any) -> None:
        line = json.dumps(
            [project_id, model_id, features, prediction, time.time()],
            separators=(",", ":"),
            default=_jsonable,
            allow_nan=False,
        )
        data = line.encode() + b"\n"
        fd = self._fd if self._fd >= 0 and self._written < SEGMENT_BYTES else self._open()
        os.write(fd, data)
        self._written += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Logger:
    """Logs a sampled share of one project's calls into a session's spool."""

    __slots__ = ("spool", "project_id", "rate")

    def __init__(self, spool: Spool, project_id: int, rate: float):
        self.spool = spool
        self.project_id = project_id
        self.rate = rate

    def __call__(self, model_id: int | None, features: Any, prediction: Any) -> None:
        if self.rate >= 1.0 or random.random() < self.rate:
            try:
                self.spool.append(self.project_id, model_id, features, prediction)
            except ValueError:  # NaN or infinity among the features: not JSON, not logged
                pass


# ---------------------------------------------------------------------------
# Reading (the view, the collector)
# ---------------------------------------------------------------------------


def files(database: int, path: str | None = None) -> Iterator[tuple[str, str]]:
    """(name, path) of this database's spool files, oldest first."""
    where = path or directory()
    try:
        names = os.listdir(where)
    except FileNotFoundError:
        return
    prefix = f"{database}-"
    for name in sorted(names, key=_started):
        if name.startswith(prefix) and name.endswith(".jsonl"):
            yield name, os.path.join(where, name)


def _started(name: str) -> tuple[int, str]:
    stem = name.rsplit(".", 1)[0]
    try:
        return int(stem.rsplit("-", 1)[-1]), name
    except ValueError:
        return 0, name


def read_lines(path: str, start: int) -> tuple[list[str], int]:
    """The complete lines after byte ``start``, and the offset after the last of them.
    A file gone meanwhile (collected and removed) has nothing to read."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
    except FileNotFoundError:
        return [], start
    end = data.rfind(b"\n") + 1
    if end == 0:
        return [], start
    return data[:end].decode().splitlines(), start + end


def project_of(line: str) -> int:
    """The project id of a spooled line (its first field)."""
    return int(line[1 : line.index(",")])


def abandoned(path: str) -> bool:
    """True when no session has the file open for writing (no shared lock held)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
