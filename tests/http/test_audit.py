"""`/v1/audit` through the app: every write and security event as an append-only record, client
records, queries by actor, action and time, cursor paging, and who may see what."""

from __future__ import annotations

import functools
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from domain.partition import Partition
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

URL = "/v1/audit"
SEEN = ("action", "resource", "actor", "request_id", "source")


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


def ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code in (200, 201), response.text
    return response


def records(
    client: TestClient, headers: dict[str, str], after: httpx.Response | None = None, **params: Any
) -> list[dict[str, Any]]:
    """Every record the query finds (one page of up to 1000); `after` a write to wait for."""
    sent = (
        headers if after is None else {**headers, "X-Spine-Min-Position": after.headers["x-spine-position"]}
    )
    answer = ok(client.get(URL, params={"limit": 1000, **params}, headers=sent)).json()
    assert answer["next"] is None
    found: list[dict[str, Any]] = answer["records"]
    return found


def seen(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(record[field] for field in SEEN) for record in found]


def add(
    client: TestClient, headers: dict[str, str], action: str = "report.exported", **body: Any
) -> httpx.Response:
    return client.post(URL, json={"action": action, "resource": "report:1", **body}, headers=headers)


def with_id(headers: dict[str, str], request_id: str) -> dict[str, str]:
    return {**headers, "X-Request-Id": request_id}


def refused_override(client: TestClient, headers: dict[str, str], request_id: str) -> None:
    response = client.get("/v1/events", headers={**with_id(headers, request_id), "X-Tenant-Id": "t2"})
    assert_problem(response, 403, "auth.identity_override")


# Writes and client records


