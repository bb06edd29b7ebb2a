"""`/v1/pages/{page}`: versioned content blocks per (tenant, mode, project, app, surface): drafts,
publications and rollbacks decided on the log, their rules, their scope, and their routing."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from app.settings import Settings
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

URL = "/v1/pages"
STREAM = "page_content:4:app1:3:web:home"
HERO = {"id": "hero", "type": "hero", "data": {"heading": "Rockets", "image": "https://acme.example/r.png"}}
TEXT = {"id": "intro-1", "type": "text", "data": {"markdown": "We *ship*."}}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for content at its own limit (256 KiB of blocks) under the body limit."""
    return msgspec.structs.replace(settings, max_body_bytes=1024 * 1024)


@pytest.fixture
def pages(headers: dict[str, str]) -> dict[str, str]:
    """Headers of member u1 of t1/p1, surface web, app app1."""
    return {**headers, "X-App-Id": "app1"}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


def ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 200, response.text
    return response


def draft(
    client: TestClient, headers: dict[str, str], page: str = "home", blocks: Any = None, **fields: Any
) -> httpx.Response:
    body = {"blocks": [HERO] if blocks is None else blocks, **fields}
    return client.put(f"{URL}/{page}/content/draft", json=body, headers=headers)


def direct(
    client: TestClient, headers: dict[str, str], page: str = "home", blocks: Any = None, **fields: Any
) -> httpx.Response:
    body = {"blocks": [TEXT] if blocks is None else blocks, **fields}
    return client.put(f"{URL}/{page}/content", json=body, headers=headers)


def publish(client: TestClient, headers: dict[str, str], page: str = "home", **body: Any) -> httpx.Response:
    return client.post(f"{URL}/{page}/publish", json=body, headers=headers)


def rollback(
    client: TestClient, headers: dict[str, str], to: Any, page: str = "home", **body: Any
) -> httpx.Response:
    return client.post(f"{URL}/{page}/rollback", json={"to": to, **body}, headers=headers)


def waited(headers: dict[str, str], answer: httpx.Response) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def get(
    client: TestClient, headers: dict[str, str], path: str, written: httpx.Response, **params: Any
) -> httpx.Response:
    return client.get(f"{URL}{path}", params=params, headers=waited(headers, written))


def listing(client: TestClient, headers: dict[str, str], written: httpx.Response, **params: Any) -> Any:
    return ok(get(client, headers, "", written, **params)).json()


def head(client: TestClient, headers: dict[str, str]) -> int:
    answer: int = ok(client.get("/v1/events", headers=headers)).json()["head"]
    return answer


def stream_events(client: TestClient, headers: dict[str, str], stream: str = STREAM) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = ok(client.get(f"/v1/streams/{stream}", headers=headers)).json()["events"]
    return events


def add_scope(client: TestClient, admin: dict[str, str], what: str, ident: str, tenant: str = "t1") -> None:
    answer = client.post(
        f"/v1/tenants/{tenant}/{what}s", json={f"{what}_id": ident, "name": ident}, headers=admin
    )
    assert answer.status_code == 201, answer.text


# Drafts, publications, rollbacks


def test_a_draft_reads_back_whole_and_is_not_published(client: TestClient, pages: dict[str, str]) -> None:
    written = ok(draft(client, pages, blocks=[HERO, TEXT], title="Home"))
    body = written.json()
    assert body == {"page": "home", "version": 1, "change": "draft", "from_version": None,
                    "position": body["position"]}  # fmt: skip
    assert (written.headers["x-spine-position"], written.headers["etag"]) == (str(body["position"]), '"1"')
    got = ok(get(client, pages, "/home/content/draft", written))
    assert got.headers["etag"] == '"1"'
    assert got.json() == {
        "page": "home", "app_id": "app1", "surface_id": "web", "version": 1, "page_version": 1,
        "published_version": None, "title": "Home", "blocks": [HERO, TEXT],
        "saved_at": got.json()["saved_at"], "saved_by": "u1",
    }  # fmt: skip
    assert got.json()["saved_at"].endswith("Z")
    problem = assert_problem(get(client, pages, "/home/content", written), 404, "page_content.not_published")
    assert problem["page"] == "home"
    [summary] = listing(client, pages, written)["pages"]
    assert {k: summary[k] for k in ("page", "version", "change", "draft_version", "published_version")} == {
        "page": "home", "version": 1, "change": "draft", "draft_version": 1, "published_version": None}  # fmt: skip


