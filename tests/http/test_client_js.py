"""`GET /v1/client.js`: spine.js as the repository holds it, public, cacheable, importable anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.testing import TestClient

SOURCE = Path(__file__).resolve().parents[2] / "clients" / "js" / "spine.js"


def test_it_serves_the_repository_copy_to_anyone(client: TestClient[Any]) -> None:
    answer = client.get("/v1/client.js", headers={"Origin": "http://page.example"})
    assert answer.status_code == 200
    assert answer.content == SOURCE.read_bytes()
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["cache-control"] == "public, no-cache"
    assert answer.headers["etag"].startswith('"')
    assert "export function follow(" in answer.text


def test_a_current_etag_gets_304_and_a_stale_one_the_file(client: TestClient[Any]) -> None:
    etag = client.get("/v1/client.js").headers["etag"]
    for current in (etag, f"W/{etag}", f'"stale", {etag}', "*"):
        answer = client.get("/v1/client.js", headers={"If-None-Match": current})
        assert (answer.status_code, answer.content) == (304, b""), current
        assert answer.headers["etag"] == etag
    stale = client.get("/v1/client.js", headers={"If-None-Match": '"stale"'})
    assert (stale.status_code, stale.content) == (200, SOURCE.read_bytes())


def test_the_document_declares_it_public_with_its_headers_and_304(client: TestClient[Any]) -> None:
    operation = client.get("/schema/openapi.json").json()["paths"]["/v1/client.js"]["get"]
    assert "security" not in operation
    assert set(operation["responses"]) >= {"200", "304"}
    ok = operation["responses"]["200"]
    assert set(ok["content"]) == {"text/javascript"}
    assert {"ETag", "Cache-Control", "Access-Control-Allow-Origin"} <= set(ok["headers"])
