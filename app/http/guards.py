"""The app's guards, run in order by one `before_request` hook instead of Litestar's `guards=`.

Litestar hands every guard a copy of the route handler (`copy.copy`, some 60 attributes set one by
one), for each guard on each request: with three guards that was an eighth of the CPU of a request
that does nothing else (bench/README.md, `bench_http.py`). The hook calls the same guard functions
with the handler itself, which they only read. Like guards, it runs before the handler's
parameters and body are parsed, and whatever it raises is answered by the one error mapper.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def run_guards(*guards: Guard) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """A `before_request` hook that runs `guards` in order, each with the request's route handler."""

    async def guarded(request: Request[Any, Any, Any]) -> None:
        handler: BaseRouteHandler = request.scope["route_handler"]
        for guard in guards:
            await guard(request, handler)

    return guarded
