"""Snapshots of views: a copy of a partition's serving view that seeds its next rebuilds.

A snapshot is derived data in the view's own store (`domain.views.snapshot_space`): the serving
generation's live documents of every collection the projection declares, each at its own
position, then a meta document (`SnapshotMeta`) written last. Without the meta a snapshot is
incomplete and ignored; under another projection version it is ignored too, and a rebuild goes
from position 0 ("rebuilt if missing").

The snapshot's position C is the serving checkpoint read before the copy starts. The runner keeps
applying while documents are copied, so some may reflect events after C: harmless, because a
rebuild seeded from the snapshot replays the events after C, and an op whose position is not
newer than its document's is skipped (a folding projection's `fold` likewise leaves a document
that already counts the event). A document deleted before C is not copied (`list` skips it); one
deleted after C is deleted again by the replay.

Retention removes events but not their effects on a snapshot taken before it: a rebuild from the
snapshot keeps what they did, a rebuild from the start sees only the survivors.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import anyio
import msgspec

from domain.ports import Projection, ViewStore
from domain.views import (
    SNAPSHOT_META,
    SNAPSHOT_META_KEY,
    SnapshotMeta,
    Upsert,
    ViewOp,
    snapshot_space,
    space_of,
)
from projections.leases import Lease

if TYPE_CHECKING:
    from projections.runtime import Runner

log = logging.getLogger(f"spine.{__name__}")

COPY_PAGE = 500  # documents listed per read while copying
ATTEMPTS = 3  # takes started again when a swap retired the generation being copied


async def stored_snapshot(
    views: ViewStore, partition_key: str, projection: Projection
) -> SnapshotMeta | None:
    """The partition's snapshot of `projection` when it is complete and of its current version."""
    return await _meta_in(views, snapshot_space(partition_key, projection.name), projection)


async def _meta_in(views: ViewStore, space: str, projection: Projection) -> SnapshotMeta | None:
    doc = await views.get(space, SNAPSHOT_META, SNAPSHOT_META_KEY)
    if doc is None:
        return None
    try:
        meta = msgspec.convert(doc.data, SnapshotMeta)
    except msgspec.ValidationError:  # written by another version of Spine: derived data, ignored
        return None
    return meta if meta.projection_version == projection.version else None


async def seeded_from(views: ViewStore, space: str, projection: Projection) -> SnapshotMeta | None:
    """The snapshot a generation was seeded from (it carries the snapshot's meta), if any."""
    return await _meta_in(views, space, projection)


async def seed(views: ViewStore, partition_key: str, projection: Projection, space: str,
               lease: Lease) -> SnapshotMeta | None:  # fmt: skip
    """Copy the partition's valid snapshot into `space` (empty), its meta last with checkpoint C.

    None when there is no valid snapshot, when one being taken replaced it under the copy, or when
    `lease` was lost: then `space` may hold part of a copy and checkpoint 0, which the caller drops.
    """
    source = snapshot_space(partition_key, projection.name)
    meta = await stored_snapshot(views, partition_key, projection)
    if meta is None:
        return None
    copied = await copy_documents(views, source, space, projection.collections, lease)
    if copied is None or await stored_snapshot(views, partition_key, projection) != meta:
        return None  # a take dropped it while we copied: part of the documents may be missing
    await views.apply(space, [_meta_op(meta)], checkpoint=meta.position)
    return meta


async def copy_documents(views: ViewStore, source: str, target: str, collections: Collection[str],
                         lease: Lease) -> int | None:  # fmt: skip
    """Every live document of `collections` in `source` upserted into `target` at its own position
    (checkpoint untouched); how many, or None once `lease` is lost."""
    copied = 0
    for collection in sorted(collections):
        after = ""
        while True:
            if not await lease.held():
                return None
            docs = await views.list(source, collection, after=after, limit=COPY_PAGE)
            if not docs:
                break
            ops: list[ViewOp] = [
                Upsert(collection=collection, key=d.key, data=d.data, position=d.position) for d in docs
            ]
            for chunk in _fitting(views, ops):
                await views.apply(target, chunk, checkpoint=0)
            copied += len(docs)
            after = docs[-1].key
    return copied


def _fitting(views: ViewStore, ops: Sequence[ViewOp]) -> list[list[ViewOp]]:
    """`ops` cut into applies that each fit in one transaction of the store (one op that does not
    fit goes alone, and the store splits it)."""
    room = views.max_apply_size
    if room is None:
        return [list(ops)]
    chunks: list[list[ViewOp]] = [[]]
    used = 0
    for op in ops:
        size = views.op_size(op)
        if chunks[-1] and used + size > room:
            chunks.append([])
            used = 0
        chunks[-1].append(op)
        used += size
    return chunks


def _meta_op(meta: SnapshotMeta) -> Upsert:
    data = msgspec.to_builtins(meta)
    return Upsert(collection=SNAPSHOT_META, key=SNAPSHOT_META_KEY, data=data, position=max(meta.position, 1))


SnapshotState = Literal["taking", "taken", "elsewhere", "failed"]


class TakeSnapshot:
    """Takes a snapshot of a runner's serving view: drops the old one, copies, writes the meta.

    One take at a time per (partition, projection): a lease beside the snapshot's space (not on
    it, since the take drops that space) keeps other processes out; they answer `elsewhere`.
    """

    def __init__(self, runner: Runner, *, now: datetime) -> None:
        self.runner = runner
        self._now = now
        self.state: SnapshotState = "taking"
        self.meta: SnapshotMeta | None = None
        self.error: str | None = None
        self.done = anyio.Event()

    async def run(self) -> None:
        runner = self.runner
        views, key, projection = runner.views, runner.partition.key, runner.projection
        space = snapshot_space(key, projection.name)
        lease = Lease(views, f"{space}:taking", f"{runner.holder}:snapshot")
        try:
            if not await lease.held():
                self.state = "elsewhere"
                return
            for _ in range(ATTEMPTS):
                self.meta = await self._take(views, key, projection, space, lease)
                if self.meta is not None or self.state == "elsewhere":
                    break
            if self.meta is not None:
                self.state = "taken"
            elif self.state == "taking":
                self.state, self.error = "failed", "the serving generation kept being swapped: take it again"
            await lease.release()
        except Exception as exc:  # reported in the answer; a snapshot without its meta is ignored
            self.state, self.error = "failed", type(exc).__name__
            log.exception("snapshot failed", extra={"projection": projection.name, "partition": key})
        finally:
            self.done.set()

    async def _take(self, views: ViewStore, key: str, projection: Projection, space: str,
                    lease: Lease) -> SnapshotMeta | None:  # fmt: skip
        """One attempt: None when a swap retired the generation under the copy (or the lease was
        lost: then `state` says `elsewhere`)."""
        await self.runner.catch_up()  # the view as of now, as far as this process can tell
        generations = await views.generations(key, projection.name)
        serving = space_of(key, projection.name, generations.serving)
        position = await views.checkpoint(serving)  # before the copy: see the module's docstring
        await views.drop(space)  # a snapshot without its meta is ignored from here on
        documents = await copy_documents(views, serving, space, projection.collections, lease)
        if documents is None:
            self.state = "elsewhere"
            return None
        if (await views.generations(key, projection.name)).serving != generations.serving:
            return None  # the copied generation may have been dropped under the copy
        meta = SnapshotMeta(
            projection_version=projection.version, position=position, taken_at=self._now, documents=documents
        )
        await views.apply(space, [_meta_op(meta)], checkpoint=position)
        return meta
