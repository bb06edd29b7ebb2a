"""Copying a log retention thinned out (`app.usecases.move`): the survivors land at their own
positions and versions, the fillers are gone afterwards, and a copy cut short resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.memory.spine import MemorySpine
from adapters.sqlite.spine import SQLiteSpine
from app.usecases.move import PAGE, copy_log, digests, fill_plan
from domain.append import AppendRequest
from domain.events import EventMeta, NewEvent, Page
from domain.partition import Partition
from domain.ports import EventSpine

P = Partition(tenant_id="t1", env="dev", project_id="p1")
META = EventMeta(tenant_id="t1", env="dev", project_id="p1")
EVENTS = 4 * PAGE  # a third survives: more than a page


async def thinned(directory: Path) -> SQLiteSpine:
    spine = SQLiteSpine(directory / "source.db")
    await spine.__aenter__()
    for n in range(EVENTS):
        request = AppendRequest(stream=f"s{n % 7}", events=[NewEvent(type="x.y", data={"n": n})], meta=META)
        await spine.append(P, request)
    assert await spine.remove(P, [p for p in range(1, EVENTS + 1) if p % 3]) > 0
    return spine


class CutAfterOnePage:
    """The source, failing its second page read: a copy stopped half-way."""

    def __init__(self, inner: EventSpine) -> None:
        self.inner, self.pages = inner, 0

    async def head(self, partition: Partition) -> int:
        return await self.inner.head(partition)

    async def read(self, partition: Partition, *, after: int = 0, limit: int = 100) -> Page:
        if limit > 1:
            self.pages += 1
            if self.pages > 1:
                raise ConnectionError("the source went away")
        return await self.inner.read(partition, after=after, limit=limit)


async def test_a_thinned_log_lands_at_its_positions_and_a_cut_copy_resumes(tmp_path: Path) -> None:
    source = await thinned(tmp_path)
    try:
        target = MemorySpine()
        gaps = await fill_plan(source, P)
        head = await source.head(P)
        survivors = head - len(gaps)
        with pytest.raises(ConnectionError):
            await copy_log(CutAfterOnePage(source), target, P, lambda _: None, gaps)
        copied_before = await target.head(P)
        assert 0 < copied_before < head
        upto, copied = await copy_log(source, target, P, lambda _: None, gaps)
        assert upto == await target.head(P) == head
        assert copied == survivors - sum(1 for p in range(1, copied_before + 1) if p not in gaps)
        assert await digests(source, P, head, 1000, lambda _: None) == await digests(
            target, P, head, 1000, lambda _: None
        )
        assert (await copy_log(source, target, P, lambda _: None, gaps))[1] == 0  # done: nothing again
    finally:
        await source.__aexit__(None, None, None)
