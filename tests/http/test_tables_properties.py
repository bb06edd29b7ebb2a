"""The tabular store under random commands, through the HTTP API only.

Each example drives a fresh service with table definitions (a schema or none), row writes and
deletes (plain, or compare-and-set by body or `If-Match`, current or stale) over a few tables and
keys that start alike (so prefixes and cursors fall inside them), then checks that every read (each table's definition, its
rows walked page by page, each row with its ETag or its 404, each row's history) equals a small
model written here, and that after a rebuild from position 0 every read answers exactly as before.
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
TABLES = ("t", "t.1")  # few rows, many versions each: deletes, rewrites and stale writes meet
KEYS = ("a", "a/b", "ab")  # `a` starts the others: a prefix, and an `after` cursor inside them
SCHEMAS = {"none": None, "integers": {"type": "integer"}, "objects": {"type": "object", "required": ["n"]}}
USERS = ("u1", "u2")
Expect = Literal["none", "current", "stale"]


@dataclass(frozen=True)
class Define:
    user: str
    table: str
    schema: str
    expect: Expect


@dataclass(frozen=True)
class Write:
    user: str
    table: str
    key: str
    value: Any
    expect: Expect
    header: bool  # the expected version as If-Match rather than in the body


@dataclass(frozen=True)
class Remove:
    user: str
    table: str
    key: str
    expect: Expect


users, tables, keys = st.sampled_from(USERS), st.sampled_from(TABLES), st.sampled_from(KEYS)
expects = st.sampled_from(("none", "current", "stale"))
values = st.one_of(
    st.integers(-3, 3), st.text(max_size=4), st.none(), st.builds(lambda n: {"n": n}, st.integers(0, 2))
)
commands = st.one_of(
    st.builds(Define, users, tables, st.sampled_from(tuple(SCHEMAS)), expects),
    st.builds(Write, users, tables, keys, values, expects, st.booleans()),
    st.builds(Remove, users, tables, keys, expects),
)


@dataclass
class Model:
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)  # every version
    schema_versions: dict[str, int] = field(default_factory=dict)

    def schema(self, table: str) -> Any:
        definition = self.definitions.get(table)
        return None if definition is None else definition["schema"]


@dataclass
class Api:
    client: TestClient[Any]
    members: dict[str, dict[str, str]]
    last: int = 0

    def wrote(self, answer: Any) -> Any:
        assert answer.status_code == 200, answer.text
        self.last = max(self.last, int(answer.headers["x-spine-position"]))
        return answer.json()

    def get(self, path: str, **params: Any) -> Any:
        wait = {"X-Spine-Min-Position": str(self.last)} if self.last else {}
        return self.client.get(path, params=params, headers={**self.members["u1"], **wait})


@contextmanager
def service(tmp: pytest.TempPathFactory) -> Iterator[Api]:
    config = Settings(data_dir=tmp.mktemp("spine"), bootstrap_key=BOOTSTRAP_KEY, sqlite_synchronous="NORMAL")
    with TestClient(create_app(config)) as client:
        yield Api(client, {user: provision_sync(client, user=user) for user in USERS})


def satisfies(schema: Any, value: Any) -> bool:
    if schema == SCHEMAS["integers"]:
        return isinstance(value, int) and not isinstance(value, bool)
    if schema == SCHEMAS["objects"]:
        return isinstance(value, dict) and "n" in value
    return True


def precondition(wanted: int | None, header: bool, body: dict[str, Any]) -> dict[str, str]:
    if wanted is None:
        return {}
    if header:
        return {"If-Match": f'"{wanted}"'}
    body["expected_version"] = wanted
    return {}


def run(api: Api, model: Model, command: Define | Write | Remove) -> None:
    if isinstance(command, Define):
        current = model.schema_versions.get(command.table, 0)
        wanted = {"none": None, "current": current, "stale": current + 1}[command.expect]
        body: dict[str, Any] = {"schema": SCHEMAS[command.schema], "description": command.schema}
        extra = precondition(wanted, False, body)
        answer = api.client.put(
            f"/v1/tables/{command.table}", json=body, headers={**api.members[command.user], **extra}
        )
        if wanted not in (None, current):
            assert assert_problem(answer, 409, "tabular.version_conflict")["current_version"] == current
            return
        written = api.wrote(answer)
        model.schema_versions[command.table] = current + 1
        model.definitions[command.table] = {
            "table": command.table, "schema": SCHEMAS[command.schema], "description": command.schema,
            "version": current + 1, "position": written["position"], "updated_by": command.user,
        }  # fmt: skip
        return
    versions = model.rows.setdefault((command.table, command.key), [])
    current = len(versions)
    live = bool(versions) and not versions[-1]["deleted"]
    wanted = {"none": None, "current": current, "stale": current + 1}[command.expect]
    path = f"/v1/tables/{command.table}/rows/{command.key}"
    headers = api.members[command.user]
    if isinstance(command, Write):
        body = {"value": command.value}
        answer = api.client.put(
            path, json=body, headers={**headers, **precondition(wanted, command.header, body)}
        )
        if not satisfies(model.schema(command.table), command.value):
            assert_problem(answer, 422, "tabular.schema_violation")
            return
    else:
        answer = api.client.delete(path, headers={**headers, **precondition(wanted, True, {})})
        if not live:
            assert_problem(answer, 404, "tabular.not_found")
            return
    if wanted not in (None, current):
        assert assert_problem(answer, 409, "tabular.version_conflict")["current_version"] == current
        return
    written = api.wrote(answer)
    assert written["version"] == current + 1
    deleted = isinstance(command, Remove)
    versions.append({
        "table": command.table, "key": command.key, "version": current + 1,
        "change": "deleted" if deleted else "written", "deleted": deleted, "position": written["position"],
        "updated_by": command.user, "value": None if deleted else command.value,
    })  # fmt: skip


def pages(api: Api, path: str, field: str, **params: Any) -> list[Any]:
    found, cursor = [], None
    while True:
        answer = api.get(path, limit=2, **params, **({} if cursor is None else {"after": cursor}))
        assert answer.status_code == 200, answer.text
        found.extend(answer.json()[field])
        if (cursor := answer.json()["next"]) is None:
            return found


def tables_view(api: Api) -> dict[str, Any]:
    seen: dict[str, Any] = {"tables": pages(api, "/v1/tables", "tables")}
    for table in TABLES:
        answer = api.get(f"/v1/tables/{table}")
        seen[table] = (
            (answer.headers["etag"], answer.json())
            if answer.status_code == 200
            else assert_problem(answer, 404, "tabular.table_not_found")["error_code"]
        )
        seen[f"{table}/rows"] = pages(api, f"/v1/tables/{table}/rows", "rows")
        seen[f"{table}/rows?prefix=a"] = pages(api, f"/v1/tables/{table}/rows", "rows", prefix="a")
        for key in KEYS:
            row = api.get(f"/v1/tables/{table}/rows/{key}")
            if row.status_code == 404:
                problem = assert_problem(row, 404, "tabular.not_found")
                seen[f"{table}/{key}"] = (problem["deleted"], problem["version"])
                continue
            assert row.status_code == 200, row.text
            seen[f"{table}/{key}"] = (row.headers["etag"], row.json())
            seen[f"{table}/{key}/versions"] = pages(
                api, f"/v1/tables/{table}/rows/{key}/versions", "versions"
            )
    return seen


def tables_model(model: Model) -> dict[str, Any]:
    summary = ("table", "description", "version", "updated_by")
    expected: dict[str, Any] = {
        "tables": [{k: model.definitions[t][k] for k in summary} for t in sorted(model.definitions)]
    }
    for table in TABLES:
        definition = model.definitions.get(table)
        expected[table] = (
            "tabular.table_not_found" if definition is None else (f'"{definition["version"]}"', definition)
        )
        live = [versions[-1] for (t, _), versions in sorted(model.rows.items()) if t == table and versions and not versions[-1]["deleted"]]  # fmt: skip
        expected[f"{table}/rows"] = live
        expected[f"{table}/rows?prefix=a"] = [row for row in live if row["key"].startswith("a")]
        for key in KEYS:
            versions = model.rows.get((table, key), [])
            if not versions or versions[-1]["deleted"]:
                expected[f"{table}/{key}"] = (bool(versions), versions[-1]["version"] if versions else None)
            else:
                expected[f"{table}/{key}"] = (f'"{len(versions)}"', versions[-1])
                expected[f"{table}/{key}/versions"] = [{k: v for k, v in version.items() if k != "value"} for version in versions]  # fmt: skip
    return expected


def without_times(value: Any) -> Any:
    """The view with each `updated_at` (the spine's wall clock) checked and left out."""
    if isinstance(value, dict):
        if "updated_at" in value:
            assert str(value["updated_at"]).endswith("Z")
        return {k: without_times(v) for k, v in value.items() if k != "updated_at"}
    if isinstance(value, list | tuple):
        return type(value)(without_times(v) for v in value)
    return value


@PROPERTY
@given(commands=st.lists(commands, min_size=10, max_size=40))
def test_tables_are_versioned_per_row_held_to_their_schema_and_rebuild_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Define | Write | Remove]
) -> None:
    model = Model()
    with service(tmp_path_factory) as api:
        for command in commands:
            run(api, model, command)
        served = tables_view(api)
        assert without_times(served) == tables_model(model)
        answer = api.client.post(
            "/v1/projections/tables/rebuild?wait=true", headers=admin_headers_sync(api.client)
        )
        assert answer.status_code == 202, answer.text
        assert [
            (p["project_id"], p["generation"], p["rebuild"]["state"]) for p in answer.json()["projections"]
        ] == [("p1", 1, "swapped")]
        assert tables_view(api) == served
