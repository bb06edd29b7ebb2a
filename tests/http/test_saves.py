"""`/v1/saves/{kind}`: flows, graphs and overlays, every change a new version, history kept."""

from __future__ import annotations

import re
from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

FLOWS = "/v1/saves/flows"
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def create(
    client: TestClient, headers: dict[str, str], name: str = "plan", body: Any = None, **extra: Any
) -> Any:
    return client.post(FLOWS, json={"name": name, "body": body, **extra}, headers=headers)


def update(client: TestClient, headers: dict[str, str], save_id: str, body: Any, **extra: Any) -> Any:
    return client.put(
        f"{FLOWS}/{save_id}", json={"name": f"v-{body}", "body": body, **extra}, headers=headers
    )


def waited(headers: dict[str, str], answer: Any) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def test_a_create_is_version_1_with_a_position_etag_and_a_uuid7_when_no_id_is_sent(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = create(client, headers, body={"nodes": [1, 2]})
    body = ok(answer, 201)
    assert UUID7.match(body["id"]), body
    assert (body["kind"], body["version"]) == ("flows", 1)
    assert answer.headers["x-spine-position"] == str(body["position"])
    assert answer.headers["etag"] == '"1"'
    # lab without routes: the embedded stores, said loudly (the view's code is the save store's)
    assert answer.headers["x-spine-warning"] == "event_spine.missing_route, save_store.missing_route"
    read = client.get(f"{FLOWS}/{body['id']}", headers=waited(headers, answer))
    assert read.headers["etag"] == '"1"'
    assert read.headers["x-spine-warning"] == "save_store.missing_route"
    saved = read.json()
    assert {k: saved[k] for k in ("kind", "id", "name", "body", "version", "updated_by", "position")} == {
        "kind": "flows", "id": body["id"], "name": "plan", "body": {"nodes": [1, 2]}, "version": 1,
        "updated_by": "u1", "position": body["position"],
    }  # fmt: skip
    assert saved["updated_at"].endswith("Z")


def test_a_client_chosen_id_is_created_once(client: TestClient, headers: dict[str, str]) -> None:
    assert ok(create(client, headers, id="f-1", body=1), 201)["id"] == "f-1"
    problem = assert_problem(create(client, headers, id="f-1", body=2), 409, "save_store.version_conflict")
    assert (problem["stream"], problem["expected_version"], problem["current_version"]) == (
        "save:flow:f-1", "no_stream", 1)  # fmt: skip
    # the same id is another save in another kind
    other = client.post("/v1/saves/graphs", json={"id": "f-1", "name": "g", "body": 3}, headers=headers)
    assert ok(other, 201)["version"] == 1
    assert ok(client.get(f"{FLOWS}/f-1", headers=waited(headers, other)))["body"] == 1
    assert ok(client.get("/v1/saves/graphs/f-1", headers=waited(headers, other)))["body"] == 3


def test_updates_are_new_versions_and_a_stale_expected_version_is_409(
    client: TestClient, headers: dict[str, str]
) -> None:
    create(client, headers, id="f", body=0)
    second = update(client, headers, "f", 1, expected_version=1)
    assert (ok(second)["version"], second.headers["etag"]) == (2, '"2"')
    assert ok(update(client, headers, "f", 2))["version"] == 3  # no precondition: the last writer wins
    problem = assert_problem(
        update(client, headers, "f", 9, expected_version=2), 409, "save_store.version_conflict"
    )
    assert (problem["expected_version"], problem["current_version"]) == (2, 3)
    assert_problem(
        update(client, headers, "f", 9, expected_version="no_stream"), 409, "save_store.version_conflict"
    )
    last = update(client, headers, "f", 4, expected_version="any")
    assert ok(last)["version"] == 4
    saved = ok(client.get(f"{FLOWS}/f", headers=waited(headers, last)))
    assert (saved["name"], saved["body"], saved["version"]) == (
        "v-4",
        4,
        4,
    )  # the refused writes left nothing


def test_if_match_is_a_compare_and_set_too(client: TestClient, headers: dict[str, str]) -> None:
    create(client, headers, id="f", body=0)
    assert (
        ok(client.put(f"{FLOWS}/f", json={"name": "n", "body": 1}, headers={**headers, "If-Match": '"1"'}))[
            "version"
        ]
        == 2
    )
    stale = client.put(f"{FLOWS}/f", json={"name": "n", "body": 2}, headers={**headers, "If-Match": '"1"'})
    assert assert_problem(stale, 409, "save_store.version_conflict")["current_version"] == 2
    # If-Match compares strongly (RFC 9110): a weak tag never matches
    weak = client.put(f"{FLOWS}/f", json={"name": "n", "body": 3}, headers={**headers, "If-Match": 'W/"2"'})
    assert_problem(weak, 412, "precondition.failed")
    star = client.put(f"{FLOWS}/f", json={"name": "n", "body": 4}, headers={**headers, "If-Match": "*"})
    assert ok(star)["version"] == 3
    garbage = client.put(f"{FLOWS}/f", json={"name": "n", "body": 5}, headers={**headers, "If-Match": "abc"})
    assert_problem(garbage, 422, "request.invalid")
    disagree = {"name": "n", "body": 5, "expected_version": 3}
    assert_problem(
        client.put(f"{FLOWS}/f", json=disagree, headers={**headers, "If-Match": '"2"'}),
        422,
        "request.invalid",
    )
    agree = client.put(f"{FLOWS}/f", json=disagree, headers={**headers, "If-Match": '"3"'})
    assert ok(agree)["version"] == 4


def test_updating_or_deleting_a_save_never_created_is_404_and_appends_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    for answer in (
        update(client, headers, "nope", 1),
        update(client, headers, "nope", 1, expected_version=0),
        client.delete(f"{FLOWS}/nope", headers=headers),
    ):
        problem = assert_problem(answer, 404, "save_store.not_found")
        assert (problem["kind"], problem["id"], problem["deleted"], problem["version"]) == (
            "flows",
            "nope",
            False,
            None,
        )
    assert_problem(client.get(f"{FLOWS}/nope", headers=headers), 404, "save_store.not_found")
    assert_problem(client.get(f"{FLOWS}/nope/versions", headers=headers), 404, "save_store.not_found")
    assert_problem(client.get(f"{FLOWS}/nope/versions/1", headers=headers), 404, "save_store.not_found")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


def test_a_delete_is_a_tombstone_version_and_the_history_stays_readable(
    client: TestClient, headers: dict[str, str]
) -> None:
    create(client, headers, id="f", name="first", body={"a": 1})
    update(client, headers, "f", 2)
    deleted = client.delete(f"{FLOWS}/f", headers=headers)
    assert ok(deleted) == {"kind": "flows", "id": "f", "version": 3, "position": 3, "deleted": True}
    assert (deleted.headers["etag"], deleted.headers["x-spine-position"]) == ('"3"', "3")
    wait = waited(headers, deleted)
    problem = assert_problem(client.get(f"{FLOWS}/f", headers=wait), 404, "save_store.not_found")
    assert (problem["deleted"], problem["version"]) == (True, 3)
    history = ok(client.get(f"{FLOWS}/f/versions", headers=wait))
    assert [(v["version"], v["change"], v["name"], v["deleted"]) for v in history["versions"]] == [
        (1, "created", "first", False), (2, "updated", "v-2", False), (3, "deleted", "v-2", True),
    ]  # fmt: skip
    assert "body" not in history["versions"][0]  # the history lists versions; each one reads whole
    first = client.get(f"{FLOWS}/f/versions/1", headers=wait)
    assert first.headers["etag"] == '"1"'
    assert (first.json()["body"], first.json()["change"]) == ({"a": 1}, "created")
    tombstone = ok(client.get(f"{FLOWS}/f/versions/3", headers=wait))
    assert (tombstone["body"], tombstone["deleted"], tombstone["name"]) == (None, True, "v-2")
    again = assert_problem(client.delete(f"{FLOWS}/f", headers=headers), 404, "save_store.not_found")
    assert (again["deleted"], again["version"]) == (True, 3)
    assert_problem(
        create(client, headers, id="f"), 409, "save_store.version_conflict"
    )  # the id's history is kept
    assert client.get("/v1/events", headers=headers).json()["head"] == 3  # the refusals appended nothing


def test_a_delete_honours_if_match_and_expected_version(client: TestClient, headers: dict[str, str]) -> None:
    create(client, headers, id="f")
    update(client, headers, "f", 1)
    stale = client.delete(f"{FLOWS}/f", headers={**headers, "If-Match": '"1"'})
    assert assert_problem(stale, 409, "save_store.version_conflict")["current_version"] == 2
    stale_query = client.delete(f"{FLOWS}/f", params={"expected_version": 1}, headers=headers)
    assert_problem(stale_query, 409, "save_store.version_conflict")
    assert ok(client.delete(f"{FLOWS}/f", params={"expected_version": 2}, headers=headers))["version"] == 3


def test_an_update_after_a_delete_brings_the_save_back_as_a_new_version(
    client: TestClient, headers: dict[str, str]
) -> None:
    create(client, headers, id="f", body=1)
    client.delete(f"{FLOWS}/f", headers=headers)
    assert_problem(update(client, headers, "f", 9, expected_version=1), 409, "save_store.version_conflict")
    back = update(client, headers, "f", 3, expected_version=2)
    assert ok(back)["version"] == 3
    saved = ok(client.get(f"{FLOWS}/f", headers=waited(headers, back)))
    assert (saved["version"], saved["body"]) == (3, 3)
    listed = ok(client.get(FLOWS, headers=waited(headers, back)))["saves"]
    assert [(s["id"], s["version"]) for s in listed] == [("f", 3)]
    versions = ok(client.get(f"{FLOWS}/f/versions", headers=waited(headers, back)))["versions"]
    assert [v["change"] for v in versions] == ["created", "deleted", "updated"]


def test_the_list_holds_live_saves_of_the_kind_by_id_and_pages_by_cursor(
    client: TestClient, headers: dict[str, str]
) -> None:
    for save_id in ("b", "a:1", "c", "a", "d"):
        create(client, headers, id=save_id, name=f"name-{save_id}", body={"big": save_id})
    client.post("/v1/saves/overlays", json={"id": "x", "name": "o", "body": None}, headers=headers)
    last = client.delete(f"{FLOWS}/c", headers=headers)
    wait = waited(headers, last)
    whole = ok(client.get(FLOWS, headers=wait))
    assert whole["kind"] == "flows"
    assert [(s["id"], s["name"], s["version"]) for s in whole["saves"]] == [
        ("a", "name-a", 1), ("a:1", "name-a:1", 1), ("b", "name-b", 1), ("d", "name-d", 1),
    ]  # fmt: skip
    assert whole["next"] is None
    assert "body" not in whole["saves"][0]  # a list names saves; GET one reads its body
    first = ok(client.get(FLOWS, params={"limit": 2}, headers=wait))
    assert ([s["id"] for s in first["saves"]], first["next"]) == (["a", "a:1"], "a:1")
    rest = ok(client.get(FLOWS, params={"limit": 2, "after": first["next"]}, headers=wait))
    assert ([s["id"] for s in rest["saves"]], rest["next"]) == (["b", "d"], None)
    assert [s["id"] for s in ok(client.get("/v1/saves/overlays", headers=wait))["saves"]] == ["x"]
    assert ok(client.get("/v1/saves/graphs", headers=wait)) == {"kind": "graphs", "saves": [], "next": None}
    assert_problem(client.get(FLOWS, params={"after": "bad id"}, headers=wait), 400, "cursor.invalid")
    for limit in (0, 1001):
        assert_problem(client.get(FLOWS, params={"limit": limit}, headers=wait), 422, "request.invalid")


def test_versions_page_by_cursor_and_an_unknown_version_is_404(
    client: TestClient, headers: dict[str, str]
) -> None:
    create(client, headers, id="f", body=0)
    for n in range(1, 5):
        last = update(client, headers, "f", n)
    wait = waited(headers, last)
    first = ok(client.get(f"{FLOWS}/f/versions", params={"limit": 2}, headers=wait))
    assert ([v["version"] for v in first["versions"]], first["next"]) == ([1, 2], 2)
    rest = ok(client.get(f"{FLOWS}/f/versions", params={"after": 2, "limit": 3}, headers=wait))
    assert ([v["version"] for v in rest["versions"]], rest["next"]) == ([3, 4, 5], None)
    assert (rest["kind"], rest["id"]) == ("flows", "f")
    for missing in (0, 6, 99):
        problem = assert_problem(
            client.get(f"{FLOWS}/f/versions/{missing}", headers=wait), 404, "save_store.version_not_found"
        )
        assert (problem["version"], problem["latest_version"]) == (missing, 5)
    assert ok(client.get(f"{FLOWS}/f/versions/4", headers=wait))["body"] == 3
    for garbage in ("x", "-1", "1.0"):
        assert_problem(client.get(f"{FLOWS}/f/versions/{garbage}", headers=wait), 422, "request.invalid")
    assert_problem(
        client.get(f"{FLOWS}/f/versions", params={"after": "x"}, headers=wait), 400, "cursor.invalid"
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/saves/widgets"), ("GET", "/v1/saves/widgets"), ("GET", "/v1/saves/flow/f"),
     ("PUT", "/v1/saves/Flows/f"), ("DELETE", "/v1/saves/widgets/f"), ("GET", "/v1/saves/x/f/versions"),
     ("GET", "/v1/saves/x/f/versions/1")],
)  # fmt: skip
def test_a_kind_other_than_flows_graphs_or_overlays_is_404(
    client: TestClient, headers: dict[str, str], method: str, path: str
) -> None:
    answer = client.request(method, path, json={"name": "n", "body": 1}, headers=headers)
    problem = assert_problem(answer, 404, "save_store.unknown_kind")
    assert problem["kinds"] == ["flows", "graphs", "overlays"]
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


