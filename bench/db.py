"""The local server and connections to the bench database (public SQL API only)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.config import DATABASE, ROOT, BenchError


@dataclass(frozen=True)
class Server:
    uri: str  # the bench database, TCP 127.0.0.1
    admin_uri: str  # database "postgres", to drop and create the bench database
    host: str
    port: int
    user: str
    database: str = DATABASE


def start_server(database: str = DATABASE) -> Server:
    """``pyml up`` (starts the checkout's server, or reuses the running one)."""
    pyml = Path(sys.prefix) / "bin" / "pyml"
    if not pyml.exists():
        raise BenchError(f"{pyml} not found: run from the checkout's venv (make setup)")
    proc = subprocess.run([str(pyml), "up"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"pyml up failed:\n{proc.stdout}{proc.stderr}")
    from pyml.client.cluster import Cluster  # the documented way to find the checkout's server

    cluster = Cluster.for_checkout()
    return Server(
        uri=cluster.uri(database),
        admin_uri=cluster.uri("postgres"),
        host="127.0.0.1",
        port=cluster.port,
        user="postgres",
        database=database,
    )


def connect(uri: str) -> psycopg.Connection:
    return psycopg.connect(uri, autocommit=True)


def scalar(
    conn: psycopg.Connection, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
) -> Any:
    """The first column of the first row (None without a row): a value of any SQL type."""
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def other_activity(conn: psycopg.Connection) -> list[str]:
    """Active sessions in other databases: another workload sharing the server skews timings."""
    rows = conn.execute(
        "SELECT datname, count(*) FROM pg_stat_activity WHERE state = 'active'"
        " AND pid <> pg_backend_pid() AND datname IS DISTINCT FROM current_database()"
        " AND backend_type = 'client backend' GROUP BY 1"
    ).fetchall()
    return [f"{name}: {count} active" for name, count in rows]


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])
