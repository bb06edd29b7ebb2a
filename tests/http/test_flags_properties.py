"""Feature flags under random commands, through the HTTP API only.

Each example drives a fresh service with writes and deletes (plain, or compare-and-set by body or
`If-Match`, current or stale) by two users, then checks that every read (the live list walked
page by page, each flag and its ETag or its 404, each history, every evaluation for the caller)
equals a small model written here, and that after a rebuild from position 0 every read answers
exactly as before.
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
KEYS = ("a", "a.b", "b")  # a is a prefix of a.b
USERS = ("u1", "u2")
Expect = Literal["none", "current", "stale"]


@dataclass(frozen=True)
class Put:
    user: str
    key: str
    default: int
    enabled: bool
    rules: tuple[tuple[tuple[str, ...] | None, float | None, int], ...]  # (users, rollout, value)
    reason: str
    expect: Expect
    header: bool  # the expected version as If-Match rather than in the body


@dataclass(frozen=True)
class Remove:
    user: str
    key: str
    reason: str
    expect: Expect


users, keys = st.sampled_from(USERS), st.sampled_from(KEYS)
expects = st.sampled_from(("none", "current", "stale"))
reasons = st.text(st.characters(codec="utf-8", exclude_categories=("C", "Z")), min_size=1, max_size=20)
rules = st.tuples(
    st.none() | st.lists(users, min_size=1, max_size=2, unique=True).map(tuple),
    st.sampled_from((None, 0, 100)),  # partial rollouts are the unit tests'; these the model knows
    st.integers(-5, 5),
)
commands = st.one_of(
    st.builds(
        Put,
        users,
        keys,
        st.integers(-5, 5),
        st.booleans(),
        st.lists(rules, max_size=3).map(tuple),
        reasons,
        expects,
        st.booleans(),
    ),
    st.builds(Remove, users, keys, reasons, expects),
)


@dataclass
class Api:
    client: TestClient[Any]
    members: dict[str, dict[str, str]]
    last: int = 0

    def wrote(self, answer: Any) -> Any:
        assert answer.status_code == 200, answer.text
        self.last = max(self.last, int(answer.headers["x-spine-position"]))
        return answer.json()

    def get(self, path: str, user: str = "u1", **params: Any) -> Any:
        wait = {"X-Spine-Min-Position": str(self.last)} if self.last else {}
        return self.client.get(path, params=params, headers={**self.members[user], **wait})


@contextmanager
def service(tmp: pytest.TempPathFactory) -> Iterator[Api]:
    config = Settings(data_dir=tmp.mktemp("spine"), bootstrap_key=BOOTSTRAP_KEY, sqlite_synchronous="NORMAL")
    with TestClient(create_app(config)) as client:
        yield Api(client, {user: provision_sync(client, user=user) for user in USERS})


def flags_view(api: Api) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    listed, cursor = [], None
    while True:
        answer = api.get("/v1/flags", limit=2, **({} if cursor is None else {"after": cursor}))
        assert answer.status_code == 200, answer.text
        listed.extend(answer.json()["flags"])
        cursor = answer.json()["next"]
        if cursor is None:
            break
    seen["list"] = listed
    for key in KEYS:
        answer = api.get(f"/v1/flags/{key}")
        if answer.status_code == 404:
            seen[key] = assert_problem(answer, 404, "feature_flags.not_found")["version"]
        else:
            assert answer.status_code == 200, answer.text
            seen[key] = (answer.headers["etag"], answer.json())
        history = api.get(f"/v1/flags/{key}/history")
        seen[f"{key}/history"] = (
            history.json()["versions"] if history.status_code == 200 else history.status_code
        )
    for user in USERS:
        seen[f"evaluate/{user}"] = api.get("/v1/flags/evaluate", user=user, keys=",".join(KEYS)).json()[
            "flags"
        ]
    return seen


def evaluated(flag: dict[str, Any], user: str) -> dict[str, Any]:
    """The model's evaluation: rules with user lists and rollouts of 0 or 100 only."""
    if not flag["enabled"]:
        return {"value": flag["default"], "reason": "off", "version": flag["version"]}
    for index, rule in enumerate(flag["rules"]):
        if user in rule.get("users", [user]) and rule.get("rollout", 100) == 100:
            return {"value": rule["value"], "reason": "rule", "rule": index, "version": flag["version"]}
    return {"value": flag["default"], "reason": "default", "version": flag["version"]}


