"""Numeric work on a second thread of the backend, beside the main thread's.

A job's phases before its fit run on one core (the read, the fingerprint, building the
input matrix, the statistics): on a machine of two, the other waits. :func:`beside` runs a
piece of that work on a second thread while the main thread does another.

PostgreSQL is not thread-safe, so the rules are narrow:

- the work calls nothing of PostgreSQL (no ``plpy``, no :class:`~pyml.server._db.Db`):
  numpy and hashlib only, which release the GIL while they compute (the main thread keeps
  it whenever it is in PostgreSQL's code, so Python-level work would wait for it);
- signals are blocked on the thread, so PostgreSQL's handlers run on the main thread only;
- the thread is waited for when the ``with`` block ends, however it ends: no thread is left
  when the job goes on, returns to PostgreSQL, or forks the child that fits.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class _Worker(threading.Thread, Generic[T]):
    def __init__(self, work: Callable[[], T]) -> None:
        super().__init__(name="pyml-beside", daemon=True)
        self._work = work
        self.value: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self._work()
        except BaseException as exc:  # noqa: BLE001 - raised again by result()
            self.error = exc


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Every signal blocked on this thread for the block: a thread started in it inherits
    the mask (``predict_into``'s scoring thread is started so)."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class Beside(Generic[T]):
    """The work on the second thread, as the ``with`` block of :func:`beside` sees it."""

    def __init__(self, worker: _Worker[T]) -> None:
        self._worker = worker

    def done(self) -> bool:
        """Whether the work has finished."""
        return not self._worker.is_alive()

    def result(self) -> T:
        """Wait for the work; its result, or raise what it raised."""
        self._worker.join()
        if self._worker.error is not None:
            raise self._worker.error
        return self._worker.value  # type: ignore[return-value]


@contextmanager
def beside(work: Callable[[], T]) -> Iterator[Beside[T]]:
    """Run ``work`` on a second thread while the ``with`` block runs."""
    worker = _Worker(work)
    with signals_blocked():
        worker.start()
    try:
        yield Beside(worker)
    finally:
        worker.join()
