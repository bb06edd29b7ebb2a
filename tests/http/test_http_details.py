"""HTTP details every route keeps: `Allow` on OPTIONS and 405, `If-Match` as RFC 9110 reads it, and
identity headers sent twice."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from tests.http.conftest import LiveServer
from tests.http.test_events_api import assert_problem
from tests.http.test_identity import assert_violation, audit_trail, stored
from tests.provision import provision

PROBED = ("GET", "POST", "PUT", "PATCH", "DELETE")
BLACKBOARD = "/v1/runs/r1/blackboard/k"
FLOWS = "/v1/saves/flows"
SEO = "/v1/seo"


@pytest.fixture
def context(headers: dict[str, str]) -> dict[str, str]:
    """Member headers that every data route accepts, SEO's required X-App-Id included."""
    return {**headers, "X-App-Id": "app1"}


def head(client: TestClient, headers: dict[str, str]) -> int:
    position: int = client.get("/v1/events", headers=headers).json()["head"]
    return position


def methods(allow: str) -> set[str]:
    return {method.strip() for method in allow.split(",")}


# Allow: every path of the app, OPTIONS and 405 alike


def routes(client: TestClient) -> list[HTTPRoute]:
    found = [route for route in client.app.routes if isinstance(route, HTTPRoute)]
    assert "/v1/memory/{key:str}" in {route.path for route in found}
    return found


def served(route: HTTPRoute) -> set[str]:
    """What a route declares it serves: a handler declared to answer 405 refuses its methods."""
    declared = {m for h in route.route_handlers if h.status_code != 405 for m in h.http_methods}
    return declared | {"OPTIONS"}


def refused(route: HTTPRoute) -> set[str]:
    return {m for h in route.route_handlers if h.status_code == 405 for m in h.http_methods}


def concrete(route: HTTPRoute) -> str:
    return re.sub(r"\{[^}]+\}", "1", route.path)


def test_options_lists_exactly_the_methods_every_path_serves(client: TestClient) -> None:
    wrong = {}
    for route in routes(client):
        answer = client.options(concrete(route))
        assert answer.status_code == 204, (route.path, answer.text)
        if methods(answer.headers["allow"]) != served(route):
            wrong[route.path] = (answer.headers["allow"], sorted(served(route)))
    assert wrong == {}
    assert client.options("/v1/memory/k").headers["allow"] == "DELETE, GET, OPTIONS, PUT"


def test_a_method_a_path_does_not_serve_is_405_with_the_same_allow(
    client: TestClient, context: dict[str, str]
) -> None:
    checked = 0
    for route in routes(client):
        path = concrete(route)
        allow = methods(client.options(path).headers["allow"])
        for method in sorted(set(PROBED) - served(route)):
            answer = client.request(method, path, headers=context)
            code = "audit.append_only" if method in refused(route) else "http.method_not_allowed"
            assert_problem(answer, 405, code)
            assert methods(answer.headers["allow"]) == allow, (method, route.path)
            checked += 1
    assert checked > 50


# If-Match: `*` needs a current version; lists; strong comparison; malformed tags

CREATING = [
    pytest.param("PUT", "/v1/runs/r1/blackboard/k", {"value": 1}, id="blackboard"),
    pytest.param("PUT", "/v1/seo/home", {"title": "Home"}, id="seo"),
    pytest.param("POST", "/v1/strategy-locks/l1/snapshots", {"state": 1}, id="strategy-lock"),
]


@pytest.mark.parametrize(("method", "url", "body"), CREATING)
def test_if_match_star_is_412_on_a_missing_resource_and_matches_any_version_of_an_existing_one(
    client: TestClient, context: dict[str, str], method: str, url: str, body: dict[str, Any]
) -> None:
    star = {**context, "If-Match": "*"}
    before = head(client, context)
    assert_problem(client.request(method, url, json=body, headers=star), 412, "precondition.failed")
    assert head(client, context) == before  # nothing appended
    for _ in range(2):
        assert client.request(method, url, json=body, headers=context).status_code in (200, 201)
    answer = client.request(method, url, json=body, headers=star)
    assert answer.status_code in (200, 201), answer.text
    assert (answer.json()["version"], answer.headers["etag"]) == (3, '"3"')


def test_if_match_star_on_saves_and_pages_live_deleted_or_never_written(
    client: TestClient, context: dict[str, str]
) -> None:
    star = {**context, "If-Match": "*"}
    change = {"name": "n", "body": 1}
    # Live: `*` matches whatever the version
    client.post(FLOWS, json={"id": "f", "name": "n", "body": 0}, headers=context)
    assert client.put(f"{FLOWS}/f", json=change, headers=star).json()["version"] == 2
    assert client.delete(f"{FLOWS}/f", headers=star).json()["version"] == 3
    client.put(f"{SEO}/home", json={"title": "Home"}, headers=context)
    assert client.delete(f"{SEO}/home", headers=star).json()["version"] == 2
    before = head(client, context)
    # Deleted: a tombstone is no current representation, so `*` does not match it...
    assert_problem(client.put(f"{FLOWS}/f", json=change, headers=star), 412, "precondition.failed")
    assert_problem(
        client.put(f"{SEO}/home", json={"title": "Home"}, headers=star), 412, "precondition.failed"
    )
    # ...but where the answer without If-Match is 404, it stays 404 (RFC 9110 §13.2.1): deleting
    # what is deleted, updating a save never created
    assert_problem(client.delete(f"{FLOWS}/f", headers=star), 404, "save_store.not_found")
    assert_problem(client.delete(f"{SEO}/home", headers=star), 404, "seo_config.not_found")
    assert_problem(client.put(f"{FLOWS}/never", json=change, headers=star), 404, "save_store.not_found")
    assert_problem(client.delete(f"{SEO}/never", headers=star), 404, "seo_config.not_found")
    assert head(client, context) == before
    assert (
        client.put(f"{FLOWS}/f", json=change, headers=context).json()["version"] == 4
    )  # unconditional: back


