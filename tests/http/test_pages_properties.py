"""Page content under random commands, through the HTTP API only.

Each example drives a fresh service with drafts, direct publishes, publishes (of the latest draft
or of a named version) and rollbacks, plain or compare-and-set by body or `If-Match`, current or
stale, across apps and surfaces whose ids would collide if joined naively. Every answer (a new
version, or the refusal a model predicts) is checked as it comes; then every read (each scope's
listing walked page by page, each page's published content, latest draft and history, or their
404s) must equal the model, and after a rebuild from position 0 every read answers as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
BLOCKS = (
    [],
    [{"id": "hero", "type": "hero", "data": {"heading": "Rockets"}}],
    [{"id": "a", "type": "text", "data": {"t": "ä"}}, {"id": "b:1", "type": "image", "data": {}}],
)
Expect = Literal["none", "current", "stale"]
Key = tuple[str, str, str]  # app, surface, page


@dataclass(frozen=True)
class Write:
    user: str
    scope: tuple[str, str]
    page: str
    publish: bool  # PUT …/content (published at once) rather than …/content/draft
    title: str | None
    blocks: int
    expect: Expect
    header: bool  # the expected version as If-Match rather than in the body


@dataclass(frozen=True)
class Publish:
    user: str
    scope: tuple[str, str]
    page: str
    version: int | None
    expect: Expect


@dataclass(frozen=True)
class Rollback:
    user: str
    scope: tuple[str, str]
    page: str
    to: int
    expect: Expect


users, scopes, pages = st.sampled_from(USERS), st.sampled_from(SCOPES), st.sampled_from(PAGES)
expects = st.sampled_from(("none", "current", "stale"))
titles = st.none() | st.text(
    st.characters(codec="utf-8", exclude_categories=("C", "Z")), min_size=1, max_size=20
)
versions = st.integers(min_value=1, max_value=6)
commands = st.one_of(
    st.builds(
        Write,
        users,
        scopes,
        pages,
        st.booleans(),
        titles,
        st.integers(0, len(BLOCKS) - 1),
        expects,
        st.booleans(),
    ),
    st.builds(Publish, users, scopes, pages, st.none() | versions, expects),
    st.builds(Rollback, users, scopes, pages, versions, expects),
)


@dataclass
class Model:
    """Each page's versions in order: (change, title, blocks, from_version, by)."""

    pages: dict[Key, list[tuple[str, str | None, list[Any], int | None, str]]] = field(default_factory=dict)

    def latest(self, key: Key, change: tuple[str, ...]) -> int | None:
        found = [n for n, v in enumerate(self.pages.get(key, []), 1) if v[0] in change]
        return found[-1] if found else None

    def refusal(self, command: Publish | Rollback) -> tuple[int, str] | None:
        """What the service must answer instead of a new version, decided before any precondition."""
        history = self.pages.get((*command.scope, command.page), [])
        if not history:
            return 404, "page_content.not_found"
        if isinstance(command, Publish):
            number = command.version or self.latest((*command.scope, command.page), ("draft",))
            if number is None:
                return 409, "page_content.no_draft"
            wrong: tuple[int, str] = (422, "page_content.not_a_draft")
            refused = ("published", "rolled_back")
        else:
            number, wrong, refused = command.to, (422, "page_content.not_a_published_version"), ("draft",)
        if number > len(history):
            return 404, "page_content.version_not_found"
        return wrong if history[number - 1][0] in refused else None

    def copied(self, command: Publish | Rollback) -> int:
        if isinstance(command, Rollback):
            return command.to
        number = command.version or self.latest((*command.scope, command.page), ("draft",))
        assert number is not None
        return number


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


def send(api: Api, command: Write | Publish | Rollback, wanted: int | None) -> Any:
    path = f"/v1/pages/{command.page}"
    headers = api.headers(command.user, command.scope)
    body: dict[str, Any] = {}
    if wanted is not None and isinstance(command, Write) and command.header:
        headers["If-Match"] = f'"{wanted}"'
    elif wanted is not None:
        body["expected_version"] = wanted
    if isinstance(command, Write):
        body |= {"blocks": BLOCKS[command.blocks]} | (
            {} if command.title is None else {"title": command.title}
        )
        return api.client.put(
            f"{path}/content" + ("" if command.publish else "/draft"), json=body, headers=headers
        )
    if isinstance(command, Publish):
        body |= {} if command.version is None else {"version": command.version}
        return api.client.post(f"{path}/publish", json=body, headers=headers)
    return api.client.post(f"{path}/rollback", json={"to": command.to, **body}, headers=headers)


def walk(api: Api, scope: tuple[str, str], path: str, items: str, **params: Any) -> list[Any]:
    listed, cursor = [], None
    while True:
        answer = api.get(scope, path, limit=2, **params, **({} if cursor is None else {"after": cursor}))
        assert answer.status_code == 200, answer.text
        listed.extend(answer.json()[items])
        cursor = answer.json()["next"]
        if cursor is None:
            return listed


