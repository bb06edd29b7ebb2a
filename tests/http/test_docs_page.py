"""The docs page works offline (issue 14, item 3): Swagger UI at /schema, its assets served by
Spine itself, the bearer scheme usable from its Authorize button."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from tests.conftest import unavailable
from tests.http.conftest import LiveServer

_URL = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def asset_urls(html: str) -> list[str]:
    return _URL.findall(html)


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
def test_the_docs_page_is_swagger_ui_and_names_same_origin_assets_only(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle(" in page.text
    urls = asset_urls(page.text)
    assert len(urls) >= 3  # the bundle, the preset, the styles (and the icon)
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), f"{url} is not on Spine's own origin"
        assert url.startswith("/schema/assets/")


def test_each_asset_the_page_names_is_served_with_its_content_type(client: TestClient) -> None:
    for url in asset_urls(client.get("/schema").text):
        answer = client.get(url)
        assert answer.status_code == 200, url
        media_type = answer.headers["content-type"].split(";")[0]
        assert media_type == _TYPES[Path(url).suffix], url
        assert answer.content == (Path(str(swagger_ui_path)) / Path(url).name).read_bytes()


@pytest.mark.parametrize(
    "path",
    ["/schema/assets/", "/schema/assets/index.html", "/schema/assets/swagger-initializer.js",
     "/schema/assets/..%2F__init__.py", "/schema/assets/%2e%2e"],
)  # fmt: skip
def test_nothing_else_is_served_under_the_assets(client: TestClient, path: str) -> None:
    assert client.get(path).status_code in (400, 404)


def test_the_document_declares_the_bearer_scheme_for_every_guarded_operation(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }  # fmt: skip
    public = {"/health", "/ready", "/metrics", "/v1/client.js", "/v1/auth/bootstrap"}
    # Spine's own object URLs: the signed id in the path is the credential (a browser's bare request)
    public |= {"/v1/object-uploads/{upload_id}", "/v1/object-downloads/{download_id}"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path not in public:
                assert {"bearer": []} in operation.get("security", []), f"{method.upper()} {path}"


def test_the_vendored_swagger_ui_reads_the_documents_openapi_version(client: TestClient) -> None:
    """Swagger UI 4 refuses OpenAPI 3.1 ("Unable to render this definition"): 5 reads it."""
    assert client.get("/schema/openapi.json").json()["openapi"].startswith("3.1.")
    version = Path(str(swagger_ui_path)).name.removeprefix("swagger-ui-")
    assert int(version.split(".")[0]) >= 5


def test_the_page_renders_with_its_authorize_button_where_no_other_host_resolves(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """Headless Chromium, with every host name unresolvable: only what Spine serves can load."""
    binary = os.environ.get("SPINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(binary, os.X_OK):
        unavailable(f"Chromium is not installed ({binary}); .ci/peers/chromium.sh installs it")
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=15000",  # virtual time: the page runs its scripts until idle
        "--dump-dom", f"{live_server.url}/schema",
    ]  # fmt: skip
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "Unable to render this definition" not in dom
    assert re.search(r'class="btn authorize\b', dom), dom[-2000:]
    rendered = re.sub(r"<[^>]+>", "", re.sub(r"<script\b.*?</script>", "", dom, flags=re.DOTALL))
    assert "/v1/events/stream" in rendered  # the operations are listed (not only in the inline document)
