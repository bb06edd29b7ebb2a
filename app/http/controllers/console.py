"""`/console`: the operator console, a page that is one more client of Spine's public API.

The page holds no data and needs no credential: it is static files (`app/http/static/console/`,
plain ES modules, one CSS file) that run in the operator's browser, where every call they make
carries the token the operator signed in with, through spine.js (`/v1/client.js`), as any other
client's would. So the files are public, like the docs page, and nothing here reads a store.

Every answer carries a strict Content-Security-Policy: scripts, styles, images and connections
from Spine's own origin only (no inline script, no CDN, no other host), no framing, no plugins.
Whatever an event's data holds, the page only ever shows it as text; the policy is the net under
that rule. Files are revalidated on each load by their ETag, as spine.js is, so the console is
always the one of the server it talks to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Annotated, Final

from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.params import HeaderParameter, PathParameter

from app.http.controllers.client_js import etag_matches

CONSOLE: Final = "/console"
INDEX: Final = "index.html"
CSP: Final = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_MEDIA_TYPES: Final = {  # Litestar adds "; charset=utf-8" to the text types
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",  # a file is only ever what its type says
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # keep it, but ask whether it changed on each load
}
IfNoneMatch = Annotated[
    str | None, HeaderParameter(name="If-None-Match", description="the ETag of a copy the caller has")
]


@dataclass(frozen=True)
class _Asset:
    body: bytes
    etag: str
    media_type: str


@cache
def assets() -> dict[str, _Asset]:
    """The console's files by name: a fixed set, read once; no listing, no path below them."""
    found: dict[str, _Asset] = {}
    for entry in (files("app.http") / "static" / "console").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _MEDIA_TYPES:
            body = entry.read_bytes()
            found[entry.name] = _Asset(
                body, f'"{hashlib.sha256(body).hexdigest()[:32]}"', _MEDIA_TYPES[suffix]
            )
    return found


def _serve(name: str, if_none_match: str | None) -> Response[bytes]:
    asset = assets().get(name)
    if asset is None:
        raise NotFoundException(f"the console has no file {name!r}")
    headers = {**_HEADERS, "ETag": asset.etag}
    if if_none_match is not None and etag_matches(if_none_match, asset.etag):
        return Response(b"", status_code=304, headers=headers, media_type=asset.media_type)
    return Response(asset.body, headers=headers, media_type=asset.media_type)


@get(CONSOLE, opt={"public": True}, include_in_schema=False, sync_to_thread=False)
def console_page(if_none_match: IfNoneMatch = None) -> Response[bytes]:
    """The console's one page; its views are hash routes (`/console#/routes`)."""
    return _serve(INDEX, if_none_match)


@get(f"{CONSOLE}/{{name:str}}", opt={"public": True}, include_in_schema=False, sync_to_thread=False)
def console_asset(
    name: Annotated[str, PathParameter(description="a file of the console")],
    if_none_match: IfNoneMatch = None,
) -> Response[bytes]:
    """A module, the style sheet or the icon; any other name is 404."""
    return _serve(name, if_none_match)
