"""The projection runtime: runners keep one projection of one partition current; rebuilds renew it.

Loop: read the log after the view's checkpoint (only the event types it handles; the page's
`next` passes the rest), turn events into view ops with the projection's pure `apply`, write the
ops and the new checkpoint together, then wait for the partition to advance. A page whose ops do
not fit in one transaction of the view store is written as several, cut between events, each
with its own checkpoint. A crash between reading and writing only means the same events are read
again; their ops are skipped because no document moves backwards, so nothing is counted twice.

A folding projection (`domain.ports.FoldingProjection`: rollups, which add each event to what a
document holds) names the documents an event reads; `project` hands it them as the page's earlier
events left them, or else as the store has them, and the fold leaves any document that already
reflects the event unchanged, so re-delivery counts nothing twice there either.

Of several processes, the one holding a space's lease projects it; the others read the view and
follow its checkpoint. A rebuild builds the next generation in a space of its own (from the
partition's snapshot of the view when one is valid, else from position 0) while the serving one
keeps answering reads, then swaps it in once it has caught up.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Literal

import anyio

from domain.errors import BackendUnavailable
from domain.events import Event
from domain.partition import Partition
from domain.ports import EventSpine, FoldingProjection, Notifier, Projection, ViewStore
from domain.views import SNAPSHOT_META, Delete, Generations, ViewDoc, ViewOp, snapshot_space, space_of
from projections.leases import LEASE_SECONDS, Lease
from projections.snapshots import TakeSnapshot, seed, seeded_from

log = logging.getLogger(f"spine.{__name__}")

PAGE = 500
READS_AT_ONCE = 16  # documents a folding projection's page fetches from the store concurrently
FOLLOW_SECONDS = 0.05  # how often a process that does not hold the lease looks at the checkpoint
_Docs = list[ViewDoc]  # named here: inside Runner, `list` is the method
# Leases are held in the name of a process, or of an instance that keeps its name across restarts
# (the service passes its instance id), so that a restarted instance retakes its leases at once.
PROCESS = uuid.uuid4().hex[:12]


async def project(
    projection: Projection,
    partition: Partition,
    spine: EventSpine,
    views: ViewStore,
    space: str,
    after: int,
    on_batch: Callable[[int, int, list[Event]], None] = lambda position, head, events: None,
) -> int:
    """Apply every event after `after` up to the partition's head to `space`; the checkpoint reached."""
    position = after
    types = projection.handles or ()
    while True:
        page = await spine.read(partition, after=position, limit=PAGE, types=types)
        if page.next == position:
            return position
        if isinstance(projection, FoldingProjection):
            # Per page: once its batches are written the store holds what the fold left, so a
            # rebuild's memory stays bounded by what one page touches.
            each = await _folds(projection, views, space, page.events)
        else:
            each = [_ops(projection, event) for event in page.events]
        _check_declared(projection, each)
        for checkpoint, events, ops in _batches(views, page.events, each, page.next):
            await views.apply(space, ops, checkpoint=checkpoint)
            position = checkpoint
            on_batch(position, page.head, events)
        if position >= page.head:
            return position


class UndeclaredCollection(TypeError):
    """A projection's op writes a collection its `collections` does not declare: a bug of the
    projection, never of a caller (a snapshot would leave that collection out). The view stops
    advancing, loudly, instead of being copied without it."""


def _check_declared(projection: Projection, each: list[list[ViewOp]]) -> None:
    declared = projection.collections
    for ops in each:
        for op in ops:
            if op.collection not in declared or op.collection == SNAPSHOT_META:
                raise UndeclaredCollection(
                    f"projection {projection.name!r} wrote collection {op.collection!r}, which its"
                    f" `collections` ({', '.join(sorted(declared))}) does not declare"
                )


_Batch = tuple[int, list[Event], list[ViewOp]]  # (checkpoint, events, their ops: one per document)
_Doc = tuple[str, str]  # (collection, key)


