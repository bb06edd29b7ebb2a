"""`GET /v1/events/stream` over a real server: catch-up, live, resume, filters, heartbeats."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from app.settings import Settings
from tests.http.conftest import LiveServer, sse_frames


async def append(http: httpx.AsyncClient, stream: str, *types: str) -> int:
    events = [{"type": t, "data": {}} for t in types]
    response = await http.post("/v1/events", json={"stream": stream, "events": events})
    assert response.status_code == 201, response.text
    return int(response.json()["last_position"])


async def collect(
    http: httpx.AsyncClient, count: int, *, headers: dict[str, str] | None = None, **params: Any
) -> list[dict[str, Any]]:
    """The first `count` events of a follow; the stream must open with a `retry:` hint."""
    events: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        async with http.stream("GET", "/v1/events/stream", params=params, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            frames = sse_frames(response)
            assert "retry" in await anext(frames)
            async for frame in frames:
                if "data" in frame:
                    event = json.loads(frame["data"])
                    assert frame["id"] == str(event["position"])
                    assert frame["event"] == event["type"]
                    events.append(event)
                    if len(events) == count:
                        return events
    raise AssertionError("stream ended early")


async def test_catch_up_then_live_without_gap_or_duplicate(http: httpx.AsyncClient) -> None:
    total = 300
    await append(http, "s", *["early"] * 50)
    received: list[dict[str, Any]] = []
    following = anyio.Event()

    async def follower() -> None:
        received.extend(await collect(http, total - 10, after="10"))

    async def writer() -> None:
        # Write the rest while the follower is switching from catch-up to live.
        await following.wait()
        for i in range(total - 50):
            await append(http, f"w-{i % 4}", "late")

    async with anyio.create_task_group() as tg:
        tg.start_soon(follower)
        following.set()
        tg.start_soon(writer)

    assert [e["position"] for e in received] == list(range(11, total + 1))


async def test_last_event_id_header_wins_over_query(http: httpx.AsyncClient) -> None:
    await append(http, "s", "a", "b", "c", "d")
    events = await collect(http, 1, headers={"Last-Event-ID": "3"}, after="1")
    assert events[0]["position"] == 4


async def test_last_event_id_query_alias(http: httpx.AsyncClient) -> None:
    await append(http, "s", "a", "b", "c")
    events = await collect(http, 1, last_event_id="2")
    assert events[0]["position"] == 3


async def test_resume_receives_exactly_the_events_after_the_cursor(http: httpx.AsyncClient) -> None:
    await append(http, "s", *["x"] * 20)
    first = await collect(http, 7)
    resumed = await collect(http, 13, headers={"Last-Event-ID": str(first[-1]["position"])})
    assert [e["position"] for e in first + resumed] == list(range(1, 21))


async def test_filters_by_stream_and_type(http: httpx.AsyncClient) -> None:
    await append(http, "a", "keep", "drop")
    await append(http, "b", "keep")
    await append(http, "a", "keep")
    events = await collect(http, 2, stream="a", type="keep")
    assert [e["position"] for e in events] == [1, 4]


@pytest.mark.parametrize(
    ("headers", "params"),
    [({"Last-Event-ID": "nope"}, {}), ({}, {"after": "-3"}), ({}, {"after": "50"})],
    ids=["garbage-header", "negative", "past-head"],
)
async def test_an_invalid_cursor_is_400_before_streaming(
    http: httpx.AsyncClient, headers: dict[str, str], params: dict[str, str]
) -> None:
    response = await http.get("/v1/events/stream", headers=headers, params=params)
    assert response.status_code == 400
    assert response.json()["error_code"] == "cursor.invalid"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, heartbeat_seconds=0.2, poll_seconds=0.1)


async def test_heartbeats_keep_an_idle_stream_alive(http: httpx.AsyncClient) -> None:
    with anyio.fail_after(10):
        async with http.stream("GET", "/v1/events/stream") as response:
            comments = 0
            async for frame in sse_frames(response):
                comments += "comment" in frame
                if comments == 2:
                    break
    assert comments == 2


async def test_a_client_that_goes_away_is_released(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    async with http.stream("GET", "/v1/events/stream") as response:
        await anext(sse_frames(response))
        assert "spine_sse_clients 1.0" in (await http.get("/metrics")).text
    with anyio.fail_after(10):
        # The gauge lives in the server: poll it over HTTP until the disconnect has landed.
        while "spine_sse_clients 0.0" not in (await http.get("/metrics")).text:  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def test_shutdown_ends_followers_cleanly(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    """Without the drain, uvicorn would cut the stream after its graceful timeout: a read error."""
    await append(http, "s", "a")
    with anyio.fail_after(10):
        async with http.stream("GET", "/v1/events/stream") as response:
            frames = sse_frames(response)
            assert "retry" in await anext(frames)
            assert "data" in await anext(frames)
            live_server.server.should_exit = True
            rest = [frame async for frame in frames]
    assert all("data" not in frame for frame in rest)
