"""Save writes decided on the save's stream, never on the view (which may lag).

An update or delete reads the stream's last event, decides, and appends expecting the version it
read. With a precondition the writer named, a conflict is the answer (409); without one, another
writer got there first and the write is decided again on the new version (last writer wins).
A save never created is 404 whatever the precondition (RFC 9110 §13.2.1: the answer without it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.http.preconditions import Precondition
from domain.append import AppendRequest
from domain.context import RequestContext
from domain.errors import SaveConflict, VersionConflict
from domain.events import NO_STREAM, AppendResult, Event, ExpectedVersion, NewEvent
from domain.ports import EventSpine
from domain.saves import DELETED, created_event, decide_delete, decide_update, stream_of

MAX_ATTEMPTS = 50  # each conflict means another version of the save landed: someone made progress
_END = 10**18  # a version past any stream's: reading after it answers the version alone


async def create(
    spine: EventSpine, ctx: RequestContext, kind: str, save_id: str, name: str, body: Any
) -> AppendResult:
    """Version 1 of a new save; `SaveConflict` when the id exists (deleted or not)."""
    request = AppendRequest(
        stream=stream_of(kind, save_id),
        events=[created_event(kind, save_id, name, body)],
        expected_version=NO_STREAM,
        meta=ctx.event_meta(),
    )
    try:
        return await spine.append(ctx.partition, request)
    except VersionConflict as exc:
        raise SaveConflict(exc.stream, exc.expected, exc.actual) from exc


async def update(
    spine: EventSpine,
    ctx: RequestContext,
    kind: str,
    save_id: str,
    name: str,
    body: Any,
    wanted: Precondition | None,
) -> AppendResult:
    def decide(last: Event | None) -> NewEvent:
        # `If-Match: *` holds of a live save only: writing over a tombstone brings the save back
        precondition = _version(wanted, last, live=last is not None and last.type != DELETED)
        return decide_update(kind, save_id, name, body, last, precondition)

    return await _append_decided(spine, ctx, stream_of(kind, save_id), decide, wanted)


async def delete(
    spine: EventSpine, ctx: RequestContext, kind: str, save_id: str, wanted: Precondition | None
) -> AppendResult:
    def decide(last: Event | None) -> NewEvent:
        # deleting a tombstone is 404 whatever the precondition: `decide_delete` says so
        return decide_delete(kind, save_id, last, _version(wanted, last, live=True))

    return await _append_decided(spine, ctx, stream_of(kind, save_id), decide, wanted)


async def _append_decided(
    spine: EventSpine,
    ctx: RequestContext,
    stream: str,
    decide: Callable[[Event | None], NewEvent],
    wanted: Precondition | None,
) -> AppendResult:
    attempts = 0
    while True:
        last, version = await _last(spine, ctx, stream)
        event = decide(last)  # not found, or the precondition does not hold: nothing is appended
        expected: ExpectedVersion = version if version else NO_STREAM
        request = AppendRequest(
            stream=stream, events=[event], expected_version=expected, meta=ctx.event_meta()
        )
        try:
            return await spine.append(ctx.partition, request)
        except VersionConflict as exc:
            attempts += 1
            if wanted is not None or attempts >= MAX_ATTEMPTS:
                # the version decided on: the writer's own when a precondition held
                raise SaveConflict(stream, version, exc.actual) from exc


def _version(wanted: Precondition | None, last: Event | None, *, live: bool) -> int | None:
    """The version `decide_*` expects: none when unconditional, or when there is no save at all
    (that is 404, decided there)."""
    if wanted is None or last is None:
        return None
    return wanted.version_for(last.version, live=live)


async def _last(spine: EventSpine, ctx: RequestContext, stream: str) -> tuple[Event | None, int]:
    _, version = await spine.read_stream(ctx.partition, stream, after_version=_END, limit=1)
    if version == 0:
        return None, 0
    # The event's own version: the stream may have moved on since the first read, and the append
    # must then be refused for expecting the state this decision was made on.
    [last], _ = await spine.read_stream(ctx.partition, stream, after_version=version - 1, limit=1)
    return last, last.version
