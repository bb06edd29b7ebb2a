"""Identity through the real app: tokens, overrides and their audit trail, membership and roles,
request context, env and mode, the control plane, and isolation between tenants and projects.

The audit view API does not exist yet: the audit trail is read from the app's own spine.
"""

from __future__ import annotations

import functools
import json
import re
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import msgspec
import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.lab_secrets import lab_secret
from app.settings import Settings
from domain.events import Event
from domain.partition import Partition
from tests.http.conftest import sse_frames
from tests.http.test_events_api import assert_problem
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision, provision_sync

TOKEN_KEY = "identity-tests-token-key-" + "0123456789abcdef" * 3
OTHER_KEY = "not-the-identity-tests-key-" + "fedcba9876543210" * 3
AUDIT_PROJECT = "_audit"
AUDIT_STREAM = "audit:auth"
APPEND = {"stream": "s", "events": [{"type": "x.done"}]}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with a token key known here so that tests can craft tokens."""
    return msgspec.structs.replace(settings, token_key=TOKEN_KEY)


# Helpers


def ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code in (200, 201), response.text
    return response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def crafted(key: str = TOKEN_KEY, algorithm: str = "HS256", **overrides: Any) -> str:
    """A token as Spine mints them, for u1 of t1; an override of None removes the claim."""
    now = int(time.time())
    claims = {"iss": "spine", "aud": "spine", "sub": "u1", "tenant_id": "t1", "iat": now, "exp": now + 600}
    claims = {k: v for k, v in {**claims, **overrides}.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm)


def tampered(token: str) -> str:
    head, body, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return ".".join([head, body, signature[:middle] + flipped + signature[middle + 1 :]])


def append(client: TestClient, headers: dict[str, str], type_: str = "x.done", **body: Any) -> httpx.Response:
    return client.post(
        "/v1/events", json={"stream": "s", "events": [{"type": type_}], **body}, headers=headers
    )


def member_token(
    client: TestClient, admin: dict[str, str], tenant: str, user: str, role: str = "member", **token: Any
) -> dict[str, str]:
    """Make `user` a member of `tenant` with `role`, and answer bearer headers for them."""
    ok(client.post(f"/v1/tenants/{tenant}/members", json={"user_id": user, "role": role}, headers=admin))
    answer = ok(client.post(f"/v1/tenants/{tenant}/tokens", json={"user_id": user, **token}, headers=admin))
    return bearer(answer.json()["token"])


def stored(
    client: TestClient, tenant: str, project: str, env: str = "dev", stream: str | None = None
) -> list[Event]:
    """A partition's events, read from the spine itself rather than through the API under test."""
    spine = client.app.state.services.spine
    partition = Partition(tenant_id=tenant, env=env, project_id=project)
    read = functools.partial(spine.read, partition, after=0, limit=1000, stream=stream)
    return list(client.blocking_portal.call(read).events)


def audit_trail(client: TestClient, tenant: str = "t1", env: str = "dev") -> list[dict[str, Any]]:
    events = stored(client, tenant, AUDIT_PROJECT, env, stream=AUDIT_STREAM)
    assert {event.type for event in events} <= {"auth.violation"}
    return [event.data for event in events]


def system_head(client: TestClient) -> int:
    spine = client.app.state.services.spine
    head: int = client.blocking_portal.call(spine.head, Partition.system("dev"))
    return head


def assert_violation(
    data: dict[str, Any], field: str, source: str, sent: str, actual: str | None, request_id: str
) -> None:
    assert {k: data[k] for k in ("field", "source", "sent", "actual", "request_id")} == {
        "field": field,
        "source": source,
        "sent": sent,
        "actual": actual,
        "request_id": request_id,
    }


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    """A system administrator."""
    return admin_headers_sync(client)


@pytest.fixture
def pinned(client: TestClient, headers: dict[str, str], admin: dict[str, str]) -> dict[str, str]:
    """u1 of t1, p1, web, with a token pinned to `production` (stored as `prod`)."""
    answer = client.post("/v1/tenants/t1/tokens", json={"user_id": "u1", "env": "production"}, headers=admin)
    return {**headers, **bearer(ok(answer).json()["token"])}


# Tokens: 401

DATA_ROUTES = [
    pytest.param("GET", "/v1/events", None, id="read"),
    pytest.param("POST", "/v1/events", APPEND, id="append"),
    pytest.param("GET", "/v1/streams/s", None, id="read-stream"),
    pytest.param("GET", "/v1/events/stream", None, id="follow"),
]

BAD_AUTHORIZATION = [
    pytest.param(lambda: None, "auth.missing_token", id="no-header"),
    pytest.param(lambda: "Basic dTE6cHc=", "auth.missing_token", id="basic-scheme"),
    pytest.param(lambda: "Bearer ", "auth.missing_token", id="empty-bearer"),
    pytest.param(lambda: crafted(), "auth.missing_token", id="no-scheme"),
    pytest.param(lambda: "Bearer not-a-jwt", "auth.invalid_token", id="garbage"),
    pytest.param(lambda: f"Bearer {crafted(exp=int(time.time()) - 3600)}", "auth.invalid_token", id="expired"),
    pytest.param(lambda: f"Bearer {crafted(key=OTHER_KEY)}", "auth.invalid_token", id="forged"),
    pytest.param(lambda: f"Bearer {tampered(crafted())}", "auth.invalid_token", id="tampered"),
    pytest.param(lambda: f"Bearer {crafted(key='', algorithm='none')}", "auth.invalid_token", id="alg-none"),
    pytest.param(lambda: f"Bearer {crafted(iss='someone-else')}", "auth.invalid_token", id="wrong-issuer"),
    pytest.param(lambda: f"Bearer {crafted(aud='someone-else')}", "auth.invalid_token", id="wrong-audience"),
    pytest.param(lambda: f"Bearer {crafted(tenant_id=None)}", "auth.invalid_token", id="no-tenant-id"),
]  # fmt: skip


