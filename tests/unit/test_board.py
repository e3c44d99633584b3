"""The notice board shared by backends (pyml.server._board), without a server."""

import time
from pathlib import Path

from pyml.server import _board


def test_pin_and_read_notes(tmp_path: Path) -> None:
    board = _board.Board(str(tmp_path / "pyml" / "board"))
    assert board.generation() == 0
    g1 = board.pin(database=5, kind=_board.DEPLOYED, id=10, model_id=3, xid=700)
    g2 = board.pin(database=6, kind=_board.DELETED, id=11, model_id=4, xid=701)
    assert (g1, g2) == (1, 2)
    current, notes = board.notes_since(0)
    assert current == 2
    assert [(n.database, n.kind, n.id, n.model_id, n.xid) for n in notes] == [
        (5, _board.DEPLOYED, 10, 3, 700),
        (6, _board.DELETED, 11, 4, 701),
    ]
    assert board.notes_since(1)[1] == notes[1:]


def test_boards_on_one_file_share_notes(tmp_path: Path) -> None:
    path = str(tmp_path / "board")
    writer, reader = _board.Board(path), _board.Board(path)
    writer.pin(1, _board.DEPLOYED, 1, 1, 1)
    assert reader.generation() == 1


def test_ring_keeps_the_latest_notes(tmp_path: Path) -> None:
    board = _board.Board(str(tmp_path / "board"))
    for i in range(300):
        board.pin(1, _board.DEPLOYED, i, i, i)
    current, notes = board.notes_since(0)
    assert current == 300
    assert len(notes) == 256 and notes[-1].id == 299 and notes[0].id == 44


def test_freshness_takes_only_its_database(tmp_path: Path) -> None:
    board = _board.Board(str(tmp_path / "board"))
    board.pin(1, _board.DEPLOYED, 1, 1, 1)
    fresh = _board.Freshness(board, database=2)
    assert not fresh.clean()  # never looked: must ask once
    fresh.take_new_notes()
    assert fresh.pending == [] and fresh.clean()
    board.pin(1, _board.DEPLOYED, 2, 2, 2)  # another database
    assert not fresh.clean()
    fresh.take_new_notes()
    assert fresh.pending == [] and fresh.clean()
    board.pin(2, _board.DEPLOYED, 3, 3, 3)
    fresh.take_new_notes()
    assert [n.id for n in fresh.pending] == [3] and not fresh.clean()


def test_a_standby_session_trusts_its_cache_for_a_short_time_only() -> None:
    replayed = _board.Replayed(seconds=0.2)
    assert not replayed.clean()  # never looked: must ask once
    assert replayed.take_new_notes() == [] and replayed.pending == []
    assert replayed.clean()
    time.sleep(0.25)
    assert not replayed.clean()  # replay may have changed anything since: ask again
    replayed.take_new_notes()
    assert replayed.clean()
