"""Firestore spine: partitioned logs in Cloud Firestore (native mode), via `AsyncClient`.

Layout (see `adapters.firestore.commits`): `partitions/{p}` holds the head; each group commit adds commit
documents keyed by their zero-padded first position, events packed as JSON, split across part
documents where one event outgrows Firestore's 1 MiB document limit.

Atomic group commits: appends queue up while a transaction is in flight; one writer task drains
the queue into the next Firestore transaction, which reads the partition heads, the versions of
the streams it appends to and any stored copies of the batch's ids, decides every request with
the shared `decide_append`, creates the commit documents (create-if-absent) and moves the heads
(`adapters.firestore.transaction`). Firestore transactions are serializable and all-or-nothing, and every
append reads and writes its partition's head document, so two writers (in this process or
another) can never take the same positions: one commits, the other is retried by the SDK against
the new head. Each request keeps its own outcome; callers are answered only after the commit
returned.

How stream versions and stored ids are found: `adapters.firestore.transaction`. Retention rewrites
commit documents without the removed events, each step one transaction of its own:
`adapters.firestore.removal`. The read side is in
`adapters.firestore.reads`.

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
from collections.abc import Callable, Collection, Mapping
from types import TracebackType

from google.api_core import exceptions as google_errors
from google.cloud.firestore import AsyncClient
from google.cloud.firestore_v1.async_transaction import async_transactional

from adapters.decoded_reads import DecodedReads
from adapters.firestore import reads as firestore_reads
from adapters.firestore import removal
from adapters.firestore.client import (
    DEFAULT_DATABASE,
    Retrying,
    close_client,
    commit_bytes,
    firestore_config,
    firestore_timeouts,
    is_contention,
    is_transient,
    open_client,
)
from adapters.firestore.transaction import Cache, CommitDecision, Pending, decide
from adapters.group_commit import Announcements, answer, settle
from domain.append import AppendRequest, validate
from domain.errors import BackendUnavailable, InvalidRequest, SpineError
from domain.events import AppendResult, EncodedPage, Event, event_encoder
from domain.partition import Partition
from domain.ports import Notifier

log = logging.getLogger(f"spine.{__name__}")
KIND = "event_spine"

CommitObserver = Callable[[int, int, float], None]
"""Called after each group commit with (requests, events, seconds)."""

_MAX_EVENTS_PER_COMMIT = 20_000
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


class FirestoreSpine(DecodedReads):
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
        connect_seconds: float | None = None,
    ) -> None:
        self.project = project
        self.database = database
        self._emulator_host = emulator_host
        self._connect_seconds = connect_seconds
        self._notifier = notifier
        self._on_commit = on_commit
        self._retrying = Retrying(KIND, seconds=retry_seconds, attempt_seconds=attempt_seconds)
        self._commit_bytes = commit_bytes(emulator_host)
        self._client: AsyncClient | None = None
        self._inbox: asyncio.Queue[Pending | object] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._carry: Pending | None = None
        self._announcements = Announcements()
        self._cache = Cache()

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, object],
        *,
        notifier: Notifier | None = None,
        on_commit: CommitObserver | None = None,
    ) -> FirestoreSpine:
        """From a route's `config`: `{"project", "database"?, "emulator_host"?,
        "connect_timeout_seconds"?, "request_timeout_seconds"?}`."""
        c = firestore_config(config, KIND)
        timeouts = firestore_timeouts(config, KIND)
        return cls(
            project=str(c["project"]),
            database=str(c["database"]),
            emulator_host=c["emulator_host"],
            notifier=notifier,
            on_commit=on_commit,
            retry_seconds=timeouts.request,
            attempt_seconds=timeouts.request,
            connect_seconds=timeouts.connect,
        )

    # lifecycle

    async def __aenter__(self) -> FirestoreSpine:
        self._client = open_client(
            self.project, self.database, self._emulator_host, KIND, connect_seconds=self._connect_seconds
        )
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
            if isinstance(item, Pending):
                answer(item.future, BackendUnavailable(KIND, "the event spine was closed"))
        await self._announcements.drain()
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
        pending = Pending(partition, request, size, asyncio.get_running_loop().create_future())
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
            assert isinstance(first, Pending)
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

    def _drain(self, first: Pending) -> tuple[list[Pending], bool]:
        batch, size, events = [first], first.size, len(first.request.events)
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if item is _STOP:
                return batch, True
            assert isinstance(item, Pending)
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
        self, batch: list[Pending], outcomes: list[AppendResult | SpineError], elapsed: float
    ) -> None:
        heads, events = settle(batch, outcomes)
        if self._on_commit is not None:
            self._on_commit(len(batch), events, elapsed)
        self._announcements.publish(self._notifier, heads)

    async def _commit(self, batch: list[Pending]) -> list[AppendResult | SpineError]:
        """One transaction for the batch, retried; every request gets its own outcome."""
        unknown: list[CommitDecision] = []  # attempts whose commit may have landed
        decided: list[CommitDecision | None] = [None]

        async def attempt() -> CommitDecision:
            decided[0] = None
            transaction = self.client.transaction()
            return await async_transactional(decide)(
                transaction, self.client, self._cache, batch, unknown, decided
            )

        def on_failure(exc: BaseException) -> None:
            for pending in batch:
                self._cache.forget(pending.partition.key)
            decision = decided[0]
            if decision is not None and decision.probe is not None and not _refused(exc):
                unknown.append(decision)

        try:
            decision = await self._retrying.run(attempt, on_failure)
        except BackendUnavailable as exc:
            if len(batch) > 1 and not unknown and not is_transient(exc):
                # Refused, surely unwritten, for something one request brought (a size we misjudged):
                # alone, the others pass.
                return [outcome for pending in batch for outcome in await self._commit([pending])]
            return [exc] * len(batch)
        self._cache.update(decision)
        return decision.outcomes

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
        return await self._retrying.run(
            lambda: firestore_reads.read_encoded(
                self.client, partition.key, after, limit, stream, frozenset(types)
            )
        )

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        return await self._retrying.run(
            lambda: firestore_reads.read_stream(self.client, partition.key, stream, after_version, limit)
        )

    async def head(self, partition: Partition) -> int:
        return await self._retrying.run(lambda: firestore_reads.head_of(self.client, partition.key))

    # retention

    async def remove(self, partition: Partition, positions: Collection[int]) -> int:
        return await removal.remove(self.client, self._retrying, partition.key, positions, self._commit_bytes)


def _refused(exc: BaseException) -> bool:
    """The server said no to the commit: nothing of it landed."""
    return isinstance(exc, _REFUSED) or is_contention(exc)


def _estimate(request: AppendRequest) -> int:
    """An upper bound of the bytes the request's events take once stored (ids, meta, positions…)."""
    per_event = 300 + 2 * len(request.stream) + len(event_encoder.encode(request.meta))
    return len(event_encoder.encode(request.events)) + len(request.events) * per_event
