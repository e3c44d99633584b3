"""The `pyml` command and the embedded local server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pyml._cluster import Cluster

PYML = [sys.executable, "-m", "pyml.cli"]


def _postmaster_uid(cluster: Cluster) -> int:
    pid = (cluster.data / "postmaster.pid").read_text().splitlines()[0]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_status_of_the_running_server(cluster: Cluster) -> None:
    out = subprocess.run([*PYML, "status", "--json"], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["running"] is True
    assert info["uri"] == cluster.uri()


def test_up_is_idempotent_and_prints_the_uri_last(cluster: Cluster) -> None:
    out = subprocess.run([*PYML, "up"], capture_output=True, text=True, check=True)
    uri = out.stdout.strip().splitlines()[-1]
    assert uri.startswith("postgresql://")
    with psycopg.connect(uri) as conn:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pyml'")
        assert row.fetchone() is not None


def test_server_does_not_run_as_root(cluster: Cluster) -> None:
    assert _postmaster_uid(cluster) != 0


def test_a_second_cluster_does_not_clash(cluster: Cluster, tmp_path: Path) -> None:
    """Another state directory gets its own cluster and port; up, status and down work."""
    env = {**os.environ, "PYML_HOME": str(tmp_path / "state")}
    up = subprocess.run([*PYML, "up"], capture_output=True, text=True, env=env)
    assert up.returncode == 0, up.stderr
    try:
        uri = up.stdout.strip().splitlines()[-1]
        assert uri != cluster.uri()
        with psycopg.connect(uri, autocommit=True) as conn:
            assert conn.execute("SELECT pyml.version()").fetchone() is not None
        status = subprocess.run([*PYML, "status"], capture_output=True, text=True, env=env)
        assert status.returncode == 0 and "True" in status.stdout
    finally:
        down = subprocess.run([*PYML, "down"], capture_output=True, text=True, env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    stopped = subprocess.run([*PYML, "status"], capture_output=True, text=True, env=env)
    assert stopped.returncode == 3
    # The checkout's own server was not touched.
    with psycopg.connect(cluster.uri()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("other", ["/srv/a", "/srv/b/c"])
def test_checkouts_prefer_different_ports(other: str) -> None:
    here = Cluster.for_checkout()
    there = Cluster.for_checkout(Path(other))
    assert there.state != here.state
    from pyml._cluster import _preferred_port

    assert _preferred_port(here.root) != _preferred_port(Path(other))
