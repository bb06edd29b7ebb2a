"""`/v1/threads` and `/v1/canvases`: the realtime registry (owner, members, surface, archived)
decided on each thread's stream, its rules for owners, members, outsiders and tenant admins, the
messages of a thread followed over SSE, its scope, and its routing."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from app.settings import Settings
from tests.http.conftest import sse_frames
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision, provision_sync

URL = "/v1/threads"
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for a message at its own limit (64 KiB of content) under the body limit."""
    return msgspec.structs.replace(settings, max_body_bytes=1024 * 1024)


@pytest.fixture
def owner(headers: dict[str, str]) -> dict[str, str]:
    """u1, a member of t1/p1 (surface web): creates the threads."""
    return headers


@pytest.fixture
def member(client: TestClient) -> dict[str, str]:
    return provision_sync(client, user="u2")


@pytest.fixture
def outsider(client: TestClient) -> dict[str, str]:
    """A member of the tenant and project who is in no thread."""
    return provision_sync(client, user="u9")


@pytest.fixture
def tenant_admin(client: TestClient) -> dict[str, str]:
    return provision_sync(client, user="a1", role="admin")


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


def ok(response: httpx.Response, status: int = 200) -> httpx.Response:
    assert response.status_code == status, response.text
    return response


def create(client: TestClient, headers: dict[str, str], url: str = URL, **body: Any) -> httpx.Response:
    return client.post(url, json=body, headers=headers)


def change(
    client: TestClient, headers: dict[str, str], ident: str = "t-1", url: str = URL, **body: Any
) -> httpx.Response:
    return client.patch(f"{url}/{ident}", json=body, headers=headers)


def post(
    client: TestClient, headers: dict[str, str], content: Any = "hi", ident: str = "t-1", **body: Any
) -> httpx.Response:
    return client.post(f"{URL}/{ident}/messages", json={"content": content, **body}, headers=headers)


def waited(headers: dict[str, str], answer: httpx.Response) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def get(
    client: TestClient, headers: dict[str, str], path: str, written: httpx.Response, **params: Any
) -> httpx.Response:
    return client.get(f"{URL}{path}", params=params, headers=waited(headers, written))


def head(client: TestClient, headers: dict[str, str]) -> int:
    answer: int = ok(client.get("/v1/events", headers=headers)).json()["head"]
    return answer


def stream_events(
    client: TestClient, headers: dict[str, str], stream: str = "thread:t-1"
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = ok(client.get(f"/v1/streams/{stream}", headers=headers)).json()["events"]
    return events


def thread(client: TestClient, owner: dict[str, str], **body: Any) -> httpx.Response:
    """t-1, owned by u1, with u2 a member."""
    return ok(create(client, owner, id="t-1", title="Launch", members=["u2"], **body), 201)


# Creating and reading


def test_a_created_thread_is_owned_by_its_creator_and_reads_back(
    client: TestClient, owner: dict[str, str]
) -> None:
    made = ok(create(client, owner, title="Launch", members=["u2", "u3", "u2"]), 201)
    body = made.json()
    assert UUID7.match(body["id"])
    assert body == {
        "kind": "thread",
        "id": body["id"],
        "version": 1,
        "position": 1,
        "changes": ["thread.created"],
    }
    assert (made.headers["etag"], made.headers["x-spine-position"], made.headers["location"]) == (
        '"1"', "1", f"/v1/threads/{body['id']}")  # fmt: skip
    read = ok(get(client, owner, f"/{body['id']}", made))
    assert read.headers["etag"] == '"1"'
    entry = read.json()
    assert {k: v for k, v in entry.items() if not k.endswith("_at")} == {
        "kind": "thread", "id": body["id"], "title": "Launch", "owner": "u1", "members": ["u1", "u2", "u3"],
        "surface_id": "web", "created_by": "u1", "archived": False, "version": 1,
        "change": "thread.created", "position": 1, "updated_by": "u1",
    }  # fmt: skip
    assert entry["created_at"].endswith("Z")
    assert entry["archived_at"] is None
    [event] = stream_events(client, owner, f"thread:{body['id']}")
    assert (event["type"], event["data"]["owner"], event["meta"]["surface_id"]) == (
        "thread.created",
        "u1",
        "web",
    )


def test_an_id_is_created_once_and_each_kind_has_its_own(client: TestClient, owner: dict[str, str]) -> None:
    thread(client, owner)
    taken = assert_problem(create(client, owner, id="t-1"), 409, "realtime.already_exists")
    assert (taken["kind"], taken["id"]) == ("thread", "t-1")
    canvas = ok(create(client, owner, "/v1/canvases", id="t-1", title="Board"), 201)
    assert (canvas.json()["kind"], canvas.json()["version"], canvas.headers["location"]) == (
        "canvas", 1, "/v1/canvases/t-1")  # fmt: skip
    assert [e["type"] for e in stream_events(client, owner, "canvas:t-1")] == ["canvas.created"]
    assert head(client, owner) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"id": "a b"},
        {"id": "-x"},
        {"id": "x/y"},
        {"title": ""},
        {"title": "two\nlines"},
        {"members": ["u 2"]},
        {"members": "u2"},
        {"members": [f"m{n}" for n in range(257)]},
        {"owner": "u2"},  # the owner is the caller: never a field
        {"titel": "typo"},
    ],
)
def test_a_creation_breaking_a_rule_is_422_and_appends_nothing(
    client: TestClient, owner: dict[str, str], body: dict[str, Any]
) -> None:
    assert_problem(create(client, owner, **body), 422, "request.invalid")
    assert head(client, owner) == 0


