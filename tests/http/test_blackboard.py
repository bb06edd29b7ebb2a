"""`/v1/runs/{run}/blackboard`: shared versioned entries, compare-and-set on the entry's stream."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from tests.http.test_events_api import assert_problem
from tests.provision import provision_sync

URL = "/v1/runs/run-1/blackboard"


def write(client: TestClient, headers: dict[str, str], key: str, value: Any, **body: Any) -> Any:
    return client.put(f"{URL}/{key}", json={"value": value, **body}, headers=headers)


def waited(headers: dict[str, str], answer: Any) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def test_entries_are_versioned_with_an_etag(client: TestClient, headers: dict[str, str]) -> None:
    first = write(client, headers, "plan", {"step": 1})
    assert (first.json()["version"], first.headers["etag"]) == (1, '"1"')
    second = write(client, headers, "plan", {"step": 2}, expected_version=1)
    assert second.json()["version"] == 2
    entry = client.get(f"{URL}/plan", headers=waited(headers, second))
    assert entry.headers["etag"] == '"2"'
    assert (entry.json()["value"], entry.json()["version"], entry.json()["written_by"]) == (
        {"step": 2},
        2,
        "u1",
    )


def test_a_stale_expected_version_is_409_with_the_current_one(
    client: TestClient, headers: dict[str, str]
) -> None:
    write(client, headers, "plan", 1)
    write(client, headers, "plan", 2)
    problem = assert_problem(
        write(client, headers, "plan", 3, expected_version=1), 409, "blackboard.version_conflict"
    )
    assert problem["current_version"] == 2
    assert_problem(write(client, headers, "fresh", 1, expected_version=5), 409, "blackboard.version_conflict")


def test_if_match_is_a_compare_and_set_too(client: TestClient, headers: dict[str, str]) -> None:
    write(client, headers, "plan", 1)
    ok = client.put(f"{URL}/plan", json={"value": 2}, headers={**headers, "If-Match": '"1"'})
    assert ok.json()["version"] == 2
    stale = client.put(f"{URL}/plan", json={"value": 3}, headers={**headers, "If-Match": '"1"'})
    assert_problem(stale, 409, "blackboard.version_conflict")
    garbage = client.put(f"{URL}/plan", json={"value": 3}, headers={**headers, "If-Match": "abc"})
    assert_problem(garbage, 422, "request.invalid")


def test_an_absent_entry_is_404_and_a_board_lists_its_run_only(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert_problem(client.get(f"{URL}/nothing", headers=headers), 404, "blackboard.not_found")
    write(client, headers, "b", 2)
    write(client, headers, "a", 1)
    last = client.put("/v1/runs/run-10/blackboard/a", json={"value": "other run"}, headers=headers)
    board = client.get(URL, headers=waited(headers, last)).json()
    assert board["run_id"] == "run-1"
    assert [(e["key"], e["value"]) for e in board["entries"]] == [("a", 1), ("b", 2)]


def test_every_member_of_the_project_shares_the_board(client: TestClient, headers: dict[str, str]) -> None:
    written = write(client, headers, "plan", "from u1")
    agent = provision_sync(client, user="agent-7", role="agent")
    assert client.get(f"{URL}/plan", headers=waited(agent, written)).json()["value"] == "from u1"
    assert write(client, agent, "plan", "from the agent", expected_version=1).json()["version"] == 2


@pytest.mark.parametrize("key", ["bad key", "-lead"])
def test_invalid_keys_are_422(client: TestClient, headers: dict[str, str], key: str) -> None:
    assert_problem(write(client, headers, key, 1), 422, "request.invalid")


async def test_of_twenty_writers_expecting_one_version_exactly_one_wins(http: httpx.AsyncClient) -> None:
    assert (await http.put(f"{URL}/lock", json={"value": "free"})).status_code == 200
    statuses: list[int] = []

    async def contender(n: int) -> None:
        answer = await http.put(f"{URL}/lock", json={"value": f"taken by {n}", "expected_version": 1})
        statuses.append(answer.status_code)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(contender, n)
    assert sorted(statuses) == [200] + [409] * 19