def test_every_accepted_write_is_recorded_with_actor_action_resource_and_request_id(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(client.put("/v1/memory/goal", json={"value": "private-value"}, headers=with_id(headers, "r-mem")))
    ok(client.put("/v1/runs/run-1/blackboard/plan", json={"value": 1}, headers=with_id(headers, "r-bb")))
    paid = {"type": "order.paid", "data": {"card": "4242"}}
    body = {"stream": "orders", "events": [paid, {"type": "order.shipped"}]}
    ok(client.post("/v1/events", json=body, headers=with_id(headers, "r-ev")))
    message = {"role": "user", "content": "hi"}
    ok(client.post("/v1/sessions/chat-1/messages", json=message, headers=with_id(headers, "r-ses")))
    last = ok(client.delete("/v1/memory/goal", headers=with_id(headers, "r-del")))
    stale = {"value": 2, "expected_version": 9}
    assert client.put("/v1/runs/run-1/blackboard/plan", json=stale, headers=headers).status_code == 409

    waiting = {**with_id(headers, "r-read"), "X-Spine-Min-Position": last.headers["x-spine-position"]}
    answer = client.get(URL, headers=waiting)
    assert answer.headers["x-request-id"] == "r-read"
    found = answer.json()["records"]
    assert seen(found) == [
        ("memory.set", "memory:u1:goal", "u1", "r-mem", "write"),
        ("blackboard.written", "blackboard:run-1:plan", "u1", "r-bb", "write"),
        ("order.paid", "orders", "u1", "r-ev", "write"),
        ("order.shipped", "orders", "u1", "r-ev", "write"),
        ("session.message_added", "session:u1:chat-1", "u1", "r-ses", "write"),
        ("memory.deleted", "memory:u1:goal", "u1", "r-del", "write"),
    ]  # the refused compare-and-set wrote nothing, so it is not there
    assert [record["position"] for record in found] == [1, 2, 3, 4, 5, 6]
    assert [record["time"] for record in found] == sorted(record["time"] for record in found)
    assert all(record["details"] is None for record in found)
    assert "private-value" not in answer.text
    assert "4242" not in answer.text
    events = client.get("/v1/events", headers=headers).json()["events"]
    assert [record["id"] for record in found] == [event["id"] for event in events]


def test_clients_add_records_of_their_own_and_read_them_at_once(
    client: TestClient, headers: dict[str, str]
) -> None:
    added = add(client, with_id(headers, "r-add"), details={"rows": 3, "format": "csv"})
    assert added.status_code == 201
    assert added.headers["x-spine-position"] == str(added.json()["position"])
    [record] = records(client, headers, after=added)
    assert record == {
        "id": added.json()["id"],
        "position": added.json()["position"],
        "time": record["time"],
        "actor": "u1",
        "action": "report.exported",
        "resource": "report:1",
        "request_id": "r-add",
        "source": "client",
        "details": {"rows": 3, "format": "csv"},
    }
    assert ok(client.get(f"{URL}/{record['id']}", headers=headers)).json() == record


def test_a_client_record_with_an_id_is_added_once(client: TestClient, headers: dict[str, str]) -> None:
    first = add(client, headers, id="export-7")
    again = add(client, headers, id="export-7")
    assert (
        (again.status_code, again.json()) == (201, first.json()) == (201, {"id": "export-7", "position": 1})
    )
    assert [record["id"] for record in records(client, headers, after=again)] == ["export-7"]


INVALID_RECORDS = [
    pytest.param({"action": "report.exported", "resource": "r", "actor": "someone-else"}, id="actor"),
    pytest.param({"action": "report.exported", "resource": "r", "time": "2020-01-01T00:00:00Z"}, id="time"),
    pytest.param({"action": "report.exported", "resource": "r", "source": "security"}, id="source"),
    pytest.param({"resource": "r"}, id="no-action"),
    pytest.param({"action": "Report Exported", "resource": "r"}, id="action-pattern"),
    pytest.param({"action": "a" * 129, "resource": "r"}, id="action-too-long"),
    pytest.param({"action": "report.exported"}, id="no-resource"),
    pytest.param({"action": "report.exported", "resource": ""}, id="empty-resource"),
    pytest.param({"action": "report.exported", "resource": "r" * 513}, id="resource-too-long"),
    pytest.param({"action": "report.exported", "resource": "r", "details": [1]}, id="details-not-object"),
    pytest.param({"action": "report.exported", "resource": "r", "details": "x"}, id="details-string"),
    pytest.param({"action": "report.exported", "resource": "r", "id": "a/b"}, id="bad-id"),
]


@pytest.mark.parametrize("body", INVALID_RECORDS)
def test_a_record_is_only_action_resource_and_details(
    client: TestClient, headers: dict[str, str], body: dict[str, Any]
) -> None:
    assert_problem(client.post(URL, json=body, headers=headers), 422, "request.invalid")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


def test_a_record_claiming_another_identity_is_refused_and_audited(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = add(client, with_id(headers, "claims-t2"), tenant_id="t2")
    assert_problem(response, 403, "auth.identity_override")
    assert seen(records(client, headers)) == [("auth.violation", URL, "u1", "claims-t2", "security")]


def test_oversized_details_are_413(client: TestClient, headers: dict[str, str]) -> None:
    response = add(client, headers, details={"blob": "x" * 70_000})  # the test body limit is 64 KiB
    assert_problem(response, 413, "request.too_large")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


# Append-only


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_records_are_never_changed_nor_deleted(
    client: TestClient, headers: dict[str, str], method: str
) -> None:
    added = add(client, headers)
    before = records(client, headers, after=added)
    record_id = added.json()["id"]
    paths = (
        (URL, "GET, OPTIONS, POST"),
        (f"{URL}/{record_id}", "GET, OPTIONS"),
        (f"{URL}/unknown", "GET, OPTIONS"),
    )
    for path, allowed in paths:
        body = {"action": "x", "resource": "y"} if method != "DELETE" else None
        response = client.request(method, path, json=body, headers=headers)
        problem = assert_problem(response, 405, "audit.append_only")
        assert (problem["method"], response.headers["allow"]) == (method, allowed)
    assert records(client, headers) == before
    assert client.get("/v1/events", headers=headers).json()["head"] == 1


def test_an_unknown_record_is_404(client: TestClient, headers: dict[str, str]) -> None:
    assert_problem(client.get(f"{URL}/nothing-here", headers=headers), 404, "audit.not_found")


# Queries


@pytest.fixture
def two_users(client: TestClient) -> dict[str, dict[str, str]]:
    """u1 (a tenant admin: reads everyone's records) and u2 (a member) of t1/p1 have each written
    memory and added records; answers their headers."""
    u1 = provision_sync(client, user="u1", role="admin")
    u2 = provision_sync(client, user="u2")
    for user, sent in (("u1", u1), ("u2", u2)):
        ok(client.put(f"/v1/memory/{user}-key", json={"value": 1}, headers=sent))
        ok(add(client, sent, "report.exported"))
        ok(add(client, sent, "report.viewed"))
    return {"u1": u1, "u2": u2}


def test_a_member_reads_their_own_records_and_an_admin_everyones(
    client: TestClient, two_users: dict[str, dict[str, str]]
) -> None:
    u1, u2 = two_users["u1"], two_users["u2"]
    last = add(client, u2, "report.viewed")
    everyone = records(client, u1, after=last)
    own = records(client, u2, after=last)
    assert {r["actor"] for r in everyone} == {"u1", "u2"}
    assert own == [r for r in everyone if r["actor"] == "u2"]
    assert len(own) == 4
    assert records(client, u2, actor="u2") == own
    assert_problem(client.get(URL, params={"actor": "u1"}, headers=u2), 403, "auth.forbidden")
    theirs = next(r for r in everyone if r["actor"] == "u1")
    assert_problem(client.get(f"{URL}/{theirs['id']}", headers=u2), 404, "audit.not_found")
    assert ok(client.get(f"{URL}/{theirs['id']}", headers=u1)).json() == theirs


def test_queries_by_actor_action_or_both(client: TestClient, two_users: dict[str, dict[str, str]]) -> None:
    u1 = two_users["u1"]
    last = add(client, u1, "report.viewed")
    every = records(client, u1, after=last)
    assert len(every) == 7
    for actor in ("u1", "u2"):
        assert records(client, u1, actor=actor) == [r for r in every if r["actor"] == actor]
    for action in ("report.viewed", "memory.set"):
        assert records(client, u1, action=action) == [r for r in every if r["action"] == action]
    both = records(client, u1, actor="u1", action="report.viewed")
    assert both == [r for r in every if (r["actor"], r["action"]) == ("u1", "report.viewed")]
    assert len(both) == 2
    assert records(client, u1, actor="u") == []  # a prefix of an actor is not that actor
    assert records(client, u1, action="report") == []


def test_queries_by_time_range(client: TestClient, two_users: dict[str, dict[str, str]]) -> None:
    u1 = two_users["u1"]
    every = records(client, u1, after=add(client, u1))
    times = [record["time"] for record in every]
    start, end = times[2], times[5]
    assert records(client, u1, **{"from": start, "to": end}) == [r for r in every if start <= r["time"] < end]
    assert records(client, u1, **{"from": start}) == [r for r in every if start <= r["time"]]
    assert records(client, u1, to=end, actor="u2") == [
        r for r in every if r["time"] < end and r["actor"] == "u2"
    ]
    assert records(client, u1, **{"from": "2000-01-01", "to": "2000-01-02"}) == []
    as_offset = start.replace("Z", "+00:00")
    assert records(client, u1, **{"from": as_offset}) == records(client, u1, **{"from": start})


def test_paging_with_a_cursor_reads_every_record_once(client: TestClient, headers: dict[str, str]) -> None:
    for n in range(4):
        ok(add(client, headers, "report.exported", details={"n": n}))
        refused_override(client, headers, f"override-{n}")  # security records, between the writes
    last = add(client, headers, "report.viewed")
    every = records(client, headers, after=last)
    assert [r["source"] for r in every] == ["client", "security"] * 4 + ["client"]

    for params in ({}, {"action": "auth.violation"}, {"actor": "u1"}):
        pages: list[list[dict[str, Any]]] = []
        cursor = None
        while True:
            query = {"limit": 2, **params, **({"after": cursor} if cursor else {})}
            answer = ok(client.get(URL, params=query, headers=headers)).json()
            pages.append(answer["records"])
            cursor = answer["next"]
            if cursor is None:
                break
        expected = records(client, headers, **params)
        assert [r for page in pages for r in page] == expected
        assert all(len(page) == 2 for page in pages[:-1])
        assert len(pages) == (len(expected) + 1) // 2  # the last full page says there is no more


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        pytest.param({"after": "garbage"}, 400, "cursor.invalid", id="garbage-cursor"),
        pytest.param({"after": "2025-01-01T00:00:00.000000Z|0000000000000000001|z"}, 400, "cursor.invalid", id="forged-cursor"),
        pytest.param({"after": "5"}, 400, "cursor.invalid", id="a-position"),
        pytest.param({"from": "yesterday"}, 422, "request.invalid", id="bad-from"),
        pytest.param({"to": "2025-02-30"}, 422, "request.invalid", id="bad-to"),
        pytest.param({"limit": 0}, 422, "request.invalid", id="limit-0"),
        pytest.param({"limit": 1001}, 422, "request.invalid", id="limit-too-big"),
    ],
)  # fmt: skip
def test_bad_queries_are_refused(
    client: TestClient, headers: dict[str, str], params: dict[str, Any], status: int, code: str
) -> None:
    assert_problem(client.get(URL, params=params, headers=headers), status, code)


