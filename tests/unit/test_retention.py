"""Retention planning: which events a run removes, and what it always keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.events import Event, EventMeta
from domain.realtime import Posted
from domain.retention import KEPT_PREFIX, Planner, RetentionRule, rule_for

NOW = datetime(2026, 12, 1, tzinfo=UTC)
META = EventMeta(tenant_id="t1", env="dev", project_id="p1")


def log(*streams: str, age_days: list[float] | None = None) -> list[Event]:
    versions: dict[str, int] = {}
    events = []
    for index, stream in enumerate(streams):
        versions[stream] = versions.get(stream, 0) + 1
        age = timedelta(days=age_days[index] if age_days else 0)
        events.append(
            Event(
                id=f"e{index}",
                type="thing.done",
                stream=stream,
                version=versions[stream],
                position=index + 1,
                data={},
                meta=META,
                recorded_at=NOW - age,
            )
        )
    return events


def plan(events: list[Event], *rules: RetentionRule) -> dict[str, list[int]]:
    planner = Planner(rules, NOW)
    for event in events:
        planner.see(event)
    return planner.plan().removals


def test_the_longest_prefix_rules_and_unmatched_streams_keep_everything() -> None:
    broad, narrow = (
        RetentionRule(stream_prefix="s", keep_last=1),
        RetentionRule(stream_prefix="session:", keep_last=2),
    )
    assert rule_for([broad, narrow], "session:1") is narrow
    assert rule_for([broad, narrow], "sx") is broad
    assert rule_for([broad, narrow], "other") is None
    events = log("session:1", "session:1", "session:1", "sx", "sx", "other", "other")
    assert plan(events, broad, narrow) == {"session:1": [1], "sx": [4]}


def test_max_age_and_keep_last_together_remove_what_breaks_either() -> None:
    events = log("a", "a", "a", "a", "a", age_days=[40, 40, 1, 1, 1])
    rule = RetentionRule(stream_prefix="a", max_age_days=30, keep_last=4)
    assert plan(events, rule) == {"a": [1, 2]}
    assert plan(events, RetentionRule(stream_prefix="a", keep_last=2)) == {"a": [1, 2, 3]}


def test_a_streams_last_event_stays_however_old() -> None:
    events = log("a", "a", age_days=[90, 90])
    assert plan(events, RetentionRule(stream_prefix="a", max_age_days=1)) == {"a": [1]}


def test_streams_retention_writes_itself_are_never_planned() -> None:
    events = log(f"{KEPT_PREFIX}x", f"{KEPT_PREFIX}x", age_days=[90, 90])
    assert plan(events, RetentionRule(stream_prefix="_", max_age_days=1)) == {}


def test_a_threads_registry_event_its_last_message_names_stays() -> None:
    events = log("thread:t", "thread:t", "thread:t", "thread:t", age_days=[90] * 4)
    events[0] = msgspec.structs.replace(events[0], type="thread.created")
    posted = msgspec.to_builtins(Posted(content="hi", registry_version=1))
    events[1:] = [msgspec.structs.replace(e, type="thread.message_posted", data=posted) for e in events[1:]]
    assert plan(events, RetentionRule(stream_prefix="thread:", max_age_days=1)) == {"thread:t": [2, 3]}


def test_a_rule_needs_a_limit() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_age_days, keep_last"):
        msgspec.convert({"stream_prefix": "a"}, RetentionRule)


@given(
    streams=st.lists(st.sampled_from(["a:1", "a:2", "b"]), min_size=1, max_size=60),
    keep=st.integers(min_value=1, max_value=5),
)
def test_keep_last_leaves_exactly_the_newest_of_each_stream(streams: list[str], keep: int) -> None:
    events = log(*streams)
    removed = {
        p
        for positions in plan(events, RetentionRule(stream_prefix="a:", keep_last=keep)).values()
        for p in positions
    }
    survivors = [e for e in events if e.position not in removed]
    for stream in set(streams):
        mine = [e.version for e in events if e.stream == stream]
        kept = [e.version for e in survivors if e.stream == stream]
        assert kept == (mine[-keep:] if stream.startswith("a:") else mine)


def test_a_pages_published_content_and_latest_draft_stay() -> None:
    stream = "page_content:4:app1:3:web:home"
    events = log(*[stream] * 5, age_days=[90] * 5)
    kinds = [
        ("page_content.published", {"draft_version": None}),  # v1
        ("page_content.draft_saved", {"published_version": 1}),  # v2
        ("page_content.published", {"draft_version": 2}),  # v3
        ("page_content.draft_saved", {"published_version": 3}),  # v4
        ("page_content.draft_saved", {"published_version": 3}),  # v5: the last
    ]
    base = {"app_id": "app1", "surface_id": "web", "page": "home", "title": "t", "blocks": []}
    events = [
        msgspec.structs.replace(e, type=kind, data={**base, **data})
        for e, (kind, data) in zip(events, kinds, strict=True)
    ]
    assert plan(events, RetentionRule(stream_prefix="page_content:", keep_last=1)) == {stream: [1, 2, 4]}