@pytest.mark.parametrize(("authorization", "code"), BAD_AUTHORIZATION)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [*DATA_ROUTES, pytest.param("GET", "/v1/tenants/t1", None, id="control-plane")],
)
def test_a_missing_or_invalid_token_is_401(
    client: TestClient,
    headers: dict[str, str],
    method: str,
    path: str,
    body: Any,
    authorization: Any,
    code: str,
) -> None:
    sent = {k: v for k, v in headers.items() if k != "Authorization"}
    if (value := authorization()) is not None:
        sent["Authorization"] = value
    response = client.request(method, path, json=body, headers=sent)
    assert_problem(response, 401, code)
    assert response.headers["www-authenticate"] == 'Bearer realm="spine"'
    assert stored(client, "t1", "p1") == []


def test_a_crafted_token_with_the_right_key_is_accepted(client: TestClient, headers: dict[str, str]) -> None:
    # The baseline of the table above: each of its tokens has one defect this one has not.
    assert client.get("/v1/events", headers={**headers, **bearer(crafted())}).status_code == 200


# Overrides: 403 auth.identity_override, and an `auth.violation` in the tenant's audit trail

HEADER_OVERRIDES = [
    pytest.param("X-Tenant-Id", "t2", "tenant_id", "t1", id="tenant"),
    pytest.param("X-Tenant-Id", "T1", "tenant_id", "t1", id="tenant-case"),
    pytest.param("X-User-Id", "u2", "user_id", "u1", id="user"),
    pytest.param("X-Mode", "saas", "mode", "lab", id="mode"),
]


@pytest.mark.parametrize(("header", "sent", "field", "actual"), HEADER_OVERRIDES)
@pytest.mark.parametrize(("method", "path", "body"), DATA_ROUTES)
def test_a_header_override_is_refused_and_audited(
    client: TestClient,
    headers: dict[str, str],
    method: str,
    path: str,
    body: Any,
    header: str,
    sent: str,
    field: str,
    actual: str,
) -> None:
    request_id = f"override-{field}-{method.lower()}"
    response = client.request(
        method, path, json=body, headers={**headers, header: sent, "X-Request-Id": request_id}
    )
    problem = assert_problem(response, 403, "auth.identity_override")
    assert (problem["field"], problem["source"]) == (field, "header")
    assert response.headers["x-request-id"] == request_id
    [violation] = audit_trail(client)
    assert_violation(violation, field, "header", sent, actual, request_id)
    assert (violation["user_id"], violation["method"], violation["path"]) == ("u1", method, path)
    assert stored(client, "t1", "p1") == []


PAYLOAD_OVERRIDES = [
    pytest.param({}, {"tenant_id": "t2"}, "tenant_id", "t2", "t1", id="tenant"),
    pytest.param({}, {"tenant_id": 7}, "tenant_id", "7", "t1", id="tenant-not-a-string"),
    pytest.param({}, {"user_id": "u2"}, "user_id", "u2", "u1", id="user"),
    pytest.param({}, {"mode": "saas"}, "mode", "saas", "lab", id="mode"),
    pytest.param({"X-Env": "dev"}, {"env": "prod"}, "env", "prod", "dev", id="env"),
    pytest.param({}, {"project_id": "p2"}, "project_id", "p2", "p1", id="project"),
    pytest.param({}, {"surface_id": "mobile"}, "surface_id", "mobile", "web", id="surface"),
    pytest.param({"X-App-Id": "app1"}, {"app_id": "app2"}, "app_id", "app2", "app1", id="app"),
    pytest.param({}, {"app_id": "app1"}, "app_id", "app1", None, id="app-without-x-app-id"),
]  # fmt: skip


@pytest.mark.parametrize(("extra_headers", "fields", "field", "sent", "actual"), PAYLOAD_OVERRIDES)
def test_a_payload_override_is_refused_audited_and_writes_nothing(
    client: TestClient,
    headers: dict[str, str],
    extra_headers: dict[str, str],
    fields: dict[str, Any],
    field: str,
    sent: str,
    actual: str | None,
) -> None:
    request_id = f"payload-{field}"
    response = append(client, {**headers, **extra_headers, "X-Request-Id": request_id}, **fields)
    problem = assert_problem(response, 403, "auth.identity_override")
    assert (problem["field"], problem["source"]) == (field, "payload")
    [violation] = audit_trail(client)
    assert_violation(violation, field, "payload", sent, actual, request_id)
    assert stored(client, "t1", "p1") == []


