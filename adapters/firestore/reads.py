"""The Firestore spine's read side (layout: `adapters.firestore.commits`): the head, a stream's version,
pages of the log and a stream's events.

A reader reads the head first: commits only ever lose events (retention,
`adapters.firestore.removal`), so the events up to it are the same whenever read, but for those
removed meanwhile. Pages and streams are read by scanning commit documents in log order on a
single-field index (`last`, or the stream's entry in `streams`), a few documents first, then more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.cloud.firestore import AsyncClient, FieldFilter, Query
from google.cloud.firestore_v1.async_transaction import AsyncTransaction

from adapters.firestore.commits import Commit, commits_of, load, partition_ref, stream_field
from domain.cursor import check_cursor
from domain.events import EncodedEvent, EncodedPage, Event, decode_events

_SCAN_DOCS = (4, 64)  # commit documents per scan query: first, then up to


async def read_encoded(
    client: AsyncClient, key: str, after: int, limit: int, stream: str | None, wanted: frozenset[str]
) -> EncodedPage:
    # The head first: commits past it are not ours to read yet.
    head = await head_of(client, key)
    check_cursor(after, head)
    rows: list[EncodedEvent] = []
    if after == head or limit <= 0:
        return EncodedPage(events=rows, next=head, head=head)
    order = "last" if stream is None else stream_field(stream, "p")
    async for commit in _scan(client, key, order, after, head):
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


async def _scan(client: AsyncClient, key: str, order: str, after: int, until: int) -> AsyncIterator[Commit]:
    """Commit documents whose `order` field is > `after`, in log order, up to one where it reaches `until`."""
    docs, most = _SCAN_DOCS
    commits = commits_of(client, key)
    while True:
        query = (
            commits.where(filter=FieldFilter(order, ">", after))
            .order_by(order)
            .limit(docs)
            .select(["first", "last", "body", "parts", order])
        )
        snapshots = [snapshot async for snapshot in query.stream()]
        for commit, snapshot in zip(await load(client, key, snapshots), snapshots, strict=True):
            yield commit
            after = int(snapshot.get(order))
            if after >= until:
                return
        if len(snapshots) < docs:
            return
        docs = min(docs * 4, most)


async def read_stream(
    client: AsyncClient, key: str, stream: str, after_version: int, limit: int
) -> tuple[list[Event], int]:
    version = await stream_version(client, key, stream)
    bodies: list[bytes] = []
    if version > after_version and limit > 0:
        async for commit in _scan(client, key, stream_field(stream, "v"), after_version, version):
            bodies.extend(
                bytes(raw)
                for event, raw in commit.events()
                if event.stream == stream and after_version < event.version <= version
            )
            if len(bodies) >= limit:
                break
    return decode_events(bodies[:limit]), version


async def stream_version(
    client: AsyncClient, key: str, stream: str, transaction: AsyncTransaction | None = None
) -> int:
    path = stream_field(stream, "v")
    query = (
        commits_of(client, key)
        .where(filter=FieldFilter(path, ">", 0))
        .order_by(path, direction=Query.DESCENDING)
        .limit(1)
        .select([path])
    )
    async for snapshot in query.stream(transaction=transaction):
        return int(snapshot.get(path))
    return 0


async def head_of(client: AsyncClient, key: str) -> int:
    snapshot = await partition_ref(client, key).get(field_paths=["head"])
    return int(snapshot.get("head")) if snapshot.exists else 0
