"""The object store through the HTTP API, in lab (the filesystem store under the data dir): bytes
stored, read whole and by range, headed, listed and deleted; preconditions; odd keys; identity and
isolation; the tenant's size limits; the upload and download URLs Spine hands out itself when the
store cannot sign; and the events on the log. Other backends: tests/http/test_objects_backends.py."""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from app.settings import Settings
from tests.http.conftest import Clock, start_live_server
from tests.http.test_events_api import assert_problem
from tests.http.test_slow_clients import SAFETY_SECONDS, read_until_closed
from tests.provision import admin_headers_sync, provision_sync

BODY = bytes(range(256)) * 400  # 100 KiB: past the JSON body limit of these tests (64 KiB)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC))


def blobs(settings: Settings) -> list[Path]:
    """The blobs the lab's filesystem store holds (none half-written: those are in partial/)."""
    root = settings.data_dir / "objects"
    return sorted(p for p in (root / "blobs").rglob("*") if p.is_file()) + sorted(
        p for p in (root / "partial").rglob("*") if p.is_file()
    )


def put(client: TestClient, headers: dict[str, str], key: str, body: Any, **extra: str) -> Any:
    return client.put(f"/v1/objects/{quote(key)}", content=body, headers={**headers, **extra})


def waited(headers: dict[str, str], answer: Any) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def stored(answer: Any, status: int = 201) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert answer.headers["etag"] == f'"{body["version"]}"'
    assert answer.headers["x-spine-position"] == str(body["position"])
    return body


