"""The Python client's tests: a live server (uvicorn in a thread, or `spine serve` for restarts),
a lab tenant t1 (project p1, surface web, app app1, member u1), and tokens minted with a key the
test knows, so that it can make a token that expires in seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest

from adapters.jwt_tokens import TokenService
from app.settings import Settings
from spine_client import SpineClient, SyncSpineClient
from tests.http.conftest import LiveServer, start_live_server
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

TOKEN_KEY = "client-tests-token-key-" + "k" * 32
TENANT, PROJECT, SURFACE, APP, USER = "t1", "p1", "web", "app1", "u1"
LEEWAY_SECONDS = 30  # adapters/jwt_tokens.py: an expired token is still accepted for that long


def mint(ttl_seconds: int, *, user: str = USER) -> str:
    """A token of `user` in t1, signed as the server signs its own (it uses the same key)."""
    return TokenService(TOKEN_KEY).mint(tenant_id=TENANT, user_id=user, ttl_seconds=ttl_seconds)


def expiring_in(seconds: int) -> str:
    """A token the server accepts for about `seconds` more."""
    return mint(seconds - LEEWAY_SECONDS)


def serve(tmp_path: Path, **settings: object) -> LiveServer:
    live = start_live_server(
        Settings(data_dir=tmp_path, bootstrap_key=BOOTSTRAP_KEY, token_key=TOKEN_KEY, **settings)
    )
    with httpx.Client(base_url=live.url, timeout=10) as http:
        provision_sync(http, tenant=TENANT, project=PROJECT, surface=SURFACE, user=USER)
    return live


def stop(live: LiveServer) -> None:
    live.server.should_exit = True
    live.thread.join(timeout=10)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = serve(tmp_path)
    yield server
    stop(server)


@pytest.fixture
def admin_token(live: LiveServer) -> str:
    with httpx.Client(base_url=live.url, timeout=10) as http:
        return admin_headers_sync(http)["Authorization"].removeprefix("Bearer ")


@pytest.fixture
async def client(live: LiveServer) -> AsyncIterator[SpineClient]:
    async with SpineClient(
        live.url, token=mint(3600), project_id=PROJECT, surface_id=SURFACE, app_id=APP
    ) as spine:
        yield spine


@pytest.fixture
def sync_client(live: LiveServer) -> Iterator[SyncSpineClient]:
    with SyncSpineClient(
        live.url, token=mint(3600), project_id=PROJECT, surface_id=SURFACE, app_id=APP
    ) as spine:
        yield spine


@dataclass
class DroppingProxy:
    """A TCP proxy in front of a server that loses the answers of its first `drops` connections:
    it forwards the request, waits for the server's answer, then closes the client's connection
    without passing it on — what a client sees when the network fails at the worst moment."""

    url: str
    drops: int
    dropped: int = 0


@asynccontextmanager
async def dropping_proxy(upstream: str, drops: int = 1) -> AsyncIterator[DroppingProxy]:
    host, _, port = upstream.removeprefix("http://").partition(":")
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    proxy = DroppingProxy(
        url=f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}", drops=drops
    )

    async def relay(client: anyio.abc.SocketStream) -> None:
        drop = proxy.dropped < proxy.drops
        if drop:
            proxy.dropped += 1
        async with (
            client,
            await anyio.connect_tcp(host, int(port)) as server,
            anyio.create_task_group() as tg,
        ):

            async def pump(source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, lose: bool) -> None:
                try:
                    async for chunk in source:
                        if lose:
                            break  # the server answered: the request was handled; the client never knows
                        await sink.send(chunk)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
                finally:
                    tg.cancel_scope.cancel()

            tg.start_soon(pump, client, server, False)
            tg.start_soon(pump, server, client, drop)

    async with listener, anyio.create_task_group() as serving:
        serving.start_soon(listener.serve, relay)
        yield proxy
        serving.cancel_scope.cancel()