def test_publishing_copies_the_latest_draft_into_a_new_version(
    client: TestClient, pages: dict[str, str]
) -> None:
    ok(draft(client, pages, blocks=[HERO], title="First"))
    ok(draft(client, pages, blocks=[HERO, TEXT], title="Second"))
    published = ok(publish(client, pages))
    assert published.json() == {"page": "home", "version": 3, "change": "published", "from_version": 2,
                                "position": published.json()["position"]}  # fmt: skip
    assert published.headers["etag"] == '"3"'
    content = ok(get(client, pages, "/home/content", published))
    assert content.headers["etag"] == '"3"'
    assert content.json() == {
        "page": "home", "app_id": "app1", "surface_id": "web", "version": 3, "page_version": 3,
        "change": "published", "from_version": 2, "draft_version": 2, "title": "Second",
        "blocks": [HERO, TEXT], "published_at": content.json()["published_at"], "published_by": "u1",
    }  # fmt: skip
    # the published event holds the blocks themselves: it never needs the draft's event to be read
    events = stream_events(client, pages)
    assert [e["type"] for e in events] == [
        "page_content.draft_saved",
        "page_content.draft_saved",
        "page_content.published",
    ]
    assert (events[2]["data"]["blocks"], events[2]["data"]["from_version"]) == ([HERO, TEXT], 2)
    # the draft is still the latest draft; the page's version is the ETag of every read
    still = ok(get(client, pages, "/home/content/draft", published))
    assert (still.json()["version"], still.json()["published_version"], still.headers["etag"]) == (
        2,
        3,
        '"3"',
    )


def test_publishing_a_named_draft_version(client: TestClient, pages: dict[str, str]) -> None:
    ok(draft(client, pages, blocks=[HERO], title="One"))
    ok(draft(client, pages, blocks=[TEXT], title="Two"))
    older = ok(publish(client, pages, version=1))
    assert (older.json()["version"], older.json()["from_version"]) == (3, 1)
    content = ok(get(client, pages, "/home/content", older)).json()
    assert (content["title"], content["blocks"], content["draft_version"]) == ("One", [HERO], 2)


def test_publishing_without_a_body_publishes_the_latest_draft(
    client: TestClient, pages: dict[str, str]
) -> None:
    ok(draft(client, pages, title="Only"))
    published = ok(client.post(f"{URL}/home/publish", headers=pages))
    assert (published.json()["version"], published.json()["from_version"]) == (2, 1)


def test_what_cannot_be_published_is_refused_and_appends_nothing(
    client: TestClient, pages: dict[str, str]
) -> None:
    assert_problem(publish(client, pages), 404, "page_content.not_found")
    assert_problem(publish(client, pages, version=1), 404, "page_content.not_found")
    ok(direct(client, pages, "direct"))
    no_draft = assert_problem(publish(client, pages, "direct"), 409, "page_content.no_draft")
    assert (no_draft["page"], no_draft["latest_version"]) == ("direct", 1)
    not_draft = assert_problem(publish(client, pages, "direct", version=1), 422, "page_content.not_a_draft")
    assert (not_draft["version"], not_draft["change"]) == (1, "published")
    missing = assert_problem(
        publish(client, pages, "direct", version=2), 404, "page_content.version_not_found"
    )
    assert (missing["version"], missing["latest_version"]) == (2, 1)
    assert head(client, pages) == 1


def test_a_direct_publish_is_one_version_and_leaves_the_draft(
    client: TestClient, pages: dict[str, str]
) -> None:
    ok(draft(client, pages, blocks=[HERO], title="Draft"))
    live = ok(direct(client, pages, blocks=[TEXT], title="Live"))
    assert live.json() == {"page": "home", "version": 2, "change": "published", "from_version": None,
                           "position": live.json()["position"]}  # fmt: skip
    content = ok(get(client, pages, "/home/content", live)).json()
    assert (content["title"], content["blocks"], content["from_version"], content["draft_version"]) == (
        "Live", [TEXT], None, 1)  # fmt: skip
    assert ok(get(client, pages, "/home/content/draft", live)).json()["title"] == "Draft"
    assert [e["type"] for e in stream_events(client, pages)] == [
        "page_content.draft_saved",
        "page_content.published",
    ]


