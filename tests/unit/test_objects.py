"""The object domain's rules, pure: keys and their stream names, ranges, and the index's fold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.blobs import ByteRange
from domain.byte_ranges import byte_range
from domain.errors import InvalidRequest, ObjectNotFound, PreconditionFailed, RangeNotSatisfiable
from domain.events import STREAM_PATTERN, Event, EventMeta, NewEvent
from domain.identifiers import matches
from domain.objects import (
    DELETED,
    MAX_STREAM,
    STORED,
    USAGE,
    USAGE_KEY,
    ObjectsProjection,
    ObjectStored,
    check_content_type,
    check_key,
    decide_delete,
    decide_store,
    stream_of,
)
from domain.views import Upsert, ViewDoc

segments = st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s and s not in (".", ".."))
keys = st.lists(segments, min_size=1, max_size=5).map("/".join)


def valid(key: str) -> bool:
    try:
        check_key(key)
    except InvalidRequest:
        return False
    return True


@given(keys, keys)
def test_a_key_s_stream_name_is_a_stream_name_and_no_other_key_s(first: str, second: str) -> None:
    for key in (first, second):
        if valid(key):
            assert matches(stream_of(key), STREAM_PATTERN), key
            assert len(stream_of(key)) <= MAX_STREAM
    if valid(first) and valid(second) and first != second:
        assert stream_of(first) != stream_of(second)


@pytest.mark.parametrize(
    "key", ["", "/a", "a/", "a//b", "a/./b", "../a", "a\x00", "a\nb", "a\x7f", "a\u0085", "x" * 250]
)
def test_what_is_no_key(key: str) -> None:
    with pytest.raises(InvalidRequest):
        check_key(key)


def test_spelling() -> None:
    assert stream_of("media/2026/a.png") == "object:media~2026~a.png"
    assert stream_of("a~b=c é") == "object:a=7Eb=3Dc=20=C3=A9"
    assert check_key("x" * 249) == "x" * 249
    assert check_content_type(None) == "application/octet-stream"
    assert check_content_type(' text/plain; charset="utf-8" ') == 'text/plain; charset="utf-8"'
    for refused in ("text", "text/plain\r\nX-Evil: 1", "a b/c", "x/" + "y" * 300):
        with pytest.raises(InvalidRequest):
            check_content_type(refused)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", ByteRange(first=0, last=0)),
        ("bytes=8-", ByteRange(first=8, last=9)),
        ("bytes=-3", ByteRange(first=7, last=9)),
        ("bytes=-30", ByteRange(first=0, last=9)),
        ("bytes=2-99", ByteRange(first=2, last=9)),
        ("bytes=3-2", None),
        ("bytes=0-1, 4-5", None),
        ("bytes=", None),
        ("pages=1-2", None),
        ("bytes=1-2\n", None),
    ],
)
def test_one_range(header: str | None, expected: ByteRange | None) -> None:
    assert byte_range(header, 10) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0), ("bytes=-5", 0)]
)
def test_no_byte_of_it(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, size)


def stored(key: str, blob: str, size: int) -> ObjectStored:
    return ObjectStored(key=key, blob=blob, size=size, content_type="a/b", sha256="0" * 64, user_id="u1")


def event(position: int, version: int, decided: NewEvent) -> Event:
    meta = EventMeta(tenant_id="t", env="dev", project_id="p", user_id="u1")
    return Event(id=f"e{position}", type=decided.type, stream="object:k", version=version, position=position,
                 data=decided.data, meta=meta, recorded_at=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip


def test_decisions_name_what_they_replace_and_the_usage_folds_once() -> None:
    first = event(1, 1, decide_store(stored("k", "b1", 10), None))
    assert (first.data["replaced_blob"], first.data["replaced_size"]) == (None, 0)
    with pytest.raises(PreconditionFailed):
        decide_store(stored("k", "b2", 4), first, create_only=True)
    second = event(2, 2, decide_store(stored("k", "b2", 4), first))
    assert (second.data["replaced_blob"], second.data["replaced_size"]) == ("b1", 10)
    gone = event(3, 3, decide_delete("k", second, "u1"))
    assert (gone.type, gone.data["blob"], gone.data["size"]) == (DELETED, "b2", 4)
    with pytest.raises(ObjectNotFound):
        decide_delete("k", gone, "u1")
    again = event(4, 4, decide_store(stored("k", "b3", 7), gone, create_only=True))
    assert (again.type, again.data["replaced_blob"]) == (STORED, None)

    projection, usage = ObjectsProjection(), None
    totals = []
    for each in (first, second, second, gone, again, first):  # redelivered events count once
        docs = {} if usage is None else {(USAGE, USAGE_KEY): usage}
        ops = projection.fold(each, docs)
        for op in ops:
            if isinstance(op, Upsert) and op.collection == USAGE:
                usage = ViewDoc(collection=USAGE, key=USAGE_KEY, position=op.position, data=op.data)
        assert usage is not None
        totals.append((usage.data["bytes"], usage.data["objects"]))
    assert totals == [(10, 1), (4, 1), (4, 1), (0, 0), (7, 1), (7, 1)]
