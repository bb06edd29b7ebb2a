"""Strategy locks: durable snapshots of a lock's state, the latest and the whole history.

A lock is one stream, `strategy_lock:{id}`; each snapshot is a version of it. A snapshot taken
with `expected_version` (or `If-Match`) is a compare-and-set decided by the append on that stream:
of writers that read the same snapshot, exactly one records the next.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.events import Event, NewEvent
from domain.identifiers import DOCUMENT_ID_PATTERN
from domain.views import Upsert, ViewOp

LOCK_PATTERN = DOCUMENT_ID_PATTERN
SNAPSHOT_TAKEN = "strategy_lock.snapshot_taken"
LATEST, SNAPSHOTS = "strategy_locks.latest", "strategy_locks.snapshots"


class SnapshotTaken(msgspec.Struct, frozen=True, kw_only=True):
    lock_id: str
    state: Any


def stream_of(lock_id: str) -> str:
    return f"strategy_lock:{lock_id}"


def snapshots_prefix(lock_id: str) -> str:
    """Length-prefixed: no lock's prefix is the start of another's (`a` and `a:1`)."""
    return f"{len(lock_id)}:{lock_id}:"


def snapshot_key(lock_id: str, version: int) -> str:
    return f"{snapshots_prefix(lock_id)}{version:012d}"


def snapshot_event(lock_id: str, state: Any) -> NewEvent:
    return NewEvent(
        type=SNAPSHOT_TAKEN, data=msgspec.to_builtins(SnapshotTaken(lock_id=lock_id, state=state))
    )


class StrategyLocksProjection:
    """Each snapshot becomes the lock's latest document and one document of its history."""

    name = "strategy_locks"
    handles = frozenset({SNAPSHOT_TAKEN})
    collections = frozenset({LATEST, SNAPSHOTS})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        taken = msgspec.convert(event.data, SnapshotTaken)
        data = {
            "id": taken.lock_id,
            "version": event.version,
            "state": taken.state,
            "taken_at": msgspec.to_builtins(event.recorded_at),
            "taken_by": event.meta.user_id,
            "position": event.position,
        }
        return [
            Upsert(collection=LATEST, key=taken.lock_id, data=data, position=event.position),
            Upsert(
                collection=SNAPSHOTS,
                key=snapshot_key(taken.lock_id, event.version),
                data=data,
                position=event.position,
            ),
        ]
