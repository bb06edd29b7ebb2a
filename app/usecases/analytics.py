"""Recording analytics events on their (name, day) streams, and reading pages of the view.

A batch is validated as a whole before anything is appended, then appended one group per stream
(the events of one name). Groups are not atomic together: when an answer is lost, or a 503 comes
mid-batch, resending the same batch with client `id`s completes it, and the events stored before
answer with their original positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec

from app.http.reads import Problem, reflecting, served_each
from app.key_ring import KeyRing
from app.personal_spine import open_documents
from domain.analytics import (
    BY_ID,
    RECORDED,
    AnalyticsRecord,
    DayCount,
    Query,
    Tracked,
    day_of,
    day_of_record,
    recorded_event,
    stream_of,
)
from domain.append import AppendRequest
from domain.context import RequestContext
from domain.errors import IdempotencyConflict, IdentityOverride, InvalidRequest, VersionConflict
from domain.events import ANY, NewEvent
from domain.identity import Principal, SentIdentity, check_claims
from domain.ids import new_event_id
from domain.ports import EventSpine
from projections.runtime import Runner

MAX_SCANS: Final = 10  # pages a filtered read scans before it answers what it found, with `next`
_NEVER: Final = 2**62  # a version no stream reaches: an append expecting it can only replay stored ids


@dataclass(frozen=True, slots=True)
class Appended:
    """Each event's id and position, in the order they were sent."""

    ids: list[str]
    positions: list[int]


def check_claims_of(ctx: RequestContext, events: Sequence[Tracked]) -> None:
    """The identity rule for each event of a batch (the guard sees a body's top level only).

    Raises `IdentityOverride` naming the event (`events[3].tenant_id`) of the first disagreement.
    """
    principal = Principal(user_id=ctx.user_id or "", tenant_id=ctx.tenant_id, issuer="")
    chosen = SentIdentity(project_id=ctx.project_id, surface_id=ctx.surface_id, app_id=ctx.app_id)
    for index, tracked in enumerate(events):
        try:
            check_claims(principal, ctx.mode or "", ctx.env, chosen, tracked.claims())
        except IdentityOverride as exc:
            raise IdentityOverride(f"events[{index}].{exc.field}", exc.source, exc.sent, exc.actual) from exc


def check_ids(events: Sequence[Tracked]) -> None:
    """A client id names one event: twice in a batch is a mistake, refused before any append."""
    seen: dict[str, int] = {}
    for index, tracked in enumerate(events):
        if tracked.id is None:
            continue
        if tracked.id in seen:
            raise InvalidRequest(f"events[{index}].id repeats the id of events[{seen[tracked.id]}]")
        seen[tracked.id] = index


async def record(
    spine: EventSpine, view: Runner, ctx: RequestContext, events: Sequence[Tracked], at: datetime, wait: float
) -> Appended:
    """Append validated events as of `at`, one append per event name, in the order names first
    appear; each event's position is answered in the order sent. `view` (the analytics view of the
    partition, waited for up to `wait` seconds) finds events a retry sent days before."""
    new = [recorded_event(t, at, partition=ctx.partition, new_id=new_event_id()) for t in events]
    groups: dict[str, list[int]] = {}
    for index, tracked in enumerate(events):
        groups.setdefault(tracked.name, []).append(index)
    appender = _Appender(spine, view, ctx, day_of(at), wait)
    positions = [0] * len(new)
    for name, indexes in groups.items():
        landed = await appender.append(name, [new[i] for i in indexes])
        for index, position in zip(indexes, landed, strict=True):
            positions[index] = position
    return Appended(ids=[event.id or "" for event in new], positions=positions)


@dataclass(frozen=True, slots=True)
class _Appender:
    spine: EventSpine
    view: Runner
    ctx: RequestContext
    day: str
    wait: float

    async def append(self, name: str, events: list[NewEvent]) -> list[int]:
        """Each event's position: appended now, or stored before under its client id."""
        ctx = self.ctx
        stream = stream_of(name, self.day)
        request = AppendRequest(stream=stream, events=events, expected_version=ANY, meta=ctx.event_meta())
        try:
            result = await self.spine.append(ctx.partition, request)
        except IdempotencyConflict as conflict:
            if len(events) == 1:
                return [await self._stored(request, name, conflict)]
            # Some ids are stored and some not (part of this batch was sent before), or stored in
            # the stream of another day: on its own, each event is answered or appended.
            return await self._each(name, events)
        if len(events) == 1 or not any(event.data.get("client_id") for event in events):
            return list(range(result.first_position, result.last_position + 1))  # fresh ids: appended now
        # Appended now, the events hold the stream's last versions in the order sent. A retry is
        # answered with where its events were stored, which need not be one run: then ask each.
        after = result.stream_version - len(events)
        stored, _ = await self.spine.read_stream(
            ctx.partition, stream, after_version=after, limit=len(events)
        )
        if [event.id for event in stored] == [event.id for event in events]:
            return [event.position for event in stored]
        return await self._each(name, events)

    async def _each(self, name: str, events: list[NewEvent]) -> list[int]:
        return [position for event in events for position in await self.append(name, [event])]

    async def _stored(self, request: AppendRequest, name: str, conflict: IdempotencyConflict) -> int:
        """The position of an event whose id is stored in the stream of another day: a retry sent
        after midnight, or days later (a client's offline queue). The conflict proves the event is
        in the log, so the view finds it once caught up with the head; an event of another name
        under the id is the client's conflict.

        Expecting a version no stream has, the append to the stored event's stream can only answer
        it as stored: it never appends.
        """
        ctx, [event] = self.ctx, request.events
        await reflecting(self.view, await self.spine.head(ctx.partition), self.wait)
        doc = await self.view.get(BY_ID, event.id or "")
        if doc is None or doc.data["name"] != name:
            raise conflict
        stream = stream_of(name, day_of_record(doc.data["time"]))
        probe = msgspec.structs.replace(request, stream=stream, expected_version=_NEVER)
        try:
            result = await self.spine.append(ctx.partition, probe)
        except (VersionConflict, IdempotencyConflict):
            raise conflict from None
        return result.last_position


