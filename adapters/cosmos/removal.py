"""Retention on the Cosmos DB spine (`EventSpine.remove`): items rewritten without the removed events.

Each commit or part item holding a removed event is replaced with its `events` and `ids` less
that event; everything else stays (layout: `adapters.cosmos.commits`). Commit items are never
deleted and keep `first`, `last`, `starts`, `streams` and `sv`, so heads and stream versions —
derived from commit items (`adapters.cosmos.reads`) — and every position stay, and so do the
writers' caches. `starts` still bounds the positions each item may hold, so a reader fetches the
same items; an item left with no event stays, empty. A removed event's id goes with it, as in
the SQLite spine: an append retried with it afterwards is appended anew.

Which events go: those at or below the head whose version is below their stream's version. The
commit's `sv` (the stream's last version in the commit) answers that for all but a stream's last
event in a commit; for those the stream's version is looked up once per call. A stream's version
only grows, so a stale one can only keep an event, never remove a stream's last one.

Concurrency: appends only create items; only removals replace them, each `If-Match` the etag of
the item as read. A replace that finds the item changed reads it again and decides again, so two
removals never undo each other and nothing comes back. A reader sees an item before or after.

Cost: positions close together form one run; a run costs one query for the commit items it
overlaps, then each touched item (a part: one read more) one replace, a few in flight at once.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection

import anyio
from azure.core import MatchConditions

from adapters.cosmos.client import CosmosContainer, Item, gather, status_of
from adapters.cosmos.commits import part_id
from adapters.cosmos.reads import EventHead, decode_item, head_of, stream_version
from adapters.position_runs import runs_of

_RUN_GAP = 1000  # positions further apart are looked up by separate queries
_PARALLEL = 8  # items read or replaced at once
_CHANGED = frozenset({412})  # the etag no longer matches: another removal replaced the item
_OVERLAPPING = (
    "SELECT * FROM c WHERE c.partition = @p AND c.kind = 'commit' AND c.last >= @a AND c.first <= @b"
    " ORDER BY c.first"
)


async def remove(store: CosmosContainer, key: str, positions: Collection[int]) -> int:
    """Remove what may go of `positions` from the partition's log; answer how many went."""
    head = await head_of(store, key)
    wanted = sorted({p for p in positions if 1 <= p <= head})
    commits: dict[str, Item] = {}
    for run in runs_of(wanted, _RUN_GAP):
        rows = await store.query(_OVERLAPPING, key, {"@p": key, "@a": run[0], "@b": run[-1]})
        commits.update((row["id"], row) for row in rows if row["id"] not in commits)
    versions: dict[str, int] = {}  # streams' versions as looked up during this call
    limit = anyio.Semaphore(_PARALLEL)
    counts = await gather(
        *(
            _item(store, key, commit, n, held, versions, limit)
            for commit in commits.values()
            for n, held in _held(commit, wanted)
        )
    )
    return sum(counts)


def _held(commit: Item, wanted: list[int]) -> list[tuple[int, set[int]]]:
    """(item number: 0 the commit item, n its part n; the wanted positions it may hold)."""
    starts: list[int] = commit["starts"]
    ends = [start - 1 for start in starts[1:]] + [commit["last"]]
    held = []
    for n, (start, end) in enumerate(zip(starts, ends, strict=True)):
        positions = wanted[bisect.bisect_left(wanted, start) : bisect.bisect_right(wanted, end)]
        if positions:
            held.append((n, set(positions)))
    return held


async def _item(
    store: CosmosContainer,
    key: str,
    commit: Item,
    n: int,
    held: set[int],
    versions: dict[str, int],
    limit: anyio.Semaphore,
) -> int:
    """Replace one item of `commit` without what may go of `held`; answer how many went."""
    last_in_commit = {entry["s"]: int(entry["v"]) for entry in commit["sv"]}
    async with limit:
        item = commit
        if n:
            item = await store.call(store.proxy.read_item, part_id(commit["first"], commit["nonce"], n), key)
        while True:
            events = decode_item(item["events"])
            gone: set[int] = set()
            for head, _ in events:
                if head.position in held and await _may_go(store, key, head, last_in_commit, versions):
                    gone.add(head.position)
            if not gone:
                return 0
            kept = [(head, raw) for head, raw in events if head.position not in gone]
            body = {
                name: value for name, value in item.items() if not name.startswith("_")
            }  # no system fields
            body["events"] = "[" + ",".join(bytes(raw).decode() for _, raw in kept) + "]"
            body["ids"] = [head.id for head, _ in kept]
            try:
                await store.call(
                    store.proxy.replace_item,
                    item["id"],
                    body,
                    etag=item["_etag"],
                    match_condition=MatchConditions.IfNotModified,
                    passthrough=_CHANGED,
                )
            except Exception as exc:
                if status_of(exc) not in _CHANGED:
                    raise
                item = await store.call(store.proxy.read_item, item["id"], key)
                continue
            return len(gone)


async def _may_go(
    store: CosmosContainer,
    key: str,
    head: EventHead,
    last_in_commit: dict[str, int],
    versions: dict[str, int],
) -> bool:
    """Not its stream's last event."""
    if head.version < last_in_commit[head.stream]:
        return True
    if head.stream not in versions:
        versions[head.stream] = await stream_version(store, key, head.stream)
    return head.version < versions[head.stream]
