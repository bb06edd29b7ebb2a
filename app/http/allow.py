"""`Allow`: every path answers `OPTIONS` with exactly the methods it serves.

Litestar 2 makes a path's automatic OPTIONS handler when the path's first handler is registered,
and keeps that handler when more handlers join the path, so its `Allow` named the first handler's
methods only. A controller registers its handlers one by one (in name order), so
`OPTIONS /v1/memory/k` answered `DELETE, OPTIONS`. Litestar 3 fixes this (litestar#4169); until
then `AllowPlugin` gives every route an OPTIONS handler made from its complete set of handlers.

A handler whose declared answer is 405 refuses its methods (the audit trail's PUT, PATCH and
DELETE): they are not served, so `Allow` leaves them out, as the refusal's own `Allow` does.
Litestar's 405 for a method a path has no handler for lists every method the path has one for,
refusals included: `allow_at` gives that answer the path's own `Allow`.

A CORS preflight is an OPTIONS request too: the same handler adds the CORS headers
(`app.http.cors.preflight_headers`), with the path's `Allow` as the methods a page may use.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.utils import normalize_path

from app.http.cors import preflight_headers

_LITESTARS = "options_handler"  # the name of the function behind Litestar's automatic handler
_OURS = "answer_options"


class AllowPlugin(ReceiveRoutePlugin):
    """Replaces each route's automatic OPTIONS handler once the route is complete.

    Litestar hands a route to plugins after its handlers are registered and before requests are
    routed to it; a path that gains a handler later is handed over again, as a new route.
    """

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        automatic = [h for h in route.route_handlers if h.handler_name in (_LITESTARS, _OURS)]
        if not automatic:
            return  # the route declares its own OPTIONS handler
        handler = _options_handler(route.path, allow_of(route))
        handler.owner = automatic[0].owner
        handler.on_registration(automatic[0].app)
        route.route_handlers = [h for h in route.route_handlers if h not in automatic] + [handler]
        kwargs = handler.create_kwargs_model(path_parameters=route.path_parameters)
        route.route_handler_map["OPTIONS"] = (handler, kwargs)


def allow_of(route: HTTPRoute) -> str:
    """The methods a route serves, as `Allow` lists them: OPTIONS always, refusals never."""
    served = {"OPTIONS"}
    for handler in route.route_handlers:
        if handler.handler_name not in (_LITESTARS, _OURS) and handler.status_code != 405:
            served |= handler.http_methods
    return ", ".join(sorted(served))


def allow_at(request: Request[Any, Any, Any]) -> str | None:
    """The `Allow` of the request's path, as its OPTIONS answers it; None for an unknown path."""
    try:
        _, handler, *_ = request.app.asgi_router.handle_routing(
            normalize_path(request.scope["path"]), "OPTIONS"
        )
    except HTTPException:
        return None
    allow = handler.opt.get("allow")
    return allow if isinstance(allow, str) else None


def _options_handler(path: str, allow: str) -> HTTPRouteHandler:
    def answer_options(request: Request[Any, Any, Any]) -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": allow, **preflight_headers(request, allow)})

    handler = HTTPRouteHandler(
        path=path, http_method="OPTIONS", include_in_schema=False, sync_to_thread=False, opt={"allow": allow}
    )
    return handler(answer_options)
