"""Rate limits through a real `spine serve`: the limits (control-plane events) and the budgets
spent (on Redis) outlive a stop and a start, and a SIGKILL; a caller over its budget stays over it.

Windows are an hour: nothing refills while the test runs, so the counts are exact.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e


def writes(n: int) -> dict[str, Any]:
    return {"classes": {"writes": {"limit": n, "window_seconds": 3600}}}


async def admin_headers(http: httpx.AsyncClient, server: SpineServer) -> dict[str, str]:
    key = (server.data_dir / "secrets" / "bootstrap.key").read_text().strip()
    answer = await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": key})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def write(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    body = {"stream": "s", "events": [{"type": "x.done", "data": {}}]}
    return (await http.post("/v1/events", json=body, headers=headers)).status_code


async def test_limits_and_spent_budgets_survive_a_stop_a_start_and_a_kill(
    server: SpineServer, redis_url: str
) -> None:
    headers, tenant = server.headers, "t1"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        admin = await admin_headers(http, server)
        route = {"resource_kind": "rate_limit", "tenant_id": tenant, "env": "dev", "backend_type": "redis",
                 "config": {"url": redis_url, "prefix": f"test:{uuid.uuid4().hex}:"}}  # fmt: skip
        assert (await http.put("/v1/routes", json=route, headers=admin)).status_code in (200, 201)
        put = await http.put(f"/v1/tenants/{tenant}/limits", json=writes(3), headers=admin)
        assert put.status_code == 200, put.text
        limits = put.json()
        assert [await write(http, headers) for _ in range(4)] == [201, 201, 201, 429]

    await server.stop()
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        admin = await admin_headers(http, server)
        assert (await http.get(f"/v1/tenants/{tenant}/limits", headers=admin)).json() == limits
        assert await write(http, headers) == 429  # the budget was spent before the stop
        raised = await http.put(f"/v1/tenants/{tenant}/limits", json=writes(4), headers=admin)
        limits = raised.json()
        assert [await write(http, headers) for _ in range(5)] == [201, 201, 201, 201, 429]

    await server.restart()  # SIGKILL, then start again
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        admin = await admin_headers(http, server)
        assert (await http.get(f"/v1/tenants/{tenant}/limits", headers=admin)).json() == limits
        assert await write(http, headers) == 429
