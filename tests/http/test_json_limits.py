"""JSON depth and size limits (issue 12, items 2 and 3).

Every body is checked once, ahead of the identity guard and the handler: deeper than
`max_json_depth` (64) is 422 `request.too_deep` with nothing appended, larger than `max_body_bytes`
is 413 `request.too_large`, Content-Length or not. A document an older version stored deeper than
Spine serves never makes a read 500: a list answers the others and marks it, a single read is 422
`view.unreadable`, after a restart and a rebuild too; the events API sends stored events as they are.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from domain.personal import PERSONAL_FIELDS
from tests.http.conftest import start_live_server
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision, provision_sync

MAX_BODY = 1024 * 1024  # large enough that a body 100,000 levels deep is refused for its depth
LIMIT = 64
DEEP = 900  # how deep an older version let a document nest (it accepted bodies of ~969 levels)
TOO_DEEP_TO_DECODE = 990  # deeper than a request can decode and encode again under the recursion limit
MARKER = "deep-me"
LD = {"@context": "https://schema.org", "@type": "WebPage", "about": MARKER}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, max_body_bytes=MAX_BODY, bootstrap_key=BOOTSTRAP_KEY)


def nested(depth: int) -> str:
    """A JSON object nesting exactly `depth` levels (`{}` is 1)."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@dataclass(frozen=True)
class Write:
    """A write route; `body % value` puts a JSON object `base` levels deep into its body."""

    name: str
    method: str
    path: str
    body: str
    base: int
    admin: bool = False
    free_form: bool = True  # the value is a field the route stores (not an ignored or refused one)

    def at_depth(self, depth: int) -> str:
        return self.body % nested(depth - self.base)


WRITES = [
    Write(
        "events", "POST", "/v1/events", '{"stream":"notes:1","events":[{"type":"note.added","data":%s}]}', 3
    ),
    Write("memory", "PUT", "/v1/memory/k1", '{"value":%s}', 1),
    Write("sessions", "POST", "/v1/sessions/s1/messages", '{"role":"user","content":"hi","metadata":%s}', 1),
    Write("blackboard", "PUT", "/v1/runs/r1/blackboard/k1", '{"value":%s}', 1),
    Write("audit", "POST", "/v1/audit", '{"action":"note.added","resource":"r1","details":%s}', 1),
    Write(
        "analytics",
        "POST",
        "/v1/analytics/events",
        '{"name":"page_view","platform":"web","properties":%s}',
        1,
    ),
    Write(
        "analytics-batch",
        "POST",
        "/v1/analytics/events/batch",
        '{"events":[{"name":"page_view","platform":"web","properties":%s}]}',
        3,
    ),
    Write(
        "seo",
        "PUT",
        "/v1/seo/home",
        '{"title":"Home","structured_data":{"@context":"https://schema.org","@type":"WebPage","a":%s}}',
        2,
    ),
    Write("saves", "POST", "/v1/saves/flows", '{"name":"flow","body":%s}', 1),
    Write("strategy-locks", "POST", "/v1/strategy-locks/l1/snapshots", '{"state":%s}', 1),
    Write("budget-usage", "POST", "/v1/budget/usage", '{"amount":1,"unit":"tokens","x":%s}', 1),
    Write(
        "budget-limits",
        "PUT",
        "/v1/budget/limits",
        '{"period":"day","unit":"tokens","limit":10,"hard":false,"x":%s}',
        1,
        free_form=False,
    ),
    Write("tenants", "POST", "/v1/tenants", '{"tenant_id":"t9","name":"t9","x":%s}', 1, True, False),
    Write(
        "projects",
        "POST",
        "/v1/tenants/t1/projects",
        '{"project_id":"p9","name":"p9","x":%s}',
        1,
        True,
        False,
    ),
    Write(
        "members", "POST", "/v1/tenants/t1/members", '{"user_id":"u9","role":"member","x":%s}', 1, True, False
    ),
    Write("tokens", "POST", "/v1/tenants/t1/tokens", '{"user_id":"u1","x":%s}', 1, True, False),
    Write(
        "routes",
        "PUT",
        "/v1/routes",
        '{"resource_kind":"memory_store","tenant_id":"t1","env":"dev","backend_type":"sqlite","config":%s}',
        1,
        True,
        False,
    ),
    Write("rebuild", "POST", "/v1/projections/memory/rebuild", '{"x":%s}', 1, True, False),
    Write("bootstrap", "POST", "/v1/auth/bootstrap", '{"user_id":"admin","x":%s}', 1, True, False),
]
BY_NAME = {write.name: write for write in WRITES}