def events(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    answer = client.get("/v1/events", headers=headers)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["events"]
    return found


def test_an_object_is_stored_read_headed_listed_replaced_and_deleted(
    client: TestClient, headers: dict[str, str], settings: Settings
) -> None:
    written = put(client, headers, "media/2026/a.png", BODY, **{"Content-Type": "image/png"})
    body = stored(written)
    assert body == {"key": "media/2026/a.png", "version": 1, "size": len(BODY), "content_type": "image/png",
                    "sha256": hashlib.sha256(BODY).hexdigest(), "position": 1}  # fmt: skip
    # lab without routes: the log, the index and the bytes all fall back, and the answer says so
    assert written.headers["x-spine-warning"] == "event_spine.missing_route, object_store.missing_route"
    assert len(blobs(settings)) == 1

    read = client.get("/v1/objects/media/2026/a.png", headers=waited(headers, written))
    assert (read.status_code, read.content) == (200, BODY)
    assert read.headers["content-type"] == "image/png"
    assert read.headers["content-length"] == str(len(BODY))
    assert (read.headers["etag"], read.headers["accept-ranges"]) == ('"1"', "bytes")
    assert read.headers["last-modified"].endswith(" GMT")
    assert "object_store.missing_route" in read.headers["x-spine-warning"]

    headed = client.head("/v1/objects/media/2026/a.png", headers=headers)
    assert (headed.status_code, headed.content) == (200, b"")
    for name in ("content-type", "content-length", "etag", "last-modified", "accept-ranges"):
        assert headed.headers[name] == read.headers[name], name

    replaced = put(
        client, headers, "media/2026/a.png", b"v2", **{"Content-Type": "text/plain; charset=utf-8"}
    )
    assert stored(replaced, 200)["version"] == 2  # 200: the key held an object
    assert len(blobs(settings)) == 1  # the replaced bytes are gone once the event is in the log
    again = client.get("/v1/objects/media/2026/a.png", headers=waited(headers, replaced))
    assert (again.content, again.headers["content-type"], again.headers["etag"]) == (
        b"v2", "text/plain; charset=utf-8", '"2"')  # fmt: skip

    listed = client.get("/v1/objects", headers=headers).json()
    assert [(o["key"], o["size"], o["version"], o["stored_by"], o["via"]) for o in listed["objects"]] == [
        ("media/2026/a.png", 2, 2, "u1", "direct")
    ]
    assert "blob" not in listed["objects"][0]  # the backend's name is never shown
    assert (listed["next"], listed["usage"]) == (None, {"bytes": 2, "objects": 1})

    deleted = client.delete("/v1/objects/media/2026/a.png", headers=headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"key": "media/2026/a.png", "deleted": True, "version": 3, "position": 3}
    assert blobs(settings) == []
    assert_problem(client.get("/v1/objects/media/2026/a.png", headers=waited(headers, deleted)), 404,
                   "object.not_found")  # fmt: skip
    assert client.head("/v1/objects/media/2026/a.png", headers=waited(headers, deleted)).status_code == 404
    assert_problem(client.delete("/v1/objects/media/2026/a.png", headers=headers), 404, "object.not_found")
    empty = {"objects": [], "next": None, "usage": {"bytes": 0, "objects": 0}}
    assert client.get("/v1/objects", headers=waited(headers, deleted)).json() == empty


def test_a_body_with_no_content_type_is_octet_stream_and_may_be_empty_or_chunked(
    client: TestClient, headers: dict[str, str]
) -> None:
    empty = stored(client.put("/v1/objects/empty", content=b"", headers=headers))
    assert (empty["size"], empty["content_type"]) == (0, "application/octet-stream")
    assert empty["sha256"] == hashlib.sha256(b"").hexdigest()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body comes chunked
        yield from (BODY[i : i + 7000] for i in range(0, len(BODY), 7000))

    chunked = stored(client.put("/v1/objects/chunked", content=chunks(), headers=headers))
    assert (chunked["size"], chunked["sha256"]) == (len(BODY), hashlib.sha256(BODY).hexdigest())
    read = client.get("/v1/objects/empty", headers={**headers, "X-Spine-Min-Position": "2"})
    assert (read.status_code, read.content, read.headers["content-length"]) == (200, b"", "0")
    assert_problem(
        put(client, headers, "bad-type", b"x", **{"Content-Type": "not a type"}), 422, "request.invalid"
    )


def test_a_json_body_is_bytes_like_any_other_never_read_for_identity(
    client: TestClient, headers: dict[str, str]
) -> None:
    """The identity guard reads JSON bodies of data routes for identity fields; an object's body
    is the tenant's bytes, and says nothing about who sends it."""
    document = b'{"tenant_id": "someone-else", "user_id": "admin", "deep": ' + b"[" * 200 + b"]" * 200 + b"}"
    answer = put(client, headers, "doc.json", document, **{"Content-Type": "application/json"})
    assert stored(answer)["size"] == len(document)


@pytest.mark.parametrize(
    ("sent", "status", "content", "content_range"),
    [
        ("bytes=0-0", 206, b"0", "bytes 0-0/10"),
        ("bytes=3-", 206, b"3456789", "bytes 3-9/10"),
        ("bytes=-4", 206, b"6789", "bytes 6-9/10"),
        ("bytes=-40", 206, b"0123456789", "bytes 0-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("BYTES = 2-3", 206, b"23", "bytes 2-3/10"),
        ("bytes=0-1,3-4", 200, b"0123456789", None),  # several ranges: ignored, the whole object
        ("items=0-1", 200, b"0123456789", None),  # another unit: ignored
        ("bytes=9-2", 200, b"0123456789", None),  # malformed: ignored (RFC 9110 §14.2)
        ("bytes=x-", 200, b"0123456789", None),
    ],
)
def test_one_range_is_served_and_what_is_not_one_is_ignored(
    client: TestClient,
    headers: dict[str, str],
    sent: str,
    status: int,
    content: bytes,
    content_range: str | None,
) -> None:
    written = put(client, headers, "digits", b"0123456789", **{"Content-Type": "text/plain"})
    read = client.get("/v1/objects/digits", headers={**waited(headers, written), "Range": sent})
    assert (read.status_code, read.content) == (status, content)
    assert read.headers.get("content-range") == content_range
    assert read.headers["content-length"] == str(len(content))


@pytest.mark.parametrize("sent", ["bytes=10-", "bytes=10-20", "bytes=-0"])
def test_a_range_past_the_end_is_416_with_the_size(
    client: TestClient, headers: dict[str, str], sent: str
) -> None:
    written = put(client, headers, "digits", b"0123456789")
    refused = client.get("/v1/objects/digits", headers={**waited(headers, written), "Range": sent})
    assert_problem(refused, 416, "object.range_not_satisfiable")
    assert refused.headers["content-range"] == "bytes */10"
    assert refused.json()["size"] == 10


def test_if_range_and_if_none_match(client: TestClient, headers: dict[str, str]) -> None:
    written = put(client, headers, "digits", b"0123456789")
    wait = waited(headers, written)
    ranged = client.get("/v1/objects/digits", headers={**wait, "Range": "bytes=0-1", "If-Range": '"1"'})
    assert (ranged.status_code, ranged.content) == (206, b"01")
    stale = client.get("/v1/objects/digits", headers={**wait, "Range": "bytes=0-1", "If-Range": '"9"'})
    assert (stale.status_code, stale.content) == (200, b"0123456789")  # not the version named: all of it
    for held in ('"1"', 'W/"1"', '"7", "1"', "*"):
        for method in ("GET", "HEAD"):
            answer = client.request(method, "/v1/objects/digits", headers={**wait, "If-None-Match": held})
            assert (answer.status_code, answer.content) == (304, b""), (method, held)
            assert answer.headers["etag"] == '"1"'
    changed = client.get("/v1/objects/digits", headers={**wait, "If-None-Match": '"2"'})
    assert (changed.status_code, changed.content) == (200, b"0123456789")


def test_preconditions_refuse_before_any_byte_is_kept(
    client: TestClient, headers: dict[str, str], settings: Settings
) -> None:
    created = put(client, headers, "cfg", b"one", **{"If-None-Match": "*"})
    assert stored(created)["version"] == 1
    assert_problem(put(client, headers, "cfg", b"two", **{"If-None-Match": "*"}), 412, "precondition.failed")
    assert_problem(put(client, headers, "cfg", b"two", **{"If-None-Match": '"1"'}), 422, "request.invalid")
    stale = assert_problem(
        put(client, headers, "cfg", b"two", **{"If-Match": '"7"'}), 409, "object.version_conflict"
    )
    assert stale["current_version"] == 1
    assert_problem(put(client, headers, "nothing", b"x", **{"If-Match": "*"}), 412, "precondition.failed")
    assert stored(put(client, headers, "cfg", b"two", **{"If-Match": '"1"'}), 200)["version"] == 2
    assert stored(put(client, headers, "cfg", b"three", **{"If-Match": "*"}), 200)["version"] == 3
    assert len(blobs(settings)) == 1  # each refusal left nothing behind
    assert_problem(client.delete("/v1/objects/cfg", headers={**headers, "If-Match": '"2"'}), 409,
                   "object.version_conflict")  # fmt: skip
    deleted = client.delete("/v1/objects/cfg", headers={**headers, "If-Match": '"3"'})
    assert deleted.status_code == 200, deleted.text
    # a deleted object is no current representation: If-Match: * refuses, If-None-Match: * creates
    assert_problem(put(client, headers, "cfg", b"x", **{"If-Match": "*"}), 412, "precondition.failed")
    assert stored(put(client, headers, "cfg", b"four", **{"If-None-Match": "*"}))["version"] == 5
    assert [e["type"] for e in events(client, headers)] == ["object.stored"] * 3 + [
        "object.deleted",
        "object.stored",
    ]


ODD_KEYS = [
    "médias/été 2026/ça va.png",  # unicode and spaces
    "a:b@c+d=e~f",  # the stream alphabet, and the two characters its spelling uses
    "dir/..hidden/.profile",  # dots inside a segment
    "what?#100%",  # characters a URL must encode
    "x" * 249,  # the longest plain key
    "versions/upload-url",  # names POST uses below a key, as a key's own segments
]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_keys_are_kept_exactly(client: TestClient, headers: dict[str, str], key: str) -> None:
    written = stored(put(client, headers, key, key.encode()))
    assert written["key"] == key
    wait = {**headers, "X-Spine-Min-Position": str(written["position"])}
    assert client.get(f"/v1/objects/{quote(key)}", headers=wait).content == key.encode()
    assert [o["key"] for o in client.get("/v1/objects", headers=wait).json()["objects"]] == [key]
    [event] = events(client, headers)
    assert event["stream"].startswith("object:")
    assert event["data"]["key"] == key
    assert client.get(f"/v1/streams/{quote(event['stream'])}", headers=headers).json()["version"] == 1


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("a//b", 422, "request.invalid"),  # an empty segment
        ("a/%2E/b", 422, "request.invalid"),  # dot segments (encoded: clients remove them otherwise)
        ("a/%2E%2E/b", 422, "request.invalid"),
        ("a/", 422, "request.invalid"),  # a trailing '/': an empty segment
        ("a%00b", 422, "request.invalid"),  # control characters
        ("a%0Ab", 422, "request.invalid"),
        ("a%C2%85b", 422, "request.invalid"),  # a C1 control (NEL)
        ("%FF%FE", 422, "request.invalid"),  # not UTF-8
        ("a%2Fb", 422, "request.invalid"),  # an encoded '/': one key or two segments? refused
        ("x" * 250, 422, "request.invalid"),  # too long for its stream name
        ("%C3%A9" * 42, 422, "request.invalid"),  # 42 characters, but 252 once spelled
    ],
)
def test_odd_paths_are_refused_before_anything_is_stored(
    client: TestClient, headers: dict[str, str], settings: Settings, path: str, status: int, code: str
) -> None:
    for method in ("PUT", "GET", "HEAD", "DELETE"):
        answer = client.request(method, f"/v1/objects/{path}", content=b"x" if method == "PUT" else None,
                                headers=headers)  # fmt: skip
        assert answer.status_code == status, (method, answer.text)
        if method != "HEAD":
            assert answer.json()["error_code"] == code
    assert blobs(settings) == []
    assert events(client, headers) == []


