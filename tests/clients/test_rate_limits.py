"""The Python client's rate-limit methods against a live server: limits set and read back, and a
request over its budget raised with the server's code and `Retry-After` (too far off to retry)."""

from __future__ import annotations

import uuid

import pytest

from spine_client import SpineClient, SpineClientError
from tests.clients.conftest import TENANT
from tests.http.conftest import LiveServer


async def test_rate_limits(live: LiveServer, admin_token: str, client: SpineClient, redis_url: str) -> None:
    hourly = {"limit": 1, "window_seconds": 3600}
    async with SpineClient(live.url, token=admin_token) as admin:
        await admin.set_route("rate_limit", TENANT, "dev", "redis",
                              config={"url": redis_url, "prefix": f"test:{uuid.uuid4().hex}:"})  # fmt: skip
        written = await admin.set_limits(
            TENANT, classes={"writes": hourly}, on_unavailable={"writes": "open"}
        )
        read = await admin.get_limits(TENANT)
    assert read == written
    assert (read["classes"], read["on_unavailable"]["writes"], read["on_unavailable"]["reads"]) == (
        {"writes": hourly},
        "open",
        "open",
    )
    await client.append("s", [{"type": "x.done", "data": {}}])
    with pytest.raises(SpineClientError) as refused:
        await client.append("s", [{"type": "x.done", "data": {}}])
    assert (refused.value.status, refused.value.error_code) == (429, "rate_limit.exceeded")
    assert refused.value.retry_after is not None
    assert refused.value.retry_after > 30  # past the client's retry deadline: raised at once
