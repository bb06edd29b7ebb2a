"""`/v1/tables`: the generic tabular store: definitions with a JSON Schema, rows by key, every
change a new version, history kept, scoped to the project."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

URL = "/v1/tables"
ROWS = "/v1/tables/config/rows"
PRICED = {
    "type": "object",
    "properties": {"price": {"type": "number", "minimum": 0}, "name": {"type": "string"}},
    "required": ["price"],
}


def put_row(client: TestClient, headers: dict[str, str], key: str, value: Any, **extra: Any) -> Any:
    return client.put(f"{ROWS}/{key}", json={"value": value, **extra}, headers=headers)


def define(client: TestClient, headers: dict[str, str], table: str = "config", **body: Any) -> Any:
    return client.put(f"{URL}/{table}", json=body, headers=headers)


def waited(headers: dict[str, str], answer: Any) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def head(client: TestClient, headers: dict[str, str]) -> int:
    answer: int = ok(client.get("/v1/events", headers=headers))["head"]
    return answer


def every_row(client: TestClient, headers: dict[str, str], table: str = "config", **params: Any) -> list[Any]:
    rows, cursor = [], None
    while True:
        page = ok(client.get(f"{URL}/{table}/rows", params={**params, **({"after": cursor} if cursor else {})},
                             headers=headers))  # fmt: skip
        rows.extend(page["rows"])
        if (cursor := page["next"]) is None:
            return rows


# Definitions


def test_a_definition_reads_back_with_its_version_as_etag(
    client: TestClient, headers: dict[str, str]
) -> None:
    written = define(client, headers, schema=PRICED, description="prices by product")
    assert ok(written) == {"table": "config", "version": 1, "position": 1}
    assert (written.headers["etag"], written.headers["x-spine-position"]) == ('"1"', "1")
    # lab without routes: the embedded stores, said loudly (tables answer with the save store's code)
    assert written.headers["x-spine-warning"] == "event_spine.missing_route, save_store.missing_route"
    read = client.get(f"{URL}/config", headers=waited(headers, written))
    assert (read.headers["etag"], read.headers["x-spine-warning"]) == ('"1"', "save_store.missing_route")
    found = ok(read)
    assert {k: found[k] for k in ("table", "schema", "description", "version", "position", "updated_by")} == {
        "table": "config", "schema": PRICED, "description": "prices by product", "version": 1, "position": 1,
        "updated_by": "u1",
    }  # fmt: skip
    assert found["updated_at"].endswith("Z")
    assert_problem(client.get(f"{URL}/nothing", headers=headers), 404, "tabular.table_not_found")


def test_every_definition_replaces_the_last_and_if_match_makes_it_a_compare_and_set(
    client: TestClient, headers: dict[str, str]
) -> None:
    problem = assert_problem(
        client.put(f"{URL}/config", json={}, headers={**headers, "If-Match": "*"}), 412, "precondition.failed"
    )
    assert problem["status"] == 412
    ok(define(client, headers, schema=PRICED))
    second = define(client, headers, description="no schema now", expected_version=1)
    assert (ok(second)["version"], second.headers["etag"]) == (2, '"2"')
    stale = client.put(f"{URL}/config", json={"schema": True}, headers={**headers, "If-Match": '"1"'})
    conflict = assert_problem(stale, 409, "tabular.version_conflict")
    assert (conflict["stream"], conflict["expected_version"], conflict["current_version"]) == (
        "table:6:config", 1, 2)  # fmt: skip
    assert_problem(define(client, headers, expected_version="no_stream"), 409, "tabular.version_conflict")
    found = ok(client.get(f"{URL}/config", headers=waited(headers, second)))
    assert (found["schema"], found["description"], found["version"]) == (None, "no schema now", 2)
    assert head(client, headers) == 2


def test_the_tables_list_pages_through_defined_tables_by_name(
    client: TestClient, headers: dict[str, str]
) -> None:
    for table in ("b", "a.v2", "c", "a"):
        last = define(client, headers, table, description=f"table {table}")
    put_row(client, headers, "only-rows", 1)  # `config` holds rows but has no definition: not listed
    wait = waited(headers, last)
    first = ok(client.get(URL, params={"limit": 2}, headers=wait))
    assert ([t["table"] for t in first["tables"]], first["next"]) == (["a", "a.v2"], "a.v2")
    rest = ok(client.get(URL, params={"after": first["next"]}, headers=wait))
    assert ([t["table"] for t in rest["tables"]], rest["next"]) == (["b", "c"], None)
    assert rest["tables"][0]["description"] == "table b"
    assert_problem(client.get(URL, params={"after": "bad name"}, headers=wait), 400, "cursor.invalid")


@pytest.mark.parametrize(
    ("schema", "field", "says"),
    [
        ({"type": "nope"}, "/schema/type", "is not valid"),
        ({"properties": {"a": {"minimum": "zero"}}}, "/schema/properties/a/minimum", "is not of type"),
        ({"pattern": "("}, "/schema/pattern", "regex"),
        ({"$schema": "https://example.com/my-dialect"}, "/schema/$schema", "unknown dialect"),
        ({"$ref": "https://example.com/remote.json"}, "/schema/$ref", "never fetched"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "/schema/properties/a/$ref", "does not resolve"),
        ({"$ref": "#"}, "/schema", "loop"),
        # Draft 4 only: in Draft 2020-12 (the default) exclusiveMinimum is a number
        ({"minimum": 0, "exclusiveMinimum": True}, "/schema/exclusiveMinimum", "is not of type"),
        ({"enum": ["x" * 100] * 400}, "/schema", "more than 32768"),
    ],
)
def test_a_schema_that_is_no_valid_json_schema_is_422_naming_where_and_appends_nothing(
    client: TestClient, headers: dict[str, str], schema: Any, field: str, says: str
) -> None:
    problem = assert_problem(define(client, headers, schema=schema), 422, "tabular.invalid_schema")
    assert problem["field"] == field, problem
    assert says in problem["reason"], problem
    assert head(client, headers) == 0


@pytest.mark.parametrize(
    "body",
    [{"schmea": {}}, {"schema": 3}, {"schema": "string"}, {"description": 5}, {"description": "d" * 1025}],
)
def test_a_definition_body_breaking_its_shape_is_422(
    client: TestClient, headers: dict[str, str], body: dict[str, Any]
) -> None:
    assert_problem(client.put(f"{URL}/config", json=body, headers=headers), 422, "request.invalid")
    assert head(client, headers) == 0


def test_schemas_in_other_dialects_are_honoured_and_their_refs_resolve_inside(
    client: TestClient, headers: dict[str, str]
) -> None:
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 0, "exclusiveMinimum": True}
    ok(define(client, headers, "d4", schema=draft4))
    violation = client.put(f"{URL}/d4/rows/zero", json={"value": 0}, headers=headers)
    assert assert_problem(violation, 422, "tabular.schema_violation")["keyword"] == "minimum"
    ok(client.put(f"{URL}/d4/rows/one", json={"value": 1}, headers=headers))
    embedded = {
        "$id": "https://example.com/shapes",
        "type": "object",
        "properties": {
            "at": {"$ref": "point"},
            "meta": {"$ref": "https://json-schema.org/draft/2020-12/schema"},
        },
        "$defs": {"point": {"$id": "point", "type": "array", "items": {"type": "number"}, "maxItems": 2}},
    }
    ok(define(client, headers, "shapes", schema=embedded))
    bad = client.put(f"{URL}/shapes/rows/p", json={"value": {"at": [1, "x"]}}, headers=headers)
    assert assert_problem(bad, 422, "tabular.schema_violation")["field"] == "/value/at/1"
    meta = client.put(f"{URL}/shapes/rows/p", json={"value": {"meta": {"type": "x"}}}, headers=headers)
    assert assert_problem(meta, 422, "tabular.schema_violation")["field"] == "/value/meta/type"
    good = {"at": [1, 2], "meta": {"type": "string"}}
    ok(client.put(f"{URL}/shapes/rows/p", json={"value": good}, headers=headers))


# Rows


def test_a_row_needs_no_definition_and_reads_back_with_its_version(
    client: TestClient, headers: dict[str, str]
) -> None:
    written = put_row(client, headers, "agents/planner", {"model": "big", "tools": ["web"]})
    assert ok(written) == {"table": "config", "key": "agents/planner", "version": 1, "position": 1}
    assert (written.headers["etag"], written.headers["x-spine-position"]) == ('"1"', "1")
    read = client.get(f"{ROWS}/agents/planner", headers=waited(headers, written))
    assert read.headers["etag"] == '"1"'
    row = ok(read)
    assert {k: row[k] for k in ("table", "key", "value", "version", "change", "deleted", "updated_by")} == {
        "table": "config", "key": "agents/planner", "value": {"model": "big", "tools": ["web"]}, "version": 1,
        "change": "written", "deleted": False, "updated_by": "u1",
    }  # fmt: skip
    assert row["updated_at"].endswith("Z")
    [event] = ok(client.get("/v1/events", headers=headers))["events"]
    assert (event["type"], event["stream"]) == ("table.row_written", "table:6:config:agents~planner")
    assert_problem(client.get(f"{URL}/config", headers=headers), 404, "tabular.table_not_found")


def test_keys_with_slashes_dots_colons_and_ats_are_rows_of_their_own(
    client: TestClient, headers: dict[str, str]
) -> None:
    keys = [
        "agents/planner",
        "agents/planner/tools",
        "config.main",
        "a:b@1",
        "a",
        "a.b",
        "x+y=z",
        "_" + "k" * 127,
    ]
    for n, key in enumerate(keys):
        last = ok(put_row(client, headers, key, n))
    wait = {**headers, "X-Spine-Min-Position": str(last["position"])}
    assert [ok(client.get(f"{ROWS}/{key}", headers=wait))["value"] for key in keys] == list(range(len(keys)))
    assert [r["key"] for r in every_row(client, wait)] == sorted(keys)


@pytest.mark.parametrize(
    "key",
    ["a|b", "a//b", "a/", "/a", "a/.hidden", "-lead", "a~b", "k" * 129, "versions", "a/versions/b", "a%01b",
     "a%2Fb", "sp%20ace"],
)  # fmt: skip
def test_invalid_row_keys_are_422_and_append_nothing(
    client: TestClient, headers: dict[str, str], key: str
) -> None:
    assert_problem(put_row(client, headers, key, 1), 422, "request.invalid")
    assert_problem(client.delete(f"{ROWS}/{key}", headers=headers), 422, "request.invalid")
    assert head(client, headers) == 0


@pytest.mark.parametrize("table", ["a:b", "-x", "t" * 65, "sp%20ace", "a~b"])
def test_invalid_table_names_are_422(client: TestClient, headers: dict[str, str], table: str) -> None:
    assert_problem(define(client, headers, table), 422, "request.invalid")
    assert_problem(
        client.put(f"{URL}/{table}/rows/k", json={"value": 1}, headers=headers), 422, "request.invalid"
    )
    assert_problem(client.get(f"{URL}/{table}/rows", headers=headers), 422, "request.invalid")
    assert head(client, headers) == 0


def test_a_stale_expected_version_or_if_match_is_409_and_writes_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert ok(put_row(client, headers, "k", 1, expected_version="no_stream"))["version"] == 1  # create-only
    assert_problem(
        put_row(client, headers, "k", 9, expected_version="no_stream"), 409, "tabular.version_conflict"
    )
    assert ok(put_row(client, headers, "k", 2, expected_version=1))["version"] == 2
    assert ok(put_row(client, headers, "k", 3))["version"] == 3  # no precondition: the last writer wins
    problem = assert_problem(
        put_row(client, headers, "k", 9, expected_version=2), 409, "tabular.version_conflict"
    )
    assert (problem["stream"], problem["expected_version"], problem["current_version"]) == (
        "table:6:config:k", 2, 3)  # fmt: skip
    stale = client.put(f"{ROWS}/k", json={"value": 9}, headers={**headers, "If-Match": '"2"'})
    assert_problem(stale, 409, "tabular.version_conflict")
    weak = client.put(f"{ROWS}/k", json={"value": 9}, headers={**headers, "If-Match": 'W/"3"'})
    assert_problem(weak, 412, "precondition.failed")
    disagree = client.put(
        f"{ROWS}/k", json={"value": 9, "expected_version": 3}, headers={**headers, "If-Match": '"2"'}
    )
    assert_problem(disagree, 422, "request.invalid")
    last = client.put(f"{ROWS}/k", json={"value": 4}, headers={**headers, "If-Match": '"3"'})
    assert ok(last)["version"] == 4
    never = client.put(f"{ROWS}/new", json={"value": 1}, headers={**headers, "If-Match": "*"})
    assert_problem(never, 412, "precondition.failed")  # `*`: a current row, and there is none
    assert ok(client.get(f"{ROWS}/k", headers=waited(headers, last)))["value"] == 4
    assert head(client, headers) == 4


def test_a_row_the_schema_refuses_is_422_pointing_into_the_body_and_appends_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(define(client, headers, schema=PRICED))
    for value, field, keyword in (
        ({"price": -1}, "/value/price", "minimum"),
        ({"price": "free"}, "/value/price", "type"),
        ({"name": "no price"}, "/value", "required"),
        ([1], "/value", "type"),
    ):
        problem = assert_problem(put_row(client, headers, "p", value), 422, "tabular.schema_violation")
        assert (problem["field"], problem["keyword"], problem["table"], problem["schema_version"]) == (
            field, keyword, "config", 1)  # fmt: skip
        assert problem["reason"] in problem["message"]
    assert head(client, headers) == 1
    assert ok(put_row(client, headers, "p", {"price": 0, "name": "free"}))["version"] == 1


def test_a_pattern_that_backtracks_for_ever_refuses_the_row_instead_of_stalling_the_service(
    client: TestClient, headers: dict[str, str]
) -> None:
    """`^(a|aa)+$` on forty a's and a `!` backtracks for hours: the row is refused, and the
    service goes on answering."""
    slow = "^(a|aa)+$"
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": slow}}}
    ok(define(client, headers, schema=schema))
    problem = assert_problem(
        put_row(client, headers, "p", {"name": "a" * 40 + "!"}), 422, "tabular.schema_violation"
    )
    assert problem["keyword"] == "pattern"
    assert "did not finish" in problem["reason"]
    assert head(client, headers) == 1  # the definition alone
    assert ok(put_row(client, headers, "p", {"name": "aaa"}))["version"] == 1


def test_a_new_schema_holds_new_writes_only_and_null_removes_it(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(put_row(client, headers, "old", {"price": "any text"}))
    ok(define(client, headers, schema=PRICED))
    # written before the schema: it stays, and reads back as written
    assert_problem(put_row(client, headers, "old", {"price": "still text"}), 422, "tabular.schema_violation")
    removed = ok(define(client, headers, schema=None))
    assert removed["version"] == 2
    last = put_row(client, headers, "old", {"price": "text again"})
    assert ok(last)["version"] == 2
    rows = every_row(client, waited(headers, last))
    assert [(r["key"], r["value"]) for r in rows] == [("old", {"price": "text again"})]
    strict = ok(define(client, headers, schema=False))  # the false schema: every write refused
    assert strict["version"] == 3
    assert_problem(put_row(client, headers, "any", None), 422, "tabular.schema_violation")


def test_any_json_value_is_a_row(client: TestClient, headers: dict[str, str]) -> None:
    for n, value in enumerate((None, 0, -1.5, "text", True, [1, [2]], {"a": {"b": None}})):
        last = put_row(client, headers, f"v{n}", value)
        assert ok(client.get(f"{ROWS}/v{n}", headers=waited(headers, last)))["value"] == value
    assert_problem(
        client.put(f"{ROWS}/k", json={"expected_version": 1}, headers=headers), 422, "request.invalid"
    )


def test_a_delete_is_a_tombstone_version_and_the_history_stays(
    client: TestClient, headers: dict[str, str]
) -> None:
    put_row(client, headers, "a/b", {"v": 1})
    put_row(client, headers, "a/b", {"v": 2})
    deleted = client.delete(f"{ROWS}/a/b", headers=headers)
    assert ok(deleted) == {"table": "config", "key": "a/b", "deleted": True, "version": 3, "position": 3}
    assert (deleted.headers["etag"], deleted.headers["x-spine-position"]) == ('"3"', "3")
    wait = waited(headers, deleted)
    problem = assert_problem(client.get(f"{ROWS}/a/b", headers=wait), 404, "tabular.not_found")
    assert (problem["table"], problem["key"], problem["deleted"], problem["version"]) == (
        "config",
        "a/b",
        True,
        3,
    )
    history = client.get(f"{ROWS}/a/b/versions", headers=wait)
    assert history.headers["etag"] == '"3"'
    assert [(v["version"], v["change"], v["deleted"]) for v in ok(history)["versions"]] == [
        (1, "written", False), (2, "written", False), (3, "deleted", True)]  # fmt: skip
    assert "value" not in ok(history)["versions"][0]  # the history lists versions; each one reads whole
    first = client.get(f"{ROWS}/a/b/versions/1", headers=wait)
    assert (first.headers["etag"], first.json()["value"]) == ('"1"', {"v": 1})
    tombstone = ok(client.get(f"{ROWS}/a/b/versions/3", headers=wait))
    assert (tombstone["value"], tombstone["deleted"], tombstone["change"]) == (None, True, "deleted")
    again = assert_problem(client.delete(f"{ROWS}/a/b", headers=headers), 404, "tabular.not_found")
    assert (again["deleted"], again["version"]) == (True, 3)
    assert every_row(client, wait) == []
    back = put_row(client, headers, "a/b", {"v": 4}, expected_version=3)  # a write brings it back
    assert ok(back)["version"] == 4
    assert ok(client.get(f"{ROWS}/a/b", headers=waited(headers, back)))["value"] == {"v": 4}
    assert head(client, headers) == 4


def test_deleting_a_row_never_written_is_404_and_a_delete_honours_preconditions(
    client: TestClient, headers: dict[str, str]
) -> None:
    for answer in (client.delete(f"{ROWS}/nope", headers=headers),
                   client.delete(f"{ROWS}/nope", headers={**headers, "If-Match": '"1"'})):  # fmt: skip
        problem = assert_problem(answer, 404, "tabular.not_found")
        assert (problem["key"], problem["deleted"], problem["version"]) == ("nope", False, None)
    for path in (f"{ROWS}/nope", f"{ROWS}/nope/versions", f"{ROWS}/nope/versions/1"):
        assert_problem(client.get(path, headers=headers), 404, "tabular.not_found")
    put_row(client, headers, "k", 1)
    put_row(client, headers, "k", 2)
    stale = client.delete(f"{ROWS}/k", headers={**headers, "If-Match": '"1"'})
    assert assert_problem(stale, 409, "tabular.version_conflict")["current_version"] == 2
    assert_problem(client.delete(f"{ROWS}/k", params={"expected_version": 1}, headers=headers), 409,
                   "tabular.version_conflict")  # fmt: skip
    assert ok(client.delete(f"{ROWS}/k", params={"expected_version": 2}, headers=headers))["version"] == 3
    assert head(client, headers) == 3


def test_versions_page_by_cursor_and_an_unknown_version_is_404(
    client: TestClient, headers: dict[str, str]
) -> None:
    for n in range(5):
        last = put_row(client, headers, "k", n)
    wait = waited(headers, last)
    first = ok(client.get(f"{ROWS}/k/versions", params={"limit": 2}, headers=wait))
    assert ([v["version"] for v in first["versions"]], first["next"]) == ([1, 2], 2)
    rest = ok(client.get(f"{ROWS}/k/versions", params={"after": 2, "limit": 3}, headers=wait))
    assert ([v["version"] for v in rest["versions"]], rest["next"], rest["key"]) == ([3, 4, 5], None, "k")
    for missing in (0, 6, 99):
        problem = assert_problem(client.get(f"{ROWS}/k/versions/{missing}", headers=wait), 404,
                                 "tabular.version_not_found")  # fmt: skip
        assert (problem["version"], problem["latest_version"]) == (missing, 5)
    assert ok(client.get(f"{ROWS}/k/versions/4", headers=wait))["value"] == 3
    for garbage in ("x", "-1", "1.0", "1/2"):
        assert_problem(client.get(f"{ROWS}/k/versions/{garbage}", headers=wait), 422, "request.invalid")
    assert_problem(
        client.get(f"{ROWS}/k/versions", params={"after": "x"}, headers=wait), 400, "cursor.invalid"
    )


def test_the_rows_list_filters_by_prefix_in_key_order_and_pages_by_cursor(
    client: TestClient, headers: dict[str, str]
) -> None:
    for key in ("agents/writer", "agents/planner", "agent", "agents.old", "tools/web", "agents/planner/x"):
        put_row(client, headers, key, {"k": key})
    client.put(f"{URL}/config2/rows/agents/other", json={"value": 1}, headers=headers)  # another table
    last = client.delete(f"{ROWS}/agents/writer", headers=headers)
    wait = waited(headers, last)
    assert [r["key"] for r in every_row(client, wait, prefix="agents/", limit=1)] == [
        "agents/planner", "agents/planner/x"]  # fmt: skip
    whole = ok(client.get(ROWS, params={"limit": 2}, headers=wait))
    assert ([r["key"] for r in whole["rows"]], whole["next"], whole["table"]) == (
        ["agent", "agents.old"], "agents.old", "config")  # fmt: skip
    assert whole["rows"][0]["value"] == {"k": "agent"}
    rest = ok(client.get(ROWS, params={"after": "agents.old"}, headers=wait))
    assert ([r["key"] for r in rest["rows"]], rest["next"]) == (
        ["agents/planner", "agents/planner/x", "tools/web"], None)  # fmt: skip
    assert [r["key"] for r in every_row(client, wait, prefix="agent")] == [
        "agent", "agents.old", "agents/planner", "agents/planner/x"]  # fmt: skip
    assert every_row(client, wait, prefix="nothing") == []
    assert ok(client.get(f"{URL}/empty/rows", headers=wait)) == {"table": "empty", "rows": [], "next": None}
    assert_problem(client.get(ROWS, params={"after": "bad key"}, headers=wait), 400, "cursor.invalid")
    for params in ({"prefix": "a b"}, {"prefix": "a|"}, {"limit": 0}, {"limit": 1001}):
        assert_problem(client.get(ROWS, params=params, headers=wait), 422, "request.invalid")


def test_a_body_over_the_request_limit_is_413(client: TestClient, headers: dict[str, str]) -> None:
    assert_problem(put_row(client, headers, "big", "x" * (64 * 1024)), 413, "request.too_large")
    assert head(client, headers) == 0


# Scope


def test_every_member_of_the_project_shares_its_tables(client: TestClient, headers: dict[str, str]) -> None:
    made = put_row(client, headers, "k", "from u1")
    agent = provision_sync(client, user="agent-7", role="agent")
    assert ok(client.get(f"{ROWS}/k", headers=waited(agent, made)))["value"] == "from u1"
    changed = put_row(client, agent, "k", "from the agent", expected_version=1)
    assert ok(client.get(f"{ROWS}/k", headers=waited(headers, changed)))["updated_by"] == "agent-7"


def test_tables_of_other_projects_and_tenants_are_invisible_and_not_writable(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(define(client, headers, schema=PRICED))
    mine = put_row(client, headers, "k", {"price": 1})
    for other in (provision_sync(client, project="p2"), provision_sync(client, tenant="t2")):
        assert_problem(client.get(f"{ROWS}/k", headers=other), 404, "tabular.not_found")
        assert_problem(client.get(f"{ROWS}/k/versions", headers=other), 404, "tabular.not_found")
        assert_problem(client.get(f"{URL}/config", headers=other), 404, "tabular.table_not_found")
        assert ok(client.get(ROWS, headers=other))["rows"] == []
        assert ok(client.get(URL, headers=other))["tables"] == []
        assert_problem(client.delete(f"{ROWS}/k", headers=other), 404, "tabular.not_found")
        stale = assert_problem(
            put_row(client, other, "k", 1, expected_version=1), 409, "tabular.version_conflict"
        )
        assert stale["current_version"] == 0
        theirs = put_row(client, other, "k", "no schema here")  # their own table, without my schema
        assert ok(theirs)["version"] == 1
        assert ok(client.get(f"{ROWS}/k", headers=waited(other, theirs)))["value"] == "no schema here"
    row = ok(client.get(f"{ROWS}/k", headers=waited(headers, mine)))
    assert (row["value"], row["version"]) == ({"price": 1}, 1)


def test_identity_in_a_body_may_repeat_the_context_never_redirect_it(
    client: TestClient, headers: dict[str, str]
) -> None:
    for claim in ({"project_id": "p2"}, {"tenant_id": "t2"}):
        assert_problem(define(client, headers, **claim), 403, "auth.identity_override")
        assert_problem(put_row(client, headers, "k", 1, **claim), 403, "auth.identity_override")
    assert head(client, headers) == 0
    same = define(client, headers, tenant_id="t1", project_id="p1", description="d")
    stored = ok(client.get("/v1/streams/table:6:config", headers=waited(headers, same)))["events"][0]["data"]
    assert stored == {"table": "config", "schema": None, "description": "d"}


@pytest.mark.parametrize(
    ("stream", "event_type"),
    [
        ("table:6:config:k", "x.y"),
        ("table:6:config", "x.y"),
        ("mine", "table.row_written"),
        ("mine", "table.defined"),
    ],
)
def test_the_events_api_refuses_table_streams_and_types(
    client: TestClient, headers: dict[str, str], stream: str, event_type: str
) -> None:
    body = {"stream": stream, "events": [{"type": event_type, "data": {"table": "config", "key": "k"}}]}
    problem = assert_problem(client.post("/v1/events", json=body, headers=headers), 422, "request.invalid")
    assert "/v1/tables/{table}" in problem["message"]
    assert head(client, headers) == 0


def test_writes_are_in_the_audit_view(client: TestClient) -> None:
    boss = provision_sync(client, user="boss", role="admin")
    define(client, {**boss, "X-Request-Id": "r-define"}, description="d")
    put_row(client, {**boss, "X-Request-Id": "r-write"}, "k", "secret-value")
    last = client.delete(f"{ROWS}/k", headers={**boss, "X-Request-Id": "r-delete"})
    records = ok(client.get("/v1/audit", headers=waited(boss, last)))["records"]
    assert [(r["action"], r["resource"], r["actor"], r["request_id"]) for r in records] == [
        ("table.defined", "table:6:config", "boss", "r-define"),
        ("table.row_written", "table:6:config:k", "boss", "r-write"),
        ("table.row_deleted", "table:6:config:k", "boss", "r-delete"),
    ]
    assert "secret-value" not in str(records)


# Routing


def test_a_saas_tenant_without_a_tabular_store_route_is_refused_before_anything_is_appended(
    client: TestClient,
) -> None:
    saas = provision_sync(client, tenant="t9", mode="saas")
    # The spine has no route either: answering the store's code shows the view was asked first.
    for method, path in (("PUT", f"{URL}/config"), ("GET", f"{URL}/config"), ("GET", URL), ("GET", ROWS),
                         ("PUT", f"{ROWS}/a/b"), ("GET", f"{ROWS}/a/b"), ("DELETE", f"{ROWS}/a/b"),
                         ("GET", f"{ROWS}/a/b/versions"), ("GET", f"{ROWS}/a/b/versions/1")):  # fmt: skip
        body = {} if path == f"{URL}/config" else {"value": 1}
        answer = client.request(method, path, json=body, headers=saas)
        problem = assert_problem(answer, 503, "save_store.missing_route")
        assert (problem["resource_kind"], answer.headers["retry-after"]) == ("tabular_store", "1")


def test_a_write_whose_view_store_is_unavailable_appends_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    route = {"resource_kind": "tabular_store", "tenant_id": "t1", "env": "dev", "project_id": "p1",
             "backend_type": "redis", "config": {"url": "redis://127.0.0.1:6379/0"}}  # fmt: skip
    assert client.put("/v1/routes", json=route, headers=admin_headers_sync(client)).status_code == 200
    assert_problem(put_row(client, headers, "k", 1), 503, "tabular_store.backend_unavailable")
    assert_problem(define(client, headers), 503, "tabular_store.backend_unavailable")
    assert head(client, headers) == 0


def test_a_lab_tenant_routed_to_its_own_store_is_served_without_the_warning(
    client: TestClient, headers: dict[str, str]
) -> None:
    route = {"resource_kind": "tabular_store", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite",
             "config": {"path": "tables-views.db"}}  # fmt: skip
    assert client.put("/v1/routes", json=route, headers=admin_headers_sync(client)).status_code == 200
    written = put_row(client, headers, "k", 1)
    assert "save_store" not in written.headers.get("x-spine-warning", "")
    read = client.get(f"{ROWS}/k", headers=waited(headers, written))
    assert (ok(read)["value"], "save_store" in read.headers.get("x-spine-warning", "")) == (1, False)


# Concurrency


async def test_of_twenty_writers_expecting_one_version_exactly_one_wins(http: httpx.AsyncClient) -> None:
    created = await http.put(f"{ROWS}/race", json={"value": 0})
    assert created.status_code == 200, created.text
    statuses: list[int] = []

    async def contender(n: int) -> None:
        answer = await http.put(f"{ROWS}/race", json={"value": n}, headers={"If-Match": '"1"'})
        statuses.append(answer.status_code)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(contender, n)
    assert sorted(statuses) == [200] + [409] * 19
    history = (await http.get(f"{ROWS}/race/versions", headers={"X-Spine-Min-Position": "2"})).json()
    assert [v["version"] for v in history["versions"]] == [1, 2]
