"""The Python clients' retention methods against a live server: rules written by a tenant admin,
read by a member, a dry run and a run, and a member's run refused with the server's code."""

from __future__ import annotations

import httpx
import pytest

from spine_client import SpineClient, SpineClientError, SyncSpineClient
from tests.clients.conftest import APP, PROJECT, SURFACE, TENANT
from tests.http.conftest import LiveServer
from tests.provision import provision_sync


async def test_retention(live: LiveServer, client: SpineClient) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as http:
        token = provision_sync(
            http, tenant=TENANT, project=PROJECT, surface=SURFACE, user="boss", role="admin"
        )
    async with SpineClient(
        live.url, token=token["Authorization"].removeprefix("Bearer "), project_id=PROJECT, surface_id=SURFACE
    ) as boss:
        rules = [{"stream_prefix": "chat:", "keep_last": 1}]
        written = await boss.set_retention(rules)
        assert written["rules"] == [{"stream_prefix": "chat:", "keep_last": 1, "max_age_days": None}]
        for _ in range(3):
            await client.append("chat:1", [{"type": "said", "data": {}}])
        assert (await boss.run_retention(dry_run=True))["planned"] == 2
        assert (await boss.run_retention())["removed"] == 2
    assert (await client.get_retention())["truncated_through"] == 2
    with pytest.raises(SpineClientError) as refused:
        await client.run_retention()
    assert (refused.value.status, refused.value.error_code) == (403, "auth.forbidden")


def test_retention_sync(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as http:
        token = provision_sync(
            http, tenant=TENANT, project=PROJECT, surface=SURFACE, user="boss", role="admin"
        )
    with SyncSpineClient(
        live.url, token=token["Authorization"].removeprefix("Bearer "), project_id=PROJECT, surface_id=SURFACE,
        app_id=APP,
    ) as boss:  # fmt: skip
        assert boss.get_retention()["rules"] == []
        assert boss.run_retention(dry_run=True)["planned"] == 0
