"""The client side of streams: predictions as they arrive, from any Python process.

NOTIFY is only the wake-up; the outbox is the truth. A :class:`Consumer` reads
the events after its last acknowledged one, so a consumer that was down, slow or
restarted misses nothing, and once it acks, it never sees an event again::

    with Consumer("postgresql://...", "sensors", "alerts") as consumer:
        for event in consumer:
            handle(event)
            consumer.ack(event)     # at-least-once: un-acked events come back after a restart
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from types import TracebackType
from typing import NamedTuple

import psycopg
from psycopg import sql


class Event(NamedTuple):
    event_id: int
    key: str | None
    prediction: float | None  # NULL when the row could not be scored (see pyml.stream_events)
    model_id: int | None
    scored_at: datetime.datetime


class Consumer:
    """A named consumer of one stream (by id, or by project when it has one stream).

    Iterating blocks until events arrive: LISTEN on the stream's channel, with a
    read every ``wait`` seconds as a safety net. Events come in delivery order;
    ``ack`` marks an event and every one before it as done.
    """

    def __init__(
        self,
        conninfo: str,
        stream: int | str,
        name: str,
        *,
        batch_size: int = 1000,
        wait: float = 1.0,
        source: str | None = None,
    ):
        if not name:
            raise ValueError("a consumer needs a name")
        self.name = name
        self.batch_size = batch_size
        self.wait = wait
        self._conn = psycopg.connect(conninfo, autocommit=True)
        try:
            self.stream_id, self.channel = self._find(stream, source)
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except BaseException:
            self._conn.close()
            raise
        self._after: int | None = None  # the last event handed out and not acked yet

    def _find(self, stream: int | str, source: str | None) -> tuple[int, str]:
        if isinstance(stream, int):
            rows = self._conn.execute(
                "SELECT stream_id, channel FROM pyml.streams WHERE stream_id = %s", (stream,)
            ).fetchall()
            if not rows:
                raise LookupError(f"stream {stream} does not exist")
            return rows[0]
        rows = self._conn.execute(
            "SELECT stream_id, channel, source_relation FROM pyml.streams WHERE project = %s"
            " AND (%s::text IS NULL OR source_relation::regclass = %s::text::regclass)"
            " ORDER BY stream_id",
            (stream, source, source),
        ).fetchall()
        if len(rows) != 1:
            sources = ", ".join(r[2] for r in rows) or "none"
            raise LookupError(
                f'project "{stream}" has {len(rows)} matching streams ({sources});'
                " pass the source relation or the stream id"
            )
        return rows[0][0], rows[0][1]

    def read(self, timeout: float | None = None) -> list[Event]:
        """The next events (at most ``batch_size``); waits up to ``timeout`` seconds for some
        (default ``wait``; 0 does not wait). An empty list when none came."""
        events = self._fetch()
        if events or timeout == 0:
            return events
        for _ in self._conn.notifies(
            timeout=self.wait if timeout is None else timeout, stop_after=1
        ):
            pass
        return self._fetch()

    def _fetch(self) -> list[Event]:
        rows = self._conn.execute(
            "SELECT event_id, key, prediction, model_id, scored_at"
            " FROM pyml.stream_read(%s, %s, %s, %s)",
            (self.stream_id, self.name, self.batch_size, self._after),
        ).fetchall()
        if rows:
            self._after = rows[-1][0]
        return [Event(*row) for row in rows]

    def __iter__(self) -> Iterator[Event]:
        while True:
            yield from self.read()

    def ack(self, event: Event | int) -> None:
        """Done with ``event`` and every event before it: they will not be read again."""
        event_id = event.event_id if isinstance(event, Event) else int(event)
        self._conn.execute(
            "SELECT pyml.stream_ack(%s, %s, %s)", (self.stream_id, self.name, event_id)
        )
        if event_id == self._after:
            self._after = None  # the acknowledged position is the reading position again

    def error(self, event: Event) -> str | None:
        """Why an event has no prediction."""
        row = self._conn.execute(
            "SELECT error FROM pyml.stream_events WHERE event_id = %s", (event.event_id,)
        ).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