def test_a_rollback_publishes_an_earlier_published_version_again(
    client: TestClient, pages: dict[str, str]
) -> None:
    ok(direct(client, pages, blocks=[HERO], title="v1"))
    ok(draft(client, pages, blocks=[TEXT], title="draft"))
    ok(publish(client, pages))  # 3, from the draft 2
    back = ok(rollback(client, pages, 1))
    assert back.json() == {"page": "home", "version": 4, "change": "rolled_back", "from_version": 1,
                           "position": back.json()["position"]}  # fmt: skip
    content = ok(get(client, pages, "/home/content", back)).json()
    assert (content["version"], content["change"], content["from_version"], content["title"], content["blocks"]) == (
        4, "rolled_back", 1, "v1", [HERO])  # fmt: skip
    assert content["draft_version"] == 2
    again = ok(rollback(client, pages, 3))  # forward again, to what was published from the draft
    assert ok(get(client, pages, "/home/content", again)).json()["blocks"] == [TEXT]
    twice = ok(rollback(client, pages, 4))  # a rolled-back version is a published version too
    assert ok(get(client, pages, "/home/content", twice)).json()["blocks"] == [HERO]
    events = stream_events(client, pages)
    assert [e["type"] for e in events][3:] == ["page_content.rolled_back"] * 3
    assert (events[3]["data"]["blocks"], events[3]["data"]["from_version"]) == ([HERO], 1)


def test_a_rollback_to_what_was_never_published_is_refused_and_appends_nothing(
    client: TestClient, pages: dict[str, str]
) -> None:
    assert_problem(rollback(client, pages, 1), 404, "page_content.not_found")
    ok(draft(client, pages))
    ok(publish(client, pages))
    drafted = assert_problem(rollback(client, pages, 1), 422, "page_content.not_a_published_version")
    assert (drafted["page"], drafted["version"], drafted["change"]) == ("home", 1, "draft")
    beyond = assert_problem(rollback(client, pages, 3), 404, "page_content.version_not_found")
    assert (beyond["version"], beyond["latest_version"]) == (3, 2)
    for refused in (0, -1, "two", None, 10**19, 1.5):
        assert_problem(rollback(client, pages, refused), 422, "request.invalid")
    assert_problem(client.post(f"{URL}/home/rollback", json={}, headers=pages), 422, "request.invalid")
    assert head(client, pages) == 2


# Preconditions


def test_a_stale_expected_version_is_409_on_every_write(client: TestClient, pages: dict[str, str]) -> None:
    ok(draft(client, pages))
    ok(publish(client, pages, expected_version=1))
    writes = (
        lambda **e: draft(client, pages, **e),
        lambda **e: direct(client, pages, **e),
        lambda **e: publish(client, pages, **e),
        lambda **e: rollback(client, pages, 2, **e),
    )
    for write in writes:
        problem = assert_problem(write(expected_version=1), 409, "page_content.version_conflict")
        assert (problem["expected_version"], problem["current_version"]) == (1, 2)
        assert_problem(write(expected_version="no_stream"), 409, "page_content.version_conflict")
    assert head(client, pages) == 2
    fresh = assert_problem(
        draft(client, pages, "fresh", expected_version=3), 409, "page_content.version_conflict"
    )
    assert fresh["current_version"] == 0
    assert ok(draft(client, pages, "fresh", expected_version="no_stream")).json()["version"] == 1
    assert ok(rollback(client, pages, 2, expected_version=2)).json()["version"] == 3


def test_if_match_is_a_compare_and_set_too(client: TestClient, pages: dict[str, str]) -> None:
    never = client.put(f"{URL}/home/content/draft", json={"blocks": []}, headers={**pages, "If-Match": "*"})
    assert_problem(never, 412, "precondition.failed")
    first = ok(draft(client, pages))
    read = ok(get(client, pages, "/home/content/draft", first))
    tag = {**pages, "If-Match": read.headers["etag"]}  # read, then write over what was read
    assert ok(client.post(f"{URL}/home/publish", json={}, headers=tag)).json()["version"] == 2
    stale = client.put(f"{URL}/home/content/draft", json={"blocks": []}, headers=tag)
    assert assert_problem(stale, 409, "page_content.version_conflict")["current_version"] == 2
    disagree = client.post(f"{URL}/home/rollback", json={"to": 2, "expected_version": 1},
                           headers={**pages, "If-Match": '"2"'})  # fmt: skip
    assert_problem(disagree, 422, "request.invalid")
    assert_problem(client.put(f"{URL}/home/content", json={"blocks": []}, headers={**pages, "If-Match": "x"}),
                   422, "request.invalid")  # fmt: skip
    star = client.put(f"{URL}/home/content", json={"blocks": []}, headers={**pages, "If-Match": "*"})
    assert ok(star).json()["version"] == 3
    assert head(client, pages) == 3


