"""Identifiers at the boundary (issue 12, items 1, 4 and 6): every malformed one is a 4xx before
anything is written or any runner starts, views run only for partitions that exist, and the service
starts again after each of those requests and over stored records that do not parse.

A restart is a real one: each `service(settings)` block runs the app's lifespan (startup starts
the views the store holds; shutdown closes the stores) on the same data directory.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import jwt
import msgspec
import pytest
from litestar.testing import TestClient

from adapters.sqlite.spine import SQLiteSpine
from app.http.factory import create_app
from app.settings import Settings
from domain.append import AppendRequest
from domain.events import EventMeta, NewEvent
from domain.partition import Partition
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

MALFORMED_ENVS = ["bad env", "a/b", "", "e" * 200]
TOKEN_KEY = "k" * 32
# rows an older version (or a hand) could have left in the lab view store: keys that do not parse,
# a view this version does not have, partitions of an unknown tenant, project or env
BAD_ROWS = [("t1/a/b/p1", "memory"), ("garbage", "memory"), ("", "blackboard"), ("t1/bad env/p1", "sessions"),
            ("t1/dev/p1", "no-such-view"), ("nope/dev/p1", "memory"), ("t1/dev/nope", "memory"),
            ("t1/nope/p1", "memory")]  # fmt: skip
ROUTE = {"resource_kind": "memory_store", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite", "config": {"path": "m.db"}}  # fmt: skip


@contextmanager
def service(settings: Settings) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(settings)) as client:
        yield client


def remember(client: TestClient[Any], headers: dict[str, str], key: str, value: Any) -> str:
    answer = client.put(f"/v1/memory/{key}", json={"value": value}, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.headers["x-spine-position"])


def recall(client: TestClient[Any], headers: dict[str, str], key: str, position: str) -> Any:
    answer = client.get(f"/v1/memory/{key}", headers={**headers, "X-Spine-Min-Position": position})
    assert answer.status_code == 200, answer.text
    return answer.json()["value"]


def views(client: TestClient[Any], headers: dict[str, str]) -> set[tuple[str, str, str, str]]:
    answer = client.get("/v1/projections", headers=headers)
    assert answer.status_code == 200, answer.text
    return {(v["name"], v["tenant_id"], v["env"], v["project_id"]) for v in answer.json()["projections"]}


def names_field(problem: dict[str, Any], field: str) -> bool:
    return field in problem["message"] and (
        problem.get("field") == field or any(e.get("key") == field for e in problem.get("errors", []))
    )


def test_a_path_that_encodes_a_slash_is_refused_not_read_as_another_name(
    client: TestClient[Any], headers: dict[str, str]
) -> None:
    """`/v1/memory/goal%2F` would otherwise be the key `goal` (the router drops a trailing '/')."""
    for path in ("/v1/memory/goal%2F", "/v1/memory/goal%2f", "/v1/runs/r%2F/blackboard/k"):
        answer = client.put(path, json={"value": 1}, headers=headers)
        assert "encoded '/'" in assert_problem(answer, 422, "request.invalid")["message"]
    assert client.get("/v1/memory/goal", headers=headers).json()["found"] is False
    assert client.get("/v1/memory/goal?note=a%2Fb", headers=headers).status_code == 200  # a query may


# item 1


@pytest.mark.parametrize(
    "body", [{"env": "a/b", "project_id": "p1"}, {"env": "a/b"}], ids=["partition", "filter"]
)
def test_a_rebuild_in_a_malformed_env_is_refused_and_the_service_starts_again(
    settings: Settings, body: dict[str, str]
) -> None:
    with service(settings) as client:
        boss = provision_sync(client, user="boss", role="admin")  # a tenant admin of t1
        position = remember(client, boss, "goal", "ship")
        before = views(client, boss)
        answer = client.post("/v1/projections/memory/rebuild", json=body, headers=boss)
        assert names_field(assert_problem(answer, 422, "request.invalid"), "env")
        assert views(client, boss) == before  # no runner started
    with service(settings) as client:
        assert recall(client, boss, "goal", position) == "ship"
        assert views(client, boss) == before


# item 4


@pytest.mark.parametrize("env", MALFORMED_ENVS, ids=["space", "slash", "empty", "200-chars"])
def test_a_route_with_a_malformed_env_is_422_naming_it_and_the_service_starts_again(
    settings: Settings, env: str
) -> None:
    with service(settings) as client:
        admin = admin_headers_sync(client)
        provision_sync(client)
        answer = client.put("/v1/routes", json={**ROUTE, "env": env}, headers=admin)
        assert names_field(assert_problem(answer, 422, "request.invalid"), "env")
        assert client.get("/v1/routes/history", headers=admin).json()["changes"] == []
    with service(settings) as client:
        assert client.get("/v1/routes", headers=admin).json()["routes"] == []


@pytest.mark.parametrize("field", ["tenant_id", "project_id"])
@pytest.mark.parametrize("value", ["bad id", "a/b", "", "x" * 200])
def test_a_route_with_a_malformed_tenant_or_project_is_422_naming_it(
    client: TestClient[Any], field: str, value: str
) -> None:
    admin = admin_headers_sync(client)
    provision_sync(client)
    answer = client.put("/v1/routes", json={**ROUTE, field: value}, headers=admin)
    assert names_field(assert_problem(answer, 422, "request.invalid"), field)


@pytest.mark.parametrize("field", ["tenant_id", "env", "project_id"])
@pytest.mark.parametrize("value", ["bad id", "a/b", "", "x" * 200])
def test_deleting_or_listing_routes_by_a_malformed_id_is_422_naming_it(
    client: TestClient[Any], field: str, value: str
) -> None:
    admin = admin_headers_sync(client)
    provision_sync(client)
    assert client.put("/v1/routes", json=ROUTE, headers=admin).status_code == 200
    params = {
        "resource_kind": "memory_store",
        "tenant_id": "t1",
        "env": "dev",
        "project_id": "*",
        field: value,
    }
    deleted = client.delete("/v1/routes", params=params, headers=admin)
    assert names_field(assert_problem(deleted, 422, "request.invalid"), field)
    if field != "project_id":  # the list filters by tenant and env; the history by tenant
        listed = client.get("/v1/routes", params={field: value}, headers=admin)
        assert names_field(assert_problem(listed, 422, "request.invalid"), field)
    assert len(client.get("/v1/routes", headers=admin).json()["routes"]) == 1


# item 6


def test_rebuilds_start_runners_only_for_partitions_that_exist(settings: Settings) -> None:
    with service(settings) as client:
        admin = admin_headers_sync(client)
        boss = provision_sync(client, user="boss", role="admin")
        remember(client, boss, "goal", "ship")  # memory of t1/dev/p1 runs
        before = views(client, boss)
        for body, code in [
            ({"env": "nope", "project_id": "p1"}, "env.not_found"),  # no route, no events
            ({"project_id": "nope"}, "project.not_found"),
            ({"env": "nope", "project_id": "nope"}, "project.not_found"),
        ]:
            answer = client.post("/v1/projections/memory/rebuild", json=body, headers=boss)
            assert_problem(answer, 404, code)
        answer = client.post("/v1/projections/memory/rebuild", json={"tenant_id": "nope", "project_id": "p1"},
                             headers=admin)  # fmt: skip
        assert_problem(answer, 404, "tenant.not_found")
        assert views(client, boss) == before
    with service(settings) as client:  # and nothing comes back after a restart
        assert views(client, boss) == before


def test_reads_in_an_env_nobody_wrote_to_start_no_runner(settings: Settings) -> None:
    """A member cycling `X-Env` through made-up names must not pile up runners: the view is empty and
    is answered as such; the first write makes the env known, and reads then follow it."""
    with service(settings) as client:
        boss = provision_sync(client, user="boss", role="admin")
        before = views(client, boss)
        for env in ("made-up-1", "made-up-2", "made-up-3"):
            for path in ("/v1/memory/goal", "/v1/sessions/chat", "/v1/runs/r1/blackboard", "/v1/audit"):
                answer = client.get(path, headers={**boss, "X-Env": env})
                assert answer.status_code < 500, answer.text
            answer = client.get("/v1/memory/goal", headers={**boss, "X-Env": env})
            assert answer.json() == {"key": "goal", "value": None, "found": False, "expires_at": None}
        assert views(client, boss) == before
        written = {**boss, "X-Env": "made-up-1"}
        assert recall(client, written, "goal", remember(client, written, "goal", "ship")) == "ship"
        assert ("memory", "t1", "made-up-1", "p1") in views(client, boss)
    with service(settings) as client:  # and nothing but the written env comes back after a restart
        assert {v for v in views(client, boss) if v[2].startswith("made-up")} == {
            ("memory", "t1", "made-up-1", "p1")
        }


def test_envs_a_route_names_or_the_partition_has_events_in_are_known(settings: Settings) -> None:
    with service(settings) as client:
        admin = admin_headers_sync(client)
        boss = provision_sync(client, user="boss", role="admin")
        assert client.put("/v1/routes", json={**ROUTE, "env": "staging"}, headers=admin).status_code == 200
        remember(client, {**boss, "X-Env": "qa"}, "goal", "ship")
        for env in ("staging", "qa", "development"):  # routed, written to, the default (spelt as people do)
            body = {"env": env, "project_id": "p1"}
            answer = client.post("/v1/projections/memory/rebuild?wait=true", json=body, headers=boss)
            assert answer.status_code == 202, answer.text
        assert {("memory", "t1", env, "p1") for env in ("staging", "qa", "dev")} <= views(client, boss)
        answer = client.post("/v1/projections/memory/rebuild", json={"env": "production", "project_id": "p1"},
                             headers=boss)  # fmt: skip
        assert_problem(answer, 404, "env.not_found")  # `prod`: neither routed nor written to here


def test_projection_filters_are_checked(client: TestClient[Any]) -> None:
    admin = admin_headers_sync(client)
    provision_sync(client)
    for params, status, code in [
        ({"tenant_id": "a/b"}, 422, "request.invalid"),
        ({"tenant_id": "nope"}, 404, "tenant.not_found"),
        ({"name": "nope"}, 404, "projection.not_found"),
        ({"name": "Bad Name"}, 422, "request.invalid"),
    ]:
        assert_problem(client.get("/v1/projections", params=params, headers=admin), status, code)
    assert_problem(client.post("/v1/projections/Bad%20Name/rebuild", headers=admin), 422, "request.invalid")


# what is stored never keeps the service from starting


def test_stored_views_whose_keys_do_not_parse_are_skipped_and_the_others_serve(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with service(settings) as client:
        headers = provision_sync(client)
        position = remember(client, headers, "goal", "ship")
        admin = admin_headers_sync(client)
        before = views(client, admin)
    with sqlite3.connect(settings.data_dir / "views.db") as db:
        db.executemany(
            "INSERT INTO view_generations (pkey, projection, serving, building) VALUES (?, ?, 0, NULL)",
            BAD_ROWS,
        )
    db.close()
    caplog.clear()
    with service(settings) as client:
        assert recall(client, headers, "goal", position) == "ship"
        assert views(client, admin) == before
        written = remember(client, headers, "next", 2)
        assert recall(client, headers, "next", written) == 2
    logged = [str(r.__dict__.get("partition")) for r in caplog.records if r.name == "spine.app.views"]
    assert sorted(logged) == sorted(key for key, _ in BAD_ROWS)  # each bad row once, at the one start


def test_stored_control_plane_records_that_do_not_decode_are_skipped(settings: Settings) -> None:
    with service(settings) as client:
        headers = provision_sync(client)
        admin = admin_headers_sync(client)
        position = remember(client, headers, "goal", "ship")

    async def write_old_records() -> None:  # as an older version, with laxer rules, could have
        meta = EventMeta(tenant_id="t_system", env="dev", project_id="_")
        records: list[tuple[str, str, dict[str, Any]]] = [
            ("project:t1:x", "project.created", {"tenant_id": "t1", "project_id": "a/b", "name": "x"}),
            ("route:x", "route.set", {**ROUTE, "env": "a/b"}),
            ("tenant:x", "tenant.created", {"tenant_id": "bad tenant", "name": "x"}),
        ]
        async with SQLiteSpine(settings.data_dir / "spine.db") as spine:
            for stream, type_, data in records:
                request = AppendRequest(stream=stream, events=[NewEvent(type=type_, data=data)], meta=meta)
                await spine.append(Partition.system("dev"), request)

    anyio.run(write_old_records)
    with service(settings) as client:
        assert recall(client, headers, "goal", position) == "ship"
        tenant = client.get("/v1/tenants/t1", headers=admin).json()
        assert [p["project_id"] for p in tenant["projects"]] == ["p1"]
        assert client.get("/v1/routes", headers=admin).json()["routes"] == []


# token claims


@pytest.mark.parametrize(
    "claims",
    [{"tenant_id": "a/b"}, {"tenant_id": ""}, {"sub": "u 1"}, {"sub": "x" * 200}, {"env": "a/b"}],
    ids=["tenant-slash", "tenant-empty", "user-space", "user-long", "env-slash"],
)
def test_a_token_whose_claims_are_no_identifiers_is_an_invalid_token(
    tmp_path: Path, claims: dict[str, str]
) -> None:
    settings = Settings(data_dir=tmp_path, bootstrap_key="test-bootstrap-key", token_key=TOKEN_KEY)
    with service(settings) as client:
        headers = provision_sync(client)
        now = int(time.time())
        token = jwt.encode(
            {
                "iss": "spine",
                "aud": "spine",
                "sub": "u1",
                "tenant_id": "t1",
                "iat": now,
                "exp": now + 60,
                **claims,
            },
            TOKEN_KEY,
            algorithm="HS256",
        )
        answer = client.get("/v1/memory/goal", headers={**headers, "Authorization": f"Bearer {token}"})
        problem = assert_problem(answer, 401, "auth.invalid_token")
        assert token not in msgspec.json.encode(problem).decode()
