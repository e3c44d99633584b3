"""``pyml pull``: the edge agent, against the real server. ``--once`` (installs, is idempotent,
heals a tampered copy, fails cleanly and keeps what it has); the running agent across a
redeploy (through LISTEN: within seconds, well before its poll) and across a stopped server
(a throwaway cluster of its own: the shared test server is never stopped)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pyml import edge
from pyml.client.cluster import Cluster
from pyml.errors import DataCorrupted

PYML = [sys.executable, "-m", "pyml.client.cli"]
IRIS = ("sepal_length", "sepal_width", "petal_length", "petal_width")
FOREST = '{"n_estimators": 10, "random_state": 0}'
DEADLINE = 30.0  # seconds; the agents below poll every 60 s unless told otherwise


def _pull(url: str, project: str, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PYML, "pull", project, "--dir", str(directory), "--url", url, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _train(conn: psycopg.Connection, project: str, algorithm: str, hyperparams: str) -> int:
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target', %s, %s::jsonb,"
        " automatic_deploy => false)",
        (project, algorithm, hyperparams),
    )
    (model_id,) = conn.execute(
        "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s",
        (project,),
    ).fetchone()
    return int(model_id)


def _deploy(conn: psycopg.Connection, model_id: int) -> None:
    conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (model_id,))


def _iris(conn: psycopg.Connection, project: str) -> tuple[list[dict[str, Any]], list[float]]:
    cur = conn.execute(
        "SELECT sepal_length, sepal_width, petal_length, petal_width, pyml.predict(%s, i)"
        " FROM pyml.iris i ORDER BY 1, 2, 3, 4",
        (project,),
    )
    rows, want = [], []
    for *values, prediction in cur.fetchall():
        rows.append(dict(zip(IRIS, values, strict=True)))
        want.append(prediction)
    return rows, want


def _installed(directory: Path) -> int | None:
    card = edge.installed(directory)
    return None if card is None else int(card["model_id"])


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_pull_once_installs_then_is_current(
    conn: psycopg.Connection, url: str, tmp_path: Path
) -> None:
    model_id = _train(conn, "pull_once", "random_forest", FOREST)
    _deploy(conn, model_id)
    directory = tmp_path / "device"
    out = _pull(url, "pull_once", directory, "--once")
    assert out.returncode == 0, out.stderr
    assert f'model {model_id} of project "pull_once" installed in {directory}' in out.stderr
    predictor = edge.Predictor(directory)
    rows, want = _iris(conn, "pull_once")
    assert predictor.predict_many(rows) == want
    before = _snapshot(directory)
    again = _pull(url, "pull_once", directory, "--once")
    assert again.returncode == 0, again.stderr
    assert f'model {model_id} of project "pull_once" is current' in again.stderr
    assert _snapshot(directory) == before
    # A tampered copy: the runtime refuses it, the next sync puts the model back.
    (directory / "model.onnx").write_bytes(b"not onnx")  # through the links: the file itself
    with pytest.raises(DataCorrupted, match=f"model {model_id} does not match its card"):
        edge.Predictor(directory)
    assert predictor.predict_many(rows) == want  # the loaded model keeps serving
    healed = _pull(url, "pull_once", directory, "--once")
    assert healed.returncode == 0 and "installed" in healed.stderr, healed.stderr
    assert edge.Predictor(directory).predict_many(rows) == want


def test_pull_once_failures_keep_the_copy(
    conn: psycopg.Connection, url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "device"
    out = _pull(url, "no_such_project", directory, "--once")
    assert out.returncode == 1
    assert 'cannot sync: project "no_such_project" does not exist' in out.stderr
    assert f"no model in {directory} yet" in out.stderr
    assert not directory.exists()
    _train(conn, "pull_undeployed", "random_forest", FOREST)
    out = _pull(url, "pull_undeployed", directory, "--once")
    assert out.returncode == 1 and "has no deployed model" in out.stderr, out.stderr

    forest = _train(conn, "pull_fails", "random_forest", FOREST)
    _deploy(conn, forest)
    assert _pull(url, "pull_fails", directory, "--once").returncode == 0
    kept = _snapshot(directory)
    conn.execute(
        "CREATE TABLE pull_numbers AS SELECT sepal_length, sepal_width, petal_length,"
        " petal_width::float8 AS width FROM pyml.iris"
    )
    conn.execute(
        "SELECT * FROM pyml.train('pull_kernel', 'regression', 'pull_numbers', 'width',"
        " 'kernel_ridge')"
    )
    out = _pull(url, "pull_kernel", directory, "--once")  # no ONNX part: 0A000
    assert out.returncode == 1
    assert "cannot sync: " in out.stderr and "KernelRidge" in out.stderr, out.stderr
    assert f"keeping model {forest} in {directory}" in out.stderr
    out = _pull("postgresql://nobody@127.0.0.1:1/none", "pull_fails", directory, "--once")
    assert out.returncode == 1 and "Connection refused" in out.stderr
    assert _snapshot(directory) == kept and _installed(directory) == forest


class Agent:
    """A running ``pyml pull`` (its log in a file), stopped with SIGTERM."""

    def __init__(self, url: str, project: str, directory: Path, *args: str) -> None:
        self.log = directory.parent / "agent.log"
        self._stderr = self.log.open("w")
        self.process = subprocess.Popen(
            [*PYML, "pull", project, "--dir", str(directory), "--url", url, *args],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def text(self) -> str:
        return self.log.read_text()

    def wait(self, predicate: Callable[[], bool], what: str, seconds: float = DEADLINE) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate():
                return
            assert self.process.poll() is None, f"the agent exited:\n{self.text()}"
            time.sleep(0.05)
        pytest.fail(f"{what}: not within {seconds:g} s; the agent's log:\n{self.text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for agent in started:
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait()
        agent._stderr.close()


def test_a_running_agent_follows_a_redeploy(
    conn: psycopg.Connection, url: str, tmp_path: Path, agents: list[Agent]
) -> None:
    first = _train(conn, "pull_follow", "random_forest", FOREST)
    _deploy(conn, first)
    second = _train(conn, "pull_follow", "linear", '{"max_iter": 500}')
    directory = tmp_path / "device"
    agent = Agent(url, "pull_follow", directory, "--interval", "600")
    agents.append(agent)
    agent.wait(lambda: _installed(directory) == first, "the first model installed")
    predictor = edge.Predictor(directory)
    rows, want_first = _iris(conn, "pull_follow")
    assert predictor.predict_many(rows) == want_first
    _deploy(conn, second)  # NOTIFY pyml_deploy at commit; the poll is 10 minutes away
    agent.wait(lambda: _installed(directory) == second, "the redeployed model installed")
    assert predictor.model_id == second
    assert predictor.predict_many(rows) == _iris(conn, "pull_follow")[1]
    _deploy(conn, first)  # and back (its directory was kept: a reader may be loading it)
    # installed, then logged: stopping the agent between the two would lose the line
    agent.wait(
        lambda: _installed(directory) == first and agent.text().count("installed in") == 3,
        "the first model again",
    )
    assert agent.stop() == 0
    log = agent.text()
    assert log.count("installed in") == 3, log
    assert log.rstrip().endswith("pyml pull: stopped"), log
    assert all(" pyml pull: " in line for line in log.splitlines()), log


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """A temporary directory outside pytest's: a pytest run of another checkout on the same
    machine deletes old ``pytest-of-<user>/pytest-N`` directories, a running server's too."""
    with tempfile.TemporaryDirectory(prefix="pyml-pull-") as name:
        yield Path(name)


