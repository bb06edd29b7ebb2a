"""Analytics: product events of a project, attributed from the request's context, counted per day.

Every event is appended to the stream of its name and UTC day, `analytics:{name}:{YYYY-MM-DD}`,
with expected version `any`: the event's version in that stream *is* the number of events of that
name on that day so far. The count view therefore upserts `count = version` straight from each
event — no document is ever read to be added to, so re-delivery and rebuilds give the same counts.

Records are keyed by time, then position (fixed width, so key order is time order):

    {at, fixed-width UTC}|{position:019d}

`at` is the server's clock when the event was accepted; it also picks the day, so the records of a
day and its count always agree. Index collections repeat each record under its name, its run, or
both (length-prefixed: no name's prefix is the start of another's), so every filter of
`GET /v1/analytics/events` is a range read of one key prefix.

Attribution — tenant, mode, env, project, app, surface, user — is read from the event's meta, which
the request context stamped: nothing a client writes in an event's data can claim it.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from domain.audit import parse_time, part, time_text
from domain.errors import InvalidCursor, InvalidRequest
from domain.events import Event, EventId, NewEvent
from domain.identifiers import NAME_PATTERN as RUN_PATTERN
from domain.identity import SentIdentity
from domain.partition import Partition
from domain.views import Upsert, ViewOp

RECORDED: Final = "analytics.event_recorded"
EVENTS: Final = "analytics.events"
BY_NAME: Final = "analytics.by_name"
BY_RUN: Final = "analytics.by_run"
BY_RUN_NAME: Final = "analytics.by_run_name"
BY_ID: Final = "analytics.by_id"  # the record of an event id: a retry days later finds its stream
COUNTS: Final = "analytics.counts"  # {day}|{name}: every name of a day, days in order
COUNTS_BY_NAME: Final = "analytics.counts_by_name"  # {len}:{name}|{day}|: one name's days in order

NAME_PATTERN: Final = r"^[a-z][a-z0-9_.:-]{0,127}$"
PLATFORM_PATTERN: Final = r"^[a-z][a-z0-9_.-]{0,63}$"
MAX_PROPERTIES_BYTES: Final = 16 * 1024
MAX_BATCH: Final = 1000

Name = Annotated[
    str, msgspec.Meta(pattern=NAME_PATTERN, description="what happened, e.g. checkout.completed")
]
Platform = Annotated[str, msgspec.Meta(pattern=PLATFORM_PATTERN, description="web, ios, android, server…")]
RunId = Annotated[str, msgspec.Meta(pattern=RUN_PATTERN)]
# Campaign parameters come from URLs people paste: any text but control characters, bounded.
Utm = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")]
Claimed = str | None  # an identity field a body may repeat, never set: the guard compares it

_IDS: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:spine:analytics:event")
_TIME_KEY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\|[0-9]{19}")
_COUNT_KEY = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})\|([a-z][a-z0-9_.:-]{0,127})")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_encoder: Final = msgspec.json.Encoder()


class Tracked(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One analytics event as a client sends it.

    `id` is an idempotency key: a retry with the same id records nothing twice. Attribution fields
    (`tenant_id`, `mode`, `env`, `project_id`, `app_id`, `surface_id`, `user_id`) may only repeat
    the request's context — a disagreeing one is refused 403 — and are never stored from the body.
    """

    name: Name
    platform: Platform
    run_id: RunId | None = None
    utm_source: Utm | None = None
    utm_medium: Utm | None = None
    utm_campaign: Utm | None = None
    utm_term: Utm | None = None
    utm_content: Utm | None = None
    properties: dict[str, Any] | None = None
    id: EventId | None = None
    tenant_id: Claimed = None
    mode: Claimed = None
    env: Claimed = None
    project_id: Claimed = None
    app_id: Claimed = None
    surface_id: Claimed = None
    user_id: Claimed = None

    def __post_init__(self) -> None:
        if self.properties is not None and len(_encoder.encode(self.properties)) > MAX_PROPERTIES_BYTES:
            raise ValueError(f"properties must encode to at most {MAX_PROPERTIES_BYTES} bytes of JSON")

    def claims(self) -> SentIdentity:
        """The identity this event states about itself, for the one identity rule."""
        return SentIdentity(
            tenant_id=self.tenant_id,
            user_id=self.user_id,
            mode=self.mode,
            env=self.env,
            project_id=self.project_id,
            surface_id=self.surface_id,
            app_id=self.app_id,
        )


