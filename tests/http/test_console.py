"""`/console`: the operator console's files, served public with their types, a strict CSP and ETags;
nothing in them reaches beyond Spine's own origin."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from app.http.controllers.console import CSP
from domain.routing import RESOURCE_KINDS, BackendType

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "app" / "http" / "static" / "console"
FILES = sorted(path.name for path in STATIC.iterdir() if path.is_file())
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# XML namespaces are names, never fetched: the only URLs the console's files may hold.
NAMESPACES = {"http://www.w3.org/2000/svg"}


def test_the_page_is_served_public_with_a_strict_policy(client: TestClient[Any]) -> None:
    answer = client.get("/console")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.content == (STATIC / "index.html").read_bytes()
    assert answer.headers["content-security-policy"] == CSP
    for allowed in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):
        assert allowed in CSP
    for loosened in ("unsafe-inline", "unsafe-eval", "*", "data:", "http"):
        assert loosened not in CSP
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert client.get("/console/").content == answer.content


@pytest.mark.parametrize("name", FILES)
def test_every_file_is_served_with_its_type_and_etag(client: TestClient[Any], name: str) -> None:
    answer = client.get(f"/console/{name}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == TYPES[Path(name).suffix]
    assert answer.content == (STATIC / name).read_bytes()
    assert answer.headers["content-security-policy"] == CSP
    etag = answer.headers["etag"]
    again = client.get(f"/console/{name}", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)


def test_anything_else_is_a_problem_404(client: TestClient[Any]) -> None:
    for path in ("/console/nope.js", "/console/..%2Fspine.js", "/console/main.js/x", "/console/static"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"


def test_the_console_is_no_api_operation(client: TestClient[Any]) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/console")]


@pytest.mark.parametrize("name", FILES)
def test_no_file_reaches_beyond_spines_origin(name: str) -> None:
    text = (STATIC / name).read_text()
    urls = set(re.findall(r"(?:https?|wss?|ftp)://[^\s\"'`<>)]*", text, flags=re.IGNORECASE))
    assert urls <= NAMESPACES, f"{name} names {urls - NAMESPACES}"
    protocol_relative = re.findall(r"""(?:src|href|from|import|url)\s*[=(]?\s*["'`]?//""", text)
    assert protocol_relative == [], name
    assert "<script>" not in text, "inline code: the CSP refuses it"
    assert " style=" not in text, "inline styles: the CSP refuses them"


def test_modules_import_only_each_other_and_spine_js() -> None:
    """Relative imports only (so a console behind a path prefix still finds its modules), of files
    that exist: the console's own, or `/v1/client.js`; and every module is reached from main.js."""
    reached, waiting = set(), ["main.js"]
    while waiting:
        module = waiting.pop()
        reached.add(module)
        text = (STATIC / module).read_text()
        for target in re.findall(
            r"""(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)["']([^"']+)["']""", text, re.M
        ):
            assert target.startswith(("./", "../")), f"{module} imports {target}"
            if target == "../v1/client.js":
                continue
            assert (STATIC / target).resolve().is_file(), f"{module} imports {target}, which is missing"
            if target.removeprefix("./") not in reached:
                waiting.append(target.removeprefix("./"))
    assert reached == {name for name in FILES if name.endswith(".js")}
    assert '<script type="module" src="/console/main.js">' in (STATIC / "index.html").read_text()


def test_the_wheel_holds_every_file() -> None:
    """pyproject's package-data names every file of the console, or an installed Spine would 404."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for name in FILES:
        assert any(fnmatch.fnmatch(f"static/console/{name}", p) for p in patterns["app.http"]), name


def test_the_route_form_offers_the_registrys_kinds_and_backends() -> None:
    source = (STATIC / "routes.js").read_text()

    def listed(name: str) -> list[str]:
        found = re.search(rf"export const {name} = \[(.*?)\];", source)
        assert found is not None, name
        return re.findall(r'"([a-z0-9_]+)"', found.group(1))

    assert listed("KINDS") == list(RESOURCE_KINDS)
    assert listed("BACKENDS") == list(BackendType.__args__)  # type: ignore[attr-defined]
