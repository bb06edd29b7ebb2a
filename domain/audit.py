"""The audit view: one append-only record per accepted write, client record and security event.

Records of a project come from two logs. The project's own partition gives one record per event
(`write`; `client` for the `audit.recorded` events clients add with `POST /v1/audit`). The
tenant's `_audit` partition (its audit trail) gives the `security` records: `auth.violation`,
`route.backend_switched`, `user.data_erased`. Both are keyed by time, so a reader merges them into one order:

    {recorded_at, fixed-width UTC}|{position:019d}|{origin}

`origin` tells the two logs apart: one group commit may stamp events of both with the same time
and the same position number. Index collections repeat each record under its actor, its action,
or both, so every filter is a range read of one key prefix. Security records are further prefixed
by the project they concern (`*`: the whole tenant), so a project reads only its own.

A write record carries the event's type and stream, never its data: memory values may be private.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from domain.errors import InvalidCursor, InvalidRequest
from domain.events import Event, NewEvent
from domain.views import Upsert, ViewOp

AUDIT_PROJECT: Final = "_audit"  # the tenant's audit trail; project ids starting with `_` are reserved
RECORDED: Final = "audit.recorded"
CLIENT_STREAM: Final = "audit:client"
TENANT_WIDE: Final = "*"

COLLECTION: Final = "audit"
BY_ACTOR: Final = "audit.by_actor"
BY_ACTION: Final = "audit.by_action"
BY_ACTOR_ACTION: Final = "audit.by_actor_action"
BY_ID: Final = "audit.by_id"

ACTION_PATTERN: Final = r"^[a-z][a-z0-9_.:-]{0,127}$"
Action = Annotated[
    str, msgspec.Meta(pattern=ACTION_PATTERN, description="what was done, e.g. report.exported")
]
Resource = Annotated[str, msgspec.Meta(min_length=1, max_length=512, description="what it was done to")]
Source = Literal["write", "client", "security"]

_PROJECT_ORIGIN, _TRAIL_ORIGIN = "p", "a"
_TIME_KEY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\|[0-9]{19}\|[pa]")


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """The data of an `audit.recorded` event: a record a client adds about its own work."""

    action: Action
    resource: Resource
    details: dict[str, Any] | None = None


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One record of the view. `position` is the event's in its own log (for `security`
    records, the tenant's audit trail, not the project's)."""

    id: str
    position: int
    time: str
    actor: str | None
    action: str
    resource: str
    request_id: str | None
    source: Source
    details: dict[str, Any] | None = None


def recorded_event(
    action: str, resource: str, details: dict[str, Any] | None, *, event_id: str | None
) -> NewEvent:
    record = Recorded(action=action, resource=resource, details=details)
    return NewEvent(type=RECORDED, data=msgspec.to_builtins(record), id=event_id)


def time_text(at: datetime) -> str:
    """Fixed-width UTC ISO 8601 with microseconds, so that text order is time order."""
    utc = at.astimezone(UTC) if at.tzinfo is not None else at
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def time_key(event: Event) -> str:
    origin = _TRAIL_ORIGIN if _in_trail(event) else _PROJECT_ORIGIN
    return f"{time_text(event.recorded_at)}|{event.position:019d}|{origin}"


def part(value: str) -> str:
    """One key segment; length-prefixed, so no segment's prefix is the start of another's."""
    return f"{len(value)}:{value}|"


def scope(project_id: str | None) -> str:
    """The prefix of a security record's keys: the project it concerns (`*`: every project)."""
    return part(project_id or "")


def index(actor: str | None, action: str | None) -> tuple[str, str]:
    """The collection and key prefix that make a filter on actor and/or action a range read."""
    if actor is not None and action is not None:
        return BY_ACTOR_ACTION, part(actor) + part(action)
    if actor is not None:
        return BY_ACTOR, part(actor)
    if action is not None:
        return BY_ACTION, part(action)
    return COLLECTION, ""


def record_of(event: Event) -> AuditRecord:
    """The record of any event: pure, and total (malformed client data is recorded as a write)."""
    if _in_trail(event):
        return _record(event, "security", event.type, _security_resource(event), dict(event.data))
    if event.type == RECORDED:
        try:
            own = msgspec.convert(event.data, Recorded)
        except msgspec.ValidationError:
            pass  # appended through /v1/events with data of another shape: an ordinary write
        else:
            return _record(event, "client", own.action, own.resource, own.details)
    return _record(event, "write", event.type, event.stream, None)


