"""Moving a partition's log to another backend: copy it position for position, then prove it.

The copy appends the source's events to the target in position order, each run of one stream's
events as one append that names the position it must land at, expects the stream's version
before it and carries the events' ids, metadata and recording time. So the target holds the same
events at the same positions with the same stream versions: every cursor, `Last-Event-ID` and
view checkpoint stays valid across the move. Up to `IN_FLIGHT` appends are queued at once (every
adapter queues a partition's appends in the order they are made, and group-commits them), and
since each names its position, one that fails makes those after it fail too, never land out of
place. A copy that was interrupted goes on from the target's head; a retried append is answered
from its ids. If anything else writes to the target partition meanwhile, the copy stops and says so.

A log retention thinned out (`domain.retention`) is copied the same way, its removed positions
filled with placeholders of the right streams and versions (`domain.gaps`) which the copy then
removes from the target (`EventSpine.remove`): the caller asks for that with `gaps`, having seen
the log has fewer events than positions (`fill_plan`).

The proof reads both logs again and compares, per range of positions, the count and a SHA-256 of
the events (id, type, stream, version, position, data, metadata, time) in canonical JSON.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator

import anyio
import msgspec

from domain.append import MAX_EVENTS_PER_APPEND, AppendRequest
from domain.errors import InvalidRequest, PositionConflict
from domain.events import Event, EventMeta, NewEvent
from domain.gaps import PLACEHOLDER_TYPE, placeholder_id, placeholders
from domain.partition import Partition
from domain.ports import EventSpine, LogReader

PAGE = 1000
IN_FLIGHT = 256  # appends a copy keeps queued, so that group commits carry many of them
Progress = Callable[[int], None]  # called with the last position done
Gaps = dict[int, tuple[str, int]]  # removed position -> the (stream, version) its placeholder takes


class RangeDigest(msgspec.Struct, frozen=True):
    first: int
    last: int
    count: int
    sha256: str


class MoveRefused(InvalidRequest):
    """The target cannot take this partition's log as it is (it holds other events)."""


async def fill_plan(source: LogReader, partition: Partition) -> Gaps:
    """The placeholders that complete the source's log (`domain.gaps`): one read of it."""
    head, cursor = await source.head(partition), 0
    survivors: list[tuple[int, str, int]] = []
    while cursor < head:
        page = await source.read(partition, after=cursor, limit=PAGE)
        survivors.extend((e.position, e.stream, e.version) for e in page.events)
        if not page.events:
            break
        cursor = page.events[-1].position
    return placeholders(survivors, head)


async def holds_the_start_of(
    source: LogReader, target: LogReader, partition: Partition, gaps: Gaps, name: str = "source"
) -> int:
    """The target's head, when its log is empty or the start of the source's (the event at its head
    is the source's, or the placeholder for it); else `MoveRefused`, calling the source `name`."""
    head, start = await source.head(partition), await target.head(partition)
    if start > head:
        raise MoveRefused(f"the target holds {start} events of this partition, the {name} only {head}")
    if start:
        found = await _event_at(source, partition, start)
        wanted = placeholder_id(partition.key, start) if start in gaps else found and found.id
        theirs = await _event_at(target, partition, start)
        if theirs is None or theirs.id != wanted:
            raise MoveRefused(
                f"the target's event at position {start} is not the {name}'s: it holds another log"
            )
    return start


async def copy_log(
    source: LogReader, target: EventSpine, partition: Partition, progress: Progress, gaps: Gaps | None = None
) -> tuple[int, int]:
    """Copy what the target lacks, filling `gaps` (`fill_plan`) and removing the fillers after;
    (the source head copied up to, events appended now, fillers not counted)."""
    gaps = gaps or {}
    head = await source.head(partition)
    start = await holds_the_start_of(source, target, partition, gaps)
    cursor = start
    progress(cursor)
    window = anyio.Semaphore(IN_FLIGHT)

    async def land(request: AppendRequest) -> None:
        try:
            await target.append(partition, request)
        except PositionConflict as exc:
            raise MoveRefused(f"{exc.message}: something else writes to the target partition") from exc
        finally:
            window.release()

    while cursor < head:
        page = await source.read(partition, after=cursor, limit=min(PAGE, head - cursor))
        # Appends started in order are queued in order; each also names its position, so none can
        # land out of place, even if one before it fails.
        async with anyio.create_task_group() as appends:
            for run in _runs(_filled(page.events, cursor, gaps, partition)):
                await window.acquire()
                appends.start_soon(land, _request(run))
        cursor = page.events[-1].position if page.events else head
        progress(cursor)
    fillers = sorted(gaps)
    for first in range(0, len(fillers), PAGE):
        await target.remove(partition, fillers[first : first + PAGE])  # idempotent: a resumed copy too
    return head, head - start - sum(1 for position in fillers if position > start)


def _filled(events: list[Event], after: int, gaps: Gaps, partition: Partition) -> Iterator[Event]:
    """The page's events with a placeholder at each position of `gaps` before each of them."""
    for event in events:
        for position in range(after + 1, event.position):
            if position in gaps:
                stream, version = gaps[position]
                yield Event(
                    id=placeholder_id(partition.key, position), type=PLACEHOLDER_TYPE, stream=stream,
                    version=version, position=position, data={}, recorded_at=event.recorded_at,
                    meta=EventMeta(tenant_id=partition.tenant_id, env=partition.env, project_id=partition.project_id),
                )  # fmt: skip
        yield event
        after = event.position


def _request(run: list[Event]) -> AppendRequest:
    first = run[0]
    return AppendRequest(
        stream=first.stream,
        events=[NewEvent(type=e.type, data=e.data, id=e.id) for e in run],
        expected_version=first.version - 1,
        meta=first.meta,
        recorded_at=first.recorded_at,
        expected_position=first.position,
    )


async def digests(
    spine: LogReader, partition: Partition, upto: int, size: int, progress: Progress
) -> list[RangeDigest]:
    """Count and hash of each `size` positions of the log up to `upto`."""
    ranges: list[RangeDigest] = []
    cursor = 0
    while cursor < upto:
        last = min(cursor + size, upto)
        hashed, count, after = hashlib.sha256(), 0, cursor
        while after < last:
            page = await spine.read(partition, after=after, limit=min(PAGE, last - after))
            if not page.events:
                break
            for event in page.events:
                hashed.update(msgspec.json.encode(event) + b"\n")
            count += len(page.events)
            after = page.events[-1].position
            progress(after)
        ranges.append(RangeDigest(cursor + 1, last, count, hashed.hexdigest()))
        cursor = last
    return ranges


async def _event_at(spine: LogReader, partition: Partition, position: int) -> Event | None:
    """The event at `position`; None when retention removed it."""
    events = (await spine.read(partition, after=position - 1, limit=1)).events
    return events[0] if events and events[0].position == position else None


def _runs(events: Iterable[Event]) -> Iterator[list[Event]]:
    """Consecutive events that one append can carry: one stream, one metadata, one time."""
    run: list[Event] = []
    for event in events:
        if run and (
            len(run) == MAX_EVENTS_PER_APPEND
            or (event.stream, event.meta, event.recorded_at)
            != (run[0].stream, run[0].meta, run[0].recorded_at)
        ):
            yield run
            run = []
        run.append(event)
    if run:
        yield run
