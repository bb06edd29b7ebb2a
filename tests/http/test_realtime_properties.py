"""The realtime registry under random commands, through the HTTP API only.

Each example drives a fresh service with creations, registry changes (by the owner, a member, an
outsider or a tenant admin; plain or compare-and-set, current or stale) and messages, on threads
and canvases under ids one kind shares with the other. Every answer (the events a change
appends, or the refusal a model predicts) is checked as it comes; then every read (each user's
listings walked page by page, each entry, each thread's messages, or their refusals) must equal
the model, and after a rebuild from position 0 every read answers as before.
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
KINDS = {"thread": "/v1/threads", "canvas": "/v1/canvases"}
IDS = ("t", "t:2")
USERS = ("u1", "u2", "u3", "a1")  # a1 is a tenant admin
ADMIN = "a1"
Expect = Literal["none", "current", "stale"]
Key = tuple[str, str]  # kind, id


@dataclass(frozen=True)
class Create:
    user: str
    kind: str
    ident: str
    title: str | None
    members: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    user: str
    kind: str
    ident: str
    title: str | None
    owner: str | None
    add: tuple[str, ...]
    remove: tuple[str, ...]
    archived: bool
    expect: Expect
    header: bool  # the expected version as If-Match rather than in the body

    def body(self) -> dict[str, Any]:
        fields = {"title": self.title, "owner": self.owner, "add_members": list(self.add) or None,
                  "remove_members": list(self.remove) or None, "archived": self.archived or None}  # fmt: skip
        return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True)
class Post:
    user: str
    kind: str
    ident: str
    content: str


users, kinds, idents = st.sampled_from(USERS), st.sampled_from(tuple(KINDS)), st.sampled_from(IDS)
titles = st.none() | st.sampled_from(("Launch", "Liftoff", "ü"))
some_users = st.lists(users, max_size=3, unique=True).map(tuple)


@st.composite
def changes(draw: st.DrawFn) -> Change:
    """A change that asks for something, never adding and removing one member at once."""
    add = draw(some_users)
    remove = draw(st.lists(st.sampled_from([u for u in USERS if u not in add]), max_size=2, unique=True))
    change = Change(
        draw(users), draw(kinds), draw(idents), draw(titles), draw(st.none() | users), add, tuple(remove),
        draw(st.booleans()), draw(st.sampled_from(("none", "current", "stale"))), draw(st.booleans()),
    )  # fmt: skip
    return change if change.body() else Change(**{**change.__dict__, "archived": True})


commands = st.one_of(
    st.builds(Create, users, kinds, idents, titles, some_users),
    changes(),
    changes(),
    st.builds(Post, users, kinds, idents, st.sampled_from(("hi", "ok", "ä"))),
)


@dataclass
class Entry:
    title: str | None
    owner: str
    members: set[str]
    version: int  # the registry's
    stream: int  # the stream's
    created_by: str
    archived: bool = False
    change: str = "created"
    updated_by: str = ""
    messages: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass
class Model:
    entries: dict[Key, Entry] = field(default_factory=dict)

    def change(self, command: Change, wanted: int | None) -> tuple[int, str] | list[str]:
        """The refusal the service must answer, or the changes it appends (applied to the model)."""
        entry = self.entries.get((command.kind, command.ident))
        if entry is None:
            return 404, "realtime.not_found"
        only_owner = command.body().keys() == {"owner"}
        if command.user != entry.owner and not (command.user == ADMIN and only_owner):
            return 403, "realtime.not_owner"
        if wanted is not None and wanted != entry.version:
            return 409, "realtime.version_conflict"
        if entry.archived:
            return 409, "realtime.archived"
        owner = command.owner or entry.owner
        if owner in command.remove:
            return 409, "realtime.owner_not_removable"
        done: list[str] = []
        if command.title is not None and command.title != entry.title:
            entry.title = command.title
            done.append("retitled")
        adding = [u for u in dict.fromkeys([*command.add, owner]) if u not in entry.members]
        if adding:
            entry.members |= set(adding)
            done.append("members_added")
        if owner != entry.owner:
            entry.owner = owner
            done.append("owner_transferred")
        if any(u in entry.members for u in command.remove):
            entry.members -= set(command.remove)
            done.append("members_removed")
        if command.archived:
            entry.archived = True
            done.append("archived")
        if done:
            entry.version = entry.stream = entry.stream + len(done)
            entry.change, entry.updated_by = done[-1], command.user
        return [f"{command.kind}.{change}" for change in done]


@dataclass
class Api:
    client: TestClient[Any]
    members: dict[str, dict[str, str]]
    last: int = 0

    def headers(self, user: str, **extra: str) -> dict[str, str]:
        return {**self.members[user], **extra}

    def wrote(self, answer: Any, status: int) -> Any:
        assert answer.status_code == status, answer.text
        self.last = max(self.last, int(answer.headers["x-spine-position"]))
        return answer.json()

    def get(self, user: str, path: str, **params: Any) -> Any:
        wait = {"X-Spine-Min-Position": str(self.last)} if self.last else {}
        return self.client.get(path, params=params, headers=self.headers(user, **wait))


@contextmanager
def service(tmp: pytest.TempPathFactory) -> Iterator[Api]:
    config = Settings(data_dir=tmp.mktemp("spine"), bootstrap_key=BOOTSTRAP_KEY, sqlite_synchronous="NORMAL")
    with TestClient(create_app(config)) as client:
        members = {
            user: provision_sync(client, user=user, role="admin" if user == ADMIN else "member")
            for user in USERS
        }
        yield Api(client, members)


def send(api: Api, command: Create | Change | Post, wanted: int | None) -> Any:
    url = f"{KINDS[command.kind]}"
    if isinstance(command, Create):
        body: dict[str, Any] = {"id": command.ident, "members": list(command.members)}
        body |= {} if command.title is None else {"title": command.title}
        return api.client.post(url, json=body, headers=api.headers(command.user))
    if isinstance(command, Post):
        sent = {"content": command.content}
        return api.client.post(
            f"{url}/{command.ident}/messages", json=sent, headers=api.headers(command.user)
        )
    headers, body = api.headers(command.user), command.body()
    if wanted is not None and command.header:
        headers["If-Match"] = f'"{wanted}"'
    elif wanted is not None:
        body["expected_version"] = wanted
    return api.client.patch(f"{url}/{command.ident}", json=body, headers=headers)


def walk(api: Api, user: str, kind: str) -> list[Any]:
    listed, cursor, items = [], None, "threads" if kind == "thread" else "canvases"
    while True:
        answer = api.get(user, KINDS[kind], limit=1, **({} if cursor is None else {"after": cursor}))
        assert answer.status_code == 200, answer.text
        listed.extend(answer.json()[items])
        cursor = answer.json()["next"]
        if cursor is None:
            return listed


def _timeless(item: dict[str, Any]) -> dict[str, Any]:
    for name in ("created_at", "updated_at"):
        assert str(item[name]).endswith("Z")
    return {k: v for k, v in item.items() if k not in ("created_at", "updated_at", "archived_at", "position")}


def served(api: Api) -> dict[str, Any]:
    """Everything the API shows, with times (and positions, which a model need not count) left out."""
    seen: dict[str, Any] = {}
    for user in USERS:
        for kind in KINDS:
            seen[f"{user}/{kind}s"] = [(t["id"], t["version"], t["archived"]) for t in walk(api, user, kind)]
            for ident in IDS:
                answer = api.get(user, f"{KINDS[kind]}/{ident}")
                seen[f"{user}/{kind}/{ident}"] = (
                    (answer.headers["etag"], _timeless(answer.json()))
                    if answer.status_code == 200
                    else (answer.status_code, answer.json()["error_code"])
                )
                answer = api.get(user, f"{KINDS[kind]}/{ident}/messages")
                seen[f"{user}/{kind}/{ident}/messages"] = (
                    [(m["version"], m["author"], m["content"]) for m in answer.json()["messages"]]
                    if answer.status_code == 200
                    else (answer.status_code, answer.json()["error_code"])
                )
    return seen


def modelled(model: Model) -> dict[str, Any]:
    expected: dict[str, Any] = {}
    for user in USERS:
        for kind in KINDS:
            mine = {ident: e for (k, ident), e in model.entries.items() if k == kind and user in e.members}
            # live before archived, then by surface (one here) and id
            order = sorted(mine, key=lambda ident: (mine[ident].archived, ident))
            expected[f"{user}/{kind}s"] = [(i, mine[i].version, mine[i].archived) for i in order]
            for ident in IDS:
                entry = model.entries.get((kind, ident))
                if entry is None:
                    read = messages = (404, "realtime.not_found")
                else:
                    read = (
                        (f'"{entry.version}"', {
                            "kind": kind, "id": ident, "title": entry.title, "owner": entry.owner,
                            "members": sorted(entry.members), "surface_id": "web", "created_by": entry.created_by,
                            "archived": entry.archived, "version": entry.version, "change": f"{kind}.{entry.change}",
                            "updated_by": entry.updated_by,
                        })
                        if user in entry.members or user == ADMIN
                        else (403, "realtime.not_member")
                    )  # fmt: skip
                    messages = entry.messages if user in entry.members else (403, "realtime.not_member")
                expected[f"{user}/{kind}/{ident}"] = read
                expected[f"{user}/{kind}/{ident}/messages"] = messages
    return expected


@PROPERTY
@given(commands=st.lists(commands, min_size=5, max_size=25))
def test_the_registry_follows_its_rules_and_rebuilds_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Create | Change | Post]
) -> None:
    model = Model()
    with service(tmp_path_factory) as api:
        for command in commands:
            key = (command.kind, command.ident)
            entry = model.entries.get(key)
            if isinstance(command, Create):
                answer = send(api, command, None)
                if entry is not None:
                    assert_problem(answer, 409, "realtime.already_exists")
                    continue
                assert api.wrote(answer, 201)["changes"] == [f"{command.kind}.created"]
                members = {command.user, *command.members}
                model.entries[key] = Entry(command.title, command.user, members, 1, 1, command.user,
                                           updated_by=command.user)  # fmt: skip
            elif isinstance(command, Post):
                answer = send(api, command, None)
                if entry is None:
                    assert_problem(answer, 404, "realtime.not_found")
                elif command.user not in entry.members:
                    assert_problem(answer, 403, "realtime.not_member")
                elif entry.archived:
                    assert_problem(answer, 409, "realtime.archived")
                else:
                    entry.stream += 1
                    assert api.wrote(answer, 201)["version"] == entry.stream
                    entry.messages.append((entry.stream, command.user, command.content))
            else:
                current = entry.version if entry is not None else 0
                wanted = {"none": None, "current": current, "stale": current + 1}[command.expect]
                answer = send(api, command, wanted)
                predicted = model.change(command, wanted)
                if isinstance(predicted, tuple):
                    assert_problem(answer, *predicted)
                    continue
                written = api.wrote(answer, 200)
                after = model.entries[key]
                assert (written["changes"], written["version"]) == (predicted, after.version)
        seen = served(api)
        assert seen == modelled(model)
        answer = api.client.post(
            "/v1/projections/realtime/rebuild?wait=true", headers=admin_headers_sync(api.client)
        )
        assert answer.status_code == 202, answer.text
        assert [(p["generation"], p["rebuild"]["state"]) for p in answer.json()["projections"]] == [
            (1, "swapped")
        ]
        assert served(api) == seen
