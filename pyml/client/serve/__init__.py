"""``pyml serve``: an HTTP model service speaking the Open Inference Protocol (KServe V2 REST),
serving the registry's live models and switching when a deployment commits.

- :mod:`.protocol`: V2 tensors in, predictions out (pure).
- :mod:`.registry`: models loaded from ``pyml.files`` as the service's role, following
  ``NOTIFY pyml_deploy``, surviving database restarts.
- :mod:`.app`: the ASGI application (routes, bearer token, ``/metrics``, access log).
- :mod:`.predlog`: sampled, batched prediction log (``pyml.log_served``).
- :func:`run`: uvicorn workers, one listening socket each (SO_REUSEPORT), graceful stop.

Needs the ``serve`` extra (``pip install 'pyml[serve]'``: uvicorn, httptools, uvloop, orjson).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
from typing import Any

__all__ = ["run"]


def _listener(host: str, port: int) -> socket.socket:
    # proto TCP (not 0): asyncio then sets TCP_NODELAY on accepted connections (uvicorn #3149)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    from pyml.client.serve.app import Service

    sock = _listener(host, port)
    service = Service(**options)
    config = uvicorn.Config(
        service,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[sock])


def run(host: str, port: int, workers: int = 1, **options: Any) -> int:
    """Serve until SIGTERM or SIGINT; ``options`` are :class:`.app.Service`'s. Each worker is
    a process of its own (its own models, database connections and metrics)."""
    try:
        import httptools  # noqa: F401
        import uvicorn  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError as exc:
        print(
            f"pyml: error: pyml serve needs the serve extra ({exc.name} is missing)\n"
            "HINT: pip install 'pyml[serve]'",
            file=sys.stderr,
        )
        return 1
    if workers <= 1:
        _worker(host, port, options)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(host, port, options)) for _ in range(workers)]
    for proc in procs:
        proc.start()

    def forward(signum: int, frame: Any) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()
    return max((p.exitcode or 0) for p in procs)
