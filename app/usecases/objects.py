"""Object writes: bytes to a fresh blob first, then the event, then the replaced blob goes.

A store is one unit of work on the key's stream (`app/usecases/unit_of_work.py`) run after the
bytes are durable under a blob name nobody else uses: it reads the stream's last event, decides
`object.stored` naming the blob it replaces (and checks the quota and `If-None-Match: *` on that
state), and appends expecting the version read. Then:
- appended: the replaced blob is deleted (best effort, logged: a blob left behind is garbage
  nobody reads, never a wrong answer);
- refused (a conflict, the quota, a backend down) or cancelled: the new blob is deleted (best
  effort), so an upload that did not become an event leaves no bytes either.
A delete appends `object.deleted` first and deletes the blob after, for the same reason: the
index never names bytes that are gone, except for the moment between the two.

Completing a browser's upload (`complete_upload`) reads the blob back once to count and hash it
and appends with an event id made from the blob's name: a completion sent twice appends once and
answers the same.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterable
from dataclasses import dataclass

import anyio
import msgspec

from app.http.preconditions import Precondition
from app.usecases.unit_of_work import decide_and_append
from domain.blobs import StoredBlob
from domain.context import RequestContext
from domain.errors import (
    BlobMissing,
    ObjectConflict,
    ObjectQuotaExceeded,
    ObjectTooLarge,
    PreconditionFailed,
    SpineError,
    UploadNotFound,
)
from domain.events import Event, NewEvent
from domain.object_grants import ObjectGrant
from domain.objects import (
    ObjectStored,
    Via,
    blob_name,
    current,
    decide_delete,
    decide_store,
    stream_of,
    upload_event_id,
)
from domain.partition import Partition
from domain.ports import EventSpine, ObjectStore

log = logging.getLogger(f"spine.{__name__}")

DISCARD_SECONDS = 30.0  # a best-effort delete that outlives its request: bounded all the same
_PAGE = 100


@dataclass(frozen=True, slots=True)
class Quota:
    """The bytes a project's objects may hold (`max_total_bytes`) and what its index counted
    when the request began. Exact for one writer at a time; a soft limit under concurrency:
    uploads in flight at once each see the usage before the others land (so together they may
    pass the limit by what they add), and the index may lag the log by a moment."""

    limit: int
    used: int

    def check(self, added: int) -> None:
        if added > 0 and self.used + added > self.limit:
            raise ObjectQuotaExceeded(self.limit, self.used)


@dataclass(frozen=True, slots=True)
class Stored:
    """An object as a store left it: its version, where in the log, and what it holds."""

    record: ObjectStored
    version: int
    position: int
    created: bool  # no live object was under the key before


async def store(
    spine: EventSpine,
    blobs: ObjectStore,
    ctx: RequestContext,
    key: str,
    chunks: AsyncIterable[bytes],
    *,
    content_type: str,
    max_bytes: int,
    quota: Quota | None,
    wanted: Precondition | None,
    create_only: bool,
    via: Via = "direct",
    event_id: str | None = None,
) -> Stored:
    """Stream `chunks` to a fresh blob and make it object `key`. `ObjectTooLarge` past
    `max_bytes`; `ObjectQuotaExceeded`, `ObjectConflict` (`wanted` is not current) or
    `PreconditionFailed` (`create_only` and the key holds an object) after the bytes went,
    which are then removed. With `event_id` (an upload completed through Spine's own URL), a
    second store of the same id answers the first one and removes its own bytes."""
    blob = blob_name(ctx.partition)
    put = await blobs.put(blob, chunks, content_type=content_type, max_bytes=max_bytes)
    record = ObjectStored(
        key=key,
        blob=blob,
        size=put.size,
        content_type=content_type,
        sha256=put.sha256,
        user_id=ctx.user_id,
        via=via,
    )
    return await _recorded(spine, blobs, ctx, record, quota, wanted, create_only, event_id)


async def complete_upload(
    spine: EventSpine,
    blobs: ObjectStore,
    ctx: RequestContext,
    grant: ObjectGrant,
    *,
    max_bytes: int,
    quota: Quota | None,
) -> Stored:
    """Make the blob a browser uploaded under `grant` object `grant.key`, once.

    `UploadNotFound` when the blob is not there (never uploaded); `ObjectTooLarge` when it holds
    more than the grant or the tenant allows (the blob is deleted). Completed before: the same
    answer, nothing appended.
    """
    event_id = upload_event_id(grant.blob)
    done = await _completed(spine, ctx.partition, grant.key, event_id)
    if done is not None:
        return done
    limit = min(grant.max_bytes, max_bytes)
    head = await blobs.head(grant.blob)
    if head is None:
        raise UploadNotFound(f"nothing was uploaded under this upload id to object {grant.key!r}")
    if head.size > limit:
        await discard(blobs, grant.blob)
        raise ObjectTooLarge(limit)
    try:
        put = await _hashed(blobs, grant.blob, limit)
    except BlobMissing:
        raise UploadNotFound(f"the upload to object {grant.key!r} is gone") from None
    except ObjectTooLarge:
        await discard(blobs, grant.blob)
        raise
    content_type = grant.content_type or head.content_type or "application/octet-stream"
    record = ObjectStored(
        key=grant.key,
        blob=grant.blob,
        size=put.size,
        content_type=content_type,
        sha256=put.sha256,
        user_id=ctx.user_id,
        via="signed",
    )
    return await _recorded(spine, blobs, ctx, record, quota, None, False, event_id, owned=False)


async def delete(
    spine: EventSpine, blobs: ObjectStore, ctx: RequestContext, key: str, wanted: Precondition | None
) -> tuple[int, int]:
    """`object.deleted`, then the blob; `ObjectNotFound` when no object is under `key`. The
    tombstone's version and position."""

    def decide(last: Event | None) -> NewEvent:
        return decide_delete(key, last, ctx.user_id)

    decided = await decide_and_append(
        spine, ctx, stream_of(key), decide, precondition=wanted, conflict=ObjectConflict
    )
    if not decided.replayed:
        await discard(blobs, str(decided.event.data["blob"]))
    return decided.result.stream_version, decided.result.last_position


async def discard(blobs: ObjectStore, blob: str) -> None:
    """Delete `blob`, whatever happens to the request meanwhile; a failure is logged, not raised."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(DISCARD_SECONDS) as scope:
        try:
            await blobs.delete(blob)
        except SpineError as exc:
            log.warning(
                "blob not deleted: it stays behind", extra={"blob": blob, "error_code": exc.error_code}
            )
    if scope.cancelled_caught:
        log.warning("blob not deleted in time: it stays behind", extra={"blob": blob})


async def _recorded(
    spine: EventSpine,
    blobs: ObjectStore,
    ctx: RequestContext,
    record: ObjectStored,
    quota: Quota | None,
    wanted: Precondition | None,
    create_only: bool,
    event_id: str | None,
    *,
    owned: bool = True,
) -> Stored:
    """Append `object.stored` for bytes already under `record.blob`; see the module's docstring.
    `owned`: the blob was written by this request (not a browser's upload, which its grant names)."""

    def decide(last: Event | None) -> NewEvent:
        held = current(last)
        if wanted is not None and wanted.versions is None and held is None:
            raise PreconditionFailed("If-Match: * and the key holds no object")
        if quota is not None:
            quota.check(record.size - (0 if held is None else held.size))
        return decide_store(record, last, create_only=create_only, event_id=event_id)

    try:
        decided = await decide_and_append(
            spine, ctx, stream_of(record.key), decide, precondition=wanted, conflict=ObjectConflict
        )
    except BaseException:
        if owned:
            await discard(blobs, record.blob)
        raise
    if decided.replayed:  # stored by an earlier request with this event id: that one is the answer
        if owned:
            await discard(blobs, record.blob)
        done = await _completed(spine, ctx.partition, record.key, decided.event.id or "")
        if done is None:  # the spine answered the id as stored: it is in the stream
            raise AssertionError("a replayed event is not in its stream")
        return done
    stored = msgspec.convert(decided.event.data, ObjectStored)
    if stored.replaced_blob is not None and stored.replaced_blob != stored.blob:
        await discard(blobs, stored.replaced_blob)
    return Stored(
        record=stored,
        version=decided.result.stream_version,
        position=decided.result.last_position,
        created=stored.replaced_blob is None,
    )


async def _completed(spine: EventSpine, partition: Partition, key: str, event_id: str) -> Stored | None:
    """The store the event `event_id` of the key's stream made, if the stream holds it."""
    after = 0
    while True:
        events, _ = await spine.read_stream(partition, stream_of(key), after_version=after, limit=_PAGE)
        for event in events:
            if event.id == event_id:
                record = msgspec.convert(event.data, ObjectStored)
                return Stored(
                    record=record,
                    version=event.version,
                    position=event.position,
                    created=record.replaced_blob is None,
                )
        if len(events) < _PAGE:
            return None
        after = events[-1].version


async def _hashed(blobs: ObjectStore, blob: str, max_bytes: int) -> StoredBlob:
    """The size and SHA-256 of what `blob` holds, read once; `ObjectTooLarge` past `max_bytes`."""
    digest, size = hashlib.sha256(), 0
    chunks = await blobs.read(blob)
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise ObjectTooLarge(max_bytes)
        digest.update(chunk)
    return StoredBlob(size=size, sha256=digest.hexdigest())
