"""The realtime registry through a real `spine serve`: ownership, members and messages that were
acknowledged read back after a stop and a start on the same data dir, and after a SIGKILL; the
owner's rules still hold after each (they are decided on the log, which is what survives)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer
from tests.provision import provision

pytestmark = pytest.mark.e2e


async def people(server: SpineServer, http: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    """u1 (the server's own member), u2 and u3, and a tenant admin a1, each a token of t1."""
    key = (server.data_dir / "secrets" / "bootstrap.key").read_text().strip()
    found = {"u1": server.headers}
    for user, role in (("u2", "member"), ("u3", "member"), ("a1", "admin")):
        found[user] = await provision(http, user=user, role=role, bootstrap_key=key)
    return found


async def snapshot(
    http: httpx.AsyncClient, users: dict[str, dict[str, str]], position: str
) -> dict[str, Any]:
    """What each user reads of the registry and the messages, once the view reflects `position`."""
    found: dict[str, Any] = {}
    for user, headers in users.items():
        waited = {**headers, "X-Spine-Min-Position": position}
        for path in ("/v1/threads", "/v1/threads/t-1", "/v1/threads/t-1/messages", "/v1/canvases"):
            answer = await http.get(path, headers=waited)
            found[f"{user} {path}"] = (answer.status_code, answer.json())
    return found


async def ok(answer: Any, status: int = 200) -> dict[str, Any]:
    response: httpx.Response = await answer
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body | {"_position": response.headers["x-spine-position"]}


async def refused(answer: Any, status: int, code: str) -> None:
    response: httpx.Response = await answer
    assert (response.status_code, response.json()["error_code"]) == (status, code), response.text


async def test_ownership_members_and_messages_survive_a_stop_a_start_and_a_kill(server: SpineServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        users = await people(server, http)
        u1, u2, u3, a1 = (users[u] for u in ("u1", "u2", "u3", "a1"))
        await ok(
            http.post("/v1/threads", json={"id": "t-1", "title": "Launch", "members": ["u2"]}, headers=u1),
            201,
        )
        await ok(http.post("/v1/threads/t-1/messages", json={"content": "hi", "id": "m-1"}, headers=u2), 201)
        await ok(
            http.patch("/v1/threads/t-1", json={"add_members": ["u3"]}, headers={**u1, "If-Match": '"1"'})
        )
        await ok(http.post("/v1/canvases", json={"id": "c-1", "members": ["u3"]}, headers=u1), 201)
        last = await ok(http.post("/v1/threads/t-1/messages", json={"content": "there"}, headers=u3), 201)
        position = last["_position"]
        before = await snapshot(http, users, position)
    entry = before["u2 /v1/threads/t-1"][1]
    assert (entry["owner"], entry["members"], entry["version"]) == ("u1", ["u1", "u2", "u3"], 3)
    assert [m["content"] for m in before["u1 /v1/threads/t-1/messages"][1]["messages"]] == ["hi", "there"]
    assert before["a1 /v1/threads/t-1/messages"][0] == 403

    await server.stop()
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await snapshot(http, users, position) == before
        # the rules still hold: decided on the log, which survived
        await refused(
            http.patch("/v1/threads/t-1", json={"title": "mine"}, headers=u2), 403, "realtime.not_owner"
        )
        await refused(http.patch("/v1/threads/t-1", json={"title": "x", "expected_version": 1}, headers=u1),
                      409, "realtime.version_conflict")  # fmt: skip
        again = await ok(
            http.post("/v1/threads/t-1/messages", json={"content": "hi", "id": "m-1"}, headers=u2), 201
        )
        assert again["version"] == 2  # a retry across the restart: the original
        moved = await ok(http.patch("/v1/threads/t-1", json={"owner": "u2"}, headers=a1))
        assert moved["changes"] == ["thread.owner_transferred"]
        left = await ok(
            http.patch("/v1/threads/t-1", json={"remove_members": ["u1"]}, headers={**u2, "If-Match": '"5"'})
        )
        position = left["_position"]
        after_writes = await snapshot(http, users, position)
    entry = after_writes["u3 /v1/threads/t-1"][1]
    assert (entry["owner"], entry["members"], entry["version"]) == ("u2", ["u2", "u3"], 6)
    assert after_writes["u1 /v1/threads/t-1"][0] == 403

    await server.restart()  # SIGKILL, then start again
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await snapshot(http, users, position) == after_writes
        await refused(http.post("/v1/threads/t-1/messages", json={"content": "back?"}, headers=u1),
                      403, "realtime.not_member")  # fmt: skip
        archived = await ok(http.patch("/v1/threads/t-1", json={"archived": True}, headers=u2))
        assert (archived["version"], archived["changes"]) == (7, ["thread.archived"])
        await refused(
            http.post("/v1/threads/t-1/messages", json={"content": "late"}, headers=u3),
            409,
            "realtime.archived",
        )
