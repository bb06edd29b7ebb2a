"""DynamoDB spine: every partition's log in one DynamoDB table (layout: `adapters.dynamodb.log`).

Atomicity and order: the partition head item is the one point every append to a partition
passes. A group commit is one `TransactWriteItems` whose first write moves the head from the
value the writer read (`h = :read`, and no lock) to the new last position, beside the commit
chunks, the stream heads (each conditioned on its version as read), one stream entry per append
and one item per client-chosen event id (`attribute_not_exists`). Two writers that read the same
head cannot both commit, so positions are gapless and each stream's versions too; the loser
re-reads and tries again. Readers read the head first and never look past it.

Idempotency: an append's client ids are looked up (strongly consistent) only when needed — the
id items' conditions make an optimistic commit fail when an id is already stored, and a request
that would be refused for its expected version is answered only after its ids were looked up, so
a retry always gets its original positions back, even with a stale `expected_version`.

Group commit: appends to one partition queue up while a transaction is in flight, and the next
transaction takes as many as fit DynamoDB's limits (100 items, 4 MB); each caller is answered
after the commit, with its own outcome. Heads and stream versions are cached between commits;
the head condition proves the cache right, and a failed condition drops it.

Retention (`remove`) rewrites commit chunks without the removed events, conditioned on each chunk
as read; the head, stream heads and id items stay, so the writers' caches stay right: see
`adapters.dynamodb.removal`.

Larger appends (more than ~95 client ids, or more compressed data than one transaction holds)
lock the partition head and are written in several transactions, still all-or-nothing: see
`adapters.dynamodb.locked`.

This module is the writer (one per partition) and the spine's interface; what a commit decides
and writes is in `adapters.dynamodb.commits`, the read side and the id lookup in `adapters.dynamodb.reads`.

What DynamoDB Local lacks: nothing this adapter uses (transactions with cancellation reasons and
`ClientRequestToken`, strongly consistent reads, conditions); it does not throttle, so the
throttling retries are exercised only against AWS.

Errors: throttling, 5xx, transaction conflicts and dropped connections are retried with backoff
for `retry_seconds` (default: the route's `request_timeout_seconds`, see `adapters.dynamodb.table`), then
raise `BackendUnavailable("event_spine")`: nothing was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Collection
from types import TracebackType
from typing import Any

import anyio

from adapters.decoded_reads import DecodedReads
from adapters.dynamodb import reads as dynamodb_reads
from adapters.dynamodb import removal
from adapters.dynamodb.commits import CommitDecision, State, commit_once, decide_commit
from adapters.dynamodb.locked import LOCK_SECONDS, Locked, commit_locked, settle
from adapters.dynamodb.log import HEAD_SK, stream_pk
from adapters.dynamodb.table import DynamoTable
from adapters.group_commit import Announcements, Pending, answer
from domain.append import AppendRequest, validate
from domain.errors import BackendUnavailable, SpineError
from domain.events import AppendResult, EncodedPage, Event
from domain.partition import Partition
from domain.ports import Notifier
from domain.timeouts import Timeouts

log = logging.getLogger(f"spine.{__name__}")

KIND = "event_spine"
_MAX_GROUP = 500  # requests considered for one group commit
_MAX_CACHED_STREAMS = 10_000  # per partition
_MAX_CACHED_PARTITIONS = 10_000


class DynamoDBSpine(DecodedReads):
    """`async with DynamoDBSpine(table, region=…) as spine:`; leaving it drains pending appends."""

    def __init__(
        self,
        table: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        notifier: Notifier | None = None,
        session: Any = None,
        create_table: bool = False,
        timeouts: Timeouts | None = None,
        retry_seconds: float | None = None,
    ) -> None:
        self._table = DynamoTable(
            table,
            kind=KIND,
            region=region,
            endpoint_url=endpoint_url,
            session=session,
            create=create_table,
            timeouts=timeouts,
            retry_seconds=retry_seconds,
        )
        self._notifier = notifier
        self._open = False
        self._queues: dict[str, deque[Pending]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._announcements = Announcements()
        self._cache: OrderedDict[str, State] = OrderedDict()

    async def __aenter__(self) -> DynamoDBSpine:
        await self._table.__aenter__()
        self._open = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._open = False
        while self._writers:
            await asyncio.gather(*self._writers.values(), return_exceptions=True)
        await self._announcements.drain()
        await self._table.__aexit__(exc_type, exc, tb)

    # appends

    async def append(self, partition: Partition, request: AppendRequest) -> AppendResult:
        validate(request)
        if not self._open:
            raise BackendUnavailable(KIND, "the event spine is not started")
        key = partition.key
        pending = Pending(partition, request, asyncio.get_running_loop().create_future())
        self._queues.setdefault(key, deque()).append(pending)
        if key not in self._writers:
            self._writers[key] = asyncio.create_task(self._write_loop(key), name=f"spine-writer:{key}")
        # If the caller is cancelled the append may still commit; a retry with the same ids is safe.
        return await asyncio.shield(pending.future)

    async def _write_loop(self, key: str) -> None:
        """One writer per partition: everything queued during one commit goes into the next."""
        queue = self._queues[key]
        try:
            while queue:
                group = [queue.popleft() for _ in range(min(len(queue), _MAX_GROUP))]
                try:
                    leftover = await self._commit_group(key, group)
                except Exception as exc:  # each caller gets the failure; the writer goes on
                    self._cache.pop(key, None)
                    if not isinstance(exc, SpineError):
                        log.exception("dynamodb spine writer failed")
                        exc = BackendUnavailable(KIND, f"the event spine failed ({type(exc).__name__})")
                    for pending in group:
                        answer(pending.future, exc)
                    continue
                queue.extendleft(reversed(leftover))
        finally:
            del self._writers[key]
            if not queue:
                del self._queues[key]

    async def _commit_group(self, key: str, group: list[Pending]) -> list[Pending]:
        """Decide and commit what of `group` fits one transaction; answer those, return the rest."""
        deadline = time.monotonic() + self._table.retry_seconds + LOCK_SECONDS
        check_ids, delay = False, 0.01
        while True:
            try:
                state = await self._state(key, {p.request.stream for p in group})
            except Locked as locked:
                if time.monotonic() > deadline:
                    raise BackendUnavailable(KIND, "a large append holds the partition; retry") from None
                await settle(self._table, key, locked)
                continue
            stored = await dynamodb_reads.stored_ids(self._table, key, group, state.head) if check_ids else {}
            decision = decide_commit(group, state, stored, check_ids=check_ids)
            if decision.need_ids or (decision.alone and not check_ids):
                check_ids = True
                continue
            if decision.alone:
                outcome = await commit_locked(self._table, key, state, decision)
            elif decision.writes:
                outcome = await commit_once(self._table, key, state, decision, check_ids=check_ids)
            elif decision.refused:
                head, _ = await dynamodb_reads.read_head(self._table, key)
                outcome = "ok" if head == state.head else "stale"
            else:
                outcome = "ok"
            if outcome == "ok":
                self._resolve(key, state, decision)
                return decision.leftover
            if outcome == "ids":
                check_ids = True
            else:
                self._cache.pop(key, None)
            if time.monotonic() > deadline:
                raise BackendUnavailable(KIND, "the partition kept changing under concurrent writers; retry")
            await anyio.sleep(random.uniform(0, delay))  # noqa: S311
            delay = min(delay * 2, 0.5)

    async def _state(self, key: str, streams: set[str]) -> State:
        state = self._cache.get(key)
        if state is None:
            head, lock = await dynamodb_reads.read_head(self._table, key)
            if lock is not None:
                raise Locked(head, *lock)
            state = State(head)
        missing = [stream for stream in streams if stream not in state.versions]
        if missing:
            found = await self._table.get_many([(stream_pk(key, stream), HEAD_SK) for stream in missing])
            for stream in missing:
                item = found.get((stream_pk(key, stream), HEAD_SK))
                state.versions[stream] = int(item["v"]["N"]) if item else 0
        self._cache[key] = state
        self._cache.move_to_end(key)
        while len(self._cache) > _MAX_CACHED_PARTITIONS:
            self._cache.popitem(last=False)
        return state

    def _resolve(self, key: str, state: State, decision: CommitDecision) -> None:
        """Answer each caller, update the cache, announce the new head."""
        for write in decision.writes:
            state.head = write.result.last_position
            state.versions[write.events[0].stream] = write.result.stream_version
            state.versions.move_to_end(write.events[0].stream)
        while len(state.versions) > _MAX_CACHED_STREAMS:
            state.versions.popitem(last=False)
        outcomes = decision.outcomes + [(write.pending, write.result) for write in decision.writes]
        for pending, outcome in outcomes:
            answer(pending.future, outcome)
        if decision.writes:
            self._announcements.publish(self._notifier, {decision.writes[0].pending.partition: state.head})

    # reads

    async def head(self, partition: Partition) -> int:
        return (await dynamodb_reads.read_head(self._table, partition.key))[0]

    async def read_encoded(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> EncodedPage:
        return await dynamodb_reads.read_encoded(
            self._table, partition, after=after, limit=limit, stream=stream, types=types
        )

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        return await dynamodb_reads.read_stream(
            self._table, partition, stream, after_version=after_version, limit=limit
        )

    # retention

    async def remove(self, partition: Partition, positions: Collection[int]) -> int:
        return await removal.remove(self._table, partition.key, positions)
