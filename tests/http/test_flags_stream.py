"""`GET /v1/flags/stream` over a real server: flag changes of the project, each evaluated for its
follower, catch-up then live, resumed with Last-Event-ID; a page's stream ticket opens it too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx

from tests.http.conftest import sse_frames

Frames = AsyncIterator[dict[str, str]]


async def put(http: httpx.AsyncClient, key: str, **fields: Any) -> int:
    body = {"type": "string", "default": "d", "reason": f"set {key}", **fields}
    answer = await http.put(f"/v1/flags/{key}", json=body)
    assert answer.status_code == 200, answer.text
    return int(answer.headers["x-spine-position"])


async def delete(http: httpx.AsyncClient, key: str) -> int:
    answer = await http.delete(f"/v1/flags/{key}", params={"reason": "retired"})
    assert answer.status_code == 200, answer.text
    return int(answer.headers["x-spine-position"])


@asynccontextmanager
async def following(
    http: httpx.AsyncClient, headers: dict[str, str] | None = None, **params: str
) -> AsyncIterator[Frames]:
    """The stream's frames with data, after the `retry:` hint it must open with."""
    async with http.stream("GET", "/v1/flags/stream", params=params, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = sse_frames(response)
        assert "retry" in await anext(frames)

        async def data() -> Frames:
            async for frame in frames:
                if "data" in frame:
                    yield frame

        yield data()


async def take(frames: Frames, count: int) -> list[dict[str, Any]]:
    """`count` frames as {"id", "event", **data}."""
    taken: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        while len(taken) < count:
            frame = await anext(frames)
            taken.append({"id": int(frame["id"]), "event": frame["event"], **json.loads(frame["data"])})
    return taken


async def test_follow_see_a_change_disconnect_and_resume_seeing_each_change_once(
    http: httpx.AsyncClient,
) -> None:
    rules = [{"users": ["u1"], "value": "mine"}]
    first = await put(http, "a", rules=rules)
    noise = await http.post("/v1/events", json={"stream": "s", "events": [{"type": "other", "data": {}}]})
    assert noise.status_code == 201
    second = await put(http, "b", default="plain")
    async with following(http) as frames:
        caught_up = await take(frames, 2)
        live = await put(http, "a", rules=rules, enabled=False)
        [changed] = await take(frames, 1)
    assert caught_up == [
        {"id": first, "event": "flag.changed", "key": "a", "value": "mine", "reason": "rule", "rule": 0,
         "version": 1, "deleted": False},
        {"id": second, "event": "flag.changed", "key": "b", "value": "plain", "reason": "default", "rule": None,
         "version": 1, "deleted": False},
    ]  # fmt: skip
    assert changed == {"id": live, "event": "flag.changed", "key": "a", "value": "d", "reason": "off",
                       "rule": None, "version": 2, "deleted": False}  # fmt: skip
    # written while nobody follows
    gone = await delete(http, "b")
    back = await put(http, "c", default="new")
    async with following(http, headers={"Last-Event-ID": str(live)}, after="0") as frames:
        resumed = await take(frames, 2)
        after = await put(http, "c", default="newer")
        resumed += await take(frames, 1)
    assert [(f["id"], f["event"], f["key"], f["value"], f["version"]) for f in resumed] == [
        (gone, "flag.deleted", "b", None, 2),
        (back, "flag.changed", "c", "new", 1),
        (after, "flag.changed", "c", "newer", 2),
    ]
    assert (resumed[0]["deleted"], resumed[0]["reason"]) == (True, "not_found")


async def test_each_follower_sees_the_value_for_its_own_context(http: httpx.AsyncClient) -> None:
    admin = await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": "test-bootstrap-key"})
    boss = {"Authorization": f"Bearer {admin.json()['token']}"}
    member = await http.post("/v1/tenants/t1/members", json={"user_id": "u2", "role": "member"}, headers=boss)
    assert member.status_code in (200, 201), member.text
    token = await http.post("/v1/tenants/t1/tokens", json={"user_id": "u2"}, headers=boss)
    u2 = {"Authorization": f"Bearer {token.json()['token']}"}
    written = await put(
        http, "a", rules=[{"users": ["u2"], "value": "for-u2"}, {"apps": ["app1"], "value": "app"}]
    )
    seen: dict[str, Any] = {}

    async def watch(name: str, headers: dict[str, str]) -> None:
        async with following(http, headers=headers, after=str(written - 1)) as frames:
            [seen[name]] = await take(frames, 1)

    async with anyio.create_task_group() as group:
        group.start_soon(watch, "u1", {})
        group.start_soon(watch, "u2", u2)
        group.start_soon(watch, "u1-app1", {"X-App-Id": "app1"})
    assert {name: (frame["value"], frame["rule"]) for name, frame in seen.items()} == {
        "u1": ("d", None),
        "u2": ("for-u2", 0),
        "u1-app1": ("app", 1),
    }


async def test_a_stream_ticket_opens_the_flag_stream_without_headers(http: httpx.AsyncClient) -> None:
    written = await put(http, "a", rules=[{"users": ["u1"], "value": "mine"}])
    issued = await http.post("/v1/stream-tickets", json={})
    assert issued.status_code == 201, issued.text
    bare = httpx.AsyncClient(base_url=str(http.base_url), timeout=10)  # no token, no context headers
    async with bare:
        async with following(bare, ticket=issued.json()["ticket"]) as frames:
            [frame] = await take(frames, 1)
        refused = await bare.get("/v1/flags/evaluate", params={"ticket": issued.json()["ticket"]})
        claimed = await bare.get(
            "/v1/flags/stream", params={"ticket": issued.json()["ticket"], "user_id": "u2"}
        )
    assert (frame["id"], frame["value"]) == (written, "mine")
    assert refused.status_code == 401  # a ticket follows; it reads nothing else
    assert (claimed.status_code, claimed.json()["source"]) == (403, "query")  # the ticket's user only


async def test_identity_in_the_query_and_bad_cursors_are_refused_before_streaming(
    http: httpx.AsyncClient,
) -> None:
    await put(http, "a")
    checks: list[tuple[Callable[[], Awaitable[httpx.Response]], int, str]] = [
        (lambda: http.get("/v1/flags/stream", params={"user_id": "u2"}), 403, "auth.identity_override"),
        (lambda: http.get("/v1/flags/stream", params={"after": "9"}), 400, "cursor.invalid"),
        (lambda: http.get("/v1/flags/stream", headers={"Last-Event-ID": "x"}), 400, "cursor.invalid"),
    ]
    for request, status, code in checks:
        answer = await request()
        assert (answer.status_code, answer.json()["error_code"]) == (status, code)
