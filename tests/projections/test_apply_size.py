"""The runtime cuts its batches to what one atomic apply of the view store holds.

Run over the real memory and SQLite stores, each declaring a small `max_apply_size` (ops weighed
by their JSON) and noting every apply with the view as it stood right after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import msgspec
import pytest

from adapters.memory.views import MemoryViewStore
from adapters.sqlite.views import SQLiteViewStore
from domain.events import Event
from domain.views import Delete, Upsert, ViewOp
from projections.catalog import VIEWS
from projections.runtime import PAGE, Rebuild, Runner, project
from tests.contract.test_event_spine import P
from tests.projections.test_runtime import Stores, dump, product_history, stores, write

__all__ = ["stores"]  # the fixture, shared with test_runtime

ROOM = 6


@dataclass
class Applied:
    space: str
    ops: list[ViewOp]
    checkpoint: int
    view: dict[str, object]  # the "kv" collection right after this apply


class Bounded:
    """A real view store of the class it is mixed into, with a small `max_apply_size`: an op takes
    1 + one per 16 bytes of its JSON. Notes each apply (a spy: every call reaches the store)."""

    max_apply_size: int | None = ROOM

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applies: list[Applied] = []

    def op_size(self, op: ViewOp) -> int:
        return 1 if isinstance(op, Delete) else 1 + len(msgspec.json.encode(op.data)) // 16

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        await super().apply(space, ops, checkpoint)  # type: ignore[misc]
        docs = await super().list(space, "kv", limit=100_000)  # type: ignore[misc]
        self.applies.append(Applied(space, list(ops), checkpoint, {d.key: d.data["value"] for d in docs}))


class BoundedMemory(Bounded, MemoryViewStore):
    pass


class BoundedSQLite(Bounded, SQLiteViewStore):
    pass


@pytest.fixture
async def bounded(stores: Stores) -> AsyncIterator[Any]:
    """A fresh bounded store of the same kind as the fixture's, beside it."""
    if isinstance(stores.views, SQLiteViewStore):
        async with BoundedSQLite(stores.path / "bounded.db") as views:
            yield views
    else:
        yield BoundedMemory()


class Fan:
    """`kv.set` upserts a key; `kv.fan` upserts each of its keys (more than one apply holds);
    `kv.deleted` deletes. Other types are not read."""

    name = "kv"
    handles = frozenset({"kv.set", "kv.fan", "kv.deleted"})
    collections = frozenset({"kv"})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        data, at = event.data, event.position
        if event.type == "kv.deleted":
            return [Delete(collection="kv", key=str(data["key"]), position=at)]
        keys = data["keys"] if event.type == "kv.fan" else [data["key"]]
        return [Upsert(collection="kv", key=str(k), data={"value": data["value"]}, position=at) for k in keys]


def history(count: int) -> list[tuple[str, dict[str, object]]]:
    """Busy keys, deletes, values of several sizes, events the projection does not read, and now
    and then one event whose ops alone outgrow an apply."""
    events: list[tuple[str, dict[str, object]]] = []
    for i in range(count):
        if i % 97 == 50:
            events.append(("kv.fan", {"keys": [f"f{i}-{j}" for j in range(ROOM + 2)], "value": i}))
        elif i % 13 == 12:
            events.append(("noise", {}))
        elif i % 5 == 4:
            events.append(("kv.deleted", {"key": f"k{i % 7}"}))
        else:
            events.append(("kv.set", {"key": f"k{i % 11}", "value": "v" * (i % 40)}))
    return events


def model(events: list[tuple[str, dict[str, object]]]) -> dict[str, object]:
    state: dict[str, object] = {}
    for type_, data in events:
        if type_ == "kv.set":
            state[str(data["key"])] = data["value"]
        elif type_ == "kv.fan":
            state.update(dict.fromkeys((str(k) for k in data["keys"]), data["value"]))  # type: ignore[attr-defined]
        elif type_ == "kv.deleted":
            state.pop(str(data["key"]), None)
    return state


def runs_of(applies: list[Applied], log: list[Event], projection: Any) -> list[list[Event]]:
    """The events each apply covered: those it read after the previous apply's checkpoint."""
    read = [e for e in log if projection.handles is None or e.type in projection.handles]
    bounds = [0, *(a.checkpoint for a in applies)]
    return [[e for e in read if low < e.position <= high] for low, high in pairwise(bounds)]


