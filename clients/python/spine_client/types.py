"""The answers the client decodes, as msgspec Structs of its own (it imports nothing of the server).

They are tolerant readers: a field the server adds later is ignored, and fields that are not
always there have defaults. Answers whose shape is open (operators' reports, control-plane
records, audit and analytics records) are plain dicts instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

ExpectedVersion = int | Literal["no_stream", "any"]
"""The stream version a writer expects: an exact version (0 = empty), `no_stream` or `any`."""


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    """Unknown fields are ignored (msgspec's default; never `forbid_unknown_fields`)."""


# The event log


class NewEvent(_Answer, frozen=True, kw_only=True):
    """An event to append. Without an `id` the client gives it one, so a retry is idempotent."""

    type: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    id: str | None = None


class EventMeta(_Answer, frozen=True, kw_only=True):
    """Who caused an event: the request's identity, plus causation and correlation ids."""

    tenant_id: str
    env: str
    project_id: str
    mode: str | None = None
    user_id: str | None = None
    surface_id: str | None = None
    app_id: str | None = None
    request_id: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None


class Event(_Answer, frozen=True, kw_only=True):
    """A stored event. `position` orders the partition (it is the SSE id); `version` its stream."""

    id: str
    type: str
    stream: str
    version: int
    position: int
    data: dict[str, Any]
    meta: EventMeta
    recorded_at: datetime


class AppendResult(_Answer, frozen=True, kw_only=True):
    """Where an append landed; a retried append answers the original positions."""

    first_position: int
    last_position: int
    stream_version: int


class Page(_Answer, frozen=True, kw_only=True):
    """One page of a partition: read on from `next` (it passes what a filter skipped) up to `head`."""

    events: list[Event]
    next: int
    head: int


class StreamPage(_Answer, frozen=True, kw_only=True):
    events: list[Event]
    version: int


# Views: writes answer where they landed (`position`, for X-Spine-Min-Position), reads the view


class MemoryWritten(_Answer, frozen=True, kw_only=True):
    key: str
    position: int
    status: str | None = None  # "deleted"


class MemoryValue(_Answer, frozen=True, kw_only=True):
    key: str
    value: Any = None
    found: bool
    expires_at: datetime | None = None


class MessageAdded(_Answer, frozen=True, kw_only=True):
    session_id: str
    index: int
    position: int


class Message(_Answer, frozen=True, kw_only=True):
    index: int
    role: str
    content: Any
    metadata: dict[str, Any] | None = None
    position: int
    recorded_at: str
    problem: dict[str, Any] | None = None  # why `content` or `metadata` is null (view.unreadable)


class Session(_Answer, frozen=True, kw_only=True):
    session_id: str
    messages: list[Message]


class EntryWritten(_Answer, frozen=True, kw_only=True):
    key: str
    version: int
    position: int


class Entry(_Answer, frozen=True, kw_only=True):
    key: str
    value: Any
    version: int
    written_by: str | None = None
    position: int
    updated_at: str
    problem: dict[str, Any] | None = None


class Board(_Answer, frozen=True, kw_only=True):
    run_id: str
    entries: list[Entry]


class UsageRecorded(_Answer, frozen=True, kw_only=True):
    """A usage as recorded; `warnings` are the soft limits it passed; `replayed` when its `id` was
    recorded before (the answer is the original's)."""

    position: int
    unit: str
    amount: float
    cost_usd: float = 0.0
    model: str | None = None
    run_id: str | None = None
    id: str | None = None
    warnings: list[dict[str, Any]] = msgspec.field(default_factory=list)
    totals: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    limits: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    replayed: bool = False


class Recorded(_Answer, frozen=True, kw_only=True):
    """An audit record or analytics event as recorded: its id and position."""

    id: str
    position: int


class BatchRecorded(_Answer, frozen=True, kw_only=True):
    ids: list[str]
    positions: list[int]
    position: int


class Records(_Answer, frozen=True, kw_only=True):
    """Audit records oldest first; `next` is the `after` of the next page, None on the last."""

    records: list[dict[str, Any]]
    next: str | None = None


class AnalyticsEvents(_Answer, frozen=True, kw_only=True):
    events: list[dict[str, Any]]
    next: str | None = None


class AnalyticsCounts(_Answer, frozen=True, kw_only=True):
    counts: list[dict[str, Any]]
    next: str | None = None


class SeoWritten(_Answer, frozen=True, kw_only=True):
    page: str
    version: int
    position: int
    status: str | None = None  # "deleted"


class SeoPage(_Answer, frozen=True, kw_only=True):
    page: str
    app_id: str
    surface_id: str
    title: str
    description: str | None = None
    canonical_url: str | None = None
    robots: str | None = None
    open_graph: dict[str, str] | None = None
    structured_data: Any = None
    version: int
    position: int
    updated_at: str
    updated_by: str | None = None


class SeoPages(_Answer, frozen=True, kw_only=True):
    """Pages of the caller's app and surface by slug (`title`, `version`, … each, no config)."""

    app_id: str
    surface_id: str
    pages: list[dict[str, Any]]
    next: str | None = None


class SaveWritten(_Answer, frozen=True, kw_only=True):
    kind: str
    id: str
    version: int
    position: int
    deleted: bool = False


class Save(_Answer, frozen=True, kw_only=True):
    """A save's latest version; in a listing, without its `body` (None)."""

    kind: str
    id: str
    name: str
    version: int
    updated_at: str
    updated_by: str | None = None
    position: int
    body: Any = None


class SaveVersion(Save, frozen=True, kw_only=True):
    """One version, tombstones (`deleted`) included; in a listing, without its `body`."""

    change: str
    deleted: bool = False


class Saves(_Answer, frozen=True, kw_only=True):
    kind: str
    saves: list[Save]
    next: str | None = None


class SaveVersions(_Answer, frozen=True, kw_only=True):
    kind: str
    id: str
    versions: list[SaveVersion]
    next: int | None = None


class SnapshotTaken(_Answer, frozen=True, kw_only=True):
    id: str
    version: int
    position: int


class Snapshot(_Answer, frozen=True, kw_only=True):
    id: str
    version: int
    state: Any
    taken_at: str
    taken_by: str | None = None
    position: int
    problem: dict[str, Any] | None = None


class Snapshots(_Answer, frozen=True, kw_only=True):
    id: str
    snapshots: list[Snapshot]
    next: int | None = None


# Identity


class Bootstrapped(_Answer, frozen=True, kw_only=True):
    tenant_id: str
    user_id: str
    token: str


class Token(_Answer, frozen=True, kw_only=True):
    token: str
    tenant_id: str
    user_id: str
    expires_at: datetime


class StreamTicket(_Answer, frozen=True, kw_only=True):
    """A short-lived, read-only credential for `?ticket=` on `GET /v1/events[/stream]`."""

    ticket: str
    expires_at: datetime


# KPIs


class KpiWritten(_Answer, frozen=True, kw_only=True):
    name: str
    version: int
    position: int


class Kpi(_Answer, frozen=True, kw_only=True):
    """A KPI's definition: `aggregation` is what a series point's `value` answers."""

    name: str
    unit: str
    aggregation: str
    description: str | None = None
    version: int
    position: int
    updated_at: str
    updated_by: str | None = None


class Kpis(_Answer, frozen=True, kw_only=True):
    kpis: list[Kpi]
    next: str | None = None


class KpiValuesRecorded(_Answer, frozen=True, kw_only=True):
    """Each value's event id, in the order sent; `position` is the highest of theirs."""

    name: str
    ids: list[str]
    position: int


class KpiPoint(_Answer, frozen=True, kw_only=True):
    """One bucket: exact count, sum, min, max, last; p50 and p95 within 1%."""

    start: str
    count: int
    sum: float
    min: float
    max: float
    last: float
    p50: float | None = None
    p95: float | None = None
    value: float | None = None


class KpiSeriesOf(_Answer, frozen=True, kw_only=True):
    dimension_value: str | None = None  # None: the KPI's total
    points: list[KpiPoint]


class KpiSeries(_Answer, frozen=True, kw_only=True):
    name: str
    unit: str
    aggregation: str
    bucket: str
    dimension: str
    start: str
    end: str
    series: list[KpiSeriesOf]


# Feature flags


class FlagWritten(_Answer, frozen=True, kw_only=True):
    key: str
    version: int
    position: int
    status: str | None = None  # "deleted"


class Flag(_Answer, frozen=True, kw_only=True):
    """A flag's definition, and who changed it last, when and why."""

    key: str
    type: str
    default: Any = None
    enabled: bool = True
    rules: list[dict[str, Any]] = msgspec.field(default_factory=list)
    description: str | None = None
    version: int
    position: int
    changed_at: str
    changed_by: str | None = None
    reason: str | None = None


class Flags(_Answer, frozen=True, kw_only=True):
    flags: list[Flag]
    next: str | None = None


class FlagVersion(_Answer, frozen=True, kw_only=True):
    """One change of a flag: `change` is `changed` (with the whole `flag`) or `deleted`."""

    key: str
    version: int
    position: int
    change: str
    changed_at: str
    changed_by: str | None = None
    reason: str | None = None
    flag: dict[str, Any] | None = None


class FlagHistory(_Answer, frozen=True, kw_only=True):
    key: str
    versions: list[FlagVersion]
    next: int | None = None


class FlagValue(_Answer, frozen=True, kw_only=True):
    """A flag's value for the caller; `reason`: off, rule (`rule` is its index), default, not_found."""

    value: Any = None
    reason: str
    rule: int | None = None
    version: int | None = None


class FlagEvaluations(_Answer, frozen=True, kw_only=True):
    flags: dict[str, FlagValue]
    position: int
    next: str | None = None


class FlagChange(_Answer, frozen=True, kw_only=True):
    """A flag's change, as `follow_flags` yields it: its `value` for the follower (`reason`: off,
    rule with `rule` its index, default; not_found once `deleted`), its `version`, and `position`,
    the change's place in the log (the frame's id, what a reconnection resumes after)."""

    key: str
    value: Any = None
    reason: str
    version: int
    deleted: bool = False
    rule: int | None = None
    position: int


# Page content


class PageWritten(_Answer, frozen=True, kw_only=True):
    """A new version of a page: `change` is draft, published or rolled_back; `from_version` the
    draft published, or the version rolled back to (None: saved or published directly)."""

    page: str
    version: int
    change: str
    from_version: int | None = None
    position: int


class PageDraft(_Answer, frozen=True, kw_only=True):
    """A page's latest draft; `page_version` (the ETag) is what `expected_version` names."""

    page: str
    app_id: str
    surface_id: str
    version: int
    page_version: int
    published_version: int | None = None
    title: str | None = None
    blocks: list[dict[str, Any]]
    saved_at: str
    saved_by: str | None = None


class PublishedPage(_Answer, frozen=True, kw_only=True):
    """A page's published content; `page_version` (the ETag) is what `expected_version` names."""

    page: str
    app_id: str
    surface_id: str
    version: int
    page_version: int
    change: str
    from_version: int | None = None
    draft_version: int | None = None
    title: str | None = None
    blocks: list[dict[str, Any]]
    published_at: str
    published_by: str | None = None


class PageSummary(_Answer, frozen=True, kw_only=True):
    page: str
    version: int
    change: str
    title: str | None = None
    draft_version: int | None = None
    published_version: int | None = None
    updated_at: str
    updated_by: str | None = None


class Pages(_Answer, frozen=True, kw_only=True):
    app_id: str
    surface_id: str
    pages: list[PageSummary]
    next: str | None = None


class PageVersion(_Answer, frozen=True, kw_only=True):
    """One version of a page; in a history listing, without its `blocks` (None)."""

    version: int
    change: str
    title: str | None = None
    from_version: int | None = None
    at: str
    by: str | None = None
    blocks: list[dict[str, Any]] | None = None


class PageVersions(_Answer, frozen=True, kw_only=True):
    page: str
    versions: list[PageVersion]
    next: int | None = None


# Tables


class TableWritten(_Answer, frozen=True, kw_only=True):
    table: str
    version: int
    position: int


class TableDefinition(_Answer, frozen=True, kw_only=True):
    """A table's definition (`schema` None: any JSON is a row); in a listing, without its schema."""

    table: str
    schema: Any = None
    description: str | None = None
    version: int
    position: int | None = None
    updated_at: str
    updated_by: str | None = None


class Tables(_Answer, frozen=True, kw_only=True):
    tables: list[TableDefinition]
    next: str | None = None


class RowWritten(_Answer, frozen=True, kw_only=True):
    table: str
    key: str
    version: int
    position: int
    deleted: bool = False


class Row(_Answer, frozen=True, kw_only=True):
    """A version of a row (`change`: written or deleted); in a row's history, without its `value`."""

    table: str
    key: str
    version: int
    change: str
    deleted: bool = False
    position: int
    updated_at: str
    updated_by: str | None = None
    value: Any = None


class Rows(_Answer, frozen=True, kw_only=True):
    table: str
    rows: list[Row]
    next: str | None = None


class RowVersions(_Answer, frozen=True, kw_only=True):
    table: str
    key: str
    versions: list[Row]
    next: int | None = None


# Realtime threads and canvases


class ThreadWritten(_Answer, frozen=True, kw_only=True):
    """A thread's (or canvas's) registry after a write: `version` (its ETag) is what
    `expected_version` names; `changes` the event types appended, in order (none: nothing changed)."""

    kind: str
    id: str
    version: int
    position: int
    changes: list[str] = msgspec.field(default_factory=list)


class Thread(_Answer, frozen=True, kw_only=True):
    """A registry entry: its owner, members, the surface it began on, whether it is archived."""

    kind: str
    id: str
    title: str | None = None
    owner: str
    members: list[str]
    surface_id: str
    created_at: str
    created_by: str | None = None
    archived: bool = False
    archived_at: str | None = None
    version: int
    change: str
    position: int
    updated_at: str
    updated_by: str | None = None


class Threads(_Answer, frozen=True, kw_only=True):
    """The caller's threads (`threads`) or canvases (`canvases`); `next` is the cursor (None: last page)."""

    threads: list[Thread] = msgspec.field(default_factory=list)
    canvases: list[Thread] = msgspec.field(default_factory=list)
    next: str | None = None

    @property
    def items(self) -> list[Thread]:
        """The entries of this page, whichever kind was listed."""
        return self.threads or self.canvases


class MessagePosted(_Answer, frozen=True, kw_only=True):
    id: str
    version: int
    position: int


class ThreadMessage(_Answer, frozen=True, kw_only=True):
    id: str
    version: int
    position: int
    author: str | None = None
    surface_id: str | None = None
    content: Any = None
    metadata: Any = None
    posted_at: str


class ThreadMessages(_Answer, frozen=True, kw_only=True):
    """Messages by version; `next` is the `after` of the next page (None: no more)."""

    kind: str
    id: str
    messages: list[ThreadMessage]
    next: int | None = None
    version: int


# Objects


class StoredObject(_Answer, frozen=True, kw_only=True):
    """An object's new version (its ETag) after a store or a completed upload."""

    key: str
    version: int
    size: int
    sha256: str
    content_type: str
    position: int


class ObjectInfo(_Answer, frozen=True, kw_only=True):
    key: str
    size: int
    content_type: str
    sha256: str
    version: int
    position: int
    stored_at: str
    stored_by: str | None = None
    via: str = "direct"  # `signed`: uploaded by a browser with an upload URL


class ObjectUsage(_Answer, frozen=True, kw_only=True):
    """What the project's objects hold in all, as the index counts them."""

    bytes: int
    objects: int


class Objects(_Answer, frozen=True, kw_only=True):
    """Objects by key; `next` is the `after` of the next page (None: last page)."""

    objects: list[ObjectInfo]
    next: str | None = None
    usage: ObjectUsage | None = None


class ObjectDeleted(_Answer, frozen=True, kw_only=True):
    key: str
    deleted: bool
    version: int
    position: int


class SignedUrl(_Answer, frozen=True, kw_only=True):
    """A request to send as it is until `expires_at`: `method` `url` with `headers`, or, with
    `fields`, an HTML form POST of them and then the file. An upload's `complete_url` (or
    `complete_upload(key, upload_id)`) makes it the object; Spine's own URL completes at once."""

    method: str
    url: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    fields: dict[str, str] = msgspec.field(default_factory=dict)
    expires_at: datetime
    upload_id: str | None = None
    complete_url: str | None = None
    max_bytes: int | None = None


class ObjectHead(_Answer, frozen=True, kw_only=True):
    """What the headers of an object's answer say: `size` is the object's, `length` what this
    answer carries (a range's); `content_range` names the range (None: the whole object)."""

    key: str
    version: int
    size: int
    length: int
    content_type: str
    etag: str
    last_modified: str | None = None
    content_range: str | None = None


class ObjectContent(_Answer, frozen=True, kw_only=True):
    """An object's bytes (or a range of them), read whole."""

    head: ObjectHead
    content: bytes
