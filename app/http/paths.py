"""Path segments carry identifiers, and no identifier holds a '/': an encoded one is refused.

ASGI servers decode a path before routing, so `/v1/memory/a%2Fb` is two segments (a 404) and
`/v1/memory/a%2F` would be the key `a`, the router dropping the trailing '/'. Rather than act on
another name than the one sent, a path that encodes a '/' is refused as the identifier it names
would be: 422 `request.invalid`.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from domain.errors import InvalidRequest


async def encoded_slash_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    raw_path: bytes = connection.scope.get("raw_path") or b""
    path = raw_path.partition(b"?")[0]  # some servers (and test clients) leave the query on it
    if b"%2f" in path.lower():
        raise InvalidRequest("a path segment holds an encoded '/' (%2F): no identifier may contain '/'")