AGREEING = [
    pytest.param({"X-Tenant-Id": "t1"}, {}, id="header-tenant"),
    pytest.param({"X-User-Id": "u1"}, {}, id="header-user"),
    pytest.param({"X-Mode": "lab"}, {}, id="header-mode"),
    pytest.param({"X-Env": "production"}, {}, id="header-env-chooses-when-unpinned"),
    pytest.param({}, {"tenant_id": "t1", "user_id": "u1", "mode": "lab"}, id="payload-truth"),
    pytest.param({}, {"tenant_id": None}, id="payload-null"),
    pytest.param({"X-Env": "dev"}, {"env": "development"}, id="payload-env-development-is-dev"),
    pytest.param({"X-Env": "stage"}, {"env": "staging"}, id="payload-env-stage-is-staging"),
    pytest.param({}, {"project_id": "p1", "surface_id": "web"}, id="payload-project-surface"),
    pytest.param({"X-App-Id": "app1"}, {"app_id": "app1"}, id="payload-app"),
    pytest.param(
        {"X-Tenant-Id": "t1", "X-User-Id": "u1", "X-Mode": "lab", "X-Env": "production", "X-App-Id": "app1"},
        {"tenant_id": "t1", "user_id": "u1", "mode": "lab", "env": "prod", "project_id": "p1",
         "surface_id": "web", "app_id": "app1"},
        id="everything",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("extra_headers", "fields"), AGREEING)
def test_agreeing_values_are_accepted_and_not_audited(
    client: TestClient, headers: dict[str, str], extra_headers: dict[str, str], fields: dict[str, Any]
) -> None:
    sent = {**headers, **extra_headers}
    assert append(client, sent, **fields).status_code == 201
    [event] = client.get("/v1/events", headers=sent).json()["events"]
    assert event["meta"]["tenant_id"] == "t1"
    for env in ("dev", "prod", "staging"):
        assert audit_trail(client, env=env) == []


def test_a_pinned_env_decides_the_partition_and_x_env_may_only_repeat_it(
    client: TestClient, pinned: dict[str, str]
) -> None:
    for spelling in (None, "prod", "production", "PROD"):
        sent = pinned if spelling is None else {**pinned, "X-Env": spelling}
        assert append(client, sent).status_code == 201
    assert [e.meta.env for e in stored(client, "t1", "p1", env="prod")] == ["prod"] * 4
    assert stored(client, "t1", "p1", env="dev") == []

    by_header = client.get("/v1/events", headers={**pinned, "X-Env": "dev", "X-Request-Id": "pin-h"})
    assert assert_problem(by_header, 403, "auth.identity_override")["field"] == "env"
    by_payload = append(client, {**pinned, "X-Request-Id": "pin-p"}, env="development")
    assert assert_problem(by_payload, 403, "auth.identity_override")["source"] == "payload"

    header_violation, payload_violation = audit_trail(client, env="prod")
    assert_violation(header_violation, "env", "header", "dev", "prod", "pin-h")
    assert_violation(payload_violation, "env", "payload", "development", "prod", "pin-p")
    assert audit_trail(client, env="dev") == []
    assert len(stored(client, "t1", "p1", env="prod")) == 4


def test_the_token_pins_the_normalized_env(client: TestClient, pinned: dict[str, str]) -> None:
    token = pinned["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, TOKEN_KEY, algorithms=["HS256"], audience="spine")
    assert (claims["tenant_id"], claims["sub"], claims["env"]) == ("t1", "u1", "prod")


def test_the_audit_trail_is_kept_in_the_env_of_the_request(
    client: TestClient, headers: dict[str, str]
) -> None:
    sent = {**headers, "X-Env": "production", "X-Tenant-Id": "t2", "X-Request-Id": "in-prod"}
    assert_problem(client.get("/v1/events", headers=sent), 403, "auth.identity_override")
    [violation] = audit_trail(client, env="prod")
    assert_violation(violation, "tenant_id", "header", "t2", "t1", "in-prod")
    assert audit_trail(client, env="dev") == []
    assert audit_trail(client, tenant="t2", env="prod") == []  # never the tenant that was claimed


def test_control_plane_headers_are_checked_and_audited_in_the_callers_tenant(
    client: TestClient, admin: dict[str, str]
) -> None:
    sent = {**admin, "X-Tenant-Id": "t1", "X-Request-Id": "cp-1"}
    problem = assert_problem(client.get("/v1/modes", headers=sent), 403, "auth.identity_override")
    assert (problem["field"], problem["source"]) == ("tenant_id", "header")
    [violation] = audit_trail(client, tenant="t_system")
    assert_violation(violation, "tenant_id", "header", "t1", "t_system", "cp-1")


def test_control_plane_bodies_name_what_they_act_on(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    # `tenant_id` and `user_id` in these bodies are the records, not claims about the caller.
    answer = client.post("/v1/tenants", json={"tenant_id": "t3", "name": "t3", "mode": "lab"}, headers=admin)
    assert answer.status_code == 201
    member = client.post("/v1/tenants/t1/tokens", json={"user_id": "u1"}, headers=admin)
    assert member.status_code == 201
    assert audit_trail(client, tenant="t_system") == []


# Membership and roles: 403 auth.not_member, 403 auth.forbidden

STRANGERS = [
    pytest.param({"sub": "stranger"}, id="unknown-user"),
    pytest.param({"tenant_id": "t2"}, id="member-of-another-tenant"),
    pytest.param({"tenant_id": "nowhere"}, id="unknown-tenant"),
]


@pytest.mark.parametrize("claims", STRANGERS)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        *DATA_ROUTES,
        pytest.param("GET", "/v1/tenants/t1", None, id="read-tenant"),
        pytest.param("GET", "/v1/modes", None, id="modes"),
    ],
)
def test_a_valid_token_of_a_non_member_is_403(
    client: TestClient,
    headers: dict[str, str],
    method: str,
    path: str,
    body: Any,
    claims: dict[str, str],
) -> None:
    provision_sync(client, tenant="t2", user="u2")
    sent = {**headers, **bearer(crafted(**claims))}
    assert_problem(client.request(method, path, json=body, headers=sent), 403, "auth.not_member")
    assert stored(client, "t1", "p1") == []


TENANT_ROUTES = [
    pytest.param("GET", "/v1/tenants/{t}", None, 200, id="read"),
    pytest.param("POST", "/v1/tenants/{t}/projects", {"project_id": "p9", "name": "p9"}, 201, id="project"),
    pytest.param("POST", "/v1/tenants/{t}/surfaces", {"surface_id": "s9", "name": "s9"}, 201, id="surface"),
    pytest.param("POST", "/v1/tenants/{t}/apps", {"app_id": "a9", "name": "a9"}, 201, id="app"),
    pytest.param("PUT", "/v1/tenants/{t}/apps/a8", {"name": "a8", "origins": ["https://a8.example"]}, 201, id="put-app"),
    pytest.param("POST", "/v1/tenants/{t}/members", {"user_id": "u9", "role": "admin"}, 201, id="member"),
    pytest.param("POST", "/v1/tenants/{t}/tokens", {"user_id": "u1"}, 201, id="token"),
]  # fmt: skip
SYSTEM_ROUTES = [
    pytest.param("GET", "/v1/modes", None, 200, id="modes"),
    pytest.param("POST", "/v1/tenants", {"tenant_id": "t9", "name": "t9"}, 201, id="tenant"),
    pytest.param("GET", "/v1/tenants/t_system", None, 200, id="read-system"),
]


@pytest.mark.parametrize("role", ["member", "agent"])
@pytest.mark.parametrize(("method", "path", "body", "status"), [*TENANT_ROUTES, *SYSTEM_ROUTES])
def test_members_without_the_admin_role_may_not_use_the_control_plane(
    client: TestClient,
    headers: dict[str, str],
    admin: dict[str, str],
    method: str,
    path: str,
    body: Any,
    status: int,
    role: str,
) -> None:
    caller = member_token(client, admin, "t1", f"{role}-user", role=role)
    before = system_head(client)
    response = client.request(method, path.format(t="t1"), json=body, headers=caller)
    assert_problem(response, 403, "auth.forbidden")
    assert system_head(client) == before


@pytest.fixture
def two_tenants(client: TestClient, headers: dict[str, str], admin: dict[str, str]) -> dict[str, str]:
    """t1 and t2, u1 a member of both; answers the headers of `boss`, an admin of t1."""
    provision_sync(client, tenant="t2", user="u1")
    return member_token(client, admin, "t1", "boss", role="admin")


@pytest.mark.parametrize(("method", "path", "body", "status"), TENANT_ROUTES)
def test_tenant_admins_manage_their_own_tenant_and_no_other(
    client: TestClient, two_tenants: dict[str, str], method: str, path: str, body: Any, status: int
) -> None:
    boss = two_tenants
    assert client.request(method, path.format(t="t1"), json=body, headers=boss).status_code == status
    before = system_head(client)
    response = client.request(method, path.format(t="t2"), json=body, headers=boss)
    assert_problem(response, 403, "auth.forbidden")
    assert system_head(client) == before


@pytest.mark.parametrize(("method", "path", "body", "status"), SYSTEM_ROUTES)
def test_tenant_admins_are_not_system_admins(
    client: TestClient, two_tenants: dict[str, str], method: str, path: str, body: Any, status: int
) -> None:
    assert_problem(client.request(method, path, json=body, headers=two_tenants), 403, "auth.forbidden")


@pytest.mark.parametrize(("method", "path", "body", "status"), TENANT_ROUTES)
def test_system_admins_manage_every_tenant(
    client: TestClient,
    two_tenants: dict[str, str],
    admin: dict[str, str],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    for tenant in ("t1", "t2"):
        assert client.request(method, path.format(t=tenant), json=body, headers=admin).status_code == status


def test_a_role_counts_only_with_a_token_of_its_tenant(
    client: TestClient, two_tenants: dict[str, str], admin: dict[str, str]
) -> None:
    # u1 is a member of t1 and becomes an admin of t2: with its t1 token it administers nothing.
    ok(client.post("/v1/tenants/t2/members", json={"user_id": "u1", "role": "admin"}, headers=admin))
    as_t1 = member_token(client, admin, "t1", "u1")
    as_t2 = bearer(
        ok(client.post("/v1/tenants/t2/tokens", json={"user_id": "u1"}, headers=admin)).json()["token"]
    )
    assert_problem(client.get("/v1/tenants/t2", headers=as_t1), 403, "auth.forbidden")
    assert_problem(client.get("/v1/tenants/t1", headers=as_t1), 403, "auth.forbidden")
    assert client.get("/v1/tenants/t2", headers=as_t2).status_code == 200
    assert_problem(client.get("/v1/tenants/t1", headers=as_t2), 403, "auth.forbidden")


def test_a_tenant_member_named_like_the_system_admin_is_not_one(
    client: TestClient, two_tenants: dict[str, str], admin: dict[str, str]
) -> None:
    assert client.get("/v1/tenants/t_system", headers=admin).json()["members"] == {"admin": "admin"}
    namesake = member_token(client, two_tenants, "t1", "admin", role="admin")  # made by t1's own admin
    assert client.get("/v1/tenants/t1", headers=namesake).status_code == 200
    assert_problem(client.get("/v1/modes", headers=namesake), 403, "auth.forbidden")
    assert_problem(client.get("/v1/tenants/t2", headers=namesake), 403, "auth.forbidden")


# Request context: 400 context.*


@pytest.mark.parametrize("missing", ["X-Project-Id", "X-Surface-Id"])
@pytest.mark.parametrize(("method", "path", "body"), DATA_ROUTES)
def test_a_missing_project_or_surface_is_400(
    client: TestClient, headers: dict[str, str], method: str, path: str, body: Any, missing: str
) -> None:
    sent = {k: v for k, v in headers.items() if k != missing}
    problem = assert_problem(
        client.request(method, path, json=body, headers=sent), 400, "context.missing_field"
    )
    assert problem["field"] == missing


UNKNOWN_CONTEXT = [
    pytest.param("X-Project-Id", "nope", "project", id="project"),
    pytest.param("X-Project-Id", "p-of-t2", "project", id="project-of-another-tenant"),
    pytest.param("X-Surface-Id", "nope", "surface", id="surface"),
    pytest.param("X-Surface-Id", "s-of-t2", "surface", id="surface-of-another-tenant"),
    pytest.param("X-App-Id", "nope", "app", id="app"),
    pytest.param("X-App-Id", "a-of-t2", "app", id="app-of-another-tenant"),
]


@pytest.mark.parametrize(("header", "value", "kind"), UNKNOWN_CONTEXT)
@pytest.mark.parametrize(("method", "path", "body"), DATA_ROUTES)
def test_an_unknown_project_surface_or_app_is_400(
    client: TestClient,
    headers: dict[str, str],
    admin: dict[str, str],
    method: str,
    path: str,
    body: Any,
    header: str,
    value: str,
    kind: str,
) -> None:
    provision_sync(client, tenant="t2", project="p-of-t2", surface="s-of-t2")
    ok(client.post("/v1/tenants/t2/apps", json={"app_id": "a-of-t2", "name": "a"}, headers=admin))
    response = client.request(method, path, json=body, headers={**headers, header: value})
    problem = assert_problem(response, 400, f"context.unknown_{kind}")
    assert problem["field"] == f"{kind}_id"


def test_x_app_id_is_optional_but_recorded_when_sent(client: TestClient, headers: dict[str, str]) -> None:
    assert append(client, headers).status_code == 201
    assert append(client, {**headers, "X-App-Id": "app1"}).status_code == 201
    assert [e.meta.app_id for e in stored(client, "t1", "p1")] == [None, "app1"]
    assert [e.meta.surface_id for e in stored(client, "t1", "p1")] == ["web", "web"]


# Env and mode

ENV_SPELLINGS = [
    pytest.param(None, "dev", id="default"),
    pytest.param("production", "prod", id="production"),
    pytest.param("development", "dev", id="development"),
    pytest.param("stage", "staging", id="stage"),
    pytest.param("PROD", "prod", id="upper-case"),
    pytest.param("qa", "qa", id="other"),
]


@pytest.mark.parametrize(("sent", "env"), ENV_SPELLINGS)
def test_env_is_normalized(client: TestClient, headers: dict[str, str], sent: str | None, env: str) -> None:
    with_env = headers if sent is None else {**headers, "X-Env": sent}
    assert append(client, with_env).status_code == 201
    [event] = stored(client, "t1", "p1", env=env)
    assert event.meta.env == env
    [seen] = client.get("/v1/events", headers={**headers, "X-Env": env}).json()["events"]
    assert seen["meta"]["env"] == env


def test_mode_comes_from_the_tenant_record(client: TestClient, headers: dict[str, str]) -> None:
    assert append(client, headers).status_code == 201
    assert append(client, {**headers, "X-Mode": "lab"}).status_code == 201
    assert [e.meta.mode for e in stored(client, "t1", "p1")] == ["lab", "lab"]


def test_a_tenant_is_saas_unless_told_otherwise(client: TestClient, admin: dict[str, str]) -> None:
    created = ok(client.post("/v1/tenants", json={"tenant_id": "t3", "name": "Three"}, headers=admin))
    assert created.json()["mode"] == "saas"
    assert client.get("/v1/tenants/t3", headers=admin).json()["mode"] == "saas"
    ok(client.post("/v1/tenants/t3/projects", json={"project_id": "p1", "name": "p1"}, headers=admin))
    ok(client.post("/v1/tenants/t3/surfaces", json={"surface_id": "web", "name": "web"}, headers=admin))
    member = {**member_token(client, admin, "t3", "u1"), "X-Project-Id": "p1", "X-Surface-Id": "web"}
    # the guard accepts X-Mode: saas; a saas tenant then needs a route, and gets no lab fallback
    assert_problem(append(client, {**member, "X-Mode": "saas"}), 503, "event_spine.missing_route")
    assert_problem(append(client, {**member, "X-Mode": "lab"}), 403, "auth.identity_override")


# The control plane


@pytest.mark.parametrize("key", [None, "", "wrong-key", BOOTSTRAP_KEY + "x"])
def test_bootstrap_without_the_right_key_is_refused(client: TestClient, key: str | None) -> None:
    sent = {} if key is None else {"X-Bootstrap-Key": key}
    assert_problem(client.post("/v1/auth/bootstrap", headers=sent), 403, "auth.bootstrap_refused")
    assert system_head(client) == 0


def test_bootstrap_is_disabled_in_production_without_a_key(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, deployment="production"))) as client:
        for sent in ({}, {"X-Bootstrap-Key": ""}, {"X-Bootstrap-Key": "anything"}):
            response = client.post("/v1/auth/bootstrap", headers=sent)
            assert "disabled" in assert_problem(response, 403, "auth.bootstrap_refused")["detail"]


