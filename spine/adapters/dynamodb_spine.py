"""DynamoDB spine: every partition's log in one DynamoDB table (layout: `dynamodb_log`).

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

Larger appends (more than ~95 client ids, or more compressed data than one transaction holds)
cannot be one transaction. They lock the partition head (`l`, `u`: a lease of `LOCK_SECONDS`,
renewed by every transaction of the append), write their chunks and id items in as many
transactions as needed — invisible, as they lie past the head — and commit by moving the head and
releasing the lock in a last transaction. A writer that finds an expired lock takes it over,
deletes what the dead append left past the head (chunks, parts and the ids they list), and
releases it. Other writers wait while a lock is alive. So a batch of any allowed size is
all-or-nothing.

What DynamoDB Local lacks: nothing this adapter uses (transactions with cancellation reasons and
`ClientRequestToken`, strongly consistent reads, conditions); it does not throttle, so the
throttling retries are exercised only against AWS.

Errors: throttling, 5xx, transaction conflicts and dropped connections are retried with backoff
for `retry_seconds`, then raise `BackendUnavailable("event_spine")`: nothing was acknowledged.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import random
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from spine.adapters.dynamodb_log import (
    HEAD_SK,
    ITEM_OVERHEAD,
    Sizer,
    bodies_of,
    chunked,
    head_pk,
    id_pk,
    item_size,
    log_pk,
    part_pk,
    peek_decoder,
    pos,
    stream_pk,
)
from spine.adapters.dynamodb_table import Cancelled, ConditionFailed, DynamoTable, Item, n, s
from spine.domain.append import AppendRequest, StoredId, client_ids, decide_append, validate
from spine.domain.cursor import check_cursor
from spine.domain.errors import BackendUnavailable, SpineError
from spine.domain.events import (
    AppendResult,
    EncodedEvent,
    EncodedPage,
    Event,
    Page,
    decode_events,
    decode_page,
    event_encoder,
)
from spine.domain.partition import Partition
from spine.domain.ports import Notifier

log = logging.getLogger(__name__)

KIND = "event_spine"
LOCK_SECONDS = 30.0
_MAX_ITEMS = 100  # DynamoDB's limit of items in one transaction
_MAX_BYTES = 3_800_000  # of its 4 MB limit on a transaction's items
_MAX_GROUP = 500  # requests considered for one group commit
_MAX_CACHED_STREAMS = 10_000  # per partition
_MAX_CACHED_PARTITIONS = 10_000
_MERGE_GAP = 64  # positions between two chunk ranges a stream read fetches in one query
_NAMES = {"#h": "h", "#l": "l", "#u": "u"}


class _Pending:
    __slots__ = ("future", "partition", "request")

    def __init__(
        self, partition: Partition, request: AppendRequest, future: asyncio.Future[AppendResult]
    ) -> None:
        self.partition = partition
        self.request = request
        self.future = future


@dataclass
class _State:
    """A partition's head and the versions of the streams a group touches, as of one read."""

    head: int
    versions: OrderedDict[str, int] = field(default_factory=OrderedDict)


@dataclass
class _Write:
    pending: _Pending
    events: list[Event]
    bodies: list[bytes]
    result: AppendResult
    old_version: int


@dataclass
class _Plan:
    outcomes: list[tuple[_Pending, AppendResult | SpineError]] = field(default_factory=list)
    writes: list[_Write] = field(default_factory=list)
    leftover: list[_Pending] = field(default_factory=list)
    refused: bool = False  # a conflict was decided: it stands only if the state read was current
    need_ids: bool = False  # a request with client ids was refused before its ids were looked up
    alone: bool = False  # one append too large for one transaction


class _Locked(Exception):
    def __init__(self, head: int, lock: str, until: int) -> None:
        super().__init__(lock)
        self.head = head
        self.lock = lock
        self.until = until


