"""Firestore spine: partitioned logs in Cloud Firestore (native mode), via `AsyncClient`.

Layout (see `firestore_commits`): `partitions/{p}` holds the head; each group commit adds commit
documents keyed by their zero-padded first position, events packed as JSON, split across part
documents where one event outgrows Firestore's 1 MiB document limit.

Atomic group commits: appends queue up while a transaction is in flight; one writer task drains
the queue into the next Firestore transaction, which reads the partition heads, the versions of
the streams it appends to and any stored copies of the batch's ids, decides every request with
the shared `decide_append`, creates the commit documents (create-if-absent) and moves the heads.
Firestore transactions are serializable and all-or-nothing, and every append reads and writes its
partition's head document, so two writers (in this process or another) can never take the same
positions: one commits, the other is retried by the SDK against the new head. Each request keeps
its own outcome; callers are answered only after the commit returned.

Stream versions come from the `streams` map of the newest commit document holding the stream,
remembered between commits while the head is still the one we wrote. Stored ids are found with
`array-contains-any` on `ids` (every id, generated ones included).

Failures: transient errors and contention are retried with backoff for `retry_seconds`, then
every request of the group fails with `BackendUnavailable` (nothing was acknowledged). When a
commit's outcome is unknown (a timeout or `UNAVAILABLE` after it was sent), the next attempt first
looks for the attempt's token in the commit document it would have created, so a commit that did
land is answered, never written twice.

Limits and gaps: one transaction carries at most 10 MiB, so an append is refused
(`InvalidRequest`) when its events would not fit one (9 MB; 3.9 MB against the emulator, whose
gRPC server refuses messages over 4 MiB); an append always lands in one transaction. The Cloud
Firestore emulator serves conflicting transactions by holding locks for seconds, so it shows this
adapter's correctness under contention, not its speed; this adapter keeps one transaction in
flight per process. A partition's head document takes one write per group commit: Firestore
advises about one sustained write per second per document, so a partition's sustained append
rate comes from group commits growing, not from their number. Production needs no composite index (only Firestore's
automatic single-field ones); exempting `body` from indexing saves storage.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType

from google.api_core import exceptions as google_errors
from google.cloud.firestore import AsyncClient, AsyncDocumentReference, FieldFilter, Query
from google.cloud.firestore_v1.async_transaction import AsyncTransaction, async_transactional

from spine.adapters.firestore_client import (
    DEFAULT_DATABASE,
    Retrying,
    close_client,
    commit_bytes,
    firestore_config,
    is_contention,
    is_transient,
    open_client,
)
from spine.adapters.firestore_commits import (
    Commit,
    commits_of,
    load,
    pack,
    part_refs,
    partition_ref,
    stream_field,
)
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

CommitObserver = Callable[[int, int, float], None]
"""Called after each group commit with (requests, events, seconds)."""

_MAX_EVENTS_PER_COMMIT = 20_000
_ID_CHUNK = 30  # values per `array-contains-any`
_SCAN_DOCS = (4, 64)  # commit documents per scan query: first, then up to
_MAX_CACHED_STREAMS = 100_000
# Definitely not committed: the server refused the commit, so retrying cannot write twice.
_REFUSED = (
    google_errors.Aborted,
    google_errors.InvalidArgument,
    google_errors.FailedPrecondition,
    google_errors.AlreadyExists,
    google_errors.NotFound,
    google_errors.PermissionDenied,
    google_errors.Unauthenticated,
)
_STOP = object()


class _Pending:
    __slots__ = ("future", "partition", "request", "size")

    def __init__(self, partition: Partition, request: AppendRequest, size: int, future: asyncio.Future[AppendResult]) -> None:  # fmt: skip
        self.partition = partition
        self.request = request
        self.size = size
        self.future = future


@dataclass
class _Plan:
    """What one transaction attempt decided: the outcomes, and the state it leaves if it commits."""

    token: str
    outcomes: list[AppendResult | SpineError]
    read_heads: dict[str, int]  # as the attempt found them
    heads: dict[str, int]  # as it leaves them
    versions: dict[tuple[str, str], int]
    probe: AsyncDocumentReference | None = None  # a commit document this attempt creates
    events: int = 0


@dataclass
class _Cache:
    """Heads and stream versions as of our last commit; true while a head is still the one we wrote."""

    heads: dict[str, int] = field(default_factory=dict)
    versions: OrderedDict[tuple[str, str], int] = field(default_factory=OrderedDict)

    def update(self, plan: _Plan) -> None:
        for key, head in plan.heads.items():
            if self.heads.get(key) != plan.read_heads[key]:
                self.forget(key)  # someone else wrote since: only what this plan read is known
            self.heads[key] = head
        self.versions.update(plan.versions)
        for pair in plan.versions:
            self.versions.move_to_end(pair)
        while len(self.versions) > _MAX_CACHED_STREAMS:
            self.versions.popitem(last=False)

    def forget(self, key: str) -> None:
        self.heads.pop(key, None)
        for pair in [pair for pair in self.versions if pair[0] == key]:
            del self.versions[pair]


class FirestoreSpine:
    """`async with FirestoreSpine(project=…) as spine:` opens the client and the writer task."""

    def __init__(
        self,
        *,
        project: str,
        database: str = DEFAULT_DATABASE,
        emulator_host: str | None = None,
        notifier: Notifier | None = None,
        on_commit: CommitObserver | None = None,
        retry_seconds: float = 15.0,
        attempt_seconds: float = 10.0,
    ) -> None:
        self.project = project
        self.database = database
        self._emulator_host = emulator_host
        self._notifier = notifier
        self._on_commit = on_commit
        self._retrying = Retrying(KIND, seconds=retry_seconds, attempt_seconds=attempt_seconds)
        self._commit_bytes = commit_bytes(emulator_host)
        self._client: AsyncClient | None = None
        self._inbox: asyncio.Queue[_Pending | object] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._carry: _Pending | None = None
        self._announcing: set[asyncio.Task[None]] = set()
        self._cache = _Cache()

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, object],
        *,
        notifier: Notifier | None = None,
        on_commit: CommitObserver | None = None,
    ) -> FirestoreSpine:
        """From a route's `config`: `{"project", "database"?, "emulator_host"?}`."""
        c = firestore_config(config, KIND)
        return cls(
            project=str(c["project"]),
            database=str(c["database"]),
            emulator_host=c["emulator_host"],
            notifier=notifier,
            on_commit=on_commit,
        )

    # lifecycle

    async def __aenter__(self) -> FirestoreSpine:
        self._client = open_client(self.project, self.database, self._emulator_host, KIND)
        self._writer = asyncio.create_task(self._write_loop(), name=f"firestore-spine:{self.project}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._writer is not None:
            self._inbox.put_nowait(_STOP)
            await self._writer
            self._writer = None
        while not self._inbox.empty():  # arrived while the writer stopped: never sent
            item = self._inbox.get_nowait()
            if isinstance(item, _Pending) and not item.future.done():
                item.future.set_exception(BackendUnavailable(KIND, "the event spine was closed"))
        if self._announcing:
            await asyncio.gather(*self._announcing)
        if self._client is not None:
            await close_client(self._client)
            self._client = None

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            raise BackendUnavailable(KIND, "the event spine is not started")
        return self._client

    # appends

    async def append(self, partition: Partition, request: AppendRequest) -> AppendResult:
        validate(request)
        size = _estimate(request)
        if size > self._commit_bytes:
            raise InvalidRequest(
                f"an append of about {size / 1e6:.1f} MB does not fit one Firestore transaction"
                f" ({self._commit_bytes / 1e6:.1f} MB here)"
            )
        if self._writer is None or self._writer.done():
            raise BackendUnavailable(KIND, "the event spine is not started")
        pending = _Pending(partition, request, size, asyncio.get_running_loop().create_future())
        self._inbox.put_nowait(pending)
        # If the caller is cancelled the append may still commit; a retry with the same ids is safe.
        return await pending.future

    async def _write_loop(self) -> None:
        """Everything queued while one transaction runs goes into the next."""
        while True:
            first = self._carry or await self._inbox.get()
            self._carry = None
            if first is _STOP:
                return
            assert isinstance(first, _Pending)
            batch, stop = self._drain(first)
            started = time.perf_counter()
            try:
                outcomes = await self._commit(batch)
            except Exception as exc:  # a bug of ours: fail the batch, keep serving the next ones
                log.exception("firestore spine writer failed")
                outcomes = [BackendUnavailable(KIND, f"the event spine failed ({type(exc).__name__})")] * len(
                    batch
                )
            self._resolve(batch, outcomes, time.perf_counter() - started)
            if stop:
                return

    def _drain(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch, size, events = [first], first.size, len(first.request.events)
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if item is _STOP:
                return batch, True
            assert isinstance(item, _Pending)
            if (
                size + item.size > self._commit_bytes
                or events + len(item.request.events) > _MAX_EVENTS_PER_COMMIT
            ):
                self._carry = item  # too much for this transaction: it leads the next one
                break
            batch.append(item)
            size += item.size
            events += len(item.request.events)
        return batch, False

    def _resolve(
        self, batch: list[_Pending], outcomes: list[AppendResult | SpineError], elapsed: float
    ) -> None:
        heads: dict[Partition, int] = {}
        events = 0
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, AppendResult):
                events += outcome.last_position - outcome.first_position + 1
                heads[pending.partition] = max(heads.get(pending.partition, 0), outcome.last_position)
            if pending.future.done():  # the caller went away; the outcome stands all the same
                continue
            if isinstance(outcome, AppendResult):
                pending.future.set_result(outcome)
            else:
                pending.future.set_exception(outcome)
        if self._on_commit is not None:
            self._on_commit(len(batch), events, elapsed)
        if self._notifier is not None and heads:
            # Announced here rather than by the callers, so a cancelled caller cannot swallow it.
            task = asyncio.create_task(_announce(self._notifier, heads))
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)

    async def _commit(self, batch: list[_Pending]) -> list[AppendResult | SpineError]:
        """One transaction for the batch, retried; every request gets its own outcome."""
        unknown: list[_Plan] = []  # attempts whose commit may have landed
        decided: list[_Plan | None] = [None]

        async def attempt() -> _Plan:
            decided[0] = None
            transaction = self.client.transaction()
            return await async_transactional(self._decide)(transaction, batch, unknown, decided)

        def on_failure(exc: BaseException) -> None:
            for pending in batch:
                self._cache.forget(pending.partition.key)
            plan = decided[0]
            if plan is not None and plan.probe is not None and not _refused(exc):
                unknown.append(plan)

        try:
            plan = await self._retrying.run(attempt, on_failure)
        except BackendUnavailable as exc:
            if len(batch) > 1 and not unknown and not is_transient(exc):
                # Refused, surely unwritten, for something one request brought (a size we misjudged):
                # alone, the others pass.
                return [outcome for pending in batch for outcome in await self._commit([pending])]
            return [exc] * len(batch)
        self._cache.update(plan)
        return plan.outcomes

    async def _decide(
        self,
        transaction: AsyncTransaction,
        batch: list[_Pending],
        unknown: list[_Plan],
        decided: list[_Plan | None],
    ) -> _Plan:
        """Inside the transaction: read the state the batch needs, decide each request, write."""
        client = self.client
        decided[0] = None
        if unknown:
            landed = await self._landed(transaction, unknown)
            if landed is not None:
                return landed
        keys = list(dict.fromkeys(pending.partition.key for pending in batch))
        heads, versions, stored = await self._state(transaction, batch, keys)
        read_heads = dict(heads)
        token = uuid.uuid4().hex
        recorded_at = datetime.now(UTC)
        written: dict[tuple[str, str], StoredId] = {}
        appended: dict[str, list[Event]] = {}
        outcomes: list[AppendResult | SpineError] = []
        for pending in batch:
            key, request = pending.partition.key, pending.request
            ids = client_ids(request)
            found = {i: written[(key, i)] for i in ids if (key, i) in written}
            found.update({i: stored[(key, i)] for i in ids if (key, i) in stored})
            try:
                events, result = decide_append(
                    request,
                    head=heads[key],
                    stream_version=versions[(key, request.stream)],
                    stored=list(found.values()),
                    recorded_at=recorded_at,
                )
            except SpineError as exc:
                outcomes.append(exc)
                continue
            for event in events:
                written[(key, event.id)] = StoredId(event.id, event.stream, event.version, event.position)
            if events:
                appended.setdefault(key, []).extend(events)
                heads[key] = result.last_position
                versions[(key, request.stream)] = result.stream_version
            outcomes.append(result)
        plan = _Plan(token=token, outcomes=outcomes, read_heads=read_heads, heads=heads, versions=versions)
        for key, events in appended.items():
            commits = commits_of(client, key)
            for doc in pack(events, token):
                ref = commits.document(doc.id)
                transaction.create(ref, doc.fields)
                for part_ref, body in zip(
                    part_refs(client, key, doc.id, 1 + len(doc.parts)), doc.parts, strict=True
                ):
                    transaction.create(part_ref, {"body": body})
                plan.probe = plan.probe or ref
            transaction.set(partition_ref(client, key), {"head": heads[key], "partition": key})
            plan.events += len(events)
        decided[0] = plan
        return plan

    async def _landed(self, transaction: AsyncTransaction, unknown: list[_Plan]) -> _Plan | None:
        """The earlier attempt of this batch whose commit did land after all, if one did."""
        by_token = {plan.token: plan for plan in unknown}
        refs = [plan.probe for plan in unknown if plan.probe is not None]
        async for snapshot in self.client.get_all(refs, field_paths=["token"], transaction=transaction):
            if snapshot.exists and snapshot.get("token") in by_token:
                plan = by_token[snapshot.get("token")]
                log.info(
                    "firestore spine: a commit of unknown outcome had landed", extra={"events": plan.events}
                )
                return plan
        return None

    async def _heads(self, transaction: AsyncTransaction, keys: list[str]) -> dict[str, int]:
        refs = {partition_ref(self.client, key).path: key for key in keys}
        heads = dict.fromkeys(keys, 0)
        snapshots = self.client.get_all(
            [partition_ref(self.client, key) for key in keys], field_paths=["head"], transaction=transaction
        )
        async for snapshot in snapshots:
            if snapshot.exists:
                heads[refs[snapshot.reference.path]] = int(snapshot.get("head"))
        return heads

    async def _state(
        self, transaction: AsyncTransaction, batch: list[_Pending], keys: list[str]
    ) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[tuple[str, str], StoredId]]:
        """Heads, stream versions and stored ids, read side by side (one round trip, mostly).

        A stream version we remember is good while its partition's head is the one we wrote;
        the others are looked up at once, beside the heads, and again should the head have moved.
        """
        pairs = list(dict.fromkeys((pending.partition.key, pending.request.stream) for pending in batch))
        cached = {pair: self._cache.versions[pair] for pair in pairs if pair in self._cache.versions}
        missing = [pair for pair in pairs if pair not in cached]
        wanted: dict[str, set[str]] = {}
        for pending in batch:
            wanted.setdefault(pending.partition.key, set()).update(client_ids(pending.request))
        id_lookups = [
            self._stored(transaction, key, chunk)
            for key, ids in wanted.items()
            for chunk in _chunks(sorted(ids), _ID_CHUNK)
        ]
        heads, found, stored_parts = await asyncio.gather(
            self._heads(transaction, keys),
            asyncio.gather(*(self._stream_version(key, stream, transaction) for key, stream in missing)),
            asyncio.gather(*id_lookups),
        )
        versions = dict(zip(missing, found, strict=True))
        stale = [pair for pair in cached if self._cache.heads.get(pair[0]) != heads[pair[0]]]
        versions.update({pair: version for pair, version in cached.items() if pair not in stale})
        again = await asyncio.gather(
            *(self._stream_version(key, stream, transaction) for key, stream in stale)
        )
        versions.update(zip(stale, again, strict=True))
        stored: dict[tuple[str, str], StoredId] = {}
        for part in stored_parts:
            stored.update(part)
        return heads, versions, stored

    async def _stream_version(
        self, key: str, stream: str, transaction: AsyncTransaction | None = None
    ) -> int:
        path = stream_field(stream, "v")
        query = (
            commits_of(self.client, key)
            .where(filter=FieldFilter(path, ">", 0))
            .order_by(path, direction=Query.DESCENDING)
            .limit(1)
            .select([path])
        )
        async for snapshot in query.stream(transaction=transaction):
            return int(snapshot.get(path))
        return 0

    async def _stored(
        self, transaction: AsyncTransaction, key: str, ids: list[str]
    ) -> dict[tuple[str, str], StoredId]:
        query = commits_of(self.client, key).where(filter=FieldFilter("ids", "array_contains_any", ids))
        snapshots = [snapshot async for snapshot in query.stream(transaction=transaction)]
        wanted = set(ids)
        return {
            (key, head.id): StoredId(head.id, head.stream, head.version, head.position)
            for commit in await load(self.client, key, snapshots, transaction)
            for head in commit.heads
            if head.id in wanted
        }

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
        return await self._retrying.run(
            lambda: self._read_encoded(partition.key, after, limit, stream, frozenset(types))
        )

    async def _read_encoded(
        self, key: str, after: int, limit: int, stream: str | None, wanted: frozenset[str]
    ) -> EncodedPage:
        # The head first: commits are immutable, so events up to it are the same whenever read.
        head = await self._head(key)
        check_cursor(after, head)
        rows: list[EncodedEvent] = []
        if after == head or limit <= 0:
            return EncodedPage(events=rows, next=head, head=head)
        order = "last" if stream is None else stream_field(stream, "p")
        async for commit in self._scan(key, order, after, head):
            if commit.first > head:  # committed after we read the head: the next page's
                break
            for event, raw in commit.events():
                if event.position <= after or (stream is not None and event.stream != stream):
                    continue
                if wanted and event.type not in wanted:
                    continue
                rows.append((event.position, event.type, bytes(raw)))
                if len(rows) == limit:
                    return EncodedPage(events=rows, next=event.position, head=head)
        return EncodedPage(events=rows, next=head, head=head)

    async def _scan(self, key: str, order: str, after: int, until: int) -> AsyncIterator[Commit]:
        """Commit documents whose `order` field is > `after`, in log order, up to one where it reaches `until`."""
        docs, most = _SCAN_DOCS
        commits = commits_of(self.client, key)
        while True:
            query = (
                commits.where(filter=FieldFilter(order, ">", after))
                .order_by(order)
                .limit(docs)
                .select(["first", "last", "body", "parts", order])
            )
            snapshots = [snapshot async for snapshot in query.stream()]
            for commit, snapshot in zip(await load(self.client, key, snapshots), snapshots, strict=True):
                yield commit
                after = int(snapshot.get(order))
                if after >= until:
                    return
            if len(snapshots) < docs:
                return
            docs = min(docs * 4, most)

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        return await self._retrying.run(
            lambda: self._read_stream(partition.key, stream, after_version, limit)
        )

    async def _read_stream(
        self, key: str, stream: str, after_version: int, limit: int
    ) -> tuple[list[Event], int]:
        version = await self._stream_version(key, stream)
        bodies: list[bytes] = []
        if version > after_version and limit > 0:
            async for commit in self._scan(key, stream_field(stream, "v"), after_version, version):
                bodies.extend(
                    bytes(raw)
                    for event, raw in commit.events()
                    if event.stream == stream and after_version < event.version <= version
                )
                if len(bodies) >= limit:
                    break
        return decode_events(bodies[:limit]), version

    async def head(self, partition: Partition) -> int:
        return await self._retrying.run(lambda: self._head(partition.key))

    async def _head(self, key: str) -> int:
        snapshot = await partition_ref(self.client, key).get(field_paths=["head"])
        return int(snapshot.get("head")) if snapshot.exists else 0


def _refused(exc: BaseException) -> bool:
    """The server said no to the commit: nothing of it landed."""
    return isinstance(exc, _REFUSED) or is_contention(exc)


def _estimate(request: AppendRequest) -> int:
    """An upper bound of the bytes the request's events take once stored (ids, meta, positions…)."""
    per_event = 300 + 2 * len(request.stream) + len(event_encoder.encode(request.meta))
    return len(event_encoder.encode(request.events)) + len(request.events) * per_event


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _announce(notifier: Notifier, heads: dict[Partition, int]) -> None:
    for partition, position in heads.items():
        await notifier.publish(partition, position)
