"""Rate limits (issue 17, item 1): a tenant's budgets on Redis, enforced by the guard hook.

Buckets live in the shared test Redis (db 15) under a key prefix of each test's own, so runs never
see each other's budgets. Windows are an hour long: no budget refills while a test runs, so every
count is exact without reading a clock. Redis outages are tested against a server each test
starts on a port of its own and stops (never the shared one).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.test_events_api import append, assert_problem
from tests.peers import await_ready, free_port, listening
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

HOUR = 3600
PAGE_VIEW = {"name": "page_view", "platform": "web"}
WRITES_2 = {"classes": {"writes": {"limit": 2, "window_seconds": HOUR}}}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer


def set_limits(client: TestClient, admin: dict[str, str], body: dict[str, Any], tenant: str = "t1") -> Any:
    return ok(client.put(f"/v1/tenants/{tenant}/limits", json=body, headers=admin))


def route_to(client: TestClient, admin: dict[str, str], url: str, prefix: str, tenant: str = "t1") -> None:
    route = {"resource_kind": "rate_limit", "tenant_id": tenant, "env": "dev", "backend_type": "redis",
             "config": {"url": url, "prefix": prefix}}  # fmt: skip
    ok(client.put("/v1/routes", json=route, headers=admin))


def write(client: TestClient, headers: dict[str, str]) -> Any:
    return append(client, headers, "s", "note.added")


def head(client: TestClient, headers: dict[str, str]) -> int:
    answer: int = ok(client.get("/v1/events", headers=headers)).json()["head"]
    return answer


@pytest.fixture
def limited(
    client: TestClient, headers: dict[str, str], admin: dict[str, str], redis_url: str, prefix: str
) -> dict[str, str]:
    """t1/p1/u1 with writes limited to 2 an hour, on the test Redis."""
    route_to(client, admin, redis_url, prefix)
    set_limits(client, admin, WRITES_2)
    return headers


# The limits as control-plane data


def test_limits_read_back_whole_with_each_class_s_outage_rule(
    client: TestClient, admin: dict[str, str]
) -> None:
    provision_sync(client)
    body = {
        "classes": {
            "writes": {"limit": 10, "window_seconds": 60},
            "reads": {"limit": 100, "window_seconds": 1},
        },
        "projects": {"p1": {"sse": {"limit": 5, "window_seconds": 60}}},
        "users": {"u1": {"analytics": {"limit": 1000, "window_seconds": 60}}},
        "on_unavailable": {"reads": "closed"},
    }
    written = set_limits(client, admin, body)
    read = ok(client.get("/v1/tenants/t1/limits", headers=admin)).json()
    assert read == {
        **body,
        "tenant_id": "t1",
        "on_unavailable": {"reads": "closed", "writes": "closed", "sse": "open", "analytics": "closed"},
        "objects": None,  # the object store's size limits: the same record (tests/http/test_objects.py)
        "position": int(written.headers["x-spine-position"]),
    }
    set_limits(client, admin, {})  # a PUT replaces: nothing left out survives
    assert ok(client.get("/v1/tenants/t1/limits", headers=admin)).json()["classes"] == {}


def test_only_system_admins_set_limits_and_tenant_admins_read_them(
    client: TestClient, admin: dict[str, str]
) -> None:
    member = provision_sync(client)
    tenant_admin = provision_sync(client, user="boss", role="admin")
    assert_problem(
        client.put("/v1/tenants/t1/limits", json=WRITES_2, headers=tenant_admin), 403, "auth.forbidden"
    )
    assert_problem(client.get("/v1/tenants/t1/limits", headers=member), 403, "auth.forbidden")
    ok(client.get("/v1/tenants/t1/limits", headers=tenant_admin))
    assert_problem(client.get("/v1/tenants/nobody/limits", headers=admin), 404, "tenant.not_found")
    assert_problem(
        client.put("/v1/tenants/nobody/limits", json=WRITES_2, headers=admin), 404, "tenant.not_found"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"classes": {"writes": {"limit": 0, "window_seconds": 60}}},
        {"classes": {"writes": {"limit": 1, "window_seconds": 0}}},
        {"classes": {"deletes": {"limit": 1, "window_seconds": 60}}},
        {"projects": {"bad id": {}}},
        {"on_unavailable": {"reads": "maybe"}},
        {"tenant_id": "t2"},
        {"burst": 3},
    ],
)
def test_limits_breaking_a_rule_are_422(
    client: TestClient, admin: dict[str, str], body: dict[str, Any]
) -> None:
    provision_sync(client)
    assert_problem(client.put("/v1/tenants/t1/limits", json=body, headers=admin), 422, "request.invalid")


def test_a_rate_limit_route_names_redis(client: TestClient, admin: dict[str, str]) -> None:
    provision_sync(client)
    route = {"resource_kind": "rate_limit", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite",
             "config": {"path": "limits.db"}}  # fmt: skip
    assert_problem(client.put("/v1/routes", json=route, headers=admin), 422, "request.invalid")


# Enforcement


def test_over_the_limit_is_429_with_retry_after_and_nothing_appended(
    client: TestClient, limited: dict[str, str]
) -> None:
    first, second = ok(write(client, limited), 201), ok(write(client, limited), 201)
    assert first.headers["ratelimit-policy"] == '"writes";q=2;w=3600'
    assert (first.headers["ratelimit"].split(";")[1], second.headers["ratelimit"].split(";")[1]) == (
        "r=1",
        "r=0",
    )
    refused = write(client, limited)
    problem = assert_problem(refused, 429, "rate_limit.exceeded")
    assert (problem["route_class"], problem["limit"], problem["window_seconds"]) == ("writes", 2, HOUR)
    # GCRA: one request of the budget comes back every window / limit = 1800 s
    assert 1700 < int(refused.headers["retry-after"]) <= 1800
    assert refused.headers["ratelimit-policy"] == '"writes";q=2;w=3600'
    assert refused.headers["ratelimit"].startswith('"writes";r=0;t=')
    assert head(client, limited) == 2
    assert "ratelimit" not in client.get("/v1/events", headers=limited).headers  # reads are not limited


def test_each_route_class_has_its_own_budget(
    client: TestClient, headers: dict[str, str], admin: dict[str, str], redis_url: str, prefix: str
) -> None:
    route_to(client, admin, redis_url, prefix)
    one = {"limit": 1, "window_seconds": HOUR}
    set_limits(client, admin, {"classes": {"reads": one, "writes": one, "analytics": one}})
    ok(client.get("/v1/events", headers=headers))
    assert_problem(client.get("/v1/events", headers=headers), 429, "rate_limit.exceeded")
    ok(write(client, headers), 201)
    assert_problem(write(client, headers), 429, "rate_limit.exceeded")
    app = {**headers, "X-App-Id": "app1"}
    ok(client.post("/v1/analytics/events", json=PAGE_VIEW, headers=app), 201)
    refused = client.post("/v1/analytics/events", json=PAGE_VIEW, headers=app)
    assert assert_problem(refused, 429, "rate_limit.exceeded")["route_class"] == "analytics"


def test_health_metrics_and_the_limits_routes_are_never_limited(
    client: TestClient, limited: dict[str, str], admin: dict[str, str]
) -> None:
    set_limits(client, admin, {"classes": {"reads": {"limit": 1, "window_seconds": HOUR}}})
    ok(client.get("/v1/events", headers=limited))
    assert_problem(client.get("/v1/events", headers=limited), 429, "rate_limit.exceeded")
    for _ in range(3):
        ok(client.get("/health"))
        ok(client.get("/metrics"))
        ok(client.get("/schema/openapi.json"))
    tenant_admin = provision_sync(client, user="boss", role="admin")
    for _ in range(3):
        answer = ok(client.get("/v1/tenants/t1/limits", headers=tenant_admin))
        assert "ratelimit" not in answer.headers


def test_another_user_project_or_tenant_has_a_budget_of_its_own(
    client: TestClient, limited: dict[str, str], admin: dict[str, str]
) -> None:
    ok(write(client, limited), 201)
    ok(write(client, limited), 201)
    assert_problem(write(client, limited), 429, "rate_limit.exceeded")
    other_user = provision_sync(client, user="u2")
    ok(write(client, other_user), 201)
    other_project = provision_sync(client, project="p2")
    ok(write(client, other_project), 201)
    other_tenant = provision_sync(client, tenant="t2")  # no limits of its own
    for _ in range(3):
        assert "ratelimit" not in ok(write(client, other_tenant), 201).headers
    assert_problem(write(client, limited), 429, "rate_limit.exceeded")


def test_a_user_override_wins_over_a_project_one_which_wins_over_the_tenant_s(
    client: TestClient, limited: dict[str, str], admin: dict[str, str]
) -> None:
    def writes(n: int) -> dict[str, Any]:
        return {"writes": {"limit": n, "window_seconds": HOUR}}

    set_limits(
        client, admin, {"classes": writes(1), "projects": {"p2": writes(2)}, "users": {"u3": writes(3)}}
    )
    in_p2 = provision_sync(client, project="p2")
    u3_in_p2 = provision_sync(client, project="p2", user="u3")
    for headers, budget in ((limited, 1), (in_p2, 2), (u3_in_p2, 3)):
        for _ in range(budget):
            ok(write(client, headers), 201)
        assert assert_problem(write(client, headers), 429, "rate_limit.exceeded")["limit"] == budget


def test_a_changed_limit_takes_effect_at_once(
    client: TestClient, limited: dict[str, str], admin: dict[str, str]
) -> None:
    ok(write(client, limited), 201)
    ok(write(client, limited), 201)
    assert_problem(write(client, limited), 429, "rate_limit.exceeded")
    set_limits(client, admin, {"classes": {"writes": {"limit": 3, "window_seconds": HOUR}}})
    assert ok(write(client, limited), 201).headers["ratelimit-policy"] == '"writes";q=3;w=3600'
    set_limits(client, admin, {})
    assert "ratelimit" not in ok(write(client, limited), 201).headers


# No route


def test_a_lab_tenant_without_a_route_is_not_limited_and_says_so(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    set_limits(client, admin, {"classes": {"writes": {"limit": 1, "window_seconds": HOUR}}})
    for _ in range(3):
        answer = ok(write(client, headers), 201)
        assert "rate_limit.missing_route" in answer.headers["x-spine-warning"]
        assert "ratelimit" not in answer.headers


def test_a_saas_tenant_with_limits_and_no_route_is_refused(client: TestClient, admin: dict[str, str]) -> None:
    saas = provision_sync(client, tenant="t9", mode="saas")
    set_limits(client, admin, {"classes": {"reads": {"limit": 100, "window_seconds": HOUR}}}, tenant="t9")
    problem = assert_problem(client.get("/v1/events", headers=saas), 503, "rate_limit.missing_route")
    assert problem["resource_kind"] == "rate_limit"


# Redis unreachable


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, which the test may stop."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--daemonize", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        problem = await_ready(server, listening(port), 10)
        assert problem is None, f"redis-server: {problem}"
        yield f"redis://127.0.0.1:{port}/0", server
    finally:
        server.terminate()
        server.wait(10)


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    assert server.wait(10) is not None


@pytest.mark.parametrize("breaker_open", [False, True])
def test_with_redis_down_reads_fail_open_and_writes_closed_by_default(
    client: TestClient,
    headers: dict[str, str],
    admin: dict[str, str],
    own_redis: tuple[str, subprocess.Popen[bytes]],
    breaker_open: bool,
) -> None:
    url, server = own_redis
    route_to(client, admin, url, "rl:")
    lots = {"limit": 1000, "window_seconds": HOUR}
    set_limits(client, admin, {"classes": {"reads": lots, "writes": lots}})
    assert "ratelimit" in ok(write(client, headers), 201).headers
    stop(server)
    for _ in range(6 if breaker_open else 1):  # past the breaker's failures: refused without a call
        refused = write(client, headers)
        assert_problem(refused, 503, "rate_limit.backend_unavailable")
        assert int(refused.headers["retry-after"]) >= 1
        answer = ok(client.get("/v1/events", headers=headers))
        assert answer.json()["head"] == 1
        assert "ratelimit" not in answer.headers  # admitted unmetered: no budget to state
    if breaker_open:  # (diagnostics' own probe would count a failure too: only looked at here)
        checks = ok(client.get("/v1/diagnostics", headers=admin)).json()["checks"]
        [limiter] = [c for c in checks if (c["tenant_id"], c["resource_kind"]) == ("t1", "rate_limit")]
        assert (limiter["status"], limiter["breaker"]) == ("unreachable", "open")


def test_with_redis_down_a_tenant_s_own_rule_decides(
    client: TestClient,
    headers: dict[str, str],
    admin: dict[str, str],
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, server = own_redis
    route_to(client, admin, url, "rl:")
    lots = {"limit": 1000, "window_seconds": HOUR}
    body = {
        "classes": {"reads": lots, "writes": lots},
        "on_unavailable": {"reads": "closed", "writes": "open"},
    }
    set_limits(client, admin, body)
    stop(server)
    ok(write(client, headers), 201)
    assert_problem(client.get("/v1/events", headers=headers), 503, "rate_limit.backend_unavailable")


# Several instances


def test_two_instances_on_one_redis_share_one_budget(tmp_path: Path, redis_url: str, prefix: str) -> None:
    """Two apps with stores of their own, the same tenant, user and limits, routed to one Redis:
    however the requests are spread over them, the budget is admitted once."""
    clients = []
    with (
        TestClient(create_app(Settings(data_dir=tmp_path / "a", bootstrap_key=BOOTSTRAP_KEY))) as a,
        TestClient(create_app(Settings(data_dir=tmp_path / "b", bootstrap_key=BOOTSTRAP_KEY))) as b,
    ):
        for instance in (a, b):
            headers = provision_sync(instance)
            admin = admin_headers_sync(instance)
            route_to(instance, admin, redis_url, prefix)
            set_limits(instance, admin, {"classes": {"writes": {"limit": 5, "window_seconds": HOUR}}})
            clients.append((instance, headers))
        admitted = {"a": 0, "b": 0}
        for i in range(14):
            name = "ab"[i % 2] if i < 8 else "b"
            instance, headers = clients["ab".index(name)]
            answer = write(instance, headers)
            if answer.status_code == 201:
                admitted[name] += 1
            else:
                assert_problem(answer, 429, "rate_limit.exceeded")
        assert sum(admitted.values()) == 5
        assert admitted["a"] > 0
        assert admitted["b"] > 0


# Diagnostics


def test_diagnostics_show_the_rate_limit_route_its_round_trip_and_a_dead_redis(
    client: TestClient,
    headers: dict[str, str],
    admin: dict[str, str],
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    provision_sync(client, tenant="t2")

    def checks() -> dict[str, dict[str, Any]]:
        answer = ok(client.get("/v1/diagnostics", headers=admin)).json()["checks"]
        return {c["tenant_id"]: c for c in answer if c["resource_kind"] == "rate_limit"}

    lab = checks()["t2"]
    assert (lab["status"], lab["error_code"], lab["lab_fallback"]) == (
        "missing",
        "rate_limit.missing_route",
        True,
    )
    assert lab["warnings"] == ["lab: no rate limit applies"]
    url, server = own_redis
    route_to(client, admin, url, "rl:")
    routed = checks()["t1"]
    assert (routed["status"], routed["backend_type"], routed["breaker"]) == ("ok", "redis", "closed")
    assert routed["round_trip_ms"] >= 0
    stop(server)
    dead = checks()["t1"]
    assert (dead["status"], dead["error_code"]) == ("unreachable", "rate_limit.backend_unavailable")
