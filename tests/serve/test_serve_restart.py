"""``pyml serve`` survives a database restart: a throwaway server of its own (never the shared
test server), stopped and started under the service."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

PYML = [sys.executable, "-m", "pyml.client.cli"]
BODY = {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": [0.02] * 10}]}


@pytest.fixture
def own_server(cluster: Any, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A second local server (its own state directory and port): its URI and environment."""
    env = {**os.environ, "PYML_HOME": str(tmp_path / "state")}
    up = subprocess.run([*PYML, "up"], capture_output=True, text=True, env=env)
    assert up.returncode == 0, up.stderr
    try:
        yield up.stdout.strip().splitlines()[-1], env
    finally:
        subprocess.run([*PYML, "down"], capture_output=True, text=True, env=env)


def _version(svc: Any) -> str:
    response = svc.post("/v2/models/restart_reg/infer", json=BODY)
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


@pytest.mark.slow
def test_serving_goes_on_through_a_database_restart(
    own_server: tuple[str, dict[str, str]], serve: Any, poll: Callable[..., Any]
) -> None:
    uri, env = own_server
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("SELECT * FROM pyml.load_dataset('diabetes')")
        conn.execute(
            "SELECT * FROM pyml.train('restart_reg', 'regression', 'pyml.diabetes', 'target',"
            " algorithm => 'lightgbm')"
        )
        first = conn.execute("SELECT pyml.deployed_model('restart_reg')").fetchone()[0]
    with serve(uri, "--project", "restart_reg") as svc:
        assert _version(svc) == str(first)
        down = subprocess.run([*PYML, "down"], capture_output=True, text=True, env=env)
        assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(uri, connect_timeout=3).close()
        # the database is away: the loaded model keeps answering, ready stays true
        for _ in range(20):
            assert _version(svc) == str(first)
        assert httpx.get(svc.base + "/v2/health/ready", timeout=10).status_code == 200
        up = subprocess.run([*PYML, "up"], capture_output=True, text=True, env=env)
        assert up.returncode == 0, up.stderr
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("SET client_min_messages = warning")
            conn.execute(
                "SELECT * FROM pyml.train('restart_reg', 'regression', 'pyml.diabetes',"
                " 'target', algorithm => 'linear')"
            )
            conn.execute("SELECT * FROM pyml.deploy('restart_reg', 'most_recent', 'linear')")
            second = conn.execute("SELECT pyml.deployed_model('restart_reg')").fetchone()[0]
        assert second != first
        # reconnected (backoff at most 5 s), it follows deployments again
        poll(lambda: _version(svc) == str(second), 20, "the service to serve the new model", 0.1)
        assert "database connection lost" in svc.output()
