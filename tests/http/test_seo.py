"""`/v1/seo/{page}`: versioned SEO config per (tenant, mode, project, app, surface), its rules,
its scope, and its view (rebuilt equal to the incremental one)."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

URL = "/v1/seo"
STREAM = "seo:4:app1:3:web:home"
FULL = {
    "title": "Acme — rockets for everyone",
    "description": "Rockets, launch pads and spare parts, shipped worldwide.",
    "canonical_url": "https://acme.example/?ref=seo",
    "robots": "index, follow, max-snippet:120",
    "open_graph": {"og:title": "Acme", "og:image": "https://acme.example/og.png", "twitter:card": "summary"},
    "structured_data": {"@context": "https://schema.org", "@type": "Organization", "name": "Acme"},
}


@pytest.fixture
def seo(headers: dict[str, str]) -> dict[str, str]:
    """Headers of member u1 of t1/p1, surface web, app app1."""
    return {**headers, "X-App-Id": "app1"}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


def ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code in (200, 201), response.text
    return response


def save(
    client: TestClient, headers: dict[str, str], page: str = "home", title: str = "Home", **fields: Any
) -> httpx.Response:
    return client.put(f"{URL}/{page}", json={"title": title, **fields}, headers=headers)


def waited(headers: dict[str, str], answer: httpx.Response) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def read(client: TestClient, headers: dict[str, str], page: str, after: httpx.Response) -> httpx.Response:
    return client.get(f"{URL}/{page}", headers=waited(headers, after))


def listing(client: TestClient, headers: dict[str, str], written: httpx.Response, **params: Any) -> Any:
    return ok(client.get(URL, params=params, headers=waited(headers, written))).json()


def head(client: TestClient, headers: dict[str, str]) -> int:
    answer: int = ok(client.get("/v1/events", headers=headers)).json()["head"]
    return answer


def add_scope(client: TestClient, admin: dict[str, str], what: str, ident: str, tenant: str = "t1") -> None:
    ok(client.post(f"/v1/tenants/{tenant}/{what}s", json={f"{what}_id": ident, "name": ident}, headers=admin))


# Writes, reads, versions


def test_a_saved_config_reads_back_whole_with_its_version_as_etag(
    client: TestClient, seo: dict[str, str]
) -> None:
    written = ok(save(client, seo, **FULL))
    body = written.json()
    assert body == {"page": "home", "version": 1, "position": body["position"]}
    assert (written.headers["x-spine-position"], written.headers["etag"]) == (str(body["position"]), '"1"')
    got = ok(read(client, seo, "home", written))
    assert got.headers["etag"] == '"1"'
    config = got.json()
    assert {field: config[field] for field in FULL} == FULL
    assert (config["page"], config["app_id"], config["surface_id"]) == ("home", "app1", "web")
    assert (config["version"], config["position"], config["updated_by"]) == (1, body["position"], "u1")
    assert config["updated_at"].endswith("Z")


def test_every_write_replaces_the_whole_config_and_counts_a_version(
    client: TestClient, seo: dict[str, str]
) -> None:
    ok(save(client, seo, **FULL))
    second = ok(save(client, seo, title="Home, plainer"))
    assert (second.json()["version"], second.headers["etag"]) == (2, '"2"')
    config = read(client, seo, "home", second).json()
    assert (config["title"], config["version"]) == ("Home, plainer", 2)
    absent = ("description", "canonical_url", "robots", "open_graph", "structured_data")
    assert [config[field] for field in absent] == [None] * 5


def test_a_stale_expected_version_is_409_with_the_current_one(
    client: TestClient, seo: dict[str, str]
) -> None:
    ok(save(client, seo))
    ok(save(client, seo, expected_version=1))
    problem = assert_problem(save(client, seo, expected_version=1), 409, "seo_config.version_conflict")
    assert (problem["expected_version"], problem["current_version"]) == (1, 2)
    assert_problem(save(client, seo, expected_version="no_stream"), 409, "seo_config.version_conflict")
    fresh = assert_problem(save(client, seo, "fresh", expected_version=5), 409, "seo_config.version_conflict")
    assert fresh["current_version"] == 0
    created = ok(save(client, seo, "fresh", expected_version="no_stream"))  # create-only
    assert created.json()["version"] == 1
    assert read(client, seo, "home", created).json()["version"] == 2  # refused writes changed nothing


def test_if_match_is_a_compare_and_set_too(client: TestClient, seo: dict[str, str]) -> None:
    ok(save(client, seo))
    matched = ok(client.put(f"{URL}/home", json={"title": "v2"}, headers={**seo, "If-Match": '"1"'}))
    assert matched.json()["version"] == 2
    stale = client.put(f"{URL}/home", json={"title": "v3"}, headers={**seo, "If-Match": '"1"'})
    assert_problem(stale, 409, "seo_config.version_conflict")
    both = client.put(
        f"{URL}/home", json={"title": "v3", "expected_version": 2}, headers={**seo, "If-Match": '"2"'}
    )
    assert both.json()["version"] == 3
    disagree = client.put(
        f"{URL}/home", json={"title": "v4", "expected_version": 1}, headers={**seo, "If-Match": '"3"'}
    )
    assert_problem(disagree, 422, "request.invalid")
    for garbage in ("abc", '"-1"', '"1.0"', ""):
        sent = client.put(f"{URL}/home", json={"title": "v4"}, headers={**seo, "If-Match": garbage})
        assert "If-Match" in assert_problem(sent, 422, "request.invalid")["message"]
    assert read(client, seo, "home", both).json()["title"] == "v3"


def test_an_absent_page_is_404(client: TestClient, seo: dict[str, str]) -> None:
    problem = assert_problem(client.get(f"{URL}/nothing", headers=seo), 404, "seo_config.not_found")
    assert problem["page"] == "nothing"


def test_a_delete_leaves_a_tombstone_and_the_version_goes_on(client: TestClient, seo: dict[str, str]) -> None:
    ok(save(client, seo))
    gone = ok(client.delete(f"{URL}/home", headers=seo))
    assert gone.json() == {
        "page": "home",
        "status": "deleted",
        "version": 2,
        "position": gone.json()["position"],
    }
    assert gone.headers["x-spine-position"] == str(gone.json()["position"])
    assert_problem(read(client, seo, "home", gone), 404, "seo_config.not_found")
    assert listing(client, seo, gone)["pages"] == []
    assert_problem(client.delete(f"{URL}/home", headers=seo), 404, "seo_config.not_found")
    assert_problem(client.delete(f"{URL}/never", headers=seo), 404, "seo_config.not_found")
    again = ok(save(client, seo, title="Back"))
    assert again.json()["version"] == 3
    assert read(client, seo, "home", again).json()["title"] == "Back"
    stream = ok(client.get(f"/v1/streams/{STREAM}", headers=seo)).json()
    assert [e["type"] for e in stream["events"]] == [
        "seo.config_saved",
        "seo.config_deleted",
        "seo.config_saved",
    ]
    assert stream["events"][1]["data"] == {
        "app_id": "app1",
        "surface_id": "web",
        "page": "home",
        "deleted_by": "u1",
    }


def test_a_delete_with_a_stale_if_match_is_409_and_deletes_nothing(
    client: TestClient, seo: dict[str, str]
) -> None:
    ok(save(client, seo))
    latest = ok(save(client, seo, title="v2"))
    stale = client.delete(f"{URL}/home", headers={**seo, "If-Match": '"1"'})
    assert assert_problem(stale, 409, "seo_config.version_conflict")["current_version"] == 2
    assert read(client, seo, "home", latest).json()["title"] == "v2"
    gone = ok(client.delete(f"{URL}/home", headers={**seo, "If-Match": '"2"'}))
    assert_problem(read(client, seo, "home", gone), 404, "seo_config.not_found")


def test_the_list_pages_through_slugs_in_order_by_cursor(client: TestClient, seo: dict[str, str]) -> None:
    for page in ("pricing", "about", "blog.post-2", "blog.post-1", "home"):
        last = ok(save(client, seo, page, title=f"T {page}"))
    first = listing(client, seo, last, limit=2)
    assert (first["app_id"], first["surface_id"]) == ("app1", "web")
    assert [p["page"] for p in first["pages"]] == ["about", "blog.post-1"]
    assert first["next"] == "blog.post-1"
    assert first["pages"][0] == {
        "page": "about", "title": "T about", "version": 1, "updated_at": first["pages"][0]["updated_at"],
        "updated_by": "u1",
    }  # fmt: skip
    second = listing(client, seo, last, limit=2, after=first["next"])
    assert ([p["page"] for p in second["pages"]], second["next"]) == (["blog.post-2", "home"], "home")
    third = listing(client, seo, last, limit=2, after=second["next"])
    assert ([p["page"] for p in third["pages"]], third["next"]) == (["pricing"], None)
    everything = listing(client, seo, last)
    assert ([p["page"] for p in everything["pages"]], everything["next"]) == (
        ["about", "blog.post-1", "blog.post-2", "home", "pricing"], None)  # fmt: skip


def test_bad_list_queries_are_refused(client: TestClient, seo: dict[str, str]) -> None:
    assert_problem(client.get(URL, params={"after": "a b"}, headers=seo), 400, "cursor.invalid")
    assert_problem(client.get(URL, params={"limit": 0}, headers=seo), 422, "request.invalid")
    assert_problem(client.get(URL, params={"limit": 1001}, headers=seo), 422, "request.invalid")
    far = {**seo, "X-Spine-Min-Position": "99"}
    assert_problem(client.get(URL, headers=far), 400, "cursor.invalid")


# The rules of a config


DROP = object()  # a field left out of the body
LONG_LD = {"@context": "https://schema.org", "@type": "Article", "articleBody": "x" * 33_000}
MANY_OG = {f"og:k{n}": "v" for n in range(65)}
RULES = [
    # (body fields, a piece of the message that names what is wrong)
    ({"title": None}, "title"),
    ({"title": DROP}, "title"),
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 71}, "title"),
    ({"title": "two\nlines"}, "title"),
    ({"title": 7}, "title"),
    ({"description": ""}, "description"),
    ({"description": "  "}, "description"),
    ({"description": "x" * 321}, "description"),
    ({"canonical_url": "/relative/path"}, "canonical_url"),
    ({"canonical_url": "ftp://acme.example/"}, "canonical_url"),
    ({"canonical_url": "https://"}, "canonical_url"),
    ({"canonical_url": "https://acme .example/"}, "canonical_url"),
    ({"canonical_url": "https://acme.example/#top"}, "canonical_url"),
    ({"canonical_url": "https://user:pw@acme.example/"}, "canonical_url"),
    ({"canonical_url": "https://acme.example:99999/"}, "canonical_url"),
    ({"canonical_url": "https://acme.example/" + "x" * 2030}, "canonical_url"),
    ({"robots": ""}, "robots"),
    ({"robots": "index, noindex"}, "contradicts"),
    ({"robots": "follow,nofollow"}, "contradicts"),
    ({"robots": "all, noindex"}, "contradicts"),
    ({"robots": "none, follow"}, "contradicts"),
    ({"robots": "noindex, NOINDEX"}, "twice"),
    ({"robots": "max-snippet:10, max-snippet:20"}, "twice"),
    ({"robots": "noindex,,nofollow"}, "empty directive"),
    ({"robots": "noindex,"}, "empty directive"),
    ({"robots": "noindex, sometimes"}, "unknown directive 'sometimes'"),
    ({"robots": "index:yes"}, "takes no value"),
    ({"robots": "max-snippet"}, "needs a value"),
    ({"robots": "max-snippet:-2"}, "max-snippet"),
    ({"robots": "max-video-preview:soon"}, "max-video-preview"),
    ({"robots": "max-image-preview:huge"}, "max-image-preview"),
    ({"robots": "unavailable_after: next tuesday"}, "unavailable_after"),
    ({"robots": "noindex " + " " * 510}, "robots"),
    ({"open_graph": {"title": "no prefix"}}, "open_graph"),
    ({"open_graph": {"og:": "empty name"}}, "open_graph"),
    ({"open_graph": {"OG:title": "upper case"}}, "open_graph"),
    ({"open_graph": {"og:title": ""}}, "open_graph"),
    ({"open_graph": {"og:image": ["a", "b"]}}, "open_graph"),
    ({"open_graph": {"og:image": "x" * 2049}}, "open_graph"),
    ({"open_graph": MANY_OG}, "open_graph"),
    ({"open_graph": ["og:title"]}, "open_graph"),
    ({"structured_data": {"@type": "Article"}}, "@context"),
    ({"structured_data": {"@context": "", "@type": "Article"}}, "@context"),
    ({"structured_data": {"@context": "https://schema.org"}}, "@type"),
    ({"structured_data": {"@context": "https://schema.org", "@type": ""}}, "@type"),
    ({"structured_data": {"@context": "https://schema.org", "@type": ["Article", 3]}}, "@type"),
    ({"structured_data": {"@context": "https://schema.org", "@graph": [{"name": "untyped"}]}}, "@graph"),
    ({"structured_data": [FULL["structured_data"], {"@type": "Thing"}]}, "structured_data[1]"),
    ({"structured_data": []}, "structured_data"),
    ({"structured_data": [FULL["structured_data"]] * 21}, "structured_data"),
    ({"structured_data": "<script>…</script>"}, "structured_data"),
    ({"structured_data": LONG_LD}, "bytes"),
    ({"canonical": "https://acme.example/"}, "canonical"),  # a typo is refused, never dropped
    ({"expected_version": -1}, "expected_version"),
]


@pytest.mark.parametrize(("fields", "named"), RULES)
def test_a_config_breaking_a_rule_is_422_naming_it_and_appends_nothing(
    client: TestClient, seo: dict[str, str], fields: dict[str, Any], named: str
) -> None:
    body = {name: value for name, value in {"title": "Home", **fields}.items() if value is not DROP}
    problem = assert_problem(client.put(f"{URL}/home", json=body, headers=seo), 422, "request.invalid")
    assert named in problem["message"]
    assert head(client, seo) == 0


def test_values_at_the_bounds_are_accepted_and_robots_normalized(
    client: TestClient, seo: dict[str, str]
) -> None:
    graph = {
        "@context": {"@vocab": "https://schema.org/"},
        "@graph": [{"@type": "WebSite", "name": "Acme"}, {"@type": ["Organization", "Brand"]}],
    }
    body = {
        "title": "T" * 70,
        "description": "D" * 320,
        "canonical_url": "http://acme.example:8080/a/b?c=d&e=f",
        "robots": " NOINDEX ,nofollow,Max-Snippet : -1, max-image-preview:LARGE, max-video-preview:0, "
        "noarchive, unavailable_after: 2026-12-31T23:59:00+00:00",
        "open_graph": {f"og:image:k{n}": "v" for n in range(64)},
        "structured_data": graph,
    }
    written = ok(client.put(f"{URL}/home", json=body, headers=seo))
    config = read(client, seo, "home", written).json()
    assert config["robots"] == (
        "noindex, nofollow, max-snippet:-1, max-image-preview:large, max-video-preview:0, noarchive, "
        "unavailable_after:2026-12-31T23:59:00+00:00"
    )
    assert {
        k: config[k] for k in ("title", "description", "canonical_url", "open_graph", "structured_data")
    } == {k: body[k] for k in ("title", "description", "canonical_url", "open_graph", "structured_data")}
    listed = [dict(FULL["structured_data"], name=f"n{n}") for n in range(20)]
    assert ok(save(client, seo, "many", structured_data=listed, robots="none")).status_code == 200


@pytest.mark.parametrize("page", ["bad page", "-lead", "a:b", "x" * 129, "caf%C3%A9"])
def test_invalid_page_slugs_are_422(client: TestClient, seo: dict[str, str], page: str) -> None:
    assert_problem(save(client, seo, page), 422, "request.invalid")
    assert_problem(client.get(f"{URL}/{page}", headers=seo), 422, "request.invalid")
    assert_problem(client.delete(f"{URL}/{page}", headers=seo), 422, "request.invalid")


def test_seo_needs_a_known_app(client: TestClient, headers: dict[str, str]) -> None:
    for request in (
        lambda h: save(client, h),
        lambda h: client.get(f"{URL}/home", headers=h),
        lambda h: client.get(URL, headers=h),
        lambda h: client.delete(f"{URL}/home", headers=h),
    ):
        assert assert_problem(request(headers), 400, "context.missing_field")["field"] == "X-App-Id"
        assert_problem(request({**headers, "X-App-Id": "app9"}), 400, "context.unknown_app")
    assert head(client, headers) == 0


def test_seo_events_are_written_through_its_route_only(client: TestClient, seo: dict[str, str]) -> None:
    forged = {
        "type": "seo.config_saved",
        "data": {"app_id": "app1", "surface_id": "web", "page": "home", "title": "x"},
    }
    for body in ({"stream": STREAM, "events": [{"type": "x"}]}, {"stream": "elsewhere", "events": [forged]}):
        problem = assert_problem(client.post("/v1/events", json=body, headers=seo), 422, "request.invalid")
        assert "/v1/seo/{page}" in problem["message"]
    assert head(client, seo) == 0


# Scope: tenant, project, app, surface


def test_another_app_or_surface_neither_sees_the_config_nor_writes_it(
    client: TestClient, seo: dict[str, str], admin: dict[str, str]
) -> None:
    add_scope(client, admin, "app", "app2")
    add_scope(client, admin, "surface", "mobile")
    mine = ok(save(client, seo, title="Mine", description="app1 on web"))
    for other in ({**seo, "X-App-Id": "app2"}, {**seo, "X-Surface-Id": "mobile"}):
        assert_problem(read(client, other, "home", mine), 404, "seo_config.not_found")
        assert listing(client, other, mine)["pages"] == []
        assert_problem(client.delete(f"{URL}/home", headers=other), 404, "seo_config.not_found")
        # its own stream: version 0 there, whatever version the config of app1/web is at
        stale = save(client, other, title="Theirs", expected_version=1)
        assert assert_problem(stale, 409, "seo_config.version_conflict")["current_version"] == 0
        theirs = ok(save(client, other, title=f"Theirs {other['X-App-Id']}/{other['X-Surface-Id']}"))
        assert theirs.json()["version"] == 1  # a separate config, from version 1
        config = read(client, other, "home", theirs).json()
        assert (config["title"], config["app_id"], config["surface_id"]) == (
            f"Theirs {other['X-App-Id']}/{other['X-Surface-Id']}", other["X-App-Id"], other["X-Surface-Id"])  # fmt: skip
        assert [p["title"] for p in listing(client, other, theirs)["pages"]] == [config["title"]]
        mine_now = read(client, seo, "home", theirs).json()
        assert (mine_now["title"], mine_now["description"], mine_now["version"]) == ("Mine", "app1 on web", 1)
    assert [p["title"] for p in listing(client, seo, mine)["pages"]] == ["Mine"]


def test_another_tenant_or_project_neither_sees_the_config_nor_writes_it(
    client: TestClient, seo: dict[str, str]
) -> None:
    mine = ok(save(client, seo, title="Mine"))
    for other in (provision_sync(client, tenant="t2"), provision_sync(client, project="p2")):
        other = {**other, "X-App-Id": "app1"}  # the same app and surface ids, elsewhere
        assert_problem(client.get(f"{URL}/home", headers=other), 404, "seo_config.not_found")
        assert ok(client.get(URL, headers=other)).json()["pages"] == []
        assert_problem(client.delete(f"{URL}/home", headers=other), 404, "seo_config.not_found")
        theirs = ok(save(client, other, title="Theirs"))
        assert theirs.json()["version"] == 1
        assert read(client, other, "home", theirs).json()["title"] == "Theirs"
    config = read(client, seo, "home", mine).json()
    assert (config["title"], config["version"]) == ("Mine", 1)


def test_identity_in_the_body_may_repeat_the_scope_never_redirect_it(
    client: TestClient, seo: dict[str, str], admin: dict[str, str]
) -> None:
    add_scope(client, admin, "app", "app2")
    add_scope(client, admin, "surface", "mobile")
    for claim in ({"app_id": "app2"}, {"surface_id": "mobile"}, {"project_id": "p2"}, {"tenant_id": "t2"}):
        assert_problem(save(client, seo, **claim), 403, "auth.identity_override")
    assert head(client, seo) == 0
    same = ok(save(client, seo, app_id="app1", surface_id="web", project_id="p1", tenant_id="t1"))
    stored = ok(client.get(f"/v1/streams/{STREAM}", headers=seo)).json()["events"][0]["data"]
    assert stored["app_id"] == "app1"
    assert "tenant_id" not in stored  # the scope comes from the context, never from the body
    assert read(client, seo, "home", same).json()["version"] == 1


def test_app_and_surface_ids_containing_colons_never_share_a_config(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    for what, ident in (("app", "a"), ("app", "a:b"), ("surface", "b:c"), ("surface", "c")):
        add_scope(client, admin, what, ident)
    one = {**headers, "X-App-Id": "a:b", "X-Surface-Id": "c"}
    two = {**headers, "X-App-Id": "a", "X-Surface-Id": "b:c"}  # joined naively, the same "a:b:c"
    ok(save(client, one, title="one"))
    last = ok(save(client, two, title="two"))
    assert last.json()["version"] == 1
    assert [read(client, h, "home", last).json()["title"] for h in (one, two)] == ["one", "two"]
    assert [[p["title"] for p in listing(client, h, last)["pages"]] for h in (one, two)] == [["one"], ["two"]]


# The view: rebuilt from the log, it reads the same


def scope_snapshot(client: TestClient, headers: dict[str, str], after: httpx.Response) -> list[Any]:
    """Everything the API shows of one (app, surface): every listing page, and every config."""
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({} if cursor is None else {"after": cursor})
        answer = listing(client, headers, after, **params)
        pages.extend(answer["pages"])
        cursor = answer["next"]
        if cursor is None:
            break
    configs = [ok(read(client, headers, p["page"], after)).json() for p in pages]
    return [pages, configs]


def test_a_rebuilt_view_reads_the_same_as_the_live_one_and_as_a_model(
    client: TestClient, seo: dict[str, str], admin: dict[str, str]
) -> None:
    add_scope(client, admin, "app", "app2")
    add_scope(client, admin, "surface", "mobile")
    scopes = {
        ("app1", "web"): seo,
        ("app2", "web"): {**seo, "X-App-Id": "app2"},
        ("app1", "mobile"): {**seo, "X-Surface-Id": "mobile"},
    }
    pages = ["home", "about", "blog.post-1", "pricing", "z_last"]
    model: dict[tuple[str, str, str], tuple[str, int]] = {}  # (app, surface, page) -> (title, version)
    versions: dict[tuple[str, str, str], int] = {}  # stream versions: deletions count too
    rng = random.Random(6)
    last = None
    for n in range(60):
        scope = rng.choice(list(scopes))
        page = rng.choice(pages)
        key = (*scope, page)
        if key in model and rng.random() < 0.3:
            last = ok(client.delete(f"{URL}/{page}", headers=scopes[scope]))
            del model[key]
        else:
            last = ok(save(client, scopes[scope], page, title=f"t{n}", description=f"d{n}"))
            model[key] = (f"t{n}", versions.get(key, 0) + 1)
        versions[key] = versions.get(key, 0) + 1
        assert last.json()["version"] == versions[key]
    assert last is not None
    before = {scope: scope_snapshot(client, h, last) for scope, h in scopes.items()}
    seen = {
        (config["app_id"], config["surface_id"], config["page"]): (config["title"], config["version"])
        for listed, configs in before.values()
        for config in configs
    }
    assert seen == model
    assert sum(len(configs) for _, configs in before.values()) == len(model) > 0

    answer = client.post("/v1/projections/seo/rebuild?wait=true", headers=admin)
    assert answer.status_code == 202, answer.text
    [view] = answer.json()["projections"]
    assert (view["name"], view["generation"], view["rebuild"]["state"]) == ("seo", 1, "swapped")
    assert view["rebuild"]["position"] == int(last.headers["x-spine-position"])
    after = {scope: scope_snapshot(client, h, last) for scope, h in scopes.items()}
    assert after == before


# Routing: a missing route is loud


def test_a_saas_tenant_without_a_seo_route_is_refused_before_anything_is_appended(
    client: TestClient,
) -> None:
    saas = {**provision_sync(client, tenant="t9", mode="saas"), "X-App-Id": "app1"}
    # the spine has no route either: answering the SEO store's code shows the view was asked first
    for response in (
        save(client, saas),
        client.get(f"{URL}/home", headers=saas),
        client.get(URL, headers=saas),
        client.delete(f"{URL}/home", headers=saas),
    ):
        problem = assert_problem(response, 503, "seo_config_store.missing_route")
        assert (problem["resource_kind"], response.headers["retry-after"]) == ("seo_config_store", "1")


def test_a_seo_store_that_cannot_be_reached_refuses_before_anything_is_appended(
    client: TestClient, seo: dict[str, str], admin: dict[str, str]
) -> None:
    route = {"resource_kind": "seo_config_store", "tenant_id": "t1", "env": "dev", "project_id": "p1",
             "backend_type": "redis", "config": {"url": "redis://127.0.0.1:6379/0"}}  # fmt: skip
    ok(client.put("/v1/routes", json=route, headers=admin))
    assert_problem(save(client, seo), 503, "seo_config_store.backend_unavailable")
    assert_problem(client.delete(f"{URL}/home", headers=seo), 503, "seo_config_store.backend_unavailable")
    assert head(client, seo) == 0


def test_a_lab_tenant_without_a_seo_route_is_served_with_a_warning(
    client: TestClient, seo: dict[str, str], admin: dict[str, str]
) -> None:
    written = ok(save(client, seo))
    answers = [
        written,
        ok(read(client, seo, "home", written)),
        ok(client.get(URL, headers=seo)),
        ok(client.delete(f"{URL}/home", headers=seo)),
    ]
    for answer in answers:
        assert "seo_config_store.missing_route" in answer.headers["x-spine-warning"]
    route = {"resource_kind": "seo_config_store", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite",
             "config": {"path": "seo-views.db"}}  # fmt: skip
    ok(client.put("/v1/routes", json=route, headers=admin))
    routed = ok(save(client, seo, title="Routed"))
    assert "seo_config_store" not in routed.headers.get("x-spine-warning", "")
    assert "seo_config_store" not in ok(read(client, seo, "home", routed)).headers.get("x-spine-warning", "")


# Audit


def test_seo_writes_are_in_the_audit_view(client: TestClient, seo: dict[str, str]) -> None:
    ok(save(client, seo, **FULL))
    gone = ok(client.delete(f"{URL}/home", headers=seo))
    boss = provision_sync(client, user="boss", role="admin")
    answer = ok(client.get("/v1/audit", params={"limit": 1000}, headers=waited(boss, gone))).json()
    found = [(r["action"], r["resource"], r["actor"], r["source"]) for r in answer["records"]]
    assert found == [
        ("seo.config_saved", STREAM, "u1", "write"),
        ("seo.config_deleted", STREAM, "u1", "write"),
    ]
    assert all(r["details"] is None for r in answer["records"])  # the config itself is not copied
