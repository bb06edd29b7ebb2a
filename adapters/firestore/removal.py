"""Retention on the Firestore spine (`EventSpine.remove`): commit documents rewritten without the removed events.

A commit document keeps its id, `first`, `last`, `token` and `streams` (layout:
`adapters.firestore.commits`); its `body` and `ids` lose the removed events, and one whose only
event is removed loses its part documents too. A document left with no event stays, empty: scans
pass it, and the landed-commit probe still finds its `token`. So the head, every stream's version
(a stream's newest commit document holds its last event, which is never removed) and every
position stay. A removed event's id goes with it, as in the SQLite spine: an append retried with
it afterwards is appended anew.

Which events go: those at or below the head whose version is below their stream's version. The
document's `streams` entry answers that for all but a stream's last event in the document; for
those the stream's version is looked up once per call, outside the transactions. A stream's
version only grows, so a stale one can only keep an event, never remove a stream's last one.

Concurrency: each step is one Firestore transaction that queries the commit documents from the
next wanted position on (`last`, single-field index), reads them, decides on what it read and
updates them; Firestore transactions are serializable, so two removals never undo each other and
nothing comes back. Appends only create documents past the head. A reader outside a transaction
sees a document before or after an update; one that finds a document's parts deleted since it
read the document sees its event removed (`adapters.firestore.commits.load`).

Cost: one read and at most one write per commit document holding a wanted position, in
transactions of up to `_DOCS` documents and the commit size the spine allows.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection
from functools import partial
from typing import Any

from google.cloud.firestore import DELETE_FIELD, AsyncClient, FieldFilter
from google.cloud.firestore_v1.async_transaction import AsyncTransaction, async_transactional

from adapters.firestore.client import Retrying
from adapters.firestore.commits import Commit, commits_of, load, part_refs
from adapters.firestore.reads import head_of, stream_version

_DOCS = 16  # commit documents one step reads
_MAX_WRITES = 500  # Firestore's limit of writes in one transaction
_ID_OVERHEAD = 16


async def remove(
    client: AsyncClient, retrying: Retrying, key: str, positions: Collection[int], budget: int
) -> int:
    """Remove what may go of `positions`; `budget` bounds the bytes one transaction writes."""
    head = await retrying.run(lambda: head_of(client, key))
    wanted = sorted({p for p in positions if 1 <= p <= head})
    versions: dict[str, int] = {}  # streams' versions as looked up during this call
    removed, at = 0, 0
    while at < len(wanted):
        done, at = await retrying.run(partial(_transaction, client, key, wanted, at, versions, budget))
        removed += done
    return removed


async def _transaction(
    client: AsyncClient, key: str, wanted: list[int], at: int, versions: dict[str, int], budget: int
) -> tuple[int, int]:
    step: tuple[int, int] = await async_transactional(_step)(
        client.transaction(), client, key, wanted, at, versions, budget
    )
    return step


async def _step(
    transaction: AsyncTransaction,
    client: AsyncClient,
    key: str,
    wanted: list[int],
    at: int,
    versions: dict[str, int],
    budget: int,
) -> tuple[int, int]:
    """One transaction: rewrite the commit documents holding `wanted[at:]`, as many as fit.
    Answers (events removed, index in `wanted` where the next step starts)."""
    query = (
        commits_of(client, key)
        .where(filter=FieldFilter("last", ">=", wanted[at]))
        .order_by("last")
        .limit(_DOCS)
    )
    snapshots = [snapshot async for snapshot in query.stream(transaction=transaction)]
    removed, size, writes = 0, 0, 0
    for snapshot, commit in zip(snapshots, await load(client, key, snapshots, transaction), strict=True):
        if commit.first > wanted[-1]:
            return removed, len(wanted)
        held = wanted[bisect.bisect_left(wanted, commit.first) : bisect.bisect_right(wanted, commit.last)]
        doc = snapshot.to_dict() or {}
        gone = await _removable(client, key, commit, set(held), doc["streams"], versions)
        if gone:
            fields, parts = _rewritten(commit, gone, doc.get("parts", 1))
            cost = len(fields["body"]) + sum(len(i) + _ID_OVERHEAD for i in fields["ids"])
            if writes and (size + cost > budget or writes + parts > _MAX_WRITES):
                return removed, bisect.bisect_left(wanted, commit.first)  # the next step's
            transaction.update(snapshot.reference, fields)
            for part in part_refs(client, key, snapshot.id, parts):
                transaction.delete(part)
            removed, size, writes = removed + len(gone), size + cost, writes + parts
        at = bisect.bisect_right(wanted, commit.last)
        if at == len(wanted):
            return removed, at
    return removed, at if len(snapshots) == _DOCS else len(wanted)


async def _removable(
    client: AsyncClient,
    key: str,
    commit: Commit,
    held: set[int],
    streams: dict[str, Any],
    versions: dict[str, int],
) -> set[int]:
    """Which of `held` the commit holds and may go: not its stream's last event."""
    gone: set[int] = set()
    for event in commit.heads:
        if event.position not in held:
            continue
        if event.version >= streams["s" + event.stream]["v"]:  # the stream's last in this commit
            if event.stream not in versions:
                versions[event.stream] = await stream_version(client, key, event.stream)
            if event.version >= versions[event.stream]:
                continue
        gone.add(event.position)
    return gone


def _rewritten(commit: Commit, gone: set[int], parts: int) -> tuple[dict[str, Any], int]:
    """The commit's new fields without `gone`, and how many part documents it had (1: none).
    Only a commit of one event has parts (`adapters.firestore.commits.pack`): removing it empties
    the commit, so the parts are deleted and the body is never split again."""
    kept = [(event, raw) for event, raw in commit.events() if event.position not in gone]
    fields: dict[str, Any] = {
        "body": b"[" + b",".join(bytes(raw) for _, raw in kept) + b"]",
        "ids": [event.id for event, _ in kept],
    }
    if parts > 1:
        fields["parts"] = DELETE_FIELD
    return fields, parts
