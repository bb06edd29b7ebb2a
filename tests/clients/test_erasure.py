"""The Python client's erasure: an admin erases a user's data, and the user's memory reads
`[erased]` through the client from then on."""

from __future__ import annotations

from spine_client import SpineClient
from tests.clients.conftest import TENANT, USER
from tests.http.conftest import LiveServer


async def test_erase_user_data(live: LiveServer, admin_token: str, client: SpineClient) -> None:
    written = await client.set_memory("goal", {"email": "ada@example.org"})
    assert (await client.get_memory("goal", min_position=written.position)).value == {
        "email": "ada@example.org"
    }
    async with SpineClient(live.url, token=admin_token) as admin:
        erased = await admin.erase_user_data(TENANT, USER)
        assert (erased["tenant_id"], erased["user_id"], erased["erased"]) == (TENANT, USER, True)
        assert (await admin.erase_user_data(TENANT, USER))["erased"] is True  # idempotent
    assert (await client.get_memory("goal")).value == "[erased]"
