"""The same page-content story on every backend a route may name: the partition's log and the
page view routed to sqlite, DynamoDB Local, the Firestore emulator or the Cosmos DB peer answer
every write, refusal and read the same, and again after the view is rebuilt from the log."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.test_cloud_routes import cosmos_config, dynamodb_config, firestore_config
from tests.provision import admin_headers_sync, provision_sync

HERO = {"id": "hero", "type": "hero", "data": {"heading": "Rockets", "sizes": [1, 2]}}
TEXT = {"id": "intro", "type": "text", "data": {"markdown": "We *ship*.", "nested": {"a": None}}}
TIMES = frozenset({"published_at", "saved_at", "updated_at", "at"})


def sqlite_config(_: pytest.MonkeyPatch) -> dict[str, Any]:
    return {"path": "pages-backend.db"}  # inside the data dir


def timeless(value: Any) -> Any:
    """An answer with each time checked and left out: the one thing two runs answer differently."""
    if isinstance(value, dict):
        for name in TIMES & value.keys():
            assert str(value[name]).endswith("Z")
        return {k: timeless(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def story(client: TestClient, headers: dict[str, str]) -> list[Any]:
    """Writes and refusals, in order; each answer as (status, body without times)."""
    steps: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = [
        ("PUT", "/home/content/draft", {"title": "Home", "blocks": [HERO]}, {}),
        ("POST", "/home/publish", {}, {"If-Match": '"1"'}),
        ("PUT", "/home/content/draft", {"title": "Home 2", "blocks": [HERO, TEXT]}, {}),
        ("PUT", "/about/content", {"blocks": [TEXT]}, {}),
        ("POST", "/about/publish", {}, {}),  # no draft: 409
        ("POST", "/home/publish", {"version": 2}, {}),  # a published version: 422
        ("POST", "/home/publish", {"version": 9}, {}),  # no such version: 404
        ("POST", "/home/publish", {"expected_version": 1}, {}),  # stale: 409
        ("POST", "/home/publish", {}, {}),  # 4, from the draft 3
        ("POST", "/home/rollback", {"to": 3}, {}),  # a draft: 422
        ("POST", "/home/rollback", {"to": 2}, {"If-Match": '"4"'}),  # 5, the blocks of 2
        ("POST", "/nothing/rollback", {"to": 1}, {}),  # never written: 404
    ]
    answers = []
    for method, path, body, extra in steps:
        answer = client.request(method, f"/v1/pages{path}", json=body, headers={**headers, **extra})
        assert answer.status_code < 500, answer.text
        answers.append((answer.status_code, answer.headers.get("etag"), timeless(answer.json())))
    return answers


def reads(client: TestClient, headers: dict[str, str], position: int) -> list[Any]:
    waited = {**headers, "X-Spine-Min-Position": str(position)}
    paths = ["", "?limit=1", "?limit=1&after=about", "/home/content", "/home/content/draft",
             "/home/content/versions", "/home/content/versions?after=2&limit=2", "/home/content/versions/5",
             "/about/content", "/about/content/draft", "/about/content/versions/2"]  # fmt: skip
    answers = []
    for path in paths:
        answer = client.get(f"/v1/pages{path}", headers=waited)
        assert answer.status_code < 500, answer.text
        answers.append((path, answer.status_code, answer.headers.get("etag"), timeless(answer.json())))
    return answers


def written(version: int, change: str, source: int | None, position: int) -> tuple[int, str, dict[str, Any]]:
    body = {
        "page": "home",
        "version": version,
        "change": change,
        "from_version": source,
        "position": position,
    }
    return 200, f'"{version}"', body


@pytest.mark.parametrize(
    ("backend", "config_of"),
    [
        ("sqlite", sqlite_config),
        ("dynamodb", dynamodb_config),
        ("firestore", firestore_config),
        ("cosmos", cosmos_config),
    ],
)
def test_pages_answer_the_same_on_every_backend_and_after_a_rebuild(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str, config_of: Any
) -> None:
    config = config_of(monkeypatch)
    with TestClient(create_app(settings)) as client:
        headers = {**provision_sync(client), "X-App-Id": "app1"}
        admin = admin_headers_sync(client)
        for kind in ("event_spine", "page_content_store"):
            route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": "p1",
                     "backend_type": backend, "config": config}  # fmt: skip
            assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
        told = story(client, headers)
        problems = [(status, body.get("error_code")) for status, _, body in told if status != 200]
        assert problems == [
            (409, "page_content.no_draft"),
            (422, "page_content.not_a_draft"),
            (404, "page_content.version_not_found"),
            (409, "page_content.version_conflict"),
            (422, "page_content.not_a_published_version"),
            (404, "page_content.not_found"),
        ]
        done = [answer for answer in told if answer[0] == 200]
        assert [(version, body["change"], body["from_version"]) for _, version, body in done] == [
            ('"1"', "draft", None), ('"2"', "published", 1), ('"3"', "draft", None), ('"1"', "published", None),
            ('"4"', "published", 3), ('"5"', "rolled_back", 2),
        ]  # fmt: skip
        assert [body["position"] for _, _, body in done] == [1, 2, 3, 4, 5, 6]  # the routed log: from 1
        before = reads(client, headers, 6)
        listed = before[0][3]["pages"]
        assert [(p["page"], p["version"], p["draft_version"], p["published_version"]) for p in listed] == [
            ("about", 1, None, 1), ("home", 5, 3, 5)]  # fmt: skip
        content = before[3]
        assert (content[1], content[2], content[3]["blocks"], content[3]["from_version"]) == (
            200,
            '"5"',
            [HERO],
            2,
        )
        draft = before[4]
        assert (draft[3]["version"], draft[3]["title"], draft[3]["blocks"]) == (3, "Home 2", [HERO, TEXT])
        assert [v["version"] for v in before[5][3]["versions"]] == [1, 2, 3, 4, 5]
        assert ([v["version"] for v in before[6][3]["versions"]], before[6][3]["next"]) == ([3, 4], 4)
        assert before[9][1:3] == (404, None)
        assert before[10][3]["error_code"] == "page_content.version_not_found"
        assert (
            "x-spine-warning" not in client.get("/v1/pages", headers=headers).headers
        )  # routed: no fallback

        rebuilt = client.post("/v1/projections/pages/rebuild?wait=true", headers=admin)
        assert rebuilt.status_code == 202, rebuilt.text
        assert [(p["generation"], p["rebuild"]["state"]) for p in rebuilt.json()["projections"]] == [
            (1, "swapped")
        ]
        assert reads(client, headers, 6) == before
    with TestClient(create_app(settings)) as client:  # another start: the view and log are in the backend
        assert reads(client, headers, 6) == before