def test_listing_by_prefix_and_cursor(client: TestClient, headers: dict[str, str]) -> None:
    keys = ["a", "a/b", "a/c", "ab", "b/a", "é"]
    last = None
    for key in reversed(keys):
        last = put(client, headers, key, key.encode())
    assert last is not None
    wait = waited(headers, last)
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({} if cursor is None else {"after": cursor})}
        answer = client.get("/v1/objects", params=params, headers=wait).json()
        pages.append([o["key"] for o in answer["objects"]])
        cursor = answer["next"]
        if cursor is None:
            break
    assert pages == [["a", "a/b"], ["a/c", "ab"], ["b/a", "é"]]
    assert [o["key"] for o in client.get("/v1/objects", params={"prefix": "a/"}, headers=wait).json()["objects"]] == [
        "a/b", "a/c"]  # fmt: skip
    assert_problem(client.get("/v1/objects", params={"after": "a//"}, headers=wait), 400, "cursor.invalid")
    assert_problem(
        client.get("/v1/objects", params={"prefix": "a\x01"}, headers=wait), 422, "request.invalid"
    )


def test_identity_comes_from_the_token_and_tenants_and_projects_never_meet(
    client: TestClient, headers: dict[str, str], settings: Settings
) -> None:
    other_tenant = provision_sync(client, tenant="t2", user="u2")
    admin = admin_headers_sync(client)
    assert (
        client.post(
            "/v1/tenants/t1/projects", json={"project_id": "p2", "name": "p2"}, headers=admin
        ).status_code
        == 201
    )
    other_project = {**headers, "X-Project-Id": "p2"}
    mine = put(client, headers, "same/key", b"t1 p1")
    theirs = put(client, other_tenant, "same/key", b"t2 p1")
    elsewhere = put(client, other_project, "same/key", b"t1 p2")
    for answer in (mine, theirs, elsewhere):
        assert stored(answer)["version"] == 1  # three objects: nobody overwrote anybody's
    for who, answer, content in ((headers, mine, b"t1 p1"), (other_tenant, theirs, b"t2 p1"),
                                 (other_project, elsewhere, b"t1 p2")):  # fmt: skip
        wait = waited(who, answer)
        assert client.get("/v1/objects/same/key", headers=wait).content == content
        assert [o["size"] for o in client.get("/v1/objects", headers=wait).json()["objects"]] == [5]
    assert len(blobs(settings)) == 3
    # the payload never names the caller; headers may only repeat the token
    assert_problem(put(client, headers, "x", b"x", **{"X-Tenant-Id": "t2"}), 403, "auth.identity_override")
    assert_problem(client.get("/v1/objects/same/key", headers={**headers, "X-User-Id": "u2"}), 403,
                   "auth.identity_override")  # fmt: skip
    no_token = {k: v for k, v in headers.items() if k != "Authorization"}
    assert_problem(put(client, no_token, "x", b"x"), 401, "auth.missing_token")
    assert_problem(client.get("/v1/objects/same/key", headers=no_token), 401, "auth.missing_token")
    assert_problem(
        put(client, {**headers, "X-Project-Id": "nope"}, "x", b"x"), 400, "context.unknown_project"
    )
    # the generic events API never writes an object's stream or type
    sneaked = {
        "stream": "object:same~key",
        "events": [{"type": "object.stored", "data": {"blob": "t2/dev/p1/x"}}],
    }
    assert_problem(client.post("/v1/events", json=sneaked, headers=headers), 422, "request.invalid")
    assert len(blobs(settings)) == 3


