"""The real service process (``pyml serve``) against the real local server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running:
    """A ``pyml serve`` subprocess: its base URL, headers, and its output so far."""

    def __init__(self, proc: subprocess.Popen[str], port: int, token: str | None, log: Path):
        self.proc = proc
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.token = token
        self.log = log

    @property
    def headers(self) -> dict[str, str]:
        """A new dict each time: tritonclient adds its own headers to the one it is given."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def output(self) -> str:
        return self.log.read_text()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base + path, headers=self.headers, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.base + path, headers=self.headers, timeout=30, **kwargs)


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@contextmanager
def service(
    url: str, tmp_path: Path, *extra: str, token: str | None = "s3cret", ready: bool = True
) -> Iterator[Running]:
    """``pyml serve`` on a free port, stopped with SIGTERM at the end (graceful)."""
    port = free_port()
    argv = [sys.executable, "-m", "pyml.client.cli", "serve", "--url", url, "--port", str(port)]
    if token is not None:
        token_file = tmp_path / f"token-{port}"
        token_file.write_text(token + "\n")
        argv += ["--token-file", str(token_file)]
    log = tmp_path / f"serve-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*argv, *extra], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    running = Running(proc, port, token, log)
    try:
        if ready:

            def up() -> bool:
                if proc.poll() is not None:
                    pytest.fail(f"pyml serve exited ({proc.returncode}):\n{running.output()}")
                try:
                    return (
                        httpx.get(running.base + "/v2/health/ready", timeout=2).status_code == 200
                    )
                except httpx.HTTPError:
                    return False

            wait_until(up, 60, "pyml serve to be ready", every=0.1)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """``with serve(url, *extra_args, token=..., ready=...) as running:`` a service process."""
    tmp = tmp_path_factory.mktemp("serve")

    def start(url: str, *extra: str, **kwargs: Any) -> Any:
        return service(url, tmp, *extra, **kwargs)

    return start


@pytest.fixture(scope="session")
def poll() -> Callable[..., Any]:
    """``poll(check, timeout, what)``: :func:`wait_until`."""
    return wait_until
