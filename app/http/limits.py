"""Slow clients and per-tenant concurrency, inside the app.

Two rules every request passes through, in one plain ASGI middleware:
- **Body timeout**: a request body that pauses longer than `body_timeout_seconds` between two
  chunks is answered 408 `request.timeout` with `Connection: close`. Only the body is timed: once
  it is complete, a receive (an SSE follower listening for the client to leave) waits untimed.
- **Per-tenant caps**: a verified caller takes a slot of its tenant's requests in flight, and an
  SSE follower (a route with `opt={"follower": True}`) one of its followers too; over a cap, 429
  `concurrency.too_many_requests` / `…too_many_followers` with `Retry-After`. Slots are given back
  when the middleware's call ends, which is after the whole response, streams included, whatever
  ended it (answer, error, client gone, drain).

The connection half (request-head timeout, the cap on open connections) is `app.http.connections`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal, cast

import anyio
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from app.settings import Settings
from domain.errors import RequestTimeout, TooManyConcurrent

Slot = Literal["requests", "followers"]

_ADMISSION = "spine.admission"
_CLOSE = (b"connection", b"close")
BODY_RECEIVED = "spine.body_received"
"""Set in the request scope's state by the server's protocol (`app.http.connections`) once the
whole body has arrived: from then on no receive can wait on the client, so none is timed."""


class TenantSlots:
    """How many requests and SSE followers each tenant has open, against the caps.

    Used from the event loop's thread only, so plain counters need no lock.
    """

    def __init__(self, *, max_requests: int, max_followers: int) -> None:
        self._caps: dict[Slot, int] = {"requests": max_requests, "followers": max_followers}
        self._open: Counter[tuple[Slot, str]] = Counter()

    def take(self, slot: Slot, tenant_id: str) -> None:
        """Raises `TooManyConcurrent` when the tenant holds all its slots of this kind."""
        cap = self._caps[slot]
        if self._open[slot, tenant_id] >= cap:
            raise TooManyConcurrent(slot, tenant_id, cap)
        self._open[slot, tenant_id] += 1

    def give_back(self, slot: Slot, tenant_id: str) -> None:
        self._open[slot, tenant_id] -= 1
        if self._open[slot, tenant_id] <= 0:
            del self._open[slot, tenant_id]

    def open(self, slot: Slot, tenant_id: str) -> int:
        return self._open[slot, tenant_id]


class _Admission:
    """The slots one request holds, given back together when it ends."""

    __slots__ = ("_held", "_slots")

    def __init__(self, slots: TenantSlots) -> None:
        self._slots = slots
        self._held: list[tuple[Slot, str]] = []

    def take(self, slot: Slot, tenant_id: str) -> None:
        self._slots.take(slot, tenant_id)
        self._held.append((slot, tenant_id))

    def release(self) -> None:
        for slot, tenant_id in self._held:
            self._slots.give_back(slot, tenant_id)
        self._held.clear()


def admit(connection: ASGIConnection[Any, Any, Any, Any], tenant_id: str, opt: dict[str, Any]) -> None:
    """Take the verified caller's slots: one request, and one follower on a follower route.

    Called as soon as the token is verified: a tenant named by a token nobody checked could have
    its slots taken by anyone.
    """
    admission: _Admission | None = connection.scope.get("state", {}).get(_ADMISSION)
    if admission is None:  # not under `limits_middleware`: nothing to count against
        return
    admission.take("requests", tenant_id)
    if opt.get("follower"):
        admission.take("followers", tenant_id)


class _BodyDeadline:
    """`receive` with a deadline between body chunks; `send` that closes after a 408."""

    __slots__ = ("_complete", "_receive", "_seconds", "_send", "_started", "_state", "_timed_out")

    def __init__(self, receive: Receive, send: Send, seconds: float, state: dict[str, Any]) -> None:
        self._receive = receive
        self._send = send
        self._seconds = seconds
        self._state = state
        self._complete = False
        self._started = False
        self._timed_out = False

    async def receive(self) -> ReceiveMessage:
        if self._complete:
            return await self._receive()
        if self._state.get(BODY_RECEIVED):  # the usual small body, read with the head: nothing to time
            message = await self._receive()
            if message["type"] != "http.request" or not cast(dict[str, Any], message).get("more_body"):
                self._complete = True
            return message
        with anyio.move_on_after(self._seconds):
            message = await self._receive()
            if message["type"] != "http.request" or not cast(dict[str, Any], message).get("more_body"):
                self._complete = True
            return message
        self._complete = True
        if self._started:
            # Too late for a 408 (a stream is under way): the app ends as if the client had left.
            return {"type": "http.disconnect"}
        self._timed_out = True
        raise RequestTimeout(self._seconds)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._started = True
            if self._timed_out:
                # The rest of the body may still come: the connection cannot carry another request.
                message["headers"] = [*message.get("headers", ()), _CLOSE]
        await self._send(message)


def limits_middleware(settings: Settings) -> type:
    """The middleware, with one `TenantSlots` for the app it is installed in."""
    slots = TenantSlots(
        max_requests=settings.max_requests_per_tenant, max_followers=settings.max_followers_per_tenant
    )
    body_timeout_seconds = settings.body_timeout_seconds

    class _Limits:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await self.app(scope, receive, send)
                return
            admission = _Admission(slots)
            state = scope.setdefault("state", {})
            state[_ADMISSION] = admission
            try:
                if state.get(BODY_RECEIVED):  # the usual small body, read with the head: nothing to time
                    await self.app(scope, receive, send)
                else:
                    body = _BodyDeadline(receive, send, body_timeout_seconds, state)
                    await self.app(scope, body.receive, body.send)
            finally:
                admission.release()

    return _Limits
