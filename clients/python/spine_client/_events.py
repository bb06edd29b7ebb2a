"""The event log's calls: append, read a partition by cursor, read one stream, stream tickets."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import msgspec

from spine_client._calls import Call, call, new_event_id, present, segment
from spine_client.types import AppendResult, ExpectedVersion, NewEvent, Page, StreamPage, StreamTicket


def append(
    stream: str,
    events: Sequence[NewEvent | Mapping[str, Any]],
    *,
    expected_version: ExpectedVersion | None = None,
) -> Call[AppendResult]:
    """Append `events` to `stream`, atomically. Each event without an `id` gets one here, before the
    first try: a retry (after a lost answer, a 503) then stores nothing twice and answers the
    original positions."""
    sent = [_with_id(event) for event in events]
    return call(
        "POST",
        "/v1/events",
        AppendResult,
        json=present(stream=stream, events=sent, expected_version=expected_version),
        idempotent=True,
    )


def read(
    after: int = 0, limit: int = 100, stream: str | None = None, types: Collection[str] = ()
) -> Call[Page]:
    """One page of the partition after the cursor `after`; continue from `page.next`."""
    params = {"after": after, "limit": limit, **stream_filters(stream, types)}
    return call("GET", "/v1/events", Page, params=params)


def read_stream(stream: str, *, after_version: int = 0, limit: int = 100) -> Call[StreamPage]:
    """One stream's events after a version (404 `stream.not_found` for a stream never written)."""
    params = {"after_version": after_version, "limit": limit}
    return call("GET", f"/v1/streams/{segment(stream)}", StreamPage, params=params)


def create_stream_ticket(*, ttl_seconds: int | None = None) -> Call[StreamTicket]:
    """A short-lived, read-only ticket for `GET /v1/events[/stream]?ticket=…`, for a browser's
    `EventSource`, which cannot send the token."""
    return call("POST", "/v1/stream-tickets", StreamTicket, json=present(ttl_seconds=ttl_seconds))


def stream_filters(stream: str | None, types: Collection[str]) -> dict[str, Any]:
    return {"stream": stream, "type": list(types) or None}


def _with_id(event: NewEvent | Mapping[str, Any]) -> dict[str, Any]:
    sent = msgspec.to_builtins(event) if isinstance(event, NewEvent) else dict(event)
    if sent.get("id") is None:
        sent["id"] = new_event_id()
    return sent
