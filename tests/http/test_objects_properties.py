"""Objects under random commands, through the HTTP API only.

Each example drives a fresh lab service with stores (plain, `If-Match` current or stale,
`If-None-Match: *`) and deletes (plain or conditional) by two users in two projects, over keys
that are prefixes of one another and keys whose stream spelling escapes characters. Every answer
(a new version, or the refusal a model predicts) is checked as it comes; then every read (each
project's listing walked page by page with its usage, each key's bytes and ETag or its 404)
must equal the model, and after a rebuild of the index from position 0 every read answers as
before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.test_events_api import assert_problem
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

PROPERTY = settings(max_examples=25, deadline=None)
PROJECTS = ("p1", "p2")
KEYS = ("a", "a/b", "ab", "a b/é", "a~b", "a=7E")  # prefixes; `~` and `=` are the spelling's own
USERS = ("u1", "u2")
CONTENTS = (b"", b"x", b"hello world", bytes(range(256)) * 3)
Expect = Literal["none", "current", "stale", "create"]


@dataclass(frozen=True)
class Store:
    user: str
    project: str
    key: str
    content: int
    expect: Expect


@dataclass(frozen=True)
class Remove:
    user: str
    project: str
    key: str
    expect: Expect


users, projects, keys = st.sampled_from(USERS), st.sampled_from(PROJECTS), st.sampled_from(KEYS)
expects = st.sampled_from(("none", "current", "stale", "create"))
commands = st.one_of(
    st.builds(Store, users, projects, keys, st.integers(0, len(CONTENTS) - 1), expects),
    st.builds(Remove, users, projects, keys, st.sampled_from(("none", "current", "stale"))),
)


@dataclass
class Model:
    """Per (project, key): its stream's version, and what it holds (None: nothing, or deleted)."""

    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    held: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)  # content, stored by

    def refusal(self, command: Store | Remove) -> tuple[int, str] | None:
        where = (command.project, command.key)
        live, version = where in self.held, self.versions.get(where, 0)
        if isinstance(command, Remove) and not live:
            return 404, "object.not_found"  # before any precondition (RFC 9110 §13.2.1)
        if command.expect == "create" and live:
            return 412, "precondition.failed"
        if command.expect == "current" and version == 0:  # If-Match: * on a key never written
            return 412, "precondition.failed"
        if command.expect == "stale":
            return 409, "object.version_conflict"
        return None  # If-Match naming a deletion's version matches it, as a table row's does


@dataclass
class Api:
    client: TestClient[Any]
    members: dict[str, dict[str, str]]
    last: dict[str, int] = field(default_factory=dict)  # each project's (partition's) last position

    def headers(self, user: str, project: str, **extra: str) -> dict[str, str]:
        return {**self.members[user], "X-Project-Id": project, **extra}


@contextmanager
def service(tmp: pytest.TempPathFactory) -> Iterator[Api]:
    config = Settings(data_dir=tmp.mktemp("spine"), bootstrap_key=BOOTSTRAP_KEY, sqlite_synchronous="NORMAL")
    with TestClient(create_app(config)) as client:
        members = {user: provision_sync(client, user=user) for user in USERS}
        admin = admin_headers_sync(client)
        assert (
            client.post(
                "/v1/tenants/t1/projects", json={"project_id": "p2", "name": "p2"}, headers=admin
            ).status_code
            == 201
        )
        yield Api(client, members)


def send(api: Api, command: Store | Remove, version: int) -> Any:
    conditions = {
        "none": {},
        "current": {"If-Match": f'"{version}"' if version else "*"},
        "stale": {"If-Match": f'"{version + 1}"'},
        "create": {"If-None-Match": "*"},
    }[command.expect]
    headers = api.headers(command.user, command.project, **conditions)
    path = f"/v1/objects/{quote(command.key)}"
    if isinstance(command, Store):
        return api.client.put(path, content=CONTENTS[command.content], headers=headers)
    return api.client.delete(path, headers=headers)


def objects_view(api: Api) -> dict[str, Any]:
    """Everything the API shows of the objects, times and blob names left out."""
    seen: dict[str, Any] = {}
    for project in PROJECTS:
        wait = {"X-Spine-Min-Position": str(api.last[project])} if project in api.last else {}
        listed, cursor, usage = [], None, None
        while True:
            params = {"limit": 2, **({} if cursor is None else {"after": cursor})}
            answer = api.client.get("/v1/objects", params=params, headers=api.headers("u1", project, **wait))
            assert answer.status_code == 200, answer.text
            listed += [
                {k: v for k, v in o.items() if k not in ("stored_at", "position")}
                for o in answer.json()["objects"]
            ]
            cursor, usage = answer.json()["next"], answer.json()["usage"]
            if cursor is None:
                break
        seen[project] = (listed, usage)
        for key in KEYS:
            answer = api.client.get(f"/v1/objects/{quote(key)}", headers=api.headers("u2", project, **wait))
            seen[f"{project}/{key}"] = (
                (answer.headers["etag"], answer.content)
                if answer.status_code == 200
                else (answer.status_code, answer.json()["error_code"])
            )
    return seen


def objects_model(model: Model) -> dict[str, Any]:
    expected: dict[str, Any] = {}
    for project in PROJECTS:
        held = sorted((key, model.held[(p, key)]) for p, key in model.held if p == project)
        listed = [
            {"key": key, "size": len(content), "content_type": "application/octet-stream",
             "sha256": hashlib.sha256(content).hexdigest(), "version": model.versions[(project, key)],
             "stored_by": by, "via": "direct"}
            for key, (content, by) in held
        ]  # fmt: skip
        usage = {"bytes": sum(len(content) for _, (content, _) in held), "objects": len(held)}
        expected[project] = (listed, usage)
        for key in KEYS:
            found = model.held.get((project, key))
            expected[f"{project}/{key}"] = (
                (404, "object.not_found")
                if found is None
                else (f'"{model.versions[(project, key)]}"', found[0])
            )
    return expected


@PROPERTY
@given(commands=st.lists(commands, min_size=5, max_size=25))
def test_objects_are_versioned_per_key_of_each_project_and_the_index_rebuilds_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Store | Remove]
) -> None:
    model = Model()
    with service(tmp_path_factory) as api:
        for command in commands:
            where = (command.project, command.key)
            version = model.versions.get(where, 0)
            answer = send(api, command, version)
            refused = model.refusal(command)
            if refused is not None:
                problem = assert_problem(answer, *refused)
                if refused[1] == "object.version_conflict":
                    assert problem["current_version"] == version
                continue
            assert answer.status_code in (200, 201), answer.text
            api.last[command.project] = int(answer.headers["x-spine-position"])
            body = answer.json()
            assert body["version"] == version + 1
            model.versions[where] = version + 1
            if isinstance(command, Store):
                assert answer.status_code == (200 if where in model.held else 201)
                model.held[where] = (CONTENTS[command.content], command.user)
                assert body["sha256"] == hashlib.sha256(CONTENTS[command.content]).hexdigest()
            else:
                del model.held[where]
        served = objects_view(api)
        assert served == objects_model(model)
        answer = api.client.post(
            "/v1/projections/objects/rebuild?wait=true", headers=admin_headers_sync(api.client)
        )
        assert answer.status_code == 202, answer.text
        rebuilt = {
            (p["project_id"], p["generation"], p["rebuild"]["state"]) for p in answer.json()["projections"]
        }
        assert rebuilt <= {(project, 1, "swapped") for project in PROJECTS}
        assert objects_view(api) == served