async def _folds(
    projection: FoldingProjection, views: ViewStore, space: str, events: list[Event]
) -> list[list[ViewOp]]:
    """Each event's ops, folded in log order onto the documents it reads.

    The documents the page's events read are fetched first, together; then each event folds onto
    them, and its upserts (deletes) replace them in `folded` for the events after it. Ops are
    written after the fold, so should a write fail, `project` ends and the next call folds onto
    what the store then holds.
    """
    folded: dict[_Doc, ViewDoc | None] = {}
    wanted = {doc for event in events for doc in _reads(projection, event)}
    limiter = anyio.CapacityLimiter(READS_AT_ONCE)

    async def fetch(doc: _Doc) -> None:
        async with limiter:
            folded[doc] = await views.get(space, *doc)

    try:
        async with anyio.create_task_group() as group:
            for doc in sorted(wanted):
                group.start_soon(fetch, doc)
    except ExceptionGroup as failed:  # the store's own error (503 `…backend_unavailable`), not a group
        raise failed.exceptions[0] from None
    each = []
    for event in events:
        ops = _fold(projection, event, {doc: folded.get(doc) for doc in _reads(projection, event)})
        for op in ops:
            folded[op.collection, op.key] = (
                None if isinstance(op, Delete) else
                ViewDoc(collection=op.collection, key=op.key, position=op.position, data=op.data)
            )  # fmt: skip
        each.append(ops)
    return each


def _reads(projection: FoldingProjection, event: Event) -> list[_Doc]:
    try:
        return projection.reads(event)
    except Exception:
        return []  # `_fold` skips the event, and says so


def _fold(projection: FoldingProjection, event: Event, docs: Mapping[_Doc, ViewDoc | None]) -> list[ViewOp]:
    """As `_ops`: none for an event the projection cannot read."""
    try:
        return projection.fold(event, docs)
    except Exception:
        log.warning(
            "event skipped by projection",
            extra={"projection": projection.name, "position": event.position, "type": event.type},
            exc_info=True,
        )
        return []


def _batches(views: ViewStore, events: list[Event], each: list[list[ViewOp]], next_: int) -> list[_Batch]:
    """A page's events (with `each` one's ops) cut, at event boundaries, into runs whose ops fit
    in one atomic apply.

    A run keeps one op per document (`_newest`), within the run and never across runs, and its
    checkpoint is its last event's position; the last run's is the page's `next`, which may pass
    events the projection does not read. So a checkpoint p always means that every op of the
    events up to p is written. An event whose own ops do not fit goes alone, and the store writes
    it in several transactions (see `ViewStore.max_apply_size`).
    """
    room = views.max_apply_size
    if room is None:
        return [(next_, events, _newest([op for ops in each for op in ops]))]
    batches: list[_Batch] = []
    run: list[Event] = []
    kept: dict[_Doc, tuple[ViewOp, int]] = {}  # the run's newest op per document, and its size
    used = 0
    for event, ops in zip(events, each, strict=True):
        own = [(op, views.op_size(op)) for op in _newest(ops)]
        wins = _wins(kept, own)
        if kept and used + sum(grows for *_, grows in wins) > room:
            batches.append((run[-1].position, run, [op for op, _ in kept.values()]))
            run, kept, used = [], {}, 0
            wins = _wins(kept, own)
        run.append(event)
        for doc, op, size, grows in wins:
            kept[doc] = (op, size)
            used += grows
    batches.append((next_, run, [op for op, _ in kept.values()]))
    return batches


def _wins(
    kept: dict[_Doc, tuple[ViewOp, int]], own: list[tuple[ViewOp, int]]
) -> list[tuple[_Doc, ViewOp, int, int]]:
    """Those of an event's (op, size) that a run keeping `kept` would keep (as `_newest` decides),
    each with what it adds to the run's size."""
    wins = []
    for op, size in own:
        doc = (op.collection, op.key)
        before = kept.get(doc)
        if before is None or op.position > before[0].position:
            wins.append((doc, op, size, size - (before[1] if before else 0)))
    return wins


def _newest(ops: list[ViewOp]) -> list[ViewOp]:
    """One op per document of a batch: the one a store applying them in order would keep.

    An op applies only when it is newer than the document, so of several ops on one document only
    the newest can leave a mark (the first of equals). A busy key (a blackboard entry, a budget
    total) is written once per batch instead of once per event.
    """
    newest: dict[tuple[str, str], ViewOp] = {}
    for op in ops:
        key = (op.collection, op.key)
        kept = newest.get(key)
        if kept is None or op.position > kept.position:
            newest[key] = op
    return list(newest.values())