def test_a_min_position_never_written_is_400(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get(URL, headers={**headers, "X-Spine-Min-Position": "99"})
    assert_problem(response, 400, "cursor.invalid")


# Security events


def test_a_refused_override_is_a_security_record_of_the_project_it_named(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    ok(client.post("/v1/tenants/t1/projects", json={"project_id": "p2", "name": "p2"}, headers=admin))
    p2 = {**headers, "X-Project-Id": "p2"}
    refused_override(client, headers, "override-p1")
    [record] = records(client, headers)
    assert seen([record]) == [("auth.violation", "/v1/events", "u1", "override-p1", "security")]
    details = record["details"]
    assert {k: details[k] for k in ("field", "sent", "actual", "project_id")} == {
        "field": "tenant_id",
        "sent": "t2",
        "actual": "t1",
        "project_id": "p1",
    }
    assert ok(client.get(f"{URL}/{record['id']}", headers=headers)).json() == record

    assert records(client, p2) == []
    assert_problem(client.get(f"{URL}/{record['id']}", headers=p2), 404, "audit.not_found")


def test_a_violation_that_names_no_valid_project_is_in_no_projects_audit(
    client: TestClient, headers: dict[str, str]
) -> None:
    unnamed = {k: v for k, v in headers.items() if k != "X-Project-Id"}
    for sent in (unnamed, {**headers, "X-Project-Id": "not/a/project"}):
        response = client.get("/v1/events", headers={**sent, "X-Tenant-Id": "t2"})
        assert_problem(response, 403, "auth.identity_override")
    trail = Partition(tenant_id="t1", env="dev", project_id="_audit")
    page = client.blocking_portal.call(functools.partial(client.app.state.services.spine.read, trail))
    assert [event.data["project_id"] for event in page.events] == [None, None]  # audited, for no project
    assert records(client, headers) == []


def test_a_security_type_appended_by_a_client_is_an_ordinary_write(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = {"stream": "sec:auth", "events": [{"type": "auth.violation", "data": {"project_id": "p1"}}]}
    written = ok(client.post("/v1/events", json=body, headers=headers))
    assert seen(records(client, headers, after=written)) == [
        ("auth.violation", "sec:auth", "u1", written.headers["x-request-id"], "write")
    ]


MEMORY_ROUTE = {"resource_kind": "memory_store", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite"}


def test_route_switches_are_security_records_of_the_projects_they_move(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    ok(client.post("/v1/tenants/t1/projects", json={"project_id": "p2", "name": "p2"}, headers=admin))
    tenant_wide = {**MEMORY_ROUTE, "config": {"path": "m1.db"}}
    only_p2 = {**MEMORY_ROUTE, "project_id": "p2", "config": {"path": "p2-a.db"}}
    for route in (tenant_wide, only_p2):
        ok(client.put("/v1/routes", json=route, headers=admin))  # a first route is no switch
    moved = {**tenant_wide, "config": {"path": "m2.db"}, "switch_rationale": "bigger disk"}
    ok(client.put("/v1/routes", json=moved, headers=with_id(admin, "switch-all")))
    moved_p2 = {**only_p2, "backend_type": "memory", "config": {}, "switch_rationale": "scratch"}
    ok(client.put("/v1/routes", json=moved_p2, headers=with_id(admin, "switch-p2")))

    everywhere = ("route.backend_switched", "route:memory_store/t1/dev/*", "admin", "switch-all", "security")
    auditor = provision_sync(client, user="auditor", role="admin")  # the switches' actor is not a member
    assert seen(records(client, auditor)) == [everywhere]
    assert records(client, headers) == []
    [first, second] = records(client, {**auditor, "X-Project-Id": "p2"})
    assert seen([first, second]) == [
        everywhere,
        ("route.backend_switched", "route:memory_store/t1/dev/p2", "admin", "switch-p2", "security"),
    ]
    assert (second["details"]["old_backend"], second["details"]["new_backend"]) == ("sqlite", "memory")
    assert second["details"]["rationale"] == "scratch"
    assert "path" not in second["details"]  # a route's config is never copied into the audit


# Isolation


def test_other_tenants_and_projects_see_none_of_it(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    ok(client.post("/v1/tenants/t1/projects", json={"project_id": "p2", "name": "p2"}, headers=admin))
    other_tenant = provision_sync(client, tenant="t2", project="p1", user="u1")
    other_project = {**headers, "X-Project-Id": "p2"}
    ok(client.put("/v1/memory/k", json={"value": 1}, headers=headers))
    refused_override(client, headers, "override-t1")
    mine = records(client, headers, after=add(client, headers))
    assert [r["source"] for r in mine] == ["write", "security", "client"]

    theirs = add(client, other_tenant, "their.action")
    for sent in (other_tenant, other_project):
        found = records(client, sent) if sent is other_project else records(client, sent, after=theirs)
        assert not {r["id"] for r in found} & {r["id"] for r in mine}
        for record in mine:
            assert_problem(client.get(f"{URL}/{record['id']}", headers=sent), 404, "audit.not_found")
    assert [r["action"] for r in records(client, other_tenant)] == ["their.action"]
    assert [r["id"] for r in records(client, headers)] == [r["id"] for r in mine]  # nothing of theirs


def test_a_saas_tenant_without_an_audit_route_is_refused_before_anything_is_appended(
    client: TestClient, admin: dict[str, str]
) -> None:
    ok(client.post("/v1/tenants", json={"tenant_id": "t3", "name": "t3", "mode": "saas"}, headers=admin))
    ok(client.post("/v1/tenants/t3/projects", json={"project_id": "p1", "name": "p1"}, headers=admin))
    ok(client.post("/v1/tenants/t3/surfaces", json={"surface_id": "web", "name": "web"}, headers=admin))
    ok(client.post("/v1/tenants/t3/members", json={"user_id": "u1", "role": "member"}, headers=admin))
    token = ok(client.post("/v1/tenants/t3/tokens", json={"user_id": "u1"}, headers=admin)).json()["token"]
    member = {"Authorization": f"Bearer {token}", "X-Project-Id": "p1", "X-Surface-Id": "web"}
    # The spine has no route either: answering audit's code shows the view was asked first.
    assert_problem(add(client, member), 503, "audit.missing_route")
    assert_problem(client.get(URL, headers=member), 503, "audit.missing_route")


def test_after_a_restart_the_stored_view_answers_without_waiting(settings: Settings) -> None:
    """A fresh runner has not loaded its checkpoint yet: the read asks the store rather than
    waiting for a wake-up that never comes (with no wait allowed, waiting would be a 503)."""
    with TestClient(create_app(settings)) as client:
        headers = provision_sync(client)
        refused_override(client, headers, "before-restart")
        written = add(client, headers)
        before = records(client, headers, after=written)
    impatient = msgspec.structs.replace(settings, read_wait_seconds=0.0)
    with TestClient(create_app(impatient)) as client:
        waiting = {**headers, "X-Spine-Min-Position": written.headers["x-spine-position"]}
        assert ok(client.get(URL, headers=waiting)).json()["records"] == before
        assert [r["source"] for r in before] == ["security", "client"]
