"""The Python client's generic calls, which the command line is built on, against a live server."""

from __future__ import annotations

import socket

import msgspec
import pytest

from spine_client import NO_RETRY, SpineClient, SpineClientError, SpineConnectionError, SpineTimeoutError
from tests.http.conftest import LiveServer
from tests.provision import BOOTSTRAP_KEY


class Bootstrapped(msgspec.Struct):
    tenant_id: str
    user_id: str
    token: str


async def test_any_route_is_one_request_and_its_json_decodes_into_a_type(live: LiveServer) -> None:
    async with SpineClient(live.url, token=None) as anonymous:
        admin = await anonymous.request_json(
            "POST",
            "/v1/auth/bootstrap",
            json={},
            headers={"X-Bootstrap-Key": BOOTSTRAP_KEY},
            type=Bootstrapped,
        )
    assert (admin.tenant_id, admin.user_id) == ("t_system", "admin")
    async with SpineClient(live.url, token=admin.token) as client:  # no project, no surface
        assert await client.request_json("GET", "/v1/routes", params={"tenant_id": None}, type=object) == {
            "routes": []
        }
        answer = await client.request("GET", "/v1/routes/history")
        assert answer.headers["content-type"].startswith("application/json")
        with pytest.raises(SpineClientError) as missing:
            await client.request("POST", "/v1/projections/nope/rebuild", json={})
        assert (missing.value.status, missing.value.error_code) == (404, "projection.not_found")
        with pytest.raises(SpineClientError) as untyped:
            await client.request_json("GET", "/v1/routes", type=list[str])
        assert untyped.value.error_code == "client.unexpected_answer"


async def test_no_answer_is_a_connection_error_and_a_late_one_a_timeout(live: LiveServer) -> None:
    with socket.socket() as bound:  # bound, not listening: connections are refused while it is held
        bound.bind(("127.0.0.1", 0))
        refusing = f"http://127.0.0.1:{bound.getsockname()[1]}"
        async with SpineClient(refusing, token="t", retry=NO_RETRY) as client:
            with pytest.raises(SpineConnectionError) as refused:
                await client.request("GET", "/v1/routes")
        assert not isinstance(refused.value, SpineTimeoutError)
    with socket.socket() as listening:  # accepts connections, never answers
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        async with SpineClient(url, token="t", timeout=0.2, retry=NO_RETRY) as client:
            with pytest.raises(SpineTimeoutError):
                await client.request("GET", "/v1/routes")