# Reads


class Record(AnalyticsRecord, frozen=True, kw_only=True):
    """An event of a list: `problem` says why its `properties` are null (`app.http.reads.served_each`)."""

    problem: Problem = msgspec.UNSET


class EventsPage(msgspec.Struct, frozen=True, kw_only=True):
    """Events oldest first; `next` is the cursor of the following page (null on the last)."""

    events: list[Record]
    next: str | None


class CountsPage(msgspec.Struct, frozen=True, kw_only=True):
    """Counts by day, then name; `next` is the cursor of the following page (null on the last)."""

    counts: list[DayCount]
    next: str | None


async def events_page(
    runner: Runner, query: Query, *, limit: int, app_id: str | None, surface_id: str | None, keys: KeyRing
) -> EventsPage:
    """One page of `query`'s range, keeping records of `app_id` and `surface_id` when given.

    Without those filters the page is exact: `limit + 1` keys say whether another page exists.
    With them, records are scanned `limit + 1` at a time for at most `MAX_SCANS` reads; a page
    may then hold fewer records than `limit`, and `next` says where the scan stopped. The view
    keeps personal fields (`properties`) sealed: they are opened here, with `keys`.
    """
    prefix, after = query.prefix, query.prefix + query.after
    found: list[tuple[str, dict[str, Any]]] = []
    for _ in range(MAX_SCANS):
        docs = await runner.list(query.collection, prefix=prefix, after=after, limit=limit + 1)
        for doc in docs:
            key = doc.key[len(prefix) :]
            if query.before is not None and key >= query.before:
                return await _page(found, limit, more=False, keys=keys, tenant_id=runner.partition.tenant_id)
            if _attributed(doc.data, app_id, surface_id):
                found.append((key, doc.data))
                if len(found) > limit:
                    return await _page(
                        found, limit, more=True, keys=keys, tenant_id=runner.partition.tenant_id
                    )
        if len(docs) <= limit:
            return await _page(found, limit, more=False, keys=keys, tenant_id=runner.partition.tenant_id)
        after = docs[-1].key
    page = await _page(found, limit, more=False, keys=keys, tenant_id=runner.partition.tenant_id)
    return EventsPage(events=page.events, next=after[len(prefix) :])  # the scan's end: read on from it


def _attributed(data: dict[str, Any], app_id: str | None, surface_id: str | None) -> bool:
    attribution = data["attribution"]
    return (app_id is None or attribution["app_id"] == app_id) and (
        surface_id is None or attribution["surface_id"] == surface_id
    )


async def _page(
    found: list[tuple[str, dict[str, Any]]], limit: int, *, more: bool, keys: KeyRing, tenant_id: str
) -> EventsPage:
    page = found[:limit]
    opened = await open_documents(
        keys, tenant_id, [data for _, data in page], event_type=RECORDED, field="properties",
        user_of=lambda data: data["attribution"]["user_id"],
    )  # fmt: skip
    records = served_each([msgspec.convert(data, Record) for data in opened])
    return EventsPage(events=records, next=page[-1][0] if more and page else None)


async def counts_page(runner: Runner, query: Query, *, limit: int) -> CountsPage:
    prefix = query.prefix
    docs = await runner.list(query.collection, prefix=prefix, after=prefix + query.after, limit=limit + 1)
    in_range = [doc.data for doc in docs if query.before is None or doc.data["day"] < query.before]
    counts = [DayCount(name=data["name"], day=data["day"], count=data["count"]) for data in in_range[:limit]]
    more = len(in_range) > limit
    return CountsPage(counts=counts, next=f"{counts[-1].day}|{counts[-1].name}" if more else None)


def violation_details(ctx: RequestContext, exc: IdentityOverride, method: str, path: str) -> dict[str, Any]:
    """What the tenant's audit trail records of a refused claim: the guard's shape."""
    return {
        "field": exc.field,
        "source": exc.source,
        "sent": exc.sent,
        "actual": exc.actual,
        "user_id": ctx.user_id,
        "request_id": ctx.request_id,
        "method": method,
        "path": path,
        "project_id": ctx.project_id,
    }
