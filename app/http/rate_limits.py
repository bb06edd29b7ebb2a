"""The rate-limit guard: each verified request counted against its caller's budget on Redis.

Runs in the one guard hook right after the identity guard (the token's tenant, the request's
project and user are known), before any body is parsed or handler runs. Routes that are public
(health, metrics, bootstrap), the schema, and the limits' own routes (`opt={"rate_limit": False}`:
limits set too low, or a limiter that is down, never keep an admin from changing them) are never
limited.

- A tenant without limits, or without one for the request's route class, is not limited: nothing
  is resolved, nothing is called.
- Limited: the `rate_limit` route of the tenant's partition (a Redis) is asked once (`EVALSHA`);
  over the limit is 429 `rate_limit.exceeded` with `Retry-After`. Both answers carry
  `RateLimit-Policy` and `RateLimit` (`send_rate_limit_headers`).
- No route: in lab no limit, and the answer's `X-Spine-Warning` says `rate_limit.missing_route`;
  in any other mode 503 `rate_limit.missing_route`.
- Redis unreachable (or its breaker open, or its password's secret unreadable): the tenant's
  `on_unavailable` for the route class decides: `open` admits (logged), `closed` answers 503
  (`rate_limit.backend_unavailable`, or the secret's code). Defaults: reads and SSE open, writes
  and analytics ingest closed.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Message, Scope

from app.backends import RATE_LIMIT
from app.http.middleware import lab_warnings_of
from domain.backend_url import Backend
from domain.context import RequestContext
from domain.errors import BackendUnavailable, RateLimitExceeded, SecretUnavailable
from domain.rate_limits import bucket_key, headers_of, route_class_of
from domain.routing import resolve

log = logging.getLogger(f"spine.{__name__}")

_HEADERS = "rate_limit_headers"


async def rate_limit_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    ctx: RequestContext | None = connection.scope["state"].get("ctx")
    if ctx is None or handler.opt.get("rate_limit") is False:  # public, schema, OPTIONS; the limits' routes
        return
    services = connection.app.state.services
    projector = services.control.projector
    limits = projector.state.limits.get(ctx.tenant_id)
    if limits is None:
        return
    route_class = route_class_of(str(connection.scope.get("method", "")), handler.opt)
    limit = limits.limit_for(ctx.project_id, ctx.user_id, route_class)
    if limit is None:
        return
    assert ctx.mode is not None  # the identity guard sets it from the tenant record
    resolution = resolve(projector.registry, RATE_LIMIT, ctx.tenant_id, ctx.env, ctx.project_id, ctx.mode)
    if resolution.route is None:  # lab: no limit, said in the answer
        lab_warnings_of(connection.scope).view(resolution.warning)
        return
    route = resolution.route
    try:
        limiter = await services.backends.rate_limiter(
            Backend(backend_type=route.backend_type, config=route.config)
        )
        verdict = await limiter.admit(
            bucket_key(ctx.tenant_id, ctx.project_id, ctx.user_id, route_class, limit), limit
        )
    except (BackendUnavailable, SecretUnavailable) as exc:  # unreachable, or its password unreadable
        if not limits.fails_open(route_class):
            raise
        log.warning(
            "rate limiter unavailable: admitted (on_unavailable open)",
            extra={"tenant_id": ctx.tenant_id, "route_class": route_class, "error": exc.error_code},
        )
        return
    connection.scope["state"][_HEADERS] = headers_of(route_class, limit, verdict)
    if not verdict.allowed:
        raise RateLimitExceeded(route_class, limit.limit, limit.window_seconds, verdict.retry_after)


async def send_rate_limit_headers(message: Message, scope: Scope) -> None:
    """Answer hook: a limited request's answer, admitted or 429, states its budget."""
    if message["type"] != "http.response.start":
        return
    headers: dict[str, str] | None = scope.get("state", {}).get(_HEADERS)
    if headers:
        extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        message["headers"] = [*message.get("headers", []), *extra]
