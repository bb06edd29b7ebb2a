"""The rules of an append, shared by every spine adapter.

An adapter reads the current state (partition head, stream version, already-stored ids) inside
its transaction and asks `decide_append` what to write. Keeping the rules here means the memory,
SQLite and cloud adapters cannot drift apart on idempotency or optimistic concurrency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

from domain.errors import IdempotencyConflict, InvalidRequest, PositionConflict, VersionConflict
from domain.events import ANY, NO_STREAM, AppendResult, Event, EventMeta, ExpectedVersion, NewEvent
from domain.ids import new_event_id

MAX_EVENTS_PER_APPEND = 10_000


class AppendRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One atomic append: every event lands in `stream`, or none does."""

    stream: str
    events: list[NewEvent]
    expected_version: ExpectedVersion = ANY
    meta: EventMeta
    # Only `spine replay --into` sets these: a copied event keeps the time its first log recorded,
    # and lands at its position or not at all (so copies can be pipelined without reordering).
    recorded_at: datetime | None = None
    expected_position: int | None = None


class StoredId(msgspec.Struct, frozen=True):
    """Where an already-stored event id lives, for idempotent retries."""

    id: str
    stream: str
    version: int
    position: int


def validate(request: AppendRequest) -> None:
    """Reject batches no backend should see: empty, oversized, or with a repeated id."""
    if not request.events:
        raise InvalidRequest("an append needs at least one event")
    if len(request.events) > MAX_EVENTS_PER_APPEND:
        raise InvalidRequest(f"an append takes at most {MAX_EVENTS_PER_APPEND} events")
    ids = client_ids(request)
    if len(ids) != len(set(ids)):
        raise InvalidRequest("event ids must be unique within an append")


def client_ids(request: AppendRequest) -> list[str]:
    """The ids the client chose; only these can collide with stored events (ours are UUIDv7)."""
    return [event.id for event in request.events if event.id is not None]


def decide_append(
    request: AppendRequest,
    *,
    head: int,
    stream_version: int,
    stored: Sequence[StoredId],
    recorded_at: datetime,
    new_id: Callable[[], str] = new_event_id,
) -> tuple[list[Event], AppendResult]:
    """Decide what a validated append writes, given the state read in the same transaction.

    Returns the events to insert (empty when every id is already stored in this stream: a retry,
    answered with the stored positions) and the result to acknowledge. Raises
    `IdempotencyConflict` when only part of the batch is stored, or stored in another stream,
    `PositionConflict` when `expected_position` is not the next position, and `VersionConflict`
    when `expected_version` does not hold. `new_id` names the events that came without an id.
    """
    if stored:
        return [], _replayed(request, stored)
    if request.expected_position is not None and request.expected_position != head + 1:
        raise PositionConflict(request.expected_position, head + 1)
    _check_expected(request.stream, request.expected_version, stream_version)
    events = [
        Event(
            id=new.id or new_id(),
            type=new.type,
            stream=request.stream,
            version=stream_version + offset,
            position=head + offset,
            data=new.data,
            meta=request.meta,
            recorded_at=request.recorded_at or recorded_at,
        )
        for offset, new in enumerate(request.events, start=1)
    ]
    result = AppendResult(
        first_position=head + 1, last_position=head + len(events), stream_version=stream_version + len(events)
    )
    return events, result


def _replayed(request: AppendRequest, stored: Sequence[StoredId]) -> AppendResult:
    if len(stored) != len(request.events) or any(s.stream != request.stream for s in stored):
        raise IdempotencyConflict(request.stream, sorted(s.id for s in stored))
    return AppendResult(
        first_position=min(s.position for s in stored),
        last_position=max(s.position for s in stored),
        stream_version=max(s.version for s in stored),
    )


def _check_expected(stream: str, expected: ExpectedVersion, current: int) -> None:
    if expected == ANY:
        return
    wanted = 0 if expected == NO_STREAM else expected
    if current != wanted:
        raise VersionConflict(stream, expected, current)