def test_a_thread_of_the_most_members_is_accepted_and_one_more_is_refused(
    client: TestClient, owner: dict[str, str]
) -> None:
    crowd = [f"m{n}" for n in range(255)]
    ok(create(client, owner, id="full", members=crowd), 201)  # 255 and the owner
    problem = assert_problem(
        create(client, owner, id="over", members=[*crowd, "m255"]), 422, "realtime.too_many_members"
    )
    assert problem["max_members"] == 256
    more = assert_problem(change(client, owner, "full", add_members=["x"]), 422, "realtime.too_many_members")
    assert more["id"] == "full"


def test_members_and_tenant_admins_read_the_entry_outsiders_do_not(
    client: TestClient,
    owner: dict[str, str],
    member: dict[str, str],
    outsider: dict[str, str],
    tenant_admin: dict[str, str],
) -> None:
    made = thread(client, owner)
    for reader in (owner, member, tenant_admin):
        assert ok(get(client, reader, "/t-1", made)).json()["owner"] == "u1"
    problem = assert_problem(get(client, outsider, "/t-1", made), 403, "realtime.not_member")
    assert (problem["kind"], problem["id"]) == ("thread", "t-1")
    assert_problem(get(client, outsider, "/t-1/messages", made), 403, "realtime.not_member")
    assert_problem(get(client, tenant_admin, "/t-1/messages", made), 403, "realtime.not_member")
    assert_problem(post(client, outsider), 403, "realtime.not_member")
    assert_problem(post(client, tenant_admin), 403, "realtime.not_member")
    assert_problem(get(client, owner, "/nope", made), 404, "realtime.not_found")
    assert_problem(get(client, owner, "/nope/messages", made), 404, "realtime.not_found")
    assert_problem(post(client, owner, ident="nope"), 404, "realtime.not_found")
    assert_problem(change(client, owner, "nope", title="x"), 404, "realtime.not_found")
    assert_problem(client.get("/v1/canvases/t-1", headers=owner), 404, "realtime.not_found")
    assert head(client, owner) == 1


# The listing