def put_entry(client: TestClient, context: dict[str, str], if_match: str) -> Any:
    return client.put(BLACKBOARD, json={"value": 1}, headers={**context, "If-Match": if_match})


def test_an_if_match_list_matches_when_any_of_its_tags_does(
    client: TestClient, context: dict[str, str]
) -> None:
    client.put(BLACKBOARD, json={"value": 0}, headers=context)
    client.put(BLACKBOARD, json={"value": 0}, headers=context)
    assert put_entry(client, context, '"1", "2"').json()["version"] == 3
    assert put_entry(client, context, '"7", , "3"').json()["version"] == 4  # empty elements are allowed
    stale = assert_problem(put_entry(client, context, '"1", "2"'), 409, "blackboard.version_conflict")
    assert stale["current_version"] == 4
    client.post(FLOWS, json={"id": "f", "name": "n", "body": 0}, headers=context)
    listed = {**context, "If-Match": '"5", "1"'}
    assert client.put(f"{FLOWS}/f", json={"name": "n", "body": 1}, headers=listed).json()["version"] == 2
    again = client.put(f"{FLOWS}/f", json={"name": "n", "body": 2}, headers=listed)
    assert assert_problem(again, 409, "save_store.version_conflict")["current_version"] == 2


def test_if_match_compares_strongly_so_a_weak_tag_never_matches(
    client: TestClient, context: dict[str, str]
) -> None:
    client.put(BLACKBOARD, json={"value": 0}, headers=context)
    before = head(client, context)
    assert_problem(put_entry(client, context, 'W/"1"'), 412, "precondition.failed")
    assert head(client, context) == before
    assert put_entry(client, context, 'W/"1", "1"').json()["version"] == 2


MALFORMED = ["1", "'1'", "W/1", '"abc"', '"1.0"', '"-1"', '*, "1"', '"1" "2"', "", " , "]


def test_a_malformed_if_match_is_422_and_appends_nothing(client: TestClient, context: dict[str, str]) -> None:
    client.put(BLACKBOARD, json={"value": 0}, headers=context)
    before = head(client, context)
    for sent in MALFORMED:
        problem = assert_problem(put_entry(client, context, sent), 422, "request.invalid")
        assert "If-Match" in problem["message"], sent
    assert head(client, context) == before


# Identity headers sent twice: refused like one that disagrees, equal values or not. The test
# client joins repeated lines into one, comma-separated, as HTTP lets any proxy do; a real
# connection carries them apart.

APPEND = {"stream": "s", "events": [{"type": "x.done"}]}

IDENTITY = [
    pytest.param("X-Tenant-Id", "t1", "t2", "tenant_id", "t1", id="tenant"),
    pytest.param("X-User-Id", "u1", "u2", "user_id", "u1", id="user"),
    pytest.param("X-Mode", "lab", "saas", "mode", "lab", id="mode"),
    pytest.param("X-Env", "dev", "prod", "env", None, id="env"),
    pytest.param("X-Project-Id", "p1", "p2", "project_id", None, id="project"),
    pytest.param("X-Surface-Id", "web", "mobile", "surface_id", None, id="surface"),
    pytest.param("X-App-Id", "app1", "app2", "app_id", None, id="app"),
]


@pytest.mark.parametrize("same", [True, False], ids=["equal", "different"])
@pytest.mark.parametrize(("header", "value", "other", "field", "actual"), IDENTITY)
def test_an_identity_header_sent_twice_is_refused_and_audited(
    client: TestClient,
    headers: dict[str, str],
    header: str,
    value: str,
    other: str,
    field: str,
    actual: str | None,
    same: bool,
) -> None:
    second = value if same else other
    sent = [(k, v) for k, v in headers.items() if k != header]
    sent += [(header, value), (header, second), ("X-Request-Id", "twice")]
    answer = client.post("/v1/events", json=APPEND, headers=sent)
    problem = assert_problem(answer, 403, "auth.identity_override")
    assert (problem["field"], problem["source"]) == (field, "header")
    assert f"{header} is sent more than once" in problem["message"]
    [violation] = audit_trail(client)
    assert_violation(violation, field, "header", f"{value}, {second}", actual, "twice")
    assert stored(client, "t1", "p1") == []


async def test_headers_sent_on_two_lines_are_refused_too(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        member = await provision(http)
        for header, value in [("X-Tenant-Id", "t1"), ("X-Env", "dev"), ("X-Project-Id", "p1")]:
            sent = [(k, v) for k, v in member.items() if k != header] + [(header, value), (header, value)]
            answer = await http.post("/v1/events", json=APPEND, headers=sent)
            problem = assert_problem(answer, 403, "auth.identity_override")
            assert f"{header} is sent more than once" in problem["message"]
        sent = [*member.items(), ("Authorization", member["Authorization"])]
        answer = await http.post("/v1/events", json=APPEND, headers=sent)
        assert_problem(answer, 401, "auth.invalid_token")
        assert answer.headers["www-authenticate"] == 'Bearer realm="spine"'
        assert (await http.get("/v1/events", headers=member)).json()["head"] == 0
