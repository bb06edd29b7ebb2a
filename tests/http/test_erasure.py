"""Erasure by crypto-shredding: personal fields are sealed in the log and the views, open on every
read path, and read `[erased]` on all of them (a rebuilt view included) once the user's data key
is destroyed; other users' data stays, and data written afterwards is readable again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from domain.partition import Partition
from tests.http.conftest import LiveServer, sse_frames, start_live_server
from tests.http.test_cloud_routes import cosmos_config, dynamodb_config, firestore_config
from tests.http.test_events_api import assert_problem
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

ERASED = "[erased]"
SECRET = "ada@example.org"  # a personal value that must never be stored in the clear
ROUTED_KINDS = ("event_spine", "memory_store", "analytics_store", "key_store")


def ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def write_personal(client: TestClient | httpx.Client, headers: dict[str, str], tag: str) -> int:
    """A memory value, a session message and an analytics event, each holding `tag`; the last position."""
    ok(client.put("/v1/memory/goal", json={"value": {"email": tag}}, headers=headers))
    ok(
        client.post(
            "/v1/sessions/s1/messages", json={"role": "user", "content": f"I am {tag}"}, headers=headers
        )
    )
    answer = client.post(
        "/v1/analytics/events",
        json={"name": "signup", "platform": "web", "properties": {"email": tag}},
        headers={**headers, "X-App-Id": "app1"},
    )
    return int(ok(answer)["position"])


def read_all(client: TestClient | httpx.Client, headers: dict[str, str], position: int) -> dict[str, Any]:
    """What every read path answers for the personal fields, once the views reflect `position`."""
    wait = {**headers, "X-Spine-Min-Position": str(position)}
    events = ok(client.get("/v1/events", headers=headers))["events"]
    personal = {event["type"]: event["data"] for event in events if event["meta"].get("user_id") == "u1"}
    [memory_event] = ok(client.get("/v1/streams/memory:u1:goal", headers=headers))["events"][-1:]
    analytics = ok(client.get("/v1/analytics/events", headers={**wait, "X-App-Id": "app1"}))["events"]
    return {
        "log.memory": personal["memory.set"]["value"],
        "log.session": personal["session.message_added"]["content"],
        "log.analytics": personal["analytics.event_recorded"]["properties"],
        "stream.memory": memory_event["data"]["value"],
        "view.memory": ok(client.get("/v1/memory/goal", headers=wait))["value"],
        "view.session": ok(client.get("/v1/sessions/s1", headers=wait))["messages"][0]["content"],
        "view.analytics": analytics[0]["properties"],
    }


def erase(
    client: TestClient | httpx.Client, headers: dict[str, str], tenant: str = "t1", user: str = "u1"
) -> Any:
    return client.delete(f"/v1/tenants/{tenant}/users/{user}/data", headers=headers)


def rebuild_views(client: TestClient | httpx.Client, admin: dict[str, str]) -> None:
    for view in ("memory", "sessions", "analytics"):
        body = {"tenant_id": "t1", "project_id": "p1"}
        ok(client.post(f"/v1/projections/{view}/rebuild?wait=true", json=body, headers=admin))


def assert_erasure_everywhere(
    client: TestClient | httpx.Client, headers: dict[str, str], other: dict[str, str]
) -> None:
    """The whole story, on whatever backends the client's routes name."""
    position = write_personal(client, headers, SECRET)
    ok(client.put("/v1/memory/goal", json={"value": "u2's own"}, headers=other))
    before = read_all(client, headers, position)
    assert before == {
        "log.memory": {"email": SECRET}, "log.session": f"I am {SECRET}", "log.analytics": {"email": SECRET},
        "stream.memory": {"email": SECRET}, "view.memory": {"email": SECRET},
        "view.session": f"I am {SECRET}", "view.analytics": {"email": SECRET},
    }  # fmt: skip
    tenant_admin = provision_sync(client, user="boss", role="admin")
    answer = erase(client, tenant_admin)
    erased = ok(answer)
    assert erased == {"tenant_id": "t1", "user_id": "u1", "erased": True, "position": erased["position"]}
    assert answer.headers["x-spine-position"] == str(erased["position"])
    assert read_all(client, headers, position) == dict.fromkeys(before, ERASED)
    assert (
        ok(client.get("/v1/memory/goal", headers=other))["value"] == "u2's own"
    )  # another user's: untouched
    rebuild_views(client, admin_headers_sync(client))
    assert read_all(client, headers, position) == dict.fromkeys(before, ERASED)
    assert ok(erase(client, tenant_admin))["erased"] is True  # idempotent
    # written after the erasure: under a new key, readable
    position = write_personal(client, headers, "again")
    wait = {**headers, "X-Spine-Min-Position": str(position)}
    assert ok(client.get("/v1/memory/goal", headers=wait))["value"] == {"email": "again"}
    messages = ok(client.get("/v1/sessions/s1", headers=wait))["messages"]
    assert [m["content"] for m in messages] == [ERASED, "I am again"]


