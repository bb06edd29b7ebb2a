"""`GET /v1/client.js`: spine.js, the browser client, for pages on any origin to import.

The one copy is clients/js/spine.js; `app/http/static/spine.js` links to it, so a wheel carries
the file itself. It is public and static: pages import it as a module from their own origin,
hence `Access-Control-Allow-Origin: *`. Browsers revalidate it with its ETag on every load, so a
page always runs the client of the server it talks to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Annotated

from litestar import Response, get
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter

JAVASCRIPT = "text/javascript"  # Litestar adds "; charset=utf-8"
CACHE_CONTROL = "public, no-cache"  # store it, but ask whether it changed each time


@dataclass(frozen=True)
class _Asset:
    body: bytes
    etag: str


@cache
def _client_js() -> _Asset:
    body = (files("app.http") / "static" / "spine.js").read_bytes()
    return _Asset(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 13.1.2: a weak comparison against each listed tag, or `*`."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


@get(
    "/v1/client.js",
    summary="spine.js, the browser client (an ES module)",
    tags=["clients"],
    media_type=JAVASCRIPT,
    opt={"public": True},
    response_headers=[
        ResponseHeader(name="ETag", description="the file's digest", documentation_only=True, required=True),
        ResponseHeader(
            name="Cache-Control", description=CACHE_CONTROL, documentation_only=True, required=True
        ),
        ResponseHeader(
            name="Access-Control-Allow-Origin",
            description="`*`: a page on any origin may import it",
            documentation_only=True,
            required=True,
        ),
    ],
    responses={304: ResponseSpec(None, description="Not modified: If-None-Match names the current ETag")},
)
async def client_js(
    if_none_match: Annotated[
        str | None, HeaderParameter(name="If-None-Match", description="the ETag of a copy the caller has")
    ] = None,
) -> Response[bytes]:
    asset = _client_js()
    headers = {"ETag": asset.etag, "Cache-Control": CACHE_CONTROL, "Access-Control-Allow-Origin": "*"}
    if if_none_match is not None and etag_matches(if_none_match, asset.etag):
        return Response(b"", status_code=304, headers=headers, media_type=JAVASCRIPT)
    return Response(asset.body, headers=headers, media_type=JAVASCRIPT)
