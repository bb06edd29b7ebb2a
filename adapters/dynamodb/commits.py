"""What one DynamoDB group commit decides and writes (layout: `adapters.dynamodb.log`; why it is atomic:
`adapters.dynamodb.spine`).

`decide_commit` decides each request of a group on the state read and takes as many as fit one
transaction (DynamoDB's limits: 100 items, 4 MB); `commit_items` builds the writes: the head
moved from the value read, the stream heads conditioned on their versions as read, one stream
entry per append, the commit chunks, and one item per client-chosen event id; `transact` commits
them and says which condition, if any, failed.
"""

from __future__ import annotations

import bisect
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters.dynamodb.log import HEAD_SK, ITEM_OVERHEAD, Sizer, chunked, head_pk, id_pk, pos, stream_pk
from adapters.dynamodb.table import Cancelled, DynamoTable, Item, n, s
from adapters.group_commit import Pending
from domain.append import StoredId, client_ids, decide_append
from domain.errors import SpineError
from domain.events import AppendResult, Event, event_encoder

MAX_ITEMS = 100  # DynamoDB's limit of items in one transaction
MAX_BYTES = 3_800_000  # of its 4 MB limit on a transaction's items


@dataclass
class State:
    """A partition's head and the versions of the streams a group touches, as of one read."""

    head: int
    versions: OrderedDict[str, int] = field(default_factory=OrderedDict)


@dataclass
class Write:
    pending: Pending
    events: list[Event]
    bodies: list[bytes]
    result: AppendResult
    old_version: int


@dataclass
class CommitDecision:
    outcomes: list[tuple[Pending, AppendResult | SpineError]] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    leftover: list[Pending] = field(default_factory=list)
    refused: bool = False  # a conflict was decided: it stands only if the state read was current
    need_ids: bool = False  # a request with client ids was refused before its ids were looked up
    alone: bool = False  # one append too large for one transaction


def decide_commit(
    group: list[Pending], state: State, stored: dict[str, StoredId], *, check_ids: bool
) -> CommitDecision:
    decision = CommitDecision()
    head, versions = state.head, dict(state.versions)
    written: dict[str, StoredId] = {}
    sizer, ids, streams = Sizer(), 0, set[str]()
    recorded_at = datetime.now(UTC)
    for index, pending in enumerate(group):
        request = pending.request
        wanted = client_ids(request)
        known = [found for i in wanted if (found := written.get(i) or stored.get(i)) is not None]
        try:
            events, result = decide_append(
                request,
                head=head,
                stream_version=versions[request.stream],
                stored=known,
                recorded_at=recorded_at,
            )
        except SpineError as exc:
            if wanted and not check_ids:
                decision.need_ids = True
                return decision
            decision.outcomes.append((pending, exc))
            decision.refused = True
            continue
        if not events:
            decision.outcomes.append((pending, result))
            continue
        bodies = [event_encoder.encode(event) for event in events]
        grown = sizer
        for body in bodies:
            grown = grown.add(len(body))
        new_streams = streams | {request.stream}
        items = 1 + len(new_streams) + len(decision.writes) + 1 + ids + len(wanted) + grown.items
        size = grown.raw + ITEM_OVERHEAD * items
        if items > MAX_ITEMS or size > MAX_BYTES:
            if decision.writes:
                decision.leftover = group[index:]
                return decision
            decision.alone = True
            decision.leftover = group[index + 1 :]
        decision.writes.append(Write(pending, events, bodies, result, versions[request.stream]))
        sizer, ids, streams = grown, ids + len(wanted), new_streams
        head, versions[request.stream] = result.last_position, result.stream_version
        for event in events:
            written[event.id] = StoredId(event.id, event.stream, event.version, event.position)
        if decision.alone:
            return decision
    return decision