def test_erasure_reaches_every_read_path_and_a_rebuilt_view(client: TestClient, settings: Settings) -> None:
    headers, other = provision_sync(client), provision_sync(client, user="u2")
    namesake = provision_sync(client, tenant="t2")  # another tenant's user of the same id
    kept = ok(client.put("/v1/memory/goal", json={"value": "t2's own"}, headers=namesake))
    assert_erasure_everywhere(client, headers, other)
    wait = {**namesake, "X-Spine-Min-Position": str(kept["position"])}
    assert ok(client.get("/v1/memory/goal", headers=wait))["value"] == "t2's own"
    assert not _plaintext_in(settings.data_dir)  # sealed in the log and in the views, on disk


def test_the_erasure_is_audited_without_the_data(client: TestClient) -> None:
    headers = provision_sync(client)
    write_personal(client, headers, SECRET)
    auditor = provision_sync(client, user="boss", role="admin")
    erased = ok(erase(client, auditor))
    trail = ok(client.get("/v1/audit", params={"action": "user.data_erased"}, headers=auditor))["records"]
    [record] = [r for r in trail if r["action"] == "user.data_erased"]
    assert (record["actor"], record["resource"], record["details"]["user_id"]) == ("boss", "user:u1", "u1")
    assert SECRET not in json.dumps(trail)
    assert erased["position"] > 0


def test_only_the_tenants_admins_and_system_admins_erase(client: TestClient) -> None:
    member = provision_sync(client)
    other_admin = provision_sync(client, tenant="t2", user="boss2", role="admin")
    assert_problem(erase(client, member), 403, "auth.forbidden")
    assert_problem(erase(client, other_admin), 403, "auth.forbidden")  # another tenant's admin
    system = admin_headers_sync(client)
    assert ok(erase(client, system))["erased"] is True
    assert_problem(erase(client, system, tenant="nope"), 404, "tenant.not_found")
    assert_problem(erase(client, system, user="bad user"), 422, "request.invalid")


def test_a_sealed_value_a_client_sends_is_only_a_value(client: TestClient) -> None:
    """A user who sends another's sealed form (as stored) gets it back as it is: it is sealed again
    under their own key, and never opened as the first user's data."""
    u1, u2 = provision_sync(client), provision_sync(client, user="u2")
    ok(client.put("/v1/memory/goal", json={"value": SECRET}, headers=u1))
    [stored] = ok(client.get("/v1/events", params={"type": "memory.set"}, headers=u1))["events"]
    services = client.app.state.services
    sealed = client.blocking_portal.call(_stored_value, services, stored["position"])
    assert sealed["$sealed"] == "v1"
    assert SECRET not in json.dumps(sealed)
    answer = ok(
        client.put("/v1/memory/goal", json={"value": sealed}, headers=u2)
    )  # sealed again, as any value
    wait = {**u2, "X-Spine-Min-Position": str(answer["position"])}
    assert ok(client.get("/v1/memory/goal", headers=wait))["value"] == sealed  # u2 sees its own value


