"""The prediction log of served requests: sampled on the request path (one random draw and
a deque append), written by a thread in batches with ``pyml.log_served`` (at most every
:data:`FLUSH` seconds), so ``pyml.drift`` and the monitoring rounds see service traffic like
SQL traffic. The sample rate of each project is ``pyml.prediction_logging``'s, read again
every :data:`RATES` seconds. When the database is away the queue keeps at most
:data:`MAX_QUEUED` rows; the rest are dropped (and counted)."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson
import psycopg

if TYPE_CHECKING:
    import numpy as np

    from pyml.client.serve.metrics import Metrics
    from pyml.client.serve.protocol import Served

log = logging.getLogger("pyml.serve")

FLUSH = 0.5
RATES = 5.0
MAX_QUEUED = 100_000


class PredictionLog:
    def __init__(self, url: str, metrics: Metrics):
        self.url = url
        self.metrics = metrics
        self.rates: dict[int, float] = {}
        self._queue: deque[tuple[Served, np.ndarray, dict[str, np.ndarray], float]] = deque()
        self._queued = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyml-serve-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop."""
        self._stop.set()
        self._thread.join(timeout=10)

    def record(self, served: Served, X: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        """On the request path: keep the request if the project's sample draws it."""
        rate = self.rates.get(served.project_id or 0, 0.0)
        if rate <= 0.0 or (rate < 1.0 and random.random() >= rate):
            return
        if self._queued + len(X) > MAX_QUEUED:
            self.metrics.log_dropped += len(X)
            return
        self._queued += len(X)
        self._queue.append((served, X, outputs, time.time()))

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        last_rates = 0.0
        while True:
            stopping = self._stop.wait(FLUSH)
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                if time.monotonic() - last_rates >= RATES:
                    rows = conn.execute(
                        "SELECT project_id, sample_rate FROM pyml.prediction_logging"
                    ).fetchall()
                    self.rates = {int(p): float(r) for p, r in rows}
                    last_rates = time.monotonic()
                self._flush(conn)
            except psycopg.OperationalError as exc:
                log.warning("prediction log: database unavailable: %s", exc)
                if conn is not None:
                    conn.close()
                conn = None
            except psycopg.Error as exc:  # refused (a revoke, say): these rows are dropped
                log.warning("prediction log: rows not written: %s", exc)
            if stopping:
                break
        if conn is not None:
            conn.close()

    def _flush(self, conn: psycopg.Connection[Any]) -> None:
        batches: dict[int, list[Any]] = {}
        while self._queue:
            served, X, outputs, at = self._queue[0]
            batches.setdefault(served.id, []).extend(_calls(served, X, outputs, at))
            self._queue.popleft()
            self._queued -= len(X)
        for model_id, calls in batches.items():
            conn.execute(
                "SELECT pyml.log_served(%s, %s::jsonb)", (model_id, orjson.dumps(calls).decode())
            )
            self.metrics.logged += len(calls)


def _calls(
    served: Served, X: np.ndarray, outputs: dict[str, np.ndarray], at: float
) -> list[list[Any]]:
    """One ``[features, prediction, logged_at]`` per row: features by column name (NULL for
    NaN), the prediction as ``pyml.predict`` / ``predict_label`` gives it."""
    names = served.names
    predicted = outputs.get("predict")
    if predicted is None:
        values: list[Any] = [None] * len(X)
    else:
        values = [_json(v) for v in predicted.tolist()]
    calls = []
    for row, value in zip(X.tolist(), values, strict=True):
        features = {name: _json(v) for name, v in zip(names, row, strict=True)}
        calls.append([features, value, at])
    return calls


def _json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
