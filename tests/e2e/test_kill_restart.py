"""`spine serve` as a real process, SIGKILLed mid-write and restarted on the same data dir.

What must survive a crash: every acknowledged append, gapless positions, idempotent retries of an
append whose answer was lost, and SSE resumption by `Last-Event-ID`.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import msgspec
import pytest

from spine_client import Event, SpineClient, SpineClientError, SpineConnectionError
from tests.peers import free_port
from tests.provision import provision

pytestmark = pytest.mark.e2e

TENANT, PROJECT = "t1", "p1"
READY_SECONDS = 20
STOP_SECONDS = 10


def spine_env() -> dict[str, str]:
    """The caller's environment without SPINE_* settings, so only the command line configures spine."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SPINE_")}


class SpineServer:
    """One `spine serve` process at a time, always on the same port and data dir."""

    def __init__(
        self, data_dir: Path, log_dir: Path, *, args: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.args = args  # more `spine serve` options
        self.env = env or {}  # more SPINE_* settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: anyio.abc.Process | None = None
        self.starts = 0
        self.headers: dict[str, str] = {}

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"spine-serve-{self.port}-{self.starts}.log"

    async def start(self) -> None:
        assert self.process is None, "already running"
        self.starts += 1
        command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), *self.args]
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = await anyio.open_process(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**spine_env(), **self.env}
            )
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        """Readiness probe: poll /health until it answers, the process dies or the deadline passes."""
        process = self.process
        assert process is not None
        try:
            with anyio.fail_after(READY_SECONDS):
                async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as http:
                    while process.returncode is None:
                        try:
                            response = await http.get("/health")
                        except httpx.TransportError:
                            pass
                        else:
                            if response.status_code == 200:
                                return
                        await anyio.sleep(0.05)
        except TimeoutError:
            pytest.fail(f"spine serve was not ready within {READY_SECONDS}s:\n{self.log()}")
        pytest.fail(f"spine serve exited with {process.returncode}:\n{self.log()}")

    async def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush, exactly like a crash of the process."""
        process = self.process
        assert process is not None, "not running"
        self.process = None
        process.send_signal(signal.SIGKILL)
        await process.aclose()  # reaps it

    async def restart(self) -> None:
        await self.kill()
        await self.start()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[SpineServer]:
        """Started and provisioned for the block; stopped after it, even when the test is cancelled."""
        try:
            await self.start()
            await self.provision()
            yield self
        finally:
            with anyio.CancelScope(shield=True):
                await self.stop()

    async def stop(self) -> None:
        """Teardown: SIGTERM, SIGKILL if it does not exit in time."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            with anyio.move_on_after(STOP_SECONDS):
                await process.wait()
            if process.returncode is None:
                process.kill()
        await process.aclose()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    async def provision(self) -> None:
        """A lab tenant, project, surface and member token, made through the API as a user would."""
        key = (self.data_dir / "secrets" / "bootstrap.key").read_text().strip()
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            self.headers = await provision(http, tenant=TENANT, project=PROJECT, bootstrap_key=key)

    def client(
        self, *, project_id: str = PROJECT, transport: httpx.AsyncBaseTransport | None = None
    ) -> SpineClient:
        token = self.headers["Authorization"].removeprefix("Bearer ")
        surface = self.headers["X-Surface-Id"]
        return SpineClient(
            self.url, token=token, project_id=project_id, surface_id=surface, transport=transport
        )


def tick(event_id: str) -> dict[str, Any]:
    return {"id": event_id, "type": "tick", "data": {"id": event_id}}


async def read_all(client: SpineClient, after: int = 0) -> list[Event]:
    """Page through the whole partition after `after`."""
    events: list[Event] = []
    while True:
        page = await client.read(after=after, limit=1000)
        events.extend(page.events)
        if page.next >= page.head:
            return events
        after = page.next


def assert_gapless(log: list[Event]) -> None:
    assert [e.position for e in log] == list(range(1, len(log) + 1))
    ids = [e.id for e in log]
    assert len(set(ids)) == len(ids), "an event id is stored twice"


def summary(events: list[Event]) -> list[tuple[str, int]]:
    return [(e.id, e.position) for e in events]


