"""The HTTP/1.1 connection `spine serve` runs: uvicorn's httptools protocol, made safe from slow clients.

uvicorn closes idle kept-alive connections, but waits for ever for a request head or body that
never completes (slowloris), and answers its connection cap in plain text. Here each connection
has one read deadline:
- from the connection's first moment, and from the first byte of each later request, the whole
  head must arrive within `header_timeout_seconds` and within `MAX_HEAD_BYTES`, else the
  connection is closed (431 for an oversized head);
- then each body chunk must follow the last within `body_timeout_seconds`. While the app is at
  work it answers that stall itself (408, `app.http.limits`); once it has answered, a client
  still owing body bytes is cut here.
The cap on open connections (`max_connections`, uvicorn's `limit_concurrency`) is answered as a
problem, 503 `concurrency.too_many_connections` with `Retry-After`, without entering the app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from http import HTTPStatus
from typing import Any, Literal

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.http.errors import PROBLEM_JSON, problem
from app.http.limits import BODY_RECEIVED
from app.settings import Settings

log = logging.getLogger(f"spine.{__name__}")

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; browsers send a few KiB
_WARN_EVERY_SECONDS = 10.0
_last_warning = -_WARN_EVERY_SECONDS

Headers = list[tuple[bytes, bytes]]


def _problem(status: int, error_code: str, message: str, *, retry: bool) -> tuple[Headers, bytes]:
    """Headers and body of a problem answer that closes the connection, shaped by the one mapper."""
    body = msgspec.json.encode(problem(status, error_code, message).content)
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", b"%d" % len(body))]
    if retry:
        headers.append((b"retry-after", b"1"))
    return [*headers, (b"connection", b"close")], body


_BUSY_HEADERS, _BUSY_BODY = _problem(
    503,
    "concurrency.too_many_connections",
    "the server has too many open connections; retry later",
    retry=True,
)


async def _too_many_connections(scope: Any, receive: Any, send: Any) -> None:
    """The app a request gets while the server is at its connection cap."""
    await send({"type": "http.response.start", "status": 503, "headers": _BUSY_HEADERS})
    await send({"type": "http.response.body", "body": _BUSY_BODY})


def _raw_answer(status: int, headers: Headers, body: bytes) -> bytes:
    """An answer written straight to the socket, where no request (and so no app) exists yet."""
    lines = [b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


_HEAD_TOO_LARGE = _raw_answer(
    431,
    *_problem(431, "request.head_too_large", f"the request head is over {MAX_HEAD_BYTES} bytes", retry=False),
)


def _warn_over_cap(cap: int) -> None:
    # At most once per interval: a flood must not also flood the log.
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY_SECONDS:
        _last_warning = now
        log.warning("connection cap reached: answering 503", extra={"max_connections": cap})


class SlowClientProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with a read deadline per request; see the module's docstring."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading: Literal["head", "body"] | None = None
        self._head_bytes = 0
        self._app = self.app
        # uvicorn would answer its cap with a plain-text 503: the cap is applied here instead.
        self._cap, self.limit_concurrency = self.limit_concurrency, None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading == "head":  # what the parser took without completing a head
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.transport.write(_HEAD_TOO_LARGE)
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._reading is None:  # a later request on a kept-alive connection
            self._expect("head")

    def on_headers_complete(self) -> None:
        self._expect("body")
        self.app = self._app
        cap = self._cap
        if cap is not None and (len(self.connections) >= cap or len(self.tasks) >= cap):
            self.app = _too_many_connections
            _warn_over_cap(cap)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._expect("body")  # the deadline runs between chunks
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._stop()
        cycle = self.cycle
        if cycle is not None:  # the app's receives of this request need no deadline any more
            cycle.scope["state"][BODY_RECEIVED] = True
        super().on_message_complete()

    def _expect(self, what: Literal["head", "body"]) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if what == "head" and self._reading != "head":
            self._head_bytes = 0
        self._reading = what
        timeout = self.header_timeout if what == "head" else self.body_timeout
        self._deadline = self.loop.call_later(timeout, self._expired)

    def _stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._reading = None

    def _expired(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if self._reading == "body" and cycle is not None and not cycle.response_complete:
            self._expect("body")  # the app still owns the request, and answers the stall itself
            return
        self._reading = None
        self.transport.close()


def http_protocol(settings: Settings) -> type[SlowClientProtocol]:
    """The protocol class uvicorn instantiates per connection, with this deployment's timeouts."""

    class SpineHttpProtocol(SlowClientProtocol):
        header_timeout = settings.header_timeout_seconds
        body_timeout = settings.body_timeout_seconds

    return SpineHttpProtocol
