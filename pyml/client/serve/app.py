"""The service's ASGI application: a bare ASGI callable (no framework), orjson for JSON.

Measured before choosing (see the README, "Model as a service"): on this 2-core machine a
bare ASGI app on uvicorn (httptools, uvloop) answered a V2 infer request in 0.14-0.24 ms
(p50, one keep-alive client) against 0.29 ms for the same handler under Starlette and
0.22-0.32 ms on granian (ASGI or RSGI), and gave the most requests per second at 16
clients; a router of six patterns needs no framework.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from pyml import __version__
from pyml.client.serve import protocol
from pyml.client.serve.metrics import Metrics
from pyml.client.serve.predlog import PredictionLog
from pyml.client.serve.protocol import ProtocolError, Served
from pyml.client.serve.registry import Registry, Unavailable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("pyml.serve")

MAX_BODY = 8 * 1024 * 1024  # bytes of a request body, by default
THREAD_ROWS = 1000  # a request of this many rows is predicted off the event loop
JSON = [(b"content-type", b"application/json")]


class Service:
    """``pyml serve``'s application: ``Service(url, ...)`` is an ASGI callable."""

    def __init__(
        self,
        url: str,
        projects: list[str] | None = None,
        token: str | None = None,
        max_body: int = MAX_BODY,
        access_log: bool = True,
        log_predictions: bool = True,
    ):
        self.registry = Registry(url, projects)
        self.metrics = Metrics()
        self.predlog = PredictionLog(url, self.metrics) if log_predictions else None
        self.token = token.encode() if token else None
        self.max_body = max_body
        self.access_log = access_log
        self.registry.on_swap = self._swapped

    def _swapped(self, served: Served) -> None:
        self.metrics.models[served.project] = served.id

    # -- ASGI ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await asyncio.to_thread(self.start)
                except Exception as exc:  # reported by the server, which then exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        if self.predlog is not None:
            self.predlog.start()
        self.registry.start()

    def stop(self) -> None:
        self.registry.stop()
        if self.predlog is not None:
            self.predlog.stop()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        route, project, rows = "other", "", 0
        status = 500
        try:
            parts = path.strip("/").split("/")
            if parts[:2] == ["v2", "health"] and len(parts) == 3 and method == "GET":
                route = "health"
                status, body = self._health(parts[2])
                await _reply(send, status, orjson.dumps(body))
                return
            self._authorize(scope)
            if parts == ["metrics"] and method == "GET":
                route = "metrics"
                status = 200
                text = self.metrics.text().encode()
                await _reply(send, 200, text, [(b"content-type", b"text/plain; version=0.0.4")])
                return
            if parts == ["v2"] and method == "GET":
                route = "server"
                status = 200
                await _reply(send, 200, orjson.dumps(_server_metadata()))
                return
            if len(parts) < 3 or parts[:2] != ["v2", "models"]:
                raise ProtocolError(404, f"no such endpoint: {method} {path}")
            project = parts[2]
            rest = parts[3:]
            version: int | None = None
            if len(rest) >= 2 and rest[0] == "versions":
                version = _model_id(rest[1])
                rest = rest[2:]
            if rest == ["infer"] and method == "POST":
                route = "infer"
                status, rows = await self._infer(scope, receive, send, project, version)
                return
            if method != "GET" or rest not in ([], ["ready"]):
                raise ProtocolError(404, f"no such endpoint: {method} {path}")
            route = "metadata" if not rest else "ready"
            served = await self._served(project, version)
            if rest == ["ready"]:
                body = {"name": project, "ready": True}
            else:
                versions = await asyncio.to_thread(self.registry.versions, project)
                body = served.metadata(versions)
            status = 200
            await _reply(send, 200, orjson.dumps(body))
        except ProtocolError as exc:
            status = exc.status
            await _reply(send, status, orjson.dumps({"error": exc.message}))
        except Unavailable as exc:
            status = 503
            await _reply(send, status, orjson.dumps({"error": str(exc)}))
        except Exception:  # a bug: logged with its traceback, never sent to the client
            log.exception("error answering %s %s", method, path)
            status = 500
            await _reply(send, 500, orjson.dumps({"error": "internal error (see the service log)"}))
        finally:
            seconds = time.perf_counter() - started
            self.metrics.observe(route, project, status, seconds, rows)
            if self.access_log:
                _access(scope, status, seconds, project, rows)

    # -- endpoints -----------------------------------------------------------------

    def _health(self, what: str) -> tuple[int, dict[str, Any]]:
        if what == "live":
            return 200, {"live": True}
        if what == "ready":
            ready = self.registry.ready
            return (200 if ready else 503), {"ready": ready}
        raise ProtocolError(404, f"no such endpoint: GET /v2/health/{what}")

    def _authorize(self, scope: Scope) -> None:
        if self.token is None:
            return
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token):
                    return
                break
        raise ProtocolError(401, "a valid bearer token is required (Authorization: Bearer ...)")

    async def _served(self, project: str, version: int | None) -> Served:
        registry = self.registry
        if version is None:
            served = registry.cached(project)
            if served is not None:
                return served
            return await asyncio.to_thread(registry.get, project)
        return await asyncio.to_thread(registry.version, project, version)

    async def _infer(
        self, scope: Scope, receive: Receive, send: Send, project: str, version: int | None
    ) -> tuple[int, int]:
        header_length = None
        declared = None
        for name, value in scope["headers"]:
            if name == b"inference-header-content-length":
                header_length = _int_header(value, "Inference-Header-Content-Length")
            elif name == b"content-length":
                declared = _int_header(value, "Content-Length")
        if declared is not None and declared > self.max_body:
            raise ProtocolError(400, _too_large(declared, self.max_body))
        body = await _body(receive, self.max_body)
        served = await self._served(project, version)
        request, binary = protocol.parse(body, header_length)
        wanted, binary_out = protocol.wanted_outputs(request)
        X = served.inputs(request["inputs"], binary)
        if len(X) >= THREAD_ROWS:
            outputs = await asyncio.to_thread(served.predict, X, wanted)
        else:
            outputs = served.predict(X, wanted)
        payload, json_length = protocol.response(served, request, outputs, binary_out)
        headers = list(JSON)
        if json_length is not None:
            headers = [
                (b"content-type", b"application/octet-stream"),
                (b"inference-header-content-length", str(json_length).encode()),
            ]
        await _reply(send, 200, payload, headers)
        if self.predlog is not None:
            self.predlog.record(served, X, outputs)
        return 200, len(X)


async def _body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ProtocolError(400, "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProtocolError(400, _too_large(size, limit))
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: int, limit: int) -> str:
    return (
        f"the request body is too large: {size} bytes, at most {limit} "
        "(send fewer rows per request, or start pyml serve with a larger --max-body-mb)"
    )


def _int_header(value: bytes, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ProtocolError(400, f"{name} must be a number") from None


def _model_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ProtocolError(404, f'no model version "{text}" (versions are model ids)') from None


def _server_metadata() -> dict[str, Any]:
    return {"name": "pyml", "version": __version__, "extensions": ["binary_tensor_data"]}


async def _reply(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*(headers or JSON), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _access(scope: Scope, status: int, seconds: float, project: str, rows: int) -> None:
    client = scope.get("client")
    line = {
        "ts": time.time(),
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "ms": round(seconds * 1000, 3),
        "model": project or None,
        "rows": rows,
        "client": client[0] if client else None,
    }
    sys.stderr.write(orjson.dumps(line).decode() + "\n")