class Batch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Events sent at once: validated together, so one bad event refuses the whole batch."""

    events: Annotated[list[Tracked], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """The data of an `analytics.event_recorded` event: what the client said, and when Spine took it."""

    name: str
    platform: str
    at: str
    run_id: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    properties: dict[str, Any] | None = None
    client_id: str | None = None


class Attribution(msgspec.Struct, frozen=True, kw_only=True):
    """Who and where an event came from: the request context, stamped on the event's meta."""

    tenant_id: str
    mode: str | None
    env: str
    project_id: str
    app_id: str | None
    surface_id: str | None
    user_id: str | None


class AnalyticsRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One event of the view."""

    id: str
    client_id: str | None
    position: int
    time: str
    name: str
    platform: str
    run_id: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    # "[erased]" once the user's data key is destroyed (`domain.personal`); "[unreadable]" when
    # a sealed value does not open under its key
    properties: dict[str, Any] | Literal["[erased]", "[unreadable]"] | None
    attribution: Attribution
    request_id: str | None


class DayCount(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    day: str
    count: int


def day_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def day_of_record(time: str) -> str:
    """The day of a record's fixed-width `time`."""
    return time[:10]


def stream_of(name: str, day: str) -> str:
    """The day is a fixed-width suffix, so a stream names exactly one (name, day)."""
    return f"analytics:{name}:{day}"


def event_id(partition: Partition, client_id: str) -> str:
    """The event id of an event the client named: the same (partition, id), the same event.

    Derived rather than used as is, so a client's analytics ids never meet the ids of other events
    of the partition.
    """
    name = f"{partition.tenant_id}/{partition.env}/{partition.project_id}/{client_id}"
    return str(uuid.uuid5(_IDS, name))


def recorded_event(tracked: Tracked, at: datetime, *, partition: Partition, new_id: str) -> NewEvent:
    """The event to append; `new_id` is used when the client sent no id of its own."""
    recorded = Recorded(
        name=tracked.name,
        platform=tracked.platform,
        at=time_text(at),
        run_id=tracked.run_id,
        utm_source=tracked.utm_source,
        utm_medium=tracked.utm_medium,
        utm_campaign=tracked.utm_campaign,
        utm_term=tracked.utm_term,
        utm_content=tracked.utm_content,
        properties=tracked.properties,
        client_id=tracked.id,
    )
    chosen = new_id if tracked.id is None else event_id(partition, tracked.id)
    return NewEvent(type=RECORDED, data=msgspec.to_builtins(recorded), id=chosen)


def time_key(at: str, position: int) -> str:
    return f"{at}|{position:019d}"


def index(run_id: str | None, name: str | None) -> tuple[str, str]:
    """The collection and key prefix that make a filter on run and/or name a range read."""
    if run_id is not None and name is not None:
        return BY_RUN_NAME, part(run_id) + part(name)
    if run_id is not None:
        return BY_RUN, part(run_id)
    if name is not None:
        return BY_NAME, part(name)
    return EVENTS, ""


def count_key(name: str, day: str) -> str:
    return f"{day}|{name}"


def count_by_name_key(name: str, day: str) -> str:
    # the trailing `|` puts a day's key after the bare day, which `from` (inclusive) reads after
    return f"{part(name)}{day}|"