def _ops(projection: Projection, event: Event) -> list[ViewOp]:
    """The event's ops; none for an event the projection cannot read, so one bad event (appended
    by an older version, or around the routes) never stops a view. The same event is skipped the
    same way by every rebuild."""
    try:
        return projection.apply(event)
    except Exception:
        log.warning(
            "event skipped by projection",
            extra={"projection": projection.name, "position": event.position, "type": event.type},
            exc_info=True,
        )
        return []


class Runner:
    def __init__(
        self,
        projection: Projection,
        partition: Partition,
        spine: EventSpine,
        views: ViewStore,
        notifier: Notifier,
        *,
        poll_seconds: float = 2.0,
        on_batch: Callable[[Runner, list[Event]], None] | None = None,
        holder: str = PROCESS,
    ) -> None:
        self.projection = projection
        self.partition = partition
        self.spine = spine
        self.views = views
        self._notifier = notifier
        self._poll_seconds = poll_seconds
        self._on_batch = on_batch
        self.generation = 0
        self.position = 0  # the serving generation's checkpoint as of the last batch seen
        self.head = 0  # the partition's head as of the last read
        self.leading = False  # whether this process projects the view (holds the lease)
        self.rebuild: Rebuild | None = None
        self.snapshot: TakeSnapshot | None = None  # the last snapshot this process took or is taking
        self.holder = holder
        self._lease = Lease(views, self.space, holder)
        self._opened = False  # generations recorded (the view is known) and loaded
        self._loaded = False  # generations loaded by a read, nothing recorded
        self._advanced = anyio.Event()
        self._lock = anyio.Lock()

    @property
    def space(self) -> str:
        return space_of(self.partition.key, self.projection.name, self.generation)

    async def catch_up(self) -> int:
        """Project every event up to the current head; answer the checkpoint reached."""
        async with self._lock:
            if not self._opened:
                await self._open()
            elif self._lease.due:  # now and then, see whether a rebuild elsewhere swapped generations
                await self._follow()
            self.leading = await self._lease.held()
            if not self.leading:  # another process projects this view: follow what it wrote
                await self._follow()
                return self.position
            self.position = await project(
                self.projection,
                self.partition,
                self.spine,
                self.views,
                self.space,
                self.position,
                self._batch,
            )
            return self.position

    async def _open(self) -> None:
        generations = await self.views.generations(self.partition.key, self.projection.name)
        if generations == Generations():
            await self.views.set_generations(
                self.partition.key, self.projection.name, generations
            )  # known now
        self._switch(generations.serving, await self.views.checkpoint(space_of(
            self.partition.key, self.projection.name, generations.serving)))  # fmt: skip
        self._opened = True

    async def _follow(self) -> None:
        generations = await self.views.generations(self.partition.key, self.projection.name)
        space = space_of(self.partition.key, self.projection.name, generations.serving)
        checkpoint = await self.views.checkpoint(space)
        if generations.serving != self.generation or checkpoint > self.position:
            self._switch(generations.serving, checkpoint)

    def _switch(self, generation: int, position: int) -> None:
        if generation != self.generation:
            self.generation = generation
            self._lease = Lease(self.views, self.space, self.holder)
        self.position = position
        self._signal()

    def _batch(self, position: int, head: int, events: list[Event]) -> None:
        self.position, self.head = position, head
        if self._on_batch is not None:
            self._on_batch(self, events)
        self._signal()

    def _signal(self) -> None:
        self._advanced.set()
        self._advanced = anyio.Event()

    async def run(self) -> None:
        """Until cancelled: catch up whenever the partition advances, or a poll interval passes."""
        try:
            async with self._notifier.subscribe(self.partition) as subscription:
                failures = 0
                while True:
                    try:
                        position = await self.catch_up()
                    except Exception as exc:  # see `retry_delay`
                        failures += 1
                        log.warning(
                            "view not advanced: retrying",
                            extra={"projection": self.projection.name, "partition": self.partition.key,
                                   "error": getattr(exc, "error_code", type(exc).__name__), "failures": failures},
                        )  # fmt: skip
                        await anyio.sleep(retry_delay(failures, self._poll_seconds))
                        continue
                    failures = 0
                    await subscription.wait(
                        position, self._poll_seconds if self.leading else FOLLOW_SECONDS * 20
                    )
        finally:  # a process that stops lets another take the view over now, not when the lease runs out
            with anyio.CancelScope(shield=True), anyio.move_on_after(1), suppress(BackendUnavailable):
                await self._lease.release()

    async def wait_for(self, position: int, timeout: float) -> bool:
        """True once the view reflects `position` (read-your-writes), False if `timeout` passes first."""
        if self.position < position and not self._opened:  # a view built before this process began
            async with self._lock:
                if not self._opened:
                    await self._open()
        with anyio.move_on_after(timeout):
            while self.position < position:
                if self.leading:
                    await self._advanced.wait()
                else:  # written by another process: look at its checkpoint now and then
                    with anyio.move_on_after(FOLLOW_SECONDS):
                        await self._advanced.wait()
                    async with self._lock:
                        await self._follow()
        return self.position >= position

    async def open(self) -> None:
        """Learn which generation serves and its checkpoint, once: until then `generation` and
        `position` are 0, which a view rebuilt before this process began is not. Only reads: a
        runner that answers reads in an env nobody wrote to must leave no record of the view."""
        if not (self._opened or self._loaded):
            async with self._lock:
                if not (self._opened or self._loaded):
                    await self._follow()
                    self._loaded = True

    async def get(self, collection: str, key: str) -> ViewDoc | None:
        """A document of the serving view, or None."""
        await self.open()
        return await self.views.get(self.space, collection, key)

    async def list(self, collection: str, *, prefix: str = "", after: str = "", limit: int = 100) -> _Docs:
        """Documents of the serving view whose key starts with `prefix`, in key order, after `after`."""
        await self.open()
        return await self.views.list(self.space, collection, prefix=prefix, after=after, limit=limit)

    @asynccontextmanager
    async def _paused(self) -> AsyncIterator[None]:
        async with self._lock:
            yield