@pytest.mark.slow
def test_a_running_agent_across_a_stopped_server(
    cluster: Cluster, private_tmp: Path, monkeypatch: pytest.MonkeyPatch, agents: list[Agent]
) -> None:
    """A throwaway server: the agent keeps the last good copy while it is down (the runtime
    keeps predicting from it), and installs the model deployed after it came back."""
    tmp_path = private_tmp
    monkeypatch.setenv("PYML_HOME", str(tmp_path / "state"))
    own = Cluster.for_checkout()
    assert own.state != cluster.state
    own.up()
    try:
        with psycopg.connect(own.uri(), autocommit=True) as admin:
            admin.execute("SET client_min_messages = warning")
            admin.execute("SELECT * FROM pyml.load_dataset('iris')")
            first = _train(admin, "pull_offline", "random_forest", FOREST)
            _deploy(admin, first)
            second = _train(admin, "pull_offline", "linear", '{"max_iter": 500}')
            rows, want_first = _iris(admin, "pull_offline")
        directory = tmp_path / "device"
        agent = Agent(own.uri(), "pull_offline", directory, "--interval", "1")
        agents.append(agent)
        agent.wait(lambda: _installed(directory) == first, "the first model installed")
        kept = _snapshot(directory)

        own.down()
        agent.wait(lambda: "database unreachable" in agent.text(), "the outage logged")
        agent.wait(lambda: agent.text().count("retrying in") >= 3, "three attempts")
        assert _snapshot(directory) == kept
        assert edge.Predictor(directory).predict_many(rows) == want_first
        assert f"keeping model {first} in {directory}" in agent.text()

        own.up()
        with psycopg.connect(own.uri(), autocommit=True) as admin:
            _deploy(admin, second)
            _, want_second = _iris(admin, "pull_offline")
        # installed, then logged: stopping the agent between the two would lose the line
        agent.wait(
            lambda: (
                _installed(directory) == second and f"model {second} of project" in agent.text()
            ),
            "the model deployed after",
        )
        assert edge.Predictor(directory).predict_many(rows) == want_second
        assert agent.stop() == 0
    finally:
        own.down()
    log = agent.text()
    assert log.index("database unreachable") < log.index(f"model {second} of project"), log
    assert os.readlink(directory / "current").startswith(f"models/{second}-")
    assert json.loads((directory / "model.json").read_text())["model_id"] == second


