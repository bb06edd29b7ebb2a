"""A route config never holds a secret, nor a reference to Spine's own: refused when written (422,
nothing appended), refused again when resolved (503), and never shown when an older version stored
one (issue 12, item 9)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from domain.append import AppendRequest
from domain.events import EventMeta, NewEvent
from domain.partition import Partition
from domain.routing import route_stream
from tests.cli.conftest import Cli
from tests.http.conftest import start_live_server
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

PASSWORD = "hunter2-0f9c7b1e"  # what must never come back
DYNAMODB = {"resource_kind": "event_spine", "tenant_id": "t1", "env": "dev", "project_id": "p1",
            "backend_type": "dynamodb"}  # fmt: skip
TABLE = {"table": "spine", "region": "eu-west-1"}
REDIS = {**DYNAMODB, "backend_type": "redis"}
COSMOS = {**DYNAMODB, "backend_type": "cosmos"}
# a cosmos route resolves its key before it connects: nothing listens on port 9, nothing is reached
COSMOS_AT = {"endpoint": "http://127.0.0.1:9", "database": "d"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A lab deployment whose routes may name secret files in `tmp_path/vault`."""
    (tmp_path / "vault").mkdir()
    return Settings(data_dir=tmp_path, secrets_dir=tmp_path / "vault", bootstrap_key="test-bootstrap-key")


