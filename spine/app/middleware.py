"""Request ids and request metrics, as plain ASGI so they cost one function call per request."""

from __future__ import annotations

import re
import time
import uuid

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from spine.app.metrics import Metrics

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9_.:-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    """The client's `X-Request-Id` when it is sane, else a new one; stored on the scope once."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        sent = next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), b"")
        state["request_id"] = sent.decode() if _REQUEST_ID.match(sent) else uuid.uuid4().hex
    request_id: str = state["request_id"]
    return request_id


async def echo_request_id(message: Message, scope: Scope) -> None:
    """`before_send` hook: every answer, errors and 404s included, carries `X-Request-Id`."""
    if message["type"] == "http.response.start":
        headers = list(message.get("headers", []))
        headers.append((b"x-request-id", request_id_of(scope).encode()))
        message["headers"] = headers


def metrics_middleware(metrics: Metrics) -> type:
    class _Metered:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await self.app(scope, receive, send)
                return
            request_id_of(scope)
            started = time.perf_counter()
            status = 500

            async def send_and_record(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_and_record)
            finally:
                route = scope.get("path_template", "unmatched")
                metrics.http_seconds.labels(scope["method"], route, str(status)).observe(
                    time.perf_counter() - started
                )

    return _Metered
