"""The HTTP microservice a user would build instead of pyml: FastAPI + uvicorn, same model.

At start-up it exports the live model of a project from the database (``pyml.files``: LightGBM
text, or a skops file) and keeps it in memory; ``POST /predict`` with ``{"features": [...]}``
answers ``{"prediction": x}``. The database and project come from the environment
(``PYML_BENCH_URI``, ``PYML_BENCH_PROJECT``).

``python -m bench.microservice --port P --workers 2`` is how the bench runs it: one uvicorn
server per worker process, each on its own listening socket bound with SO_REUSEPORT (the kernel
spreads connections). Not ``uvicorn --workers 2``: that path binds the listener with
``proto = 0``, so asyncio never sets TCP_NODELAY on accepted connections and every keep-alive
request after the first waits ~40 ms for a delayed ACK (uvicorn issue #3149) -- which would
make the microservice look far slower than a well-deployed one.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

MODEL: dict[str, Any] = {}


def load(uri: str, project: str) -> dict[str, Any]:
    import psycopg

    from bench.models import export

    with psycopg.connect(uri, autocommit=True) as conn:
        model_id = conn.execute("SELECT pyml.deployed_model(%s)", (project,)).fetchone()[0]
        num_features = conn.execute(
            "SELECT num_features FROM pyml.models WHERE id = %s", (model_id,)
        ).fetchone()[0]
        fmt, predictor = export(conn, model_id)
    return {"id": model_id, "format": fmt, "predictor": predictor, "num_features": num_features}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    MODEL.update(load(os.environ["PYML_BENCH_URI"], os.environ["PYML_BENCH_PROJECT"]))
    yield


app = FastAPI(lifespan=lifespan)


class Features(BaseModel):
    features: list[float]


@app.get("/health")
async def health() -> dict[str, Any]:
    return {"model_id": MODEL.get("id"), "format": MODEL.get("format")}


@app.post("/predict")
async def predict(body: Features) -> dict[str, float]:
    # async def: the prediction (tens of µs) runs on the event loop, no thread-pool hop.
    if len(body.features) != MODEL["num_features"]:
        raise HTTPException(422, f"expected {MODEL['num_features']} features")
    x = np.asarray(body.features, dtype=np.float64).reshape(1, -1)
    return {"prediction": float(MODEL["predictor"].predict(x)[0])}


def serve(port: int, host: str = "127.0.0.1") -> None:
    """One worker: uvicorn on its own SO_REUSEPORT listener (proto TCP, so TCP_NODELAY is set)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.microservice")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers == 1:
        serve(args.port)
        return
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=serve, args=(args.port,)) for _ in range(args.workers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
