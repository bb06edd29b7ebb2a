"""Analytics through a real `spine serve` process: what was acknowledged is read back after a clean
stop and after a SIGKILL, and a batch retried after the restart appends nothing twice."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(server: SpineServer) -> SpineServer:
    server.headers = {**server.headers, "X-App-Id": "app1"}  # provisioning made app1; the routes need it
    return server


async def views(server: SpineServer, position: int) -> tuple[Any, Any]:
    """The events and the counts, read once the view reflects `position`."""
    wait = {**server.headers, "X-Spine-Min-Position": str(position)}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        found = await http.get("/v1/analytics/events", params={"limit": 1000}, headers=wait)
        counted = await http.get("/v1/analytics/counts", headers=wait)
    assert found.status_code == counted.status_code == 200, found.text + counted.text
    return found.json(), counted.json()


async def test_analytics_survive_a_stop_and_a_sigkill(server: SpineServer) -> None:
    sent = [
        {"name": "view" if i % 3 else "buy", "platform": "web", "id": f"e{i}", "run_id": "r1"}
        for i in range(9)
    ]
    async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=server.headers) as http:
        one = await http.post(
            "/v1/analytics/events", json={"name": "open", "platform": "ios", "utm_source": "ad"}
        )
        assert one.status_code == 201, one.text
        many = await http.post("/v1/analytics/events/batch", json={"events": sent})
        assert many.status_code == 201, many.text
    last = many.json()["position"]
    before = await views(server, last)
    assert len(before[0]["events"]) == 10
    assert sorted((c["name"], c["count"]) for c in before[1]["counts"]) == [
        ("buy", 3),
        ("open", 1),
        ("view", 6),
    ]

    await server.stop()
    await server.start()
    assert await views(server, last) == before

    await server.kill()  # a crash: no shutdown hooks
    await server.start()
    assert await views(server, last) == before
    async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=server.headers) as http:
        retried = await http.post("/v1/analytics/events/batch", json={"events": sent})
        assert retried.status_code == 201, retried.text
        assert retried.json() == many.json()  # the original ids and positions: nothing appended twice
        head = (await http.get("/v1/events", params={"limit": 1})).json()["head"]
    assert head == last
    assert await views(server, last) == before