@pytest.mark.parametrize(
    "body",
    [{"body": 1}, {"name": "", "body": 1}, {"name": "n" * 257, "body": 1}, {"name": "n"},
     {"name": 3, "body": 1}, {"name": "n", "body": 1, "id": "bad id"}, {"name": "n", "body": 1, "id": "x" * 129}],
)  # fmt: skip
def test_invalid_bodies_are_422(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> None:
    assert_problem(client.post(FLOWS, json=body, headers=headers), 422, "request.invalid")
    create(client, headers, id="f")
    assert_problem(client.put(f"{FLOWS}/f", json=body, headers=headers), 422, "request.invalid")


def test_names_of_256_characters_ids_of_128_and_any_json_body_are_saved(
    client: TestClient, headers: dict[str, str]
) -> None:
    save_id = "A" + "b.:@+=~-_" * 14 + "z" * 1
    assert len(save_id) == 128
    for body in (None, [1, "two", {"3": [None]}], "text", 1.5, False):
        last = create(client, headers, name="n" * 256, body=body, id=f"{save_id[:120]}{type(body).__name__}")
        assert last.status_code == 201, last.text
        assert ok(client.get(f"{FLOWS}/{last.json()['id']}", headers=waited(headers, last)))["body"] == body
    long_one = create(client, headers, id=save_id)
    assert ok(long_one, 201)["id"] == save_id


def test_a_put_whose_body_names_another_id_is_422(client: TestClient, headers: dict[str, str]) -> None:
    create(client, headers, id="f")
    assert_problem(update(client, headers, "f", 1, id="g"), 422, "request.invalid")
    assert ok(update(client, headers, "f", 1, id="f"))["version"] == 2


@pytest.mark.parametrize("save_id", ["bad id", "-lead", "x" * 129])
def test_invalid_ids_in_the_path_are_422(client: TestClient, headers: dict[str, str], save_id: str) -> None:
    assert_problem(client.get(f"{FLOWS}/{save_id}", headers=headers), 422, "request.invalid")
    assert_problem(update(client, headers, save_id, 1), 422, "request.invalid")


def test_a_body_over_the_request_limit_is_413(client: TestClient, headers: dict[str, str]) -> None:
    big = "x" * (64 * 1024)  # the test settings' limit is 64 KiB
    assert_problem(create(client, headers, body=big), 413, "request.too_large")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


def test_every_member_of_the_project_shares_its_saves(client: TestClient, headers: dict[str, str]) -> None:
    made = create(client, headers, id="f", body="from u1")
    agent = provision_sync(client, user="agent-7", role="agent")
    assert ok(client.get(f"{FLOWS}/f", headers=waited(agent, made)))["body"] == "from u1"
    changed = update(client, agent, "f", "from the agent", expected_version=1)
    assert ok(changed)["version"] == 2
    assert ok(client.get(f"{FLOWS}/f", headers=waited(headers, changed)))["updated_by"] == "agent-7"


def test_saves_of_other_projects_and_tenants_are_invisible_and_not_writable(
    client: TestClient, headers: dict[str, str]
) -> None:
    mine = create(client, headers, id="f", body="mine")
    for other in (provision_sync(client, project="p2"), provision_sync(client, tenant="t2")):
        assert_problem(client.get(f"{FLOWS}/f", headers=other), 404, "save_store.not_found")
        assert_problem(client.get(f"{FLOWS}/f/versions", headers=other), 404, "save_store.not_found")
        assert ok(client.get(FLOWS, headers=other))["saves"] == []
        assert_problem(update(client, other, "f", "theirs"), 404, "save_store.not_found")
        assert_problem(client.delete(f"{FLOWS}/f", headers=other), 404, "save_store.not_found")
        theirs = create(client, other, id="f", body="theirs")  # the same id is their own save
        assert ok(theirs, 201)["version"] == 1
        assert ok(client.get(f"{FLOWS}/f", headers=waited(other, theirs)))["body"] == "theirs"
    saved = ok(client.get(f"{FLOWS}/f", headers=waited(headers, mine)))
    assert (saved["version"], saved["body"]) == (1, "mine")
    versions = ok(client.get(f"{FLOWS}/f/versions", headers=headers))["versions"]
    assert [v["version"] for v in versions] == [1]


@pytest.mark.parametrize(
    ("stream", "event_type"), [("save:flow:f", "x.y"), ("mine", "save.created"), ("mine", "save.deleted")]
)
def test_the_events_api_refuses_save_streams_and_types(
    client: TestClient, headers: dict[str, str], stream: str, event_type: str
) -> None:
    body = {
        "stream": stream,
        "events": [{"type": event_type, "data": {"kind": "flows", "id": "f", "name": "n"}}],
    }
    assert_problem(client.post("/v1/events", json=body, headers=headers), 422, "request.invalid")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


def test_writes_are_in_the_audit_view(client: TestClient) -> None:
    boss = provision_sync(client, user="boss", role="admin")
    create(client, {**boss, "X-Request-Id": "r-create"}, id="f", body="secret-body")
    update(client, {**boss, "X-Request-Id": "r-update"}, "f", 2, expected_version=1)
    last = client.delete(f"{FLOWS}/f", headers={**boss, "X-Request-Id": "r-delete"})
    assert update(client, boss, "f", 3, expected_version=1).status_code == 409  # refused: not recorded
    records = ok(client.get("/v1/audit", headers=waited(boss, last)))["records"]
    assert [(r["action"], r["resource"], r["actor"], r["request_id"]) for r in records] == [
        ("save.created", "save:flow:f", "boss", "r-create"),
        ("save.updated", "save:flow:f", "boss", "r-update"),
        ("save.deleted", "save:flow:f", "boss", "r-delete"),
    ]
    assert "secret-body" not in str(records)


def test_a_saas_tenant_without_a_tabular_store_route_is_refused_before_anything_is_appended(
    client: TestClient,
) -> None:
    saas = provision_sync(client, tenant="t9", mode="saas")
    # The spine has no route either: answering the save store's code shows the view was asked first.
    for method, path in (("POST", FLOWS), ("PUT", f"{FLOWS}/f"), ("DELETE", f"{FLOWS}/f"), ("GET", FLOWS),
                         ("GET", f"{FLOWS}/f"), ("GET", f"{FLOWS}/f/versions"), ("GET", f"{FLOWS}/f/versions/1")):  # fmt: skip
        answer = client.request(method, path, json={"name": "n", "body": 1}, headers=saas)
        problem = assert_problem(answer, 503, "save_store.missing_route")
        assert (problem["resource_kind"], answer.headers["retry-after"]) == ("tabular_store", "1")


def test_a_write_whose_view_store_is_unavailable_appends_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    route = {"resource_kind": "tabular_store", "tenant_id": "t1", "env": "dev", "project_id": "p1",
             "backend_type": "redis", "config": {"url": "redis://127.0.0.1:6379/0"}}  # fmt: skip
    assert client.put("/v1/routes", json=route, headers=admin_headers_sync(client)).status_code == 200
    assert_problem(create(client, headers, id="f"), 503, "tabular_store.backend_unavailable")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


async def test_of_twenty_writers_expecting_one_version_exactly_one_wins(http: httpx.AsyncClient) -> None:
    created = await http.post(FLOWS, json={"id": "race", "name": "free", "body": 0})
    assert created.status_code == 201, created.text
    statuses: list[int] = []

    async def contender(n: int) -> None:
        answer = await http.put(
            f"{FLOWS}/race", json={"name": f"taken by {n}", "body": n, "expected_version": 1}
        )
        statuses.append(answer.status_code)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(contender, n)
    assert sorted(statuses) == [200] + [409] * 19
    versions = (await http.get(f"{FLOWS}/race/versions", headers={"X-Spine-Min-Position": "2"})).json()
    assert [v["version"] for v in versions["versions"]] == [1, 2]


async def test_of_twenty_creators_of_one_id_exactly_one_wins(http: httpx.AsyncClient) -> None:
    statuses: list[int] = []

    async def contender(n: int) -> None:
        answer = await http.post(FLOWS, json={"id": "only", "name": f"by {n}", "body": n})
        statuses.append(answer.status_code)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(contender, n)
    assert sorted(statuses) == [201] + [409] * 19


async def test_concurrent_unconditional_updates_all_land_as_versions(http: httpx.AsyncClient) -> None:
    created = await http.post(FLOWS, json={"id": "busy", "name": "n", "body": 0})
    assert created.status_code == 201, created.text
    versions: list[int] = []

    async def writer(n: int) -> None:
        answer = await http.put(f"{FLOWS}/busy", json={"name": "n", "body": n})
        assert answer.status_code == 200, answer.text
        versions.append(answer.json()["version"])

    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(writer, n)
    assert sorted(versions) == list(range(2, 12))  # no precondition: every write lands, none twice
