"""KPIs through a real `spine serve`: definitions and series that were acknowledged read back the
same after a stop and a start on the same data dir, and after a SIGKILL; values recorded after each
restart add to the same rollups (the projection resumes from its checkpoint, counting nothing
twice), definition versions go on, and a retried value id is still recorded once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e


async def snapshot(http: httpx.AsyncClient, headers: dict[str, str], position: str) -> dict[str, Any]:
    """The KPI's definition, and its series by day and by hour per run, once the view reflects
    `position`."""
    waited = {**headers, "X-Spine-Min-Position": position}
    found: dict[str, Any] = {}
    definition = await http.get("/v1/kpis/latency", headers=waited)
    assert definition.status_code == 200, definition.text
    found["definition"] = definition.json()
    for bucket, dimension in (("day", "none"), ("hour", "run"), ("minute", "app")):
        answer = await http.get(
            "/v1/kpis/latency/series", params={"bucket": bucket, "dimension": dimension}, headers=waited
        )
        assert answer.status_code == 200, answer.text
        found[f"{bucket}/{dimension}"] = answer.json()["series"]
    return found


def day_total(found: dict[str, Any]) -> tuple[int, float]:
    [series] = found["day/none"]
    return sum(p["count"] for p in series["points"]), sum(p["sum"] for p in series["points"])


async def test_kpis_survive_a_stop_a_start_and_a_kill(server: SpineServer) -> None:
    headers = {**server.headers, "X-App-Id": "app1"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        defined = await http.put(
            "/v1/kpis/latency", json={"unit": "ms", "aggregation": "p95"}, headers=headers
        )
        assert defined.status_code == 200, defined.text
        values = [{"value": n * 2.5, "run_id": f"run-{n % 3}"} for n in range(30)]
        batch = await http.post("/v1/kpis/latency/values", json={"values": values}, headers=headers)
        assert batch.status_code == 201, batch.text
        single = await http.post(
            "/v1/kpis/latency/values", json={"value": 100, "id": "once"}, headers=headers
        )
        assert single.status_code == 201, single.text
        before = await snapshot(http, headers, single.headers["x-spine-position"])
    assert day_total(before) == (31, sum(n * 2.5 for n in range(30)) + 100)
    assert before["definition"]["aggregation"] == "p95"

    await server.stop()
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await snapshot(http, headers, single.headers["x-spine-position"]) == before
        retried = await http.post(
            "/v1/kpis/latency/values", json={"value": 100, "id": "once"}, headers=headers
        )
        assert retried.json() == single.json()  # the retry answers the value stored before the stop
        more = await http.post(
            "/v1/kpis/latency/values", json={"value": 7, "run_id": "run-0"}, headers=headers
        )
        assert more.status_code == 201, more.text
        redefined = await http.put(
            "/v1/kpis/latency",
            json={"unit": "ms", "aggregation": "max"},
            headers={**headers, "If-Match": '"1"'},
        )
        assert redefined.json()["version"] == 2, redefined.text
        position = redefined.headers["x-spine-position"]
        after_writes = await snapshot(http, headers, position)
    assert day_total(after_writes) == (32, day_total(before)[1] + 7)
    assert max(p["value"] for p in after_writes["day/none"][0]["points"]) == 100.0  # the new aggregation: max

    await server.restart()  # SIGKILL, then start again
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await snapshot(http, headers, position) == after_writes
        last = await http.post("/v1/kpis/latency/values", json={"value": 1}, headers=headers)
        assert last.status_code == 201, last.text
        final = await snapshot(http, headers, last.headers["x-spine-position"])
    assert day_total(final) == (33, day_total(after_writes)[1] + 1)
