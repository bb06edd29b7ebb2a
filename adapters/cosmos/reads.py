"""The Cosmos DB spine's read side (layout: `adapters.cosmos.commits`): the head, a stream's version, pages
of the log, a stream's events, and where client ids are stored.

Heads and stream versions are derived from commit items (the newest one, or the newest holding
the stream). A reader only follows a commit item's parts, so a batch is visible whole or not at
all; a part counts for an id lookup only once its commit item carries its nonce. Retention
(`adapters.cosmos.removal`) takes events out of items and leaves every commit item's summary as it
was, so heads and versions stay; a page reads on past positions it finds removed.
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from adapters.cosmos.client import CosmosContainer, Item, gather
from adapters.cosmos.commits import commit_id, nonce_of, part_id
from domain.append import StoredId
from domain.cursor import check_cursor
from domain.events import EncodedEvent, EncodedPage, Event, decode_events
from domain.partition import Partition

_MAX_FILTER_TYPES = 32  # longer type filters are applied to events only, not to commit items
_IDS_PER_QUERY = 100


class EventHead(msgspec.Struct, frozen=True, gc=False):
    """What a commit needs to know of a stored event, decoded without its data."""

    id: str
    type: str
    stream: str
    version: int
    position: int


_heads_decoder = msgspec.json.Decoder(list[EventHead])
_raws_decoder = msgspec.json.Decoder(list[msgspec.Raw])

_HEAD = "SELECT TOP 1 VALUE c.last FROM c WHERE c.partition = @p AND c.kind = 'commit' ORDER BY c.first DESC"
_STREAM_VERSION = (
    "SELECT TOP 1 VALUE c.sv FROM c WHERE c.partition = @p AND c.kind = 'commit'"
    " AND ARRAY_CONTAINS(c.streams, @s) ORDER BY c.first DESC"
)
_COMMITS = "c.first, c.last, c.nonce, c.starts, c.events FROM c WHERE c.partition = @p AND c.kind = 'commit'"


async def head_of(store: CosmosContainer, key: str) -> int:
    rows = await store.query(_HEAD, key, {"@p": key})
    return int(rows[0]) if rows else 0


async def stream_version(store: CosmosContainer, key: str, stream: str) -> int:
    rows = await store.query(_STREAM_VERSION, key, {"@p": key, "@s": stream})
    return next((int(entry["v"]) for entry in rows[0] if entry["s"] == stream), 0) if rows else 0


async def stored_ids(store: CosmosContainer, key: str, ids: list[str]) -> dict[str, StoredId]:
    """Where the given ids are stored, from committed items only."""
    wanted = set(ids)
    items: dict[str, Item] = {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start : start + _IDS_PER_QUERY]
        names = [f"@i{n}" for n in range(len(chunk))]
        rows = await store.query(
            # one row per stored id; the index serves `i IN (...)`
            "SELECT c.id, c.kind, c.commit, c.nonce FROM c JOIN i IN c.ids"  # noqa: S608
            f" WHERE c.partition = @p AND i IN ({', '.join(names)})",
            key,
            {"@p": key, **dict(zip(names, chunk, strict=True))},
        )
        items.update((row["id"], row) for row in rows)
    found: dict[str, StoredId] = {}
    for item_id, row in items.items():
        if row["kind"] == "part" and await nonce_of(store, key, commit_id(row["commit"])) != row["nonce"]:
            continue  # a part of a commit that lost its race, or of a writer that died
        item = await store.call(store.proxy.read_item, item_id, key)
        for head in _heads_decoder.decode(item["events"]):
            if head.id in wanted:
                found[head.id] = StoredId(head.id, head.stream, head.version, head.position)
    return found


async def events_of(
    store: CosmosContainer, key: str, row: Item, after: int = 0, upper: int | None = None
) -> list[tuple[EventHead, msgspec.Raw]]:
    """A commit's events in position order, from those of its items that hold positions in
    (after, upper]: a page of a large commit reads only its own parts."""
    starts: list[int] = row["starts"]
    ends = [start - 1 for start in starts[1:]] + [row["last"]]
    wanted = [n for n in range(len(starts)) if ends[n] > after and (upper is None or starts[n] <= upper)]
    parts = await gather(
        *(store.call(store.proxy.read_item, part_id(row["first"], row["nonce"], n), key) for n in wanted if n)
    )
    texts = [row["events"]] if 0 in wanted else []
    texts.extend(part["events"] for part in parts)
    events: list[tuple[EventHead, msgspec.Raw]] = []
    for text in texts:
        events.extend(decode_item(text))
    return events


def decode_item(text: str) -> list[tuple[EventHead, msgspec.Raw]]:
    """The events of one commit or part item: each one's head, and its stored JSON."""
    return list(zip(_heads_decoder.decode(text), _raws_decoder.decode(text), strict=True))


async def read_encoded(
    store: CosmosContainer,
    partition: Partition,
    *,
    after: int = 0,
    limit: int = 100,
    stream: str | None = None,
    types: Collection[str] = (),
) -> EncodedPage:
    key = partition.key
    head = await head_of(store, key)
    check_cursor(after, head)
    if limit < 1 or after == head:
        return EncodedPage(events=[], next=after if limit < 1 else head, head=head)
    wanted = frozenset(types)
    if stream is None and not wanted:
        # Positions are gapless: exactly the commits overlapping (lower, upper] hold the events
        # there, but for those retention removed; a window they leave short is followed by one
        # twice as wide.
        events: list[EncodedEvent] = []
        upper, window = after, limit
        while len(events) < limit and upper < head:
            lower, upper = upper, min(head, upper + window)
            rows = await store.query(
                f"SELECT {_COMMITS} AND c.last > @a AND c.first <= @u ORDER BY c.first",
                key,
                {"@p": key, "@a": lower, "@u": upper},
            )
            for row in rows:
                events.extend(
                    (h.position, h.type, bytes(raw))
                    for h, raw in await events_of(store, key, row, lower, upper)
                    if lower < h.position <= upper
                )
            window *= 2
        events = events[:limit]
        return EncodedPage(events=events, next=events[-1][0] if len(events) == limit else head, head=head)
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
        rows = await store.query(sql, key, {**params, "@a": cursor})
        if not rows:
            break
        for row in rows:
            for h, raw in await events_of(store, key, row, cursor, head):
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
    store: CosmosContainer, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
) -> tuple[list[Event], int]:
    key = partition.key
    version = await stream_version(store, key, stream)
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
        rows = await store.query(sql, key, {**params, "@f": cursor})
        if not rows:
            break
        for row in rows:
            for h, raw in await events_of(store, key, row):
                if h.stream == stream and last_version < h.version <= version and len(raws) < limit:
                    raws.append(bytes(raw))
                    last_version = h.version
        cursor = rows[-1]["first"]
    return decode_events(raws), version
