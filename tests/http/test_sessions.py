"""`/v1/sessions/{id}`: ordered per-user message lists, projected from the log."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from tests.http.test_events_api import assert_problem
from tests.provision import provision_sync


def add(client: TestClient, headers: dict[str, str], session: str, content: Any, role: str = "user") -> Any:
    return client.post(
        f"/v1/sessions/{session}/messages", json={"role": role, "content": content}, headers=headers
    )


def session(client: TestClient, headers: dict[str, str], session_id: str, after: Any = None) -> Any:
    wait = {"X-Spine-Min-Position": after.headers["x-spine-position"]} if after is not None else {}
    return client.get(f"/v1/sessions/{session_id}", headers={**headers, **wait}).json()


def test_messages_come_back_in_order_with_their_index(client: TestClient, headers: dict[str, str]) -> None:
    answers = [
        add(client, headers, "chat-1", text, role)
        for text, role in [("hi", "user"), ("hello", "assistant"), ("bye", "user")]
    ]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert [a.json()["index"] for a in answers] == [0, 1, 2]
    body = session(client, headers, "chat-1", answers[-1])
    assert body["session_id"] == "chat-1"
    assert [(m["index"], m["role"], m["content"]) for m in body["messages"]] == [
        (0, "user", "hi"), (1, "assistant", "hello"), (2, "user", "bye"),
    ]  # fmt: skip
    assert body["messages"][0]["metadata"] == {}


def test_an_unknown_session_is_empty(client: TestClient, headers: dict[str, str]) -> None:
    assert session(client, headers, "never") == {"session_id": "never", "messages": []}


def test_sessions_whose_ids_share_a_prefix_stay_apart(client: TestClient, headers: dict[str, str]) -> None:
    add(client, headers, "s1", "one")
    last = add(client, headers, "s10", "ten")
    assert [m["content"] for m in session(client, headers, "s1", last)["messages"]] == ["one"]
    assert [m["content"] for m in session(client, headers, "s10", last)["messages"]] == ["ten"]


def test_another_users_session_of_the_same_id_is_theirs(client: TestClient, headers: dict[str, str]) -> None:
    mine = add(client, headers, "chat", "mine")
    other = provision_sync(client, user="u2")
    assert session(client, other, "chat", mine)["messages"] == []
    theirs = add(client, other, "chat", "theirs")
    assert theirs.json()["index"] == 0
    assert [m["content"] for m in session(client, headers, "chat", theirs)["messages"]] == ["mine"]


@pytest.mark.parametrize(("session_id", "body"), [("bad id", {"role": "user", "content": "x"}), ("s", {"role": "User!", "content": "x"}), ("s", {"content": "x"})], ids=["id", "role", "no-role"])  # fmt: skip
def test_invalid_messages_are_422(
    client: TestClient, headers: dict[str, str], session_id: str, body: dict[str, Any]
) -> None:
    assert_problem(
        client.post(f"/v1/sessions/{session_id}/messages", json=body, headers=headers), 422, "request.invalid"
    )


async def test_concurrent_writers_get_distinct_indices(http: httpx.AsyncClient) -> None:
    indices: list[int] = []

    async def writer(n: int) -> None:
        answer = await http.post("/v1/sessions/busy/messages", json={"role": "user", "content": n})
        assert answer.status_code == 201
        indices.append(answer.json()["index"])

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(writer, n)
    assert sorted(indices) == list(range(20))
    head = (await http.get("/v1/events", params={"limit": 1})).json()["head"]
    body = (await http.get("/v1/sessions/busy", headers={"X-Spine-Min-Position": str(head)})).json()
    assert [m["index"] for m in body["messages"]] == list(range(20))