def test_a_saas_tenant_without_an_object_store_route_is_refused_before_any_byte(
    client: TestClient, settings: Settings
) -> None:
    saas = provision_sync(client, tenant="t3", mode="saas")
    for method in ("PUT", "GET", "DELETE"):
        answer = client.request(
            method, "/v1/objects/a", content=b"x" if method == "PUT" else None, headers=saas
        )
        problem = assert_problem(answer, 503, "object_store.missing_route")
        assert problem["resource_kind"] == "object_store"
    assert_problem(client.get("/v1/objects", headers=saas), 503, "object_store.missing_route")
    url = client.post("/v1/objects/a/upload-url", json={}, headers=saas)
    assert_problem(url, 503, "object_store.missing_route")
    assert blobs(settings) == []


def test_the_tenant_s_size_limits(client: TestClient, headers: dict[str, str], settings: Settings) -> None:
    admin = admin_headers_sync(client)
    limits = {"objects": {"max_object_bytes": 10, "max_total_bytes": 25}}
    assert client.put("/v1/tenants/t1/limits", json=limits, headers=admin).status_code == 200
    assert client.get("/v1/tenants/t1/limits", headers=admin).json()["objects"] == limits["objects"]

    refused = assert_problem(put(client, headers, "big", b"x" * 11), 413, "object.too_large")
    assert refused["max_bytes"] == 10

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as the bytes come
        yield b"x" * 6
        yield b"x" * 6

    assert_problem(client.put("/v1/objects/big", content=chunks(), headers=headers), 413, "object.too_large")
    assert blobs(settings) == []
    first = stored(put(client, headers, "a", b"x" * 10))
    second = stored(put(client, headers, "b", b"x" * 10))
    wait = {**headers, "X-Spine-Min-Position": str(second["position"])}
    over = assert_problem(put(client, wait, "c", b"x" * 6), 413, "object.quota_exceeded")
    assert (over["max_total_bytes"], over["used_bytes"]) == (25, 20)
    assert stored(put(client, wait, "a", b"x" * 5), 200)["version"] == 2  # replacing frees what it replaces
    assert stored(put(client, {**headers, "X-Spine-Min-Position": "3"}, "c", b"x" * 10))["size"] == 10
    assert len(blobs(settings)) == 3
    assert first["version"] == 1
    assert_problem(client.put("/v1/tenants/t1/limits", json={"objects": {"max_objects_bytes": 1}}, headers=admin),
                   422, "request.invalid")  # fmt: skip
    # the deployment's limit where the tenant's says nothing; JSON bodies keep theirs (64 KiB here)
    assert client.put("/v1/tenants/t1/limits", json={}, headers=admin).status_code == 200
    assert stored(put(client, headers, "large", BODY))["size"] == len(BODY) > settings.max_body_bytes