def test_in_lab_the_bootstrap_key_is_generated_under_the_data_dir(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        key = lab_secret(tmp_path, "bootstrap.key")
        assert_problem(client.post("/v1/auth/bootstrap"), 403, "auth.bootstrap_refused")
        assert (
            ok(client.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": key})).json()["user_id"]
            == "admin"
        )


def test_bootstrap_is_idempotent(client: TestClient) -> None:
    key = {"X-Bootstrap-Key": BOOTSTRAP_KEY}
    first = ok(client.post("/v1/auth/bootstrap", json={"user_id": "root"}, headers=key)).json()
    head = system_head(client)
    again = ok(client.post("/v1/auth/bootstrap", json={"user_id": "mallory"}, headers=key)).json()
    assert system_head(client) == head  # nothing new
    assert (first["tenant_id"], first["user_id"]) == ("t_system", "root")
    assert (again["tenant_id"], again["user_id"]) == ("t_system", "root")
    for answer in (first, again):
        assert client.get("/v1/modes", headers=bearer(answer["token"])).status_code == 200
    system = client.get("/v1/tenants/t_system", headers=bearer(again["token"])).json()
    assert system["members"] == {"root": "admin"}


def test_the_seeded_modes_are_readable_by_system_admins(client: TestClient, admin: dict[str, str]) -> None:
    modes = ok(client.get("/v1/modes", headers=admin)).json()
    assert [mode["name"] for mode in modes] == ["enterprise", "lab", "saas"]
    assert all(mode["description"] for mode in modes)


def test_an_unknown_mode_is_422(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        "/v1/tenants", json={"tenant_id": "t3", "name": "t3", "mode": "gold"}, headers=admin
    )
    assert_problem(response, 422, "request.invalid")
    assert_problem(client.get("/v1/tenants/t3", headers=admin), 404, "tenant.not_found")


DUPLICATES = [
    pytest.param("/v1/tenants", {"tenant_id": "t1", "name": "again"}, id="tenant"),
    pytest.param("/v1/tenants", {"tenant_id": "t_system", "name": "again"}, id="system-tenant"),
    pytest.param("/v1/tenants/t1/projects", {"project_id": "p1", "name": "again"}, id="project"),
    pytest.param("/v1/tenants/t1/surfaces", {"surface_id": "web", "name": "again"}, id="surface"),
    pytest.param("/v1/tenants/t1/apps", {"app_id": "app1", "name": "again"}, id="app"),
]


@pytest.mark.parametrize(("path", "body"), DUPLICATES)
def test_creating_a_record_twice_is_409(
    client: TestClient, headers: dict[str, str], admin: dict[str, str], path: str, body: dict[str, str]
) -> None:
    before = system_head(client)
    assert_problem(client.post(path, json=body, headers=admin), 409, "control_plane.already_exists")
    assert system_head(client) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "/v1/tenants/nowhere", None, id="read"),
        pytest.param("POST", "/v1/tenants/nowhere/projects", {"project_id": "p", "name": "p"}, id="project"),
        pytest.param("POST", "/v1/tenants/nowhere/tokens", {"user_id": "u1"}, id="token"),
    ],
)
def test_an_unknown_tenant_is_404(
    client: TestClient, admin: dict[str, str], method: str, path: str, body: Any
) -> None:
    assert_problem(client.request(method, path, json=body, headers=admin), 404, "tenant.not_found")


