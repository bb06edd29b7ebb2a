"""The servers `bench_http.py` drives: Spine's own app plus one no-op POST, or a bare Litestar app.

    .venv/bin/python bench/_http_app.py --port 8089 --data-dir /tmp/somewhere [--workers N]
    .venv/bin/python bench/_http_app.py --port 8090 --bare [--workers N]

Spine: `POST /bench/noop` takes the same JSON body and the same request context as
`POST /v1/events` and goes through the same app, middleware and server, run by
`app.http.server.serve_app` (one worker) or `app.http.workers.serve_workers` (several) exactly as
`spine serve` runs them; it only skips the append itself. The gap between the two is what the
spine costs per request.

Bare (`--bare`): one Litestar route, `POST /bench/bare`, that decodes the same body into the same
msgspec struct and answers 201 with the same JSON shape: no middleware, guards, dependencies,
hooks, OpenAPI or logging. Served by uvicorn's own httptools protocol on the same event loop
(uvloop), with the same worker supervisor when `--workers` is above 1. The gap between it and
the no-op is what Spine's HTTP layer costs per request.
"""

from __future__ import annotations

import argparse
import functools
import socket
from pathlib import Path

import uvicorn
from _provision import BOOTSTRAP_KEY
from litestar import Litestar, post
from litestar.params import JSONBody

from app.http.controllers.events import AppendBody
from app.http.factory import create_app
from app.http.server import serve_app
from app.http.services import CallDep
from app.http.workers import listening_sockets, serve_workers
from app.logs import configure_logging
from app.settings import Settings


@post("/bench/noop", status_code=201)
async def noop(data: JSONBody[AppendBody], call: CallDep) -> dict[str, int]:
    return {"first_position": 0, "last_position": 0, "stream_version": len(data.events)}


@post("/bench/bare", status_code=201)
async def bare(data: AppendBody) -> dict[str, int]:
    return {"first_position": 0, "last_position": 0, "stream_version": len(data.events)}


def build(data_dir: Path, instance_id: str = "bench") -> Litestar:
    settings = Settings(data_dir=data_dir, bootstrap_key=BOOTSTRAP_KEY, instance_id=instance_id)
    app = create_app(settings)
    app.register(noop)
    return app


def bare_app() -> Litestar:
    return Litestar([bare], openapi_config=None, logging_config=None, debug=False)


def spine_worker(data_dir: Path, host: str, port: int, index: int, sock: socket.socket | None) -> None:
    configure_logging("warning")  # as `spine serve` does; only problems reach stderr
    serve_app(build(data_dir, f"bench-{index}"), host=host, port=port, sockets=[sock] if sock else None)


def bare_worker(host: str, port: int, index: int, sock: socket.socket | None) -> None:
    config = uvicorn.Config(
        bare_app(), host=host, port=port, http="httptools", ws="none", log_config=None, access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock] if sock else None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, help="Spine's data directory (not with --bare)")
    parser.add_argument("--bare", action="store_true", help="serve the bare Litestar baseline instead")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    args = parser.parse_args()
    if args.bare:
        worker = functools.partial(bare_worker, "127.0.0.1", args.port)
    elif args.data_dir is None:
        parser.error("--data-dir is required unless --bare")
    else:
        worker = functools.partial(spine_worker, args.data_dir, "127.0.0.1", args.port)
    if args.workers == 1:
        worker(0, None)
    else:
        serve_workers(worker, listening_sockets("127.0.0.1", args.port, args.workers))
