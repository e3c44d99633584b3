"""pyml.server._beside: work on a second thread, signals kept on the main one."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from pyml.server._beside import beside, signals_blocked


def test_the_work_runs_beside_the_block_and_gives_its_result() -> None:
    started = threading.Event()

    def work() -> str:
        started.set()
        return threading.current_thread().name

    with beside(work) as running:
        assert started.wait(5)  # running while the block runs
        assert running.result() == "pyml-beside"
        assert running.done()
        assert running.result() == "pyml-beside"  # asked again: the same result


def test_no_signal_is_delivered_to_the_thread() -> None:
    """Every signal PostgreSQL handles stays with the main thread."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with beside(lambda: signal.pthread_sigmask(signal.SIG_BLOCK, [])) as running:
        blocked = running.result()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGURG):
        assert sig in blocked
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before  # the main thread's is kept


def test_what_the_work_raises_is_raised_by_result() -> None:
    def work() -> None:
        raise MemoryError("no room")

    with beside(work) as running, pytest.raises(MemoryError, match="no room"):
        running.result()


def test_the_thread_is_waited_for_when_the_block_raises() -> None:
    finished = threading.Event()

    def work() -> None:
        time.sleep(0.2)
        finished.set()

    with pytest.raises(ValueError, match="refused"), beside(work) as running:
        assert not running.done()
        raise ValueError("refused")
    assert finished.is_set()
    assert not [t for t in threading.enumerate() if t.name == "pyml-beside"]


def test_a_thread_started_with_signals_blocked_gets_none() -> None:
    """predict_into's scoring thread (a ThreadPoolExecutor's) is started so."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    masks: list[set[int | signal.Signals]] = []
    with signals_blocked():
        thread = threading.Thread(target=lambda: masks.append(signal.pthread_sigmask(0, [])))
        thread.start()
    thread.join()
    assert signal.SIGINT in masks[0] and signal.SIGUSR1 in masks[0]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