def flags_model(flags: dict[str, dict[str, Any]], history: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    expected: dict[str, Any] = {"list": [flags[key] for key in sorted(flags)]}
    for key in KEYS:
        flag = flags.get(key)
        if flag is not None:
            expected[key] = (f'"{flag["version"]}"', flag)
        else:
            expected[key] = history[key][-1]["version"] if key in history else None
        expected[f"{key}/history"] = history.get(key, 404)
    for user in USERS:
        expected[f"evaluate/{user}"] = {
            key: evaluated(flags[key], user) if key in flags else {"value": None, "reason": "not_found"}
            for key in KEYS
        }
    return expected


def without_times(seen: dict[str, Any]) -> dict[str, Any]:
    """The view with each `changed_at` (the spine's wall clock) checked and left out."""

    def strip(doc: dict[str, Any]) -> dict[str, Any]:
        assert str(doc.pop("changed_at")).endswith("Z")
        return doc

    def each(value: Any) -> Any:
        if isinstance(value, list):
            return [strip(dict(doc)) for doc in value]
        if isinstance(value, tuple):
            return (value[0], strip(dict(value[1])))
        return value

    return {name: value if name.startswith("evaluate/") else each(value) for name, value in seen.items()}


def definition(command: Put) -> dict[str, Any]:
    written = []
    for listed, rollout, value in command.rules:
        rule: dict[str, Any] = {"value": value}
        if listed is not None:
            rule["users"] = list(listed)
        if rollout is not None:
            rule["rollout"] = rollout
        written.append(rule)
    return {"type": "number", "default": command.default, "enabled": command.enabled, "rules": written,
            "description": None}  # fmt: skip


@PROPERTY
@given(commands=st.lists(commands, min_size=5, max_size=25))
def test_flags_are_versioned_audited_evaluated_and_rebuild_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Put | Remove]
) -> None:
    flags: dict[str, dict[str, Any]] = {}  # the live flags, as GET answers them
    history: dict[str, list[dict[str, Any]]] = {}
    with service(tmp_path_factory) as api:
        for command in commands:
            current = len(history.get(command.key, []))
            wanted = {"none": None, "current": current, "stale": current + 1}[command.expect]
            path = f"/v1/flags/{command.key}"
            headers = dict(api.members[command.user])
            if isinstance(command, Put):
                body: dict[str, Any] = {**definition(command), "reason": command.reason}
                if wanted is not None and command.header:
                    headers["If-Match"] = f'"{wanted}"'
                elif wanted is not None:
                    body["expected_version"] = wanted
                answer = api.client.put(path, json=body, headers=headers)
            else:
                if wanted is not None:
                    headers["If-Match"] = f'"{wanted}"'
                answer = api.client.delete(path, params={"reason": command.reason}, headers=headers)
                if command.key not in flags:
                    assert_problem(answer, 404, "feature_flags.not_found")
                    continue
            if wanted not in (None, current):
                problem = assert_problem(answer, 409, "feature_flags.version_conflict")
                assert problem["current_version"] == current
                continue
            written = api.wrote(answer)
            assert written["version"] == current + 1
            audit = {"key": command.key, "version": current + 1, "position": written["position"],
                     "changed_by": command.user, "reason": command.reason}  # fmt: skip
            if isinstance(command, Remove):
                del flags[command.key]
                history.setdefault(command.key, []).append({**audit, "change": "deleted", "flag": None})
                continue
            flags[command.key] = {**audit, **definition(command)}
            history.setdefault(command.key, []).append(
                {**audit, "change": "changed", "flag": definition(command)}
            )
        served = flags_view(api)
        assert without_times(served) == flags_model(flags, history)
        answer = api.client.post(
            "/v1/projections/flags/rebuild?wait=true", headers=admin_headers_sync(api.client)
        )
        assert answer.status_code == 202, answer.text
        assert [
            (p["project_id"], p["generation"], p["rebuild"]["state"]) for p in answer.json()["projections"]
        ] == [("p1", 1, "swapped")]
        assert flags_view(api) == served
