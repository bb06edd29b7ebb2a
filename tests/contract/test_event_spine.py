"""The EventSpine contract: one suite, run against every adapter.

An adapter is done when this whole file passes against its real peer.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import msgspec
import pytest

from adapters.local_notifier import LocalNotifier
from domain.append import AppendRequest
from domain.errors import (
    IdempotencyConflict,
    InvalidCursor,
    InvalidRequest,
    PositionConflict,
    VersionConflict,
)
from domain.events import ANY, NO_STREAM, Event, EventMeta, ExpectedVersion, NewEvent, event_decoder
from domain.partition import Partition
from domain.ports import EventSpine

P = Partition(tenant_id="t1", env="dev", project_id="p1")
OTHER = Partition(tenant_id="t2", env="dev", project_id="p1")


def req(
    stream: str,
    *types: str,
    ids: list[str] | None = None,
    expected: ExpectedVersion = ANY,
    partition: Partition = P,
) -> AppendRequest:
    events = [
        NewEvent(type=t, data={"n": i}, id=ids[i] if ids else None)
        for i, t in enumerate(types or ("thing.done",))
    ]
    meta = EventMeta(tenant_id=partition.tenant_id, env=partition.env, project_id=partition.project_id)
    return AppendRequest(stream=stream, events=events, expected_version=expected, meta=meta)


async def all_events(spine: EventSpine, partition: Partition = P) -> list[Event]:
    events: list[Event] = []
    cursor = 0
    while True:
        page = await spine.read(partition, after=cursor, limit=333)
        events.extend(page.events)
        if page.next >= page.head:
            return events
        cursor = page.next


async def test_positions_are_gapless_and_versions_count_per_stream(spine: EventSpine) -> None:
    await spine.append(P, req("a", "x.one"))
    await spine.append(P, req("b", "x.one", "x.two"))
    result = await spine.append(P, req("a", "x.three"))

    assert result.first_position == result.last_position == 4
    assert result.stream_version == 2
    events = await all_events(spine)
    assert [(e.position, e.stream, e.version) for e in events] == [
        (1, "a", 1),
        (2, "b", 1),
        (3, "b", 2),
        (4, "a", 2),
    ]
    assert await spine.head(P) == 4


async def test_stored_event_carries_data_meta_and_a_uuid7_id(spine: EventSpine) -> None:
    await spine.append(P, req("a", "x.one"))
    [event] = await all_events(spine)
    assert event.type == "x.one"
    assert event.data == {"n": 0}
    assert event.meta.tenant_id == "t1"
    assert event.id[14] == "7"  # UUID version nibble
    assert event.recorded_at.tzinfo is not None


async def test_a_batch_is_atomic_and_contiguous(spine: EventSpine) -> None:
    await spine.append(P, req("other", "x"))
    result = await spine.append(P, req("a", "x.1", "x.2", "x.3"))
    assert (result.first_position, result.last_position, result.stream_version) == (2, 4, 3)

    with pytest.raises(VersionConflict):
        await spine.append(P, req("a", "x.4", "x.5", expected=1))
    assert await spine.head(P) == 4
    _, version = await spine.read_stream(P, "a")
    assert version == 3


@pytest.mark.parametrize(
    ("expected", "ok"), [(2, True), (1, False), (3, False), (NO_STREAM, False), (ANY, True), (0, False)]
)
async def test_expected_version_on_an_existing_stream(
    spine: EventSpine, expected: ExpectedVersion, ok: bool
) -> None:
    await spine.append(P, req("a", "x", "y"))
    if ok:
        assert (await spine.append(P, req("a", "z", expected=expected))).stream_version == 3
        return
    with pytest.raises(VersionConflict) as caught:
        await spine.append(P, req("a", "z", expected=expected))
    assert caught.value.actual == 2
    assert caught.value.error_code == "spine.version_conflict"
    assert await spine.head(P) == 2


@pytest.mark.parametrize("expected", [NO_STREAM, 0, ANY])
async def test_expected_version_on_a_new_stream(spine: EventSpine, expected: ExpectedVersion) -> None:
    result = await spine.append(P, req("fresh", "x", expected=expected))
    assert result.stream_version == 1


async def test_a_retried_append_returns_the_original_positions_and_appends_nothing(spine: EventSpine) -> None:
    first = await spine.append(P, req("a", "x", "y", ids=["e-1", "e-2"], expected=NO_STREAM))
    await spine.append(P, req("b", "z"))
    # The retry carries the now-stale expected version: the ids win, as the first try succeeded.
    again = await spine.append(P, req("a", "x", "y", ids=["e-1", "e-2"], expected=NO_STREAM))
    assert again == first
    assert await spine.head(P) == 3


@pytest.mark.parametrize(
    ("stream", "ids"),
    [("a", ["e-1", "e-new"]), ("b", ["e-1", "e-2"])],
    ids=["partial-overlap", "other-stream"],
)
async def test_ids_stored_in_another_shape_are_an_idempotency_conflict(
    spine: EventSpine, stream: str, ids: list[str]
) -> None:
    await spine.append(P, req("a", "x", "y", ids=["e-1", "e-2"]))
    with pytest.raises(IdempotencyConflict):
        await spine.append(P, req(stream, *["x"] * len(ids), ids=ids))
    assert await spine.head(P) == 2


async def test_a_retried_subset_of_a_stored_batch_answers_its_positions(spine: EventSpine) -> None:
    await spine.append(P, req("a", "x", "y", "z", ids=["e-1", "e-2", "e-3"]))
    again = await spine.append(P, req("a", "y", ids=["e-2"]))
    assert (again.first_position, again.last_position, again.stream_version) == (2, 2, 2)
    assert await spine.head(P) == 3


async def test_ids_are_scoped_to_their_partition(spine: EventSpine) -> None:
    await spine.append(P, req("a", "x", ids=["same"]))
    result = await spine.append(OTHER, req("a", "x", ids=["same"], partition=OTHER))
    assert result.first_position == 1


@pytest.mark.parametrize(
    "request_",
    [
        AppendRequest(stream="a", events=[], meta=EventMeta(tenant_id="t1", env="dev", project_id="p1")),
        req("a", "x", "y", ids=["dup", "dup"]),
    ],
    ids=["empty", "duplicate-ids"],
)
async def test_invalid_batches_are_refused(spine: EventSpine, request_: AppendRequest) -> None:
    with pytest.raises(InvalidRequest):
        await spine.append(P, request_)
    assert await spine.head(P) == 0


async def test_partitions_are_isolated(spine: EventSpine) -> None:
    await spine.append(P, req("a", "x"))
    await spine.append(OTHER, req("a", "y", partition=OTHER))
    assert [e.type for e in await all_events(spine, OTHER)] == ["y"]
    assert [e.type for e in await all_events(spine, P)] == ["x"]


async def test_read_by_cursor_pages_with_next_and_head(spine: EventSpine) -> None:
    await spine.append(P, req("a", *[f"t.{i}" for i in range(10)]))
    page = await spine.read(P, after=3, limit=4)
    assert [e.position for e in page.events] == [4, 5, 6, 7]
    assert (page.next, page.head) == (7, 10)
    last = await spine.read(P, after=7, limit=4)
    assert [e.position for e in last.events] == [8, 9, 10]
    assert last.next == 10
    empty = await spine.read(P, after=10)
    assert (empty.events, empty.next, empty.head) == ([], 10, 10)


async def test_filters_by_stream_and_type_and_next_skips_what_they_hid(spine: EventSpine) -> None:
    await spine.append(P, req("a", "keep", "drop"))
    await spine.append(P, req("b", "keep"))
    await spine.append(P, req("a", "keep", "drop"))

    by_stream = await spine.read(P, stream="a")
    assert [e.position for e in by_stream.events] == [1, 2, 4, 5]
    by_type = await spine.read(P, types=["keep"])
    assert [e.position for e in by_type.events] == [1, 3, 4]
    assert by_type.next == 5
    both = await spine.read(P, stream="a", types=["drop"], limit=1)
    assert [e.position for e in both.events] == [2]
    assert both.next == 2
    assert [e.position for e in (await spine.read(P, after=2, stream="a", types=["drop"])).events] == [5]


@pytest.mark.parametrize("after", [1, 10**9])
async def test_a_cursor_past_the_head_is_invalid(spine: EventSpine, after: int) -> None:
    with pytest.raises(InvalidCursor):
        await spine.read(P, after=after)


async def test_read_stream_by_version(spine: EventSpine) -> None:
    await spine.append(P, req("a", "x.1", "x.2"))
    await spine.append(P, req("b", "y"))
    await spine.append(P, req("a", "x.3"))
    events, version = await spine.read_stream(P, "a", after_version=1, limit=10)
    assert version == 3
    assert [(e.version, e.type) for e in events] == [(2, "x.2"), (3, "x.3")]
    assert await spine.read_stream(P, "missing") == ([], 0)


async def test_large_batches(spine: EventSpine) -> None:
    result = await spine.append(P, req("big", *["x.y"] * 5000))
    assert (result.first_position, result.last_position) == (1, 5000)
    events = await all_events(spine)
    assert [e.version for e in events] == list(range(1, 5001))


async def test_concurrent_appends_with_one_expected_version_let_exactly_one_win(spine: EventSpine) -> None:
    outcomes: list[str] = []

    async def attempt(i: int) -> None:
        try:
            await spine.append(P, req("race", f"t.{i}", expected=NO_STREAM))
            outcomes.append("won")
        except VersionConflict:
            outcomes.append("conflict")

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(attempt, i)
    assert sorted(outcomes) == ["conflict"] * 19 + ["won"]
    assert await spine.head(P) == 1


async def test_concurrent_retries_of_one_append_store_it_once(spine: EventSpine) -> None:
    results = []

    async def attempt() -> None:
        results.append(await spine.append(P, req("a", "x", "y", ids=["r-1", "r-2"])))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(attempt)
    assert len({(r.first_position, r.last_position) for r in results}) == 1
    assert await spine.head(P) == 2


async def test_an_appender_that_goes_away_does_not_swallow_the_wakeup(
    spine: EventSpine, notifier: LocalNotifier
) -> None:
    async with notifier.subscribe(P) as subscription:
        async with anyio.create_task_group() as tg:
            tg.start_soon(spine.append, P, req("a", "x"))
            await anyio.lowlevel.checkpoint()  # let the append be queued, then walk away from it
            tg.cancel_scope.cancel()
        with anyio.fail_after(10):
            assert await subscription.wait(0, timeout=10)
    assert await spine.head(P) == 1


async def test_eight_writers_and_a_follower_see_every_event_once_in_order(
    spine: EventSpine, notifier: LocalNotifier
) -> None:
    writers, per_writer = 8, 500
    total = writers * per_writer
    seen: list[Event] = []

    async def write(w: int) -> None:
        for i in range(per_writer):
            await spine.append(P, req(f"w-{w}", "x", ids=[f"w{w}-{i}"]))

    async def follow() -> None:
        async with notifier.subscribe(P) as subscription:
            cursor = 0
            while len(seen) < total:
                page = await spine.read(P, after=cursor, limit=256)
                seen.extend(page.events)
                cursor = page.next
                if cursor == page.head:
                    await subscription.wait(cursor, timeout=1.0)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            for w in range(writers):
                tg.start_soon(write, w)

    assert [e.position for e in seen] == list(range(1, total + 1))
    assert len({e.id for e in seen}) == total
    for w in range(writers):
        assert [e.version for e in seen if e.stream == f"w-{w}"] == list(range(1, per_writer + 1))


async def test_encoded_reads_are_the_stored_json_of_the_same_page(spine: EventSpine) -> None:
    await spine.append(P, req("a", "keep", "drop", "keep"))
    await spine.append(P, req("b", "keep"))
    for kwargs in ({}, {"after": 1, "limit": 2}, {"types": ["keep"]}, {"stream": "a", "limit": 1}):
        page = await spine.read(P, **kwargs)  # type: ignore[arg-type]
        encoded = await spine.read_encoded(P, **kwargs)  # type: ignore[arg-type]
        assert (encoded.next, encoded.head) == (page.next, page.head)
        assert [(pos, type_, event_decoder.decode(body)) for pos, type_, body in encoded.events] == [
            (e.position, e.type, e) for e in page.events
        ]


def at(request: AppendRequest, position: int) -> AppendRequest:
    return msgspec.structs.replace(request, expected_position=position)


async def test_an_append_naming_its_position_lands_there_or_not_at_all(spine: EventSpine) -> None:
    """What `spine replay --into` relies on: a copied run lands at its source position or is
    refused, and a retry of one that landed is answered by its ids wherever the head is now."""
    await spine.append(P, req("a", "x"))
    landed = await spine.append(P, at(req("b", "x", "y", ids=["c-1", "c-2"]), 2))
    assert (landed.first_position, landed.last_position) == (2, 3)
    for wrong in (3, 5):
        with pytest.raises(PositionConflict) as caught:
            await spine.append(P, at(req("c", "x"), wrong))
        assert (caught.value.expected, caught.value.actual) == (wrong, 4)
    assert await spine.head(P) == 3
    assert await spine.append(P, at(req("b", "x", "y", ids=["c-1", "c-2"]), 2)) == landed


async def test_appends_made_in_order_land_in_order_and_none_after_a_refused_one(spine: EventSpine) -> None:
    """Appends queued together, each naming its position: all land in the order they were made;
    when one of them is refused, every later one is refused too rather than land out of place."""
    plan = [at(req(f"s{i % 7}", "x", ids=[f"o-{i}"]), i + 1) for i in range(120)]
    broken = [*plan[:60], at(req("s0", "x", ids=["o-bad"], expected=0), 61), *plan[61:]]
    outcomes: dict[int, int | type[Exception]] = {}

    async def append(index: int, request: AppendRequest) -> None:
        try:
            outcomes[index] = (await spine.append(P, request)).first_position
        except (VersionConflict, PositionConflict) as exc:
            outcomes[index] = type(exc)

    async with anyio.create_task_group() as tg:
        for index, request in enumerate(broken):
            tg.start_soon(append, index, request)
    assert [outcomes[i] for i in range(60)] == list(range(1, 61))
    assert outcomes[60] is VersionConflict
    assert {outcomes[i] for i in range(61, 120)} == {PositionConflict}
    assert [e.id for e in await all_events(spine)] == [f"o-{i}" for i in range(60)]