# History


def test_the_history_pages_through_every_version_and_reads_each(
    client: TestClient, pages: dict[str, str]
) -> None:
    ok(draft(client, pages, blocks=[HERO], title="d1"))
    ok(publish(client, pages))
    ok(direct(client, pages, blocks=[TEXT], title="p3"))
    last = ok(rollback(client, pages, 2))
    first = ok(get(client, pages, "/home/content/versions", last, limit=3)).json()
    assert [(v["version"], v["change"], v["from_version"], v["title"]) for v in first["versions"]] == [
        (1, "draft", None, "d1"), (2, "published", 1, "d1"), (3, "published", None, "p3")]  # fmt: skip
    assert (first["page"], first["next"]) == ("home", 3)
    assert all(v["by"] == "u1" and v["at"].endswith("Z") and "blocks" not in v for v in first["versions"])
    rest = ok(get(client, pages, "/home/content/versions", last, after=first["next"])).json()
    assert ([(v["version"], v["change"], v["from_version"]) for v in rest["versions"]], rest["next"]) == (
        [(4, "rolled_back", 2)], None)  # fmt: skip
    one = ok(get(client, pages, "/home/content/versions/3", last))
    assert one.headers["etag"] == '"3"'
    assert {k: one.json()[k] for k in ("page", "app_id", "surface_id", "version", "change", "title", "blocks")} == {
        "page": "home", "app_id": "app1", "surface_id": "web", "version": 3, "change": "published",
        "title": "p3", "blocks": [TEXT]}  # fmt: skip
    for absent in ("0", "5", "000"):
        problem = assert_problem(get(client, pages, f"/home/content/versions/{absent}", last), 404,
                                 "page_content.version_not_found")  # fmt: skip
        assert problem["latest_version"] == 4
    assert_problem(get(client, pages, "/home/content/versions/x", last), 422, "request.invalid")
    assert_problem(get(client, pages, "/home/content/versions", last, after="x"), 400, "cursor.invalid")
    for path in ("/never/content/versions", "/never/content/versions/1"):
        assert_problem(get(client, pages, path, last), 404, "page_content.not_found")
    assert_problem(get(client, pages, "/never/content/draft", last), 404, "page_content.not_found")
    assert_problem(get(client, pages, "/never/content", last), 404, "page_content.not_published")


def test_the_list_pages_through_slugs_in_order_by_cursor(client: TestClient, pages: dict[str, str]) -> None:
    for page in ("pricing", "about", "blog.post-2", "home"):
        ok(draft(client, pages, page, title=f"T {page}"))
    last = ok(direct(client, pages, "blog.post-1", title="T blog.post-1"))
    first = listing(client, pages, last, limit=2)
    assert (first["app_id"], first["surface_id"], first["next"]) == ("app1", "web", "blog.post-1")
    assert first["pages"][1] == {
        "page": "blog.post-1", "version": 1, "change": "published", "title": "T blog.post-1",
        "draft_version": None, "published_version": 1, "updated_at": first["pages"][1]["updated_at"],
        "updated_by": "u1",
    }  # fmt: skip
    second = listing(client, pages, last, limit=2, after=first["next"])
    assert ([p["page"] for p in second["pages"]], second["next"]) == (["blog.post-2", "home"], "home")
    third = listing(client, pages, last, limit=2, after=second["next"])
    assert ([p["page"] for p in third["pages"]], third["next"]) == (["pricing"], None)
    assert_problem(client.get(URL, params={"after": "a b"}, headers=pages), 400, "cursor.invalid")
    assert_problem(client.get(URL, params={"limit": 0}, headers=pages), 422, "request.invalid")


# The rules of content


