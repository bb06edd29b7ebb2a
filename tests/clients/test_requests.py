"""The Python client's requests against a live server: typed errors, retries that store nothing
twice, token refresh on 401, and the sync client."""

from __future__ import annotations

from contextlib import aclosing, closing
from pathlib import Path

import anyio
import httpx
import pytest

from spine_client import (
    NO_RETRY,
    AppendResult,
    Event,
    NewEvent,
    RetryPolicy,
    SpineClient,
    SpineClientError,
    SpineConnectionError,
    SyncSpineClient,
)
from tests.clients.conftest import APP, PROJECT, SURFACE, DroppingProxy, dropping_proxy, mint, serve, stop
from tests.http.conftest import LiveServer


async def test_problem_answers_raise_typed_errors(client: SpineClient) -> None:
    await client.append("s", [{"type": "t.created", "data": {}}], expected_version="no_stream")
    with pytest.raises(SpineClientError) as conflict:
        await client.append("s", [{"type": "t.created", "data": {}}], expected_version=0)
    error = conflict.value
    assert (error.status, error.error_code, error.retry_after) == (409, "spine.version_conflict", None)
    assert error.problem["current_version"] == 1
    assert error.message == error.problem["message"]
    assert str(error).startswith("409 spine.version_conflict: ")
    with pytest.raises(SpineClientError) as missing:
        await client.get_entry("run-1", "nothing")
    assert (missing.value.status, missing.value.error_code) == (404, "blackboard.not_found")


class Statuses(httpx.AsyncBaseTransport):
    """A real transport that notes the status of every answer, and says when one was a 429."""

    def __init__(self) -> None:
        self._transport = httpx.AsyncHTTPTransport()
        self.seen: list[int] = []
        self.refused = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        self.seen.append(response.status_code)
        if response.status_code == 429:
            self.refused.set()
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()


async def test_a_refusal_with_retry_after_is_raised_with_its_delay_and_follow_waits_it_out(
    tmp_path: Path,
) -> None:
    """One follower slot per tenant: a second follower is refused (429, Retry-After: 1) until the
    first lets go. A request without retries raises it; `follow` waits and gets in."""
    live = serve(tmp_path, max_followers_per_tenant=1)
    token, statuses = mint(3600), Statuses()
    context = {"token": token, "project_id": PROJECT, "surface_id": SURFACE}
    try:
        async with (
            SpineClient(live.url, **context) as first,
            SpineClient(live.url, **context, retry=NO_RETRY) as once,
            SpineClient(live.url, **context, transport=statuses) as patient,
        ):
            await first.append("s", [{"type": "t.created", "data": {}}])
            with anyio.fail_after(30):
                holding = first.follow()
                assert (await anext(holding)).position == 1  # the slot is taken
                with pytest.raises(SpineClientError) as refused:
                    await once.request("GET", "/v1/events/stream")
                error = refused.value
                assert (error.status, error.error_code, error.retry_after) == (
                    429,
                    "concurrency.too_many_followers",
                    1.0,
                )
                got: list[Event] = []

                async def second() -> None:
                    async with aclosing(patient.follow()) as events:
                        got.append(await anext(events))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(second)
                    await statuses.refused.wait()
                    await holding.aclose()  # frees the slot
            assert [event.position for event in got] == [1]
            assert statuses.seen[0] == 429
            assert statuses.seen[-1] == 200
    finally:
        stop(live)


async def test_an_append_whose_answer_was_lost_is_sent_again_and_stored_once(live: LiveServer) -> None:
    events = [{"type": "t.created", "data": {"n": n}} for n in range(3)]
    async with dropping_proxy(live.url) as proxy, _through(proxy) as spine:
        result = await spine.append("s", [*events, NewEvent(type="t.done", id="my-own-id")])
        page = await spine.read()
    assert proxy.dropped == 1, "the first answer was lost"
    assert result == AppendResult(first_position=1, last_position=4, stream_version=4)
    assert [e.position for e in page.events] == [1, 2, 3, 4], "appended once, though sent twice"
    assert page.events[3].id == "my-own-id"
    assert len({e.id for e in page.events}) == 4


async def test_a_write_without_an_idempotency_key_is_not_sent_again(live: LiveServer) -> None:
    """A session message has no id to make a retry harmless: its lost answer is the caller's call."""
    async with dropping_proxy(live.url) as proxy, _through(proxy) as spine:
        with pytest.raises(SpineConnectionError):
            await spine.add_message("chat", "user", "hello")
        session = await spine.get_session("chat", min_position=1)
    assert proxy.dropped == 1
    assert [m.content for m in session.messages] == ["hello"], "applied once; not sent again"