def headers_for(client: TestClient, member: dict[str, str], write: Write) -> dict[str, str]:
    sent = admin_headers_sync(client) if write.admin else {**member, "X-App-Id": "app1"}
    if write.name == "bootstrap":
        sent = {"X-Bootstrap-Key": BOOTSTRAP_KEY}
    return {**sent, "Content-Type": "application/json"}


def stored_events(settings: Settings) -> int:
    """Every event of every partition (the control plane's too): the lab keeps them in one file."""
    with sqlite3.connect(settings.data_dir / "spine.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def head(client: TestClient, member: dict[str, str]) -> int:
    answer = client.get("/v1/events", headers=member)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["head"])


def assert_problem(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (answer.status_code, answer.headers["content-type"]) == (status, "application/problem+json"), (
        answer.text[:300]
    )
    body: dict[str, Any] = answer.json()
    assert body["error_code"] == code, body
    return body


# Items 2 and 3: bodies too deep are refused before anything decodes them


@pytest.mark.parametrize("write", WRITES, ids=lambda w: w.name)
@pytest.mark.parametrize("depth", [LIMIT + 1, 1_000, 100_000])
def test_a_body_nesting_deeper_than_the_limit_is_422_and_appends_nothing(
    client: TestClient, headers: dict[str, str], settings: Settings, write: Write, depth: int
) -> None:
    sent = headers_for(client, headers, write)
    before = (head(client, headers), stored_events(settings))
    answer = client.request(write.method, write.path, content=write.at_depth(depth), headers=sent)
    assert assert_problem(answer, 422, "request.too_deep")["max_depth"] == LIMIT
    assert (head(client, headers), stored_events(settings)) == before


@pytest.mark.parametrize("write", [w for w in WRITES if w.free_form], ids=lambda w: w.name)
def test_a_body_at_the_limit_is_accepted(client: TestClient, headers: dict[str, str], write: Write) -> None:
    answer = client.request(
        write.method, write.path, content=write.at_depth(LIMIT), headers=headers_for(client, headers, write)
    )
    assert answer.status_code in (200, 201), answer.text[:300]


def test_strings_and_escapes_do_not_count_as_nesting(client: TestClient, headers: dict[str, str]) -> None:
    value = json.dumps({"text": "[{" * 500 + '\\"[' + "}]" * 3, "list": [[["x"]]]})
    answer = client.put("/v1/memory/k1", content=f'{{"value":{value}}}', headers=headers)
    assert answer.status_code == 200, answer.text
    read = client.get(
        "/v1/memory/k1", headers={**headers, "X-Spine-Min-Position": str(answer.json()["position"])}
    )
    assert read.json()["value"] == json.loads(value)


def test_the_limit_is_a_setting(settings: Settings) -> None:
    with TestClient(create_app(msgspec.structs.replace(settings, max_json_depth=8))) as client:
        member = provision_sync(client)
        write = BY_NAME["memory"]
        assert client.put(write.path, content=write.at_depth(8), headers=member).status_code == 200
        assert_problem(
            client.put(write.path, content=write.at_depth(9), headers=member), 422, "request.too_deep"
        )


# Size: 413 on every route, whether the client sends a Content-Length or a chunked body


def chunks(size: int) -> Iterator[bytes]:
    yield b'{"value":"'
    sent = 10
    while sent < size:
        yield b"x" * min(64 * 1024, size - sent)
        sent += 64 * 1024
    yield b'"}'


@pytest.mark.parametrize("write", WRITES, ids=lambda w: w.name)
def test_a_body_over_the_size_limit_is_413_with_or_without_content_length(
    client: TestClient, headers: dict[str, str], settings: Settings, write: Write
) -> None:
    sent = headers_for(client, headers, write)
    before = stored_events(settings)
    with_length = client.request(write.method, write.path, content=b" " * (MAX_BODY + 1), headers=sent)
    assert_problem(with_length, 413, "request.too_large")
    chunked = client.build_request(write.method, write.path, content=chunks(MAX_BODY + 1), headers=sent)
    assert "content-length" not in chunked.headers
    assert chunked.headers["transfer-encoding"] == "chunked"
    assert_problem(client.send(chunked), 413, "request.too_large")
    assert stored_events(settings) == before


async def test_a_chunked_body_over_the_size_limit_is_413_from_a_real_server(settings: Settings) -> None:
    live = start_live_server(settings)
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
            member = await provision(http)

            async def body() -> Any:
                for chunk in chunks(MAX_BODY + 1):
                    yield chunk

            answer = await http.put("/v1/memory/k1", content=body(), headers=member)
            assert_problem(answer, 413, "request.too_large")
            deep = await http.put("/v1/memory/k1", content=BY_NAME["memory"].at_depth(1_000), headers=member)
            assert_problem(deep, 422, "request.too_deep")
    finally:
        live.server.should_exit = True
        live.thread.join(timeout=10)


# Documents an older version stored too deep: never a 500


def deep_value() -> bytes:
    return b"[" * DEEP + b"]" * DEEP


def deepen(path: Path, table: str, column: str, depth: int = DEEP) -> int:
    """Nest every stored `"deep-me"` `depth` levels deep, as an older version would have stored it."""
    marker, deep = json.dumps(MARKER), "[" * depth + "]" * depth
    text = f"CAST({column} AS TEXT)"
    with sqlite3.connect(path) as db:
        return db.execute(
            f"UPDATE {table} SET {column} = CAST(replace({text}, ?, ?) AS BLOB) WHERE instr({text}, ?) > 0",
            (marker, deep, marker),
        ).rowcount


@contextmanager
def before_erasure() -> Iterator[None]:
    """Writes as a version of Spine before erasure stored them: personal fields in the clear (a
    sealed value hides its marker, and an older version's documents are what these tests are about)."""
    with pytest.MonkeyPatch.context() as patch:
        for event_type in list(PERSONAL_FIELDS):
            patch.delitem(PERSONAL_FIELDS, event_type)
        yield


def restarted(settings: Settings, *, views: bool = True, events: bool = False) -> TestClient:
    """The app started again after its stored documents were deepened."""
    if views:
        assert deepen(settings.data_dir / "views.db", "view_documents", "data") > 0
    if events:
        assert deepen(settings.data_dir / "spine.db", "events", "body") > 0
    return TestClient(create_app(settings))


def write(client: TestClient, method: str, path: str, body: dict[str, Any], member: dict[str, str]) -> int:
    answer = client.request(method, path, json=body, headers={**member, "X-App-Id": "app1"})
    assert answer.status_code in (200, 201), answer.text
    return int(answer.headers["x-spine-position"])


def read(client: TestClient, path: str, member: dict[str, str], position: int = 0) -> httpx.Response:
    return client.get(path, headers={**member, "X-App-Id": "app1", "X-Spine-Min-Position": str(position)})


def marked(item: dict[str, Any], *fields: str) -> None:
    assert item["problem"]["error_code"] == "view.unreadable", item
    assert set(item["problem"]["fields"]) == set(fields)
    assert all(item[field] is None for field in fields)


@pytest.fixture
def member(settings: Settings) -> dict[str, str]:
    with TestClient(create_app(settings)) as client:
        return provision_sync(client)


def test_audit_records_stored_too_deep(settings: Settings, member: dict[str, str]) -> None:
    with TestClient(create_app(settings)) as client:
        write(
            client,
            "POST",
            "/v1/audit",
            {"action": "note.added", "resource": "fine", "details": {"m": 1}},
            member,
        )
        last = write(client, "POST", "/v1/audit", {"action": "note.added", "resource": "deep",
                                                    "details": {"m": MARKER}}, member)  # fmt: skip
        assert read(client, "/v1/audit", member, last).status_code == 200
    with restarted(settings, events=True) as client:
        for _ in range(2):  # the stored view, then the view rebuilt from the log
            answer = read(client, "/v1/audit?action=note.added", member)
            assert answer.status_code == 200, answer.text[:300]
            records = {r["resource"]: r for r in answer.json()["records"]}
            assert records["fine"]["details"] == {"m": 1}
            assert "problem" not in records["fine"]
            marked(records["deep"], "details")
            assert (records["deep"]["action"], records["deep"]["actor"]) == ("note.added", "u1")
            assert_problem(read(client, f"/v1/audit/{records['deep']['id']}", member), 422, "view.unreadable")
            assert read(client, f"/v1/audit/{records['fine']['id']}", member).status_code == 200
            rebuilt = client.post("/v1/projections/audit/rebuild?wait=true", headers=admin_headers_sync(client),
                                  json={"tenant_id": "t1", "project_id": "p1", "env": "dev"})  # fmt: skip
            assert rebuilt.json()["projections"][0]["rebuild"]["state"] == "swapped", rebuilt.text


def test_session_messages_stored_too_deep(settings: Settings, member: dict[str, str]) -> None:
    with before_erasure(), TestClient(create_app(settings)) as client:
        write(client, "POST", "/v1/sessions/s1/messages", {"role": "user", "content": MARKER}, member)
        last = write(client, "POST", "/v1/sessions/s1/messages",
                     {"role": "user", "content": "fine", "metadata": {"deep": MARKER}}, member)  # fmt: skip
        write(client, "POST", "/v1/sessions/s1/messages", {"role": "assistant", "content": "ok"}, member)
        assert read(client, "/v1/sessions/s1", member, last + 1).status_code == 200
    with restarted(settings) as client:
        answer = read(client, "/v1/sessions/s1", member)
        assert answer.status_code == 200, answer.text[:300]
        first, second, third = answer.json()["messages"]
        marked(first, "content")
        marked(second, "metadata")
        assert second["content"] == "fine"
        assert (third["content"], "problem" in third) == ("ok", False)


def test_analytics_events_stored_too_deep(settings: Settings, member: dict[str, str]) -> None:
    with before_erasure(), TestClient(create_app(settings)) as client:
        write(client, "POST", "/v1/analytics/events", {"name": "deep", "platform": "web",
                                                       "properties": {"m": MARKER}}, member)  # fmt: skip
        last = write(client, "POST", "/v1/analytics/events", {"name": "fine", "platform": "web"}, member)
        assert read(client, "/v1/analytics/events", member, last).status_code == 200
    with restarted(settings) as client:
        answer = read(client, "/v1/analytics/events", member)
        assert answer.status_code == 200, answer.text[:300]
        events = {e["name"]: e for e in answer.json()["events"]}
        marked(events["deep"], "properties")
        assert events["deep"]["attribution"]["app_id"] == "app1"
        assert "problem" not in events["fine"]


def test_blackboard_entries_stored_too_deep(settings: Settings, member: dict[str, str]) -> None:
    with TestClient(create_app(settings)) as client:
        write(client, "PUT", "/v1/runs/r1/blackboard/deep", {"value": [MARKER]}, member)
        last = write(client, "PUT", "/v1/runs/r1/blackboard/fine", {"value": 1}, member)
        assert read(client, "/v1/runs/r1/blackboard", member, last).status_code == 200
    with restarted(settings) as client:
        answer = read(client, "/v1/runs/r1/blackboard", member)
        assert answer.status_code == 200, answer.text[:300]
        entries = {e["key"]: e for e in answer.json()["entries"]}
        marked(entries["deep"], "value")
        assert (entries["fine"]["value"], "problem" in entries["fine"]) == (1, False)
        assert_problem(read(client, "/v1/runs/r1/blackboard/deep", member), 422, "view.unreadable")
        assert read(client, "/v1/runs/r1/blackboard/fine", member).status_code == 200


def test_strategy_lock_snapshots_stored_too_deep(settings: Settings, member: dict[str, str]) -> None:
    with TestClient(create_app(settings)) as client:
        write(client, "POST", "/v1/strategy-locks/l1/snapshots", {"state": "fine"}, member)
        last = write(client, "POST", "/v1/strategy-locks/l1/snapshots", {"state": MARKER}, member)
        assert read(client, "/v1/strategy-locks/l1/snapshots", member, last).status_code == 200
    with restarted(settings) as client:
        answer = read(client, "/v1/strategy-locks/l1/snapshots", member)
        assert answer.status_code == 200, answer.text[:300]
        fine, deep = answer.json()["snapshots"]
        assert (fine["state"], "problem" in fine) == ("fine", False)
        marked(deep, "state")
        assert_problem(read(client, "/v1/strategy-locks/l1/snapshots/latest", member), 422, "view.unreadable")


def test_single_documents_stored_too_deep(settings: Settings, member: dict[str, str]) -> None:
    """Memory, saves and SEO configs are read one at a time; their lists carry no payload."""
    with before_erasure(), TestClient(create_app(settings)) as client:
        write(client, "PUT", "/v1/memory/deep", {"value": MARKER}, member)
        write(client, "PUT", "/v1/memory/fine", {"value": 1}, member)
        write(client, "POST", "/v1/saves/flows", {"id": "f1", "name": "flow", "body": MARKER}, member)
        last = write(client, "PUT", "/v1/seo/home", {"title": "Home", "structured_data": LD}, member)
        for path in ("/v1/memory/deep", "/v1/saves/flows/f1", "/v1/seo/home"):
            assert read(client, path, member, last).status_code == 200
    with restarted(settings) as client:
        for path in (
            "/v1/memory/deep",
            "/v1/saves/flows/f1",
            "/v1/saves/flows/f1/versions/1",
            "/v1/seo/home",
        ):
            assert_problem(read(client, path, member), 422, "view.unreadable")
        assert read(client, "/v1/memory/fine", member).json()["value"] == 1
        for path in ("/v1/saves/flows", "/v1/saves/flows/f1/versions", "/v1/seo"):
            assert read(client, path, member).status_code == 200


def test_the_events_api_sends_stored_events_as_they_are(settings: Settings, member: dict[str, str]) -> None:
    """However deep a stored event nests (here deeper than any stack could decode and encode again,
    which `GET /v1/events` used to do), the page holds it as it is stored."""
    with TestClient(create_app(settings)) as client:
        for data in ({"m": MARKER}, {"m": "fine"}):
            write(client, "POST", "/v1/events", {"stream": "notes:1", "events": [{"type": "note.added",
                                                                                  "data": data}]}, member)  # fmt: skip
    assert deepen(settings.data_dir / "spine.db", "events", "body", TOO_DEEP_TO_DECODE) == 1
    with TestClient(create_app(settings)) as client:
        answer = read(client, "/v1/events", member)
        assert answer.status_code == 200, answer.text[:300]
        deep = b"[" * TOO_DEEP_TO_DECODE + b"]" * TOO_DEEP_TO_DECODE
        assert answer.content.count(deep) == 1
        page = json.loads(answer.content.replace(deep, b"null"))  # too deep for this test's stack
        assert [e["data"]["m"] for e in page["events"]] == [None, "fine"]
        assert (page["next"], page["head"]) == (2, 2)


def test_a_stream_too_deep_to_decode_is_a_problem_not_a_500(
    settings: Settings, member: dict[str, str]
) -> None:
    """`/v1/streams` decodes what adapters read: an event no stack can decode is a problem, never a 500."""
    with TestClient(create_app(settings)) as client:
        write(client, "POST", "/v1/events", {"stream": "notes:1", "events": [{"type": "note.added",
                                                                              "data": {"m": MARKER}}]}, member)  # fmt: skip
    assert deepen(settings.data_dir / "spine.db", "events", "body", TOO_DEEP_TO_DECODE) == 1
    with TestClient(create_app(settings)) as client:
        answer = read(client, "/v1/streams/notes:1", member)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["error_code"] == "document.unreadable"
        assert read(client, "/v1/events", member).status_code == 200
        # the store answered: its breaker counts no failure for what it stored
        assert read(client, "/v1/streams/notes:1", member).json()["error_code"] == "document.unreadable"
