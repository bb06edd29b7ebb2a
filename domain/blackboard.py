"""Blackboards: per run, versioned entries every member and agent of the project shares.

An entry's version is its stream's version, and a write's `expected_version` is checked by the
append on that stream, never against a lagging view: of concurrent writers that expect the same
version, exactly one wins.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.events import Event, NewEvent
from domain.identifiers import NAME_PATTERN as NAME_PATTERN  # runs and keys: one home
from domain.views import Upsert, ViewOp

COLLECTION = "blackboard"
WRITTEN = "blackboard.written"


class EntryWritten(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    key: str
    value: Any
    written_by: str | None = None


def stream_of(run_id: str, key: str) -> str:
    return f"blackboard:{run_id}:{key}"


def run_prefix(run_id: str) -> str:
    return f"{len(run_id)}:{run_id}:"


def entry_key(run_id: str, key: str) -> str:
    return f"{run_prefix(run_id)}{key}"


def written_event(run_id: str, key: str, value: Any, written_by: str | None) -> NewEvent:
    record = EntryWritten(run_id=run_id, key=key, value=value, written_by=written_by)
    return NewEvent(type=WRITTEN, data=msgspec.to_builtins(record))


class BlackboardProjection:
    name = "blackboard"
    handles = frozenset({WRITTEN})
    collections = frozenset({COLLECTION})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        entry = msgspec.convert(event.data, EntryWritten)
        data = {
            "key": entry.key,
            "value": entry.value,
            "version": event.version,
            "written_by": entry.written_by,
            "position": event.position,
            "updated_at": msgspec.to_builtins(event.recorded_at),
        }
        return [
            Upsert(
                collection=COLLECTION,
                key=entry_key(entry.run_id, entry.key),
                data=data,
                position=event.position,
            )
        ]
