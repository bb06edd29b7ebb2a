"""Larger appends to the DynamoDB spine: locked, in several transactions, still all-or-nothing.

Larger appends (more than ~95 client ids, or more compressed data than one transaction holds)
cannot be one transaction. They lock the partition head (`l`, `u`: a lease of `LOCK_SECONDS`,
renewed by every transaction of the append), write their chunks and id items in as many
transactions as needed — invisible, as they lie past the head — and commit by moving the head and
releasing the lock in a last transaction. A writer that finds an expired lock takes it over,
deletes what the dead append left past the head (chunks, parts and the ids they list), and
releases it. Other writers wait while a lock is alive. So a batch of any allowed size is
all-or-nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Sequence

import anyio

from adapters.dynamodb.commits import (
    MAX_BYTES,
    MAX_ITEMS,
    CommitDecision,
    State,
    commit_items,
    head_condition,
    head_key,
    head_values,
    transact,
)
from adapters.dynamodb.log import HEAD_SK, id_pk, item_size, log_pk, part_pk, pos
from adapters.dynamodb.table import ConditionFailed, DynamoTable, Item, n, s
from domain.errors import BackendUnavailable, SpineError

log = logging.getLogger(f"spine.{__name__}")

LOCK_SECONDS = 30.0
_NAMES = {"#h": "h", "#l": "l", "#u": "u"}


class Locked(Exception):
    def __init__(self, head: int, lock: str, until: int) -> None:
        super().__init__(lock)
        self.head = head
        self.lock = lock
        self.until = until


async def commit_locked(table: DynamoTable, key: str, state: State, decision: CommitDecision) -> str:
    """One append too large for one transaction: lock the head, write, commit by moving it."""
    units, writes = commit_items(key, state, decision, locked=True, check_ids=True)
    flat = [item for unit in units for item in unit]
    if len(flat) + len(writes) <= MAX_ITEMS and sum(map(item_size, flat)) <= MAX_BYTES:
        # Compressed, it fits after all: one transaction, no lock.
        return await transact(table, writes + flat, stream_writes=len(writes))
    lock = uuid.uuid4().hex
    try:
        await table.call(
            "update_item",
            Key=head_key(key),
            UpdateExpression="SET #l = :l, #u = :u, #h = if_not_exists(#h, :zero)",
            ConditionExpression=f"{head_condition(state.head)} AND attribute_not_exists(#l)",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={
                ":l": s(lock), ":u": n(_lease_until()), ":zero": n(0), **head_values(state.head)
            },
        )  # fmt: skip
    except ConditionFailed:
        return "stale"
    try:
        for batch in _batches(flat):
            if await transact(table, [_renew(key, lock), *batch], stream_writes=1) != "ok":
                return "stale"  # the lock was taken over: its taker removes what we wrote
        writes[0] = _head_release(key, decision.writes[-1].result.last_position, lock)
        outcome = await transact(table, writes, stream_writes=len(writes))
    except BackendUnavailable:
        await _undo(table, key, state.head, lock)
        raise
    if outcome != "ok":
        await _undo(table, key, state.head, lock)
    return outcome


async def _undo(table: DynamoTable, key: str, head: int, lock: str) -> None:
    try:
        await _clean(table, key, head, lock)
    except SpineError:
        log.warning("could not undo a failed locked append; its lock will expire", extra={"partition": key})


async def settle(table: DynamoTable, key: str, locked: Locked) -> None:
    """Wait while another writer's lock is alive; take over and clean up an expired one."""
    if locked.until > _now_ms():
        await anyio.sleep(min(0.2, (locked.until - _now_ms()) / 1000))
        return
    mine = uuid.uuid4().hex
    try:
        await table.call(
            "update_item",
            Key=head_key(key),
            UpdateExpression="SET #l = :mine, #u = :u",
            ConditionExpression="#l = :l AND #u = :until",
            ExpressionAttributeNames={"#l": "l", "#u": "u"},
            ExpressionAttributeValues={
                ":mine": s(mine), ":u": n(_lease_until()), ":l": s(locked.lock), ":until": n(locked.until)
            },
        )  # fmt: skip
    except ConditionFailed:
        return  # someone else moved first: read again
    log.warning("taking over an expired append lock", extra={"partition": key})
    await _clean(table, key, locked.head, mine)


async def _clean(table: DynamoTable, key: str, head: int, lock: str) -> None:
    """Delete what a locked append left past the head, then release the lock. Only while we
    hold `lock`: renewing it first gives us `LOCK_SECONDS` in which nobody else writes there."""
    try:
        await table.call("update_item", **_renew(key, lock)["Update"])
    except ConditionFailed:
        return  # not ours (any more): its holder cleans up
    chunks = await table.query_all(
        KeyConditionExpression="pk = :pk AND sk > :head",
        ExpressionAttributeValues={":pk": s(log_pk(key)), ":head": s(pos(head))},
        ProjectionExpression="pk, sk, k, cid",
    )
    doomed: list[tuple[str, str]] = []
    for chunk in chunks:
        first = int(chunk["sk"]["S"])
        doomed.append((log_pk(key), pos(first)))
        parts = int(chunk.get("k", {"N": "1"})["N"])
        doomed.extend((part_pk(key, first), f"{i:04d}") for i in range(1, parts))
        doomed.extend((id_pk(key, i["S"]), HEAD_SK) for i in chunk.get("cid", {"L": []})["L"])
    await table.delete_many(doomed)
    with contextlib.suppress(ConditionFailed):  # taken over meanwhile: the taker cleans up
        await table.call(
            "update_item",
            Key=head_key(key),
            UpdateExpression="REMOVE #l, #u",
            ConditionExpression="#l = :l",
            ExpressionAttributeNames={"#l": "l", "#u": "u"},
            ExpressionAttributeValues={":l": s(lock)},
        )


def _batches(items: Sequence[Item]) -> list[list[Item]]:
    """Transactions of at most 99 items (one slot is the lock renewal) and `MAX_BYTES`, in order."""
    batches: list[list[Item]] = []
    size = 0
    for item in items:
        grow = item_size(item)
        if not batches or len(batches[-1]) == MAX_ITEMS - 1 or size + grow > MAX_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += grow
    return batches


def _now_ms() -> int:
    return int(time.time() * 1000)


def _lease_until() -> int:
    return _now_ms() + int(LOCK_SECONDS * 1000)


def _head_release(key: str, new: int, lock: str) -> Item:
    return {
        "Update": {
            "Key": head_key(key),
            "UpdateExpression": "SET #h = :new REMOVE #l, #u",
            "ConditionExpression": "#l = :l",
            "ExpressionAttributeNames": _NAMES,
            "ExpressionAttributeValues": {":new": n(new), ":l": s(lock)},
        }
    }


def _renew(key: str, lock: str) -> Item:
    return {
        "Update": {
            "Key": head_key(key),
            "UpdateExpression": "SET #u = :u",
            "ConditionExpression": "#l = :l",
            "ExpressionAttributeNames": {"#l": "l", "#u": "u"},
            "ExpressionAttributeValues": {":u": n(_lease_until()), ":l": s(lock)},
        }
    }
