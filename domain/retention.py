"""Retention: how long a project's streams keep their events, as control-plane data.

A tenant's admins set rules per stream prefix (`PUT /v1/retention`); a run (the background job or
`spine retention run`) reads a partition once, plans which events the rules expire, and removes
them from the log (`EventSpine.remove`). Positions are never reused and never move: a reader asking
for a removed range gets the next surviving event, told so by the partition's truncation mark
(`RetentionApplied.through`, answered as `X-Spine-Truncated`).

What a run always keeps, whatever the rules say:
- a stream's last event: it carries the stream's version (so `expected_version` keeps its meaning
  and no version is ever reused), and every decision of Spine reads it (`app.usecases.unit_of_work`:
  each event carries the state its aggregate decides on);
- the events a stream's last event points to, which its next decision reads: a thread's or
  canvas's registry event (`domain.realtime`), a page's published content and latest draft
  (`domain.pages`);
- streams Spine writes for retention itself (`KEPT_PREFIX`).
An event goes when it breaks any limit of the most specific rule (the longest prefix matching its
stream): older than `max_age_days`, or not among the stream's `keep_last` newest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Final

import msgspec

from domain.events import Event
from domain.identifiers import NAME_PATTERN, Identifier
from domain.pages import STREAM_PREFIX as PAGE_STREAMS
from domain.pages import PageWritten
from domain.realtime import KINDS as REALTIME_KINDS
from domain.realtime import registry_version_of

MAX_RULES: Final = 100
SET: Final = "retention.set"
APPLIED: Final = "retention.applied"
KEPT_PREFIX: Final = "_retention:"

StreamPrefix = Annotated[
    str, msgspec.Meta(pattern=NAME_PATTERN, description="streams whose name starts with it, e.g. session:")
]


class RetentionRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One prefix's limits: at least one of them."""

    stream_prefix: StreamPrefix
    max_age_days: Annotated[int, msgspec.Meta(ge=1, le=36_500)] | None = None
    keep_last: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] | None = None

    def __post_init__(self) -> None:
        if self.max_age_days is None and self.keep_last is None:
            raise ValueError("a rule needs max_age_days, keep_last or both")


Rules = Annotated[list[RetentionRule], msgspec.Meta(max_length=MAX_RULES)]


class RetentionSet(msgspec.Struct, frozen=True, kw_only=True):
    """The event (`retention.set`, stream `retention:{tenant}:{project}`): a project's rules replaced."""

    tenant_id: Identifier
    project_id: Identifier
    rules: Rules


def check_distinct(rules: Rules) -> None:
    """What a request's rules must be beyond each one's constraints: one rule per prefix."""
    prefixes = [rule.stream_prefix for rule in rules]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError("each stream_prefix may have one rule")


class RetentionApplied(msgspec.Struct, frozen=True, kw_only=True):
    """The event (`retention.applied`, stream `retention:{tenant}:{project}:{env}`), appended
    *before* a run removes anything: events at or below `through` may be gone (a reader is told
    before any is), `removed` is how many the run planned to remove."""

    tenant_id: Identifier
    env: Identifier
    project_id: Identifier
    through: int
    removed: int
    at: datetime


def rule_for(rules: Iterable[RetentionRule], stream: str) -> RetentionRule | None:
    """The most specific rule of `stream`: the longest prefix it starts with."""
    best: RetentionRule | None = None
    for rule in rules:
        if stream.startswith(rule.stream_prefix) and (
            best is None or len(rule.stream_prefix) > len(best.stream_prefix)
        ):
            best = rule
    return best


@dataclass
class _Stream:
    rule: RetentionRule
    expired: list[tuple[int, int]] = field(default_factory=list)  # (version, position), by age
    counted: list[tuple[int, int]] = field(default_factory=list)  # (version, position), every one
    last_version: int = 0
    pinned: frozenset[int] = frozenset()  # versions its last event points to: never removed


def _pointed_to(event: Event) -> frozenset[int]:
    """The versions of its stream that `event`, were it the last, points to."""
    if event.stream.split(":", 1)[0] in REALTIME_KINDS:
        return frozenset({registry_version_of(event)})
    if event.stream.startswith(PAGE_STREAMS):
        page = msgspec.convert(event.data, PageWritten)
        return frozenset(v for v in (page.draft_version, page.published_version) if v is not None)
    return frozenset()


@dataclass
class Plan:
    """What a run removes from one partition: positions per stream, in order."""

    removals: dict[str, list[int]]
    scanned: int

    @property
    def positions(self) -> list[int]:
        return sorted(p for positions in self.removals.values() for p in positions)

    @property
    def count(self) -> int:
        return sum(len(positions) for positions in self.removals.values())


class Planner:
    """Plans one partition's run from its events, seen once, in position order.

    It remembers two integers per event its rules govern (version and position), so planning a
    large partition costs memory in proportion to what the rules cover, not to event sizes.
    """

    def __init__(self, rules: Iterable[RetentionRule], now: datetime) -> None:
        self._rules = list(rules)
        self._now = now
        self._streams: dict[str, _Stream | None] = {}
        self._scanned = 0

    def see(self, event: Event) -> None:
        """The partition's next event."""
        self._scanned += 1
        stream = event.stream
        if stream in self._streams:
            state = self._streams[stream]
        else:
            rule = None if stream.startswith(KEPT_PREFIX) else rule_for(self._rules, stream)
            state = self._streams[stream] = None if rule is None else _Stream(rule)
        if state is None:
            return
        version, position, rule = event.version, event.position, state.rule
        state.last_version = max(state.last_version, version)
        if rule.max_age_days is not None and event.recorded_at < self._now - timedelta(
            days=rule.max_age_days
        ):
            state.expired.append((version, position))
        if rule.keep_last is not None:
            state.counted.append((version, position))
        state.pinned = _pointed_to(event)

    def plan(self) -> Plan:
        removals: dict[str, list[int]] = {}
        for stream, state in self._streams.items():
            if state is None:
                continue
            gone = {p for v, p in state.expired if v < state.last_version and v not in state.pinned}
            if state.rule.keep_last is not None:
                oldest_kept = state.last_version - state.rule.keep_last
                gone.update(p for v, p in state.counted if v <= oldest_kept and v not in state.pinned)
            if gone:
                removals[stream] = sorted(gone)
        return Plan(removals=removals, scanned=self._scanned)