class DynamoDBSpine:
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
        retry_seconds: float = 10.0,
    ) -> None:
        self._table = DynamoTable(
            table,
            kind=KIND,
            region=region,
            endpoint_url=endpoint_url,
            session=session,
            create=create_table,
            retry_seconds=retry_seconds,
        )
        self._notifier = notifier
        self._open = False
        self._queues: dict[str, deque[_Pending]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._announcing: set[asyncio.Task[None]] = set()
        self._cache: OrderedDict[str, _State] = OrderedDict()

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
        if self._announcing:
            await asyncio.gather(*self._announcing)
        await self._table.__aexit__(exc_type, exc, tb)

    # appends

    async def append(self, partition: Partition, request: AppendRequest) -> AppendResult:
        validate(request)
        if not self._open:
            raise BackendUnavailable(KIND, "the event spine is not started")
        key = partition.key
        pending = _Pending(partition, request, asyncio.get_running_loop().create_future())
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
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                queue.extendleft(reversed(leftover))
        finally:
            del self._writers[key]
            if not queue:
                del self._queues[key]

    async def _commit_group(self, key: str, group: list[_Pending]) -> list[_Pending]:
        """Decide and commit what of `group` fits one transaction; answer those, return the rest."""
        deadline = time.monotonic() + self._table.retry_seconds + LOCK_SECONDS
        check_ids, delay = False, 0.01
        while True:
            try:
                state = await self._state(key, {p.request.stream for p in group})
            except _Locked as locked:
                if time.monotonic() > deadline:
                    raise BackendUnavailable(KIND, "a large append holds the partition; retry") from None
                await self._settle(key, locked)
                continue
            stored = await self._lookup(key, group, state.head) if check_ids else {}
            plan = self._plan(group, state, stored, check_ids=check_ids)
            if plan.need_ids or (plan.alone and not check_ids):
                check_ids = True
                continue
            if plan.alone:
                outcome = await self._commit_locked(key, state, plan)
            elif plan.writes:
                outcome = await self._commit_once(key, state, plan, check_ids=check_ids)
            elif plan.refused:
                head, _ = await self._read_head(key)
                outcome = "ok" if head == state.head else "stale"
            else:
                outcome = "ok"
            if outcome == "ok":
                self._resolve(key, state, plan)
                return plan.leftover
            if outcome == "ids":
                check_ids = True
            else:
                self._cache.pop(key, None)
            if time.monotonic() > deadline:
                raise BackendUnavailable(KIND, "the partition kept changing under concurrent writers; retry")
            await asyncio.sleep(random.uniform(0, delay))  # noqa: S311
            delay = min(delay * 2, 0.5)

    def _plan(
        self, group: list[_Pending], state: _State, stored: dict[str, StoredId], *, check_ids: bool
    ) -> _Plan:
        plan = _Plan()
        head, versions = state.head, dict(state.versions)
        written: dict[str, StoredId] = {}
        sizer, ids, streams = Sizer(), 0, set[str]()
        recorded_at = datetime.now(UTC)
        for index, pending in enumerate(group):
            request = pending.request
            wanted = client_ids(request)
            known = [found for i in wanted if (found := written.get(i) or stored.get(i)) is not None]
            try:
                events, result = decide_append(
                    request,
                    head=head,
                    stream_version=versions[request.stream],
                    stored=known,
                    recorded_at=recorded_at,
                )
            except SpineError as exc:
                if wanted and not check_ids:
                    plan.need_ids = True
                    return plan
                plan.outcomes.append((pending, exc))
                plan.refused = True
                continue
            if not events:
                plan.outcomes.append((pending, result))
                continue
            bodies = [event_encoder.encode(event) for event in events]
            grown = sizer
            for body in bodies:
                grown = grown.add(len(body))
            new_streams = streams | {request.stream}
            items = 1 + len(new_streams) + len(plan.writes) + 1 + ids + len(wanted) + grown.items
            size = grown.raw + ITEM_OVERHEAD * items
            if items > _MAX_ITEMS or size > _MAX_BYTES:
                if plan.writes:
                    plan.leftover = group[index:]
                    return plan
                plan.alone = True
                plan.leftover = group[index + 1 :]
            plan.writes.append(_Write(pending, events, bodies, result, versions[request.stream]))
            sizer, ids, streams = grown, ids + len(wanted), new_streams
            head, versions[request.stream] = result.last_position, result.stream_version
            for event in events:
                written[event.id] = StoredId(event.id, event.stream, event.version, event.position)
            if plan.alone:
                return plan
        return plan

    def _items(
        self, key: str, state: _State, plan: _Plan, *, locked: bool, check_ids: bool
    ) -> tuple[list[list[Item]], list[Item]]:
        """(chunk units: a chunk, its parts, its ids, in order; the head, stream head and entry writes)."""
        first_versions: dict[str, int] = {}
        rows: list[tuple[int, bytes, str | None]] = []
        wanted: set[str] = set()
        for write in plan.writes:
            wanted.update(client_ids(write.pending.request))
            first_versions.setdefault(write.events[0].stream, write.old_version)
            rows.extend(
                (event.position, body, event.id if event.id in wanted else None)
                for event, body in zip(write.events, write.bodies, strict=True)
            )
        chunks = chunked(rows)
        starts = [chunk.first for chunk in chunks]
        by_id = {event.id: event for write in plan.writes for event in write.events}
        units: list[list[Item]] = []
        for chunk in chunks:
            unit = chunk.items(key, with_ids=locked)
            for event_id in chunk.client_ids:
                event = by_id[event_id]
                unit.append(_id_item(key, event, conditional=not check_ids))
            units.append(unit)
        last = plan.writes[-1].result.last_position
        writes: list[Item] = [_head_update(key, state.head, last)]
        news: dict[str, int] = {}
        for write in plan.writes:
            news[write.events[0].stream] = write.result.stream_version
        for stream, new in news.items():
            writes.append(_stream_head(key, stream, first_versions[stream], new))
        for write in plan.writes:
            first = write.events[0]
            chunk_start = starts[bisect.bisect_right(starts, first.position) - 1]
            entry = {
                "pk": s(stream_pk(key, first.stream)),
                "sk": s(pos(first.version)),
                "p": n(first.position),
                "n": n(len(write.events)),
                "c": n(chunk_start),
            }
            writes.append({"Put": {"Item": entry}})
        return units, writes

    async def _commit_once(self, key: str, state: _State, plan: _Plan, *, check_ids: bool) -> str:
        units, writes = self._items(key, state, plan, locked=False, check_ids=check_ids)
        return await self._transact(
            writes + [item for unit in units for item in unit], stream_writes=len(writes)
        )

    async def _transact(self, items: list[Item], *, stream_writes: int) -> str:
        """Commit: "ok", "stale" (a head or stream condition failed) or "ids" (an id is stored)."""
        try:
            await self._table.transact([self._op(item) for item in items], uuid.uuid4().hex)
        except Cancelled as cancelled:
            if any(i < stream_writes for i in cancelled.failed):
                return "stale"  # the head or a stream moved: our state is old
            return "ids"  # an id is stored: look them up
        return "ok"

    def _op(self, item: Item) -> Item:
        """A transaction's write with the table named; a bare item is an unconditional put."""
        if "pk" in item:
            return {"Put": {"TableName": self._table.name, "Item": item}}
        ((verb, body),) = item.items()
        return {verb: {**body, "TableName": self._table.name}}

    async def _commit_locked(self, key: str, state: _State, plan: _Plan) -> str:
        """One append too large for one transaction: lock the head, write, commit by moving it."""
        units, writes = self._items(key, state, plan, locked=True, check_ids=True)
        flat = [item for unit in units for item in unit]
        if len(flat) + len(writes) <= _MAX_ITEMS and sum(map(item_size, flat)) <= _MAX_BYTES:
            # Compressed, it fits after all: one transaction, no lock.
            return await self._transact(writes + flat, stream_writes=len(writes))
        lock = uuid.uuid4().hex
        try:
            await self._table.call(
                "update_item",
                Key=_head_key(key),
                UpdateExpression="SET #l = :l, #u = :u, #h = if_not_exists(#h, :zero)",
                ConditionExpression=f"{_head_condition(state.head)} AND attribute_not_exists(#l)",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={
                    ":l": s(lock), ":u": n(_lease_until()), ":zero": n(0), **_head_values(state.head)
                },
            )  # fmt: skip
        except ConditionFailed:
            return "stale"
        try:
            for batch in _batches(flat):
                if await self._transact([_renew(key, lock), *batch], stream_writes=1) != "ok":
                    return "stale"  # the lock was taken over: its taker removes what we wrote
            writes[0] = _head_release(key, plan.writes[-1].result.last_position, lock)
            outcome = await self._transact(writes, stream_writes=len(writes))
        except BackendUnavailable:
            await self._undo(key, state.head, lock)
            raise
        if outcome != "ok":
            await self._undo(key, state.head, lock)
        return outcome

    async def _undo(self, key: str, head: int, lock: str) -> None:
        try:
            await self._clean(key, head, lock)
        except SpineError:
            log.warning(
                "could not undo a failed locked append; its lock will expire", extra={"partition": key}
            )

    async def _settle(self, key: str, locked: _Locked) -> None:
        """Wait while another writer's lock is alive; take over and clean up an expired one."""
        if locked.until > _now_ms():
            await asyncio.sleep(min(0.2, (locked.until - _now_ms()) / 1000))
            return
        mine = uuid.uuid4().hex
        try:
            await self._table.call(
                "update_item",
                Key=_head_key(key),
                UpdateExpression="SET #l = :mine, #u = :u",
                ConditionExpression="#l = :l AND #u = :until",
                ExpressionAttributeNames={"#l": "l", "#u": "u"},
                ExpressionAttributeValues={
                    ":mine": s(mine), ":u": n(_lease_until()), ":l": s(locked.lock), ":until": n(locked.until)
                },
            )  # fmt: skip
        except ConditionFailed:
            return  # someone else moved first: read again
        log.warning("taking over an expired append lock", extra={"partition": key})
        await self._clean(key, locked.head, mine)

    async def _clean(self, key: str, head: int, lock: str) -> None:
        """Delete what a locked append left past the head, then release the lock. Only while we
        hold `lock`: renewing it first gives us `LOCK_SECONDS` in which nobody else writes there."""
        try:
            await self._table.call("update_item", **_renew(key, lock)["Update"])
        except ConditionFailed:
            return  # not ours (any more): its holder cleans up
        chunks = await self._table.query_all(
            KeyConditionExpression="pk = :pk AND sk > :head",
            ExpressionAttributeValues={":pk": s(log_pk(key)), ":head": s(pos(head))},
            ProjectionExpression="pk, sk, k, cid",
        )
        doomed: list[tuple[str, str]] = []
        for chunk in chunks:
            first = int(chunk["sk"]["S"])
            doomed.append((log_pk(key), pos(first)))
            parts = int(chunk.get("k", {"N": "1"})["N"])
            doomed.extend((part_pk(key, first), f"{i:04d}") for i in range(1, parts))
            doomed.extend((id_pk(key, i["S"]), HEAD_SK) for i in chunk.get("cid", {"L": []})["L"])
        await self._table.delete_many(doomed)
        with contextlib.suppress(ConditionFailed):  # taken over meanwhile: the taker cleans up
            await self._table.call(
                "update_item",
                Key=_head_key(key),
                UpdateExpression="REMOVE #l, #u",
                ConditionExpression="#l = :l",
                ExpressionAttributeNames={"#l": "l", "#u": "u"},
                ExpressionAttributeValues={":l": s(lock)},
            )

    async def _state(self, key: str, streams: set[str]) -> _State:
        state = self._cache.get(key)
        if state is None:
            head, lock = await self._read_head(key)
            if lock is not None:
                raise _Locked(head, *lock)
            state = _State(head)
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

    async def _lookup(self, key: str, group: list[_Pending], head: int) -> dict[str, StoredId]:
        """Stored client ids of the group. Ids past `head` are not committed (or not yet seen): the
        commit's head condition settles them."""
        wanted = {i for pending in group for i in client_ids(pending.request)}
        found = await self._table.get_many([(id_pk(key, i), HEAD_SK) for i in wanted])
        stored: dict[str, StoredId] = {}
        for (pk, _), item in found.items():
            position = int(item["p"]["N"])
            if position <= head:
                event_id = pk.rsplit("|", 1)[1]
                stored[event_id] = StoredId(event_id, item["s"]["S"], int(item["v"]["N"]), position)
        return stored

    def _resolve(self, key: str, state: _State, plan: _Plan) -> None:
        """Answer each caller, update the cache, announce the new head."""
        for write in plan.writes:
            state.head = write.result.last_position
            state.versions[write.events[0].stream] = write.result.stream_version
            state.versions.move_to_end(write.events[0].stream)
        while len(state.versions) > _MAX_CACHED_STREAMS:
            state.versions.popitem(last=False)
        outcomes = plan.outcomes + [(write.pending, write.result) for write in plan.writes]
        for pending, outcome in outcomes:
            if pending.future.done():
                continue
            if isinstance(outcome, AppendResult):
                pending.future.set_result(outcome)
            else:
                pending.future.set_exception(outcome)
        if plan.writes and self._notifier is not None:
            partition = plan.writes[0].pending.partition
            task = asyncio.create_task(self._notifier.publish(partition, state.head))
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)

    # reads

    async def _read_head(self, key: str) -> tuple[int, tuple[str, int] | None]:
        item = await self._table.get(head_pk(key), HEAD_SK)
        if item is None:
            return 0, None
        head = int(item["h"]["N"]) if "h" in item else 0
        lock = (item["l"]["S"], int(item["u"]["N"])) if "l" in item else None
        return head, lock

    async def head(self, partition: Partition) -> int:
        return (await self._read_head(partition.key))[0]

    async def read(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> Page:
        page = await self.read_encoded(partition, after=after, limit=limit, stream=stream, types=types)
        return decode_page(page)

    async def read_encoded(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> EncodedPage:
        key = partition.key
        head = await self.head(partition)
        check_cursor(after, head)
        if after == head or limit <= 0:
            return EncodedPage(events=[], next=head, head=head)
        wanted = frozenset(types)
        events: list[EncodedEvent] = []
        start = await self._chunk_holding(key, after + 1)
        request: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
            "ExpressionAttributeValues": {":pk": s(log_pk(key)), ":from": s(pos(start)), ":to": s(pos(head))},
            "Limit": 4,
        }
        while True:
            answer = await self._table.call("query", ConsistentRead=True, **request)
            for chunk in answer.get("Items", []):
                for position, body in await self._bodies(key, chunk):
                    if position <= after:
                        continue
                    if stream is not None or wanted:
                        peek = peek_decoder.decode(body)
                        if (stream is not None and peek.stream != stream) or (
                            wanted and peek.type not in wanted
                        ):
                            continue
                        events.append((position, peek.type, body))
                    else:
                        events.append((position, peek_decoder.decode(body).type, body))
                    if len(events) == limit:
                        return EncodedPage(events=events, next=position, head=head)
            last = answer.get("LastEvaluatedKey")
            if not last:
                return EncodedPage(events=events, next=head, head=head)
            request["ExclusiveStartKey"] = last
            request["Limit"] = min(request["Limit"] * 4, 256)

    async def _chunk_holding(self, key: str, position: int) -> int:
        answer = await self._table.call(
            "query",
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND sk <= :at",
            ExpressionAttributeValues={":pk": s(log_pk(key)), ":at": s(pos(position))},
            ProjectionExpression="sk",
            ScanIndexForward=False,
            Limit=1,
        )
        items = answer.get("Items", [])
        return int(items[0]["sk"]["S"]) if items else position

    async def _bodies(self, key: str, chunk: Item) -> list[tuple[int, bytes]]:
        parts: list[bytes] = []
        count = int(chunk.get("k", {"N": "1"})["N"])
        if count > 1:
            first = int(chunk["sk"]["S"])
            items = await self._table.query_all(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
                ExpressionAttributeValues={
                    ":pk": s(part_pk(key, first)), ":a": s(f"{1:04d}"), ":b": s(f"{count - 1:04d}")
                },
            )  # fmt: skip
            parts = [item["z"]["B"] for item in items]
        return bodies_of(chunk, parts)

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        key = partition.key
        item = await self._table.get(stream_pk(key, stream), HEAD_SK)
        version = int(item["v"]["N"]) if item else 0
        upto = min(version, after_version + limit)
        if upto <= after_version:
            return [], version
        first = after_version + 1
        holding = await self._table.call(
            "query",
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND sk <= :at",
            ExpressionAttributeValues={":pk": s(stream_pk(key, stream)), ":at": s(pos(first))},
            ScanIndexForward=False,
            Limit=1,
            ProjectionExpression="sk",
        )
        start = int(holding["Items"][0]["sk"]["S"]) if holding.get("Items") else first
        entries = await self._table.query_all(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":pk": s(stream_pk(key, stream)), ":a": s(pos(start)), ":b": s(pos(upto))},
        )  # fmt: skip
        wanted: set[int] = set()
        ranges: list[list[int]] = []
        for entry in entries:
            first_version, first_position = int(entry["sk"]["S"]), int(entry["p"]["N"])
            low = max(first_version, first)
            high = min(first_version + int(entry["n"]["N"]) - 1, upto)
            if low > high:
                continue
            wanted.update(
                range(first_position + low - first_version, first_position + high - first_version + 1)
            )
            ranges.append([int(entry["c"]["N"]), first_position + high - first_version])
        bodies = await self._positions(key, _merged(ranges), wanted)
        return decode_events(bodies), version

    async def _positions(self, key: str, ranges: list[list[int]], wanted: set[int]) -> list[bytes]:
        limit = asyncio.Semaphore(8)

        async def fetch(low: int, high: int) -> list[tuple[int, bytes]]:
            async with limit:
                chunks = await self._table.query_all(
                    KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
                    ExpressionAttributeValues={":pk": s(log_pk(key)), ":a": s(pos(low)), ":b": s(pos(high))},
                )  # fmt: skip
                return [
                    pair for chunk in chunks for pair in await self._bodies(key, chunk) if pair[0] in wanted
                ]

        found = await asyncio.gather(*(fetch(low, high) for low, high in ranges))
        return [body for _, body in sorted(pair for pairs in found for pair in pairs)]


