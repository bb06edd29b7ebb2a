"""Schemathesis over Spine's own OpenAPI document, against a live server.

Every operation but the SSE stream is called with generated requests as a member, a tenant admin
and a system admin of a lab tenant; every answer must be no server error and conform to the
document: a documented status, content type, headers and body. The counts per role are printed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup

from app.http.answers import OPERATIONS, operation_keys
from app.http.factory import create_app
from app.settings import Settings
from tests.http.conftest import LiveServer, start_live_server
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

EXAMPLES = 16  # per operation and role: the whole run stays within a few minutes on two cores
# endless SSE answers: tests/http/test_sse.py and tests/http/test_flags_stream.py cover them
SKIPPED = {"GET /v1/events/stream", "GET /v1/flags/stream"}
# Route writes go last: a platform-default route they write would send later requests elsewhere.
LAST = ("PUT /v1/routes", "DELETE /v1/routes")
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
TENANT = "conformance"
# Cloud routes a system admin writes point at a closed loopback port: never at a host elsewhere.
_NOWHERE = "127.0.0.1:9"
_SAFE_CONFIG: dict[str, dict[str, str]] = {
    "sqlite": {"path": "routes-under-test.db"},
    "dynamodb": {"table": "t", "region": "us-east-1", "endpoint_url": f"http://{_NOWHERE}"},
    "firestore": {"project": "p", "emulator_host": _NOWHERE},
    "cosmos": {
        "endpoint": f"http://{_NOWHERE}",
        "database": "d",
        "key": "secret://env/SPINE_TEST_NO_SUCH_KEY",
    },
    "redis": {"url": f"redis://{_NOWHERE}"},
    "s3": {"bucket": "b", "region": "us-east-1", "endpoint_url": f"http://{_NOWHERE}"},
    "azure_blob": {"account_url": f"http://{_NOWHERE}", "container": "c"},
    "filesystem": {"path": "objects-under-test"},
}


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # one example per distinct failure


@dataclass(frozen=True)
class Role:
    name: str
    headers: dict[str, str]


def test_every_served_operation_has_its_declarations(settings: Settings) -> None:
    app = create_app(settings)
    served = {
        key
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if handler.resolve_include_in_schema()
        for key in operation_keys(handler, route.path_format)
    }
    assert sorted(served - set(OPERATIONS)) == []  # an operation whose own answers nobody declared
    assert sorted(set(OPERATIONS) - served) == []  # a declaration of an operation that is gone


def test_the_document_declares_the_bearer_scheme_context_headers_and_problems(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "a token minted by Spine (lab, dev) or by the configured issuer",
    }
    problem = document["components"]["schemas"]["ProblemDetails"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "error_code", "message"}

    write = document["paths"]["/v1/runs/{run_id}/blackboard/{key}"]["put"]
    assert write["security"] == [{"bearer": []}]
    headers = {p["name"]: p["required"] for p in write["parameters"] if p["in"] == "header"}
    assert headers == {
        "If-Match": False,
        "X-Project-Id": True,
        "X-Surface-Id": True,
        "X-App-Id": False,
        "X-Env": False,
        "X-Tenant-Id": False,
        "X-User-Id": False,
        "X-Mode": False,
        "X-Request-Id": False,
    }
    answers = write["responses"]
    assert {"200", "400", "401", "403", "409", "413", "422", "503"} <= set(answers)
    assert {"X-Spine-Position", "ETag", "X-Request-Id"} <= set(answers["200"]["headers"])
    conflict = answers["409"]["content"]["application/problem+json"]["schema"]["allOf"]
    assert conflict[0] == {"$ref": "#/components/schemas/ProblemDetails"}
    assert conflict[1]["properties"]["error_code"]["enum"] == ["blackboard.version_conflict"]
    assert answers["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert answers["503"]["headers"]["Retry-After"]["required"] is True

    seo = document["paths"]["/v1/seo/{page}"]["get"]
    assert {p["name"]: p["required"] for p in seo["parameters"]}["X-App-Id"] is True
    assert "X-Spine-Min-Position" in {p["name"] for p in seo["parameters"]}
    assert "projection.lagging" in seo["responses"]["503"]["description"]

    health = document["paths"]["/health"]["get"]
    assert "security" not in health
    assert not {p["name"] for p in health.get("parameters", [])} & {"X-Project-Id", "X-Env"}
    control = document["paths"]["/v1/modes"]["get"]  # a control-plane route: no project, surface, app
    assert [p["name"] for p in control["parameters"]] == [
        "X-Env",
        "X-Tenant-Id",
        "X-User-Id",
        "X-Mode",
        "X-Request-Id",
    ]
    bootstrap = document["paths"]["/v1/auth/bootstrap"]["post"]
    assert bootstrap["security"] == [{"bootstrapKey": []}]


def test_a_stream_version_past_any_position_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    """Found by schemathesis: a version past SQLite's integers answered 503 (OverflowError)."""
    written = client.post(
        "/v1/events", json={"stream": "s1", "events": [{"type": "a.b", "data": {}}]}, headers=headers
    )
    assert written.status_code == 201, written.text
    answer = client.get("/v1/streams/s1", params={"after_version": str(2**63)}, headers=headers)
    assert (answer.status_code, answer.json()["error_code"]) == (422, "request.invalid"), answer.text


