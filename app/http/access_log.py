"""The access log: one line per request on the `spine.access` logger (JSON under `spine serve`).

Fields: `method`, `route` (the route's template, `/v1/memory/{key}`, or `unmatched` when no route
matched: an unknown path, a method the path does not serve), `status`, `latency_ms` (until the
last byte: a whole SSE stream), `tenant_id` and `user_id` (of a verified caller, else null),
`request_id`, and `error_code` (of a problem-details answer, else null). 5xx are logged at error,
everything else at info.

Never the path itself (it holds users' keys and document ids), the query string (where a stream
ticket travels) or a header: nothing a credential can ride in.
"""

from __future__ import annotations

import logging

import msgspec
from litestar.types import Message, Scope

log = logging.getLogger("spine.access")

UNMATCHED = "unmatched"
_PROBLEM = b"application/problem+json"
_MAX_PROBLEM = 16 * 1024  # problem details are small; a larger body is not read for its code


class _Problem(msgspec.Struct):
    error_code: str | None = None


_problem_decoder = msgspec.json.Decoder(_Problem)


class Answer:
    """What the app answered, as seen on its way out: the status, and a problem's `error_code`."""

    __slots__ = ("_body", "error_code", "status")

    def __init__(self) -> None:
        self.status = 500  # nothing was sent: the server answers 500 for an app that raised
        self.error_code: str | None = None
        self._body: bytearray | None = None

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = message.get("headers", ())
            if self.status >= 400 and any(
                k == b"content-type" and v.startswith(_PROBLEM) for k, v in headers
            ):
                self._body = bytearray()
        elif message["type"] == "http.response.body" and self._body is not None:
            self._body += message.get("body", b"")[: _MAX_PROBLEM - len(self._body)]
            if not message.get("more_body", False):
                self.error_code = _code_of(bytes(self._body))
                self._body = None


def log_request(scope: Scope, method: str, route: str, answer: Answer, seconds: float) -> None:
    level = logging.ERROR if answer.status >= 500 else logging.INFO
    if not log.isEnabledFor(level):
        return
    state = scope.get("state", {})
    ctx = state.get("ctx")  # the identity guard's RequestContext: a verified caller
    fields = {
        "method": method,
        "route": route,
        "status": answer.status,
        "latency_ms": round(seconds * 1000, 3),
        "tenant_id": getattr(ctx, "tenant_id", None),
        "user_id": getattr(ctx, "user_id", None),
        "request_id": state.get("request_id"),
        "error_code": answer.error_code,
    }
    log.log(level, "%s %s %d", method, route, answer.status, extra=fields)


def _code_of(body: bytes) -> str | None:
    try:
        return _problem_decoder.decode(body).error_code
    except msgspec.DecodeError:
        return None