def test_a_token_for_a_non_member_is_404(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    response = client.post("/v1/tenants/t1/tokens", json={"user_id": "stranger"}, headers=admin)
    assert_problem(response, 404, "member.not_found")


# Every route is guarded, except the few that say they are public

PUBLIC_PATHS = {"/health", "/ready", "/metrics", "/v1/auth/bootstrap", "/v1/client.js"}
# the operator console's page and assets: no data in them, every call they make carries a token
PUBLIC_PATHS |= {"/console", "/console/{name:str}"}
# Spine's own object URLs: no token, the grant in the path is their credential (tests/http/test_objects.py)
GRANTED_PATHS = {"/v1/object-uploads/{upload_id:str}", "/v1/object-downloads/{download_id:str}"}
BODY_METHODS = {"POST", "PUT", "PATCH"}


def is_schema(path: str) -> bool:
    return path == "/schema" or path.startswith("/schema/")


def guarded_requests(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every non-public handler, with dummy path parameters.

    Litestar's automatic OPTIONS handlers are left out: they answer no data, and whether a CORS
    preflight needs a token is not an identity rule.
    """
    found: set[tuple[str, str]] = set()
    for route in client.app.routes:
        if is_schema(route.path):
            continue
        for handler in route.route_handlers:
            if handler.opt.get("public"):
                continue
            for method in handler.http_methods - {"OPTIONS"}:
                found.add((method, re.sub(r"\{[^}]*\}", "x", route.path)))
    return sorted(found)


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        pytest.param(None, "auth.missing_token", id="no-token"),
        pytest.param(f"Bearer {crafted(key=OTHER_KEY)}", "auth.invalid_token", id="forged-token"),
    ],
)
def test_every_route_that_is_not_public_needs_a_token(
    client: TestClient, headers: dict[str, str], authorization: str | None, code: str
) -> None:
    requests = guarded_requests(client)
    assert ("POST", "/v1/events") in requests  # the walk found the API
    assert ("GET", "/v1/tenants/x") in requests
    sent = {"Authorization": authorization} if authorization else {}
    for method, path in requests:
        body: dict[str, Any] | None = {} if method in BODY_METHODS else None
        response = client.request(method, path, json=body, headers=sent)
        assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
        if method != "HEAD":  # a HEAD's answer has no body
            assert_problem(response, 401, code)


def test_only_operations_bootstrap_and_the_browser_client_are_public(client: TestClient) -> None:
    public = {
        route.path
        for route in client.app.routes
        for handler in route.route_handlers
        if handler.opt.get("public")
    }
    assert public == PUBLIC_PATHS | GRANTED_PATHS
    for path in sorted(PUBLIC_PATHS | {"/schema/openapi.json"}):
        method = "POST" if path == "/v1/auth/bootstrap" else "GET"
        response = client.request(method, path)
        assert response.status_code != 401, f"{method} {path}"
    token = crafted()  # a bearer token is no grant, in the path or in `Authorization`
    for method, path in (("PUT", "/v1/object-uploads/"), ("GET", "/v1/object-downloads/")):
        for sent in (f"{path}x", f"{path}{token}"):
            refused = client.request(method, sent, headers={"Authorization": f"Bearer {token}"})
            assert_problem(refused, 401, "auth.invalid_token")


# Isolation: a token only ever touches its own tenant

TENANTS = ("t1", "t2")
PROJECTS = ("p1", "p2")
PARTITIONS = [(tenant, project) for tenant in TENANTS for project in PROJECTS]


def secret(tenant: str, project: str) -> str:
    return f"secret.{tenant}.{project}"


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


@pytest.fixture
def world(client: TestClient, admin: dict[str, str]) -> dict[tuple[str, str], dict[str, str]]:
    """u1 is a member of t1 and of t2; both have p1 and p2; each partition holds one secret on
    stream `s`. Answers the headers of u1's token of each tenant, naming each project."""
    headers: dict[tuple[str, str], dict[str, str]] = {}
    for tenant in TENANTS:
        member = provision_sync(client, tenant=tenant, project="p1", user="u1")
        second_project = {"project_id": "p2", "name": "p2"}
        ok(client.post(f"/v1/tenants/{tenant}/projects", json=second_project, headers=admin))
        for project in PROJECTS:
            headers[tenant, project] = {**member, "X-Project-Id": project}
            ok(append(client, headers[tenant, project], secret(tenant, project)))
    return headers


@pytest.mark.parametrize(
    ("target_tenant", "target_project"), PARTITIONS, ids=[f"aims-at-{t}-{p}" for t, p in PARTITIONS]
)
@pytest.mark.parametrize("token_tenant", TENANTS, ids=[f"token-of-{t}" for t in TENANTS])
def test_a_token_only_ever_touches_its_own_tenant(
    client: TestClient,
    world: dict[tuple[str, str], dict[str, str]],
    token_tenant: str,
    target_tenant: str,
    target_project: str,
) -> None:
    own = (token_tenant, target_project)  # where every request of this test may land, at most
    member = world[own]
    foreign = target_tenant != token_tenant
    target = f"{target_tenant}/dev/{target_project}"
    aims = {"tenant_id": target_tenant, "project_id": target_project, "env": "dev", "partition": target}
    # Headers Spine does not read: they change nothing either.
    stray = {**member, "X-Tenant": target_tenant, "Tenant-Id": target_tenant, "X-Partition": target}
    claiming = {**member, "X-Tenant-Id": target_tenant}

    # Reads: queries naming a tenant are ignored; a header naming another one is refused.
    assert types(client.get("/v1/events", params=aims, headers=stray).json()["events"]) == [secret(*own)]
    assert types(client.get("/v1/streams/s", params=aims, headers=stray).json()["events"]) == [secret(*own)]
    for path in ("/v1/events", "/v1/streams/s"):
        response = client.get(path, headers=claiming)
        if foreign:
            assert_problem(response, 403, "auth.identity_override")
        else:
            assert types(response.json()["events"]) == [secret(*own)]
    # Paths naming a tenant belong to the control plane, where a member may do nothing.
    assert_problem(client.get(f"/v1/tenants/{target_tenant}", headers=member), 403, "auth.forbidden")

    # Writes: the same, and a body naming another tenant is refused too.
    assert client.post("/v1/events", params=aims, json=APPEND, headers=stray).status_code == 201
    by_body = append(client, member, "write.body", tenant_id=target_tenant)
    by_header = append(client, claiming, "write.header")
    for response in (by_body, by_header):
        if foreign:
            assert_problem(response, 403, "auth.identity_override")
        else:
            assert response.status_code == 201

    # The truth, from the spine itself: nothing but the token's own partition has changed.
    written = ["x.done"] if foreign else ["x.done", "write.body", "write.header"]
    for partition in PARTITIONS:
        events = stored(client, *partition)
        assert [e.type for e in events] == [secret(*partition), *(written if partition == own else [])]
        assert {e.meta.tenant_id for e in events} == {partition[0]}
    violations = audit_trail(client, tenant=token_tenant)
    assert [v["sent"] for v in violations] == ([target_tenant] * 4 if foreign else [])
    if foreign:
        assert audit_trail(client, tenant=target_tenant) == []  # kept by the caller's tenant


async def test_a_follower_never_receives_another_partitions_events(http: httpx.AsyncClient) -> None:
    """`http` follows t1/p1 as u1, while t2/p1 (same user, same project name) and t1/p2 are written."""
    received: list[dict[str, Any]] = []
    following = anyio.Event()

    async def write(type_: str, headers: dict[str, str] | None = None) -> None:
        body = {"stream": "s", "events": [{"type": type_}]}
        response = await http.post("/v1/events", json=body, headers=headers)
        assert response.status_code == 201, response.text

    async def follow() -> None:
        aims = {"after": "0", "tenant_id": "t2", "project_id": "p2"}  # ignored: identity is the token's
        async with http.stream("GET", "/v1/events/stream", params=aims) as response:
            assert response.status_code == 200
            frames = sse_frames(response)
            assert "retry" in await anext(frames)
            following.set()
            async for frame in frames:
                if "data" in frame:
                    received.append(json.loads(frame["data"]))
                    if received[-1]["type"] == "sentinel" or received[-1]["type"].startswith("theirs."):
                        return  # the sentinel ends the wait; a leak ends it early, for the assert below

    with anyio.fail_after(30):
        key = {"X-Bootstrap-Key": BOOTSTRAP_KEY}
        admin = bearer((await http.post("/v1/auth/bootstrap", headers=key)).json()["token"])
        second_project = {"project_id": "p2", "name": "p2"}
        created = await http.post("/v1/tenants/t1/projects", json=second_project, headers=admin)
        assert created.status_code == 201
        foreign = {"theirs.t2.p1": await provision(http, tenant="t2"), "theirs.t1.p2": {"X-Project-Id": "p2"}}
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(follow)
            await write("mine")
            await following.wait()
            for type_, headers in foreign.items():
                await write(type_, headers)
            await write("sentinel")  # after every foreign append: the follower stops here
    assert types(received) == ["mine", "sentinel"]
    assert {(e["meta"]["tenant_id"], e["meta"]["project_id"]) for e in received} == {("t1", "p1")}


# Regressions: each of these was a hole once.


@pytest.mark.parametrize("project_id", ["_", "_audit", "_anything"])
def test_project_ids_starting_with_underscore_are_reserved(
    client: TestClient, headers: dict[str, str], admin: dict[str, str], project_id: str
) -> None:
    """`_` is the control plane's partition in t_system, `_audit` every tenant's audit trail."""
    for tenant in ("t1", "t_system"):
        response = client.post(
            f"/v1/tenants/{tenant}/projects", json={"project_id": project_id, "name": "x"}, headers=admin
        )
        assert_problem(response, 422, "request.invalid")
    response = client.post(
        "/v1/events",
        json={"stream": "audit:auth", "events": [{"type": "auth.violation"}]},
        headers={**headers, "X-Project-Id": project_id},
    )
    assert_problem(response, 400, "context.unknown_project")


def test_an_invalid_env_is_refused_before_anything_is_audited(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.get("/v1/events", headers={**headers, "X-Env": "a/b", "X-Tenant-Id": "t2"})
    assert_problem(response, 400, "context.invalid_field")
    assert audit_trail(client) == []


@pytest.mark.parametrize("path", ["/health", "/v1/auth/bootstrap", "/v1/events"])
def test_options_needs_no_token(client: TestClient, path: str) -> None:
    """CORS preflights carry no credentials; Litestar's OPTIONS answers only `Allow`."""
    response = client.options(path)
    assert response.status_code == 204
    assert "allow" in response.headers


def test_a_body_env_that_repeats_the_default_env_is_accepted(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = {"stream": "s", "env": "development", "events": [{"type": "a"}]}
    assert client.post("/v1/events", json=body, headers=headers).status_code == 201
    assert audit_trail(client) == []


def test_a_deployment_without_a_token_key_says_it_mints_none(tmp_path: Path) -> None:
    """Production with an external issuer only: bootstrap refuses before recording anything."""
    settings = Settings(data_dir=tmp_path, deployment="production", bootstrap_key=BOOTSTRAP_KEY)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": BOOTSTRAP_KEY})
        assert_problem(response, 403, "auth.minting_disabled")
        assert stored(client, "t_system", "_") == []