async def test_sigkill_mid_write_loses_no_acknowledged_event(server: SpineServer) -> None:
    acknowledged: dict[str, int] = {}
    unacknowledged: list[str] = []
    followed: list[Event] = []
    follower_caught_enough = anyio.Event()
    follower_errors: list[SpineConnectionError] = []

    async with server.client() as client:

        async def follower() -> None:
            try:
                async with aclosing(client.follow(reconnect=False)) as events:
                    async for event in events:
                        followed.append(event)
                        if len(followed) >= 200:
                            follower_caught_enough.set()
            except SpineConnectionError as exc:
                follower_errors.append(exc)

        async def writer() -> None:
            for i in itertools.count(1):
                event_id = f"w-{i}"
                try:
                    result = await client.append("s", [tick(event_id)])
                except SpineConnectionError:
                    unacknowledged.append(event_id)
                    return
                acknowledged[event_id] = result.last_position

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follower)
                tg.start_soon(writer)
                await follower_caught_enough.wait()
                await server.kill()  # the writer is still appending: it never stops on its own

    assert len(follower_errors) == 1, "without reconnect, the dropped stream raises"
    assert len(unacknowledged) == 1, "the writer stops at its first failed append"
    (in_flight,) = unacknowledged
    # The follower only sees committed events, and a sequential writer has at most one unanswered.
    assert len(acknowledged) >= len(followed) - 1

    with anyio.fail_after(60):
        await server.start()
        async with server.client() as client:
            log = await read_all(client)
            assert_gapless(log)
            stored = {e.id: e.position for e in log}
            assert {i: stored.get(i) for i in acknowledged} == acknowledged
            # Nothing but the acknowledged appends and, perhaps, the one whose answer was lost.
            assert set(stored) - set(acknowledged) <= {in_flight}
            assert summary(followed) == summary(log[: len(followed)])

            # The writer retries the append it got no answer for, with the same event id.
            retried = await client.append("s", [tick(in_flight)])
            if in_flight in stored:
                assert (retried.first_position, retried.last_position) == (stored[in_flight],) * 2
                assert retried.last_position == len(log)
            else:
                assert (retried.first_position, retried.last_position) == (len(log) + 1,) * 2
            log = await read_all(client)
            assert_gapless(log)
            assert [e.id for e in log].count(in_flight) == 1

            # A follower resuming with Last-Event-ID gets exactly the rest of the log, live or not.
            last_seen = followed[-1].position
            await assert_sse_resumes_exactly(client, after=last_seen)
            await assert_sse_resumes_exactly(client, after=last_seen // 2)

            # The Last-Event-ID header wins over ?after=.
            first_id = await first_sse_id(server, last_event_id=str(last_seen), after="0")
            assert first_id == str(last_seen + 1)


async def assert_sse_resumes_exactly(client: SpineClient, *, after: int) -> None:
    """Following from `after` yields what GET /v1/events has after it, then the next append, only."""
    rest = await read_all(client, after=after)
    sentinel = f"sentinel-{after}"
    resumed: list[Event] = []
    async with aclosing(client.follow(after=after, reconnect=False)) as events:
        if not rest:
            await client.append("s", [tick(sentinel)])
        async for event in events:
            resumed.append(event)
            if len(resumed) == len(rest):
                # Anything else the server would send (a duplicate, a replay) comes before this.
                await client.append("s", [tick(sentinel)])
            if event.id == sentinel:
                break
    head = rest[-1].position if rest else after
    assert summary(resumed) == [*summary(rest), (sentinel, head + 1)]


async def first_sse_id(server: SpineServer, *, last_event_id: str, after: str) -> str:
    """The `id:` of the first event frame of a raw SSE connection, checking the wire format."""
    url = server.url
    headers = {**server.headers, "Last-Event-ID": last_event_id}
    async with (
        httpx.AsyncClient(base_url=url) as http,
        http.stream("GET", "/v1/events/stream", headers=headers, params={"after": after}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines: list[str] = []
        async with aclosing(response.aiter_lines()) as stream:
            async for line in stream:
                lines.append(line)
                if line.startswith("id:"):
                    assert lines[0] == "retry: 2000"
                    return line.removeprefix("id:").strip()
    pytest.fail(f"the event stream ended before any event: {lines}")


class ConnectFailures(httpx.AsyncBaseTransport):
    """A real transport that says when a connect attempt failed: the server is down for sure."""

    def __init__(self) -> None:
        self._transport = httpx.AsyncHTTPTransport()
        self.failed = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._transport.handle_async_request(request)
        except httpx.ConnectError:
            self.failed.set()
            raise

    async def aclose(self) -> None:
        await self._transport.aclose()


async def test_follow_reconnects_across_sigkill_and_restart(server: SpineServer) -> None:
    before, after = 120, 80
    followed: list[Event] = []
    followed_all_before = anyio.Event()
    follower_transport = ConnectFailures()

    async def follower() -> None:
        async with (
            server.client(transport=follower_transport) as client,
            aclosing(client.follow(reconnect=True, max_retry_seconds=2.0)) as events,
        ):
            async for event in events:
                followed.append(event)
                if len(followed) == before:
                    followed_all_before.set()
                if len(followed) == before + after:
                    return

    async with server.client() as client:
        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follower)
                for i in range(1, before + 1):
                    await client.append("s", [tick(f"before-{i}")])
                await followed_all_before.wait()
                await server.kill()
                # The follower lost its stream, then failed to reconnect: both paths are taken.
                await follower_transport.failed.wait()
                await server.start()
                for i in range(1, after + 1):
                    await client.append("s", [tick(f"after-{i}")])
            log = await read_all(client)

    expected_ids = [f"before-{i}" for i in range(1, before + 1)] + [f"after-{i}" for i in range(1, after + 1)]
    assert [e.position for e in followed] == list(range(1, before + after + 1))
    assert [e.id for e in followed] == expected_ids
    assert summary(log) == summary(followed)


async def test_client_raises_problem_answers_instead_of_retrying(server: SpineServer) -> None:
    with anyio.fail_after(30):
        async with server.client() as client:
            await client.append("s", [tick("p-1")], expected_version="no_stream")
            await client.append("other", [{"type": "note", "data": {}}])
            with pytest.raises(SpineClientError) as conflict:
                await client.append("s", [tick("p-2")], expected_version=0)
            assert (conflict.value.status, conflict.value.error_code) == (409, "spine.version_conflict")
            assert conflict.value.problem["current_version"] == 1

            page = await client.read(after=0, stream="other", types=["note"])
            assert ([e.stream for e in page.events], page.next, page.head) == (["other"], 2, 2)

            # A cursor past the head is a 4xx on connect: raised at once, even with reconnect.
            with pytest.raises(SpineClientError) as invalid:
                async with aclosing(client.follow(after=99, reconnect=True)) as events:
                    await anext(events)
            assert (invalid.value.status, invalid.value.error_code) == (400, "cursor.invalid")

            async with aclosing(client.follow(types=["note"])) as events:
                note = await anext(events)
            assert (note.stream, note.position) == ("other", 2)

        async with server.client(project_id="not valid") as bad:
            with pytest.raises(SpineClientError) as missing:
                await bad.read()
            assert (missing.value.status, missing.value.error_code) == (400, "context.invalid_field")


async def test_replay_prints_the_events_after_a_cursor(server: SpineServer) -> None:
    after = 17
    command = [sys.executable, "-m", "app", "replay", "--tenant", TENANT, "--project", PROJECT]
    command += ["--data-dir", str(server.data_dir), "--after", str(after), "--no-progress"]
    with anyio.fail_after(60):
        async with server.client() as client:
            for i in range(1, 21):
                batch = [tick(f"r-{i}-{j}") for j in range(3)]
                await client.append("s" if i % 2 else "other", batch)
            expected = await read_all(client, after=after)
        result = await anyio.run_process(command, check=False, env=spine_env())
    assert len(expected) == 60 - after
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    replayed = [msgspec.json.decode(line, type=Event) for line in result.stdout.splitlines()]
    assert summary(replayed) == summary(expected)
    assert replayed == expected


@pytest.mark.parametrize("args", [[], ["serve"], ["replay"]], ids=["spine", "serve", "replay"])
def test_help_exits_zero(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=spine_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(" ".join(["Usage: spine", *args]))  # `python -m app` is `spine`
