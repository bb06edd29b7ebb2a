"""The EventSpine contract of `remove` (retention): one suite, run against every adapter.

What retention relies on: removed events vanish from every read, and nothing else moves — no
position, no head, no stream version — so a follower never sees a position go backwards or an
event twice, and a writer's `expected_version` still means what it meant.
"""

from __future__ import annotations

import pytest

from domain.errors import VersionConflict
from domain.events import NO_STREAM, event_decoder
from domain.ports import EventSpine
from tests.contract.test_event_spine import OTHER, P, all_events, req


async def _fill(spine: EventSpine) -> None:
    """Positions 1..9: stream a at 1,2,3,7,9 (versions 1..5), b at 4,5,8, c at 6."""
    for stream in ("a", "a", "a", "b", "b", "c", "a", "b", "a"):
        await spine.append(P, req(stream, "thing.done"))


async def test_removed_events_vanish_and_nothing_else_moves(spine: EventSpine) -> None:
    await _fill(spine)
    assert await spine.remove(P, [1, 2, 4, 6]) == 3  # 6 is c's only, so last, event: kept
    events = await all_events(spine)
    assert [e.position for e in events] == [3, 5, 6, 7, 8, 9]
    assert [(e.stream, e.version) for e in events] == [
        ("a", 3),
        ("b", 2),
        ("c", 1),
        ("a", 4),
        ("b", 3),
        ("a", 5),
    ]
    assert await spine.head(P) == 9


async def test_a_streams_last_event_is_never_removed(spine: EventSpine) -> None:
    await _fill(spine)
    assert await spine.remove(P, [6, 8, 9]) == 0
    assert len(await all_events(spine)) == 9
    assert await spine.remove(P, range(1, 10)) == 6
    assert [(e.stream, e.version) for e in await all_events(spine)] == [("c", 1), ("b", 3), ("a", 5)]


async def test_removal_is_idempotent_and_skips_what_was_never_there(spine: EventSpine) -> None:
    await _fill(spine)
    assert await spine.remove(P, [2, 3]) == 2
    assert await spine.remove(P, [2, 3]) == 0
    assert await spine.remove(P, [0, 10, 11, 10**12]) == 0
    assert await spine.remove(P, []) == 0
    assert len(await all_events(spine)) == 7


async def test_pages_skip_removed_ranges_with_cursors_inside_them(spine: EventSpine) -> None:
    await _fill(spine)
    await spine.remove(P, [2, 3, 4, 5])
    page = await spine.read(P, after=1, limit=1)  # a cursor just before a removed range
    assert ([e.position for e in page.events], page.next, page.head) == ([6], 6, 9)
    page = await spine.read(P, after=3, limit=10)  # a cursor inside it: no error, the survivors
    assert ([e.position for e in page.events], page.next, page.head) == ([6, 7, 8, 9], 9, 9)
    page = await spine.read(P, after=0, limit=10, stream="a")
    assert [e.position for e in page.events] == [1, 7, 9]
    page = await spine.read(P, after=0, limit=2, types=["thing.done"])
    assert ([e.position for e in page.events], page.next) == ([1, 6], 6)
    encoded = await spine.read_encoded(P, after=1, limit=10)
    assert [event_decoder.decode(body) for _, _, body in encoded.events] == (
        await spine.read(P, after=1)
    ).events


async def test_a_stream_read_keeps_its_version_and_skips_removed_versions(spine: EventSpine) -> None:
    await _fill(spine)
    await spine.remove(P, [1, 2, 7])
    events, version = await spine.read_stream(P, "a")
    assert ([e.version for e in events], version) == ([3, 5], 5)
    events, version = await spine.read_stream(P, "a", after_version=3, limit=1)
    assert ([e.version for e in events], version) == ([5], 5)
    events, version = await spine.read_stream(P, "a", after_version=4, limit=1)
    assert ([e.version for e in events], version) == ([5], 5)


async def test_appends_after_a_removal_go_on_from_the_head_and_the_stream_version(spine: EventSpine) -> None:
    await _fill(spine)
    await spine.remove(P, [1, 2, 3, 7])
    result = await spine.append(P, req("a", "thing.done", expected=5))
    assert (result.first_position, result.stream_version) == (10, 6)
    with pytest.raises(VersionConflict):
        await spine.append(P, req("a", "thing.done", expected=NO_STREAM))
    assert await spine.head(P) == 10


async def test_removal_is_scoped_to_its_partition(spine: EventSpine) -> None:
    await _fill(spine)
    for stream in ("a", "a", "a"):
        await spine.append(OTHER, req(stream, "thing.done", partition=OTHER))
    assert await spine.remove(OTHER, [1, 2]) == 2
    assert len(await all_events(spine)) == 9
    assert [e.position for e in await all_events(spine, OTHER)] == [3]


async def test_a_large_removal_across_many_commits(spine: EventSpine) -> None:
    for batch in range(30):
        await spine.append(P, req(f"s{batch % 3}", *(["thing.done"] * 100)))
    keep = {1500, *range(2800, 3001)}  # 2800, 2900 and 3000: the streams' last events
    removed = await spine.remove(P, [p for p in range(1, 3001) if p not in keep])
    assert removed == 3000 - len(keep)
    events = await all_events(spine)
    assert [e.position for e in events] == sorted(keep)
    assert await spine.head(P) == 3000
    for stream in ("s0", "s1", "s2"):
        assert (await spine.read_stream(P, stream, limit=1))[1] == 1000
