"""Stream tickets: `POST /v1/stream-tickets`, then `GET /v1/events[/stream]?ticket=` with no header,
as a page's native EventSource does; every other route refuses a ticket; tickets never reach a log.

Time is the app's clock (`Clock`), moved by the tests: expiry is tested without waiting.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from adapters.stream_tickets import TicketSigner
from app.http.factory import create_app
from app.lab_secrets import lab_secret
from app.logs import JsonFormatter
from app.settings import Settings
from app.usecases.control_plane import system_meta
from domain.control_plane import (
    MemberSet,
    ProjectCreated,
    SurfaceCreated,
    TenantCreated,
    decide_bootstrap,
    decide_member,
    decide_project,
    decide_surface,
    decide_tenant,
)
from domain.errors import InvalidToken, MintingDisabled
from domain.stream_tickets import TICKET_ROUTES, StreamTicket
from tests.http.conftest import Clock, LiveServer, sse_frames, start_live_server
from tests.http.test_events_api import assert_problem
from tests.http.test_identity import audit_trail, ok, stored, tampered
from tests.provision import admin_headers_sync, provision, provision_sync

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


def append(client: TestClient, headers: dict[str, str], *types: str) -> None:
    body = {"stream": "s", "events": [{"type": type_} for type_ in types]}
    ok(client.post("/v1/events", json=body, headers=headers))


def mint(client: TestClient, headers: dict[str, str], **body: Any) -> str:
    answer = client.post("/v1/stream-tickets", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    ticket: str = answer.json()["ticket"]
    return ticket


def read(client: TestClient, ticket: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return client.get("/v1/events", params={"ticket": ticket}, headers=headers)


def types_read(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [event["type"] for event in answer.json()["events"]]


def test_a_ticket_reads_the_partition_it_was_issued_for_and_no_other(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    ok(client.post("/v1/tenants/t1/projects", json={"project_id": "p2", "name": "p2"}, headers=admin))
    append(client, headers, "mine.first")
    append(client, {**headers, "X-Project-Id": "p2"}, "theirs.project")
    append(client, {**headers, "X-Env": "prod"}, "theirs.env")
    append(client, provision_sync(client, tenant="t2"), "theirs.tenant")
    ticket = mint(client, headers)
    append(client, headers, "mine.second")  # a ticket reads what is written after it too

    answer = read(client, ticket)  # no Authorization, no context header
    assert types_read(answer) == ["mine.first", "mine.second"]
    assert {
        (e["meta"]["tenant_id"], e["meta"]["env"], e["meta"]["project_id"]) for e in answer.json()["events"]
    } == {("t1", "dev", "p1")}
    assert types_read(client.get("/v1/events", params={"ticket": ticket, "after": "1"})) == ["mine.second"]


def test_the_answer_says_when_the_ticket_expires_by_default_and_at_most(
    client: TestClient, headers: dict[str, str]
) -> None:
    default = client.post("/v1/stream-tickets", json={}, headers=headers)
    assert default.status_code == 201, default.text
    assert default.json()["expires_at"] == "2030-01-01T00:10:00Z"  # 600 s
    assert "x-spine-position" not in default.headers  # nothing was written
    empty = client.post("/v1/stream-tickets", headers=headers)  # no body: the defaults too
    assert (empty.status_code, empty.json()["expires_at"]) == (201, "2030-01-01T00:10:00Z")
    longest = client.post("/v1/stream-tickets", json={"ttl_seconds": 3600}, headers=headers)
    assert longest.json()["expires_at"] == "2030-01-01T01:00:00Z"
    for ttl in (0, 3601, -5, 1.5, None):
        refused = client.post("/v1/stream-tickets", json={"ttl_seconds": ttl}, headers=headers)
        assert_problem(refused, 422, "request.invalid")


def test_a_ticket_is_accepted_until_it_expires_then_refused_as_expired(
    client: TestClient, headers: dict[str, str], clock: Clock
) -> None:
    append(client, headers, "a.b")
    ticket = mint(client, headers, ttl_seconds=60)
    clock.now = START + timedelta(seconds=59)
    assert types_read(read(client, ticket)) == ["a.b"]
    clock.now = START + timedelta(seconds=60)
    for path in ("/v1/events", "/v1/events/stream"):
        expired = client.get(path, params={"ticket": ticket})
        body = assert_problem(expired, 401, "auth.ticket_expired")
        assert "2030-01-01T00:01:00+00:00" in body["message"]
        assert expired.headers["www-authenticate"] == 'Bearer realm="spine"'
    assert types_read(read(client, mint(client, headers))) == ["a.b"]  # a new one: read again


def test_a_token_and_a_ticket_cannot_stand_in_for_each_other(
    client: TestClient, headers: dict[str, str], settings: Settings
) -> None:
    ticket = mint(client, headers)
    token = headers["Authorization"].removeprefix("Bearer ")
    context = {k: v for k, v in headers.items() if k != "Authorization"}
    as_bearer = client.get("/v1/events", headers={**context, "Authorization": f"Bearer {ticket}"})
    assert_problem(as_bearer, 401, "auth.invalid_token")
    assert_problem(read(client, token), 401, "auth.invalid_token")
    # a token whose claims are a ticket's, but typed as a token: Spine's key signed it, still no ticket
    claims = jwt.decode(ticket, options={"verify_signature": False})
    key = lab_secret(settings.data_dir, "token.key")
    assert_problem(read(client, jwt.encode(claims, key, algorithm="HS256")), 401, "auth.invalid_token")


@pytest.mark.parametrize("forgery", ["tampered", "garbled", "other_key", "empty"])
def test_a_forged_ticket_is_invalid_not_expired(
    client: TestClient, headers: dict[str, str], clock: Clock, forgery: str
) -> None:
    ticket = mint(client, headers)
    clock.now = START + timedelta(days=1)  # expired too: only a genuine ticket is told it expired
    forged = {
        "tampered": tampered(ticket),
        "garbled": ticket[:20] + "%$#" + ticket[20:],
        "other_key": TicketSigner("another-key-" + "0" * 40).sign(
            StreamTicket(
                tenant_id="t1", env="dev", project_id="p1", surface_id="web", user_id="u1", expires_at=0
            )
        ),
        "empty": "",
    }[forgery]
    body = assert_problem(read(client, forged), 401, "auth.invalid_token")
    if forged:
        assert forged not in json.dumps(body)


def test_one_credential_at_a_time(client: TestClient, headers: dict[str, str]) -> None:
    ticket = mint(client, headers)
    both = read(client, ticket, headers=headers)
    assert "send one credential" in assert_problem(both, 401, "auth.invalid_token")["message"]
    twice = client.get(f"/v1/events?ticket={ticket}&ticket={ticket}")
    assert_problem(twice, 401, "auth.invalid_token")


def test_every_other_route_refuses_a_ticket(client: TestClient, headers: dict[str, str]) -> None:
    """Writes and every other read, each with a ticket and no `Authorization`; nothing is written."""
    ticket = mint(client, headers)
    before = len(stored(client, "t1", "p1"))
    refused: set[str] = set()
    for route in client.app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format.startswith("/schema"):
            continue
        for handler in route.route_handlers:
            # public routes (health, bootstrap with its own key) read no credential at all
            if handler.opt.get("public") or handler.opt.get("ticket"):
                continue
            for method in sorted(handler.http_methods - {"HEAD", "OPTIONS"}):
                path = re.sub(r"\{[^}]+\}", "1", route.path_format)
                answer = client.request(method, path, params={"ticket": ticket}, json={})
                body = assert_problem(answer, 401, "auth.invalid_token")
                assert body["message"] == TICKET_ROUTES
                refused.add(f"{method} {route.path_format}")
    assert {
        "POST /v1/events",
        "POST /v1/stream-tickets",  # a ticket cannot renew itself
        "GET /v1/streams/{stream}",
        "PUT /v1/memory/{key}",
        "DELETE /v1/memory/{key}",
        "GET /v1/tenants/{tenant_id}",
    } <= refused
    assert len(stored(client, "t1", "p1")) == before


def test_headers_sent_with_a_ticket_may_only_repeat_it_and_a_disagreement_is_audited(
    client: TestClient, headers: dict[str, str]
) -> None:
    ticket = mint(client, {**headers, "X-App-Id": "app1"})
    same = {"X-Project-Id": "p1", "X-Surface-Id": "web", "X-App-Id": "app1", "X-Tenant-Id": "t1"}
    assert (
        read(client, ticket, headers={**same, "X-User-Id": "u1", "X-Env": "development"}).status_code == 200
    )
    disagreeing = {
        "X-Project-Id": ("project_id", "p2"),
        "X-Surface-Id": ("surface_id", "mobile"),
        "X-App-Id": ("app_id", "app2"),
        "X-Env": ("env", "prod"),
        "X-Tenant-Id": ("tenant_id", "t2"),
        "X-User-Id": ("user_id", "u2"),
    }
    request_ids = []
    for header, (field, value) in disagreeing.items():
        answer = read(client, ticket, headers={header: value, "X-Request-Id": f"req-{field}"})
        body = assert_problem(answer, 403, "auth.identity_override")
        assert (body["field"], body["source"]) == (field, "header")
        request_ids.append(f"req-{field}")
    trail = audit_trail(client)
    assert [(v["field"], v["sent"], v["request_id"]) for v in trail] == [
        (field, value, f"req-{field}") for field, value in disagreeing.values()
    ]
    assert all(ticket not in json.dumps(v) for v in trail)
    # a ticket issued without an app binds none: naming one is a disagreement too
    appless = mint(client, headers)
    assert_problem(read(client, appless, headers={"X-App-Id": "app1"}), 403, "auth.identity_override")


def test_every_use_checks_the_membership(client: TestClient, settings: Settings) -> None:
    """Spine has no member removal yet (`member.set` adds or changes a role): a ticket whose user is
    not a member of its tenant stands for one removed since, and is refused like their token."""
    provision_sync(client)
    key = lab_secret(settings.data_dir, "token.key")
    stranger = StreamTicket(
        tenant_id="t1", env="dev", project_id="p1", surface_id="web", user_id="u-gone", expires_at=2**31
    )
    assert_problem(read(client, TicketSigner(key).sign(stranger)), 403, "auth.not_member")


def test_no_log_record_holds_a_ticket(
    client: TestClient, headers: dict[str, str], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    issued = client.post("/v1/stream-tickets", json={}, headers=headers)
    ticket = issued.json()["ticket"]
    answers = [
        issued,
        read(client, ticket),
        client.get("/v1/events", params={"ticket": ticket, "after": "nope"}),  # 400 cursor.invalid
        client.get("/v1/events", params={"ticket": ticket, "limit": "0"}),  # 422, the query's errors
        read(client, ticket, headers={"X-Project-Id": "p2"}),  # audited and logged as a warning
        read(client, ticket, headers=headers),  # two credentials
        client.post("/v1/events", params={"ticket": ticket}, json={}),  # a write
        read(client, ticket + "x"),  # forged
    ]
    clock.now = START + timedelta(days=1)
    answers.append(read(client, ticket))  # expired
    assert [a.status_code for a in answers] == [201, 200, 400, 422, 403, 401, 401, 401, 401]
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert len([r for r in records if r.name == "spine.access"]) == len(answers)
    formatter = JsonFormatter()
    for record in records:
        assert ticket not in formatter.format(record) + repr(record.__dict__), record.getMessage()
    for answer in answers[1:]:  # nor any answer but the one that issued it
        assert ticket not in answer.text
        assert ticket not in " ".join(answer.headers.values())


async def follow(
    url: str, ticket: str, count: int, last_event_id: str | None, **params: str
) -> list[dict[str, str]]:
    """The first `count` event frames of an EventSource-like follow: the ticket in the URL, no
    header but `Last-Event-ID` (a browser's reconnect)."""
    sent = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    frames: list[dict[str, str]] = []
    with anyio.fail_after(20):
        async with (
            httpx.AsyncClient(base_url=url, timeout=10) as http,
            http.stream(
                "GET", "/v1/events/stream", params={"ticket": ticket, **params}, headers=sent
            ) as answer,
        ):
            assert answer.status_code == 200, await answer.aread()
            async for frame in sse_frames(answer):
                if "data" in frame:
                    frames.append(frame)
                    if len(frames) == count:
                        return frames
    raise AssertionError("the stream ended early")


@pytest.fixture
def servers(settings: Settings) -> Iterator[list[LiveServer]]:
    """Live servers over one data directory, started in turn; each stopped at the end."""
    started: list[LiveServer] = []
    yield started
    for live in started:
        stop(live)


def stop(live: LiveServer) -> None:
    live.server.should_exit = True
    live.thread.join(timeout=10)


async def test_an_event_source_resumes_with_its_ticket_across_a_restart(
    settings: Settings, servers: list[LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    servers.append(start_live_server(settings))
    async with httpx.AsyncClient(base_url=servers[0].url, timeout=10) as http:
        member = await provision(http)
        body = {"stream": "s", "events": [{"type": f"step.{i}"} for i in range(1, 6)]}
        assert (await http.post("/v1/events", json=body, headers=member)).status_code == 201
        ticket = (await http.post("/v1/stream-tickets", json={}, headers=member)).json()["ticket"]

    named = await follow(servers[0].url, ticket, 2, last_event_id=None, after="1")
    assert [(f["id"], f["event"]) for f in named] == [("2", "step.2"), ("3", "step.3")]
    stop(servers[0])  # the lab token key lives in the data directory: the ticket outlives the process

    servers.append(start_live_server(settings))
    resumed = await follow(servers[1].url, ticket, 2, last_event_id="3", named="false")
    assert [f["id"] for f in resumed] == ["4", "5"]
    assert all("event" not in f for f in resumed)  # a browser dispatches these as `message`
    assert [json.loads(f["data"])["type"] for f in resumed] == ["step.4", "step.5"]

    stop(servers[1])  # every stream has ended, and been logged, once its server stopped
    served = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the client's
    assert [r.__dict__["route"] for r in served if r.name == "spine.access"][-2:] == ["/v1/events/stream"] * 2
    formatter = JsonFormatter()
    for record in served:
        assert ticket not in formatter.format(record) + repr(record.__dict__), record.getMessage()


# A deployment that mints nothing: an external issuer's tokens only


def test_a_deployment_without_a_token_key_issues_no_tickets(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    settings = Settings(
        data_dir=tmp_path,
        deployment="production",
        jwt_issuer="https://issuer.example",
        jwt_audience="spine-api",
        jwks_file=jwks,
    )
    with TestClient(create_app(settings)) as client:
        control = client.app.state.services.control
        decisions = [
            lambda state: decide_bootstrap(state, "root"),
            lambda state: [decide_tenant(state, TenantCreated(tenant_id="t1", name="t1", mode="lab"))],
            lambda state: [decide_project(state, ProjectCreated(tenant_id="t1", project_id="p1", name="p1"))],
            lambda state: [
                decide_surface(state, SurfaceCreated(tenant_id="t1", surface_id="web", name="web"))
            ],
            lambda state: [decide_member(state, MemberSet(tenant_id="t1", user_id="u1", role="member"))],
        ]
        for decide in decisions:
            client.blocking_portal.call(control.execute, decide, system_meta("dev"))
        now = int(datetime.now(UTC).timestamp())  # the issuer's token is checked against real time
        claims = {"iss": "https://issuer.example", "aud": "spine-api", "sub": "u1", "tenant_id": "t1"}
        token = jwt.encode({**claims, "exp": now + 600}, key, algorithm="RS256", headers={"kid": "k1"})
        context = {"Authorization": f"Bearer {token}", "X-Project-Id": "p1", "X-Surface-Id": "web"}
        assert client.get("/v1/events", headers=context).status_code == 200  # the token is good
        assert_problem(
            client.post("/v1/stream-tickets", json={}, headers=context), 403, "auth.minting_disabled"
        )
        # and nothing signed with a key it does not have passes for a ticket
        forged = TicketSigner("any-key-" + "0" * 40).sign(
            StreamTicket(
                tenant_id="t1",
                env="dev",
                project_id="p1",
                surface_id="web",
                user_id="u1",
                expires_at=now + 600,
            )
        )
        assert_problem(read(client, forged), 401, "auth.invalid_token")


def test_the_signer_without_a_key_mints_nothing_and_accepts_nothing() -> None:
    keyless = TicketSigner(None)
    ticket = StreamTicket(
        tenant_id="t1", env="dev", project_id="p1", surface_id="web", user_id="u1", expires_at=1
    )
    with pytest.raises(MintingDisabled):
        keyless.sign(ticket)
    with pytest.raises(InvalidToken):
        keyless.verify(TicketSigner("k" * 40).sign(ticket))


def test_the_document_declares_the_ticket_beside_the_bearer_scheme(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    assert document["components"]["securitySchemes"]["streamTicket"] == {
        "type": "apiKey",
        "name": "ticket",
        "in": "query",
        "description": document["components"]["securitySchemes"]["streamTicket"]["description"],
    }
    for path in ("/v1/events", "/v1/events/stream"):
        operation = document["paths"][path]["get"]
        assert operation["security"] == [{"bearer": []}, {"streamTicket": []}]
        parameters = {(p["in"], p["name"]): p for p in operation["parameters"]}
        assert ("query", "ticket") in parameters
        assert not parameters["header", "X-Project-Id"]["required"]  # the ticket names the project
        assert "auth.ticket_expired" in operation["responses"]["401"]["description"]
    named = {p["name"]: p for p in document["paths"]["/v1/events/stream"]["get"]["parameters"]}["named"]
    assert "onmessage" in named["description"]
    assert document["paths"]["/v1/events"]["post"]["security"] == [{"bearer": []}]
    issue = document["paths"]["/v1/stream-tickets"]["post"]
    assert issue["security"] == [{"bearer": []}]
    assert "auth.minting_disabled" in issue["responses"]["403"]["description"]


async def test_a_ticket_follower_takes_one_of_its_tenants_follower_slots(
    settings: Settings, servers: list[LiveServer]
) -> None:
    servers.append(start_live_server(msgspec.structs.replace(settings, max_followers_per_tenant=1)))
    async with httpx.AsyncClient(base_url=servers[0].url, timeout=10) as http:
        member = await provision(http)
        ticket = (await http.post("/v1/stream-tickets", json={}, headers=member)).json()["ticket"]
        with anyio.fail_after(20):
            async with http.stream("GET", "/v1/events/stream", params={"ticket": ticket}) as first:
                assert first.status_code == 200
                async with http.stream("GET", "/v1/events/stream", headers=member) as second:
                    assert second.status_code == 429  # else an endless stream: not read
                    await second.aread()
                assert second.json()["error_code"] == "concurrency.too_many_followers"
