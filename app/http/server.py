"""Running the app under uvicorn: slow clients cut, connections capped, and a shutdown that lets SSE
followers finish cleanly."""

from __future__ import annotations

import gc
import socket
import sys
from typing import Any

import uvicorn
from litestar import Litestar

from app.http.connections import http_protocol
from app.http.factory import begin_drain
from app.settings import Settings


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Litestar, *, freeze: bool = False) -> None:
        super().__init__(config)
        self._app = app
        self._freeze = freeze

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._freeze and self.started:
            # What start-up made (modules, the app, the control plane: some 150k objects) lives as
            # long as the process. Frozen, it is no longer traversed by every full collection,
            # which serving triggers every few seconds (bench/README.md, `bench_http.py`).
            gc.collect()
            gc.freeze()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for open responses before the app's lifespan hears of the shutdown;
        # followers never finish on their own, so tell them first.
        begin_drain(self._app)
        await super().shutdown(sockets)


def serve_app(app: Litestar, *, host: str, port: int, sockets: list[socket.socket] | None = None) -> None:
    """Serve `app` until a signal stops it; on `sockets` (a worker of `spine serve --workers`) when
    given, else on a socket of its own."""
    # The spine's writer thread re-takes the GIL after each SQLite call of a commit; with the
    # default 5 ms switch interval a busy event loop kept every commit waiting ~4 ms per call
    # (16-18 ms commits under load). 1 ms halves commit latency; measured in bench/bench_http.py.
    sys.setswitchinterval(0.001)
    config = server_config(app, host=host, port=port, timeout_graceful_shutdown=5)
    server = DrainingServer(config, app, freeze=True)
    server.run(sockets)  # a start-up failure exits with uvicorn's STARTUP_FAILURE (3)


def server_config(app: Litestar, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for `app`, with its settings' slow-client timeouts and connection cap.

    `max_connections` keeps the process answering (503 with `Retry-After`) under a flood of
    sockets instead of running out of file descriptors, where accept() fails and clients hang
    unanswered. Spine has no WebSocket route: upgrades are not offered.
    """
    settings: Settings = app.state.settings
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http_protocol(settings),
        ws="none",
        limit_concurrency=settings.max_connections,
        log_config=None,
        access_log=False,
        **options,
    )
