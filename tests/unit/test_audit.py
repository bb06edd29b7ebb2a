"""The audit view's pure rules: records of each source, time-ordered keys, queries and merging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.audit import (
    AUDIT_PROJECT,
    BY_ACTION,
    BY_ACTOR,
    BY_ACTOR_ACTION,
    BY_ID,
    COLLECTION,
    RECORDED,
    AuditProjection,
    AuditRecord,
    concerns,
    index,
    merge,
    part,
    query_audit,
    record_of,
    recorded_event,
    scope,
    time_key,
    time_text,
)
from domain.errors import InvalidCursor, InvalidRequest
from domain.events import Event, EventMeta
from domain.views import Upsert

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
PROJECTION = AuditProjection()


def event(
    type_: str = "memory.set",
    data: dict[str, Any] | None = None,
    *,
    position: int = 1,
    at: datetime = T0,
    project: str = "p1",
    user: str | None = "u1",
    stream: str = "memory:u1:k",
) -> Event:
    meta = EventMeta(
        tenant_id="t1", env="dev", project_id=project, user_id=user, request_id=f"req-{position}"
    )
    return Event(
        id=f"e{position}-{project}",
        type=type_,
        stream=stream,
        version=1,
        position=position,
        data=data or {},
        meta=meta,
        recorded_at=at,
    )


def violation(position: int = 1, project_id: str | None = "p1", at: datetime = T0) -> Event:
    data = {"field": "tenant_id", "source": "header", "sent": "t2", "actual": "t1", "user_id": "u1",
            "request_id": f"req-{position}", "method": "GET", "path": "/v1/events", "project_id": project_id}  # fmt: skip
    return event("auth.violation", data, position=position, at=at, project=AUDIT_PROJECT, stream="audit:auth")


def upserts(event_: Event) -> dict[tuple[str, str], dict[str, Any]]:
    ops = PROJECTION.apply(event_)
    assert all(isinstance(op, Upsert) and op.position == event_.position for op in ops)
    return {(op.collection, op.key): op.data for op in ops if isinstance(op, Upsert)}


# Records


def test_a_write_is_recorded_by_type_and_stream_and_its_data_never_leaks() -> None:
    written = event(data={"user_id": "u1", "key": "k", "value": "the-private-value"}, position=7)
    record = record_of(written)
    assert record == AuditRecord(
        id="e7-p1",
        position=7,
        time="2025-03-01T12:00:00.000000Z",
        actor="u1",
        action="memory.set",
        resource="memory:u1:k",
        request_id="req-7",
        source="write",
        details=None,
    )
    assert b"the-private-value" not in msgspec.json.encode(PROJECTION.apply(written))


def test_a_client_record_uses_the_clients_action_resource_and_details() -> None:
    new = recorded_event("report.exported", "report:42", {"rows": 3}, event_id="r1")
    record = record_of(event(new.type, new.data, stream="audit:client"))
    assert (record.source, record.action, record.resource, record.details) == (
        "client",
        "report.exported",
        "report:42",
        {"rows": 3},
    )
    assert record.actor == "u1"  # the event's, never a field of the data


@pytest.mark.parametrize(
    "data",
    [{}, {"action": "Bad Action", "resource": "r"}, {"action": "a", "resource": ""}, {"action": 1}],
)
def test_an_audit_recorded_event_of_another_shape_is_an_ordinary_write(data: dict[str, Any]) -> None:
    # POST /v1/events may append any type with any data: the projection must not fail on it.
    record = record_of(event(RECORDED, {**data, "secret": "x"}, stream="mine"))
    assert (record.source, record.action, record.resource, record.details) == (
        "write",
        RECORDED,
        "mine",
        None,
    )


def test_security_events_of_the_trail_keep_their_details() -> None:
    record = record_of(violation(3))
    assert (record.source, record.action, record.resource, record.actor) == (
        "security",
        "auth.violation",
        "/v1/events",
        "u1",
    )
    assert record.details is not None
    assert (record.details["project_id"], record.details["sent"]) == ("p1", "t2")
    switched = event(
        "route.backend_switched",
        {"route": "memory_store/t1/dev/*", "project_id": "*", "old_backend": "sqlite"},
        project=AUDIT_PROJECT,
        stream="audit:routing",
        user="admin",
    )
    assert (record_of(switched).resource, record_of(switched).actor) == (
        "route:memory_store/t1/dev/*",
        "admin",
    )


def test_a_security_type_appended_to_a_project_is_no_security_record() -> None:
    forged = event("auth.violation", {"path": "/v1/x", "project_id": "p1"}, stream="audit:auth")
    assert record_of(forged).source == "write"
    assert record_of(forged).details is None


def test_security_records_concern_their_project_or_every_project() -> None:
    assert concerns(record_of(violation(project_id="p1")), "p1")
    assert not concerns(record_of(violation(project_id="p1")), "p2")
    assert concerns(record_of(violation(project_id="*")), "p2")
    assert not concerns(record_of(violation(project_id=None)), "p1")
    assert concerns(record_of(event()), "p1")  # the project's own records: its partition decides


# Keys


def test_each_record_is_stored_under_time_actor_action_and_id() -> None:
    written = event(position=5)
    key = time_key(written)
    assert key == "2025-03-01T12:00:00.000000Z|0000000000000000005|p"
    assert set(upserts(written)) == {
        (COLLECTION, key),
        (BY_ACTOR, "2:u1|" + key),
        (BY_ACTION, "10:memory.set|" + key),
        (BY_ACTOR_ACTION, "2:u1|10:memory.set|" + key),
        (BY_ID, "e5-p1"),
    }
    assert all(data == msgspec.to_builtins(record_of(written)) for data in upserts(written).values())


def test_a_record_without_actor_is_not_indexed_by_actor() -> None:
    assert {collection for collection, _ in upserts(event(user=None))} == {COLLECTION, BY_ACTION, BY_ID}


def test_security_keys_start_with_the_project_they_concern() -> None:
    for project_id, prefix in (("p1", "2:p1|"), ("*", "1:*|"), (None, "0:|")):
        keys = upserts(violation(2, project_id))
        key = time_key(violation(2, project_id))
        assert key.endswith("|a")  # the trail's origin: never equal to a project key
        assert (COLLECTION, prefix + key) in keys
        assert (BY_ACTOR_ACTION, prefix + "2:u1|14:auth.violation|" + key) in keys
        assert (BY_ID, "e2-_audit") in keys


def test_length_prefixes_keep_one_actor_out_of_anothers_range() -> None:
    assert not part("ab").startswith(part("a"))
    assert not (part("a|1") + part("x")).startswith(part("a") + part("1"))
    assert index("u1", None) == (BY_ACTOR, "2:u1|")
    assert index(None, "memory.set") == (BY_ACTION, "10:memory.set|")
    assert index(None, None) == (COLLECTION, "")
    assert scope("*") == "1:*|"


times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30))])
)  # fmt: skip


@given(st.lists(st.tuples(times, st.integers(1, 2**63 - 1), st.booleans()), min_size=2, max_size=30))
def test_keys_sort_by_time_then_position(stamps: list[tuple[datetime, int, bool]]) -> None:
    events = [
        event(at=at, position=position, project=AUDIT_PROJECT if trail else "p1")
        for at, position, trail in stamps
    ]
    by_key = sorted(events, key=time_key)
    by_time = sorted(events, key=lambda e: (e.recorded_at, e.position, e.meta.project_id != AUDIT_PROJECT))
    assert [time_key(e) for e in by_key] == [time_key(e) for e in by_time]


def test_time_text_is_fixed_width_utc() -> None:
    assert time_text(datetime(5, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0005-01-02T03:04:05.000000Z"
    assert time_text(datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))) == time_text(T0)
    assert time_text(datetime(2025, 3, 1, 12, 0)) == time_text(T0)  # naive is UTC


# Queries


def test_a_query_is_a_range_of_one_index() -> None:
    query = query_audit(actor="u1", action="memory.set", after=None, start=None, end=None)
    assert (query.collection, query.prefix) == (BY_ACTOR_ACTION, "2:u1|10:memory.set|")
    assert (query.after, query.before) == ("", None)
    ranged = query_audit(
        actor=None, action=None, after=None, start="2025-03-01T13:00:00+01:00", end="2025-03-02"
    )
    assert (ranged.after, ranged.before) == ("2025-03-01T12:00:00.000000Z", "2025-03-02T00:00:00.000000Z")
    assert query_audit(actor="", action="", after="", start="", end="").collection == COLLECTION


def test_the_later_of_cursor_and_from_wins() -> None:
    cursor = time_key(event(position=9))
    assert (
        query_audit(actor=None, action=None, after=cursor, start="2025-01-01T00:00:00Z", end=None).after
        == cursor
    )
    late = query_audit(actor=None, action=None, after=cursor, start="2025-06-01T00:00:00Z", end=None)
    assert late.after == "2025-06-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "12", "2025-03-01T12:00:00.000000Z|0000000000000000005|x", "2025-03-01T12:00:00Z|5|p",
     "2025-03-01T12:00:00.000000Z|0000000000000000005|p ", "٢٠٢٥-03-01T12:00:00.000000Z|0000000000000000005|p"],
)  # fmt: skip
def test_a_cursor_the_view_did_not_issue_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        query_audit(actor=None, action=None, after=cursor, start=None, end=None)


@pytest.mark.parametrize("raw", ["yesterday", "2025-13-01", "0001-01-01T00:00:00+05:00"])
def test_a_time_that_is_not_iso_8601_is_invalid(raw: str) -> None:
    with pytest.raises(InvalidRequest):
        query_audit(actor=None, action=None, after=None, start=raw, end=None)


def keyed(*keys: str) -> list[tuple[str, dict[str, Any]]]:
    return [(key, {"key": key}) for key in keys]


def test_merging_interleaves_sources_and_says_when_more_remain() -> None:
    project, mine, tenant_wide = keyed("a", "c", "e"), keyed("b", "f"), keyed("d")
    page, cursor = merge([project, mine, tenant_wide], limit=4, before=None)
    assert ([k for k, _ in page], cursor) == (["a", "b", "c", "d"], "d")
    page, cursor = merge([project, mine, tenant_wide], limit=6, before=None)
    assert ([k for k, _ in page], cursor) == (["a", "b", "c", "d", "e", "f"], None)  # exactly full: no next
    page, cursor = merge([project, mine, tenant_wide], limit=4, before="e")
    assert ([k for k, _ in page], cursor) == (["a", "b", "c", "d"], None)  # the rest is past `to`
    assert merge([[], []], limit=3, before=None) == ([], None)


def test_a_rebuilt_view_equals_the_incremental_one() -> None:
    events = [event(position=1), violation(1), event(RECORDED, {"action": "a", "resource": "r"}, position=2)]
    once = {key: data for e in events for key, data in upserts(e).items()}
    again = {key: data for e in [*events, *events] for key, data in upserts(e).items()}
    assert once == again
    assert len(once) == 15  # five documents per record: time, actor, action, actor+action, id