def test_the_listing_has_the_callers_threads_live_first_grouped_by_surface_by_cursor(
    client: TestClient, owner: dict[str, str], member: dict[str, str], admin: dict[str, str]
) -> None:
    ok(client.post("/v1/tenants/t1/surfaces", json={"surface_id": "mobile", "name": "m"}, headers=admin), 201)
    mobile = {**owner, "X-Surface-Id": "mobile"}
    ok(create(client, owner, id="b", members=["u2"]), 201)
    ok(create(client, mobile, id="a", members=["u2"]), 201)
    ok(create(client, owner, id="c"), 201)  # u1's only
    ok(create(client, member, id="d"), 201)  # u2's only
    last = ok(change(client, owner, "b", archived=True))

    def listing(headers: dict[str, str], **params: Any) -> Any:
        return ok(get(client, headers, "", last, **params)).json()

    assert [(t["id"], t["surface_id"], t["archived"]) for t in listing(owner)["threads"]] == [
        ("c", "web", False), ("a", "mobile", False), ("b", "web", True)]  # fmt: skip
    assert [t["id"] for t in listing(member)["threads"]] == ["d", "a", "b"]
    assert [t["id"] for t in listing(owner, surface="web")["threads"]] == ["c", "b"]
    assert [t["id"] for t in listing(owner, archived="false")["threads"]] == ["c", "a"]
    assert [t["id"] for t in listing(owner, archived="true", surface="web")["threads"]] == ["b"]
    assert listing(owner, archived="true", surface="mobile") == {"threads": [], "next": None}
    seen, cursor = [], None
    while True:
        page = listing(owner, limit=1, **({} if cursor is None else {"after": cursor}))
        seen += [t["id"] for t in page["threads"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ["c", "a", "b"]
    assert ok(client.get("/v1/canvases", headers=owner)).json() == {"canvases": [], "next": None}
    first = listing(owner, limit=1)["next"]
    for params in (
        {"after": "junk"},
        {"after": first, "archived": "true"},
        {"after": first, "surface": "mobile"},
    ):
        assert_problem(client.get(URL, params=params, headers=owner), 400, "cursor.invalid")
    assert_problem(client.get(URL, params={"surface": "a b"}, headers=owner), 422, "request.invalid")
    assert_problem(client.get(URL, params={"limit": 0}, headers=owner), 422, "request.invalid")


# Changing the registry: the owner only


def test_the_owner_changes_the_registry_each_change_its_own_event_in_one_append(
    client: TestClient, owner: dict[str, str]
) -> None:
    thread(client, owner)
    changed = ok(change(client, owner, title="Liftoff", add_members=["u3", "u4"], remove_members=["u2"]))
    assert changed.json() == {
        "kind": "thread", "id": "t-1", "version": 4, "position": 4,
        "changes": ["thread.retitled", "thread.members_added", "thread.members_removed"],
    }  # fmt: skip
    assert changed.headers["etag"] == '"4"'
    entry = ok(get(client, owner, "/t-1", changed)).json()
    assert (entry["title"], entry["members"], entry["version"], entry["change"]) == (
        "Liftoff", ["u1", "u3", "u4"], 4, "thread.members_removed")  # fmt: skip
    events = stream_events(client, owner)
    assert [e["position"] for e in events] == [1, 2, 3, 4]
    assert (events[1]["data"]["previous_title"], events[2]["data"]["added"], events[3]["data"]["removed"]) == (
        "Launch", ["u3", "u4"], ["u2"])  # fmt: skip
    # what changes nothing appends nothing, and answers the entry as it is
    same = ok(change(client, owner, title="Liftoff", add_members=["u3"], remove_members=["u2"]))
    assert same.json() == {"kind": "thread", "id": "t-1", "version": 4, "position": 4, "changes": []}
    assert head(client, owner) == 4


def test_members_outsiders_and_tenant_admins_may_not_change_it(
    client: TestClient,
    owner: dict[str, str],
    member: dict[str, str],
    outsider: dict[str, str],
    tenant_admin: dict[str, str],
) -> None:
    thread(client, owner)
    for who in (member, outsider):
        for body in ({"title": "mine"}, {"owner": "u2"}, {"add_members": ["u9"]}, {"archived": True}):
            problem = assert_problem(change(client, who, **body), 403, "realtime.not_owner")
            assert (problem["kind"], problem["id"]) == ("thread", "t-1")
    for body in (
        {"title": "mine"},
        {"owner": "a1", "title": "x"},
        {"archived": True},
        {"remove_members": ["u2"]},
    ):
        assert_problem(change(client, tenant_admin, **body), 403, "realtime.not_owner")
    assert head(client, owner) == 1


def test_a_tenant_admin_may_transfer_an_abandoned_thread_and_it_is_audited(
    client: TestClient, owner: dict[str, str], member: dict[str, str], tenant_admin: dict[str, str]
) -> None:
    thread(client, owner)
    moved = ok(change(client, tenant_admin, owner="u5"))
    assert moved.json()["changes"] == ["thread.members_added", "thread.owner_transferred"]  # u5 joins first
    transfer = stream_events(client, owner)[-1]
    assert (transfer["data"]["previous_owner"], transfer["data"]["owner"], transfer["data"]["authority"]) == (
        "u1", "u5", "tenant_admin")  # fmt: skip
    assert transfer["meta"]["user_id"] == "a1"
    entry = ok(get(client, member, "/t-1", moved)).json()
    assert (entry["owner"], entry["members"], entry["updated_by"]) == ("u5", ["u1", "u2", "u5"], "a1")
    records = ok(
        client.get(
            "/v1/audit", params={"action": "thread.owner_transferred"}, headers=waited(tenant_admin, moved)
        )
    )
    assert [(r["actor"], r["resource"]) for r in records.json()["records"]] == [("a1", "thread:t-1")]
    # the former owner is an ordinary member now
    assert_problem(change(client, owner, title="mine"), 403, "realtime.not_owner")
    owner_transfer = ok(change(client, owner | {"Authorization": _token(client, "u5")}, owner="u2"))
    assert stream_events(client, owner)[-1]["data"]["authority"] == "owner"
    assert owner_transfer.json()["changes"] == ["thread.owner_transferred"]


def _token(client: TestClient, user: str) -> str:
    return provision_sync(client, user=user)["Authorization"]


def test_the_owner_cannot_be_removed_until_the_ownership_is_transferred(
    client: TestClient, owner: dict[str, str]
) -> None:
    thread(client, owner)
    problem = assert_problem(
        change(client, owner, remove_members=["u1"]), 409, "realtime.owner_not_removable"
    )
    assert problem["owner"] == "u1"
    assert_problem(
        change(client, owner, owner="u2", remove_members=["u2"]), 409, "realtime.owner_not_removable"
    )
    assert head(client, owner) == 1
    left = ok(change(client, owner, owner="u2", remove_members=["u1"]))  # hand over and leave, at once
    assert left.json()["changes"] == ["thread.owner_transferred", "thread.members_removed"]
    entry = ok(get(client, provision_sync(client, user="u2"), "/t-1", left)).json()
    assert (entry["owner"], entry["members"]) == ("u2", ["u2"])
    assert_problem(get(client, owner, "/t-1", left), 403, "realtime.not_member")


@pytest.mark.parametrize(
    "body",
    [{}, {"archived": False}, {"add_members": ["u5"], "remove_members": ["u5"]}, {"owner": "a b"}, {"title": 7},
     {"add_members": [f"m{n}" for n in range(257)]}, {"members": ["u5"]}, {"expected_version": -1}],
)  # fmt: skip
def test_a_change_breaking_a_rule_is_422_and_appends_nothing(
    client: TestClient, owner: dict[str, str], body: dict[str, Any]
) -> None:
    thread(client, owner)
    assert_problem(change(client, owner, **body), 422, "request.invalid")
    assert head(client, owner) == 1


def test_an_archived_thread_takes_no_change_and_no_message_and_still_reads(
    client: TestClient, owner: dict[str, str], member: dict[str, str]
) -> None:
    thread(client, owner)
    ok(post(client, member, "before"), 201)
    archived = ok(change(client, owner, title="Done", archived=True))
    assert archived.json()["changes"] == ["thread.retitled", "thread.archived"]
    for refused in (
        change(client, owner, title="again"),
        change(client, owner, archived=True),
        post(client, member, "after"),
        post(client, owner, "after"),
    ):
        problem = assert_problem(refused, 409, "realtime.archived")
        assert (problem["kind"], problem["id"]) == ("thread", "t-1")
    entry = ok(get(client, member, "/t-1", archived)).json()
    assert (entry["archived"], entry["title"], entry["archived_at"].endswith("Z")) == (True, "Done", True)
    messages = ok(get(client, member, "/t-1/messages", archived)).json()["messages"]
    assert [m["content"] for m in messages] == ["before"]
    assert head(client, owner) == 4


# Preconditions


def test_a_precondition_names_the_registry_version_and_messages_never_make_it_stale(
    client: TestClient, owner: dict[str, str], member: dict[str, str]
) -> None:
    made = thread(client, owner)
    read = ok(get(client, owner, "/t-1", made))
    ok(post(client, member, "in between"), 201)  # the stream moves on, the registry does not
    tagged = {**owner, "If-Match": read.headers["etag"]}
    renamed = ok(change(client, tagged, title="Renamed"))
    assert (renamed.json()["version"], renamed.headers["etag"]) == (3, '"3"')
    stale = assert_problem(change(client, tagged, title="Again"), 409, "realtime.version_conflict")
    assert (stale["expected_version"], stale["current_version"]) == (1, 3)
    body = assert_problem(
        change(client, owner, title="Again", expected_version=2), 409, "realtime.version_conflict"
    )
    assert body["current_version"] == 3
    assert_problem(
        change(client, owner, title="x", expected_version="no_stream"), 409, "realtime.version_conflict"
    )
    assert ok(change(client, owner, title="Body", expected_version=3)).json()["version"] == 4
    assert ok(change(client, {**owner, "If-Match": "*"}, title="Star")).json()["version"] == 5
    assert ok(change(client, {**owner, "If-Match": '"2", "5"'}, title="List")).json()["version"] == 6
    assert_problem(change(client, {**owner, "If-Match": 'W/"6"'}, title="weak"), 412, "precondition.failed")
    assert_problem(change(client, {**owner, "If-Match": "6"}, title="bad"), 422, "request.invalid")
    disagree = change(client, {**owner, "If-Match": '"6"'}, title="x", expected_version=5)
    assert_problem(disagree, 422, "request.invalid")
    assert_problem(change(client, {**owner, "If-Match": '"1"'}, "nope", title="x"), 404, "realtime.not_found")
    assert head(client, owner) == 6


# Messages


def test_members_post_messages_which_read_back_in_order_by_version(
    client: TestClient, owner: dict[str, str], member: dict[str, str]
) -> None:
    thread(client, owner)
    first = ok(post(client, member, {"text": "hello"}, metadata={"lang": "en"}), 201)
    assert UUID7.match(first.json()["id"])
    assert (first.json()["version"], first.json()["position"], first.headers["x-spine-position"]) == (
        2,
        2,
        "2",
    )
    ok(change(client, owner, add_members=["u3"]))  # registry events between messages
    ok(post(client, owner, "second"), 201)
    last = ok(post(client, member, [1, 2, 3], id="m-3"), 201)
    assert last.json() == {"id": "m-3", "version": 5, "position": 5}
    page = ok(get(client, owner, "/t-1/messages", last)).json()
    assert [(m["version"], m["author"], m["content"]) for m in page["messages"]] == [
        (2, "u2", {"text": "hello"}), (4, "u1", "second"), (5, "u2", [1, 2, 3])]  # fmt: skip
    assert (page["kind"], page["id"], page["next"], page["version"]) == ("thread", "t-1", None, 5)
    assert page["messages"][0]["metadata"] == {"lang": "en"}
    assert page["messages"][0]["surface_id"] == "web"
    assert page["messages"][0]["posted_at"].endswith("Z")
    one = ok(get(client, owner, "/t-1/messages", last, limit=1)).json()
    assert ([m["version"] for m in one["messages"]], one["next"]) == ([2], 2)
    rest = ok(get(client, owner, "/t-1/messages", last, after=one["next"], limit=2)).json()
    assert ([m["version"] for m in rest["messages"]], rest["next"]) == ([4, 5], None)
    assert ok(get(client, owner, "/t-1/messages", last, after=5)).json()["messages"] == []
    events = stream_events(client, owner)
    assert events[1]["data"]["registry_version"] == 1
    assert events[4]["data"]["registry_version"] == 3


def test_a_retried_message_is_answered_as_the_original_and_stored_once(
    client: TestClient, owner: dict[str, str], member: dict[str, str]
) -> None:
    thread(client, owner)
    first = ok(post(client, member, "once", id="m-1"), 201)
    ok(post(client, owner, "other"), 201)  # the stream moved on: the retry still finds its original
    again = ok(post(client, member, "once", id="m-1"), 201)
    assert again.json() == first.json() == {"id": "m-1", "version": 2, "position": 2}
    assert [e["id"] for e in stream_events(client, owner)].count("m-1") == 1
    elsewhere = create(client, owner, "/v1/canvases", id="c-1")
    ok(elsewhere, 201)
    reused = client.post("/v1/canvases/c-1/messages", json={"content": "x", "id": "m-1"}, headers=owner)
    assert_problem(reused, 409, "spine.idempotency_conflict")
    assert head(client, owner) == 4


@pytest.mark.parametrize(
    "body",
    [{}, {"content": None}, {"content": "x" * 70_000}, {"content": "x", "metadata": [1]}, {"content": "x", "id": "a b"},
     {"content": "x", "extra": 1}],
)  # fmt: skip
def test_a_message_breaking_a_rule_is_422_and_appends_nothing(
    client: TestClient, owner: dict[str, str], body: dict[str, Any]
) -> None:
    thread(client, owner)
    assert_problem(client.post(f"{URL}/t-1/messages", json=body, headers=owner), 422, "request.invalid")
    assert head(client, owner) == 1


def test_thread_streams_and_types_are_written_through_their_routes_only(
    client: TestClient, owner: dict[str, str]
) -> None:
    forged = {"type": "thread.owner_transferred", "data": {"kind": "thread", "id": "t-1", "owner": "u9"}}
    for body in (
        {"stream": "thread:t-1", "events": [{"type": "x"}]},
        {"stream": "canvas:c", "events": [{"type": "x"}]},
        {"stream": "elsewhere", "events": [forged]},
    ):
        problem = assert_problem(client.post("/v1/events", json=body, headers=owner), 422, "request.invalid")
        assert "/v1/threads" in problem["message"] or "/v1/canvases" in problem["message"]
    assert head(client, owner) == 0


# Identity: from the token only


def test_identity_in_a_body_or_header_may_repeat_the_caller_never_another(
    client: TestClient, owner: dict[str, str]
) -> None:
    made = thread(client, owner, user_id="u1", project_id="p1", surface_id="web", tenant_id="t1")
    assert made.json()["version"] == 1
    for refused in (
        create(client, owner, id="t-2", user_id="u2"),
        create(client, {**owner, "X-User-Id": "u2"}, id="t-2"),
        change(client, owner, title="x", user_id="u2"),
        post(client, owner, user_id="u2"),
        post(client, owner, tenant_id="t2"),
        post(client, {**owner, "X-User-Id": "u2"}),
    ):
        assert_problem(refused, 403, "auth.identity_override")
    assert head(client, owner) == 1
    [created] = stream_events(client, owner)
    assert "user_id" not in created["data"]  # the owner comes from the token: `owner`, never a body field


# Scope


def test_another_tenant_or_project_neither_sees_the_thread_nor_writes_it(
    client: TestClient, owner: dict[str, str]
) -> None:
    made = thread(client, owner)
    for other in (provision_sync(client, tenant="t2"), provision_sync(client, project="p2")):  # u1 there too
        assert_problem(client.get(f"{URL}/t-1", headers=other), 404, "realtime.not_found")
        assert ok(client.get(URL, headers=other)).json() == {"threads": [], "next": None}
        assert_problem(post(client, other), 404, "realtime.not_found")
        assert_problem(change(client, other, title="x"), 404, "realtime.not_found")
        theirs = ok(create(client, other, id="t-1", title="Theirs"), 201)
        assert theirs.json()["version"] == 1
        assert ok(get(client, other, "/t-1", theirs)).json()["title"] == "Theirs"
    assert ok(get(client, owner, "/t-1", made)).json()["title"] == "Launch"
    assert [t["title"] for t in ok(get(client, owner, "", made)).json()["threads"]] == ["Launch"]


# The view: rebuilt from the log, it reads the same


def test_a_rebuilt_view_reads_the_same_as_the_live_one(
    client: TestClient, owner: dict[str, str], member: dict[str, str], admin: dict[str, str]
) -> None:
    thread(client, owner)
    ok(create(client, owner, "/v1/canvases", id="c-1", members=["u2"]), 201)
    ok(change(client, owner, add_members=["u3"], title="T"))
    ok(post(client, member), 201)
    last = ok(change(client, owner, "c-1", "/v1/canvases", archived=True))
    paths = [(owner, f"{URL}/t-1"), (member, URL), (owner, "/v1/canvases/c-1"), (member, "/v1/canvases")]
    before = [ok(client.get(p, headers=waited(h, last))).json() for h, p in paths]
    answer = client.post("/v1/projections/realtime/rebuild?wait=true", headers=admin)
    assert answer.status_code == 202, answer.text
    [view] = answer.json()["projections"]
    assert (view["name"], view["generation"], view["rebuild"]["state"]) == ("realtime", 1, "swapped")
    assert [ok(client.get(p, headers=waited(h, last))).json() for h, p in paths] == before


# Routing: a missing route is loud, and diagnostics shows the kind


def test_a_saas_tenant_without_a_realtime_route_is_refused_before_anything_is_appended(
    client: TestClient,
) -> None:
    saas = provision_sync(client, tenant="t9", mode="saas")
    # the spine has no route either: answering the registry's code shows the view was asked first
    for response in (
        create(client, saas, id="t-1"),
        create(client, saas, "/v1/canvases", id="t-1"),
        change(client, saas, title="x"),
        post(client, saas),
        client.get(f"{URL}/t-1", headers=saas),
        client.get(f"{URL}/t-1/messages", headers=saas),
        client.get(URL, headers=saas),
        client.get("/v1/canvases", headers=saas),
    ):
        problem = assert_problem(response, 503, "realtime_registry.missing_route")
        assert (problem["resource_kind"], response.headers["retry-after"]) == ("realtime_registry", "1")


def test_a_lab_tenant_without_a_route_is_served_with_a_warning_and_diagnostics_says_so(
    client: TestClient, owner: dict[str, str], member: dict[str, str], admin: dict[str, str]
) -> None:
    made = thread(client, owner)
    answers = [
        made,
        ok(post(client, member), 201),
        ok(get(client, owner, "/t-1", made)),
        ok(get(client, member, "", made)),
    ]
    for answer in answers:
        assert "realtime_registry.missing_route" in answer.headers["x-spine-warning"]
    checks = ok(client.get("/v1/diagnostics", params={"tenant_id": "t1"}, headers=admin)).json()["checks"]
    [check] = [c for c in checks if c["resource_kind"] == "realtime_registry"]
    assert (check["status"], check["lab_fallback"], check["optional"], check["error_code"]) == (
        "missing", True, False, "realtime_registry.missing_route")  # fmt: skip
    route = {"resource_kind": "realtime_registry", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite",
             "config": {"path": "realtime-views.db"}}  # fmt: skip
    ok(client.put("/v1/routes", json=route, headers=admin))
    routed = ok(change(client, owner, title="Routed"))
    assert "realtime_registry" not in routed.headers.get("x-spine-warning", "")
    entry = ok(get(client, member, "/t-1", routed))
    assert (entry.json()["title"], entry.json()["version"]) == ("Routed", 3)  # rebuilt there from the log
    checks = ok(client.get("/v1/diagnostics", params={"tenant_id": "t1"}, headers=admin)).json()["checks"]
    [check] = [c for c in checks if c["resource_kind"] == "realtime_registry"]
    assert (check["status"], check["backend_type"]) == ("ok", "sqlite")


# Following a thread over SSE


async def test_a_thread_is_followed_over_sse_caught_up_live_and_resumed(http: httpx.AsyncClient) -> None:
    """u1 posts while the follower listens on `?stream=thread:t-1`; other streams stay out; the
    follower resumes with Last-Event-ID after exactly the last event it saw."""
    member = await provision(http, user="u2")
    made = await http.post(URL, json={"id": "t-1", "members": ["u2"]})
    assert made.status_code == 201, made.text
    assert (
        await http.post("/v1/events", json={"stream": "other", "events": [{"type": "x"}]})
    ).status_code == 201

    async def say(text: str) -> None:
        answer = await http.post(f"{URL}/t-1/messages", json={"content": text})
        assert answer.status_code == 201, answer.text

    await say("early")

    async def follow(count: int, headers: dict[str, str]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        with anyio.fail_after(20):
            async with http.stream(
                "GET", "/v1/events/stream", params={"stream": "thread:t-1"}, headers=headers
            ) as answer:
                assert answer.status_code == 200, await answer.aread()
                async for frame in sse_frames(answer):
                    if "data" in frame:
                        event = json.loads(frame["data"])
                        assert (frame["id"], frame["event"]) == (str(event["position"]), event["type"])
                        events.append(event)
                        if len(events) == 2:
                            live.set()  # caught up: what is posted now arrives live
                        if len(events) == count:
                            return events
        raise AssertionError("the stream ended early")

    live = anyio.Event()
    received: list[dict[str, Any]] = []

    async def follower() -> None:
        received.extend(await follow(4, member))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(follower)
        await live.wait()
        await say("live 1")
        await say("live 2")
    assert [(e["type"], e["data"].get("content")) for e in received] == [
        ("thread.created", None), ("thread.message_posted", "early"),
        ("thread.message_posted", "live 1"), ("thread.message_posted", "live 2"),
    ]  # fmt: skip
    assert {e["stream"] for e in received} == {"thread:t-1"}
    await say("while away")
    changed = await http.patch(f"{URL}/t-1", json={"title": "Back"})
    assert changed.status_code == 200, changed.text
    live = anyio.Event()
    resumed = await follow(2, {**member, "Last-Event-ID": str(received[1]["position"])})
    assert [e["data"].get("content") for e in resumed] == ["live 1", "live 2"]
    rest = await follow(2, {**member, "Last-Event-ID": str(received[-1]["position"])})
    assert [(e["type"], e["data"].get("content"), e["data"].get("title")) for e in rest] == [
        ("thread.message_posted", "while away", None), ("thread.retitled", None, "Back")]  # fmt: skip


async def test_concurrent_messages_all_land_each_once_in_one_order(http: httpx.AsyncClient) -> None:
    """Posts race for the thread's next version: a loser decides again on the new state (the
    registry in force is re-read), so every message lands, each once, with versions from 2 on."""
    member = await provision(http, user="u2")
    made = await http.post(URL, json={"id": "t-1", "members": ["u2"]})
    assert made.status_code == 201, made.text
    answers: list[httpx.Response] = []

    async def say(n: int) -> None:
        answers.append(
            await http.post(f"{URL}/t-1/messages", json={"content": n}, headers=member if n % 2 else None)
        )

    async with anyio.create_task_group() as tasks:
        for n in range(20):
            tasks.start_soon(say, n)
    assert sorted(a.status_code for a in answers) == [201] * 20
    assert sorted(a.json()["version"] for a in answers) == list(range(2, 22))
    page = (await http.get(f"{URL}/t-1/messages", params={"limit": 100})).json()
    assert sorted(m["content"] for m in page["messages"]) == list(range(20))
    assert {m["author"] for m in page["messages"]} == {"u1", "u2"}
