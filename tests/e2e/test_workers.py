"""`spine serve --workers 2`: two worker processes on one port and one data directory.

Appends come over many connections at once, which the kernel hands to either worker; both write
the same SQLite file. Positions must stay gapless with no event twice, every stream's versions
too, and one follower, on one connection to one of the workers, must see every event once and in
order: woken through Redis when the workers have it, else by polling.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from spine_client import Event
from tests.e2e.test_kill_restart import SpineServer, assert_gapless, read_all, spine_env, tick

pytestmark = pytest.mark.e2e

CONNECTIONS = 32
APPENDS = 15  # per connection, one event each
STREAMS = 4  # every stream is written through both workers
_APPENDS_OK = re.compile(r'^spine_appends_total\{outcome="ok"\} (\S+)$', re.MULTILINE)
_SSE_SENT = re.compile(r"^spine_sse_events_sent_total (\S+)$", re.MULTILINE)


@asynccontextmanager
async def _two_workers(tmp_path: Path, *args: str) -> AsyncIterator[SpineServer]:
    # Polling: a follower in one worker sees the other's appends within this (0.2 s, not 2 s).
    env = {"SPINE_POLL_SECONDS": "0.2"}
    async with SpineServer(
        tmp_path / "data", tmp_path, args=("--workers", "2", *args), env=env
    ).running() as server:
        yield server


@pytest.fixture(params=["polling", "redis"])
async def workers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SpineServer]:
    args = ("--redis-url", request.getfixturevalue("redis_url")) if request.param == "redis" else ()
    async with _two_workers(tmp_path, *args) as server:
        yield server


@pytest.fixture
async def polling_workers(tmp_path: Path) -> AsyncIterator[SpineServer]:
    async with _two_workers(tmp_path) as server:
        yield server


async def test_appends_over_many_connections_are_gapless_and_a_follower_sees_every_one(
    workers: SpineServer,
) -> None:
    total = 1 + CONNECTIONS * APPENDS  # a marker first, then the appends
    acknowledged: dict[str, int] = {}
    followed: list[Event] = []
    following = anyio.Event()

    async def follower() -> None:
        async with workers.client() as client, aclosing(client.follow(reconnect=False)) as events:
            async for event in events:
                followed.append(event)
                following.set()  # it saw the marker: live from here on
                if len(followed) == total:
                    return

    async def appender(connection: int) -> None:
        # A client of its own: its own connection, which the kernel gives to either worker.
        async with httpx.AsyncClient(base_url=workers.url, headers=workers.headers, timeout=30) as http:
            for i in range(APPENDS):
                event_id = f"c{connection}-{i}"
                body = {"stream": f"s-{(connection + i) % STREAMS}", "events": [tick(event_id)]}
                answer = await http.post("/v1/events", json=body)
                assert answer.status_code == 201, f"{answer.text}\n{workers.log()}"
                acknowledged[event_id] = answer.json()["last_position"]

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follower)
            async with workers.client() as client:
                await client.append("marker", [tick("marker")])
            await following.wait()
            async with anyio.create_task_group() as appenders:
                for connection in range(CONNECTIONS):
                    appenders.start_soon(appender, connection)

    async with workers.client() as client:
        stored = await read_all(client)
    assert_gapless(stored)
    assert len(stored) == total
    assert {e.id: e.position for e in stored if e.id != "marker"} == acknowledged
    for stream in {e.stream for e in stored}:
        versions = [e.version for e in stored if e.stream == stream]
        assert versions == list(range(1, len(versions) + 1))
    assert [(e.id, e.position) for e in followed] == [(e.id, e.position) for e in stored]
    per_worker = await _appends_per_worker(workers)
    assert len(per_worker) == 2, "only one worker answered"
    assert min(per_worker) > 0, f"one worker appended nothing: {per_worker}"


async def test_a_worker_that_dies_is_replaced_and_no_request_is_refused(
    polling_workers: SpineServer,
) -> None:
    server = polling_workers
    before = _worker_pids(server)
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    with anyio.fail_after(60):
        async with server.client() as client:
            for i in range(20):
                # a connection of its own each time: some go to the dead worker's socket, and wait
                # there for its replacement (the supervisor keeps the socket), none is refused
                async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=30) as http:
                    body = {"stream": "s", "events": [tick(f"after-{i}")]}
                    answer = await http.post("/v1/events", json=body)
                assert answer.status_code == 201, f"{answer.text}\n{server.log()}"
            while True:  # a readiness probe, with the deadline above: the replacement is running
                after = _worker_pids(server)
                if len(after) == 2 and before[0] not in after:
                    break
                await anyio.sleep(0.05)
            assert before[1] in after  # the other worker was left alone
            assert [e.id for e in await read_all(client)] == [f"after-{i}" for i in range(20)]


async def test_a_second_server_on_the_same_port_is_refused(polling_workers: SpineServer) -> None:
    server = polling_workers
    for workers in ("2", "1"):
        command = [sys.executable, "-m", "app", "serve", "--port", str(server.port), "--workers", workers]
        command += ["--data-dir", str(server.data_dir.parent / f"other-{workers}")]
        result = await anyio.run_process(command, check=False, env=spine_env())
        assert result.returncode != 0, result.stderr.decode()
        assert b"address already in use" in result.stderr.lower(), result.stderr.decode()


def _worker_pids(server: SpineServer) -> list[int]:
    """The supervisor's worker processes, from /proc (its children, less multiprocessing's tracker)."""
    assert server.process is not None
    supervisor = server.process.pid
    children: list[int] = []
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    return [pid for pid in children if b"resource_tracker" not in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # gone since it was listed
        return b"resource_tracker"


async def _appends_per_worker(server: SpineServer) -> list[float]:
    """Each worker's count of appends (each counts its own), asked over fresh connections until
    both have answered. A worker is told by its pair of counts (appends, events sent to
    followers): only the follower's worker sent any, so the two pairs differ even if the append
    counts happen to be equal."""
    seen: set[tuple[float, float]] = set()
    for _ in range(200):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:  # a new connection
            text = (await http.get("/metrics")).text
        seen.add((_counter(_APPENDS_OK, text), _counter(_SSE_SENT, text)))
        if len(seen) == 2:
            break
    return sorted(appends for appends, _ in seen)


def _counter(pattern: re.Pattern[str], text: str) -> float:
    found = pattern.search(text)
    return float(found.group(1)) if found else 0.0
