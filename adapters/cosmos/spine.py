"""Cosmos DB spine (`azure.cosmos.aio`): one container partitioned by `/partition`.

Layout (see `adapters.cosmos.commits`): per partition, a commit item per group commit and part items for
the further chunks of a large one. The read side is in `adapters.cosmos.reads`; this module is the writer
(one per partition) and the spine's interface.

Atomicity and gapless positions: the commit item is created *only if absent* at the position
after the head its writer read, so of two writers racing for a position one wins and the other
gets 409, learns what was written and decides again. Parts are written first and carry the
nonce; a reader only follows a commit item's parts, so a batch becomes visible whole, at the
moment its commit item exists, or not at all (a loser's parts are deleted; a crashed writer's are
never referenced). Stream versions and the head are derived by reading commit items; stream OCC
is decided by `decide_append` on that state, and the create-if-absent makes it race-free. Event
ids are looked up in the `ids` of commit and part items (a part counts only once its commit item
carries its nonce), so a retried batch answers its original positions.

Retention (`remove`) replaces the items holding removed events, `If-Match` their etags, with
those events left out and every commit item's summary as it was, so heads, stream versions and
the writers' caches stay right: see `adapters.cosmos.removal`.

Group commit: appends to one partition queue up while a commit is in flight and go into the next
commit item together; each keeps its own outcome. Heads and stream versions are cached per
partition and trusted until a 409 proves another process wrote, then caught up from the store.

Failures: throttling and transient errors are retried with backoff (`adapters.cosmos.client`), then raise
`BackendUnavailable`. A commit create without a clear answer is looked up by its nonce before
giving up, so an acknowledged append has landed, and a refused one may be retried (with its ids,
safely). One event's data must fit one item (`item_bytes` less 4 KiB), else `InvalidRequest`.

What this adapter does not need from the server: transactional batches (the peer used in the
tests, `@vercel/cosmosdb-server`, does not make them atomic), TTL, or point reads of absent items
(the peer answers those with 500; absent-or-not lookups are queries). It needs at least Session
consistency (the default) and one client per process, whose session token makes it read its own
writes and never older state than it has seen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from types import TracebackType

import anyio
import anyio.lowlevel
import msgspec

from adapters.cosmos import reads as cosmos_reads
from adapters.cosmos import removal
from adapters.cosmos.client import CosmosContainer, backoff, gather
from adapters.cosmos.commits import sent_size, write_commit
from adapters.decoded_reads import DecodedReads
from adapters.group_commit import answer
from domain.append import AppendRequest, StoredId, client_ids, decide_append, validate
from domain.errors import BackendUnavailable, InvalidRequest, SpineError
from domain.events import AppendResult, EncodedPage, Event
from domain.partition import Partition
from domain.ports import Notifier
from domain.timeouts import Timeouts

log = logging.getLogger(f"spine.{__name__}")

KIND = "event_spine"
DEFAULT_CONTAINER = "spine_events"
CommitObserver = Callable[[int, int, float], None]
"""Called after each group commit with (requests, events, seconds)."""

# Events and ids per item. Cosmos allows 2 MB per item; the summary takes up to ~200 KB more, and
# aiohttp warns of request bodies over 1 MiB (they are sent without yielding to the event loop).
ITEM_BYTES = 786_432
_MAX_REQUESTS_PER_COMMIT = 256  # bounds the streams summary of one commit item
_MAX_EVENTS_PER_COMMIT = 10_000
_CATCH_UP = 1000  # commits another writer may add before the cache is dropped rather than caught up
_MAX_RACES = 50
_MAX_CACHED_STREAMS = 10_000  # per partition
_MAX_IDLE_LANES = 1000
_EVENT_OVERHEAD = 4096  # an event's bytes beyond its data: ids, meta, names, timestamps

_encoder = msgspec.json.Encoder()

_CAUGHT_UP = (
    f"SELECT TOP {_CATCH_UP} c.first, c.last, c.sv FROM c WHERE c.partition = @p AND c.kind = 'commit'"  # noqa: S608
    " AND c.first > @h ORDER BY c.first"
)


class _Pending:
    __slots__ = ("future", "request")

    def __init__(self, request: AppendRequest, future: asyncio.Future[AppendResult]) -> None:
        self.request = request
        self.future = future


class _Lane:
    """One partition's queue of appends and what its writer knows: the head and stream versions
    as of that head (None / absent: not known, read it)."""

    __slots__ = ("head", "partition", "pending", "task", "versions")

    def __init__(self, partition: Partition) -> None:
        self.partition = partition
        self.pending: deque[_Pending] = deque()
        self.task: asyncio.Task[None] | None = None
        self.head: int | None = None
        self.versions: OrderedDict[str, int] = OrderedDict()

    def learn(self, head: int, versions: dict[str, int]) -> None:
        self.head = head
        self.versions.update(versions)
        for stream in versions:
            self.versions.move_to_end(stream)
        while len(self.versions) > _MAX_CACHED_STREAMS:
            self.versions.popitem(last=False)

    def forget(self) -> None:
        self.head = None
        self.versions.clear()


class CosmosSpine(DecodedReads):
    """`async with CosmosSpine(endpoint=..., database=..., key=...) as spine:`; leaving it waits for
    queued appends, then closes the client."""

    def __init__(
        self,
        *,
        endpoint: str,
        database: str,
        key: str,
        container: str = DEFAULT_CONTAINER,
        notifier: Notifier | None = None,
        endpoint_discovery: bool | None = None,
        item_bytes: int = ITEM_BYTES,
        on_commit: CommitObserver | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self._store = CosmosContainer(
            KIND,
            endpoint=endpoint,
            database=database,
            container=container,
            key=key,
            endpoint_discovery=endpoint_discovery,
            excluded_paths=("/events/?",),
            timeouts=timeouts,
        )
        self._notifier = notifier
        self._item_bytes = item_bytes
        self._on_commit = on_commit
        self._lanes: OrderedDict[str, _Lane] = OrderedDict()
        self._open = False

    async def __aenter__(self) -> CosmosSpine:
        await self._store.__aenter__()
        self._open = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._open = False
        writers = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if writers:
            await asyncio.wait(writers)
        await self._store.__aexit__(exc_type, exc, tb)

    # appends

    async def append(self, partition: Partition, request: AppendRequest) -> AppendResult:
        validate(request)
        limit = self._item_bytes - _EVENT_OVERHEAD
        if any(sent_size(_encoder.encode(event.data)) > limit for event in request.events):
            # checked here, so that it cannot fail the other appends of its group commit
            raise InvalidRequest(f"an event's data must encode to at most {limit} bytes on this backend")
        if not self._open:
            raise BackendUnavailable(KIND, "the event spine is not started")
        lane = self._lane(partition)
        pending = _Pending(request, asyncio.get_running_loop().create_future())
        lane.pending.append(pending)
        if lane.task is None:
            lane.task = asyncio.create_task(self._write_loop(lane), name=f"cosmos-writer:{partition.key}")
        # If the caller is cancelled the append may still commit; a retry with the same ids is safe.
        return await pending.future

    def _lane(self, partition: Partition) -> _Lane:
        lane = self._lanes.get(partition.key)
        if lane is None:
            lane = self._lanes[partition.key] = _Lane(partition)
            idle = [key for key, other in self._lanes.items() if other.task is None and other is not lane]
            for key in idle[: max(0, len(idle) - _MAX_IDLE_LANES)]:
                del self._lanes[key]
        self._lanes.move_to_end(partition.key)
        return lane

    async def _write_loop(self, lane: _Lane) -> None:
        """A partition's writer: everything queued during one commit goes into the next."""
        batch: list[_Pending] = []
        try:
            while lane.pending:
                # The callers of the last commit are waking up: let them queue their next appends.
                await anyio.lowlevel.checkpoint()
                batch = _take(lane.pending)
                started = time.perf_counter()
                outcomes: list[AppendResult | BaseException]
                try:
                    outcomes = list(await self._commit(lane, batch))
                except Exception as exc:  # every caller of the batch learns it; none is left waiting
                    lane.forget()
                    outcomes = [exc] * len(batch)
                await self._resolve(lane, batch, outcomes, time.perf_counter() - started)
                batch = []
        finally:
            lane.task = None
            if batch:  # cancelled mid-commit: whether it landed is unknown
                lane.forget()
            # Only when cancelled (the loop is going away): nobody may wait forever.
            for pending in [*batch, *lane.pending]:
                answer(pending.future, BackendUnavailable(KIND, "the event spine was closed"))
            lane.pending.clear()

    async def _resolve(
        self, lane: _Lane, batch: list[_Pending], outcomes: list[AppendResult | BaseException], elapsed: float
    ) -> None:
        head, events = 0, 0
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, AppendResult):
                events += outcome.last_position - outcome.first_position + 1
                head = max(head, outcome.last_position)
            answer(pending.future, outcome)
        if self._on_commit is not None:
            self._on_commit(len(batch), events, elapsed)
        if self._notifier is not None and head:
            await self._notifier.publish(lane.partition, head)

    async def _commit(self, lane: _Lane, batch: list[_Pending]) -> list[AppendResult | SpineError]:
        """Decide every request of the batch on the partition's state, write one commit; on a lost
        race learn what the winner wrote and decide again."""
        key = lane.partition.key
        streams = {pending.request.stream for pending in batch}
        ids = [i for pending in batch for i in client_ids(pending.request)]
        for attempt in range(_MAX_RACES):
            await self._know(lane, streams)
            stored = await cosmos_reads.stored_ids(self._store, key, ids)
            assert lane.head is not None
            head, versions = lane.head, {stream: lane.versions[stream] for stream in streams}
            written: dict[str, StoredId] = {}
            events: list[Event] = []
            outcomes: list[AppendResult | SpineError] = []
            recorded_at = datetime.now(UTC)
            for pending in batch:
                request = pending.request
                found = [written[i] if i in written else stored.get(i) for i in client_ids(request)]
                try:
                    new, result = decide_append(
                        request,
                        head=head,
                        stream_version=versions[request.stream],
                        stored=[f for f in found if f is not None],
                        recorded_at=recorded_at,
                    )
                except SpineError as exc:
                    outcomes.append(exc)
                    continue
                for event in new:
                    written[event.id] = StoredId(event.id, event.stream, event.version, event.position)
                if new:
                    events.extend(new)
                    head, versions[request.stream] = result.last_position, result.stream_version
                outcomes.append(result)
            if not events or await write_commit(self._store, key, events, self._item_bytes):
                lane.learn(head, versions)
                return outcomes
            await self._catch_up(lane)
            if attempt:
                await backoff(min(attempt, 6))
        raise BackendUnavailable(KIND, "the event spine is too contended to commit; retry")

    async def _know(self, lane: _Lane, streams: Iterable[str]) -> None:
        key = lane.partition.key
        if lane.head is None:
            lane.versions.clear()
            lane.head = await cosmos_reads.head_of(self._store, key)
        missing = [stream for stream in streams if stream not in lane.versions]
        found = await gather(*(cosmos_reads.stream_version(self._store, key, stream) for stream in missing))
        lane.learn(lane.head, dict(zip(missing, found, strict=True)))

    async def _catch_up(self, lane: _Lane) -> None:
        """After a lost race: the commits written since our head, applied to what we know."""
        if lane.head is None:
            return
        rows = await self._store.query(
            _CAUGHT_UP, lane.partition.key, {"@p": lane.partition.key, "@h": lane.head}
        )
        if not rows or len(rows) == _CATCH_UP or rows[0]["first"] != lane.head + 1:
            lane.forget()
            return
        for row in rows:
            for entry in row["sv"]:
                if entry["s"] in lane.versions:
                    lane.versions[entry["s"]] = entry["v"]
        lane.head = rows[-1]["last"]

    # reads

    async def read_encoded(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> EncodedPage:
        return await cosmos_reads.read_encoded(
            self._store, partition, after=after, limit=limit, stream=stream, types=types
        )

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        return await cosmos_reads.read_stream(
            self._store, partition, stream, after_version=after_version, limit=limit
        )

    async def head(self, partition: Partition) -> int:
        return await cosmos_reads.head_of(self._store, partition.key)

    # retention

    async def remove(self, partition: Partition, positions: Collection[int]) -> int:
        return await removal.remove(self._store, partition.key, positions)


def _take(queue: deque[_Pending]) -> list[_Pending]:
    batch = [queue.popleft()]
    events = len(batch[0].request.events)
    while queue and len(batch) < _MAX_REQUESTS_PER_COMMIT:
        size = len(queue[0].request.events)
        if events + size > _MAX_EVENTS_PER_COMMIT:
            break
        batch.append(queue.popleft())
        events += size
    return batch
