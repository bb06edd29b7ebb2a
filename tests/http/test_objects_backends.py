"""The object store's story on every backend a route may name: the filesystem (lab), S3 on moto's
server and Azure Blob on Azurite, each routed through `PUT /v1/routes` like an operator would.
Stored, ranged, headed, listed, replaced and deleted through Spine; uploaded by a "browser"
(httpx, no token) straight to the backend with the request `upload-url` hands out, then completed;
downloaded through `download-url`; the index rebuilt from the log answers the same. A route to a
backend that does not answer is 503 with nothing appended."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.test_events_api import assert_problem
from tests.peers import azurite, free_port, s3
from tests.provision import admin_headers_sync, provision_sync

MB = 1024 * 1024
BODY = os.urandom(3 * MB) + b"tail"  # past the adapters' smallest parts in the routes below


@contextmanager
def filesystem_route(_: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    yield {"path": "objects-routed"}  # inside the data dir


@contextmanager
def s3_route(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    url = s3.endpoint()
    monkeypatch.setenv("TEST_SPINE_S3_KEY_ID", s3.ACCESS_KEY_ID)  # a route holds references only
    monkeypatch.setenv("TEST_SPINE_S3_SECRET", s3.SECRET_ACCESS_KEY)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(s3.bucket(url)) as bucket:
        yield {"bucket": bucket, "region": s3.REGION, "endpoint_url": url, "prefix": "routed/",
               "access_key_id": "secret://env/TEST_SPINE_S3_KEY_ID",
               "secret_access_key": "secret://env/TEST_SPINE_S3_SECRET",
               "multipart_threshold_bytes": 5 * MB}  # fmt: skip


@contextmanager
def azure_route(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    url = azurite.account_url()
    monkeypatch.setenv("TEST_SPINE_AZURITE_KEY", azurite.KEY)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(azurite.container(url)) as client,
    ):
        yield {"account_url": url, "container": client.container_name, "prefix": "routed/",
               "key": "secret://env/TEST_SPINE_AZURITE_KEY", "multipart_threshold_bytes": MB}  # fmt: skip


ROUTES = {"filesystem": filesystem_route, "s3": s3_route, "azure_blob": azure_route}


def chunks(body: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    yield from (body[i : i + size] for i in range(0, len(body), size))


def browser(signed: dict[str, Any], body: bytes, name: str) -> httpx.Response:
    """What a page does with an `upload-url` answer: an HTML form POST when it has fields (S3),
    else the method and headers as given; no token, no Spine headers."""
    if signed["fields"]:
        files = {"file": (name, body, signed["fields"].get("Content-Type", "application/octet-stream"))}
        return httpx.post(signed["url"], data=signed["fields"], files=files, timeout=30)
    return httpx.request(signed["method"], signed["url"], content=body, headers=signed["headers"], timeout=30)


def fetched(client: TestClient, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """A download URL: Spine's own (through the test client) or the backend's (straight to it)."""
    parts = urlsplit(url)
    if parts.netloc == "testserver.local":
        return client.get(parts.path, headers=headers or {})
    return httpx.get(url, headers=headers or {}, timeout=30)


def reads(client: TestClient, headers: dict[str, str], position: int) -> list[Any]:
    wait = {**headers, "X-Spine-Min-Position": str(position)}
    listed = client.get("/v1/objects", headers=wait)
    answers: list[Any] = [
        (
            listed.status_code,
            [{k: v for k, v in o.items() if k != "stored_at"} for o in listed.json()["objects"]],
        )
    ]
    for obj in listed.json()["objects"]:
        whole = client.get(f"/v1/objects/{obj['key']}", headers=wait)
        ranged = client.get(f"/v1/objects/{obj['key']}", headers={**wait, "Range": "bytes=1-3"})
        answers.append((obj["key"], hashlib.sha256(whole.content).hexdigest(), whole.headers["etag"],
                        ranged.status_code, ranged.content, ranged.headers["content-range"]))  # fmt: skip
    return answers


@pytest.mark.parametrize("backend", sorted(ROUTES))
def test_the_object_story_on_every_backend(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    with ROUTES[backend](monkeypatch) as config, TestClient(create_app(settings)) as client:
        headers = provision_sync(client)
        admin = admin_headers_sync(client)
        route = {"resource_kind": "object_store", "tenant_id": "t1", "env": "dev", "project_id": "p1",
                 "backend_type": backend, "config": config}  # fmt: skip
        assert client.put("/v1/routes", json=route, headers=admin).status_code == 200

        written = client.put("/v1/objects/media/big.bin", content=chunks(BODY), headers=headers)
        assert written.status_code == 201, written.text
        assert written.json()["sha256"] == hashlib.sha256(BODY).hexdigest()
        assert written.headers["x-spine-warning"] == "event_spine.missing_route"  # the bytes are routed
        wait = {**headers, "X-Spine-Min-Position": written.headers["x-spine-position"]}
        whole = client.get("/v1/objects/media/big.bin", headers=wait)
        assert (whole.status_code, len(whole.content)) == (200, len(BODY))
        assert whole.content == BODY
        ranged = client.get(
            "/v1/objects/media/big.bin", headers={**wait, "Range": f"bytes={2 * MB}-{2 * MB + 9}"}
        )
        assert (ranged.status_code, ranged.content) == (206, BODY[2 * MB : 2 * MB + 10])
        tail = client.get("/v1/objects/media/big.bin", headers={**wait, "Range": "bytes=-4"})
        assert (tail.content, tail.headers["content-range"]) == (
            b"tail",
            f"bytes {len(BODY) - 4}-{len(BODY) - 1}/{len(BODY)}",
        )
        headed = client.head("/v1/objects/media/big.bin", headers=wait)
        assert (headed.status_code, headed.headers["content-length"]) == (200, str(len(BODY)))
        assert_problem(client.get("/v1/objects/media/big.bin", headers={**wait, "Range": f"bytes={len(BODY)}-"}),
                       416, "object.range_not_satisfiable")  # fmt: skip

        # a browser's upload straight to the backend (or to Spine, which cannot be skipped for a directory)
        granted = client.post("/v1/objects/media/from-browser.txt/upload-url",
                              json={"content_type": "text/plain", "size": 64}, headers=headers)  # fmt: skip
        assert granted.status_code == 201, granted.text
        signed = granted.json()
        if backend == "filesystem":
            assert signed["url"].startswith("http://testserver.local/v1/object-uploads/")
            sent = client.put(urlsplit(signed["url"]).path, content=b"from a page", headers=signed["headers"])
            assert sent.status_code == 201, sent.text
        else:
            assert not signed["url"].startswith("http://testserver.local")
            assert browser(signed, b"from a page", "from-browser.txt").status_code in (200, 201, 204)
            assert (
                client.get("/v1/objects", headers=wait).json()["objects"][0]["key"] == "media/big.bin"
            )  # not yet
        done = client.post(signed["complete_url"], headers=headers)
        assert done.status_code == 201, done.text
        assert (done.json()["size"], done.json()["content_type"]) == (len(b"from a page"), "text/plain")
        assert client.post(signed["complete_url"], headers=headers).json() == done.json()  # once
        over = client.post("/v1/objects/media/over.txt/upload-url", json={"size": 4}, headers=headers).json()
        if backend == "filesystem":
            assert_problem(client.put(urlsplit(over["url"]).path, content=b"12345"), 413, "object.too_large")
        else:  # the backend refuses it (S3's size condition), or takes it and the completion refuses it
            browser(over, b"12345", "over.txt")
            refused = client.post(over["complete_url"], headers=headers)
            assert (refused.status_code, refused.json()["error_code"]) in {
                (404, "object.upload_not_found"),
                (413, "object.too_large"),
            }
            # and it is gone: nothing to complete any more
            assert_problem(client.post(over["complete_url"], headers=headers), 404, "object.upload_not_found")

        position = done.json()["position"]
        url = client.post("/v1/objects/media/from-browser.txt/download-url", json={"ttl_seconds": 60},
                          headers={**headers, "X-Spine-Min-Position": str(position)})  # fmt: skip
        assert url.status_code == 201, url.text
        assert fetched(client, url.json()["url"]).content == b"from a page"

        replaced = client.put("/v1/objects/media/big.bin", content=b"small now", headers=headers)
        assert replaced.status_code == 200, replaced.text
        before = reads(client, headers, int(replaced.headers["x-spine-position"]))
        assert [entry[0] for entry in before[1:]] == ["media/big.bin", "media/from-browser.txt"]
        rebuilt = client.post("/v1/projections/objects/rebuild?wait=true", headers=admin)
        assert rebuilt.status_code == 202, rebuilt.text
        assert reads(client, headers, int(replaced.headers["x-spine-position"])) == before

        deleted = client.delete("/v1/objects/media/big.bin", headers=headers)
        assert deleted.status_code == 200, deleted.text
        gone = {**headers, "X-Spine-Min-Position": deleted.headers["x-spine-position"]}
        assert_problem(client.get("/v1/objects/media/big.bin", headers=gone), 404, "object.not_found")
        assert [o["key"] for o in client.get("/v1/objects", headers=gone).json()["objects"]] == [
            "media/from-browser.txt"
        ]
        types = [e["type"] for e in client.get("/v1/events", headers=headers).json()["events"]]
        assert types == ["object.stored", "object.stored", "object.stored", "object.deleted"]


@pytest.mark.parametrize("backend", ["s3", "azure_blob"])
def test_a_backend_that_does_not_answer_is_503_and_nothing_is_appended(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")  # signing needs some; the port answers none
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("TEST_SPINE_AZURITE_KEY", azurite.KEY)
    config = {"s3": {"bucket": "b", "region": "us-east-1", "endpoint_url": nowhere},
              "azure_blob": {"account_url": f"{nowhere}/acct", "container": "c",
                             "key": "secret://env/TEST_SPINE_AZURITE_KEY"}}  # fmt: skip
    with TestClient(create_app(settings)) as client:
        headers = provision_sync(client)
        route = {"resource_kind": "object_store", "tenant_id": "t1", "env": "dev", "project_id": "p1",
                 "backend_type": backend, "config": {**config[backend], "connect_timeout_seconds": 1}}  # fmt: skip
        assert client.put("/v1/routes", json=route, headers=admin_headers_sync(client)).status_code == 200
        answer = client.put("/v1/objects/a", content=b"bytes", headers=headers)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error_code"] == "object_store.backend_unavailable"
        assert "retry-after" in answer.headers
        assert client.get("/v1/events", headers=headers).json()["events"] == []