def _merged(ranges: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + _MERGE_GAP:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return merged


def _batches(items: Sequence[Item]) -> list[list[Item]]:
    """Transactions of at most 99 items (one slot is the lock renewal) and `_MAX_BYTES`, in order."""
    batches: list[list[Item]] = []
    size = 0
    for item in items:
        grow = item_size(item)
        if not batches or len(batches[-1]) == _MAX_ITEMS - 1 or size + grow > _MAX_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += grow
    return batches


def _now_ms() -> int:
    return int(time.time() * 1000)


def _lease_until() -> int:
    return _now_ms() + int(LOCK_SECONDS * 1000)


def _head_key(key: str) -> Item:
    return {"pk": s(head_pk(key)), "sk": s(HEAD_SK)}


def _head_condition(head: int) -> str:
    return "(attribute_not_exists(#h) OR #h = :h)" if head == 0 else "#h = :h"


def _head_values(head: int) -> Item:
    return {":h": n(head)}


def _head_update(key: str, head: int, new: int) -> Item:
    return {
        "Update": {
            "Key": _head_key(key),
            "UpdateExpression": "SET #h = :new",
            "ConditionExpression": f"{_head_condition(head)} AND attribute_not_exists(#l)",
            "ExpressionAttributeNames": {"#h": "h", "#l": "l"},
            "ExpressionAttributeValues": {":new": n(new), **_head_values(head)},
        }
    }


def _head_release(key: str, new: int, lock: str) -> Item:
    return {
        "Update": {
            "Key": _head_key(key),
            "UpdateExpression": "SET #h = :new REMOVE #l, #u",
            "ConditionExpression": "#l = :l",
            "ExpressionAttributeNames": _NAMES,
            "ExpressionAttributeValues": {":new": n(new), ":l": s(lock)},
        }
    }


def _renew(key: str, lock: str) -> Item:
    return {
        "Update": {
            "Key": _head_key(key),
            "UpdateExpression": "SET #u = :u",
            "ConditionExpression": "#l = :l",
            "ExpressionAttributeNames": {"#l": "l", "#u": "u"},
            "ExpressionAttributeValues": {":u": n(_lease_until()), ":l": s(lock)},
        }
    }


def _stream_head(key: str, stream: str, old: int, new: int) -> Item:
    put: Item = {"Item": {"pk": s(stream_pk(key, stream)), "sk": s(HEAD_SK), "v": n(new)}}
    if old == 0:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        put["ConditionExpression"] = "v = :old"
        put["ExpressionAttributeValues"] = {":old": n(old)}
    return {"Put": put}


def _id_item(key: str, event: Event, *, conditional: bool) -> Item:
    put: Item = {
        "Item": {
            "pk": s(id_pk(key, event.id)),
            "sk": s(HEAD_SK),
            "s": s(event.stream),
            "v": n(event.version),
            "p": n(event.position),
        }
    }
    if conditional:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    return {"Put": put}