MAX_RETRY_SECONDS = 30.0


def retry_delay(failures: int, poll_seconds: float) -> float:
    """How long a background loop waits after its `failures`-th failure in a row.

    A store that fails (unreachable, its breaker open, a bug in one partition's data) costs its own
    views latency, never the process: the loop runs in the app's one task group, where an escaping
    error would stop every other view and the control plane with it. Doubling, capped, so a dead
    backend is not hammered and a recovered one is seen within `MAX_RETRY_SECONDS`.
    """
    return min(max(poll_seconds, 0.05) * 2.0 ** min(failures - 1, 10), MAX_RETRY_SECONDS)


RebuildState = Literal["building", "swapped", "elsewhere", "failed"]
RebuildFrom = Literal["snapshot", "start"]


class Rebuild:
    """Builds the next generation of a runner's view, then swaps it in.

    From the partition's snapshot when one is valid (`projections.snapshots`) and `from_` allows
    it: the new generation starts as a copy of the snapshot at its position C and projects the
    events after C. Otherwise from position 0. A rebuild because the partition's log was routed
    elsewhere always starts from 0, and drops the snapshot: its positions are the old log's.

    Resumable: the building generation and its checkpoint are in the view store, so a rebuild
    that was interrupted (or a process that died) continues where it stopped; one stopped before
    its checkpoint moved (mid-copy of a snapshot, at most) starts its generation again. The
    retired generation is dropped after a grace period, so that other processes still reading it
    have switched by then.
    """

    def __init__(
        self,
        runner: Runner,
        *,
        spine: EventSpine | None = None,
        grace_seconds: float = 2 * LEASE_SECONDS,
        from_: RebuildFrom = "snapshot",
    ) -> None:
        self.runner = runner
        self.spine = spine or runner.spine  # another when the partition's log was routed elsewhere
        self._grace_seconds = grace_seconds
        self.wanted: RebuildFrom = from_
        self.source: RebuildFrom = "start"  # where the building generation began
        self.snapshot_position: int | None = None  # the snapshot's position, when it began from one
        self.state: RebuildState = "building"
        self.generation: int | None = None
        self.position = 0
        self.head = 0
        self.error: str | None = None
        self._resumed_at = 0
        self._started = time.monotonic()
        self.done = anyio.Event()

    @property
    def events_per_second(self) -> float:
        elapsed = time.monotonic() - self._started
        return (self.position - self._resumed_at) / elapsed if elapsed > 0 else 0.0

    async def run(self) -> None:
        runner = self.runner
        views, key, name = runner.views, runner.partition.key, runner.projection.name
        try:
            if not runner._opened:
                await runner.catch_up()
            generations = await views.generations(key, name)
            if generations.serving > 0:  # a retired generation whose drop a stop interrupted
                await views.drop(space_of(key, name, generations.serving - 1))
            moved = self.spine is not runner.spine
            if moved:  # the snapshot's positions, like a building generation's, are the old log's
                await views.drop(snapshot_space(key, name))
                if generations.building is not None:
                    await views.drop(space_of(key, name, generations.building))
                    generations = Generations(serving=generations.serving)
            target = generations.serving + 1 if generations.building is None else generations.building
            self.generation = target
            space = space_of(key, name, target)
            lease = await self._begin(space, generations, target, wanted="start" if moved else self.wanted)
            if lease is None:
                self.state = "elsewhere"  # another process is building this generation
                return
            self.head = await self.spine.head(runner.partition)
            self._started = time.monotonic()
            while self.position < self.head:  # the bulk, while the serving generation keeps running
                if not await lease.held():
                    self.state = "elsewhere"
                    return
                self.position = await project(
                    runner.projection, runner.partition, self.spine, views, space, self.position, self._progress
                )  # fmt: skip
            async with runner._paused():  # the tail, with the live runner held still, then the swap
                self.position = await project(
                    runner.projection, runner.partition, self.spine, views, space, self.position, self._progress
                )  # fmt: skip
                await views.set_generations(key, name, Generations(serving=target))
                retired = runner.space
                runner.spine = self.spine
                runner._switch(target, self.position)
            await lease.release()
            self.state = "swapped"
            self.done.set()
            await anyio.sleep(self._grace_seconds)
            await views.drop(retired)
        except Exception as exc:  # reported in status; the building generation stays resumable
            self.state, self.error = "failed", type(exc).__name__
            log.exception("rebuild failed", extra={"projection": name, "partition": key})
        finally:
            self.done.set()

    async def _begin(self, space: str, generations: Generations, target: int, *,
                     wanted: RebuildFrom) -> Lease | None:  # fmt: skip
        """Take the building generation's lease and set where it starts: at its own checkpoint
        (resumed), else at a snapshot's copy, else at 0. None when another process holds it."""
        runner, views = self.runner, self.runner.views
        key, projection = runner.partition.key, runner.projection
        lease = Lease(views, space, f"{runner.holder}:rebuild")
        if not await lease.held():
            return None
        await views.set_generations(
            key, projection.name, Generations(serving=generations.serving, building=target)
        )
        checkpoint = await views.checkpoint(space)
        seeded = await seeded_from(views, space, projection) if checkpoint else None
        if checkpoint == 0 or (seeded is not None and wanted == "start"):
            # nothing to resume (part of a copy at most), or a copy of a snapshot the caller does
            # not want: the generation starts again, empty; dropping it dropped the lease too
            await views.drop(space)
            lease = Lease(views, space, f"{runner.holder}:rebuild")
            if not await lease.held():
                return None
            checkpoint, seeded = 0, None
            if wanted == "snapshot":
                seeded = await seed(views, key, projection, space, lease)
                if seeded is None:  # none valid (or replaced under the copy): from 0, on an empty space
                    await views.drop(space)
                    lease = Lease(views, space, f"{runner.holder}:rebuild")
                    if not await lease.held():
                        return None
                else:
                    checkpoint = seeded.position
        if seeded is not None:
            self.source, self.snapshot_position = "snapshot", seeded.position
        self.position = self._resumed_at = checkpoint
        return lease

    def _progress(self, position: int, head: int, events: list[Event]) -> None:
        self.position, self.head = position, max(head, self.head)
