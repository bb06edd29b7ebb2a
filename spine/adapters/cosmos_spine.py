"""Cosmos DB spine (`azure.cosmos.aio`): one container partitioned by `/partition`.

Layout, per partition (one logical partition, so every query below stays inside it):
- a **commit item** per group commit, id `c{first position:020}`: `first`, `last`, a random
  `nonce`, the summary `streams` / `sv` (per stream: first and last version in this commit),
  `types` (distinct, or null when too many to list), `starts` (the first position of each of its
  items), and `ids` plus `events` (the events as one JSON string, exactly as `event_encoder`
  writes them) of its first chunk of events;
- **part items** `p{first:020}.{nonce}.{n}` holding the further chunks (`ids`, `events`) of a
  commit larger than one item may be (Cosmos allows 2 MB; `item_bytes` per chunk leaves room for
  the summary, and keeps requests under the 1 MiB aiohttp sends without yielding).

Atomicity and gapless positions: the commit item is created *only if absent* at the position
after the head its writer read, so of two writers racing for a position one wins and the other
gets 409, learns what was written and decides again. Parts are written first and carry the
nonce; a reader only follows a commit item's parts, so a batch becomes visible whole, at the
moment its commit item exists, or not at all (a loser's parts are deleted; a crashed writer's are
never referenced). Stream versions and the head are derived by reading commit items; stream OCC
is decided by `decide_append` on that state, and the create-if-absent makes it race-free. Event
ids are looked up in the `ids` of commit and part items (a part counts only once its commit item
carries its nonce), so a retried batch answers its original positions.

Group commit: appends to one partition queue up while a commit is in flight and go into the next
commit item together; each keeps its own outcome. Heads and stream versions are cached per
partition and trusted until a 409 proves another process wrote, then caught up from the store.

Failures: throttling and transient errors are retried with backoff (`cosmos_client`), then raise
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
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable
from contextlib import suppress
from datetime import UTC, datetime
from itertools import accumulate
from types import TracebackType
from typing import Any

import msgspec
from azure.cosmos.exceptions import CosmosResourceExistsError

from spine.adapters.cosmos_client import CosmosContainer, Item, backoff, gather
from spine.domain.append import AppendRequest, StoredId, client_ids, decide_append, validate
from spine.domain.cursor import check_cursor
from spine.domain.errors import BackendUnavailable, InvalidRequest, SpineError
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
DEFAULT_CONTAINER = "spine_events"
CommitObserver = Callable[[int, int, float], None]
"""Called after each group commit with (requests, events, seconds)."""

# Events and ids per item. Cosmos allows 2 MB per item; the summary takes up to ~200 KB more, and
# aiohttp warns of request bodies over 1 MiB (they are sent without yielding to the event loop).
ITEM_BYTES = 786_432
_MAX_REQUESTS_PER_COMMIT = 256  # bounds the streams summary of one commit item
_MAX_EVENTS_PER_COMMIT = 10_000
_MAX_TYPES_BYTES = 16_384  # a longer distinct-types summary is stored as null ("any")
_MAX_FILTER_TYPES = 32  # longer type filters are applied to events only, not to commit items
_IDS_PER_QUERY = 100
_CATCH_UP = 1000  # commits another writer may add before the cache is dropped rather than caught up
_MAX_RACES = 50
_MAX_CACHED_STREAMS = 10_000  # per partition
_MAX_IDLE_LANES = 1000
_EVENT_OVERHEAD = 4096  # an event's bytes beyond its data: ids, meta, names, timestamps


class _Head(msgspec.Struct, frozen=True, gc=False):
    """What a commit needs to know of a stored event, decoded without its data."""

    id: str
    type: str
    stream: str
    version: int
    position: int


_heads_decoder = msgspec.json.Decoder(list[_Head])
_raws_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_encoder = msgspec.json.Encoder()

_HEAD = "SELECT TOP 1 VALUE c.last FROM c WHERE c.partition = @p AND c.kind = 'commit' ORDER BY c.first DESC"
_STREAM_VERSION = (
    "SELECT TOP 1 VALUE c.sv FROM c WHERE c.partition = @p AND c.kind = 'commit'"
    " AND ARRAY_CONTAINS(c.streams, @s) ORDER BY c.first DESC"
)
_COMMITS = "c.first, c.last, c.nonce, c.starts, c.events FROM c WHERE c.partition = @p AND c.kind = 'commit'"
_CAUGHT_UP = (
    f"SELECT TOP {_CATCH_UP} c.first, c.last, c.sv FROM c WHERE c.partition = @p AND c.kind = 'commit'"  # noqa: S608
    " AND c.first > @h ORDER BY c.first"
)
_NONCE = "SELECT VALUE c.nonce FROM c WHERE c.partition = @p AND c.id = @id"


def _commit_id(first: int) -> str:
    return f"c{first:020d}"


def _part_id(first: int, nonce: str, n: int) -> str:
    return f"p{first:020d}.{nonce}.{n}"


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


class CosmosSpine:
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
    ) -> None:
        self._store = CosmosContainer(
            KIND,
            endpoint=endpoint,
            database=database,
            container=container,
            key=key,
            endpoint_discovery=endpoint_discovery,
            excluded_paths=("/events/?",),
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
        if any(_sent_size(_encoder.encode(event.data)) > limit for event in request.events):
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
                await asyncio.sleep(0)
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
                if not pending.future.done():
                    pending.future.set_exception(BackendUnavailable(KIND, "the event spine was closed"))
            lane.pending.clear()

    async def _resolve(
        self, lane: _Lane, batch: list[_Pending], outcomes: list[AppendResult | BaseException], elapsed: float
    ) -> None:
        head, events = 0, 0
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, AppendResult):
                events += outcome.last_position - outcome.first_position + 1
                head = max(head, outcome.last_position)
            if pending.future.done():  # the caller went away; the outcome stands all the same
                continue
            if isinstance(outcome, AppendResult):
                pending.future.set_result(outcome)
            else:
                pending.future.set_exception(outcome)
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
            stored = await self._stored_ids(key, ids)
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
            if not events or await self._write(key, events):
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
            lane.head = await self._head(key)
        missing = [stream for stream in streams if stream not in lane.versions]
        found = await gather(*(self._stream_version(key, stream) for stream in missing))
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

    async def _write(self, key: str, events: list[Event]) -> bool:
        """Create the commit item (parts first); False when another writer has that position."""
        nonce = uuid.uuid4().hex
        first = events[0].position
        chunks = _chunks(events, self._item_bytes)
        starts = list(accumulate((len(ids) for _, ids in chunks[:-1]), initial=first))
        parts = [
            {"id": _part_id(first, nonce, n), "partition": key, "kind": "part", "commit": first, "nonce": nonce,
             "ids": chunk_ids, "events": text}
            for n, (text, chunk_ids) in enumerate(chunks[1:], start=1)
        ]  # fmt: skip
        if parts:
            await gather(*(self._create_part(part) for part in parts))
        text, chunk_ids = chunks[0]
        commit = {
            "id": _commit_id(first),
            "partition": key,
            "kind": "commit",
            "first": first,
            "last": events[-1].position,
            "nonce": nonce,
            "starts": starts,  # the first position of each item: the commit's, then its parts'
            "parts": len(parts),
            **_summary(events),
            "ids": chunk_ids,
            "events": text,
        }
        try:
            await self._store.call(self._store.proxy.create_item, commit, passthrough=frozenset({409}))
            landed = True
        except CosmosResourceExistsError:
            # The position is taken: by another writer, or by our own create the SDK re-sent.
            landed = await self._nonce(key, commit["id"]) == nonce
        except BackendUnavailable:
            # The outcome is unknown: find out if the store can say, else the caller may retry.
            if await self._nonce(key, commit["id"]) != nonce:
                raise
            landed = True
        if not landed:
            await self._discard(key, parts)
        return landed

    async def _create_part(self, part: Item) -> None:
        with suppress(CosmosResourceExistsError):  # our own, re-sent: the id carries the nonce
            await self._store.call(self._store.proxy.create_item, part, passthrough=frozenset({409}))

    async def _discard(self, key: str, parts: list[Item]) -> None:
        """Best effort: a loser's parts are never referenced, only their space is wasted."""
        for part in parts:
            try:
                await self._store.proxy.delete_item(part["id"], partition_key=key)
            except Exception as exc:
                log.warning("could not delete an unreferenced part", extra={"error": type(exc).__name__})

    # state reads

    async def _head(self, key: str) -> int:
        rows = await self._store.query(_HEAD, key, {"@p": key})
        return int(rows[0]) if rows else 0

    async def _stream_version(self, key: str, stream: str) -> int:
        rows = await self._store.query(_STREAM_VERSION, key, {"@p": key, "@s": stream})
        return next((int(entry["v"]) for entry in rows[0] if entry["s"] == stream), 0) if rows else 0

    async def _nonce(self, key: str, item_id: str) -> str | None:
        rows = await self._store.query(_NONCE, key, {"@p": key, "@id": item_id})
        return str(rows[0]) if rows else None

    async def _stored_ids(self, key: str, ids: list[str]) -> dict[str, StoredId]:
        """Where the given ids are stored, from committed items only."""
        wanted = set(ids)
        items: dict[str, Item] = {}
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            names = [f"@i{n}" for n in range(len(chunk))]
            rows = await self._store.query(
                # one row per stored id; the index serves `i IN (...)`
                "SELECT c.id, c.kind, c.commit, c.nonce FROM c JOIN i IN c.ids"  # noqa: S608
                f" WHERE c.partition = @p AND i IN ({', '.join(names)})",
                key,
                {"@p": key, **dict(zip(names, chunk, strict=True))},
            )
            items.update((row["id"], row) for row in rows)
        found: dict[str, StoredId] = {}
        for item_id, row in items.items():
            if row["kind"] == "part" and await self._nonce(key, _commit_id(row["commit"])) != row["nonce"]:
                continue  # a part of a commit that lost its race, or of a writer that died
            item = await self._store.call(self._store.proxy.read_item, item_id, key)
            for head in _heads_decoder.decode(item["events"]):
                if head.id in wanted:
                    found[head.id] = StoredId(head.id, head.stream, head.version, head.position)
        return found

    async def _events_of(
        self, key: str, row: Item, after: int = 0, upper: int | None = None
    ) -> list[tuple[_Head, msgspec.Raw]]:
        """A commit's events in position order, from those of its items that hold positions in
        (after, upper]: a page of a large commit reads only its own parts."""
        starts: list[int] = row["starts"]
        ends = [start - 1 for start in starts[1:]] + [row["last"]]
        wanted = [n for n in range(len(starts)) if ends[n] > after and (upper is None or starts[n] <= upper)]
        parts = await gather(
            *(
                self._store.call(self._store.proxy.read_item, _part_id(row["first"], row["nonce"], n), key)
                for n in wanted
                if n
            )
        )
        texts = [row["events"]] if 0 in wanted else []
        texts.extend(part["events"] for part in parts)
        events: list[tuple[_Head, msgspec.Raw]] = []
        for text in texts:
            events.extend(zip(_heads_decoder.decode(text), _raws_decoder.decode(text), strict=True))
        return events

    # reads

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
        # One decoder call for the whole page is several times faster than one per event.
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
        head = await self._head(key)
        check_cursor(after, head)
        if limit < 1 or after == head:
            return EncodedPage(events=[], next=after if limit < 1 else head, head=head)
        wanted = frozenset(types)
        if stream is None and not wanted:
            # Positions are gapless: exactly the commits overlapping (after, upper] hold the page.
            upper = min(head, after + limit)
            rows = await self._store.query(
                f"SELECT {_COMMITS} AND c.last > @a AND c.first <= @u ORDER BY c.first",
                key,
                {"@p": key, "@a": after, "@u": upper},
            )
            events = [
                (h.position, h.type, bytes(raw))
                for row in rows
                for h, raw in await self._events_of(key, row, after, upper)
                if after < h.position <= upper
            ]
            return EncodedPage(events=events, next=upper, head=head)
        sql = f"SELECT TOP {min(limit, 50)} {_COMMITS} AND c.last > @a AND c.first <= @h"
        params: dict[str, object] = {"@p": key, "@h": head}
        if stream is not None:
            sql += " AND ARRAY_CONTAINS(c.streams, @s)"
            params["@s"] = stream
        if wanted and len(wanted) <= _MAX_FILTER_TYPES:
            any_type = " OR ".join(f"ARRAY_CONTAINS(c.types, @t{n})" for n in range(len(wanted)))
            sql += f" AND (IS_NULL(c.types) OR {any_type})"
            params.update({f"@t{n}": t for n, t in enumerate(sorted(wanted))})
        sql += " ORDER BY c.first"
        matched: list[EncodedEvent] = []
        cursor = after
        while len(matched) < limit and cursor < head:
            rows = await self._store.query(sql, key, {**params, "@a": cursor})
            if not rows:
                break
            for row in rows:
                for h, raw in await self._events_of(key, row, cursor, head):
                    if h.position <= cursor or h.position > head or len(matched) == limit:
                        continue
                    if (stream is None or h.stream == stream) and (not wanted or h.type in wanted):
                        matched.append((h.position, h.type, bytes(raw)))
                if len(matched) == limit:
                    break
            cursor = rows[-1]["last"]
        next_position = matched[-1][0] if len(matched) == limit else head
        return EncodedPage(events=matched, next=next_position, head=head)

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        key = partition.key
        version = await self._stream_version(key, stream)
        if after_version >= version or limit < 1:
            return [], version
        sql = (
            f"SELECT TOP {min(limit, 50)} {_COMMITS} AND c.first > @f AND EXISTS(SELECT VALUE x FROM x"  # noqa: S608
            " IN c.sv WHERE x.s = @s AND x.v > @a AND x.f <= @v) ORDER BY c.first"
        )
        params = {"@p": key, "@s": stream, "@a": after_version, "@v": version}
        raws: list[bytes] = []
        cursor, last_version = 0, after_version
        while len(raws) < limit and last_version < version:
            rows = await self._store.query(sql, key, {**params, "@f": cursor})
            if not rows:
                break
            for row in rows:
                for h, raw in await self._events_of(key, row):
                    if h.stream == stream and last_version < h.version <= version and len(raws) < limit:
                        raws.append(bytes(raw))
                        last_version = h.version
            cursor = rows[-1]["first"]
        return decode_events(raws), version

    async def head(self, partition: Partition) -> int:
        return await self._head(partition.key)


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


