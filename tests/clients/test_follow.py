"""`follow()` resumes for ever, against `spine serve` as a real process: across a graceful restart
(the server ends the stream as it drains), a SIGKILL and restart, and a token that expires while
the stream is open. Every event is yielded once, in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest

from spine_client import Event, SpineClient, SpineClientError
from tests.clients.conftest import PROJECT, SURFACE, TOKEN_KEY, USER, expiring_in, mint
from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SpineServer]:
    """A lab `spine serve` whose tokens the test can mint (SPINE_TOKEN_KEY), with t1/p1/u1."""
    async with SpineServer(
        tmp_path / "data", tmp_path, env={"SPINE_TOKEN_KEY": TOKEN_KEY}
    ).running() as spine:
        yield spine


def writer(server: SpineServer) -> SpineClient:
    return SpineClient(server.url, token=mint(3600), project_id=PROJECT, surface_id=SURFACE)


async def append_ticks(client: SpineClient, phase: str, count: int) -> list[str]:
    ids = [f"{phase}-{i}" for i in range(1, count + 1)]
    for event_id in ids:  # one append each: the follower sees them arrive live
        await client.append("ticks", [{"id": event_id, "type": "tick", "data": {"phase": phase}}])
    return ids


class Following:
    """A follower in the background, and a way to wait until it has seen `n` events."""

    def __init__(self, events: AsyncIterator[Event]) -> None:
        self.events = events
        self.seen: list[Event] = []
        self._waiting: tuple[int, anyio.Event] | None = None

    async def run(self) -> None:
        async for event in self.events:
            self.seen.append(event)
            if self._waiting is not None and len(self.seen) >= self._waiting[0]:
                self._waiting[1].set()

    async def until(self, count: int) -> None:
        if len(self.seen) < count:
            self._waiting = (count, anyio.Event())
            await self._waiting[1].wait()


async def test_follow_resumes_across_a_graceful_restart_and_a_sigkill(server: SpineServer) -> None:
    token = mint(3600)
    async with (
        writer(server) as spine,
        SpineClient(server.url, token=token, project_id=PROJECT, surface_id=SURFACE) as reader,
        aclosing(reader.follow(max_retry_seconds=2.0)) as events,
    ):
        following = Following(events)
        expected: list[str] = []
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(following.run)
                expected += await append_ticks(spine, "before", 60)
                await following.until(len(expected))
                await server.stop()  # SIGTERM: the server drains, and ends the stream cleanly
                await server.start()
                expected += await append_ticks(spine, "after-stop", 60)
                await following.until(len(expected))
                await server.kill()  # SIGKILL: the connection just drops
                await server.start()
                expected += await append_ticks(spine, "after-kill", 60)
                await following.until(len(expected))
                tg.cancel_scope.cancel()
    assert [e.id for e in following.seen] == expected, "every event once, in order"
    assert [e.position for e in following.seen] == list(range(1, 181))


async def test_follow_asks_for_a_fresh_token_when_its_own_expired(server: SpineServer) -> None:
    """The stream opens with a token that expires seconds later; the server restarts after it has;
    the reconnection is refused (401), the provider is asked for a fresh token, and the follower
    resumes where it was."""
    handed: list[str] = []

    async def provider() -> str:
        handed.append(expiring_in(10) if not handed else mint(3600))
        return handed[-1]

    async with (
        writer(server) as spine,
        SpineClient(server.url, token_provider=provider, project_id=PROJECT, surface_id=SURFACE) as reader,
        aclosing(reader.follow(max_retry_seconds=2.0)) as events,
    ):
        following = Following(events)
        expected: list[str] = []
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(following.run)
                expected += await append_ticks(spine, "before", 50)
                await following.until(len(expected))
                assert len(handed) == 1
                await refused(server, handed[0])  # the open stream goes on meanwhile
                expected += await append_ticks(spine, "expired", 50)
                await following.until(len(expected))
                await server.stop()
                await server.start()
                expected += await append_ticks(spine, "after-restart", 50)
                await following.until(len(expected))
                tg.cancel_scope.cancel()
    assert len(handed) == 2, "asked once at the start, once after the 401"
    assert [e.id for e in following.seen] == expected, "every event once, in order"
    assert {e.meta.user_id for e in following.seen} == {USER}


async def refused(server: SpineServer, token: str) -> None:
    """Polls the server until it refuses `token`: the condition itself, not a guessed sleep."""
    async with SpineClient(server.url, token=token, project_id=PROJECT, surface_id=SURFACE) as probe:
        while True:
            try:
                await probe.read(limit=1)
            except SpineClientError as exc:
                refusal = (exc.status, exc.error_code)
                break
            await anyio.sleep(0.25)
    assert refusal == (401, "auth.invalid_token")
