"""The unit of work every decision runs through: read the stream, decide, append expecting what was
read, decide again on a conflict (bounded), a precondition's conflict as the answer, and the
expectation of a write that replaces what is there."""

from __future__ import annotations

import pytest

from adapters.memory.spine import MemorySpine
from app.http.preconditions import Precondition
from app.usecases.unit_of_work import (
    append_expecting,
    decide_and_append,
    expected_at,
    last_event,
    retrying,
)
from domain.append import AppendRequest
from domain.context import RequestContext
from domain.errors import PreconditionFailed, SaveConflict, VersionConflict
from domain.events import ANY, NO_STREAM, AppendResult, Event, NewEvent
from domain.partition import Partition

CTX = RequestContext(tenant_id="t1", env="dev", project_id="p1", mode="lab", user_id="u1")


def _other(stream: str) -> AppendRequest:
    """Another writer's event, whatever the stream's version."""
    return AppendRequest(
        stream=stream, events=[NewEvent(type="other")], expected_version=ANY, meta=CTX.event_meta()
    )


async def test_a_decision_is_made_on_the_last_event_and_appended_expecting_its_version() -> None:
    spine = MemorySpine()
    seen: list[int | None] = []

    def decide(last: Event | None) -> NewEvent:
        seen.append(None if last is None else last.version)
        return NewEvent(type="decided", data={"after": seen[-1]})

    first = await decide_and_append(spine, CTX, "s", decide)
    assert (first.version, first.result.stream_version, first.replayed) == (0, 1, False)
    second = await decide_and_append(spine, CTX, "s", decide)
    assert (second.version, second.result.stream_version, second.event.data) == (1, 2, {"after": 1})
    assert seen == [None, 1]
    last, version = await last_event(spine, CTX.partition, "s")
    assert (last is not None and last.type, version) == ("decided", 2)


class _Racing(MemorySpine):
    """Another writer's event lands between each of the first `races` reads and appends."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    async def append(self, partition: Partition, request: AppendRequest) -> AppendResult:
        if self.races:
            self.races -= 1
            await super().append(partition, _other(request.stream))
        return await super().append(partition, request)


async def test_a_writer_that_got_there_first_makes_it_decide_again() -> None:
    spine = _Racing(races=2)
    decided_on: list[int | None] = []

    def decide(last: Event | None) -> NewEvent:
        decided_on.append(None if last is None else last.version)
        return NewEvent(type="decided")

    decided = await decide_and_append(spine, CTX, "s", decide)
    assert decided_on == [None, 1, 2]
    assert (decided.version, decided.result.stream_version) == (2, 3)

    spine.races = 3
    with pytest.raises(VersionConflict):
        await decide_and_append(spine, CTX, "s", decide, attempts=3)
    assert decided_on[3:] == [3, 4, 5]


async def test_conflicts_are_bounded_and_a_precondition_answers_at_once() -> None:
    spine = MemorySpine()
    await spine.append(CTX.partition, _other("s"))
    attempts = 0

    async def always_conflicting() -> None:
        nonlocal attempts
        attempts += 1
        raise VersionConflict("s", 1, 2)

    with pytest.raises(VersionConflict):
        await retrying(always_conflicting, attempts=4)
    assert attempts == 4

    with pytest.raises(SaveConflict) as refused:
        await decide_and_append(
            spine,
            CTX,
            "s",
            lambda _: NewEvent(type="x"),
            precondition=Precondition(frozenset({7})),
            conflict=SaveConflict,
        )
    assert (refused.value.expected, refused.value.actual) == (7, 1)


async def test_an_expectation_refused_is_raised_as_the_use_cases_conflict() -> None:
    spine = MemorySpine()
    await append_expecting(spine, CTX, "s", [NewEvent(type="x")], NO_STREAM)
    with pytest.raises(SaveConflict) as refused:
        await append_expecting(spine, CTX, "s", [NewEvent(type="x")], NO_STREAM, conflict=SaveConflict)
    assert refused.value.error_code == "save_store.version_conflict"
    with pytest.raises(VersionConflict) as plain:
        await append_expecting(spine, CTX, "s", [NewEvent(type="x")], 5)
    assert type(plain.value) is VersionConflict


async def test_a_precondition_is_resolved_on_the_version_read() -> None:
    spine = MemorySpine()
    await spine.append(CTX.partition, _other("s"))

    def decide(_: Event | None) -> NewEvent:
        return NewEvent(type="decided")

    for wanted, landed in [(Precondition(), 2), (Precondition(frozenset({1, 2, 3})), 3)]:  # `*`, a list
        decided = await decide_and_append(spine, CTX, "s", decide, precondition=wanted)
        assert decided.result.stream_version == landed
    with pytest.raises(VersionConflict) as refused:  # a list without the current version
        await decide_and_append(spine, CTX, "s", decide, precondition=Precondition(frozenset({5, 1})))
    assert (refused.value.expected, refused.value.actual) == (1, 3)
    with pytest.raises(PreconditionFailed):  # weak tags only: nothing can match
        await decide_and_append(spine, CTX, "s", decide, precondition=Precondition(frozenset()))
    assert (await last_event(spine, CTX.partition, "s"))[1] == 3


async def test_a_write_that_replaces_what_is_there_expects_what_its_precondition_names() -> None:
    spine = MemorySpine()
    partition = CTX.partition
    assert await expected_at(None, spine, partition, "s") == ANY
    assert await expected_at(Precondition(frozenset({4})), spine, partition, "s") == 4  # not read
    with pytest.raises(PreconditionFailed):  # `*`: never written
        await expected_at(Precondition(), spine, partition, "s")
    await spine.append(partition, _other("s"))
    assert await expected_at(Precondition(), spine, partition, "s") == 1
    assert await expected_at(Precondition(frozenset({1, 2})), spine, partition, "s") == 1
    with pytest.raises(PreconditionFailed):  # `*` and the last event is a tombstone
        await expected_at(Precondition(), spine, partition, "s", live=lambda e: e.type != "other")
