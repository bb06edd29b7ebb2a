"""`follow()`'s and `follow_flags()`'s decisions, without I/O: what to send, what each answer, line,
end or failure means. The two differ only in their path and in how a frame's data decodes.

It resumes for ever: a connection lost or refused, a server restarting, a stream the server ended
(it does when it drains to stop), a 5xx, 408 or 429 — each is followed by a reconnection with
`Last-Event-ID` = the last position yielded, after the answer's `Retry-After`, else a random delay
up to the server's `retry:` doubled per failure in a row (capped; reset by a connection that
opens). A 401 asks the token provider for a fresh token once; a 401 again with that fresh token,
and any other 4xx (400, 403, 404, 422: nothing a retry heals), raise `SpineClientError`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from typing import Any, Final, Generic, TypeVar

import httpx
import msgspec

from spine_client._calls import Call, call
from spine_client._events import stream_filters
from spine_client._retry import Done, Refresh, Step, Wait, full_jitter
from spine_client.errors import SpineClientError, SpineConnectionError, error_of, unexpected_answer
from spine_client.sse import SSEParser
from spine_client.types import Event, FlagChange

T = TypeVar("T")
Decode = Callable[[str, str], tuple[int, T]]
"""A frame's data and its `id:` → its position and what the follower yields."""

DEFAULT_RETRY_SECONDS: Final = 2.0
"""The reconnection delay until the server sends `retry:`."""

_event_decoder: Final = msgspec.json.Decoder(Event)
_frame_decoder: Final = msgspec.json.Decoder(dict[str, Any])
_SSE: Final = {"Accept": "text/event-stream"}


def stream_call(stream: str | None, types: Collection[str]) -> Call[httpx.Response]:
    params = stream_filters(stream, types)
    return call("GET", "/v1/events/stream", httpx.Response, params=params, headers=_SSE)


def flags_stream_call() -> Call[httpx.Response]:
    return call("GET", "/v1/flags/stream", httpx.Response, headers=_SSE)


def decode_event(data: str, last_event_id: str) -> tuple[int, Event]:
    event = _event_decoder.decode(data)
    return event.position, event


def decode_flag_change(data: str, last_event_id: str) -> tuple[int, FlagChange]:
    """A flag frame's data has no position: it is the frame's `id:`."""
    if not (last_event_id.isascii() and last_event_id.isdigit()):
        raise ValueError(f"a flag change without a position as its id: {last_event_id[:40]!r}")
    position = int(last_event_id)
    return position, msgspec.convert({**_frame_decoder.decode(data), "position": position}, FlagChange)


class Follower(Generic[T]):
    def __init__(
        self,
        request: Call[httpx.Response],
        decode: Decode[T],
        after: int,
        *,
        reconnect: bool,
        max_delay: float,
        can_refresh: bool,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.request = request
        self.last_position = after
        self._decode = decode
        self.retry_seconds = DEFAULT_RETRY_SECONDS
        self._reconnect = reconnect
        self._max_delay = max_delay
        self._can_refresh = can_refresh
        self._rand = rand
        self._failures = 0
        self._refreshed = False  # a token fetched after a 401, not yet accepted
        self._parser = SSEParser(str(after))

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": str(self.last_position)}

    def opened(self, response: httpx.Response) -> Step[None]:
        """Whether to read the stream (`Done`), or what to do instead; a non-200's body must be read."""
        status = response.status_code
        if status == 200:
            content_type = response.headers.get("content-type", "")
            if content_type.split(";")[0].strip() != "text/event-stream":
                raise SpineClientError(
                    200, "client.not_an_event_stream", f"unexpected content type {content_type!r}"
                )
            self._failures = 0
            self._refreshed = False
            self._parser = SSEParser(str(self.last_position))
            return Done(None)
        error = error_of(response)
        if status == 401 and self._can_refresh and not self._refreshed:
            self._refreshed = True
            return Refresh()
        if not self._reconnect or not (status >= 500 or status in (408, 425, 429)):
            raise error
        return self._wait(error.retry_after)

    def line(self, line: str) -> T | None:
        """What a line completes, if anything, and not yielded before (positions only grow)."""
        data = self._parser.feed(line)
        if self._parser.retry_ms is not None:
            self.retry_seconds = self._parser.retry_ms / 1000
        if data is None:
            return None
        try:
            position, item = self._decode(data, self._parser.last_event_id)
        except ValueError as exc:  # msgspec's DecodeError and ValidationError are ValueErrors
            raise unexpected_answer(200, self.request.describe(), exc) from exc
        if position <= self.last_position:
            return None
        self.last_position = position
        return item

    def ended(self) -> Wait | None:
        """The server ended the stream: reconnect after a while (None: stop, without `reconnect`)."""
        return self._wait(None) if self._reconnect else None

    def failed(self, exc: httpx.TransportError) -> Wait:
        """The connection failed or dropped (or was idle past the read timeout)."""
        if not self._reconnect:
            raise SpineConnectionError(f"{self.request.describe()} failed: {exc!r}") from exc
        return self._wait(None)

    def _wait(self, retry_after: float | None) -> Wait:
        self._failures += 1
        if retry_after is not None:
            return Wait(retry_after)
        return Wait(full_jitter(self.retry_seconds, self._max_delay, self._failures, self._rand))
