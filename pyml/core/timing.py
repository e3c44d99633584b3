"""Where a job's time goes: seconds per named phase, in the order phases first ran.

A job (``pyml.train``, ``pyml.predict_into``, ``pyml.drift``) times its phases with one
:class:`Phases`; the server reports them (lineage ``timings``, a DEBUG2 message) and
``bench/`` reads them from there, so the phase tables in bench/RESULTS.md come from the code
users run rather than from a copy of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    """Seconds spent in each phase; a phase entered twice (one per chunk) adds up."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as phase ``name`` (also when it raises)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def total(self) -> float:
        """Seconds since the job started (phases may overlap, or leave gaps)."""
        return time.perf_counter() - self.started

    def text(self) -> str:
        """``read 0.120 s, predict 0.800 s, total 0.950 s``: for a log line."""
        parts = [f"{name} {seconds:.3f} s" for name, seconds in self.seconds.items()]
        return ", ".join([*parts, f"total {self.total():.3f} s"])