def record_of(event: Event) -> AnalyticsRecord:
    recorded = msgspec.convert(event.data, Recorded)
    meta = event.meta
    attribution = Attribution(
        tenant_id=meta.tenant_id,
        mode=meta.mode,
        env=meta.env,
        project_id=meta.project_id,
        app_id=meta.app_id,
        surface_id=meta.surface_id,
        user_id=meta.user_id,
    )
    return AnalyticsRecord(
        id=event.id,
        client_id=recorded.client_id,
        position=event.position,
        time=recorded.at,
        name=recorded.name,
        platform=recorded.platform,
        run_id=recorded.run_id,
        utm_source=recorded.utm_source,
        utm_medium=recorded.utm_medium,
        utm_campaign=recorded.utm_campaign,
        utm_term=recorded.utm_term,
        utm_content=recorded.utm_content,
        properties=recorded.properties,
        attribution=attribution,
        request_id=meta.request_id,
    )


class AnalyticsProjection:
    """Each event becomes one record (under its time key, and its name's and run's prefixes) and
    sets its (name, day) count to its stream version."""

    name = "analytics"
    handles = frozenset({RECORDED})
    collections = frozenset({EVENTS, BY_NAME, BY_RUN, BY_RUN_NAME, BY_ID, COUNTS, COUNTS_BY_NAME})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        record = record_of(event)
        data = msgspec.to_builtins(record)
        key = time_key(record.time, event.position)
        keys = [(EVENTS, key), (BY_NAME, part(record.name) + key)]
        if record.run_id is not None:
            keys.append((BY_RUN, part(record.run_id) + key))
            keys.append((BY_RUN_NAME, part(record.run_id) + part(record.name) + key))
        ops: list[ViewOp] = [
            Upsert(collection=collection, key=k, data=data, position=event.position) for collection, k in keys
        ]
        ops.append(Upsert(collection=BY_ID, key=event.id, data=data, position=event.position))
        day = day_of_record(record.time)
        count = {"name": record.name, "day": day, "count": event.version, "position": event.position}
        ops.append(
            Upsert(collection=COUNTS, key=count_key(record.name, day), data=count, position=event.position)
        )
        ops.append(
            Upsert(
                collection=COUNTS_BY_NAME,
                key=count_by_name_key(record.name, day),
                data=count,
                position=event.position,
            )
        )
        return ops


# Queries


class Query(msgspec.Struct, frozen=True, kw_only=True):
    """A validated read: keys of `collection` under `prefix` (without it) > `after` and < `before`."""

    collection: str
    prefix: str
    after: str = ""
    before: str | None = None


def query_events(
    *, run_id: str | None, name: str | None, after: str | None, start: str | None, end: str | None
) -> Query:
    """`after` is a cursor this view issued (400 `cursor.invalid` otherwise); `start` (inclusive)
    and `end` (exclusive) are ISO 8601 times; a time without an offset is UTC."""
    lower = parse_time(start, "from") or ""
    if after:
        if not _TIME_KEY.fullmatch(after):
            raise InvalidCursor(f"after must be a cursor this view answered as `next`, got {after[:60]!r}")
        lower = max(lower, after)
    collection, prefix = index(run_id or None, name or None)
    return Query(collection=collection, prefix=prefix, after=lower, before=parse_time(end, "to"))


def query_counts(*, name: str | None, after: str | None, start: str | None, end: str | None) -> Query:
    """Counts of days from `start` (inclusive) to `end` (exclusive), both `YYYY-MM-DD`; `after` is
    the `next` of a previous page (the last count's `{day}|{name}`)."""
    first, last = parse_day(start, "from"), parse_day(end, "to")
    cursor: tuple[str, str] | None = None
    if after:
        match = _COUNT_KEY.fullmatch(after)
        if match is None:
            raise InvalidCursor(f"after must be a cursor this view answered as `next`, got {after[:60]!r}")
        cursor = (match[1], match[2])
    if name:
        lower = first or ""
        if cursor is not None:
            lower = max(lower, cursor[0] + "|")  # this name's days after the cursor's
        return Query(collection=COUNTS_BY_NAME, prefix=part(name), after=lower, before=last)
    lower = first or ""
    if cursor is not None:
        lower = max(lower, after or "")
    return Query(collection=COUNTS, prefix="", after=lower, before=last)


def parse_day(raw: str | None, name: str) -> str | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        day = date.fromisoformat(text) if _DAY.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidRequest(f"{name} must be a day such as 2025-01-31, got {raw[:40]!r}")
    return day.isoformat()
