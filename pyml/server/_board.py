"""A notice board shared by the server's backends: "a deployment may have changed".

Sessions cache which model is live per project, and which roles may call it.
Asking the database on every ``predict`` costs an SPI query (a subtransaction in
PL/Python), several times the rest of the call. Instead, every deploy, delete,
grant, revoke and change of prediction logging pins a note here: a small
memory-mapped file holding a generation counter and a ring of the latest notes
(database, kind, ids, transaction id).

The file lives in the data directory's temporary-files directory
(``base/pgsql_tmp``, with PostgreSQL's temporary-file prefix), which the server
empties when it starts and after a crash: a note never outlives the server run
whose transaction ids it names (a transaction lost in a crash never committed,
and its id will be given again).

A session compares the counter with the last one it saw (one 8-byte read). When
it moved, the session takes the new notes of its database as *pending*, and
asks the database (``store.unsettled``) which of them may still change what it
sees: a note is settled once its transaction aborted, or committed and its
effect is visible in the session's snapshot. Until every note is settled the
session looks the live model up in the database on each call, so transaction
semantics stay exactly those of a lookup: a committed deploy is used by the
next statement, an uncommitted or rolled-back one by no one else.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import struct
import time
from typing import NamedTuple

DEPLOYED = 1  # id: the new deployment's id
DELETED = 2  # model_id: a deleted model (its deployments went with it)
LOGGING = 3  # id: a project whose prediction logging changed (pyml.log_predictions)
PRIVILEGES = 4  # id: a project whose grants (or owner) changed

# A standby's sessions look the live models up again this often (see Replayed).
REPLAY_SECONDS = 0.5

# Under the data directory (the backends' working directory). PostgreSQL removes the files
# of this directory whose names start with "pgsql_tmp" at start-up and after a crash.
PATH = os.path.join("base", "pgsql_tmp", "pgsql_tmp_pyml_board")

_HEADER = struct.Struct("<Q")  # generation
_NOTE = struct.Struct("<QQQqqQ")  # generation, database oid, kind, id, model_id, xid
_SLOTS = 256
_SIZE = 64 + _SLOTS * _NOTE.size


class Note(NamedTuple):
    generation: int
    database: int
    kind: int
    id: int
    model_id: int
    xid: int


class Board:
    """The mapped file. ``path`` is per cluster: the data directory is the backends' cwd."""

    def __init__(self, path: str | None = None):
        path = path or os.path.join(os.getcwd(), PATH)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < _SIZE:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self._fd).st_size < _SIZE:
                    os.ftruncate(self._fd, _SIZE)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(self._fd, _SIZE)

    def generation(self) -> int:
        return int(_HEADER.unpack_from(self._map, 0)[0])

    def pin(self, database: int, kind: int, id: int, model_id: int, xid: int) -> int:
        """Add a note; return its generation."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            generation = self.generation() + 1
            slot = 64 + (generation % _SLOTS) * _NOTE.size
            _NOTE.pack_into(self._map, slot, generation, database, kind, id, model_id, xid)
            _HEADER.pack_into(self._map, 0, generation)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return generation

    def notes_since(self, seen: int) -> tuple[int, list[Note]]:
        """The current generation and the notes after ``seen`` still in the ring."""
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        try:
            current = self.generation()
            notes = []
            for generation in range(max(seen + 1, current - _SLOTS + 1, 1), current + 1):
                slot = 64 + (generation % _SLOTS) * _NOTE.size
                note = Note(*_NOTE.unpack_from(self._map, slot))
                if note.generation == generation:
                    notes.append(note)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return current, notes


class Freshness:
    """One session's view: may its cached live models be used without asking?"""

    def __init__(self, board: Board, database: int):
        self.board = board
        self.database = database
        self.seen = -1  # nothing seen: the first check takes every note in the ring
        self._map = board._map
        self._seen_bytes = b""
        self.pending: list[Note] = []
        self._generation: ctypes.c_uint64 | None = None  # the mapped counter, for C readers

    def clean(self) -> bool:
        """True when nothing may have changed since the last call (the fast path)."""
        return self._map[:8] == self._seen_bytes and not self.pending

    def watch(self) -> tuple[int, int]:
        """The address of the mapped generation counter (8 bytes, for C code in this backend:
        src/stream.c) and the generation this session last took the notes of."""
        if self._generation is None:
            self._generation = ctypes.c_uint64.from_buffer(self._map)
        return ctypes.addressof(self._generation), self.seen

    def take_new_notes(self) -> list[Note]:
        """Move to the current generation; the new notes of this database become pending."""
        current, notes = self.board.notes_since(self.seen)
        self.seen = current
        self._seen_bytes = _HEADER.pack(current)
        mine = [n for n in notes if n.database == self.database]
        self.pending.extend(mine)
        return mine


class Replayed:
    """A hot standby session's view, in place of :class:`Freshness`.

    On a standby the registry changes by WAL replay, and triggers do not fire during
    replay: nobody pins notes. Cached live models are then trusted for
    ``REPLAY_SECONDS``, and looked up again after that (one query per project): a
    deployment replayed on the standby is served within that time. The primary's
    sessions never pay for this.
    """

    def __init__(self, seconds: float = REPLAY_SECONDS):
        self.seconds = seconds
        self.until = 0.0
        self.pending: list[Note] = []  # always empty: nothing to settle

    def clean(self) -> bool:
        return time.monotonic() < self.until

    def take_new_notes(self) -> list[Note]:
        """Start a new period of trust; every cached live model must be looked up again."""
        self.until = time.monotonic() + self.seconds
        return []
