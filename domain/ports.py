"""Ports: what the core needs from the outside world, as small async Protocols.

Each adapter in `adapters` implements one of these and passes the contract suite in
`tests/contract/` against a real peer. `Projection` is the port the other way round: each read
view in `projections` implements it, and the runtime drives them all through it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from domain.append import AppendRequest
from domain.blobs import BlobHead, ByteRange, SignedRequest, StoredBlob
from domain.events import AppendResult, EncodedPage, Event, Page
from domain.partition import Partition
from domain.rate_limits import Limit, Verdict
from domain.views import Generations, ViewDoc, ViewOp


class EventSpine(Protocol):
    """A set of partitioned, totally ordered, append-only logs.

    Error contract: `append` raises `VersionConflict` when `expected_version` does not hold,
    `IdempotencyConflict` when only part of a batch's ids are stored, `InvalidRequest` for an
    empty, oversized or self-duplicating batch; every method raises `BackendUnavailable` when the
    backend cannot be reached or did not commit (nothing was acknowledged, so retry is safe).
    """

    async def append(self, partition: Partition, request: AppendRequest) -> AppendResult:
        """Append atomically; acknowledged only once durable. Retried ids return the original result."""
        ...

    async def read(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> Page:
        """Events with position > `after`, in position order, optionally filtered."""
        ...

    async def read_encoded(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> EncodedPage:
        """`read`, with each event as (position, type, JSON) exactly as `event_encoder` writes it."""
        ...

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        """Events of one stream with version > `after_version`, and the stream's current version."""
        ...

    async def head(self, partition: Partition) -> int:
        """The partition's last position (0 when empty)."""
        ...

    async def remove(self, partition: Partition, positions: Collection[int]) -> int:
        """Remove the events at `positions` for good (retention, `domain.retention`); answer how
        many were removed.

        Every other event keeps its position, and the partition's head and every stream's version
        stay what they were: a position is never reused. So the adapter never removes a stream's
        last event (the version lives on in it): such a position is skipped, like one that holds
        nothing (already removed, or past the head). Readers then see the survivors only: a page
        or a stream read skips what was removed, exactly like events a filter hid. Whether a
        removed event's id is still known to idempotent retries is the adapter's (DynamoDB and
        memory keep it, the others forget it): retention removes what is days old, retries come
        within seconds. Idempotent; raises `BackendUnavailable` like every method, having removed
        some, all or none.
        """
        ...


class LogReader(Protocol):
    """A partition's log read forward: what a copy or a range digest reads (`app.usecases.move`).

    Every `EventSpine` is one; so is a tenant archive's log file (`app.archive_files.ArchivedLog`).
    """

    async def read(self, partition: Partition, *, after: int = 0, limit: int = 100) -> Page:
        """Events with position > `after`, in position order."""
        ...

    async def head(self, partition: Partition) -> int:
        """The partition's last position (0 when empty)."""
        ...


# named here: inside ViewStore, `list` is the method of that name
_Known = list[tuple[str, str]]


