"""The unit of work of every decision: read the stream, decide, append expecting what was read.

A decision is made on the log, never on a view (which may lag): read the stream's last event,
decide which event to append, and append it expecting the version that was read. When another
writer got there first the spine refuses the append (`VersionConflict`), and the unit of work reads
and decides again on the new state, a bounded number of times. A writer that named the version it
read (a precondition: `If-Match`, `expected_version`, see `app.http.preconditions`) is answered
with the conflict at once.

`retrying` is the bounded loop itself; the control plane, which decides on its projected state
rather than on one stream, runs its attempts through it too. `expected_at` is the expectation of a
write that decides nothing (it replaces whatever is there): `any`, or what its precondition names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from app.http.preconditions import Precondition
from domain.append import AppendRequest
from domain.context import RequestContext
from domain.errors import VersionConflict
from domain.events import ANY, NO_STREAM, AppendResult, Event, ExpectedVersion, NewEvent
from domain.partition import Partition
from domain.ports import EventSpine

MAX_ATTEMPTS: Final = 50  # each conflict means another writer's event landed: someone made progress
_END: Final = 10**18  # a version past any stream's: reading after it answers the version alone

T = TypeVar("T")
Decide = Callable[[Event | None], NewEvent]
"""The decision on a stream's last event (None before the first): the event to append, or a
domain error (not found, limit exceeded…) and nothing is appended."""
Live = Callable[[Event], bool]
"""Whether a stream's last event leaves the resource with a current representation (a tombstone
does not): what `If-Match: *` asks for of a write that replaces it."""


def _always(_: Event) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Decided:
    """What a unit of work appended: the decided event, the spine's answer, and the version the
    decision was made on."""

    event: NewEvent
    result: AppendResult
    version: int

    @property
    def replayed(self) -> bool:
        """The event's id was stored before (a retry): the spine answered the original event."""
        return self.result.stream_version <= self.version


async def decide_and_append(
    spine: EventSpine,
    ctx: RequestContext,
    stream: str,
    decide: Decide,
    *,
    precondition: Precondition | None = None,
    conflict: type[VersionConflict] = VersionConflict,
    attempts: int = MAX_ATTEMPTS,
) -> Decided:
    """Read `stream`'s last event, `decide`, and append the event expecting the version read.

    With a `precondition` (the versions the writer read) the append expects the version it names
    instead (`Precondition.version_for`), and a conflict is the answer; without one, a conflict
    means deciding again, up to `attempts` times. `decide` runs first, so its answer (404: nothing
    to update or delete; 412: a tombstone under `*`) comes before the append's (RFC 9110 §13.2.1).
    A conflict that ends the work is raised as `conflict` (the use case's own error code).
    """

    async def attempt() -> Decided:
        last, version = await last_event(spine, ctx.partition, stream)
        event = decide(last)
        expected: ExpectedVersion = version or NO_STREAM
        if precondition is not None:
            expected = precondition.version_for(version, live=last is not None)
        result = await append_expecting(spine, ctx, stream, [event], expected, conflict=conflict)
        return Decided(event=event, result=result, version=version)

    return await retrying(attempt, attempts=1 if precondition is not None else attempts)


async def retrying(attempt: Callable[[], Awaitable[T]], *, attempts: int) -> T:
    """Run `attempt` (read, decide, append) again while it meets a `VersionConflict`: at most
    `attempts` times in all, and the last conflict is raised."""
    for remaining in reversed(range(attempts)):
        try:
            return await attempt()
        except VersionConflict:
            if not remaining:
                raise
    raise AssertionError("attempts must be at least 1")


async def append_expecting(
    spine: EventSpine,
    ctx: RequestContext,
    stream: str,
    events: Sequence[NewEvent],
    expected: ExpectedVersion,
    *,
    conflict: type[VersionConflict] = VersionConflict,
) -> AppendResult:
    """Append `events` to the request's partition expecting `expected`; a refusal raises `conflict`."""
    request = AppendRequest(
        stream=stream, events=list(events), expected_version=expected, meta=ctx.event_meta()
    )
    try:
        return await spine.append(ctx.partition, request)
    except VersionConflict as exc:
        if conflict is VersionConflict:
            raise
        raise conflict(exc.stream, exc.expected, exc.actual) from exc


async def expected_at(
    wanted: Precondition | None, spine: EventSpine, partition: Partition, stream: str, *, live: Live = _always
) -> ExpectedVersion:
    """The `expected_version` of a write that replaces whatever `stream` holds, under `wanted`:
    `any` without a precondition; the stream is read only when `wanted` is `*` or a list."""
    if wanted is None:
        return ANY
    if (exact := wanted.exact) is not None:
        return exact
    last, version = await last_event(spine, partition, stream)
    return wanted.version_for(version, live=last is not None and live(last))


async def last_event(spine: EventSpine, partition: Partition, stream: str) -> tuple[Event | None, int]:
    """The stream's last event and its version: (None, 0) for a stream never written."""
    version = await stream_version(spine, partition, stream)
    if version == 0:
        return None, 0
    # The event's own version, not the one the first read answered: the stream may have moved on
    # since, and the append must then be refused for expecting the state the decision is made on.
    [last], _ = await spine.read_stream(partition, stream, after_version=version - 1, limit=1)
    return last, last.version


async def stream_version(spine: EventSpine, partition: Partition, stream: str) -> int:
    """The stream's version (0: never written), read from the log."""
    _, version = await spine.read_stream(partition, stream, after_version=_END, limit=1)
    return version


async def event_at(spine: EventSpine, partition: Partition, stream: str, version: int) -> Event | None:
    """The stream's event at `version`, read from the log (None: the stream has no such version)."""
    events, _ = await spine.read_stream(partition, stream, after_version=version - 1, limit=1)
    return events[0] if events and events[0].version == version else None
