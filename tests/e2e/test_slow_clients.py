"""Slow clients against a real `spine serve`: the timeouts and caps come from SPINE_* settings.

The reads until the server ends a connection are bounded by `SAFETY_SECONDS`, which only a
server that never cuts the client reaches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import httpx
import msgspec
import pytest

from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e

SAFETY_SECONDS = 30.0


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SpineServer]:
    settings = {
        "SPINE_HEADER_TIMEOUT_SECONDS": "1",
        "SPINE_BODY_TIMEOUT_SECONDS": "1",
        "SPINE_MAX_FOLLOWERS_PER_TENANT": "1",
    }
    async with SpineServer(tmp_path / "data", tmp_path, env=settings).running() as spine:
        yield spine


async def read_until_closed(stream: anyio.abc.SocketStream) -> bytes:
    received = b""
    with anyio.move_on_after(SAFETY_SECONDS):
        while True:
            try:
                received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                return received
    pytest.fail(f"spine serve kept the connection open (received {received[:200]!r})")


async def test_a_stalled_body_and_a_stalled_head_are_cut(server: SpineServer) -> None:
    head = [f"{name}: {value}" for name, value in server.headers.items()]
    request = "\r\n".join(["POST /v1/events HTTP/1.1", "Host: spine", *head, "Content-Length: 500"])
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stalled_body:
        await stalled_body.send(request.encode() + b"\r\n\r\n" + b'{"')
        answer = await read_until_closed(stalled_body)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert msgspec.json.decode(answer.partition(b"\r\n\r\n")[2])["error_code"] == "request.timeout"

    async with await anyio.connect_tcp("127.0.0.1", server.port) as stalled_head:
        await stalled_head.send(b"GET /v1/events HTTP/1.1\r\nHost: spine\r\nAuthoriz")
        assert await read_until_closed(stalled_head) == b""


async def test_the_follower_cap_comes_from_the_settings(server: SpineServer) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=10) as http,
        http.stream("GET", "/v1/events/stream") as first,
    ):
        assert first.status_code == 200
        async with http.stream("GET", "/v1/events/stream") as second:
            assert second.status_code == 429  # else an endless stream: not read
            await second.aread()
        assert second.json()["error_code"] == "concurrency.too_many_followers"
        assert second.headers["retry-after"] == "1"
