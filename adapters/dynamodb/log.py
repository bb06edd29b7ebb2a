"""How the DynamoDB spine lays a partition's log out in items of one table (`pk`, `sk`, both strings).

| item | pk | sk | attributes |
|---|---|---|---|
| partition head | `{P}|head` | `_` | `h` last position; while a multi-transaction append runs, `l` its lock id and `u` the lock's expiry (unix ms) |
| commit chunk | `{P}|log` | first position, 20 digits | `n` events written, `z` zlib of their JSON lines (the first part), `k` parts when split, `cid` client ids (locked appends only), `x` positions removed since (retention) |
| chunk part | `{P}|part|{first}` | part number, 4 digits | `z` the next slice of the compressed bytes |
| stream head | `{P}|s|{stream}` | `_` | `v` the stream's version |
| stream entry | `{P}|s|{stream}` | first version, 20 digits | one append to the stream: `p` first position, `n` events, `c` the chunk holding `p` |
| event id | `{P}|id|{id}` | `_` | where a client-chosen id is stored: `s` stream, `v` version, `p` position |

`{P}` is the partition key (`tenant/env/project`); none of the identifiers can contain `|`.
Events of a group commit are packed into chunks of at most `CHUNK_RAW` bytes of JSON (or one
event when it alone is larger), compressed, and a compressed chunk over `PART_BYTES` is split into
parts: DynamoDB items hold at most 400 KB. A chunk of several events is never split (it closes
before it grows past `CHUNK_RAW`): only a chunk holding one large event has parts.

A chunk holds positions `first .. first + n - 1` except those in `x`; retention rewrites it
without the removed events, or deletes it with its parts once it holds none
(`adapters.dynamodb.removal`). Readers find chunks by range queries, so a deleted one is no gap.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace

import msgspec

from adapters.dynamodb.table import Item, b, n, s

HEAD_SK = "_"
CHUNK_RAW = 256 * 1024  # JSON bytes of one chunk's events before compression
CHUNK_EVENTS = 1000
PART_BYTES = 350_000  # compressed bytes in one item, well under DynamoDB's 400 KB
ITEM_OVERHEAD = 300  # an item's keys and attribute names, for the 4 MB transaction budget


def pos(number: int) -> str:
    """Positions and versions as sort keys: zero-padded so string order is number order."""
    return f"{number:020d}"


def head_pk(partition: str) -> str:
    return f"{partition}|head"


def log_pk(partition: str) -> str:
    return f"{partition}|log"


def part_pk(partition: str, first: int) -> str:
    return f"{partition}|part|{pos(first)}"


def stream_pk(partition: str, stream: str) -> str:
    return f"{partition}|s|{stream}"


def id_pk(partition: str, event_id: str) -> str:
    return f"{partition}|id|{event_id}"


@dataclass
class Sizer:
    """Counts the chunk items a run of events will take, by the same rule `chunked` splits them."""

    closed: int = 0
    open_raw: int = 0
    open_count: int = 0
    raw: int = 0

    def add(self, size: int) -> Sizer:
        grown = replace(self)
        if grown.open_count and (grown.open_raw + size + 1 > CHUNK_RAW or grown.open_count == CHUNK_EVENTS):
            grown.closed += _parts(grown.open_raw)
            grown.open_raw = grown.open_count = 0
        grown.open_raw += size + 1
        grown.open_count += 1
        grown.raw += size + 1
        return grown

    @property
    def items(self) -> int:
        return self.closed + (_parts(self.open_raw) if self.open_count else 0)


def _parts(raw: int) -> int:
    # Compression never grows data by more than a few bytes per 16 KiB: raw size bounds it.
    return max(1, -(-(raw + 64) // PART_BYTES))


@dataclass
class Chunk:
    first: int
    bodies: list[bytes] = field(default_factory=list)
    client_ids: list[str] = field(default_factory=list)
    removed: frozenset[int] = frozenset()  # positions retention removed from it: `x`

    def items(self, partition: str, *, with_ids: bool) -> list[Item]:
        """The chunk item, then its part items (when the compressed bytes need more than one)."""
        packed = zlib.compress(b"\n".join(self.bodies), 1)
        slices = [packed[i : i + PART_BYTES] for i in range(0, len(packed), PART_BYTES)]
        chunk: Item = {
            "pk": s(log_pk(partition)),
            "sk": s(pos(self.first)),
            "n": n(len(self.bodies) + len(self.removed)),
            "z": b(slices[0]),
        }
        if self.removed:
            chunk["x"] = {"NS": [str(p) for p in sorted(self.removed)]}
        if len(slices) > 1:
            chunk["k"] = n(len(slices))
        if with_ids and self.client_ids:
            chunk["cid"] = {"L": [s(i) for i in self.client_ids]}
        parts = [
            {"pk": s(part_pk(partition, self.first)), "sk": s(f"{index:04d}"), "z": b(piece)}
            for index, piece in enumerate(slices[1:], start=1)
        ]
        return [chunk, *parts]


def chunked(events: list[tuple[int, bytes, str | None]]) -> list[Chunk]:
    """(position, JSON, client id or None) in position order -> chunks, split like `Sizer` counts."""
    chunks: list[Chunk] = []
    raw = 0
    for position, body, client_id in events:
        current = chunks[-1] if chunks else None
        if current is None or raw + len(body) + 1 > CHUNK_RAW or len(current.bodies) == CHUNK_EVENTS:
            current = Chunk(first=position)
            chunks.append(current)
            raw = 0
        current.bodies.append(body)
        raw += len(body) + 1
        if client_id is not None:
            current.client_ids.append(client_id)
    return chunks


def item_size(item: Item) -> int:
    return ITEM_OVERHEAD + sum(len(value["B"]) for value in item.values() if "B" in value)


def bodies_of(chunk: Item, parts: list[bytes]) -> list[tuple[int, bytes]]:
    """A stored chunk's events as (position, JSON), given the bytes of its parts 1..k-1."""
    first = int(chunk["sk"]["S"])
    packed = chunk["z"]["B"] + b"".join(parts)
    bodies = zlib.decompress(packed).split(b"\n")
    if "x" not in chunk:
        return list(enumerate(bodies, start=first))
    removed = {int(p) for p in chunk["x"]["NS"]}
    kept = (p for p in range(first, first + int(chunk["n"]["N"])) if p not in removed)
    return list(zip(kept, bodies, strict=True))


class Peek(msgspec.Struct):
    """The two fields a filtered read looks at, decoded without the rest of the event."""

    type: str
    stream: str


peek_decoder = msgspec.json.Decoder(Peek)
