"""Request ids, lab warnings, request metrics and the access log, as plain ASGI: one function call
per request.

They wrap the whole app (`ObservedApp`), not a route: Litestar's middleware runs only once a route
matched, and an unknown path (404) or a method the path does not serve (405) must be counted and
logged like any other answer. The headers every answer may carry (`X-Request-Id`, the lab warning,
CORS) are added by answer hooks that `ObservedApp` runs on each answer's head: they have the
signature of Litestar's `before_send` hooks, which would run each of them on every message of an
answer, through one more wrapper of `send`.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
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
from prometheus_client import Histogram

from app.http.access_log import UNMATCHED, Answer, log_request
from app.http.metrics import Metrics
from app.lab_warnings import LabWarnings

_ids = random.Random()  # noqa: S311  # seeded from the OS once per process; request ids are not secrets
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9_.:-]{1,128}$")
# Any token is a method to the HTTP parser: others are counted together, not one label each
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def request_id_of(scope: Scope) -> str:
    """The client's `X-Request-Id` when it is sane, else a new one; stored on the scope once."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        sent = next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), b"")
        # 32 hex digits, as a uuid4's: an id, not a secret (a client may choose its own). Not from
        # os.urandom, which lets go of the GIL: the spine's writer thread takes it, and the event
        # loop waits up to a switch interval to have it back, on every request.
        state["request_id"] = sent.decode() if _REQUEST_ID.match(sent) else f"{_ids.getrandbits(128):032x}"
    request_id: str = state["request_id"]
    return request_id


async def echo_request_id(message: Message, scope: Scope) -> None:
    """Answer hook: every answer, errors and 404s included, carries `X-Request-Id`."""
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
    """Answer hook: a successful answer served by a lab fallback says so in `X-Spine-Warning`
    (loud, never silent). Error answers carry none."""
    if message["type"] != "http.response.start" or message["status"] >= 400:
        return
    warnings: LabWarnings | None = scope.get("state", {}).get("lab_warnings")
    header = None if warnings is None else warnings.header
    if header is not None:
        message["headers"] = [*message.get("headers", []), (b"x-spine-warning", header.encode())]


AnswerHook = Callable[[Message, Scope], Awaitable[None]]
"""Called with each answer's `http.response.start` message, which it may change, and the scope."""


class ObservedApp(Litestar):
    """The Litestar app, measured and logged once per HTTP request, whatever answered it; its
    `answer_hooks` run, in order, on the head of every answer."""

    def __init__(self, *, metrics: Metrics, answer_hooks: Sequence[AnswerHook] = (), **config: Any) -> None:
        super().__init__(**config)
        self._metrics = metrics
        self._answer_hooks = tuple(answer_hooks)
        # Each (method, route, status) histogram child, looked up once: `labels()` takes a lock and
        # checks its arguments on every call. Bounded: methods are 10 at most, routes are templates.
        self._latency: dict[tuple[str, str, int], Histogram] = {}

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
        hooks = self._answer_hooks

        async def seen(message: Message) -> None:
            if message["type"] == "http.response.start":
                for hook in hooks:
                    await hook(message, scope)
            answer.see(message)
            await send(message)

        try:
            await super().__call__(scope, receive, seen)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = scope.get("path_template", UNMATCHED)
            key = (method, route, answer.status)
            latency = self._latency.get(key)
            if latency is None:
                latency = self._latency[key] = self._metrics.http_seconds.labels(
                    method, route, str(answer.status)
                )
            latency.observe(seconds)
            log_request(scope, method, route, answer, seconds)
