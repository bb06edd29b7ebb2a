"""Saves and strategy-lock snapshots survive `spine serve` stopping (or being SIGKILLed) and
starting again on the same data dir: every acknowledged version is read back, history included."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e

FLOW = "/v1/saves/flows/plan"
LOCK = "/v1/strategy-locks/lock-1/snapshots"


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


async def reads(server: SpineServer, position: str) -> dict[str, Any]:
    """Everything a client can read back, once the views reflect `position`."""
    wait = {**server.headers, "X-Spine-Min-Position": position}
    async with httpx.AsyncClient(base_url=server.url, headers=wait, timeout=10) as http:
        latest = await http.get(FLOW)
        return {
            "latest": (latest.status_code, latest.json()),
            "list": ok(await http.get("/v1/saves/flows")),
            "versions": ok(await http.get(f"{FLOW}/versions")),
            "version 1": ok(await http.get(f"{FLOW}/versions/1")),
            "lock": ok(await http.get(f"{LOCK}/latest")),
            "snapshots": ok(await http.get(LOCK)),
        }


async def test_saves_and_snapshots_are_read_back_after_a_stop_and_after_a_kill(server: SpineServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=10) as http:
        ok(
            await http.post("/v1/saves/flows", json={"id": "plan", "name": "Plan", "body": {"steps": [1]}}),
            201,
        )
        ok(await http.put(FLOW, json={"name": "Plan", "body": {"steps": [1, 2]}, "expected_version": 1}))
        ok(await http.post(LOCK, json={"state": {"holder": "planner"}}), 201)
        last = await http.post(LOCK, json={"state": {"holder": "critic"}, "expected_version": 1})
        ok(last, 201)
    position = last.headers["x-spine-position"]
    before = await reads(server, position)
    assert before["latest"][1]["body"] == {"steps": [1, 2]}
    assert [v["version"] for v in before["versions"]["versions"]] == [1, 2]
    assert before["lock"]["state"] == {"holder": "critic"}

    await server.stop()
    await server.start()
    assert await reads(server, position) == before

    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=10) as http:
        deleted = ok(await http.delete(FLOW, headers={"If-Match": '"2"'}))
        assert deleted["version"] == 3
        stale = await http.post(LOCK, json={"state": "late", "expected_version": 1})  # decided on the log
        assert (stale.status_code, stale.json()["current_version"]) == (409, 2)
        third = await http.post(LOCK, json={"state": {"holder": "executor"}, "expected_version": 2})
        ok(third, 201)
    await server.kill()  # SIGKILL: only what was acknowledged is durable, and all of it is
    await server.start()
    after = await reads(server, third.headers["x-spine-position"])
    assert after["latest"][0] == 404
    assert (after["latest"][1]["error_code"], after["latest"][1]["version"]) == ("save_store.not_found", 3)
    assert after["list"]["saves"] == []
    assert [v["change"] for v in after["versions"]["versions"]] == ["created", "updated", "deleted"]
    assert after["version 1"] == before["version 1"]
    assert [s["state"] for s in after["snapshots"]["snapshots"]] == [
        {"holder": "planner"},
        {"holder": "critic"},
        {"holder": "executor"},
    ]
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=10) as http:
        # the versions continue from the log after the restart: the save comes back as version 4
        assert (
            ok(await http.put(FLOW, json={"name": "Plan", "body": "again", "expected_version": 3}))["version"]
            == 4
        )