def ops_of(projection: Any, event: Event) -> list[ViewOp]:
    """The event's ops, none for one the projection cannot read (as the runtime skips it)."""
    try:
        return list(projection.apply(event))
    except Exception:
        return []


def check_applies(views: Any, applies: list[Applied], log: list[Event], projection: Any) -> None:
    """Each apply fits, or holds one event whose ops alone do not; no document twice in one apply;
    checkpoints rise, each at its run's last event, the last at the head."""
    room = views.max_apply_size
    runs = runs_of(applies, log, projection)
    for applied, run in zip(applies, runs, strict=True):
        docs = [(op.collection, op.key) for op in applied.ops]
        assert len(docs) == len(set(docs))  # one op per document
        if sum(views.op_size(op) for op in applied.ops) > room:
            assert len([e for e in run if ops_of(projection, e)]) == 1  # an event that does not fit alone
    checkpoints = [applied.checkpoint for applied in applies]
    assert checkpoints == sorted(set(checkpoints))  # rising
    assert checkpoints[-1] == log[-1].position
    for applied, run in zip(applies[:-1], runs[:-1], strict=True):
        assert run
        assert applied.checkpoint == run[-1].position


async def test_a_runner_applies_batches_that_fit_each_checkpoint_at_an_event(
    stores: Stores, bounded: Any
) -> None:
    events = history(1300)  # three pages
    for start in range(0, len(events), 100):
        await write(stores.spine, *events[start : start + 100])
    log = (await stores.spine.read(P, limit=10_000)).events
    runs: list[list[Event]] = []
    runner = Runner(
        Fan(), P, stores.spine, bounded, stores.notifier, on_batch=lambda _, run: runs.append(run)
    )
    assert await runner.catch_up() == log[-1].position

    applies = [a for a in bounded.applies if a.space == runner.space]
    assert len(applies) > 3 * 5  # cut well below pages of PAGE events
    check_applies(bounded, applies, log, Fan())
    assert runs == runs_of(applies, log, Fan())  # `on_batch` follows each apply
    assert any(sum(bounded.op_size(op) for op in a.ops) > ROOM for a in applies)  # a fan went alone
    for applied in applies:  # a checkpoint p: every op of the events up to p is written, no more
        assert applied.view == model(events[: applied.checkpoint])

    unsplit = Runner(Fan(), P, stores.spine, stores.views, stores.notifier)
    assert await unsplit.catch_up() == log[-1].position
    assert await dump(bounded, runner.space, ["kv"]) == await dump(stores.views, unsplit.space, ["kv"])

    rebuild = Rebuild(runner, grace_seconds=0)
    await rebuild.run()
    assert (rebuild.state, runner.generation) == ("swapped", 1)
    check_applies(bounded, [a for a in bounded.applies if a.space == runner.space], log, Fan())
    assert await dump(bounded, runner.space, ["kv"]) == await dump(stores.views, unsplit.space, ["kv"])


async def test_a_page_that_fits_is_one_apply(stores: Stores, bounded: Any) -> None:
    head = await write(stores.spine, *[("kv.set", {"key": f"k{i % 3}", "value": i}) for i in range(PAGE)])
    runner = Runner(Fan(), P, stores.spine, bounded, stores.notifier)
    assert await runner.catch_up() == head
    # 500 events on three busy keys: one op per document, one apply
    assert [(len(a.ops), a.checkpoint) for a in bounded.applies] == [(3, head)]


@pytest.mark.parametrize("name", sorted(VIEWS))
async def test_a_product_view_built_in_batches_that_fit_equals_the_unsplit_one(
    stores: Stores, bounded: Any, name: str
) -> None:
    projection = VIEWS[name][0]
    await product_history(stores.spine)
    log = (await stores.spine.read(P, limit=10_000)).events
    space = f"{P.key}/{name}/0"
    assert await project(projection, P, stores.spine, bounded, space, 0) == log[-1].position
    assert await project(projection, P, stores.spine, stores.views, space, 0) == log[-1].position
    check_applies(bounded, bounded.applies, log, projection)
    collections = {op.collection for event in log for op in ops_of(projection, event)}
    assert await dump(bounded, space, collections) == await dump(stores.views, space, collections)