@pytest.fixture
def admin(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    return admin_headers_sync(client)


def refused(client: TestClient, admin: dict[str, str], route: dict[str, Any], code: str) -> dict[str, Any]:
    """`route` is refused with `code`, the password is not in the answer, and nothing was appended."""
    before = client.get("/v1/routes/history", headers=admin).json()["changes"]
    answer = client.put("/v1/routes", json=route, headers=admin)
    problem = assert_problem(answer, 422, code)
    assert PASSWORD not in answer.text
    assert client.get("/v1/routes/history", headers=admin).json()["changes"] == before
    return problem


@pytest.mark.parametrize(
    ("route", "key"),
    [
        ({**DYNAMODB, "config": {**TABLE, "endpoint_url": f"http://admin:{PASSWORD}@localhost:8000"}},
         "config.endpoint_url"),
        ({**DYNAMODB, "config": {**TABLE, "endpoint_url": f"http://{PASSWORD}@localhost:8000"}},
         "config.endpoint_url"),
        ({**REDIS, "config": {"url": f"redis://:{PASSWORD}@cache:6379/0"}}, "config.url"),
        ({**REDIS, "config": {"url": f"redis://default:{PASSWORD}@cache:6379/0"}}, "config.url"),
        ({**REDIS, "config": {"url": f"redis://cache:6379/0?password={PASSWORD}"}}, "config.url"),
        ({**REDIS, "config": {"url": f"rediss://cache:6379/0?ssl_cert_reqs=none&password={PASSWORD}"}},
         "config.url"),
        ({**DYNAMODB, "config": {**TABLE, "replicas": [{"endpoint_url": f"https://u:{PASSWORD}@r1"}]}},
         "config.replicas[0].endpoint_url"),
        ({**DYNAMODB, "config": {**TABLE, "proxy": {"https": f"http://u:{PASSWORD}@proxy:3128"}}},
         "config.proxy.https"),
        ({**DYNAMODB, "config": {**TABLE, "dsn": f"Server=db;Uid=u;Pwd={PASSWORD}"}}, "config.dsn"),
        ({**DYNAMODB, "config": {**TABLE, "auth": {"password": PASSWORD}}}, "config.auth.password"),
        ({**COSMOS, "config": {**COSMOS_AT, "key": PASSWORD}}, "config.key"),
    ],
    ids=["user-and-password", "user-only", "redis-password-only", "redis-user-and-password",
         "redis-query-password", "rediss-query-password-among-others", "nested-in-a-list",
         "nested-in-a-dict", "connection-string", "under-a-secret-key-nested", "inline-key"],
)  # fmt: skip
def test_a_config_holding_a_secret_is_refused_naming_the_key_only(
    client: TestClient, admin: dict[str, str], route: dict[str, Any], key: str
) -> None:
    problem = refused(client, admin, route, "routing.secret_in_config")
    assert problem["key"] == key
    assert key in problem["message"]


def test_credentials_by_reference_are_accepted(client: TestClient, admin: dict[str, str]) -> None:
    """The refusal is of values, not of URLs: the same backend, its password by reference."""
    route = {**REDIS, "config": {"url": "redis://cache:6379/0"},
             "secret_refs": {"password": "secret://env/REDIS_PASSWORD"}}  # fmt: skip
    answer = client.put("/v1/routes", json=route, headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.json()["secret_refs"] == {"password": "secret://env/REDIS_PASSWORD"}
    local = {**DYNAMODB, "config": {**TABLE, "endpoint_url": "http://localhost:8000/?region=eu-west-1"}}
    assert client.put("/v1/routes", json=local, headers=admin).status_code == 200


@pytest.mark.parametrize(
    "route",
    [
        {**COSMOS, "config": {**COSMOS_AT, "key": "secret://env/SPINE_TOKEN_KEY"}},
        {**COSMOS, "config": {**COSMOS_AT, "key": "secret://env/SPINE_BOOTSTRAP_KEY"}},
        {**COSMOS, "config": {**COSMOS_AT, "key": "secret://env/SPINE_REDIS_URL"}},
        {**REDIS, "config": {"url": "redis://cache:6379/0"}, "secret_refs": {"password": "secret://env/SPINE_TOKEN_KEY"}},
        {**DYNAMODB, "config": {**TABLE, "extra": ["secret://env/SPINE_BOOTSTRAP_KEY"]}},
    ],
    ids=["token-key", "bootstrap-key", "any-spine-variable", "in-secret-refs", "nested-under-any-key"],
)  # fmt: skip
def test_a_reference_to_spines_own_variables_is_refused(
    client: TestClient, admin: dict[str, str], route: dict[str, Any]
) -> None:
    problem = refused(client, admin, route, "routing.invalid_secret_ref")
    assert "SPINE_* variables are Spine's own" in problem["message"]


def test_a_reference_to_spines_own_key_files_is_refused(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    own = settings.data_dir / "secrets"
    assert (own / "token.key").exists()  # the lab deployment made its keys there
    for name in ("token.key", "bootstrap.key"):
        route = {**COSMOS, "config": {**COSMOS_AT, "key": f"secret://file/{own / name}"}}
        problem = refused(client, admin, route, "routing.invalid_secret_ref")
        assert "Spine's own key material" in problem["message"]


def test_spines_own_key_files_are_refused_even_inside_the_secrets_dir(tmp_path: Path) -> None:
    """An operator who names the data directory itself as the secrets directory."""
    settings = Settings(data_dir=tmp_path, secrets_dir=tmp_path, bootstrap_key="test-bootstrap-key")
    with TestClient(create_app(settings)) as client:
        admin = admin_headers_sync(client)
        route = {
            **COSMOS,
            "tenant_id": "*",
            "config": {**COSMOS_AT, "key": "secret://file/secrets/token.key"},
        }
        problem = refused(client, admin, route, "routing.invalid_secret_ref")
        assert "Spine's own key material" in problem["message"]


@pytest.mark.parametrize(
    "name",
    ["../outside.key", "a/../../outside.key", "{tmp}/outside.key", "/etc/passwd", "/proc/self/environ"],
)
def test_a_file_reference_outside_the_secrets_dir_is_refused(
    client: TestClient, admin: dict[str, str], tmp_path: Path, name: str
) -> None:
    (tmp_path / "outside.key").write_text(PASSWORD)
    route = {**COSMOS, "config": {**COSMOS_AT, "key": f"secret://file/{name.format(tmp=tmp_path)}"}}
    problem = refused(client, admin, route, "routing.invalid_secret_ref")
    assert problem["key"] == "config.key"


def test_a_file_reference_inside_the_secrets_dir_is_accepted(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    assert settings.secrets_dir is not None
    for name in ("cosmos.key", "team/cosmos.key", str(settings.secrets_dir / "cosmos.key")):
        route = {**COSMOS, "config": {**COSMOS_AT, "key": f"secret://file/{name}"}}
        answer = client.put("/v1/routes", json=route, headers=admin)
        assert answer.status_code == 200, answer.text


def test_without_a_secrets_dir_no_file_reference_is_accepted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, bootstrap_key="test-bootstrap-key")
    with TestClient(create_app(settings)) as client:
        admin = admin_headers_sync(client)
        route = {**COSMOS, "tenant_id": "*", "config": {**COSMOS_AT, "key": "secret://file/cosmos.key"}}
        problem = refused(client, admin, route, "routing.invalid_secret_ref")
        assert "SPINE_SECRETS_DIR" in problem["message"]


def test_a_symlink_out_of_the_secrets_dir_is_refused_when_resolved(
    client: TestClient, headers: dict[str, str], admin: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    """Statically inside, really outside: the resolver follows the link and refuses it (503)."""
    assert settings.secrets_dir is not None
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "host.key").write_text(PASSWORD)
    (settings.secrets_dir / "cosmos.key").symlink_to(tmp_path / "private" / "host.key")
    route = {**COSMOS, "config": {**COSMOS_AT, "key": "secret://file/cosmos.key"}}
    assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
    answer = client.get("/v1/events", headers=headers)
    problem = assert_problem(answer, 503, "secret.invalid_ref")
    assert "symbolic link" in problem["message"]
    assert PASSWORD not in answer.text
    assert "private" not in answer.text


async def _append_as_an_older_version(client: TestClient, *routes: dict[str, Any]) -> None:
    """`route.set` events as a version before these rules wrote them: straight into the system spine."""
    spine = client.app.state.services.spine
    meta = EventMeta(tenant_id="t_system", env="dev", project_id="_", user_id="admin")
    for route in routes:
        key = (route["resource_kind"], route["tenant_id"], route["env"], route["project_id"])
        request = AppendRequest(
            stream=route_stream(*key), events=[NewEvent(type="route.set", data=route)], meta=meta
        )
        await spine.append(Partition.system("dev"), request)


def test_a_stored_record_holding_credentials_is_never_shown_and_the_service_starts(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    old = [
        {**DYNAMODB, "project_id": "p2",
         "config": {**TABLE, "endpoint_url": f"http://admin:{PASSWORD}@10.0.0.1:8000",
                    "replicas": [f"https://u:{PASSWORD}@r1/?password={PASSWORD}"]},
         "secret_refs": {"extra": PASSWORD}, "cost_notes": f"see https://ops:{PASSWORD}@wiki/db"},
        {**REDIS, "resource_kind": "budget_store", "config": {"url": f"redis://:{PASSWORD}@cache:6379/0"}},
    ]  # fmt: skip
    with TestClient(create_app(settings)) as client:
        provision_sync(client)
        client.blocking_portal.call(_append_as_an_older_version, client, *old)
    caplog.set_level(logging.INFO)
    with TestClient(create_app(settings)) as client:  # the service starts with them
        headers = provision_sync(client)
        admin = admin_headers_sync(client)
        listed = client.get("/v1/routes", headers=admin)
        history = client.get("/v1/routes/history", headers=admin)
        diagnostics = client.get("/v1/diagnostics", headers=admin)
        for answer in (listed, history, diagnostics):
            assert answer.status_code == 200, answer.text
            assert PASSWORD not in answer.text
        routes = {tuple(r[k] for k in ("resource_kind", "project_id")): r for r in listed.json()["routes"]}
        shown = routes[("event_spine", "p2")]
        assert shown["config"]["endpoint_url"] == "http://***@10.0.0.1:8000"
        assert shown["config"]["replicas"] == ["https://***@r1/?password=***"]
        assert shown["secret_refs"] == {"extra": "***"}
        assert shown["cost_notes"] == "see https://***@wiki/db"
        assert routes[("budget_store", "p1")]["config"]["url"] == "redis://***@cache:6379/0"
        changes = history.json()["changes"]
        unversioned = {name: value for name, value in shown.items() if name != "version"}  # a listing's own
        assert [c["route"] for c in changes if c["key"][0] == "event_spine" and c["key"][3] == "p2"] == [
            unversioned
        ]
        assert client.post("/v1/events", json={"stream": "s", "events": [{"type": "x"}]},
                           headers=headers).status_code == 201  # fmt: skip
    assert PASSWORD not in "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


def test_a_stored_reference_to_spines_own_key_is_refused_when_resolved(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never read, even where env references are allowed (lab): 503, and the value is not used."""
    monkeypatch.setenv("SPINE_TOKEN_KEY", PASSWORD)
    with TestClient(create_app(settings)) as client:
        headers = provision_sync(client)
        old = {**COSMOS, "config": {**COSMOS_AT, "key": "secret://env/SPINE_TOKEN_KEY"}}
        client.blocking_portal.call(_append_as_an_older_version, client, old)
    with TestClient(create_app(settings)) as client:  # it starts, and its registry holds the record
        answer = client.get("/v1/events", headers=headers)
        problem = assert_problem(answer, 503, "secret.invalid_ref")
        assert "Spine's own configuration" in problem["message"]
        assert PASSWORD not in answer.text


def test_the_cli_shows_a_stored_record_redacted(settings: Settings) -> None:
    """`spine routes list|history` print what the API answers: the same redaction, as text or JSON."""
    old = {**DYNAMODB, "config": {**TABLE, "endpoint_url": f"http://admin:{PASSWORD}@10.0.0.1:8000"}}
    with TestClient(create_app(settings)) as client:
        provision_sync(client)
        client.blocking_portal.call(_append_as_an_older_version, client, old)
    live = start_live_server(settings)
    try:
        with httpx.Client(base_url=live.url, timeout=10) as http:
            admin = admin_headers_sync(http)["Authorization"].removeprefix("Bearer ")
        cli = Cli(live.url)
        for command in (("list",), ("list", "--json"), ("history",), ("history", "--json")):
            shown = cli("routes", *command, token=admin)
            assert PASSWORD not in shown.output
            if "--json" in command:
                assert "http://***@10.0.0.1:8000" in shown.stdout
    finally:
        live.server.should_exit = True
        live.thread.join(timeout=10)
