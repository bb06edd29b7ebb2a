"""Allowed origins as data, and CORS from them (issue 14, item 1).

Apps list the browser origins allowed to call Spine (`PUT /v1/tenants/{t}/apps/{app_id}`); a
preflight from an origin some app lists is answered with that origin, and a real answer carries
CORS headers when the caller's tenant lists the origin (before identity is known, when some app
does). Tenant t1 lists ONE, tenant t2 lists TWO; nobody lists ELSEWHERE.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from adapters.local_notifier import LocalNotifier
from adapters.memory.spine import MemorySpine
from app.http.cors import ALLOWED_HEADERS
from domain.append import AppendRequest
from domain.control_plane import AppUpdated, ControlPlane, Decision, decide_app_put
from domain.errors import VersionConflict
from domain.events import NewEvent
from domain.origins import MAX_ORIGINS
from projections.control_plane import ControlPlaneProjector
from tests.contract.test_registry import META, SYS, seed, service_on
from tests.http.test_events_api import assert_problem
from tests.http.test_identity import member_token, system_head
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

ONE = "https://one.example"
TWO = "http://localhost:5173"
ELSEWHERE = "https://elsewhere.example"
CORS_HEADERS = ("access-control-allow-origin", "access-control-expose-headers", "vary")
APPEND = {"stream": "s", "events": [{"type": "x.done"}]}


def preflight(
    client: TestClient, origin: str, path: str = "/v1/events", method: str = "POST"
) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, x-project-id, x-surface-id",
    }
    return client.options(path, headers=headers)


def put_app(
    client: TestClient,
    admin: dict[str, str],
    app: str,
    body: dict[str, Any],
    tenant: str = "t1",
    **headers: str,
) -> httpx.Response:
    return client.put(f"/v1/tenants/{tenant}/apps/{app}", json=body, headers={**admin, **headers})


def cors_of(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-") or k == "vary"}


def apps_of(client: TestClient, admin: dict[str, str], tenant: str = "t1") -> dict[str, dict[str, Any]]:
    answer = client.get(f"/v1/tenants/{tenant}", headers=admin)
    assert answer.status_code == 200, answer.text
    return {app["app_id"]: app for app in answer.json()["apps"]}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


@pytest.fixture
def members(client: TestClient, headers: dict[str, str], admin: dict[str, str]) -> dict[str, dict[str, str]]:
    """Data-route headers of u1 (t1, whose app lists ONE) and u2 (t2, whose app lists TWO)."""
    two = provision_sync(client, tenant="t2", user="u2")
    assert put_app(client, admin, "web", {"name": "Web", "origins": [ONE]}).status_code == 201
    assert put_app(client, admin, "web", {"name": "Web", "origins": [TWO]}, tenant="t2").status_code == 201
    return {"t1": headers, "t2": two}


# Preflights


@pytest.mark.parametrize("origin", [ONE, TWO], ids=["t1s", "t2s"])
@pytest.mark.parametrize(
    ("path", "allow"), [("/v1/events", "GET, OPTIONS, POST"), ("/v1/memory/k", "DELETE, GET, OPTIONS, PUT")]
)
def test_a_preflight_from_an_origin_some_app_lists_is_answered_with_that_origin(
    client: TestClient, members: Any, origin: str, path: str, allow: str
) -> None:
    answer = preflight(client, origin, path)
    assert answer.status_code == 204
    assert answer.headers["allow"] == allow
    assert cors_of(answer) == {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": allow,
        "access-control-allow-headers": ALLOWED_HEADERS,
        "access-control-max-age": "600",
        "vary": "Origin",
    }
    wanted = {h.strip().lower() for h in ALLOWED_HEADERS.split(",")}
    assert wanted >= {"authorization", "content-type", "last-event-id", "if-match", "x-project-id",
                      "x-surface-id", "x-app-id", "x-env", "x-spine-min-position", "x-request-id"}  # fmt: skip


@pytest.mark.parametrize(
    "origin",
    [ELSEWHERE, "https://one.example.evil.test", "http://one.example", "https://ONE.example", "null", "*"],
)
def test_a_preflight_from_an_origin_no_app_lists_gets_no_cors_header(
    client: TestClient, members: Any, origin: str
) -> None:
    answer = preflight(client, origin)
    assert (answer.status_code, answer.headers["allow"]) == (204, "GET, OPTIONS, POST")
    assert cors_of(answer) == {}


# Real answers


def test_an_answer_to_a_page_of_its_own_tenants_origin_carries_cors_headers(
    client: TestClient, members: dict[str, dict[str, str]]
) -> None:
    written = client.post("/v1/events", json=APPEND, headers={**members["t1"], "Origin": ONE})
    assert written.status_code == 201, written.text
    read = client.get("/v1/events", headers={**members["t2"], "Origin": TWO})
    refused = client.post("/v1/events", json={"stream": "s"}, headers={**members["t1"], "Origin": ONE})
    assert refused.status_code == 422  # after identity: the tenant's rule still holds
    for answer, origin in ((written, ONE), (read, TWO), (refused, ONE)):
        cors = cors_of(answer)
        assert (cors["access-control-allow-origin"], cors["vary"]) == (origin, "Origin")
        exposed = {h.strip() for h in cors["access-control-expose-headers"].split(",")}
        assert exposed >= {"X-Spine-Position", "X-Spine-Warning", "ETag", "X-Request-Id"}
        assert "access-control-allow-credentials" not in answer.headers  # bearer tokens, no cookies


@pytest.mark.parametrize("origin", [TWO, ELSEWHERE], ids=["another-tenants", "unlisted"])
def test_an_answer_to_any_other_origin_carries_no_cors_header(
    client: TestClient, members: dict[str, dict[str, str]], origin: str
) -> None:
    written = client.post("/v1/events", json=APPEND, headers={**members["t1"], "Origin": origin})
    read = client.get("/v1/events", headers={**members["t1"], "Origin": origin})
    assert (written.status_code, read.status_code) == (201, 200)
    assert cors_of(written) == cors_of(read) == {}


@pytest.mark.parametrize(("origin", "readable"), [(ONE, True), (TWO, True), (ELSEWHERE, False)])
def test_a_401_is_readable_by_a_page_of_an_origin_some_app_lists(
    client: TestClient, members: Any, origin: str, readable: bool
) -> None:
    """Before identity is known the rule is the preflight's: the page must read the 401 to refresh
    its token or ticket."""
    for sent in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = client.get("/v1/events", headers={**sent, "Origin": origin})
        assert answer.status_code == 401
        assert cors_of(answer).get("access-control-allow-origin") == (origin if readable else None)


async def test_sse_answers_carry_cors_headers(http: httpx.AsyncClient) -> None:
    boot = await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": BOOTSTRAP_KEY})
    admin = {"Authorization": f"Bearer {boot.json()['token']}"}
    put = await http.put("/v1/tenants/t1/apps/web", json={"name": "Web", "origins": [ONE]}, headers=admin)
    assert put.status_code == 201, put.text
    for origin, expected in ((ONE, ONE), (ELSEWHERE, None)):
        async with http.stream("GET", "/v1/events/stream", headers={"Origin": origin}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers.get("access-control-allow-origin") == expected
            assert ("X-Spine-Position" in stream.headers.get("access-control-expose-headers", "")) is bool(
                expected
            )


def test_an_update_that_removes_an_origin_stops_cors_for_it(
    client: TestClient, members: dict[str, dict[str, str]], admin: dict[str, str]
) -> None:
    assert put_app(client, admin, "web", {"name": "Web", "origins": [ONE, ELSEWHERE]}).status_code == 200
    assert cors_of(preflight(client, ELSEWHERE))["access-control-allow-origin"] == ELSEWHERE
    assert put_app(client, admin, "web", {"name": "Web", "origins": [ELSEWHERE]}).status_code == 200
    assert cors_of(preflight(client, ONE)) == {}
    assert cors_of(client.get("/v1/events", headers={**members["t1"], "Origin": ONE})) == {}
    assert cors_of(client.get("/v1/events", headers={"Origin": ONE})) == {}  # a 401 too
    answer = client.get("/v1/events", headers={**members["t1"], "Origin": ELSEWHERE})
    assert cors_of(answer)["access-control-allow-origin"] == ELSEWHERE


def test_another_app_of_the_tenant_listing_the_origin_keeps_it_allowed(
    client: TestClient, members: dict[str, dict[str, str]], admin: dict[str, str]
) -> None:
    assert put_app(client, admin, "mobile", {"name": "Mobile", "origins": [ONE]}).status_code == 201
    assert put_app(client, admin, "web", {"name": "Web", "origins": []}).status_code == 200
    answer = client.get("/v1/events", headers={**members["t1"], "Origin": ONE})
    assert cors_of(answer)["access-control-allow-origin"] == ONE


def test_a_route_that_answers_cors_itself_keeps_its_own_header(client: TestClient, members: Any) -> None:
    answer = client.get("/v1/client.js", headers={"Origin": ONE})
    assert answer.status_code == 200
    assert answer.headers.get_list("access-control-allow-origin") == ["*"]


# The app record: PUT /v1/tenants/{t}/apps/{app_id}


def test_put_creates_an_app_201_then_replaces_it_200(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    created = put_app(client, admin, "shop", {"name": "Shop", "origins": [ONE, TWO, ONE]})
    assert (created.status_code, created.headers["etag"]) == (201, '"1"')
    body = created.json()
    assert body == {"tenant_id": "t1", "app_id": "shop", "name": "Shop", "origins": [ONE, TWO], "version": 1,
                    "position": int(created.headers["x-spine-position"])}  # fmt: skip
    assert apps_of(client, admin)["shop"] == body

    updated = put_app(client, admin, "shop", {"name": "Shop 2", "origins": [TWO]})
    assert (updated.status_code, updated.headers["etag"]) == (200, '"2"')
    assert apps_of(client, admin)["shop"] == updated.json()
    assert (updated.json()["name"], updated.json()["origins"]) == ("Shop 2", [TWO])

    head = system_head(client)
    again = put_app(client, admin, "shop", {"name": "Shop 2", "origins": [TWO]})
    assert (again.status_code, again.headers["etag"], again.json()) == (200, '"2"', updated.json())
    assert system_head(client) == head  # nothing changed: no event

    cleared = put_app(client, admin, "shop", {"name": "Shop 2"})  # a PUT replaces: no origins
    assert (cleared.status_code, cleared.json()["origins"], cleared.json()["version"]) == (200, [], 3)


@pytest.mark.parametrize(
    "origin",
    [
        "https://one.example/", "https://one.example/path", "https://one.example?q=1", "https://one.example#f",
        "https://user@one.example", "https://ONE.example", "HTTPS://one.example", "https://*.one.example", "*",
        "null", "", "one.example", "ftp://one.example", "https://one.example:443", "http://one.example:80",
        "https://one.example:0", "https://one.example:65536", "https://bücher.example", "https://one.example\n",
    ],
)  # fmt: skip
def test_an_origin_a_browser_never_sends_is_422_naming_the_field(
    client: TestClient, headers: dict[str, str], admin: dict[str, str], origin: str
) -> None:
    head = system_head(client)
    answer = put_app(client, admin, "shop", {"name": "Shop", "origins": [ONE, origin]})
    problem = assert_problem(answer, 422, "request.invalid")
    assert [error["key"] for error in problem["errors"]] == ["origins[1]"]
    assert system_head(client) == head


def test_more_origins_than_an_app_may_list_is_422(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    many = [f"https://o{i}.example" for i in range(MAX_ORIGINS + 1)]
    problem = assert_problem(
        put_app(client, admin, "shop", {"name": "S", "origins": many}), 422, "request.invalid"
    )
    assert [error["key"] for error in problem["errors"]] == ["origins"]
    assert put_app(client, admin, "shop", {"name": "S", "origins": many[:MAX_ORIGINS]}).status_code == 201


def test_a_racing_update_is_a_conflict_not_a_lost_write(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    """Two admins read version 1 and each add an origin; the second write names what it read."""
    assert put_app(client, admin, "shop", {"name": "Shop", "origins": [ONE]}).status_code == 201
    first = put_app(client, admin, "shop", {"name": "Shop", "origins": [ONE, TWO]}, **{"If-Match": '"1"'})
    assert (first.status_code, first.headers["etag"]) == (200, '"2"')
    head = system_head(client)
    second = put_app(
        client, admin, "shop", {"name": "Shop", "origins": [ONE, ELSEWHERE]}, **{"If-Match": '"1"'}
    )
    problem = assert_problem(second, 409, "app.version_conflict")
    assert (problem["expected_version"], problem["current_version"]) == (1, 2)
    assert system_head(client) == head
    assert apps_of(client, admin)["shop"]["origins"] == [ONE, TWO]  # the first write is not lost
    absent = put_app(client, admin, "new", {"name": "New"}, **{"If-Match": "*"})
    assert_problem(absent, 412, "precondition.failed")
    assert put_app(client, admin, "new", {"name": "New"}, **{"If-Match": '"0"'}).status_code == 201


async def test_a_put_decided_on_a_view_another_process_changed_is_refused_and_decided_again() -> None:
    """Process `second` decides on the view it read before `first` changed the app: the spine
    refuses the append, and `execute` decides again on the caught-up view."""
    notifier = LocalNotifier()
    spine = MemorySpine(notifier)
    first, second = service_on(spine, notifier), service_on(spine, notifier)
    await seed(first)
    shop = AppUpdated(tenant_id="t1", app_id="shop", name="Shop", origins=[ONE])
    await first.execute(lambda state: decide_app_put(state, shop), META)
    stale = ControlPlaneProjector(spine, notifier, SYS)
    await stale.catch_up()
    await first.execute(
        lambda state: decide_app_put(state, msgspec.structs.replace(shop, origins=[TWO])), META
    )

    [decision] = decide_app_put(stale.state, msgspec.structs.replace(shop, origins=[ELSEWHERE]))
    request = AppendRequest(
        stream=decision.stream, events=[decision.event], expected_version=decision.expected_version, meta=META
    )
    with pytest.raises(VersionConflict):
        await spine.append(SYS, request)

    views: list[ControlPlane] = []

    def stale_then_fresh(state: ControlPlane) -> list[Decision]:
        views.append(state if views else stale.state)
        return decide_app_put(views[-1], msgspec.structs.replace(shop, origins=[TWO, ELSEWHERE]))

    await second.execute(stale_then_fresh, META)
    assert views == [stale.state, second.state]
    app = second.state.apps[("t1", "shop")]
    assert (app.origins, app.version) == ([TWO, ELSEWHERE], 3)
    assert second.state.tenants_listing(ONE) == set()
    assert second.state.tenants_listing(ELSEWHERE) == {"t1"}


def test_only_the_tenants_admins_may_put_its_apps(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    provision_sync(client, tenant="t2", user="u2")
    boss = member_token(client, admin, "t2", "boss", role="admin")
    head = system_head(client)
    member = client.put("/v1/tenants/t1/apps/shop", json={"name": "S", "origins": [ONE]}, headers=headers)
    assert_problem(member, 403, "auth.forbidden")
    assert_problem(put_app(client, boss, "shop", {"name": "S", "origins": [ONE]}), 403, "auth.forbidden")
    assert system_head(client) == head
    assert put_app(client, boss, "shop", {"name": "S", "origins": [ONE]}, tenant="t2").status_code == 201
    assert "shop" not in apps_of(client, admin)


def test_the_post_route_still_creates_apps_without_origins(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    created = client.post("/v1/tenants/t1/apps", json={"app_id": "shop", "name": "Shop"}, headers=admin)
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in ("app_id", "name", "origins")} == {"app_id": "shop", "name": "Shop", "origins": []}  # fmt: skip
    again = client.post("/v1/tenants/t1/apps", json={"app_id": "shop", "name": "Shop"}, headers=admin)
    assert_problem(again, 409, "control_plane.already_exists")
    assert (
        put_app(client, admin, "shop", {"name": "Shop", "origins": [ONE]}, **{"If-Match": '"1"'}).status_code
        == 200
    )
    assert apps_of(client, admin)["shop"]["origins"] == [ONE]


async def test_an_app_stored_before_apps_had_origins_still_decodes() -> None:
    notifier = LocalNotifier()
    spine = MemorySpine(notifier)
    control = service_on(spine, notifier)
    await seed(control)
    old = NewEvent(type="app.created", data={"tenant_id": "t1", "app_id": "legacy", "name": "Legacy"})
    await spine.append(SYS, AppendRequest(stream="app:t1:legacy", events=[old], expected_version="no_stream", meta=META))  # fmt: skip
    fresh = ControlPlaneProjector(spine, notifier, SYS)  # a process started on the older version's log
    await fresh.catch_up()
    app = fresh.state.apps[("t1", "legacy")]
    assert (app.name, app.origins, app.version) == ("Legacy", [], 1)
    await control.execute(lambda state: decide_app_put(state, AppUpdated(tenant_id="t1", app_id="legacy", name="Legacy", origins=[ONE])), META)  # fmt: skip
    assert control.state.apps[("t1", "legacy")].version == 2
    assert control.state.tenants_listing(ONE) == {"t1"}
