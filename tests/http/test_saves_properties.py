"""Saves and strategy locks under random commands, through the HTTP API only.

Each example drives a fresh service, then checks that every read (lists and histories walked page
by page, each save, each version, each lock's latest) equals a small model of the rules written
here, and that after a rebuild from position 0 (`POST /v1/projections/{name}/rebuild?wait=true`)
every read answers exactly as before.
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
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

PROPERTY = settings(max_examples=25, deadline=None)
KINDS = ("flows", "graphs")
IDS = ("a", "a:1", "b", "@new")  # `@new`: the id the server made for the last create without one
USERS = ("u1", "u2")
Expect = Literal["none", "current", "stale"]
Via = Literal["body", "header"]


@dataclass
class Api:
    client: TestClient[Any]
    members: dict[str, dict[str, str]]
    last: int = 0  # the position of the last accepted write: what a read waits for

    def wrote(self, answer: Any) -> Any:
        if answer.status_code in (200, 201):
            self.last = max(self.last, int(answer.headers["x-spine-position"]))
        return answer

    def get(self, path: str, **params: Any) -> Any:
        wait = {"X-Spine-Min-Position": str(self.last)} if self.last else {}
        return self.client.get(path, params=params, headers={**self.members["u1"], **wait})


@contextmanager
def service(tmp: pytest.TempPathFactory) -> Iterator[Api]:
    config = Settings(data_dir=tmp.mktemp("spine"), bootstrap_key=BOOTSTRAP_KEY, sqlite_synchronous="NORMAL")
    with TestClient(create_app(config)) as client:
        members = {user: provision_sync(client, user=user) for user in USERS}
        yield Api(client, members)


def rebuild(api: Api, name: str) -> list[tuple[str, int, str]]:
    answer = api.client.post(
        f"/v1/projections/{name}/rebuild?wait=true", headers=admin_headers_sync(api.client)
    )
    assert answer.status_code == 202, answer.text
    return [(p["project_id"], p["generation"], p["rebuild"]["state"]) for p in answer.json()["projections"]]


def walk(api: Api, path: str, items: str) -> Any:
    """Every page of a list, two at a time: what a client following `next` reads."""
    found, after = [], None
    while True:
        answer = api.get(path, limit=2, **({} if after is None else {"after": after}))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found.extend(page[items])
        if page["next"] is None:
            return found
        after = page["next"]


def precondition(expect: Expect, current: int) -> int | None:
    if expect == "none":
        return None
    if expect == "current":
        return current
    return current - 1 if current else 1


def with_precondition(
    api: Api, user: str, via: Via, expected: int | None
) -> tuple[dict[str, str], dict[str, Any]]:
    headers = api.members[user]
    if expected is None:
        return headers, {}
    if via == "header":
        return {**headers, "If-Match": f'"{expected}"'}, {}
    return headers, {"expected_version": expected}


# Saves: per (kind, id) a list of versions; a tombstone ends it until the next update


@dataclass(frozen=True)
class Create:
    user: str
    kind: str
    save_id: str | None
    name: str
    body: Any


@dataclass(frozen=True)
class Update:
    user: str
    kind: str
    save_id: str
    name: str
    body: Any
    expect: Expect
    via: Via


@dataclass(frozen=True)
class Remove:
    user: str
    kind: str
    save_id: str
    expect: Expect
    via: Via


@dataclass(frozen=True)
class Look:
    """Compare every read with the model now, not only at the end."""


@dataclass
class SavesModel:
    histories: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    made: str = "none-made-yet"

    def resolve(self, save_id: str) -> str:
        return self.made if save_id == "@new" else save_id


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)
users, kinds, ids = st.sampled_from(USERS), st.sampled_from(KINDS), st.sampled_from(IDS)
names = st.text(min_size=1, max_size=8)
expects, vias = st.sampled_from(("none", "current", "stale")), st.sampled_from(("body", "header"))
save_commands = st.one_of(
    st.builds(Create, users, kinds, st.none() | st.sampled_from(IDS[:-1]), names, json_values),
    st.builds(Update, users, kinds, ids, names, json_values, expects, vias),
    st.builds(Remove, users, kinds, ids, expects, vias),
    st.just(Look()),
)


def run_save_command(api: Api, model: SavesModel, command: Any) -> None:
    match command:
        case Create(user, kind, save_id, name, body):
            sent = {"name": name, "body": body, **({} if save_id is None else {"id": save_id})}
            answer = api.wrote(api.client.post(f"/v1/saves/{kind}", json=sent, headers=api.members[user]))
            if save_id is not None and (kind, save_id) in model.histories:
                assert (answer.status_code, answer.json()["error_code"]) == (
                    409,
                    "save_store.version_conflict",
                )
                return
            assert answer.status_code == 201, answer.text
            made = answer.json()["id"]
            if save_id is None:
                model.made = made
            version = {"change": "created", "name": name, "body": body, "deleted": False, "by": user}
            model.histories[kind, made] = [{**version, "position": answer.json()["position"]}]
        case Update(user, kind, save_id, name, body, expect, via):
            save_id = model.resolve(save_id)
            history = model.histories.get((kind, save_id), [])
            expected = precondition(expect, len(history))
            headers, extra = with_precondition(api, user, via, expected)
            sent = {"name": name, "body": body, **extra}
            answer = api.wrote(api.client.put(f"/v1/saves/{kind}/{save_id}", json=sent, headers=headers))
            if not history:
                assert (answer.status_code, answer.json()["error_code"]) == (404, "save_store.not_found")
            elif expected is not None and expected != len(history):
                assert (answer.status_code, answer.json()["current_version"]) == (409, len(history))
            else:
                assert (answer.status_code, answer.json()["version"]) == (200, len(history) + 1)
                version = {"change": "updated", "name": name, "body": body, "deleted": False, "by": user}
                history.append({**version, "position": answer.json()["position"]})
        case Remove(user, kind, save_id, expect, via):
            save_id = model.resolve(save_id)
            history = model.histories.get((kind, save_id), [])
            expected = precondition(expect, len(history))
            headers, query = with_precondition(api, user, via, expected)
            answer = api.wrote(
                api.client.delete(f"/v1/saves/{kind}/{save_id}", params=query, headers=headers)
            )
            if not history:
                assert (answer.status_code, answer.json()["deleted"]) == (404, False)
            elif expected is not None and expected != len(history):
                assert (answer.status_code, answer.json()["current_version"]) == (409, len(history))
            elif history[-1]["deleted"]:
                assert (answer.status_code, answer.json()["version"]) == (404, len(history))
            else:
                assert (answer.status_code, answer.json()["version"]) == (200, len(history) + 1)
                version = {"change": "deleted", "name": history[-1]["name"], "body": None, "deleted": True}
                history.append({**version, "by": user, "position": answer.json()["position"]})


def saves_view(api: Api, model: SavesModel) -> dict[str, Any]:
    """Every read a client can make of the saves the model knows, answered as served."""
    view: dict[str, Any] = {kind: walk(api, f"/v1/saves/{kind}", "saves") for kind in KINDS}
    for kind, save_id in sorted(model.histories):
        path = f"/v1/saves/{kind}/{save_id}"
        latest = api.get(path)
        view[f"{kind}/{save_id}"] = (latest.status_code, latest.json())
        view[f"{kind}/{save_id}/versions"] = walk(api, f"{path}/versions", "versions")
        for n in range(1, len(model.histories[kind, save_id]) + 2):  # one past the last: 404
            one = api.get(f"{path}/versions/{n}")
            view[f"{kind}/{save_id}/versions/{n}"] = (one.status_code, one.json())
    return view


def without_times(view: Any) -> Any:
    """The served view without `updated_at` (the time Spine recorded: no model can know it)."""
    if isinstance(view, dict):
        return {k: without_times(v) for k, v in view.items() if k != "updated_at"}
    if isinstance(view, list | tuple):
        return type(view)(without_times(v) for v in view)
    return view


def saves_model(model: SavesModel) -> dict[str, Any]:
    def summary(kind: str, save_id: str, n: int, v: dict[str, Any]) -> dict[str, Any]:
        return {"kind": kind, "id": save_id, "name": v["name"], "version": n, "updated_by": v["by"],
                "position": v["position"]}  # fmt: skip

    def versioned(kind: str, save_id: str, n: int, v: dict[str, Any]) -> dict[str, Any]:
        return {**summary(kind, save_id, n, v), "change": v["change"], "deleted": v["deleted"]}

    expected: dict[str, Any] = {
        kind: [summary(k, i, len(h), h[-1]) for (k, i), h in sorted(model.histories.items())
               if k == kind and not h[-1]["deleted"]]
        for kind in KINDS
    }  # fmt: skip
    for (kind, save_id), history in sorted(model.histories.items()):
        key, last = f"{kind}/{save_id}", history[-1]
        if last["deleted"]:
            problem = {"error_code": "save_store.not_found", "kind": kind, "id": save_id, "deleted": True,
                       "version": len(history)}  # fmt: skip
            expected[key] = (404, problem)
        else:
            expected[key] = (200, {**summary(kind, save_id, len(history), last), "body": last["body"]})
        expected[f"{key}/versions"] = [versioned(kind, save_id, n, v) for n, v in enumerate(history, 1)]
        for n, v in enumerate(history, 1):
            expected[f"{key}/versions/{n}"] = (200, {**versioned(kind, save_id, n, v), "body": v["body"]})
        missing = {"error_code": "save_store.version_not_found", "kind": kind, "id": save_id,
                   "version": len(history) + 1, "latest_version": len(history)}  # fmt: skip
        expected[f"{key}/versions/{len(history) + 1}"] = (404, missing)
    return expected


def problems_trimmed(view: dict[str, Any]) -> dict[str, Any]:
    """Problem answers reduced to their code and typed fields (the texts are for people)."""
    trimmed = {}
    for key, value in view.items():
        if isinstance(value, tuple) and value[0] >= 400:
            body = {
                k: v for k, v in value[1].items() if k not in ("type", "title", "status", "detail", "message")
            }
            trimmed[key] = (value[0], body)
        else:
            trimmed[key] = value
    return trimmed


@PROPERTY
@given(commands=st.lists(save_commands, min_size=3, max_size=25))
def test_saves_keep_every_version_as_the_model_does_and_rebuild_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Any]
) -> None:
    model = SavesModel()
    with service(tmp_path_factory) as api:
        for command in commands:
            if isinstance(command, Look):
                assert problems_trimmed(without_times(saves_view(api, model))) == saves_model(model)
            else:
                run_save_command(api, model, command)
        served = saves_view(api, model)
        assert problems_trimmed(without_times(served)) == saves_model(model)
        assert rebuild(api, "saves") == [("p1", 1, "swapped")]
        assert saves_view(api, model) == served


# Strategy locks: per lock, the list of states snapshotted


LOCKS = ("l1", "l1:x", "l2")


@dataclass(frozen=True)
class Take:
    user: str
    lock: str
    state: Any
    expect: Expect
    via: Via


lock_commands = st.builds(Take, users, st.sampled_from(LOCKS), json_values, expects, vias)


def locks_view(api: Api) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for lock in LOCKS:
        path = f"/v1/strategy-locks/{lock}/snapshots"
        latest = api.get(f"{path}/latest")
        history = api.get(path)
        view[lock] = (latest.status_code, latest.json())
        view[f"{lock}/history"] = (
            walk(api, path, "snapshots") if history.status_code == 200 else history.json()
        )
    return view


def locks_model(snapshots: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    expected: dict[str, Any] = {}
    for lock in LOCKS:
        taken = [{"id": lock, "version": n, **s} for n, s in enumerate(snapshots.get(lock, []), 1)]
        if taken:
            expected[lock] = (200, taken[-1])
            expected[f"{lock}/history"] = taken
        else:
            expected[lock] = (404, {"error_code": "strategy_lock.not_found", "id": lock})
            expected[f"{lock}/history"] = {"error_code": "strategy_lock.not_found", "id": lock}
    return expected


def locks_trimmed(view: dict[str, Any]) -> dict[str, Any]:
    def trim(value: Any) -> Any:
        if isinstance(value, dict) and "error_code" in value:
            return {k: value[k] for k in ("error_code", "id")}
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != "taken_at"}
        if isinstance(value, list | tuple):
            return type(value)(trim(v) for v in value)
        return value

    return {key: trim(value) for key, value in view.items()}


@PROPERTY
@given(commands=st.lists(lock_commands, min_size=1, max_size=20))
def test_strategy_locks_keep_every_snapshot_as_the_model_does_and_rebuild_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Take]
) -> None:
    snapshots: dict[str, list[dict[str, Any]]] = {}
    with service(tmp_path_factory) as api:
        for take in commands:
            taken = snapshots.setdefault(take.lock, [])
            expected = precondition(take.expect, len(taken))
            headers, extra = with_precondition(api, take.user, take.via, expected)
            path = f"/v1/strategy-locks/{take.lock}/snapshots"
            answer = api.wrote(api.client.post(path, json={"state": take.state, **extra}, headers=headers))
            if expected is not None and expected != len(taken):
                assert (answer.status_code, answer.json()["current_version"]) == (409, len(taken))
                continue
            assert (answer.status_code, answer.json()["version"]) == (201, len(taken) + 1), answer.text
            taken.append({"state": take.state, "taken_by": take.user, "position": answer.json()["position"]})
        served = locks_view(api)
        assert locks_trimmed(served) == locks_model(snapshots)
        assert rebuild(api, "strategy_locks") == [("p1", 1, "swapped")]
        assert locks_view(api) == served
