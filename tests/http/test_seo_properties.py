"""SEO config under random commands, through the HTTP API only.

Each example drives a fresh service with saves and deletes (plain, or compare-and-set by body or
`If-Match`, current or stale) across apps and surfaces whose ids would collide if joined naively,
then checks that every read (each scope's listing walked page by page, each page's config and
ETag, or its 404) equals a small model written here, and that after a rebuild from position 0
every read answers exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.test_events_api import assert_problem
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

PROPERTY = settings(max_examples=25, deadline=None)
# ("a", "b:c") and ("a:b", "c") are one scope if app and surface are joined with ':' unprefixed
SCOPES = (("a", "b:c"), ("a:b", "c"), ("a", "c"))
PAGES = ("home", "home2", "blog.post-1")  # home is a prefix of home2
USERS = ("u1", "u2")
Expect = Literal["none", "current", "stale"]


@dataclass(frozen=True)
class Save:
    user: str
    scope: tuple[str, str]
    page: str
    title: str
    description: str | None
    expect: Expect
    header: bool  # the expected version as If-Match rather than in the body


@dataclass(frozen=True)
class Remove:
    user: str
    scope: tuple[str, str]
    page: str
    expect: Expect


users, scopes, pages = st.sampled_from(USERS), st.sampled_from(SCOPES), st.sampled_from(PAGES)
expects = st.sampled_from(("none", "current", "stale"))
titles = st.text(st.characters(codec="utf-8", exclude_categories=("C", "Z")), min_size=1, max_size=70)
commands = st.one_of(
    st.builds(
        Save, users, scopes, pages, titles, st.none() | st.sampled_from(("d1", "d2")), expects, st.booleans()
    ),
    st.builds(Remove, users, scopes, pages, expects),
)


@dataclass
class Api:
    client: TestClient[Any]
    members: dict[str, dict[str, str]]
    last: int = 0

    def headers(self, user: str, scope: tuple[str, str], **extra: str) -> dict[str, str]:
        return {**self.members[user], "X-App-Id": scope[0], "X-Surface-Id": scope[1], **extra}

    def wrote(self, answer: Any) -> Any:
        assert answer.status_code == 200, answer.text
        self.last = max(self.last, int(answer.headers["x-spine-position"]))
        return answer.json()

    def get(self, scope: tuple[str, str], path: str, **params: Any) -> Any:
        wait = {"X-Spine-Min-Position": str(self.last)} if self.last else {}
        return self.client.get(path, params=params, headers=self.headers("u1", scope, **wait))


@contextmanager
def service(tmp: pytest.TempPathFactory) -> Iterator[Api]:
    config = Settings(data_dir=tmp.mktemp("spine"), bootstrap_key=BOOTSTRAP_KEY, sqlite_synchronous="NORMAL")
    with TestClient(create_app(config)) as client:
        members = {user: provision_sync(client, user=user) for user in USERS}
        admin = admin_headers_sync(client)
        for what, ident in {("app", a) for a, _ in SCOPES} | {("surface", s) for _, s in SCOPES}:
            body = {f"{what}_id": ident, "name": ident}
            assert client.post(f"/v1/tenants/t1/{what}s", json=body, headers=admin).status_code == 201
        yield Api(client, members)


def seo_view(api: Api) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for scope in SCOPES:
        listed, cursor = [], None
        while True:
            answer = api.get(scope, "/v1/seo", limit=2, **({} if cursor is None else {"after": cursor}))
            assert answer.status_code == 200, answer.text
            listed.extend(answer.json()["pages"])
            cursor = answer.json()["next"]
            if cursor is None:
                break
        seen[f"{scope}"] = listed
        for page in PAGES:
            answer = api.get(scope, f"/v1/seo/{page}")
            if answer.status_code == 404:
                seen[f"{scope}/{page}"] = assert_problem(answer, 404, "seo_config.not_found")["error_code"]
            else:
                assert answer.status_code == 200, answer.text
                seen[f"{scope}/{page}"] = (answer.headers["etag"], answer.json())
    return seen


def seo_model(configs: dict[tuple[str, str, str], dict[str, Any]]) -> dict[str, Any]:
    expected: dict[str, Any] = {}
    for app, surface in SCOPES:
        live = [configs[app, surface, page] for page in sorted(PAGES) if (app, surface, page) in configs]
        expected[f"{(app, surface)}"] = [
            {k: c[k] for k in ("page", "title", "version", "updated_by")} for c in live
        ]
        for page in PAGES:
            config = configs.get((app, surface, page))
            expected[f"{(app, surface)}/{page}"] = (
                "seo_config.not_found" if config is None else (f'"{config["version"]}"', config)
            )
    return expected


def without_times(seen: dict[str, Any]) -> dict[str, Any]:
    """The view with each `updated_at` (the spine's wall clock) checked and left out."""

    def strip(config: dict[str, Any]) -> dict[str, Any]:
        assert str(config.pop("updated_at")).endswith("Z")
        return config

    return {
        name: [strip(dict(c)) for c in value]
        if isinstance(value, list)
        else (value[0], strip(dict(value[1])))
        if isinstance(value, tuple)
        else value
        for name, value in seen.items()
    }


@PROPERTY
@given(commands=st.lists(commands, min_size=5, max_size=25))
def test_seo_configs_are_versioned_per_page_of_each_app_and_surface_and_rebuild_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Save | Remove]
) -> None:
    configs: dict[tuple[str, str, str], dict[str, Any]] = {}  # the live configs
    versions: dict[tuple[str, str, str], int] = {}  # each page's stream version: deletes count
    with service(tmp_path_factory) as api:
        for command in commands:
            key = (*command.scope, command.page)
            current = versions.get(key, 0)
            wanted = {"none": None, "current": current, "stale": current + 1}[command.expect]
            path = f"/v1/seo/{command.page}"
            if isinstance(command, Save):
                body: dict[str, Any] = {"title": command.title, "description": command.description}
                headers = api.headers(command.user, command.scope)
                if wanted is not None and command.header:
                    headers["If-Match"] = f'"{wanted}"'
                elif wanted is not None:
                    body["expected_version"] = wanted
                answer = api.client.put(path, json=body, headers=headers)
            else:
                extra = {} if wanted is None else {"If-Match": f'"{wanted}"'}
                answer = api.client.delete(path, headers=api.headers(command.user, command.scope, **extra))
                if key not in configs:
                    assert_problem(answer, 404, "seo_config.not_found")
                    continue
            if wanted not in (None, current):
                assert (
                    assert_problem(answer, 409, "seo_config.version_conflict")["current_version"] == current
                )
                continue
            written = api.wrote(answer)
            versions[key] = current + 1
            assert written["version"] == current + 1
            if isinstance(command, Remove):
                del configs[key]
                continue
            configs[key] = {
                "page": command.page, "app_id": command.scope[0], "surface_id": command.scope[1],
                "title": command.title, "description": command.description, "canonical_url": None,
                "robots": None, "open_graph": None, "structured_data": None, "version": current + 1,
                "position": written["position"], "updated_by": command.user,
            }  # fmt: skip
        served = seo_view(api)
        assert without_times(served) == seo_model(configs)
        answer = api.client.post(
            "/v1/projections/seo/rebuild?wait=true", headers=admin_headers_sync(api.client)
        )
        assert answer.status_code == 202, answer.text
        assert [
            (p["project_id"], p["generation"], p["rebuild"]["state"]) for p in answer.json()["projections"]
        ] == [("p1", 1, "swapped")]
        assert seo_view(api) == served
