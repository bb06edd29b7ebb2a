"""`PUT /v1/routes` with `expected_version`: a route written on what an operator read, so that a
change made since (another operator's, a racing request's) is refused, never undone unseen."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from litestar.testing import TestClient

from tests.http.conftest import LiveServer
from tests.http.test_events_api import assert_problem
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision, provision_sync

ROUTE = {"resource_kind": "event_spine", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite"}


def routes(client: TestClient[Any], admin: dict[str, str]) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = client.get("/v1/routes", headers=admin).json()["routes"]
    return listed


def history(client: TestClient[Any], admin: dict[str, str]) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = client.get("/v1/routes/history", headers=admin).json()["changes"]
    return changes


def test_a_write_on_a_stale_version_is_refused_and_appends_nothing(client: TestClient[Any]) -> None:
    provision_sync(client)
    admin = admin_headers_sync(client)
    created = client.put(
        "/v1/routes", json={**ROUTE, "config": {"path": "a.db"}, "expected_version": 0}, headers=admin
    )
    assert (created.status_code, created.json()["version"]) == (200, 1), created.text
    assert [route["version"] for route in routes(client, admin)] == [1]

    twice = client.put(
        "/v1/routes", json={**ROUTE, "config": {"path": "b.db"}, "expected_version": 0}, headers=admin
    )
    problem = assert_problem(twice, 409, "routing.version_conflict")
    assert (problem["expected_version"], problem["current_version"]) == (0, 1)
    assert routes(client, admin)[0]["config"] == {"path": "a.db"}
    assert len(history(client, admin)) == 1

    switched = client.put(
        "/v1/routes", json={**ROUTE, "config": {"path": "b.db"}, "expected_version": 1}, headers=admin
    )
    assert (switched.json()["version"], switched.json()["switched"]) == (2, True)
    unchecked = client.put("/v1/routes", json={**ROUTE, "config": {"path": "c.db"}}, headers=admin)
    assert unchecked.json()["version"] == 3  # no expected version: the write replaces what is there

    # A deleted route has no version: re-creating it expects 0, as a route never written does.
    params = {"resource_kind": "event_spine", "tenant_id": "t1", "env": "dev"}
    assert client.delete("/v1/routes", params=params, headers=admin).status_code == 200
    stale = client.put(
        "/v1/routes", json={**ROUTE, "config": {"path": "d.db"}, "expected_version": 3}, headers=admin
    )
    assert assert_problem(stale, 409, "routing.version_conflict")["current_version"] == 0
    again = client.put(
        "/v1/routes", json={**ROUTE, "config": {"path": "d.db"}, "expected_version": 0}, headers=admin
    )
    assert (again.status_code, again.json()["version"]) == (200, 5)

    negative = client.put(
        "/v1/routes", json={**ROUTE, "config": {"path": "e.db"}, "expected_version": -1}, headers=admin
    )
    assert_problem(negative, 422, "request.invalid")


async def test_of_racing_writes_on_one_version_exactly_one_wins(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        await provision(http)
        answer = await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": BOOTSTRAP_KEY})
        http.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        first = await http.put("/v1/routes", json={**ROUTE, "config": {"path": "start.db"}})
        assert first.json()["version"] == 1
        answers: dict[str, httpx.Response] = {}

        async def write(name: str) -> None:
            body = {
                **ROUTE,
                "config": {"path": f"{name}.db"},
                "switch_rationale": name,
                "expected_version": 1,
            }
            answers[name] = await http.put("/v1/routes", json=body)

        async with anyio.create_task_group() as writers:
            for n in range(8):
                writers.start_soon(write, f"writer-{n}")

        won = [name for name, answer in answers.items() if answer.status_code == 200]
        assert len(won) == 1, {name: answer.text for name, answer in answers.items()}
        for name, answer in answers.items():
            if name not in won:
                assert_problem(answer, 409, "routing.version_conflict")
        [route] = (await http.get("/v1/routes")).json()["routes"]
        assert (route["config"], route["version"]) == ({"path": f"{won[0]}.db"}, 2)
        changes = (await http.get("/v1/routes/history")).json()["changes"]
        assert [change["rationale"] for change in changes] == [None, won[0]]