DROP = object()  # a field left out of the body
RULES = [
    # (body fields, a piece of the message that names what is wrong)
    ({"blocks": DROP}, "blocks"),
    ({"blocks": None}, "blocks"),
    ({"blocks": {"id": "a"}}, "blocks"),
    ({"blocks": [{"id": f"b{n}", "type": "text"} for n in range(201)]}, "blocks"),
    ({"blocks": [HERO, dict(TEXT, id="hero")]}, "used twice"),
    ({"blocks": [dict(HERO, id="")]}, "id"),
    ({"blocks": [dict(HERO, id="a b")]}, "id"),
    ({"blocks": [dict(HERO, id="-x")]}, "id"),
    ({"blocks": [dict(HERO, id="x" * 65)]}, "id"),
    ({"blocks": [{"type": "hero"}]}, "id"),
    ({"blocks": [dict(HERO, type="Hero")]}, "type"),
    ({"blocks": [dict(HERO, type="")]}, "type"),
    ({"blocks": [dict(HERO, type="call to action")]}, "type"),
    ({"blocks": [{"id": "a"}]}, "type"),
    ({"blocks": [dict(HERO, data=[1, 2])]}, "data"),
    ({"blocks": [dict(HERO, data="text")]}, "data"),
    ({"blocks": [dict(HERO, extra=1)]}, "extra"),
    ({"blocks": [{"id": "big", "type": "text", "data": {"t": "x" * 262_100}}]}, "bytes"),
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "two\nlines"}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": 7}, "title"),
    ({"titel": "typo"}, "titel"),  # a typo is refused, never dropped
    ({"expected_version": -1}, "expected_version"),
]


@pytest.mark.parametrize(("fields", "named"), RULES)
@pytest.mark.parametrize("write", [draft, direct])
def test_content_breaking_a_rule_is_422_naming_it_and_appends_nothing(
    client: TestClient, pages: dict[str, str], write: Any, fields: dict[str, Any], named: str
) -> None:
    body = {name: value for name, value in {"blocks": [HERO], **fields}.items() if value is not DROP}
    path = f"{URL}/home/content" + ("/draft" if write is draft else "")
    problem = assert_problem(client.put(path, json=body, headers=pages), 422, "request.invalid")
    assert named in problem["message"]
    assert head(client, pages) == 0


def test_content_at_the_bounds_is_accepted(client: TestClient, pages: dict[str, str]) -> None:
    many = [{"id": f"b:{n}", "type": "t", "data": {}} for n in range(200)]
    assert ok(draft(client, pages, "many", blocks=many, title="T" * 200)).json()["version"] == 1
    empty = ok(direct(client, pages, "empty", blocks=[]))
    bare = ok(draft(client, pages, "bare", blocks=[{"id": "x" * 64, "type": "call-to-action"}]))
    assert ok(get(client, pages, "/empty/content", empty)).json()["blocks"] == []
    assert ok(get(client, pages, "/bare/content/draft", bare)).json()["blocks"] == [
        {"id": "x" * 64, "type": "call-to-action", "data": {}}]  # fmt: skip
    big = [{"id": "big", "type": "text", "data": {"t": "x" * 250_000}}]
    assert ok(draft(client, pages, "big", blocks=big)).json()["version"] == 1


@pytest.mark.parametrize("page", ["bad page", "-lead", "a:b", "x" * 129, "caf%C3%A9"])
def test_invalid_page_slugs_are_422(client: TestClient, pages: dict[str, str], page: str) -> None:
    for response in (
        draft(client, pages, page),
        direct(client, pages, page),
        publish(client, pages, page),
        rollback(client, pages, 1, page),
        client.get(f"{URL}/{page}/content", headers=pages),
        client.get(f"{URL}/{page}/content/draft", headers=pages),
        client.get(f"{URL}/{page}/content/versions", headers=pages),
        client.get(f"{URL}/{page}/content/versions/1", headers=pages),
    ):
        assert_problem(response, 422, "request.invalid")


def test_pages_need_a_known_app(client: TestClient, headers: dict[str, str]) -> None:
    for request in (
        lambda h: draft(client, h),
        lambda h: publish(client, h),
        lambda h: client.get(f"{URL}/home/content", headers=h),
        lambda h: client.get(URL, headers=h),
    ):
        assert assert_problem(request(headers), 400, "context.missing_field")["field"] == "X-App-Id"
        assert_problem(request({**headers, "X-App-Id": "app9"}), 400, "context.unknown_app")
    assert head(client, headers) == 0


