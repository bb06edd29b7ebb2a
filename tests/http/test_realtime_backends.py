"""The same realtime-registry story on every backend a route may name: the partition's log and the
registry view routed to sqlite, DynamoDB Local, the Firestore emulator or the Cosmos DB peer answer
every write, refusal and read the same, and again after the view is rebuilt from the log and after
another start."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.test_cloud_routes import cosmos_config, dynamodb_config, firestore_config
from tests.provision import admin_headers_sync, provision_sync

TIMES = frozenset({"created_at", "updated_at", "archived_at", "posted_at"})
USERS = ("u1", "u2", "u9", "a1")  # the owner, a member, an outsider, a tenant admin


def sqlite_config(_: pytest.MonkeyPatch) -> dict[str, Any]:
    return {"path": "realtime-backend.db"}  # inside the data dir


def timeless(value: Any) -> Any:
    """An answer with each time checked and left out: the one thing two runs answer differently."""
    if isinstance(value, dict):
        for name in TIMES & value.keys():
            assert value[name] is None or str(value[name]).endswith("Z")
        return {k: timeless(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def story(client: TestClient, users: dict[str, dict[str, str]]) -> list[Any]:
    """Writes and refusals, in order; each answer as (status, ETag, body without times)."""
    steps: list[tuple[str, str, str, dict[str, Any], dict[str, str]]] = [
        ("u1", "POST", "/v1/threads", {"id": "t-1", "title": "Launch", "members": ["u2"]}, {}),
        ("u1", "POST", "/v1/threads", {"id": "t-1"}, {}),  # 409 already_exists
        ("u2", "POST", "/v1/threads/t-1/messages", {"content": {"text": "hi"}, "id": "m-1"}, {}),
        (
            "u2",
            "POST",
            "/v1/threads/t-1/messages",
            {"content": {"text": "hi"}, "id": "m-1"},
            {},
        ),  # the original
        ("u9", "POST", "/v1/threads/t-1/messages", {"content": "in?"}, {}),  # 403 not_member
        ("u2", "PATCH", "/v1/threads/t-1", {"title": "mine"}, {}),  # 403 not_owner
        ("u1", "PATCH", "/v1/threads/t-1", {"title": "Liftoff", "add_members": ["u3"]}, {"If-Match": '"1"'}),
        ("u1", "PATCH", "/v1/threads/t-1", {"remove_members": ["u1"]}, {}),  # 409 owner_not_removable
        ("u1", "PATCH", "/v1/threads/t-1", {"title": "x", "expected_version": 1}, {}),  # 409 version_conflict
        ("a1", "PATCH", "/v1/threads/t-1", {"owner": "u2"}, {}),  # a tenant admin's transfer
        ("u2", "PATCH", "/v1/threads/t-1", {"remove_members": ["u1"], "archived": True}, {}),
        ("u2", "POST", "/v1/threads/t-1/messages", {"content": "late"}, {}),  # 409 archived
        ("u1", "POST", "/v1/canvases", {"id": "t-1", "members": ["u9"]}, {}),
        ("u9", "POST", "/v1/canvases/t-1/messages", {"content": {"op": "draw"}}, {}),
    ]
    answers = []
    for user, method, path, body, extra in steps:
        answer = client.request(method, path, json=body, headers={**users[user], **extra})
        assert answer.status_code < 500, answer.text
        answers.append((answer.status_code, answer.headers.get("etag"), timeless(answer.json())))
    return answers


def reads(client: TestClient, users: dict[str, dict[str, str]], position: int) -> list[Any]:
    paths = ["/v1/threads", "/v1/threads?archived=false", "/v1/threads?limit=1", "/v1/canvases",
             "/v1/threads/t-1", "/v1/threads/t-1/messages", "/v1/canvases/t-1", "/v1/canvases/t-1/messages"]  # fmt: skip
    answers = []
    for user in USERS:
        waited = {**users[user], "X-Spine-Min-Position": str(position)}
        for path in paths:
            answer = client.get(path, headers=waited)
            assert answer.status_code < 500, answer.text
            answers.append(
                (user, path, answer.status_code, answer.headers.get("etag"), timeless(answer.json()))
            )
    return answers


@pytest.mark.parametrize(
    ("backend", "config_of"),
    [
        ("sqlite", sqlite_config),
        ("dynamodb", dynamodb_config),
        ("firestore", firestore_config),
        ("cosmos", cosmos_config),
    ],
)
def test_the_registry_answers_the_same_on_every_backend_and_after_a_rebuild(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str, config_of: Any
) -> None:
    config = config_of(monkeypatch)
    with TestClient(create_app(settings)) as client:
        users = {
            user: provision_sync(client, user=user, role="admin" if user == "a1" else "member")
            for user in USERS
        }
        admin = admin_headers_sync(client)
        for kind in ("event_spine", "realtime_registry"):
            route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": "p1",
                     "backend_type": backend, "config": config}  # fmt: skip
            assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
        told = story(client, users)
        assert [(status, body.get("error_code")) for status, _, body in told if status >= 400] == [
            (409, "realtime.already_exists"),
            (403, "realtime.not_member"),
            (403, "realtime.not_owner"),
            (409, "realtime.owner_not_removable"),
            (409, "realtime.version_conflict"),
            (409, "realtime.archived"),
        ]
        done = [body for status, _, body in told if status < 400]
        assert [body.get("changes") for body in done] == [
            ["thread.created"], None, None,
            ["thread.retitled", "thread.members_added"],
            ["thread.owner_transferred"],
            ["thread.members_removed", "thread.archived"],
            ["canvas.created"], None,
        ]  # fmt: skip
        assert done[1] == done[2] == {"id": "m-1", "version": 2, "position": 2}  # a retry: the original
        assert [body["position"] for body in done] == [1, 2, 2, 4, 5, 7, 8, 9]  # the routed log: from 1
        before = reads(client, users, 9)
        by = {(user, path): (status, body) for user, path, status, _, body in before}
        entry = by[("u2", "/v1/threads/t-1")][1]
        assert (entry["owner"], entry["members"], entry["archived"], entry["version"]) == (
            "u2",
            ["u2", "u3"],
            True,
            7,
        )
        assert [t["id"] for t in by[("u2", "/v1/threads")][1]["threads"]] == ["t-1"]
        assert by[("u2", "/v1/threads?archived=false")][1]["threads"] == []
        assert by[("u1", "/v1/threads")][1]["threads"] == []  # removed
        assert by[("u1", "/v1/threads/t-1")][0] == 403
        assert by[("a1", "/v1/threads/t-1")][0] == 200
        assert [m["content"] for m in by[("u2", "/v1/threads/t-1/messages")][1]["messages"]] == [
            {"text": "hi"}
        ]
        assert [m["author"] for m in by[("u9", "/v1/canvases/t-1/messages")][1]["messages"]] == ["u9"]
        assert "x-spine-warning" not in client.get("/v1/threads", headers=users["u1"]).headers  # routed

        rebuilt = client.post("/v1/projections/realtime/rebuild?wait=true", headers=admin)
        assert rebuilt.status_code == 202, rebuilt.text
        assert [(p["generation"], p["rebuild"]["state"]) for p in rebuilt.json()["projections"]] == [
            (1, "swapped")
        ]
        assert reads(client, users, 9) == before
    with TestClient(create_app(settings)) as client:  # another start: the view and log are in the backend
        assert reads(client, users, 9) == before
