"""The Python client's feature flag methods, once each, against a live server: each request
reaches its route, and each answer decodes into the client's own types. `follow_flags` resumes
for ever, as `follow` does, against `spine serve` as a real process stopped, killed and
restarted under it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, closing
from pathlib import Path

import anyio
import httpx
import pytest

from spine_client import SpineClient, SpineClientError, SyncSpineClient
from spine_client.types import Flag, FlagChange, FlagEvaluations, FlagWritten
from tests.clients.conftest import PROJECT, SURFACE, TOKEN_KEY, USER, mint
from tests.e2e.test_kill_restart import SpineServer


async def test_write_read_list_history_evaluate_and_delete_a_flag(client: SpineClient) -> None:
    rules = [{"users": [USER], "value": "mine"}, {"apps": ["app2"], "rollout": 12.5, "value": "other"}]
    written = await client.put_flag("checkout", "string", "classic", reason="launch", rules=rules)
    assert (written.key, written.version) == ("checkout", 1)
    again = await client.put_flag(
        "checkout", "string", "plain", reason="plainer", rules=rules, description="d", expected_version=1
    )
    with pytest.raises(SpineClientError) as stale:
        await client.put_flag("checkout", "string", "x", reason="late", expected_version=1)
    assert (stale.value.status, stale.value.error_code) == (409, "feature_flags.version_conflict")
    with pytest.raises(SpineClientError) as wrong:
        await client.put_flag("other", "bool", "yes", reason="typo")
    assert (wrong.value.error_code, wrong.value.problem["field"]) == (
        "feature_flags.invalid_value",
        "default",
    )

    flag = await client.get_flag("checkout", min_position=again.position)
    assert isinstance(flag, Flag)
    assert (flag.default, flag.version, flag.changed_by, flag.reason, flag.description) == (
        "plain", 2, USER, "plainer", "d")  # fmt: skip
    assert flag.rules == rules
    listed = await client.list_flags(limit=10)
    assert [f.key for f in listed.flags] == ["checkout"]

    evaluated = await client.evaluate_flags(["checkout", "nope"], min_position=again.position)
    assert isinstance(evaluated, FlagEvaluations)
    mine, nope = evaluated.flags["checkout"], evaluated.flags["nope"]
    assert (mine.value, mine.reason, mine.rule, mine.version) == ("mine", "rule", 0, 2)
    assert (nope.value, nope.reason, nope.version) == (None, "not_found", None)
    assert list((await client.evaluate_flags()).flags) == ["checkout"]

    gone = await client.delete_flag("checkout", reason="retired", expected_version=2)
    assert (gone.status, gone.version) == ("deleted", 3)
    history = await client.flag_history("checkout", min_position=gone.position)
    assert [(v.version, v.change, v.reason) for v in history.versions] == [
        (1, "changed", "launch"), (2, "changed", "plainer"), (3, "deleted", "retired")]  # fmt: skip
    assert history.versions[-1].flag is None


def test_the_sync_client_has_the_same_methods(sync_client: SyncSpineClient) -> None:
    written = sync_client.put_flag(
        "dark-mode", "bool", False, reason="r", rules=[{"users": [USER], "value": True}]
    )
    value = sync_client.evaluate_flags(["dark-mode"], min_position=written.position).flags["dark-mode"]
    assert (value.value, value.reason) == (True, "rule")


def test_the_sync_client_follows_the_flags_feed(sync_client: SyncSpineClient) -> None:
    sync_client.append("s", [{"type": "t.created", "data": {}}])  # not a flag: not in the feed
    written = sync_client.put_flag(
        "dark-mode", "bool", False, reason="r", rules=[{"users": [USER], "value": True}]
    )
    with closing(sync_client.follow_flags()) as changes:
        change = next(changes)
    assert change == FlagChange(key="dark-mode", value=True, reason="rule", version=1, deleted=False, rule=0,
                                position=written.position)  # fmt: skip


class LastEventIds(httpx.AsyncBaseTransport):
    """A real transport that notes the `Last-Event-ID` of every request it sends."""

    def __init__(self) -> None:
        self._transport = httpx.AsyncHTTPTransport()
        self.sent: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.headers.get("Last-Event-ID"))
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()


class Changes:
    """A flags follower in the background, and a way to wait until it has seen `n` changes."""

    def __init__(self, changes: AsyncIterator[FlagChange]) -> None:
        self.changes = changes
        self.seen: list[FlagChange] = []
        self._waiting: tuple[int, anyio.Event] | None = None

    async def run(self) -> None:
        async for change in self.changes:
            self.seen.append(change)
            if self._waiting is not None and len(self.seen) >= self._waiting[0]:
                self._waiting[1].set()

    async def until(self, count: int) -> None:
        if len(self.seen) < count:
            self._waiting = (count, anyio.Event())
            await self._waiting[1].wait()


@pytest.fixture
async def spine_server(tmp_path: Path) -> AsyncIterator[SpineServer]:
    """A lab `spine serve` whose tokens the test can mint (SPINE_TOKEN_KEY), with t1/p1/u1."""
    async with SpineServer(
        tmp_path / "data", tmp_path, env={"SPINE_TOKEN_KEY": TOKEN_KEY}
    ).running() as spine:
        yield spine


@pytest.mark.e2e
async def test_follow_flags_resumes_from_its_last_id_across_a_graceful_restart_and_a_sigkill(
    spine_server: SpineServer,
) -> None:
    """Each change arrives once, in order, evaluated for the follower (user u1): a rule for u1
    answers "mine", the kill switch the default, a deletion not_found. Each reconnection sends
    the position of the last change yielded as `Last-Event-ID`."""
    context = {"project_id": PROJECT, "surface_id": SURFACE}
    mine = [{"users": [USER], "value": "mine"}, {"users": ["someone-else"], "value": "theirs"}]
    ids = LastEventIds()
    written: list[FlagWritten] = []
    async with (
        SpineClient(spine_server.url, token=mint(3600), **context) as spine,
        SpineClient(spine_server.url, token=mint(3600), transport=ids, **context) as reader,
        aclosing(reader.follow_flags(max_retry_seconds=2.0)) as changes,
    ):
        following = Changes(changes)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(following.run)
                written.append(
                    await spine.put_flag("checkout", "string", "classic", reason="launch", rules=mine)
                )
                await spine.append("ticks", [{"type": "tick", "data": {}}])  # not a flag: skipped
                written.append(
                    await spine.put_flag(
                        "checkout", "string", "classic", reason="off", enabled=False, rules=mine
                    )
                )
                await following.until(2)
                await spine_server.stop()  # SIGTERM: the server drains, and ends the stream cleanly
                await spine_server.start()
                written.append(await spine.put_flag("checkout", "string", "classic", reason="on", rules=mine))
                await following.until(3)
                await spine_server.kill()  # SIGKILL: the connection just drops
                await spine_server.start()
                written.append(await spine.delete_flag("checkout", reason="retired"))
                written.append(await spine.put_flag("dark-mode", "bool", False, reason="dark"))
                await following.until(5)
                tg.cancel_scope.cancel()
    assert [(c.key, c.version, c.value, c.reason, c.rule, c.deleted) for c in following.seen] == [
        ("checkout", 1, "mine", "rule", 0, False),
        ("checkout", 2, "classic", "off", None, False),
        ("checkout", 3, "mine", "rule", 0, False),
        ("checkout", 4, None, "not_found", None, True),
        ("dark-mode", 1, False, "default", None, False),
    ], "every change once, in order, evaluated for the follower"
    assert [c.position for c in following.seen] == [w.position for w in written]
    resumed_from = list(dict.fromkeys(ids.sent))  # a reconnection refused while down sends the same id
    assert resumed_from == ["0", str(written[1].position), str(written[2].position)]