def test_page_events_are_written_through_their_routes_only(client: TestClient, pages: dict[str, str]) -> None:
    forged = {
        "type": "page_content.published",
        "data": {"app_id": "app1", "surface_id": "web", "page": "home"},
    }
    for body in ({"stream": STREAM, "events": [{"type": "x"}]}, {"stream": "elsewhere", "events": [forged]}):
        problem = assert_problem(client.post("/v1/events", json=body, headers=pages), 422, "request.invalid")
        assert "/v1/pages/{page}/content" in problem["message"]
    assert head(client, pages) == 0


# Scope: tenant, project, app, surface


def test_another_app_or_surface_neither_sees_the_page_nor_writes_it(
    client: TestClient, pages: dict[str, str], admin: dict[str, str]
) -> None:
    add_scope(client, admin, "app", "app2")
    add_scope(client, admin, "surface", "mobile")
    ok(draft(client, pages, title="Mine"))
    mine = ok(publish(client, pages))
    for other in ({**pages, "X-App-Id": "app2"}, {**pages, "X-Surface-Id": "mobile"}):
        assert_problem(get(client, other, "/home/content", mine), 404, "page_content.not_published")
        assert_problem(get(client, other, "/home/content/draft", mine), 404, "page_content.not_found")
        assert_problem(get(client, other, "/home/content/versions", mine), 404, "page_content.not_found")
        assert listing(client, other, mine)["pages"] == []
        assert_problem(publish(client, other), 404, "page_content.not_found")
        assert_problem(rollback(client, other, 2), 404, "page_content.not_found")
        stale = draft(client, other, title="Theirs", expected_version=2)
        assert assert_problem(stale, 409, "page_content.version_conflict")["current_version"] == 0
        theirs = ok(direct(client, other, title=f"Theirs {other['X-App-Id']}/{other['X-Surface-Id']}"))
        assert theirs.json()["version"] == 1  # a page of its own, from version 1
        content = ok(get(client, other, "/home/content", theirs)).json()
        assert (content["title"], content["app_id"], content["surface_id"]) == (
            f"Theirs {other['X-App-Id']}/{other['X-Surface-Id']}", other["X-App-Id"], other["X-Surface-Id"])  # fmt: skip
        mine_now = ok(get(client, pages, "/home/content", theirs)).json()
        assert (mine_now["title"], mine_now["version"]) == ("Mine", 2)
    assert [p["title"] for p in listing(client, pages, mine)["pages"]] == ["Mine"]


def test_another_tenant_or_project_neither_sees_the_page_nor_writes_it(
    client: TestClient, pages: dict[str, str]
) -> None:
    mine = ok(direct(client, pages, title="Mine"))
    for other in (provision_sync(client, tenant="t2"), provision_sync(client, project="p2")):
        other = {**other, "X-App-Id": "app1"}  # the same app and surface ids, elsewhere
        assert_problem(client.get(f"{URL}/home/content", headers=other), 404, "page_content.not_published")
        assert ok(client.get(URL, headers=other)).json()["pages"] == []
        assert_problem(rollback(client, other, 1), 404, "page_content.not_found")
        theirs = ok(direct(client, other, title="Theirs"))
        assert theirs.json()["version"] == 1
        assert ok(get(client, other, "/home/content", theirs)).json()["title"] == "Theirs"
    content = ok(get(client, pages, "/home/content", mine)).json()
    assert (content["title"], content["version"]) == ("Mine", 1)


def test_identity_in_the_body_may_repeat_the_scope_never_redirect_it(
    client: TestClient, pages: dict[str, str], admin: dict[str, str]
) -> None:
    add_scope(client, admin, "app", "app2")
    for claim in ({"app_id": "app2"}, {"surface_id": "mobile"}, {"project_id": "p2"}, {"tenant_id": "t2"}):
        assert_problem(draft(client, pages, **claim), 403, "auth.identity_override")
        assert_problem(publish(client, pages, **claim), 403, "auth.identity_override")
    assert head(client, pages) == 0
    same = ok(draft(client, pages, app_id="app1", surface_id="web", project_id="p1", tenant_id="t1"))
    [stored] = stream_events(client, pages)
    assert stored["data"]["app_id"] == "app1"
    assert "tenant_id" not in stored["data"]  # the scope comes from the context, never from the body
    assert ok(get(client, pages, "/home/content/draft", same)).json()["version"] == 1