def _tiny_pair() -> tuple[dict[str, Any], bytes]:
    """A linear model's graph and card, made here (no database)."""
    import hashlib

    import numpy as np
    from sklearn.linear_model import LinearRegression

    from pyml.core import onnxpart

    X = np.arange(20.0).reshape(10, 2)
    model = LinearRegression().fit(X, X @ [1.0, 2.0])
    data = onnxpart.convert(model, None, ["a", "b"], [False, False], "regression").data
    assert data is not None
    card = {
        "model_id": 7,
        "project": "tiny",
        "task": "regression",
        "format": "onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "inputs": [{"name": "a", "type": "double"}, {"name": "b", "type": "double"}],
        "outputs": [{"name": "variable", "type": "double"}],
        "classes": None,
    }
    return card, data


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_agent_without_its_database_keeps_the_copy_and_stops_cleanly(
    tmp_path: Path, agents: list[Agent], stop: signal.Signals
) -> None:
    card, data = _tiny_pair()
    directory = tmp_path / "device"
    edge.install(directory, card, data)
    kept = _snapshot(directory)
    agent = Agent("postgresql://nobody@127.0.0.1:1/none", "tiny", directory, "--interval", "2")
    agents.append(agent)
    agent.wait(lambda: agent.text().count("retrying in") >= 3, "three attempts")
    agent.process.send_signal(stop)
    assert agent.process.wait(timeout=30) == 0
    lines = agent.text().splitlines()
    assert "database unreachable (connection failed: " in lines[0], lines
    assert f"keeping model 7 in {directory}; retrying in 1 s" in lines[0], lines
    assert lines[1].endswith("retrying in 2 s") and lines[2].endswith("retrying in 2 s")
    assert lines[-1].endswith("pyml pull: stopped")
    assert _snapshot(directory) == kept
    assert edge.Predictor(directory).predict({"a": 1.0, "b": 2.0}) == pytest.approx(5.0)
