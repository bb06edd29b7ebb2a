"""CORS from the control plane's data: the origins an app lists may call Spine from a browser.

Litestar's `CORSConfig` knows a fixed list of origins; Spine's are records (`PUT
/v1/tenants/{t}/apps/{app_id}` with `origins`), indexed by origin in the control plane's
projection (`ControlPlane.tenants_listing`), which every process keeps caught up with the system
partition. A lookup reads that index and nothing else: an unlisted origin never costs a read of
the system spine, and an origin added elsewhere is seen once the projection follows (a moment).

- **Preflights** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`, no token) from an
  origin some app of any tenant lists: the origin, the path's methods (its `Allow`), the request
  headers Spine reads and a max age (`preflight_headers`, called by the OPTIONS handlers of
  `app.http.allow`).
- **Real answers** (`send_cors_headers`, run by `ObservedApp` on every answer start, so SSE answers too): the origin and
  the headers a page may read, when the verified context's tenant (`connection.state.ctx`,
  whatever made it: a bearer token or a stream ticket) has an app listing the origin.
  An answer given before identity is known (401: a missing or expired token or ticket; the
  public routes) carries them when *some* app lists the origin, as the preflight does, which
  already tells that much: a page must be able to read a 401 to refresh its credential. This is a
  deliberate reading of DESIGN.md's "only when the token's tenant lists that origin".
Any other origin gets no CORS header at all. Credentials are bearer tokens, never cookies, so
`Access-Control-Allow-Credentials` is never sent.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request
from litestar.types import Message, Scope

from domain.context import RequestContext
from domain.control_plane import ControlPlane

ALLOWED_HEADERS: Final = ", ".join(
    (
        "Authorization",
        "Content-Type",
        "Last-Event-ID",
        "If-Match",
        "X-Project-Id",
        "X-Surface-Id",
        "X-App-Id",
        "X-Env",
        "X-Spine-Min-Position",
        "X-Request-Id",
        # an object's conditional and ranged reads and writes (`/v1/objects`)
        "If-None-Match",
        "If-Range",
        "Range",
    )
)
# Retry-After too: a page's client waits as a 429 or 503 asks before it retries.
# Content-Range and Accept-Ranges: a page reading an object by range needs them.
EXPOSED_HEADERS: Final = (
    "X-Spine-Position, X-Spine-Warning, ETag, X-Request-Id, Retry-After, Content-Range, Accept-Ranges"
)
MAX_AGE_SECONDS: Final = 600


def preflight_headers(request: Request[Any, Any, Any], allow: str) -> dict[str, str]:
    """The CORS headers of the answer to an OPTIONS request on a path that serves `allow`: none
    unless it is a preflight from an origin some app lists."""
    origin = _origin(request.scope)
    if origin is None or not _is_preflight(request.scope):
        return {}
    control = _control(request.scope)
    if control is None or not control.tenants_listing(origin):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": allow,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
        "Vary": "Origin",
    }


async def send_cors_headers(message: Message, scope: Scope) -> None:
    """Run on each answer start (`ObservedApp`): the CORS headers of a real answer (preflights have theirs)."""
    if message["type"] != "http.response.start":
        return
    origin = _origin(scope)
    if origin is None or _is_preflight(scope):
        return
    headers = message.get("headers", [])
    control = _control(scope)
    if control is None or any(name.lower() == b"access-control-allow-origin" for name, _ in headers):
        return  # a route that answers CORS itself (`GET /v1/client.js`: any origin) keeps its own
    listing = control.tenants_listing(origin)
    ctx: RequestContext | None = scope.get("state", {}).get("ctx")
    # The caller's tenant once identity is known; before that (a 401), any tenant: see above.
    allowed = ctx.tenant_id in listing if ctx is not None else bool(listing)
    if not allowed:
        return
    message["headers"] = [
        *headers,
        (b"access-control-allow-origin", origin.encode()),
        (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
        (b"vary", b"Origin"),
    ]


def _origin(scope: Scope) -> str | None:
    """The request's `Origin`, when it is sent once (a second one would make the match a guess)."""
    sent = [value for name, value in scope.get("headers", ()) if name == b"origin"]
    return sent[0].decode("latin-1") if len(sent) == 1 else None


def _is_preflight(scope: Scope) -> bool:
    return scope.get("method") == "OPTIONS" and any(
        name == b"access-control-request-method" for name, _ in scope.get("headers", ())
    )


def _control(scope: Scope) -> ControlPlane | None:
    """The control plane's projection; None before the app's lifespan started its services."""
    services = scope["app"].state.get("services")
    return None if services is None else services.control.state