def test_app_and_surface_ids_containing_colons_never_share_a_page(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    for what, ident in (("app", "a"), ("app", "a:b"), ("surface", "b:c"), ("surface", "c")):
        add_scope(client, admin, what, ident)
    one = {**headers, "X-App-Id": "a:b", "X-Surface-Id": "c"}
    two = {**headers, "X-App-Id": "a", "X-Surface-Id": "b:c"}  # joined naively, the same "a:b:c"
    ok(direct(client, one, title="one"))
    last = ok(direct(client, two, title="two"))
    assert last.json()["version"] == 1
    assert [ok(get(client, h, "/home/content", last)).json()["title"] for h in (one, two)] == ["one", "two"]
    assert [[p["title"] for p in listing(client, h, last)["pages"]] for h in (one, two)] == [["one"], ["two"]]
    versions = [ok(get(client, h, "/home/content/versions", last)).json()["versions"] for h in (one, two)]
    assert [[v["title"] for v in found] for found in versions] == [["one"], ["two"]]


# The view: rebuilt from the log, it reads the same


def test_a_rebuilt_view_reads_the_same_as_the_live_one(
    client: TestClient, pages: dict[str, str], admin: dict[str, str]
) -> None:
    ok(draft(client, pages, blocks=[HERO], title="d"))
    ok(publish(client, pages))
    ok(direct(client, pages, "about", blocks=[TEXT]))
    ok(draft(client, pages, "about", blocks=[HERO, TEXT]))
    last = ok(rollback(client, pages, 2))
    paths = ["", "/home/content", "/home/content/draft", "/home/content/versions", "/about/content",
             "/about/content/draft", "/about/content/versions", "/home/content/versions/3"]  # fmt: skip
    before = [(get(client, pages, p, last).status_code, get(client, pages, p, last).json()) for p in paths]
    answer = client.post("/v1/projections/pages/rebuild?wait=true", headers=admin)
    assert answer.status_code == 202, answer.text
    [view] = answer.json()["projections"]
    assert (view["name"], view["generation"], view["rebuild"]["state"]) == ("pages", 1, "swapped")
    after = [(get(client, pages, p, last).status_code, get(client, pages, p, last).json()) for p in paths]
    assert after == before
    assert [status for status, _ in before] == [200] * len(paths)


# Routing: a missing route is loud


def test_a_saas_tenant_without_a_page_content_route_is_refused_before_anything_is_appended(
    client: TestClient,
) -> None:
    saas = {**provision_sync(client, tenant="t9", mode="saas"), "X-App-Id": "app1"}
    # the spine has no route either: answering the page store's code shows the view was asked first
    for response in (
        draft(client, saas),
        direct(client, saas),
        publish(client, saas),
        rollback(client, saas, 1),
        client.get(f"{URL}/home/content", headers=saas),
        client.get(f"{URL}/home/content/draft", headers=saas),
        client.get(f"{URL}/home/content/versions", headers=saas),
        client.get(f"{URL}/home/content/versions/1", headers=saas),
        client.get(URL, headers=saas),
    ):
        problem = assert_problem(response, 503, "page_content_store.missing_route")
        assert (problem["resource_kind"], response.headers["retry-after"]) == ("page_content_store", "1")


def test_a_lab_tenant_without_a_page_content_route_is_served_with_a_warning(
    client: TestClient, pages: dict[str, str], admin: dict[str, str]
) -> None:
    written = ok(draft(client, pages))
    published = ok(publish(client, pages))
    answers = [
        written,
        published,
        ok(get(client, pages, "/home/content", published)),
        ok(get(client, pages, "", published)),
    ]
    for answer in answers:
        assert "page_content_store.missing_route" in answer.headers["x-spine-warning"]
    route = {"resource_kind": "page_content_store", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite",
             "config": {"path": "page-views.db"}}  # fmt: skip
    ok(client.put("/v1/routes", json=route, headers=admin))
    routed = ok(direct(client, pages, title="Routed"))
    assert "page_content_store" not in routed.headers.get("x-spine-warning", "")
    content = ok(get(client, pages, "/home/content", routed))
    assert (content.json()["title"], content.json()["version"]) == ("Routed", 3)  # rebuilt there from the log
    assert "page_content_store" not in content.headers.get("x-spine-warning", "")
