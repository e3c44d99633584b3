"""The `pyml` command and the embedded local server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pyml.client.cluster import Cluster

PYML = [sys.executable, "-m", "pyml.client.cli"]


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
    from pyml.client.cluster import _preferred_port

    assert _preferred_port(here.root) != _preferred_port(Path(other))


def _started(conn: psycopg.Connection) -> object:
    return conn.execute("SELECT pg_postmaster_start_time()").fetchone()


def _cron_jobs(cluster: Cluster) -> list[tuple[object, ...]]:
    with psycopg.connect(cluster.uri("postgres")) as conn:
        return conn.execute(
            "SELECT jobname, schedule, command, database, username FROM cron.job ORDER BY jobid"
        ).fetchall()


@pytest.mark.slow
def test_up_moves_pg_cron_out_of_database_pyml(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster that an earlier `pyml up` made, with pg_cron preloaded for database pyml and
    its extension and jobs there, is moved by the next `up`: the setting rewritten, one
    restart, the extension dropped from pyml, the jobs that are not pyml's copied to
    database postgres, and one pyml-monitors job there. A later `up` changes nothing."""
    monkeypatch.setenv("PYML_HOME", str(tmp_path / "state"))
    old = Cluster.for_checkout()
    assert old.state != cluster.state
    old.up()
    try:
        monitors = (
            "pyml-monitors",
            "* * * * *",
            "SELECT * FROM pyml.run_monitors()",
            "pyml",
            "postgres",
        )
        assert _cron_jobs(old) == [monitors]  # a new cluster: the job in postgres at once
        # What an earlier `pyml up` left: the setting names pyml, pg_cron lives there.
        old.down()
        conf = old.data / "postgresql.auto.conf"
        text = conf.read_text()
        assert "cron.database_name = 'postgres'" in text
        conf.write_text(
            text.replace("cron.database_name = 'postgres'", "cron.database_name = 'pyml'")
        )
        old._pg_ctl("start", "-w", "-t", "60", "-l", str(old.log))
        with psycopg.connect(old.uri("postgres"), autocommit=True) as conn:
            conn.execute("DROP EXTENSION pg_cron")
        with psycopg.connect(old.uri(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_cron")
            conn.execute(
                "SELECT cron.schedule('pyml-monitors', '* * * * *',"
                " 'SELECT * FROM pyml.run_monitors()')"
            )
            conn.execute("SELECT cron.schedule('nightly', '0 3 * * *', 'VACUUM')")
            before = _started(conn)

        old.up()

        settings = [line for line in conf.read_text().splitlines() if "cron.database_name" in line]
        assert settings == ["cron.database_name = 'postgres'"]
        with psycopg.connect(old.uri(), autocommit=True) as conn:
            restarted = _started(conn)
            assert restarted != before
            assert conn.execute("SELECT current_setting('cron.database_name')").fetchone() == (
                "postgres",
            )
            assert (
                conn.execute(
                    "SELECT extname FROM pg_extension WHERE extname = 'pg_cron'"
                ).fetchall()
                == []
            )
            assert conn.execute("SELECT to_regnamespace('cron')").fetchone() == (None,)
        expected = [("nightly", "0 3 * * *", "VACUUM", "pyml", "postgres"), monitors]
        assert _cron_jobs(old) == expected

        old.up()  # nothing left to move: no restart, the same jobs
        with psycopg.connect(old.uri(), autocommit=True) as conn:
            assert _started(conn) == restarted
        assert _cron_jobs(old) == expected
    finally:
        old.down()
