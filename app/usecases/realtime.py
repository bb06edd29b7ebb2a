"""Threads and canvases: creations, registry changes and messages, each decided on the thread's
stream, never on the view (which may lag).

A decision reads the registry entry in force from the log (the stream's last event and, when it
is a message, the registry event it points to), decides, and appends expecting the stream's
version read; when another writer got there first (a message, a change) it reads and decides
again. A precondition (`If-Match`, `expected_version`) names the registry's version, not the
stream's: a message posted since never makes it fail, a registry change does (409, at once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from app.http.preconditions import Precondition
from app.usecases.unit_of_work import MAX_ATTEMPTS, append_expecting, event_at, last_event
from domain.context import RequestContext
from domain.errors import PreconditionFailed, ThreadConflict, ThreadExists, VersionConflict
from domain.events import NO_STREAM, AppendResult, Event, NewEvent
from domain.ids import new_event_id
from domain.partition import Partition
from domain.ports import EventSpine
from domain.realtime import (
    MESSAGE_TYPES,
    REGISTRY_TYPES,
    Kind,
    NewMessage,
    NewThread,
    Patch,
    ThreadState,
    authorize,
    check_member,
    decide_changes,
    decide_create,
    decide_message,
    registry_version_of,
    state_of,
    stream_of,
)


class Current(NamedTuple):
    """A thread as its log stands: the registry entry in force (None: never created), the stream's
    version, and the position of its last event (what a write that appends nothing answers)."""

    state: ThreadState | None
    version: int
    position: int


class Written(NamedTuple):
    """What a write appended (the types, in order; none when it changed nothing), the registry's
    version after it, and the position to read it at."""

    types: list[str]
    version: int
    position: int


class Messages(NamedTuple):
    events: list[Event]
    next: int | None  # the version to read after for more; None: that was the last message
    version: int  # the stream's


async def current(spine: EventSpine, partition: Partition, stream: str) -> Current:
    """The registry entry in force, read from the log: at most two reads."""
    last, version = await last_event(spine, partition, stream)
    if last is None:
        return Current(None, 0, 0)
    source: Event | None = last
    if last.type not in REGISTRY_TYPES:
        pointer = registry_version_of(last)
        source = await event_at(spine, partition, stream, pointer) if 0 < pointer <= version else None
    # A stream that holds no registry event (written before these routes owned its name) is no thread.
    found = state_of(source) if source is not None and source.type in REGISTRY_TYPES else None
    return Current(found, version, last.position)


async def create(spine: EventSpine, ctx: RequestContext, kind: Kind, new: NewThread) -> tuple[str, Written]:
    """A new thread or canvas, owned by the caller, begun on the caller's surface; its id is the
    one asked for (409 `realtime.already_exists` when taken) or a new UUIDv7."""
    owner, surface = _caller(ctx), ctx.surface_id
    assert surface is not None  # a data route: the identity guard made sure of it
    ident = new.id or new_event_id()
    event = decide_create(kind, ident, new, owner=owner, surface_id=surface)
    try:
        result = await append_expecting(spine, ctx, stream_of(kind, ident), [event], NO_STREAM)
    except VersionConflict as exc:
        raise ThreadExists(kind, ident) from exc
    return ident, Written([event.type], result.stream_version, result.last_position)


async def change(
    spine: EventSpine, ctx: RequestContext, kind: Kind, ident: str, patch: Patch, wanted: Precondition | None
) -> Written:
    """Registry changes by the owner (or a tenant admin's transfer), in one atomic append."""
    caller, admin = _caller(ctx), "admin" in ctx.roles

    def decide(now: Current) -> list[NewEvent]:
        authority = authorize(now.state, kind, ident, caller, admin=admin, patch=patch)
        assert now.state is not None  # `authorize` raised otherwise
        _check(wanted, now.state.version, stream_of(kind, ident))
        return decide_changes(now.state, patch, authority)

    now, result = await _deciding(spine, ctx, stream_of(kind, ident), decide)
    if result is None:  # nothing changed: the entry as it is
        assert now.state is not None
        return Written([], now.state.version, now.position)
    return Written(result.types, result.answer.stream_version, result.answer.last_position)


async def post_message(
    spine: EventSpine, ctx: RequestContext, kind: Kind, ident: str, message: NewMessage
) -> tuple[str, AppendResult]:
    """A member's message, appended after the stream's last event; its id (sent, else a new
    UUIDv7) makes a retry answer the original."""
    caller, event_id = _caller(ctx), message.id or new_event_id()

    def decide(now: Current) -> list[NewEvent]:
        return [decide_message(now.state, kind, ident, caller, message, event_id)]

    _, result = await _deciding(spine, ctx, stream_of(kind, ident), decide)
    assert result is not None  # a message is always one event
    return event_id, result.answer


async def read_messages(
    spine: EventSpine, ctx: RequestContext, kind: Kind, ident: str, *, after: int, limit: int
) -> Messages:
    """Members' reading of the messages after the version `after`, from the log, at most `limit`."""
    stream = stream_of(kind, ident)
    now = await current(spine, ctx.partition, stream)
    check_member(now.state, kind, ident, _caller(ctx))
    found: list[Event] = []
    cursor, version = after, now.version
    while cursor < version:
        events, version = await spine.read_stream(ctx.partition, stream, after_version=cursor, limit=limit)
        if not events:
            break
        for event in events:
            if event.type in MESSAGE_TYPES:
                if len(found) == limit:  # one more than a page holds: there is a next page
                    return Messages(found, found[-1].version, version)
                found.append(event)
        cursor = events[-1].version
    return Messages(found, None, version)


class _Appended(NamedTuple):
    types: list[str]
    answer: AppendResult


async def _deciding(
    spine: EventSpine, ctx: RequestContext, stream: str, decide: Callable[[Current], Sequence[NewEvent]]
) -> tuple[Current, _Appended | None]:
    """Read the thread, `decide`, append expecting the version read; on a race, again. A domain
    error of `decide` (a refusal, a precondition) ends it at once; nothing decided, nothing appended."""
    for remaining in reversed(range(MAX_ATTEMPTS)):
        now = await current(spine, ctx.partition, stream)
        events = decide(now)
        if not events:
            return now, None
        try:
            answer = await append_expecting(spine, ctx, stream, events, now.version or NO_STREAM)
        except VersionConflict as exc:
            if remaining:
                continue
            raise ThreadConflict(stream, exc.expected, exc.actual) from exc
        return now, _Appended([event.type for event in events], answer)
    raise AssertionError("MAX_ATTEMPTS is at least 1")


def _check(wanted: Precondition | None, version: int, stream: str) -> None:
    """The writer's precondition, on the registry's version (the thread exists: `*` holds)."""
    if wanted is None or wanted.versions is None:
        return
    if not wanted.versions:
        raise PreconditionFailed('If-Match compares strong tags: W/"N" never matches; send "N"')
    if version not in wanted.versions:
        raise ThreadConflict(stream, min(wanted.versions), version)


def _caller(ctx: RequestContext) -> str:
    assert ctx.user_id is not None  # a data route: the token names its user
    return ctx.user_id