@pytest.mark.parametrize("body", [b"[]", b'{"user_id": 5}', b'{"user_id": "two words"}', b"{"])
def test_bootstrap_refuses_a_body_it_cannot_read(client: TestClient, body: bytes) -> None:
    """Found by schemathesis once the body was documented: these answered 500."""
    sent = {"X-Bootstrap-Key": BOOTSTRAP_KEY, "Content-Type": "application/json"}
    answer = client.post("/v1/auth/bootstrap", content=body, headers=sent)
    assert (answer.status_code, answer.json()["error_code"]) == (422, "request.invalid"), answer.text


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    # Durability is not under test here: without an fsync per commit the run takes half the time.
    server = start_live_server(msgspec.structs.replace(settings, sqlite_synchronous="OFF"))
    yield server
    server.server.should_exit = True
    server.thread.join(timeout=10)


def test_every_operation_conforms_for_every_role(live: LiveServer, settings: Settings) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        roles = _roles(client, settings.default_env)
        document = client.get("/schema/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = sorted(
        (op.ok() for op in schema.get_all_operations()),
        key=lambda op: (op.label in LAST, LAST.index(op.label) if op.label in LAST else 0, op.label),
    )
    tallies = {role.name: Tally() for role in roles}
    with requests.Session() as session:
        for role in roles:
            for operation in operations:
                if operation.label not in SKIPPED:
                    _exercise(operation, role, live.url, session, tallies[role.name])
    print()
    for name, tally in tallies.items():
        print(
            f"schemathesis as {name}: {tally.requests} requests, {len(tally.server_errors)} server errors, "
            f"{len(tally.failures)} conformance failures; answers by status: {dict(sorted(tally.statuses.items()))}"
        )
        for example in [*tally.server_errors[:20], *tally.failures.values()]:
            print("   ", example)
    assert all(tally.requests for tally in tallies.values())
    assert {name: len(t.server_errors) for name, t in tallies.items()} == dict.fromkeys(tallies, 0)
    assert {name: len(t.failures) for name, t in tallies.items()} == dict.fromkeys(tallies, 0)


def _exercise(operation: Any, role: Role, base_url: str, session: requests.Session, tally: Tally) -> None:
    fixed = {
        name: value
        for name, value in (("tenant_id", TENANT), ("kind", "flows"))
        if f"{{{name}}}" in operation.path
    }

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=st.one_of(
            operation.as_strategy(mode, headers=role.headers, path_parameters=fixed)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        )
    )
    def run(case: Any) -> None:
        if operation.label == "PUT /v1/routes" and isinstance(case.body, dict):
            _make_harmless(case.body)
        response = case.call(base_url=base_url, session=session, timeout=60)
        tally.requests += 1
        tally.statuses[response.status_code] += 1
        request = f"{case.method} {response.request.path_url} -> {response.status_code}"
        if response.status_code >= 500:
            tally.server_errors.append(f"{request}: {response.text[:300]}")
        try:
            case.validate_response(response, checks=[not_a_server_error, *CONFORMANCE])
        except FailureGroup as group:
            _record(tally, operation.label, request, group.exceptions)
        except Failure as failure:
            _record(tally, operation.label, request, [failure])

    run()


def _record(tally: Tally, label: str, request: str, failures: Any) -> None:
    for failure in failures:
        if failure.title.startswith("Server error"):
            continue  # counted as a server error
        message = re.sub(r"\s+", " ", failure.message)[:300]
        tally.failures.setdefault(f"{label}: {failure.title}", f"{request}: {failure.title}: {message}")


def _make_harmless(body: dict[str, Any]) -> None:
    backend = body.get("backend_type")
    body["config"] = dict(_SAFE_CONFIG.get(backend, {})) if isinstance(backend, str) else {}
    body["secret_refs"] = {}


def _roles(client: httpx.Client, env: str) -> list[Role]:
    member = provision_sync(client, tenant=TENANT, user="member1", role="member")
    admin = provision_sync(client, tenant=TENANT, user="admin1", role="admin")
    # `t_system` has no project: a system admin's data requests answer 400, as they should
    system = admin_headers_sync(client)
    bootstrap = {"X-Bootstrap-Key": BOOTSTRAP_KEY}

    def role(name: str, headers: dict[str, str], tenant: str, user: str, mode: str) -> Role:
        identity = {"X-Tenant-Id": tenant, "X-User-Id": user, "X-Mode": mode, "X-Env": env}
        if "X-Project-Id" in headers:
            identity["X-App-Id"] = "app1"
        return Role(name, {**headers, **identity, **bootstrap})

    return [
        role("member", member, TENANT, "member1", "lab"),
        role("tenant admin", admin, TENANT, "admin1", "lab"),
        role("system admin", system, "t_system", "admin", "system"),
    ]
