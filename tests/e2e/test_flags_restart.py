"""Feature flags through a real `spine serve`: what was acknowledged is read back (flags, history,
evaluations) after a stop and a start on the same data dir, and after a SIGKILL; versions go on
from where they were, and a follower resumes from its Last-Event-ID across the restart."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer
from tests.http.conftest import sse_frames

pytestmark = pytest.mark.e2e

CHECKOUT = {"type": "string", "default": "classic", "rules": [{"users": ["u1"], "value": "new"}]}


async def snapshot(http: httpx.AsyncClient, headers: dict[str, str], position: str) -> dict[str, Any]:
    """Every live flag, each history, and the evaluation of every flag, once the view reflects `position`."""
    waited = {**headers, "X-Spine-Min-Position": position}
    listed = await http.get("/v1/flags", headers=waited)
    assert listed.status_code == 200, listed.text
    found: dict[str, Any] = {"flags": listed.json()["flags"]}
    for key in ("checkout", "gone"):
        history = await http.get(f"/v1/flags/{key}/history", headers=waited)
        assert history.status_code == 200, history.text
        found[f"{key}/history"] = history.json()["versions"]
    evaluated = await http.get("/v1/flags/evaluate", params={"keys": "checkout,gone"}, headers=waited)
    found["evaluate"] = evaluated.json()["flags"]
    return found


async def changes(http: httpx.AsyncClient, headers: dict[str, str], after: str, count: int) -> list[Any]:
    """The first `count` flag changes after `after`, as the stream frames them."""
    taken: list[Any] = []
    with anyio.fail_after(20):
        follow = {**headers, "Last-Event-ID": after}
        async with http.stream("GET", "/v1/flags/stream", headers=follow) as response:
            assert response.status_code == 200
            async for frame in sse_frames(response):
                if "data" in frame:
                    taken.append((int(frame["id"]), frame["event"], json.loads(frame["data"])["value"]))
                    if len(taken) == count:
                        return taken
    raise AssertionError("stream ended early")


async def put(http: httpx.AsyncClient, headers: dict[str, str], key: str, **fields: Any) -> httpx.Response:
    answer = await http.put(
        f"/v1/flags/{key}", json={**CHECKOUT, "reason": f"set {key}", **fields}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return answer


async def test_flags_survive_a_stop_a_start_and_a_kill(server: SpineServer) -> None:
    headers = server.headers
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        first = await put(http, headers, "checkout")
        await put(http, headers, "gone")
        second = await put(http, headers, "checkout", default="plain", expected_version=1)
        assert second.json()["version"] == 2
        deleted = await http.delete("/v1/flags/gone", params={"reason": "retired"}, headers=headers)
        assert deleted.status_code == 200, deleted.text
        position = deleted.headers["x-spine-position"]
        before = await snapshot(http, headers, position)
    assert [flag["key"] for flag in before["flags"]] == ["checkout"]
    assert before["evaluate"] == {
        "checkout": {"value": "new", "reason": "rule", "rule": 0, "version": 2},
        "gone": {"value": None, "reason": "not_found"},
    }
    assert [v["reason"] for v in before["gone/history"]] == ["set gone", "retired"]

    await server.stop()
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await snapshot(http, headers, position) == before
        refused = await http.put("/v1/flags/checkout", json={**CHECKOUT, "reason": "late", "expected_version": 1},
                                 headers=headers)  # fmt: skip
        assert (refused.status_code, refused.json()["error_code"]) == (409, "feature_flags.version_conflict")
        off = await put(http, headers, "checkout", enabled=False)
        assert off.json()["version"] == 3
        back = await put(http, headers, "gone", default="back")
        assert back.json()["version"] == 3  # written, deleted, written: the stream's versions survived
        position = back.headers["x-spine-position"]
        after_writes = await snapshot(http, headers, position)
    assert after_writes["evaluate"]["checkout"] == {"value": "classic", "reason": "off", "version": 3}

    await server.restart()  # SIGKILL, then start again
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await snapshot(http, headers, position) == after_writes
        # a follower that had seen the first change resumes with each later one, once
        resumed = await changes(http, headers, first.headers["x-spine-position"], 5)
    assert [(event, value) for _, event, value in resumed] == [
        ("flag.changed", "new"),  # gone, for u1
        ("flag.changed", "new"),  # checkout v2: the rule still answers u1
        ("flag.deleted", None),
        ("flag.changed", "classic"),  # checkout off
        ("flag.changed", "new"),  # gone is back
    ]
    assert [p for p, _, _ in resumed] == sorted(p for p, _, _ in resumed)
    assert resumed[-1][0] == int(position)
