"""Request ids, lab warnings, request metrics and the access log, as plain ASGI: one function call
per request.

They wrap the whole app (`ObservedApp`), not a route: Litestar's middleware runs only once a route
matched, and an unknown path (404) or a method the path does not serve (405) must be counted and
logged like any other answer. The lab warning is a `before_send` hook (`send_lab_warnings`).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, cast

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import (
    HTTPScope,
    LifeSpanReceive,
    LifeSpanScope,
    LifeSpanSend,
    Message,
    Receive,
    Scope,
    Send,
)

from app.http.access_log import UNMATCHED, Answer, log_request
from app.http.metrics import Metrics
from app.lab_warnings import LabWarnings

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9_.:-]{1,128}$")
# Any token is a method to the HTTP parser: others are counted together, not one label each
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


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


def lab_warnings_of(scope: Scope) -> LabWarnings:
    """The lab fallbacks noted for this request (`Call.spine`, `Call.view`); stored on the scope once."""
    state = scope.setdefault("state", {})
    warnings: LabWarnings = state.setdefault("lab_warnings", LabWarnings())
    return warnings


async def send_lab_warnings(message: Message, scope: Scope) -> None:
    """`before_send` hook: a successful answer served by a lab fallback says so in `X-Spine-Warning`
    (loud, never silent). Error answers carry none."""
    if message["type"] != "http.response.start" or message["status"] >= 400:
        return
    warnings: LabWarnings | None = scope.get("state", {}).get("lab_warnings")
    header = None if warnings is None else warnings.header
    if header is not None:
        message["headers"] = [*message.get("headers", []), (b"x-spine-warning", header.encode())]


class ObservedApp(Litestar):
    """The Litestar app, measured and logged once per HTTP request, whatever answered it."""

    def __init__(self, *, metrics: Metrics, **config: Any) -> None:
        super().__init__(**config)
        self._metrics = metrics

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        if scope["type"] == ScopeType.HTTP:
            await self._observed(cast("HTTPScope", scope), cast("Receive", receive), cast("Send", send))
        else:
            await super().__call__(scope, receive, send)

    async def _observed(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        request_id_of(scope)
        started = time.perf_counter()
        answer = Answer()

        async def seen(message: Message) -> None:
            answer.see(message)
            await send(message)

        try:
            await super().__call__(scope, receive, seen)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = scope.get("path_template", UNMATCHED)
            self._metrics.http_seconds.labels(method, route, str(answer.status)).observe(seconds)
            log_request(scope, method, route, answer, seconds)