def pages_view(api: Api) -> dict[str, Any]:
    """Everything the API shows, with each time checked and left out."""
    seen: dict[str, Any] = {}
    for scope in SCOPES:
        seen[f"{scope}"] = [_timeless(p, "updated_at") for p in walk(api, scope, "/v1/pages", "pages")]
        for page in PAGES:
            for name, path, time in (
                ("content", "content", "published_at"),
                ("draft", "content/draft", "saved_at"),
            ):
                answer = api.get(scope, f"/v1/pages/{page}/{path}")
                seen[f"{scope}/{page}/{name}"] = (
                    (answer.headers["etag"], _timeless(answer.json(), time))
                    if answer.status_code == 200
                    else (answer.status_code, answer.json()["error_code"])
                )
            answer = api.get(scope, f"/v1/pages/{page}/content/versions")
            seen[f"{scope}/{page}/versions"] = (
                [
                    _timeless(v, "at")
                    for v in walk(api, scope, f"/v1/pages/{page}/content/versions", "versions")
                ]
                if answer.status_code == 200
                else assert_problem(answer, 404, "page_content.not_found")["error_code"]
            )
    return seen


def _timeless(item: dict[str, Any], name: str) -> dict[str, Any]:
    assert str(item[name]).endswith("Z")
    return {k: v for k, v in item.items() if k != name}


def pages_model(model: Model) -> dict[str, Any]:
    expected: dict[str, Any] = {}
    for app, surface in SCOPES:
        listed = []
        for page in sorted(PAGES):
            key = (app, surface, page)
            history = model.pages.get(key)
            if history:
                change, title, _, _, by = history[-1]
                draft, published = (
                    model.latest(key, ("draft",)),
                    model.latest(key, ("published", "rolled_back")),
                )
                listed.append({"page": page, "version": len(history), "change": change, "title": title,
                               "draft_version": draft, "published_version": published, "updated_by": by})  # fmt: skip
        expected[f"{(app, surface)}"] = listed
        for page in PAGES:
            key = (app, surface, page)
            history = model.pages.get(key, [])
            draft, published = model.latest(key, ("draft",)), model.latest(key, ("published", "rolled_back"))
            scope = {"page": page, "app_id": app, "surface_id": surface, "page_version": len(history)}
            tag = f'"{len(history)}"'
            if published is None:
                expected[f"{(app, surface)}/{page}/content"] = (404, "page_content.not_published")
            else:
                change, title, blocks, source, by = history[published - 1]
                expected[f"{(app, surface)}/{page}/content"] = (tag, {**scope, "version": published, "change": change,
                    "from_version": source, "draft_version": draft, "title": title, "blocks": blocks,
                    "published_by": by})  # fmt: skip
            if draft is None:
                expected[f"{(app, surface)}/{page}/draft"] = (404, "page_content.not_found")
            else:
                _, title, blocks, _, by = history[draft - 1]
                expected[f"{(app, surface)}/{page}/draft"] = (tag, {**scope, "version": draft,
                    "published_version": published, "title": title, "blocks": blocks, "saved_by": by})  # fmt: skip
            expected[f"{(app, surface)}/{page}/versions"] = (
                [
                    {"version": n, "change": c, "title": t, "from_version": f, "by": b}
                    for n, (c, t, _, f, b) in enumerate(history, 1)
                ]
                if history
                else "page_content.not_found"
            )
    return expected


@PROPERTY
@given(commands=st.lists(commands, min_size=5, max_size=25))
def test_pages_are_versioned_per_page_of_each_app_and_surface_and_rebuild_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Write | Publish | Rollback]
) -> None:
    model = Model()
    with service(tmp_path_factory) as api:
        for command in commands:
            key = (*command.scope, command.page)
            history = model.pages.setdefault(key, [])
            current = len(history)
            wanted = {"none": None, "current": current, "stale": current + 1}[command.expect]
            answer = send(api, command, wanted)
            refused = None if isinstance(command, Write) else model.refusal(command)
            if refused is not None:
                assert_problem(answer, *refused)
                continue
            if wanted not in (None, current):
                problem = assert_problem(answer, 409, "page_content.version_conflict")
                assert problem["current_version"] == current
                continue
            written = api.wrote(answer)
            if isinstance(command, Write):
                change = "published" if command.publish else "draft"
                history.append((change, command.title, BLOCKS[command.blocks], None, command.user))
            else:
                source = model.copied(command)
                _, title, blocks, _, _ = history[source - 1]
                change = "published" if isinstance(command, Publish) else "rolled_back"
                history.append((change, title, blocks, source, command.user))
            assert (written["version"], written["change"], written["from_version"]) == (
                current + 1, change, history[-1][3])  # fmt: skip
        served = pages_view(api)
        assert served == pages_model(model)
        answer = api.client.post(
            "/v1/projections/pages/rebuild?wait=true", headers=admin_headers_sync(api.client)
        )
        assert answer.status_code == 202, answer.text
        assert [
            (p["project_id"], p["generation"], p["rebuild"]["state"]) for p in answer.json()["projections"]
        ] == [("p1", 1, "swapped")]
        assert pages_view(api) == served