def upload_url(client: TestClient, headers: dict[str, str], key: str, **body: Any) -> dict[str, Any]:
    answer = client.post(f"/v1/objects/{quote(key)}/upload-url", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    granted: dict[str, Any] = answer.json()
    return granted


def local(url: str) -> str:
    """An absolute URL of the service, as the test client's path."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_an_upload_url_of_spine_s_own_completes_once(
    client: TestClient, headers: dict[str, str], settings: Settings
) -> None:
    granted = upload_url(client, headers, "up/é.txt", content_type="text/plain", size=5, ttl_seconds=60)
    assert (granted["method"], granted["headers"], granted["fields"]) == (
        "PUT",
        {"Content-Type": "text/plain"},
        {},
    )
    assert granted["url"].startswith("http://testserver.local/v1/object-uploads/")
    assert granted["complete_url"] == f"/v1/objects/up/%C3%A9.txt/uploads/{granted['upload_id']}"
    assert granted["max_bytes"] == 5
    # the URL is the only credential: no token, no context headers
    sent = client.put(local(granted["url"]), content=b"hello", headers=granted["headers"])
    done = stored(sent)
    assert (done["key"], done["size"], done["content_type"]) == ("up/é.txt", 5, "text/plain")
    # completing it again, or sending it again, answers the same and stores nothing more
    again = client.post(granted["complete_url"], headers=headers)
    assert (again.status_code, again.json()) == (201, done)
    resent = client.put(local(granted["url"]), content=b"HELLO", headers=granted["headers"])
    assert (resent.status_code, resent.json()) == (201, done)
    assert len(blobs(settings)) == 1
    [event] = events(client, headers)
    assert (event["type"], event["data"]["via"], event["data"]["user_id"], event["meta"]["user_id"]) == (
        "object.stored", "signed", "u1", "u1")  # fmt: skip
    read = client.get("/v1/objects/up/%C3%A9.txt", headers=waited(headers, sent))
    assert (read.content, read.headers["content-type"]) == (b"hello", "text/plain")


def test_an_upload_url_is_bounded_by_its_grant(
    client: TestClient, headers: dict[str, str], settings: Settings, clock: Clock
) -> None:
    granted = upload_url(client, headers, "small", size=3, ttl_seconds=60)
    assert_problem(client.put(local(granted["url"]), content=b"four"), 413, "object.too_large")
    assert_problem(client.post(granted["complete_url"], headers=headers), 404, "object.upload_not_found")
    assert blobs(settings) == []
    token = granted["upload_id"]
    assert_problem(client.put(f"/v1/object-uploads/{token[:-2]}xx", content=b"x"), 401, "auth.invalid_token")
    assert_problem(
        client.post(f"/v1/objects/other/uploads/{token}", headers=headers), 404, "object.upload_not_found"
    )
    download = client.post("/v1/objects/small/download-url", json={}, headers=headers)
    assert_problem(download, 404, "object.not_found")
    assert_problem(client.put(f"/v1/object-downloads/{token}", content=b"x"), 405, "http.method_not_allowed")
    clock.now += timedelta(seconds=61)
    assert_problem(client.put(local(granted["url"]), content=b"x"), 401, "object.url_expired")
    limit = {"objects": {"max_object_bytes": 100}}
    admin = admin_headers_sync(client)
    assert client.put("/v1/tenants/t1/limits", json=limit, headers=admin).status_code == 200
    assert_problem(client.post("/v1/objects/x/upload-url", json={"size": 101}, headers=headers), 413,
                   "object.too_large")  # fmt: skip
    unbounded = upload_url(client, headers, "x")
    assert unbounded["max_bytes"] == 100
    # another tenant's member cannot complete it, nor read what it names
    other = provision_sync(client, tenant="t2", user="u2")
    assert_problem(client.post(unbounded["complete_url"], headers=other), 404, "object.upload_not_found")
    assert events(client, headers) == []


def test_a_download_url_of_spine_s_own_reads_the_version_it_was_made_for(
    client: TestClient, headers: dict[str, str], clock: Clock
) -> None:
    written = put(client, headers, "report.csv", b"a,b\n1,2\n", **{"Content-Type": "text/csv"})
    answer = client.post(
        "/v1/objects/report.csv/download-url", json={"ttl_seconds": 30}, headers=waited(headers, written)
    )
    assert answer.status_code == 201, answer.text
    url = answer.json()
    assert (url["method"], url["headers"], url["upload_id"]) == ("GET", {}, None)
    read = client.get(local(url["url"]))  # no token
    assert (read.status_code, read.content, read.headers["content-type"]) == (200, b"a,b\n1,2\n", "text/csv")
    ranged = client.get(local(url["url"]), headers={"Range": "bytes=-4"})
    assert (ranged.status_code, ranged.content) == (206, b"1,2\n")
    replaced = put(client, headers, "report.csv", b"new")
    client.get("/v1/objects", headers=waited(headers, replaced))
    assert_problem(client.get(local(url["url"])), 404, "object.not_found")  # that version is gone
    fresh = client.post("/v1/objects/report.csv/download-url", json={}, headers=headers).json()
    assert client.get(local(fresh["url"])).content == b"new"
    clock.now += timedelta(seconds=901)
    assert_problem(client.get(local(fresh["url"])), 401, "object.url_expired")
    assert_problem(
        client.get(local(fresh["url"]).replace("downloads", "uploads")), 405, "http.method_not_allowed"
    )


def test_events_on_the_log_say_who_stored_what(client: TestClient, headers: dict[str, str]) -> None:
    put(client, headers, "a/b", b"one")
    put(client, headers, "a/b", b"three")
    client.delete("/v1/objects/a/b", headers=headers)
    first, second, deleted = events(client, headers)
    assert first["stream"] == second["stream"] == deleted["stream"] == "object:a~b"
    assert [e["version"] for e in (first, second, deleted)] == [1, 2, 3]
    data = first["data"]
    assert data["blob"].startswith("t1/dev/p1/")
    assert {k: v for k, v in data.items() if k != "blob"} == {
        "key": "a/b", "size": 3, "content_type": "application/octet-stream",
        "sha256": hashlib.sha256(b"one").hexdigest(), "user_id": "u1", "via": "direct",
        "replaced_blob": None, "replaced_size": 0,
    }  # fmt: skip
    assert (second["data"]["replaced_blob"], second["data"]["replaced_size"]) == (data["blob"], 3)
    assert deleted["type"] == "object.deleted"
    assert deleted["data"] == {"key": "a/b", "blob": second["data"]["blob"], "size": 5, "user_id": "u1"}


def test_no_token_or_url_reaches_the_access_log(
    client: TestClient, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="spine"):
        granted = upload_url(client, headers, "secret/name.txt")
        client.put(local(granted["url"]), content=b"x")
        client.post(granted["complete_url"], headers=headers)
        url = client.post(
            "/v1/objects/secret/name.txt/download-url",
            json={},
            headers={**headers, "X-Spine-Min-Position": "1"},
        )
        client.get(local(url.json()["url"]))
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name.startswith("spine"))
    assert "/v1/object-uploads/{upload_id}" in logged
    assert "/v1/objects/{key}" in logged
    for secret in (
        granted["upload_id"],
        url.json()["url"].rpartition("/")[2],
        "secret/name.txt",
        headers["Authorization"],
    ):
        assert secret not in logged


def test_a_page_of_an_origin_the_tenant_lists_uses_spine_s_own_upload_url(
    client: TestClient, headers: dict[str, str]
) -> None:
    origin = "https://one.example"
    admin = admin_headers_sync(client)
    app = client.put("/v1/tenants/t1/apps/app1", json={"name": "app1", "origins": [origin]}, headers=admin)
    assert app.status_code == 200, app.text
    granted = upload_url(client, headers, "from/page.txt", content_type="text/plain")
    path = local(granted["url"])
    asked = {
        "Origin": origin,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type",
    }
    preflight = client.options(path, headers=asked)
    assert (preflight.status_code, preflight.headers["access-control-allow-origin"]) == (204, origin)
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    sent = client.put(path, content=b"hi", headers={**granted["headers"], "Origin": origin})
    assert sent.status_code == 201, sent.text
    assert sent.headers["access-control-allow-origin"] == origin  # the grant's tenant lists it
    assert "X-Spine-Position" in sent.headers["access-control-expose-headers"]
    elsewhere = client.put(
        path, content=b"hi", headers={**granted["headers"], "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in elsewhere.headers
    read = client.get(
        "/v1/objects/from/page.txt", headers={**waited(headers, sent), "Origin": origin, "Range": "bytes=0-0"}
    )
    assert read.status_code == 206
    assert "Content-Range" in read.headers["access-control-expose-headers"]


def test_a_stalled_object_body_is_cut_by_the_body_timeout_and_nothing_is_kept(settings: Settings) -> None:
    """The object routes lift the JSON body limit, not the slow-client rule (`app.http.limits`)."""
    live = start_live_server(msgspec.structs.replace(settings, body_timeout_seconds=1.0))
    try:
        with httpx.Client(base_url=live.url, timeout=10) as http:
            member = provision_sync(http)
            url = urlsplit(live.url)
            lines = ["PUT /v1/objects/stalled HTTP/1.1", "Host: spine", "Content-Length: 1000000",
                     *(f"{k}: {v}" for k, v in member.items())]  # fmt: skip
            with socket.create_connection(
                (url.hostname or "", url.port or 80), timeout=SAFETY_SECONDS
            ) as sock:
                sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b"x" * 70_000)
                answer = read_until_closed(sock, time.monotonic() + SAFETY_SECONDS)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert msgspec.json.decode(answer.partition(b"\r\n\r\n")[2])["error_code"] == "request.timeout"
            assert blobs(settings) == []
            assert http.get("/v1/events", headers=member).json()["events"] == []
    finally:
        live.server.should_exit = True
        live.thread.join(timeout=10)


def test_diagnostics_say_where_a_lab_tenant_s_objects_go(client: TestClient, headers: dict[str, str]) -> None:
    admin = admin_headers_sync(client)
    checks = client.get("/v1/diagnostics", params={"tenant_id": "t1"}, headers=admin).json()["checks"]
    [objects] = [c for c in checks if c["resource_kind"] == "object_store"]
    assert (objects["status"], objects["lab_fallback"], objects["error_code"]) == (
        "missing", True, "object_store.missing_route")  # fmt: skip
    assert objects["warnings"] == ["lab falls back to the filesystem store under the data directory"]
    route = {"resource_kind": "object_store", "tenant_id": "t1", "env": "dev", "project_id": "p1",
             "backend_type": "filesystem", "config": {"path": "objects-p1"}}  # fmt: skip
    assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
    checks = client.get("/v1/diagnostics", params={"tenant_id": "t1"}, headers=admin).json()["checks"]
    [objects] = [c for c in checks if c["resource_kind"] == "object_store" and c["project_id"] == "p1"]
    assert (objects["status"], objects["backend_type"]) == ("ok", "filesystem")
    assert isinstance(objects["round_trip_ms"], float)
    outside = {**route, "config": {"path": "../elsewhere"}}  # a lab directory stays in the data dir
    assert client.put("/v1/routes", json=outside, headers=admin).status_code == 200
    assert_problem(put(client, headers, "x", b"x"), 503, "object_store.backend_unavailable")


def test_a_read_right_after_a_replace_serves_the_new_bytes_even_before_the_index_shows_them(
    client: TestClient, headers: dict[str, str]
) -> None:
    """The replaced blob is deleted once the new event is in the log; an index that still names it
    must not turn the read into a 404: the log says which bytes are current."""
    first = put(client, headers, "hot", b"one")
    assert client.get("/v1/objects/hot", headers=waited(headers, first)).content == b"one"
    for n in range(2, 12):
        put(client, headers, "hot", str(n).encode())
        read = client.get("/v1/objects/hot", headers=headers)  # no wait: the index may lag
        assert (read.status_code, read.content, read.headers["etag"]) == (200, str(n).encode(), f'"{n}"')
