"""The one check of every request body's JSON depth, before anything decodes it.

Installed on the app after the identity guard (which applies the same check to the data-route
bodies it decodes for identity fields), so it runs for every route with a body (data, control
plane, bootstrap) once the caller is known, and ahead of the handler's own decode. A body too deep is answered 422 `request.too_deep` with nothing
appended, not even an audit record. Reading the body here also applies the size limit
(`max_body_bytes`: 413 `request.too_large`) to every route, whether the client sent a
Content-Length or a chunked body; Litestar keeps the body, so the handler does not read it again.
A route that streams its body (`opt={"raw_body": True}`: an object's bytes, which are no JSON and
may be gigabytes) is left to read it itself, under limits of its own (`request_max_body_size=None`
on the route, the tenant's object size limit in the handler); the body timeout still applies.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from domain.json_depth import check_depth

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def json_depth_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if connection.scope.get("method") not in _BODY_METHODS or handler.opt.get("raw_body"):
        return
    body: bytes = await connection.body()  # type: ignore[attr-defined]  # an HTTP route's Request
    check_depth(body, connection.app.state.settings.max_json_depth)