def _summary(events: list[Event]) -> dict[str, Any]:
    """What queries select commits by: streams with their version ranges, and distinct types."""
    ranges: dict[str, list[int]] = {}
    for event in events:
        span = ranges.setdefault(event.stream, [event.version, event.version])
        span[1] = event.version
    types = sorted({event.type for event in events})
    listed = sum(len(t) + 3 for t in types) <= _MAX_TYPES_BYTES
    return {
        "streams": list(ranges),
        "sv": [{"s": stream, "f": span[0], "v": span[1]} for stream, span in ranges.items()],
        "types": types if listed else None,
    }


def _chunks(events: list[Event], budget: int) -> list[tuple[str, list[str]]]:
    """Events as JSON-array strings of at most `budget` bytes each (as sent: quotes escaped), with ids."""
    chunks: list[tuple[str, list[str]]] = []
    bodies: list[bytes] = []
    ids: list[str] = []
    size = 0
    for event in events:
        body = event_encoder.encode(event)
        cost = _sent_size(body) + len(event.id) + 4
        if bodies and size + cost > budget:
            chunks.append(("[" + b",".join(bodies).decode() + "]", ids))
            bodies, ids, size = [], [], 0
        bodies.append(body)
        ids.append(event.id)
        size += cost
    chunks.append(("[" + b",".join(bodies).decode() + "]", ids))
    return chunks


def _sent_size(body: bytes) -> int:
    """The size of `body` as a JSON string in a request: quotes and backslashes escaped, and
    non-ASCII characters too (the SDK sends `ensure_ascii` JSON)."""
    if body.isascii():
        return len(body) + body.count(b'"') + body.count(b"\\")
    return len(json.dumps(body.decode()))
