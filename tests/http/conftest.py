from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from litestar.testing import TestClient

from app.http.factory import create_app
from app.http.server import DrainingServer, server_config
from app.settings import Settings
from tests.peers import free_port
from tests.provision import BOOTSTRAP_KEY, provision, provision_sync


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        max_body_bytes=64 * 1024,
        heartbeat_seconds=15.0,
        poll_seconds=2.0,
        bootstrap_key=BOOTSTRAP_KEY,
    )


@pytest.fixture
def client(settings: Settings, clock: Clock | None) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock=clock)) as test_client:
        yield test_client


class Clock:
    """The service's clock, which a test moves (`clock.now += timedelta(…)`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock | None:
    """Real time; a module that moves time overrides this with a `Clock`."""
    return None


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    """A member of tenant t1 (lab), project p1, surface web."""
    return provision_sync(client)


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread = field(repr=False)


def start_live_server(settings: Settings) -> LiveServer:
    """uvicorn in a thread of its own, so SSE streams for real (the test client buffers bodies),
    configured as `spine serve` configures it (the settings' slow-client timeouts and caps)."""
    port = free_port()
    app = create_app(settings)
    config = server_config(app, host="127.0.0.1", port=port, timeout_graceful_shutdown=1)
    server = DrainingServer(config, app)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # readiness probe with a deadline, not a sleep standing in for sync
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.01)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    live = start_live_server(settings)
    yield live
    live.server.should_exit = True
    live.thread.join(timeout=10)


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http_client:
        http_client.headers.update(await provision(http_client))
        yield http_client


async def sse_frames(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """Parse an SSE body into frames: {"id", "event", "data"} or {"retry"} or {"comment"}."""
    frame: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            frame[name] = frame.get(name, "") + value.removeprefix(" ")
