"""``pyml pull PROJECT --dir DIR``: the agent of an edge device.

Keeps ``DIR`` holding the live model of ``PROJECT`` for :class:`pyml.edge.Predictor`:

- one sync: the live model's card (``pyml.model_card(project)``); when ``DIR`` does not
  already hold that model (model id and sha256, the installed pair verified), the graph
  (:func:`pyml.client.export.fetch`: size, sha256 and ONNX validity checked), then
  :func:`pyml.edge.install` (a new directory per model, ``current`` swapped by a rename);
- it waits for deployments on ``LISTEN pyml_deploy`` (any payload: a card is one small
  query) and syncs at least every ``--interval`` seconds too (a missed notification, a
  connection pooler that drops them); a hot standby cannot LISTEN: there it syncs every
  second instead;
- when the database cannot be reached it keeps the copy it has (never deletes it) and
  reconnects after 1, 2, 4... seconds, at most ``--interval``;
- a sync that fails for another reason (no live model, a model without an ONNX part, no
  right on the project, a graph that does not match its card) keeps the copy too and is
  logged once, until the next change;
- ``--once``: one sync, exit 0 when ``DIR`` is current, 1 (with the reason) when not.

One line on stderr per event, with the time. SIGTERM and SIGINT stop it between two steps
(an interrupted install leaves only a temporary directory, removed by the next one).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from pyml import edge
from pyml.client.export import URL_HELP, describe, fetch
from pyml.errors import PymlError

DEFAULT_INTERVAL = 60.0
STANDBY_POLL = 1.0  # on a hot standby, which cannot LISTEN: seconds between syncs


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``pull`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "pull",
        help="keep a directory holding a project's live model (the agent of an edge device)",
        description="Keep DIR holding the live model of PROJECT as ONNX and its card, for "
        "pyml.edge.Predictor: follows deployments (LISTEN pyml_deploy, and a poll every "
        "--interval seconds), verifies sha256, swaps atomically, keeps the last good copy "
        "while the database is unreachable.",
    )
    parser.add_argument("project", help="the project whose live model to keep")
    parser.add_argument(
        "--dir",
        required=True,
        type=Path,
        metavar="DIR",
        dest="directory",
        help="the directory to keep (made when missing)",
    )
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--once", action="store_true", help="sync once, then exit (cron)")
    parser.add_argument(
        "--interval",
        type=_positive,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"poll this often besides notifications; longest reconnect delay "
        f"(default: {DEFAULT_INTERVAL:g})",
    )
    return parser


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _log(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{stamp} pyml pull: {message}", file=sys.stderr, flush=True)


class Agent:
    """Keeps ``directory`` holding the live model of ``project``."""

    def __init__(
        self,
        url: str,
        project: str,
        directory: Path,
        interval: float = DEFAULT_INTERVAL,
        log: Callable[[str], None] = _log,
    ) -> None:
        self.url = url
        self.project = project
        self.directory = directory
        self.interval = interval
        self.log = log
        self._last_problem: str | None = None

    def _held(self) -> str:
        card = edge.installed(self.directory)
        if card is None:
            return f"no model in {self.directory} yet"
        return f"keeping model {card['model_id']} in {self.directory}"

    def sync(self, conn: psycopg.Connection[Any]) -> bool:
        """Install the live model unless ``directory`` holds it; True when it was installed."""
        row = conn.execute("SELECT pyml.model_card(%s::text)", (self.project,)).fetchone()
        card = edge.check_card(row[0] if row else None)
        have = edge.installed(self.directory)
        if have is not None and (have["model_id"], have["sha256"]) == (
            card["model_id"],
            card["sha256"],
        ):
            return False
        card, data = fetch(conn, model_id=card["model_id"])
        edge.install(self.directory, card, data)
        self.log(
            f'model {card["model_id"]} of project "{self.project}" installed in '
            f"{self.directory} ({len(data)} bytes, sha256 {card['sha256'][:12]})"
        )
        return True

    def _try_sync(self, conn: psycopg.Connection[Any]) -> bool | None:
        """:meth:`sync`, logging a failure that is not the connection's (once per reason,
        until a sync succeeds); None when it failed."""
        try:
            installed = self.sync(conn)
        except (psycopg.Error, PymlError, OSError) as exc:
            if isinstance(exc, psycopg.Error) and (conn.closed or conn.broken):
                raise
            problem = describe(exc).replace("\n", " ")
            if problem != self._last_problem:
                self.log(f"cannot sync: {problem}; {self._held()}")
            self._last_problem = problem
            return None
        self._last_problem = None
        return installed

    def _current(self) -> None:
        card = edge.installed(self.directory) or {}
        self.log(
            f'model {card.get("model_id")} of project "{self.project}" is current in '
            f"{self.directory}"
        )

    def once(self) -> int:
        """One sync: 0 when ``directory`` holds the live model, else 1 (reason logged)."""
        try:
            with _connect(self.url) as c:
                if not self.sync(c):
                    self._current()
        except (psycopg.Error, PymlError, OSError) as exc:
            self.log(f"cannot sync: {_line(exc)}; {self._held()}")
            return 1
        return 0

    def follow(self) -> int:
        """Sync, then again at each deployment and every ``interval`` seconds, until
        interrupted (KeyboardInterrupt: SIGINT, or SIGTERM as the CLI maps it)."""
        delay = 1.0
        reachable: bool | None = None
        try:
            while True:
                try:
                    with _connect(self.url) as conn:
                        # A hot standby cannot LISTEN (and replays deployments without
                        # notifications): there the poll is all, every second at most.
                        interval = self.interval
                        if _standby(conn):
                            interval = min(interval, STANDBY_POLL)
                            how = f"a hot standby: a poll every {interval:g} s"
                        else:
                            conn.execute("LISTEN pyml_deploy")  # before the sync: none missed
                            how = f"deployments, and a poll every {interval:g} s"
                        if reachable is not True:
                            self.log(
                                f'following project "{self.project}" in database '
                                f'"{conn.info.dbname}" ({how})'
                            )
                        reachable, delay = True, 1.0
                        if self._try_sync(conn) is False:
                            self._current()
                        while True:
                            for _ in conn.notifies(timeout=interval, stop_after=1):
                                pass
                            self._try_sync(conn)
                except psycopg.Error as exc:
                    self.log(
                        f"database unreachable ({_line(exc)}); {self._held()}; retrying in "
                        f"{delay:g} s"
                    )
                    reachable = False
                    time.sleep(delay)
                    delay = min(delay * 2, self.interval)
        except KeyboardInterrupt:
            self.log("stopped")
            return 0


def _standby(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT pg_catalog.pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def _connect(url: str) -> psycopg.Connection[Any]:
    """Give up connecting after 10 s; notice a peer gone silent (an edge network that drops
    packets rather than connections) within about a minute, idle or mid-query."""
    return psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=10,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
        tcp_user_timeout=60_000,
    )


def _line(exc: BaseException) -> str:
    """An error on one line (a connection error's text has several)."""
    text = " ".join(describe(exc).split())
    return text or type(exc).__name__


def run(url: str, args: argparse.Namespace) -> int:
    """``pyml pull``."""
    agent = Agent(url, args.project, args.directory, args.interval)
    return agent.once() if args.once else agent.follow()
