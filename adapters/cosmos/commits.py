"""How the Cosmos DB spine lays a group commit out in items, and writes them.

Layout, per partition (one logical partition, so every query stays inside it):
- a **commit item** per group commit, id `c{first position:020}`: `first`, `last`, a random
  `nonce`, the summary `streams` / `sv` (per stream: first and last version in this commit),
  `types` (distinct, or null when too many to list), `starts` (the first position of each of its
  items), and `ids` plus `events` (the events as one JSON string, exactly as `event_encoder`
  writes them) of its first chunk of events;
- **part items** `p{first:020}.{nonce}.{n}` holding the further chunks (`ids`, `events`) of a
  commit larger than one item may be (Cosmos allows 2 MB; `item_bytes` per chunk leaves room for
  the summary, and keeps requests under the 1 MiB aiohttp sends without yielding).

`write_commit` writes the parts first, then creates the commit item *only if absent*; a loser's
parts are deleted. A create without a clear answer is looked up by its nonce.

Retention (`adapters.cosmos.removal`) later replaces commit and part items with `ids` and
`events` less the removed events; the rest of an item, the summary included, stays as written.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import suppress
from itertools import accumulate
from typing import Any

from azure.cosmos.exceptions import CosmosResourceExistsError

from adapters.cosmos.client import CosmosContainer, Item, gather
from domain.errors import BackendUnavailable
from domain.events import Event, event_encoder

log = logging.getLogger(f"spine.{__name__}")

_MAX_TYPES_BYTES = 16_384  # a longer distinct-types summary is stored as null ("any")

_NONCE = "SELECT VALUE c.nonce FROM c WHERE c.partition = @p AND c.id = @id"


def commit_id(first: int) -> str:
    return f"c{first:020d}"


def part_id(first: int, nonce: str, n: int) -> str:
    return f"p{first:020d}.{nonce}.{n}"


async def write_commit(store: CosmosContainer, key: str, events: list[Event], item_bytes: int) -> bool:
    """Create the commit item (parts first); False when another writer has that position."""
    nonce = uuid.uuid4().hex
    first = events[0].position
    chunks = _chunks(events, item_bytes)
    starts = list(accumulate((len(ids) for _, ids in chunks[:-1]), initial=first))
    parts = [
        {"id": part_id(first, nonce, n), "partition": key, "kind": "part", "commit": first, "nonce": nonce,
         "ids": chunk_ids, "events": text}
        for n, (text, chunk_ids) in enumerate(chunks[1:], start=1)
    ]  # fmt: skip
    if parts:
        await gather(*(_create_part(store, part) for part in parts))
    text, chunk_ids = chunks[0]
    commit = {
        "id": commit_id(first),
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
        await store.call(store.proxy.create_item, commit, passthrough=frozenset({409}))
        landed = True
    except CosmosResourceExistsError:
        # The position is taken: by another writer, or by our own create the SDK re-sent.
        landed = await nonce_of(store, key, commit["id"]) == nonce
    except BackendUnavailable:
        # The outcome is unknown: find out if the store can say, else the caller may retry.
        if await nonce_of(store, key, commit["id"]) != nonce:
            raise
        landed = True
    if not landed:
        await _discard(store, key, parts)
    return landed


async def _create_part(store: CosmosContainer, part: Item) -> None:
    with suppress(CosmosResourceExistsError):  # our own, re-sent: the id carries the nonce
        await store.call(store.proxy.create_item, part, passthrough=frozenset({409}))


async def _discard(store: CosmosContainer, key: str, parts: list[Item]) -> None:
    """Best effort: a loser's parts are never referenced, only their space is wasted."""
    for part in parts:
        try:
            await store.proxy.delete_item(part["id"], partition_key=key)
        except Exception as exc:
            log.warning("could not delete an unreferenced part", extra={"error": type(exc).__name__})


async def nonce_of(store: CosmosContainer, key: str, item_id: str) -> str | None:
    rows = await store.query(_NONCE, key, {"@p": key, "@id": item_id})
    return str(rows[0]) if rows else None


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
        cost = sent_size(body) + len(event.id) + 4
        if bodies and size + cost > budget:
            chunks.append(("[" + b",".join(bodies).decode() + "]", ids))
            bodies, ids, size = [], [], 0
        bodies.append(body)
        ids.append(event.id)
        size += cost
    chunks.append(("[" + b",".join(bodies).decode() + "]", ids))
    return chunks


def sent_size(body: bytes) -> int:
    """The size of `body` as a JSON string in a request: quotes and backslashes escaped, and
    non-ASCII characters too (the SDK sends `ensure_ascii` JSON)."""
    if body.isascii():
        return len(body) + body.count(b'"') + body.count(b"\\")
    return len(json.dumps(body.decode()))