def concerns(record: AuditRecord, project_id: str) -> bool:
    """A security record is seen by the project it names and, when tenant-wide, by every one."""
    if record.source != "security":
        return True
    return (record.details or {}).get("project_id") in (project_id, TENANT_WIDE)


class AuditProjection:
    """Every event of a partition becomes one record, stored under its time key in `audit` and
    under actor/action prefixes in the index collections; `audit.by_id` finds it by event id."""

    name = "audit"
    handles: frozenset[str] | None = None
    collections = frozenset({COLLECTION, BY_ACTOR, BY_ACTION, BY_ACTOR_ACTION, BY_ID})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        record = record_of(event)
        data = msgspec.to_builtins(record)
        prefix = scope(_project_of(event)) if record.source == "security" else ""
        key = time_key(event)
        keys = [(COLLECTION, key), (BY_ACTION, part(record.action) + key)]
        if record.actor is not None:
            keys.append((BY_ACTOR, part(record.actor) + key))
            keys.append((BY_ACTOR_ACTION, part(record.actor) + part(record.action) + key))
        ops: list[ViewOp] = [
            Upsert(collection=collection, key=prefix + k, data=data, position=event.position)
            for collection, k in keys
        ]
        ops.append(Upsert(collection=BY_ID, key=event.id, data=data, position=event.position))
        return ops


# Queries


class Query(msgspec.Struct, frozen=True, kw_only=True):
    """A validated read: records of `collection` under `prefix`, with time keys > `after` and
    < `before` (when set)."""

    collection: str
    prefix: str
    after: str = ""
    before: str | None = None


def query_audit(
    *, actor: str | None, action: str | None, after: str | None, start: str | None, end: str | None
) -> Query:
    """`after` is a cursor this view issued (400 `cursor.invalid` otherwise); `start` (inclusive)
    and `end` (exclusive) are ISO 8601 times; a time without an offset is UTC."""
    lower = parse_time(start, "from") or ""
    if after:
        lower = max(lower, parse_key(after))
    collection, prefix = index(actor or None, action or None)
    return Query(collection=collection, prefix=prefix, after=lower, before=parse_time(end, "to"))


def parse_key(raw: str) -> str:
    if not _TIME_KEY.fullmatch(raw):
        raise InvalidCursor(f"after must be a cursor this view answered as `next`, got {raw[:60]!r}")
    return raw


def parse_time(raw: str | None, name: str) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return time_text(datetime.fromisoformat(raw.strip()))
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(
            f"{name} must be an ISO 8601 time such as 2025-01-31T12:00:00Z, got {raw[:40]!r}"
        ) from exc


Keyed = tuple[str, dict[str, Any]]
"""A record's data under its time key (the key of the view without scope and index prefix)."""


def merge(
    sources: Sequence[Iterable[Keyed]], *, limit: int, before: str | None
) -> tuple[list[Keyed], str | None]:
    """One page of records from several sources, in key order, and the cursor after it.

    Each source must hold the first `limit + 1` records of its range after the cursor (or all of
    them, when fewer): then more than `limit` records in range means another page exists, and
    `next` is the last key answered; otherwise it is None.
    """
    merged = sorted((keyed for source in sources for keyed in source), key=lambda keyed: keyed[0])
    in_range = [keyed for keyed in merged if before is None or keyed[0] < before]
    page = in_range[:limit]
    return page, (page[-1][0] if len(in_range) > limit else None)


def _in_trail(event: Event) -> bool:
    return event.meta.project_id == AUDIT_PROJECT


def _record(
    event: Event, source: Source, action: str, resource: str, details: dict[str, Any] | None
) -> AuditRecord:
    return AuditRecord(
        id=event.id,
        position=event.position,
        time=time_text(event.recorded_at),
        actor=event.meta.user_id,
        action=action,
        resource=resource,
        request_id=event.meta.request_id,
        source=source,
        details=details,
    )


def _project_of(event: Event) -> str | None:
    project = event.data.get("project_id")
    return project if isinstance(project, str) and project else None


def _security_resource(event: Event) -> str:
    """What a security event is about: the refused request's path, or the route switched."""
    match event.type, event.data:
        case "auth.violation", {"path": str(path)}:
            return path
        case "route.backend_switched", {"route": str(route)}:
            return f"route:{route}"
        case "user.data_erased", {"user_id": str(user_id)}:
            return f"user:{user_id}"
    return event.stream