async def _stored_value(services: Any, position: int) -> Any:
    partition = Partition(tenant_id="t1", env="dev", project_id="p1")
    spine = await services.spines.stored_for_partition(partition, "lab")
    page = await spine.read(partition, after=position - 1, limit=1)
    return page.events[0].data["value"]


@pytest.mark.parametrize(
    ("backend", "config_of"),
    [("dynamodb", dynamodb_config), ("firestore", firestore_config), ("cosmos", cosmos_config)],
)
def test_erasure_on_a_cloud_backend(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str, config_of: Any
) -> None:
    """The log, the views and the keys on the peer: the same story."""
    config = config_of(monkeypatch)
    with TestClient(create_app(settings)) as client:
        headers, other = provision_sync(client), provision_sync(client, user="u2")
        admin = admin_headers_sync(client)
        for kind in ROUTED_KINDS:
            project = "*" if kind == "key_store" else "p1"
            route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": project,
                     "backend_type": backend, "config": config}  # fmt: skip
            ok(client.put("/v1/routes", json=route, headers=admin))
        assert_erasure_everywhere(client, headers, other)
    assert not _plaintext_in(settings.data_dir)  # nothing personal on local disk either


async def test_an_sse_frame_shows_erased_fields(settings: Settings) -> None:
    live = start_live_server(settings)
    try:
        await _follow_then_erase(live)
    finally:
        live.server.should_exit = True
        live.thread.join(timeout=10)


async def _follow_then_erase(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as sync:
        headers = provision_sync(sync)
        write_personal(sync, headers, SECRET)
        frames_before = await _frames(live, headers)
        ok(erase(sync, provision_sync(sync, user="boss", role="admin")))
        frames_after = await _frames(live, headers)
    assert [f["data"]["value"] for f in frames_before if f["type"] == "memory.set"] == [{"email": SECRET}]
    assert [f["data"]["value"] for f in frames_after if f["type"] == "memory.set"] == [ERASED]
    assert [f["data"]["content"] for f in frames_after if f["type"] == "session.message_added"] == [ERASED]
    assert SECRET not in json.dumps(frames_after)


async def _frames(live: LiveServer, headers: dict[str, str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        with anyio.fail_after(20):
            async with http.stream("GET", "/v1/events/stream", headers=headers) as response:
                assert response.status_code == 200
                async for frame in sse_frames(response):
                    if "data" in frame:
                        events.append(json.loads(frame["data"]))
                        if len(events) == 3:
                            return events
    raise AssertionError("stream ended early")


def _plaintext_in(root: Path) -> list[Path]:
    return [path for path in _files(root) if SECRET.encode() in path.read_bytes()]


def _files(root: Path) -> Iterator[Path]:
    return (path for path in root.rglob("*") if path.is_file())


def test_another_process_drops_its_cached_key_once_it_sees_the_erasure(tmp_path: Path) -> None:
    """Two services on one deployment. The first has the user's key cached; once its control
    plane reaches the second's erasure record (its follower does this on the notification, or the
    poll; here the test makes it catch up at once), it reads `[erased]` too, without a restart."""
    settings = Settings(data_dir=tmp_path, bootstrap_key=BOOTSTRAP_KEY)
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        headers = provision_sync(first)
        written = ok(first.put("/v1/memory/goal", json={"value": SECRET}, headers=headers))
        wait = {**headers, "X-Spine-Min-Position": str(written["position"])}
        assert ok(first.get("/v1/memory/goal", headers=wait))["value"] == SECRET  # cached in the first
        erased = ok(erase(second, admin_headers_sync(second)))
        projector = first.app.state.services.control.projector
        assert first.blocking_portal.call(projector.catch_up) >= erased["position"]
        assert ok(first.get("/v1/memory/goal", headers=wait))["value"] == ERASED