def commit_items(
    key: str, state: State, decision: CommitDecision, *, locked: bool, check_ids: bool
) -> tuple[list[list[Item]], list[Item]]:
    """(chunk units: a chunk, its parts, its ids, in order; the head, stream head and entry writes)."""
    first_versions: dict[str, int] = {}
    rows: list[tuple[int, bytes, str | None]] = []
    wanted: set[str] = set()
    for write in decision.writes:
        wanted.update(client_ids(write.pending.request))
        first_versions.setdefault(write.events[0].stream, write.old_version)
        rows.extend(
            (event.position, body, event.id if event.id in wanted else None)
            for event, body in zip(write.events, write.bodies, strict=True)
        )
    chunks = chunked(rows)
    starts = [chunk.first for chunk in chunks]
    by_id = {event.id: event for write in decision.writes for event in write.events}
    units: list[list[Item]] = []
    for chunk in chunks:
        unit = chunk.items(key, with_ids=locked)
        for event_id in chunk.client_ids:
            event = by_id[event_id]
            unit.append(_id_item(key, event, conditional=not check_ids))
        units.append(unit)
    last = decision.writes[-1].result.last_position
    writes: list[Item] = [_head_update(key, state.head, last)]
    news: dict[str, int] = {}
    for write in decision.writes:
        news[write.events[0].stream] = write.result.stream_version
    for stream, new in news.items():
        writes.append(_stream_head(key, stream, first_versions[stream], new))
    for write in decision.writes:
        first = write.events[0]
        chunk_start = starts[bisect.bisect_right(starts, first.position) - 1]
        entry = {
            "pk": s(stream_pk(key, first.stream)),
            "sk": s(pos(first.version)),
            "p": n(first.position),
            "n": n(len(write.events)),
            "c": n(chunk_start),
        }
        writes.append({"Put": {"Item": entry}})
    return units, writes


async def commit_once(
    table: DynamoTable, key: str, state: State, decision: CommitDecision, *, check_ids: bool
) -> str:
    units, writes = commit_items(key, state, decision, locked=False, check_ids=check_ids)
    return await transact(
        table, writes + [item for unit in units for item in unit], stream_writes=len(writes)
    )


async def transact(table: DynamoTable, items: list[Item], *, stream_writes: int) -> str:
    """Commit: "ok", "stale" (a head or stream condition failed) or "ids" (an id is stored)."""
    try:
        await table.transact([_op(table, item) for item in items], uuid.uuid4().hex)
    except Cancelled as cancelled:
        if any(i < stream_writes for i in cancelled.failed):
            return "stale"  # the head or a stream moved: our state is old
        return "ids"  # an id is stored: look them up
    return "ok"


def _op(table: DynamoTable, item: Item) -> Item:
    """A transaction's write with the table named; a bare item is an unconditional put."""
    if "pk" in item:
        return {"Put": {"TableName": table.name, "Item": item}}
    ((verb, body),) = item.items()
    return {verb: {**body, "TableName": table.name}}


def head_key(key: str) -> Item:
    return {"pk": s(head_pk(key)), "sk": s(HEAD_SK)}


def head_condition(head: int) -> str:
    return "(attribute_not_exists(#h) OR #h = :h)" if head == 0 else "#h = :h"


def head_values(head: int) -> Item:
    return {":h": n(head)}


def _head_update(key: str, head: int, new: int) -> Item:
    return {
        "Update": {
            "Key": head_key(key),
            "UpdateExpression": "SET #h = :new",
            "ConditionExpression": f"{head_condition(head)} AND attribute_not_exists(#l)",
            "ExpressionAttributeNames": {"#h": "h", "#l": "l"},
            "ExpressionAttributeValues": {":new": n(new), **head_values(head)},
        }
    }


def _stream_head(key: str, stream: str, old: int, new: int) -> Item:
    put: Item = {"Item": {"pk": s(stream_pk(key, stream)), "sk": s(HEAD_SK), "v": n(new)}}
    if old == 0:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        put["ConditionExpression"] = "v = :old"
        put["ExpressionAttributeValues"] = {":old": n(old)}
    return {"Put": put}


def _id_item(key: str, event: Event, *, conditional: bool) -> Item:
    put: Item = {
        "Item": {
            "pk": s(id_pk(key, event.id)),
            "sk": s(HEAD_SK),
            "s": s(event.stream),
            "v": n(event.version),
            "p": n(event.position),
        }
    }
    if conditional:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    return {"Put": put}