class ViewStore(Protocol):
    """Documents of read views, kept in spaces: one per (partition, projection, generation).

    A space holds its documents and its checkpoint; `apply` writes ops and checkpoint together.
    Beside the spaces the store keeps, per (partition, projection), which generation serves reads
    and which one a rebuild is building, and short leases so that of several processes only one
    projects a space at a time (the position rule keeps the view right even if two do).

    Error contract: every method raises `BackendUnavailable` when the store cannot be reached;
    `apply` writes all of its ops and the checkpoint, or (raising) none of them.

    Atomicity has a size. `max_apply_size` says how much one `apply` may carry, in `op_size`
    units summed over its ops, and still be one transaction: ops and checkpoint become visible to
    readers together (to single-document reads at least: a DynamoDB `list` may straddle a
    commit, see its docstring). None: any apply is one, or, as the Cosmos store's docstring
    explains, no size would make one. The projection runtime cuts its batches, at event
    boundaries, to fit.
    The remaining gap: an apply over `max_apply_size` (in the runtime, only an event whose own
    ops do not fit) is written in several transactions with the checkpoint in the last. Should
    one fail, `apply` raises with part of its ops written and the checkpoint unmoved, so a reader
    may see part of that batch until re-delivery writes the rest; the view converges, since no
    document moves backwards.
    """

    @property
    def max_apply_size(self) -> int | None:
        """How much one atomic `apply` holds, in `op_size` units, room for the checkpoint kept."""
        ...

    def op_size(self, op: ViewOp) -> int:
        """What `op` takes of `max_apply_size` (its document's parts and bytes counted); >= 1."""
        ...

    async def get(self, space: str, collection: str, key: str) -> ViewDoc | None:
        """The live document, or None when absent or deleted."""
        ...

    async def list(
        self, space: str, collection: str, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> list[ViewDoc]:
        """Live documents whose key starts with `prefix`, in key order, keys greater than `after`."""
        ...

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        """Apply `ops` (skipping each whose position is not newer than its document's) and set the
        space's checkpoint to `checkpoint` (never moving it back), atomically."""
        ...

    async def checkpoint(self, space: str) -> int:
        """The position up to which the space's projection has applied its partition (0 when never)."""
        ...

    async def drop(self, space: str) -> None:
        """Remove a space's documents, checkpoint and lease (a retired generation)."""
        ...

    async def lease(self, space: str, holder: str, seconds: float) -> bool:
        """Take or renew the space's lease for `seconds`; False while another holder's lease runs."""
        ...

    async def generations(self, partition_key: str, projection: str) -> Generations:
        """The serving and building generations (serving 0, building None when never set)."""
        ...

    async def set_generations(
        self, partition_key: str, projection: str, generations: Generations
    ) -> None: ...

    async def known(self) -> _Known:
        """Every (partition key, projection) this store holds a view of."""
        ...


class Projection(Protocol):
    """A read view's rules: which events it reads, and the ops each one makes. Pure."""

    @property
    def name(self) -> str: ...

    @property
    def handles(self) -> frozenset[str] | None:
        """The event types it reads; None: every event of the partition."""
        ...

    @property
    def collections(self) -> frozenset[str]:
        """Every collection its ops write: what a snapshot of its view copies. The runtime refuses
        an op naming another (`projections.runtime.UndeclaredCollection`)."""
        ...

    @property
    def version(self) -> int:
        """Bumped whenever what `apply` (or `fold`) makes of an event changes: a snapshot taken
        under another version is ignored, and the view is rebuilt from position 0."""
        ...

    def apply(self, event: Event) -> list[ViewOp]: ...


@runtime_checkable
class FoldingProjection(Projection, Protocol):
    """A projection whose documents accumulate events (a rollup's count, sum, sketch): an event's
    ops depend on what the documents it touches already hold. Still pure: the runtime reads them.

    For such a projection the runtime calls `fold`, never `apply`: it asks `reads(event)` which
    documents the event needs, and passes each as this projection's earlier events left it (None
    when absent). `fold` must leave unchanged (make no op for) a document whose `position` is at
    or past the event's: that document already counts it. With each document's position being the
    last event folded into it, an event delivered again (a crash before the checkpoint, a
    partly written batch, two processes) is counted exactly once. `apply(event)` answers the
    event's ops on a view that holds nothing yet.
    """

    def reads(self, event: Event) -> list[tuple[str, str]]:
        """The (collection, key) of every document the event's fold needs."""
        ...

    def fold(self, event: Event, docs: Mapping[tuple[str, str], ViewDoc | None]) -> list[ViewOp]:
        """The event's ops, given the documents `reads` named (None: absent)."""
        ...


class Subscription(Protocol):
    """A live interest in one partition's head, opened *before* reading so no wake-up is lost."""

    async def wait(self, after: int, timeout: float) -> bool:
        """Return True once a position > `after` was announced, False when `timeout` passes first."""
        ...


class Notifier(Protocol):
    """Says "partition P advanced to position N". Best effort: the log stays the truth.

    A lost notification costs a reader latency (it polls after `timeout`), never an event.
    `publish` never raises for a transport failure; it logs and drops.
    """

    async def publish(self, partition: Partition, position: int) -> None: ...

    def subscribe(self, partition: Partition) -> AbstractAsyncContextManager[Subscription]: ...


class SecretResolver(Protocol):
    """Turns a `secret://…` reference of a route's config into the secret, when a backend is opened.

    Error contract: `resolve` raises `InvalidSecretRef` for a malformed reference or one of a kind
    this deployment does not allow (`secret://env/…` outside lab and dev), and `SecretUnavailable`
    when a well-formed reference cannot be read (missing, unreadable, store unreachable). The
    messages and details of both name the reference, never the secret value.
    """

    async def resolve(self, ref: str) -> str:
        """The secret `ref` points to; may be cached for a short while."""
        ...


class RateLimiter(Protocol):
    """Shared request budgets (GCRA), one per key, kept where every instance of the service sees them.

    Error contract: `admit` raises `BackendUnavailable("rate_limit")` when the backend cannot be
    reached or did not answer (the caller then applies the tenant's `on_unavailable` rule); it
    never raises for a request over the limit, which is a `Verdict` with `allowed` False.
    """

    async def admit(self, key: str, limit: Limit) -> Verdict:
        """Count one request against `key`'s bucket under `limit`, atomically, in one round trip."""
        ...

    async def probe(self) -> None:
        """One round trip that counts nothing (diagnostics)."""
        ...


class ObjectStore(Protocol):
    """Bytes of the `object_store` kind, by blob name (see `domain.blobs`).

    Error contract: every method raises `BackendUnavailable("object_store")` when the backend
    cannot be reached or refuses the credentials, never the SDK's own exception; `put` raises
    `ObjectTooLarge` past `max_bytes` and re-raises whatever `chunks` raises (a client that went
    away), after aborting in both cases so that nothing is left under `name`.
    """

    async def put(
        self, name: str, chunks: AsyncIterable[bytes], *, content_type: str, max_bytes: int
    ) -> StoredBlob:
        """Stream `chunks` to `name`, holding at most one part in memory (multipart above a part's
        size). Nothing is visible under `name` until the last chunk is durable."""
        ...

    async def read(self, name: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        """The blob's bytes (or the range's), as chunks. Raises `BlobMissing` before returning
        when there is no such blob, so a caller can still answer 404 instead of a broken stream."""
        ...

    async def head(self, name: str) -> BlobHead | None: ...

    async def delete(self, name: str) -> None:
        """Idempotent: deleting a missing blob is not an error."""
        ...

    async def signed_upload(
        self, name: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> SignedRequest | None:
        """A browser's direct upload to `name`; None when the backend cannot sign one (the lab
        filesystem), and the service hands out an upload URL of its own instead."""
        ...

    async def signed_download(self, name: str, *, expires_in: int) -> SignedRequest | None: ...

    async def probe(self) -> None:
        """One round trip that changes nothing (diagnostics)."""
        ...
