"""`/v1/strategy-locks/{id}/snapshots`: durable snapshots per lock, the latest and the history."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

URL = "/v1/strategy-locks/lock-1/snapshots"


def take(client: TestClient, headers: dict[str, str], state: Any, url: str = URL, **body: Any) -> Any:
    return client.post(url, json={"state": state, **body}, headers=headers)


def waited(headers: dict[str, str], answer: Any) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def test_a_snapshot_is_201_with_its_version_position_and_etag(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = take(client, headers, {"holder": "planner", "until": 10})
    assert ok(answer, 201) == {"id": "lock-1", "version": 1, "position": 1}
    assert (answer.headers["x-spine-position"], answer.headers["etag"]) == ("1", '"1"')
    assert answer.headers["x-spine-warning"] == "event_spine.missing_route, save_store.missing_route"
    second = take(client, headers, {"holder": "critic"})
    assert ok(second, 201) == {"id": "lock-1", "version": 2, "position": 2}
    latest = client.get(f"{URL}/latest", headers=waited(headers, second))
    assert (latest.headers["etag"], latest.headers["x-spine-warning"]) == ('"2"', "save_store.missing_route")
    body = latest.json()
    assert {k: body[k] for k in ("id", "version", "state", "taken_by", "position")} == {
        "id": "lock-1", "version": 2, "state": {"holder": "critic"}, "taken_by": "u1", "position": 2,
    }  # fmt: skip
    assert body["taken_at"].endswith("Z")


def test_the_history_is_every_snapshot_in_order_by_cursor(
    client: TestClient, headers: dict[str, str]
) -> None:
    for n in range(5):
        last = take(client, headers, {"n": n})
    take(client, headers, "other lock", url="/v1/strategy-locks/lock-10/snapshots")
    take(client, headers, "other lock", url="/v1/strategy-locks/lock-1:x/snapshots")
    wait = waited(headers, last)
    whole = ok(client.get(URL, headers=wait))
    assert [(s["version"], s["state"]) for s in whole["snapshots"]] == [(n + 1, {"n": n}) for n in range(5)]
    assert (whole["id"], whole["next"]) == ("lock-1", None)
    first = ok(client.get(URL, params={"limit": 2}, headers=wait))
    assert ([s["version"] for s in first["snapshots"]], first["next"]) == ([1, 2], 2)
    rest = ok(client.get(URL, params={"after": 2, "limit": 3}, headers=wait))
    assert ([s["version"] for s in rest["snapshots"]], rest["next"]) == ([3, 4, 5], None)
    assert ok(client.get(URL, params={"after": 5}, headers=wait))["snapshots"] == []
    assert_problem(client.get(URL, params={"after": "x"}, headers=wait), 400, "cursor.invalid")
    for limit in (0, 1001):
        assert_problem(client.get(URL, params={"limit": limit}, headers=wait), 422, "request.invalid")


def test_a_lock_without_snapshots_is_404(client: TestClient, headers: dict[str, str]) -> None:
    problem = assert_problem(client.get(f"{URL}/latest", headers=headers), 404, "strategy_lock.not_found")
    assert problem["id"] == "lock-1"
    assert_problem(client.get(URL, headers=headers), 404, "strategy_lock.not_found")


def test_expected_version_and_if_match_make_a_snapshot_a_compare_and_set(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert ok(take(client, headers, "a", expected_version="no_stream"), 201)["version"] == 1
    problem = assert_problem(
        take(client, headers, "b", expected_version=0), 409, "strategy_lock.version_conflict"
    )
    assert (problem["expected_version"], problem["current_version"]) == (0, 1)
    assert ok(take(client, headers, "b", expected_version=1), 201)["version"] == 2
    stale = client.post(URL, json={"state": "c"}, headers={**headers, "If-Match": '"1"'})
    assert assert_problem(stale, 409, "strategy_lock.version_conflict")["current_version"] == 2
    fresh = client.post(URL, json={"state": "c"}, headers={**headers, "If-Match": '"2"'})
    assert ok(fresh, 201)["version"] == 3
    garbage = client.post(URL, json={"state": "d"}, headers={**headers, "If-Match": "three"})
    assert_problem(garbage, 422, "request.invalid")
    disagree = client.post(
        URL, json={"state": "d", "expected_version": 3}, headers={**headers, "If-Match": '"2"'}
    )
    assert_problem(disagree, 422, "request.invalid")
    last = take(client, headers, "d", expected_version="any")
    assert ok(last, 201)["version"] == 4
    history = ok(client.get(URL, headers=waited(headers, last)))["snapshots"]
    assert [s["state"] for s in history] == ["a", "b", "c", "d"]  # the refused ones left nothing


@pytest.mark.parametrize("body", [{}, {"stat": 1}, {"state": 1, "expected_version": -1}])
def test_invalid_bodies_are_422(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> None:
    assert_problem(client.post(URL, json=body, headers=headers), 422, "request.invalid")


@pytest.mark.parametrize("lock_id", ["bad id", "-lead", "x" * 129])
def test_invalid_lock_ids_are_422(client: TestClient, headers: dict[str, str], lock_id: str) -> None:
    url = f"/v1/strategy-locks/{lock_id}/snapshots"
    assert_problem(take(client, headers, 1, url=url), 422, "request.invalid")
    assert_problem(client.get(f"{url}/latest", headers=headers), 422, "request.invalid")


def test_any_json_state_is_kept_as_sent(client: TestClient, headers: dict[str, str]) -> None:
    states = [None, 0, "s", [1, {"a": [None, True]}], {"nested": {"deep": 1.5}}]
    for state in states:
        last = take(client, headers, state)
    history = ok(client.get(URL, headers=waited(headers, last)))["snapshots"]
    assert [s["state"] for s in history] == states


def test_every_member_of_the_project_shares_its_locks(client: TestClient, headers: dict[str, str]) -> None:
    take(client, headers, "from u1")
    agent = provision_sync(client, user="agent-7", role="agent")
    theirs = take(client, agent, "from the agent", expected_version=1)
    assert ok(theirs, 201)["version"] == 2
    assert ok(client.get(f"{URL}/latest", headers=waited(headers, theirs)))["taken_by"] == "agent-7"


def test_locks_of_other_projects_and_tenants_are_invisible_and_not_writable(
    client: TestClient, headers: dict[str, str]
) -> None:
    mine = take(client, headers, "mine")
    for other in (provision_sync(client, project="p2"), provision_sync(client, tenant="t2")):
        assert_problem(client.get(f"{URL}/latest", headers=other), 404, "strategy_lock.not_found")
        assert_problem(client.get(URL, headers=other), 404, "strategy_lock.not_found")
        # their lock-1 is another lock: it starts at version 1, expecting ours is refused
        assert_problem(
            take(client, other, "theirs", expected_version=1), 409, "strategy_lock.version_conflict"
        )
        theirs = take(client, other, "theirs")
        assert ok(theirs, 201)["version"] == 1
        assert ok(client.get(f"{URL}/latest", headers=waited(other, theirs)))["state"] == "theirs"
    latest = ok(client.get(f"{URL}/latest", headers=waited(headers, mine)))
    assert (latest["version"], latest["state"]) == (1, "mine")
    assert len(ok(client.get(URL, headers=headers))["snapshots"]) == 1


@pytest.mark.parametrize(
    ("stream", "event_type"), [("strategy_lock:lock-1", "x.y"), ("mine", "strategy_lock.snapshot_taken")]
)
def test_the_events_api_refuses_lock_streams_and_types(
    client: TestClient, headers: dict[str, str], stream: str, event_type: str
) -> None:
    body = {"stream": stream, "events": [{"type": event_type, "data": {"lock_id": "lock-1", "state": 1}}]}
    assert_problem(client.post("/v1/events", json=body, headers=headers), 422, "request.invalid")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


def test_snapshots_are_in_the_audit_view(client: TestClient) -> None:
    boss = provision_sync(client, user="boss", role="admin")
    take(client, {**boss, "X-Request-Id": "r-1"}, {"secret": "state-value"})
    last = take(client, {**boss, "X-Request-Id": "r-2"}, 2, expected_version=1)
    assert take(client, boss, 3, expected_version=1).status_code == 409  # refused: not recorded
    records = ok(client.get("/v1/audit", headers=waited(boss, last)))["records"]
    assert [(r["action"], r["resource"], r["actor"], r["request_id"]) for r in records] == [
        ("strategy_lock.snapshot_taken", "strategy_lock:lock-1", "boss", "r-1"),
        ("strategy_lock.snapshot_taken", "strategy_lock:lock-1", "boss", "r-2"),
    ]
    assert "state-value" not in str(records)


def test_a_saas_tenant_without_a_tabular_store_route_is_refused_before_anything_is_appended(
    client: TestClient,
) -> None:
    saas = provision_sync(client, tenant="t9", mode="saas")
    # The spine has no route either: answering the save store's code shows the view was asked first.
    for method, path in (("POST", URL), ("GET", URL), ("GET", f"{URL}/latest")):
        answer = client.request(method, path, json={"state": 1}, headers=saas)
        problem = assert_problem(answer, 503, "save_store.missing_route")
        assert problem["resource_kind"] == "tabular_store"


def test_a_snapshot_whose_view_store_is_unavailable_appends_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    route = {"resource_kind": "tabular_store", "tenant_id": "t1", "env": "dev", "project_id": "p1",
             "backend_type": "redis", "config": {"url": "redis://127.0.0.1:6379/0"}}  # fmt: skip
    assert client.put("/v1/routes", json=route, headers=admin_headers_sync(client)).status_code == 200
    assert_problem(take(client, headers, 1), 503, "tabular_store.backend_unavailable")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


async def test_of_twenty_snapshots_expecting_one_version_exactly_one_wins(http: httpx.AsyncClient) -> None:
    assert (await http.post(URL, json={"state": "free"})).status_code == 201
    statuses: list[int] = []

    async def contender(n: int) -> None:
        answer = await http.post(URL, json={"state": f"taken by {n}", "expected_version": 1})
        statuses.append(answer.status_code)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(contender, n)
    assert sorted(statuses) == [201] + [409] * 19
    history = (await http.get(URL, headers={"X-Spine-Min-Position": "2"})).json()["snapshots"]
    assert [s["version"] for s in history] == [1, 2]
