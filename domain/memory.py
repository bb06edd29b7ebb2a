"""Session memory: key/value per (tenant, env, project, user), with an optional time to live.

A key belongs to one user: another user of the same project never reads or overwrites it. Expiry
is decided when the value is written (`expires_at`) and applied when it is read, so a rebuilt view
expires exactly what the live one did.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from domain.events import Event, NewEvent
from domain.identifiers import NAME_PATTERN
from domain.views import Delete, Upsert, ViewOp

KEY_PATTERN = NAME_PATTERN
COLLECTION = "memory"
SET, DELETED = "memory.set", "memory.deleted"


class MemorySet(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    key: str
    value: Any
    expires_at: datetime | None = None


class MemoryDeleted(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    key: str


def stream_of(user_id: str, key: str) -> str:
    return f"memory:{user_id}:{key}"


def doc_key(user_id: str, key: str) -> str:
    """Unambiguous although both parts may contain ':': the user's length comes first."""
    return f"{len(user_id)}:{user_id}:{key}"


def set_event(user_id: str, key: str, value: Any, ttl_seconds: int | None, now: datetime) -> NewEvent:
    expires_at = now + timedelta(seconds=ttl_seconds) if ttl_seconds is not None else None
    record = MemorySet(user_id=user_id, key=key, value=value, expires_at=expires_at)
    return NewEvent(type=SET, data=msgspec.to_builtins(record))


def deleted_event(user_id: str, key: str) -> NewEvent:
    return NewEvent(type=DELETED, data=msgspec.to_builtins(MemoryDeleted(user_id=user_id, key=key)))


def is_live(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or now < expires_at


class MemoryProjection:
    """memory.set upserts the user's key; memory.deleted removes it."""

    name = "memory"
    handles = frozenset({SET, DELETED})
    collections = frozenset({COLLECTION})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        if event.type == SET:
            record = msgspec.convert(event.data, MemorySet)
            data = {"value": record.value, "expires_at": msgspec.to_builtins(record.expires_at)}
            key = doc_key(record.user_id, record.key)
            return [Upsert(collection=COLLECTION, key=key, data=data, position=event.position)]
        deleted = msgspec.convert(event.data, MemoryDeleted)
        return [
            Delete(collection=COLLECTION, key=doc_key(deleted.user_id, deleted.key), position=event.position)
        ]