async def test_connection_errors_are_retried_until_the_policy_gives_up(live: LiveServer) -> None:
    with anyio.fail_after(30):
        async with dropping_proxy(live.url, drops=2) as proxy, _through(proxy) as spine:
            assert (await spine.read()).head == 0  # a read is safe to repeat: the third try answers
        assert proxy.dropped == 2
        policy = RetryPolicy(attempts=2, base_delay=0.01)
        async with dropping_proxy(live.url, drops=5) as proxy, _through(proxy, policy) as spine:
            with pytest.raises(SpineConnectionError):
                await spine.read()
        assert proxy.dropped == 2


async def test_a_401_asks_the_token_provider_for_a_fresh_token_once(live: LiveServer) -> None:
    handed: list[str] = []
    tokens = iter(["not-a-token", mint(3600)])

    async def provider() -> str:
        handed.append(next(tokens))
        return handed[-1]

    async with SpineClient(
        live.url, token_provider=provider, project_id=PROJECT, surface_id=SURFACE
    ) as spine:
        assert (await spine.read()).head == 0
        assert (await spine.read()).head == 0
    assert len(handed) == 2, "asked before the first request, and once more after its 401"

    async def forged() -> str:
        handed.append("forged")
        return "forged"

    handed.clear()
    async with SpineClient(live.url, token_provider=forged, project_id=PROJECT, surface_id=SURFACE) as spine:
        with pytest.raises(SpineClientError) as refused:
            await spine.read()
    assert (refused.value.status, refused.value.error_code) == (401, "auth.invalid_token")
    assert handed == ["forged", "forged"], "a fresh token refused again is final"
    async with SpineClient(live.url, token="forged", project_id=PROJECT, surface_id=SURFACE) as fixed:
        with pytest.raises(SpineClientError) as refused:
            await fixed.read()
    assert refused.value.status == 401


def test_the_sync_client(sync_client: SyncSpineClient, live: LiveServer) -> None:
    written = sync_client.append("s", [{"type": "t.created", "data": {"n": 1}}])
    assert (written.first_position, written.last_position) == (1, 1)
    memory = sync_client.set_memory("goal", {"text": "ship"}, ttl_seconds=60)
    assert sync_client.get_memory("goal", min_position=memory.position).value == {"text": "ship"}
    with closing(sync_client.follow()) as events:
        followed = [next(events), next(events)]
    assert [(e.position, e.stream) for e in followed] == [(1, "s"), (2, "memory:u1:goal")]
    with pytest.raises(SpineClientError) as refused:
        sync_client.read(after=99)
    assert (refused.value.status, refused.value.error_code) == (400, "cursor.invalid")
    handed: list[str] = []

    def provider() -> str:
        handed.append(mint(3600))
        return handed[-1]

    with SyncSpineClient(live.url, token="expired", token_provider=provider, project_id=PROJECT,
                         surface_id=SURFACE, app_id=APP) as refreshing:  # fmt: skip
        assert refreshing.read().head == 2
    assert len(handed) == 1


def _through(proxy: DroppingProxy, retry: RetryPolicy | None = None) -> SpineClient:
    options = {} if retry is None else {"retry": retry}
    return SpineClient(proxy.url, token=mint(3600), project_id=PROJECT, surface_id=SURFACE, **options)


async def test_follow_stops_for_what_no_retry_can_heal(live: LiveServer) -> None:
    handed: list[str] = []

    async def forged() -> str:
        handed.append("forged")
        return "forged"

    async def first_event(spine: SpineClient, after: int = 0) -> Event:
        async with aclosing(spine.follow(after=after)) as events:
            return await anext(events)

    with anyio.fail_after(30):
        async with SpineClient(
            live.url, token_provider=forged, project_id=PROJECT, surface_id=SURFACE
        ) as spine:
            with pytest.raises(SpineClientError) as refused:
                await first_event(spine)
        assert (refused.value.status, handed) == (401, ["forged", "forged"]), "a fresh token refused: final"
        async with SpineClient(live.url, token=mint(3600), project_id="nope", surface_id=SURFACE) as lost:
            with pytest.raises(SpineClientError) as unknown:
                await first_event(lost)
        assert (unknown.value.status, unknown.value.error_code) == (400, "context.unknown_project")
        async with _through_live(live) as spine:
            with pytest.raises(SpineClientError) as past:
                await first_event(spine, after=99)
        assert (past.value.status, past.value.error_code) == (400, "cursor.invalid")


def _through_live(live: LiveServer) -> SpineClient:
    return SpineClient(live.url, token=mint(3600), project_id=PROJECT, surface_id=SURFACE)
