"""`/v1/projections`: positions and lag of every running view, and blue-green rebuilds."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync


def remember(client: TestClient, headers: dict[str, str], count: int) -> Any:
    answer = None
    for i in range(count):
        answer = client.put(f"/v1/memory/k{i % 5}", json={"value": i}, headers=headers)
        assert answer.status_code == 200, answer.text
    return answer


def caught_up_read(client: TestClient, headers: dict[str, str], key: str, write: Any) -> Any:
    wait = {**headers, "X-Spine-Min-Position": write.headers["x-spine-position"]}
    return client.get(f"/v1/memory/{key}", headers=wait).json()


def views(client: TestClient, admin: dict[str, str], **params: str) -> list[dict[str, Any]]:
    answer = client.get("/v1/projections", params=params, headers=admin)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["projections"])


def test_each_running_view_reports_its_position_head_and_lag(
    client: TestClient, headers: dict[str, str]
) -> None:
    last = remember(client, headers, 7)
    caught_up_read(client, headers, "k0", last)
    [memory] = views(client, admin_headers_sync(client), name="memory")
    position = int(last.headers["x-spine-position"])
    assert (memory["tenant_id"], memory["env"], memory["project_id"]) == ("t1", "dev", "p1")
    assert (memory["generation"], memory["position"], memory["head"], memory["lag"]) == (
        0,
        position,
        position,
        0,
    )
    assert memory["rebuild"] is None


def test_operators_only_and_each_tenant_admin_sees_their_own(
    client: TestClient, headers: dict[str, str]
) -> None:
    remember(client, headers, 1)
    assert_problem(client.get("/v1/projections", headers=headers), 403, "auth.forbidden")
    other = provision_sync(client, tenant="t2", user="boss", role="admin")
    remember(client, other, 1)
    assert {v["tenant_id"] for v in views(client, other)} == {"t2"}
    assert_problem(
        client.get("/v1/projections", params={"tenant_id": "t1"}, headers=other), 403, "auth.forbidden"
    )
    assert {v["tenant_id"] for v in views(client, admin_headers_sync(client))} == {"t1", "t2"}
    answer = client.post("/v1/projections/memory/rebuild?wait=true", json={"tenant_id": "t1"}, headers=other)
    assert_problem(answer, 403, "auth.forbidden")


def test_an_unknown_view_is_404(client: TestClient) -> None:
    answer = client.post("/v1/projections/nope/rebuild", headers=admin_headers_sync(client))
    assert_problem(answer, 404, "projection.not_found")


def test_a_rebuild_swaps_in_a_new_generation_that_reads_the_same(
    client: TestClient, headers: dict[str, str]
) -> None:
    last = remember(client, headers, 40)
    before = [caught_up_read(client, headers, f"k{i}", last) for i in range(5)]
    admin = admin_headers_sync(client)
    for generation in (1, 2):
        answer = client.post("/v1/projections/memory/rebuild?wait=true", headers=admin)
        assert answer.status_code == 202, answer.text
        [view] = answer.json()["projections"]
        assert (view["generation"], view["rebuild"]["state"], view["rebuild"]["generation"]) == (
            generation, "swapped", generation)  # fmt: skip
        assert view["rebuild"]["position"] == view["head"] == int(last.headers["x-spine-position"])
        assert [caught_up_read(client, headers, f"k{i}", last) for i in range(5)] == before
    more = remember(client, headers, 1)  # the new generation goes on live
    assert caught_up_read(client, headers, "k0", more)["value"] == 0


def test_a_rebuild_can_name_a_partition_no_request_has_touched(
    client: TestClient, headers: dict[str, str]
) -> None:
    admin = admin_headers_sync(client)
    body = {"tenant_id": "t1", "project_id": "p1", "env": "dev"}
    answer = client.post("/v1/projections/blackboard/rebuild?wait=true", json=body, headers=admin)
    assert answer.status_code == 202, answer.text
    [view] = answer.json()["projections"]
    assert (view["name"], view["project_id"], view["generation"], view["rebuild"]["state"]) == (
        "blackboard", "p1", 1, "swapped")  # fmt: skip
    unknown = client.post(
        "/v1/projections/blackboard/rebuild", json={**body, "tenant_id": "t9"}, headers=admin
    )
    assert_problem(unknown, 404, "tenant.not_found")


def test_lag_and_apply_delay_are_in_metrics(client: TestClient, headers: dict[str, str]) -> None:
    caught_up_read(client, headers, "k0", remember(client, headers, 3))
    text = client.get("/metrics").text
    assert 'spine_projection_lag_events{projection="memory"} 0.0' in text
    assert 'spine_projection_runners{projection="memory"} 1.0' in text
    assert 'spine_projection_delay_seconds_count{projection="memory"}' in text


def test_a_restart_starts_the_known_views_from_their_checkpoints(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        headers = provision_sync(client)
        last = remember(client, headers, 9)
        caught_up_read(client, headers, "k0", last)
        rebuilt = client.post("/v1/projections/memory/rebuild?wait=true", headers=admin_headers_sync(client))
        assert rebuilt.json()["projections"][0]["generation"] == 1
    with TestClient(create_app(settings)) as client:
        # no data request yet: the view runs because the store knows it, in the generation it had
        [memory] = views(client, admin_headers_sync(client), name="memory")
        assert (memory["project_id"], memory["generation"]) == ("p1", 1)
        assert caught_up_read(client, headers, "k3", last) == {
            "key": "k3",
            "value": 8,
            "found": True,
            "expires_at": None,
        }


@pytest.mark.parametrize(
    ("kind", "method", "path", "body"),
    [
        ("memory_store", "PUT", "/v1/memory/k", {"value": 1}),
        ("memory_store", "POST", "/v1/sessions/s1/messages", {"role": "user", "content": "hi"}),
        ("blackboard_store", "PUT", "/v1/runs/r1/blackboard/k", {"value": 1}),
        ("audit", "POST", "/v1/audit", {"action": "note.added", "resource": "note:1"}),
    ],
)
def test_a_write_whose_view_cannot_be_served_appends_nothing(
    client: TestClient, headers: dict[str, str], kind: str, method: str, path: str, body: dict[str, Any]
) -> None:
    """The view store is resolved before the append: a 503 never leaves an event behind."""
    route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": "p1",
             "backend_type": "redis", "config": {"url": "redis://127.0.0.1:6379/0"}}  # fmt: skip
    assert client.put("/v1/routes", json=route, headers=admin_headers_sync(client)).status_code == 200
    assert_problem(
        client.request(method, path, json=body, headers=headers), 503, f"{kind}.backend_unavailable"
    )
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


def test_after_the_event_spine_is_routed_elsewhere_views_are_rebuilt_from_the_new_log(
    client: TestClient, headers: dict[str, str], tmp_path: Any
) -> None:
    old = remember(client, headers, 3)  # k0, k1, k2 in the embedded log
    assert caught_up_read(client, headers, "k0", old)["found"]
    admin = admin_headers_sync(client)
    route = {"resource_kind": "event_spine", "tenant_id": "t1", "env": "dev", "project_id": "p1",
             "backend_type": "sqlite", "config": {"path": "p1.db"}}  # fmt: skip
    assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
    new = client.put("/v1/memory/fresh", json={"value": "new log"}, headers=headers)
    assert new.headers["x-spine-position"] == "1"  # a log of its own: positions start again
    [started] = views(client, admin, name="memory")
    assert started["rebuild"] is not None  # the write that met the new route started it
    # the write started a rebuild from the new log; this one waits for it (or, if it is done, is another)
    [view] = client.post("/v1/projections/memory/rebuild?wait=true", headers=admin).json()["projections"]
    assert (view["head"], view["position"], view["rebuild"]["state"]) == (1, 1, "swapped")
    assert caught_up_read(client, headers, "fresh", new)["value"] == "new log"
    assert caught_up_read(client, headers, "k0", new)["found"] is False  # the old log was not copied


def test_a_read_waits_for_its_view_and_answers_503_when_it_does_not_catch_up(settings: Settings) -> None:
    """Two apps on one data dir without Redis: this one hears nothing of the other's appends until
    its next poll (30 s away), so a read that needs one of them can only time out, then retry."""
    quiet = msgspec.structs.replace(settings, poll_seconds=30.0, read_wait_seconds=0.2)
    with TestClient(create_app(quiet)) as reader, TestClient(create_app(quiet)) as writer:
        headers = provision_sync(reader)
        mine = remember(reader, headers, 1)
        assert caught_up_read(reader, headers, "k0", mine)["found"]  # waits for its own write: fine
        theirs = writer.post("/v1/events", json={"stream": "task:1", "events": [{"type": "task.created"}]},
                             headers=headers)  # fmt: skip
        assert theirs.status_code == 201, theirs.text
        wait = {**headers, "X-Spine-Min-Position": theirs.headers["x-spine-position"]}
        lagging = assert_problem(reader.get("/v1/memory/k0", headers=wait), 503, "projection.lagging")
        assert (lagging["min_position"], lagging["view_position"]) == (2, 1)
        assert reader.get("/v1/memory/k0", headers=wait).headers["retry-after"] == "1"
        never = {**headers, "X-Spine-Min-Position": "99"}
        assert_problem(reader.get("/v1/memory/k0", headers=never), 400, "cursor.invalid")
