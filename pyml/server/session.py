"""What one database session keeps between calls: one :class:`Session`, in PL/Python's ``GD``.

The boundary (:mod:`pyml.server._sqlapi`) makes it on the first pyml call of a session and
hands its parts to the domain modules. Nothing else is kept in ``GD`` and nothing in module
globals: every session starts empty, and what it caches dies with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyml.server._db import PlpyDb

if TYPE_CHECKING:
    from pyml.server._board import Board
    from pyml.server._rowtext import Layout
    from pyml.server.serving import Serving

KEY = "pyml.session"  # its key in GD


@dataclass
class StreamCaches:
    """What a session remembers for the stream triggers and workers it runs."""

    # relation oid -> how its rows' text splits into columns
    layouts: dict[int, Layout] = field(default_factory=dict)
    # (stream, statement kind) -> the prepared scoring query of a sync stream
    plans: dict[Any, Any] = field(default_factory=dict)
    # (trigger arguments, relation oid, mode) of triggers checked to be pyml's own
    verified: set[tuple[tuple[str, ...], int, str]] = field(default_factory=set)
    # (relation oid, model id) -> how a small statement's row text becomes the model's input
    readers: dict[tuple[int, int | None], Any] = field(default_factory=dict)
    # (relation oid, stream id) -> the last description of a sync trigger in C, and the
    # model that description names (its tables must live as long as C may read them)
    described: dict[tuple[int, int], Any] = field(default_factory=dict)
    held: dict[tuple[int, int], Any] = field(default_factory=dict)


class Session:
    """One database session's pyml state: the db handle (with its prepared plans), the
    serving caches, the stream caches, and the small caches of single functions."""

    def __init__(self, plpy: Any):
        self.db = PlpyDb(plpy)
        self.streams = StreamCaches()
        # composite type oid -> its ``real`` attributes (a row passed to predict as JSON)
        self.row_types: dict[int, list[str]] = {}
        # model id -> a sample of its held-out rows (pyml.explain's background)
        self.held_out: dict[int, Any] = {}
        self._serving: Serving | None = None
        self._board: Board | None = None
        self._board_failed = False

    @property
    def serving(self) -> Serving:
        """Loaded models, the live one of each project, the rights checked (made on first use)."""
        if self._serving is None:
            from pyml.server.serving import Serving

            self._serving = Serving(self.db)
        return self._serving

    @property
    def serving_if_started(self) -> Serving | None:
        return self._serving

    def board(self) -> Board | None:
        """The notice board this session writes notes to; None without a writable data
        directory (sessions then look the live model up on every call)."""
        if self._board is None and not self._board_failed:
            from pyml.server._board import Board

            try:
                self._board = Board()
            except OSError:
                self._board_failed = True
        return self._board
