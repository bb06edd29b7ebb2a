"""Many SSE followers of one partition over a real server: one shared reader, every event once.

The handoff cases set up on purpose, and the reader's own life, are in `test_fanout.py`; here
the same guarantees hold end to end, through HTTP, the server's flow control and its caps.
"""

from __future__ import annotations

import json
import re
import socket
from urllib.parse import urlsplit

import anyio
import httpx
import msgspec
import pytest

from app.settings import Settings
from tests.http.conftest import LiveServer, sse_frames

STALL_BUFFER_EVENTS = 8  # how far the stalled follower may fall behind before it is cut
ID_LINE = re.compile(rb"^id: (\d+)$", re.MULTILINE)


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """A follower's buffer as the test asks (indirect parameter), else the default."""
    buffer_events = getattr(request, "param", Settings().sse_buffer_events)
    return msgspec.structs.replace(
        settings,
        sse_buffer_events=buffer_events,
        max_body_bytes=2 * 1024 * 1024,
        poll_seconds=30.0,  # every delivery below comes from a notification, not a poll
    )


async def append(http: httpx.AsyncClient, stream: str, count: int = 1, *, size: int = 0) -> int:
    events = [{"type": "tick", "data": {"pad": "x" * size}} for _ in range(count)]
    response = await http.post("/v1/events", json={"stream": stream, "events": events})
    assert response.status_code == 201, response.text
    return int(response.json()["last_position"])


async def collect(
    http: httpx.AsyncClient, until: int, *, after: int = 0, ready: anyio.Event | None = None
) -> list[int]:
    """Positions a follower from `after` is sent, up to `until`; `ready` is set once it streams."""
    positions: list[int] = []
    headers = {"Last-Event-ID": str(after)}
    async with http.stream("GET", "/v1/events/stream", headers=headers) as response:
        assert response.status_code == 200
        async for frame in sse_frames(response):
            if "retry" in frame and ready is not None:
                ready.set()
            if "data" in frame:
                positions.append(int(json.loads(frame["data"])["position"]))
                if positions[-1] >= until:
                    return positions
    raise AssertionError(f"the stream ended at {positions[-1:]}, before {until}")


class Following:
    """A follower over HTTP, in a task of the test: what it was sent so far, and waits on it."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.positions: list[int] = []
        self.streaming = anyio.Event()
        self._progress = anyio.Event()

    async def run(self) -> None:
        async with self.http.stream("GET", "/v1/events/stream") as response:
            assert response.status_code == 200
            async for frame in sse_frames(response):
                self.streaming.set()
                if "data" in frame:
                    self.positions.append(int(json.loads(frame["data"])["position"]))
                    self._progress.set()
                    self._progress = anyio.Event()

    async def until(self, position: int) -> None:
        while not self.positions or self.positions[-1] < position:
            await self._progress.wait()


async def metric(http: httpx.AsyncClient, name: str) -> float:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def test_many_followers_each_get_every_event_once_in_order_while_appends_run(
    http: httpx.AsyncClient,
) -> None:
    await append(http, "before", 5)
    batches = [1 + n % 3 for n in range(30)]  # single events and small batches, 3 streams at once
    total = 5 + 3 * sum(batches)
    received: dict[int, list[int]] = {}
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            ready = [anyio.Event() for _ in range(30)]

            async def follower(index: int) -> None:
                received[index] = await collect(http, total, after=index % 5, ready=ready[index])

            for index in range(30):
                tasks.start_soon(follower, index)
            for event in ready:
                await event.wait()

            async def appender(stream: str) -> None:
                for count in batches:
                    await append(http, stream, count)

            async with anyio.create_task_group() as appenders:
                for stream in ("a", "b", "c"):
                    appenders.start_soon(appender, stream)
    assert (await http.get("/v1/events", params={"limit": 1})).json()["head"] == total
    assert all(positions == list(range(index % 5 + 1, total + 1)) for index, positions in received.items())
    assert await metric(http, "spine_sse_followers_cut_total") == 0


async def test_a_follower_joining_mid_stream_from_an_old_cursor_gets_every_event_once(
    http: httpx.AsyncClient,
) -> None:
    """A live follower keeps the partition's reader ahead while another joins from far behind."""
    await append(http, "s", 200)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            live: list[int] = []
            late: list[int] = []
            ready = anyio.Event()

            async def follow_live() -> None:
                live.extend(await collect(http, 400, after=200, ready=ready))

            async def follow_late() -> None:
                late.extend(await collect(http, 400, after=17))

            tasks.start_soon(follow_live)
            await ready.wait()
            for n in range(100):
                if n == 20:
                    tasks.start_soon(follow_late)
                await append(http, f"s{n % 3}", 2)
    assert live == list(range(201, 401))
    assert late == list(range(18, 401))


def _open_stalled_stream(url: str, headers: dict[str, str]) -> socket.socket:
    """A follower with a 4 KiB receive window that reads its answer's head, then nothing more."""
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window
    sock.settimeout(10)
    sock.connect((parts.hostname, parts.port))
    lines = ["GET /v1/events/stream HTTP/1.1", f"Host: {parts.netloc}", "Last-Event-ID: 0"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing of the body is taken yet
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def _read_to_the_end(sock: socket.socket) -> bytes:
    """Everything the stalled follower was sent, up to its stream's end (the last, empty chunk)."""
    body = b""
    while not body.endswith(b"\r\n0\r\n\r\n"):
        data = sock.recv(65536)
        if not data:
            break
        body += data
    sock.close()
    return body


@pytest.mark.parametrize("settings", [STALL_BUFFER_EVENTS], indirect=True, ids=["buffer-8"])
async def test_a_follower_that_stops_reading_is_cut_and_resumes_without_loss(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    headers = {name: value for name, value in http.headers.items() if name.lower().startswith(("auth", "x-"))}
    stalled = await anyio.to_thread.run_sync(_open_stalled_stream, live_server.url, headers)
    other = Following(http)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(other.run)
            await other.streaming.wait()
            # Big events, until the stalled follower's socket and the server's buffers are full
            # and its place at the shared reader overflows; the other follower keeps reading.
            head = 0
            while await metric(http, "spine_sse_followers_cut_total") == 0:
                head = await append(http, "big", 4, size=64 * 1024)
            tail = [await append(http, "after-the-cut") for _ in range(3)]
            await other.until(tail[-1])
            tasks.cancel_scope.cancel()
        body = await anyio.to_thread.run_sync(_read_to_the_end, stalled)
        sent = [int(position) for position in ID_LINE.findall(body)]
        assert body.endswith(b"\r\n0\r\n\r\n")  # its stream ended: not cut mid-frame, resumable
        assert sent == list(range(1, len(sent) + 1))
        assert len(sent) < head
        resumed = await collect(http, tail[-1], after=sent[-1])
    assert sent + resumed == list(range(1, tail[-1] + 1))
    assert other.positions == list(range(1, tail[-1] + 1))
    assert await metric(http, "spine_sse_followers_cut_total") == 1


async def test_the_shared_reader_stops_when_the_last_follower_leaves(http: httpx.AsyncClient) -> None:
    assert await metric(http, "spine_sse_readers") == 0
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            followers = [Following(http) for _ in range(3)]
            for follower in followers:
                tasks.start_soon(follower.run)
            position = await append(http, "s")
            for follower in followers:
                await follower.until(position)
            assert await metric(http, "spine_sse_readers") == 1  # one for the three
            tasks.cancel_scope.cancel()
        # The gauges live in the server: poll them until the disconnects have landed.
        while await metric(http, "spine_sse_clients") != 0:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    assert await metric(http, "spine_sse_readers") == 0
