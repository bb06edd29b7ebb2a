"""Sessions: ordered message lists per (tenant, env, project, user, session id).

A message's index is its stream version minus one, decided by the append on the session's own
stream, so two concurrent writers can never get the same index. The view keeps one document per
message, keyed so that a key-ordered listing is the conversation in order.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from domain.events import Event, NewEvent
from domain.identifiers import NAME_PATTERN
from domain.views import Upsert, ViewOp

COLLECTION = "sessions"
MESSAGE_ADDED = "session.message_added"
SESSION_PATTERN = NAME_PATTERN
Role = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z][a-z_-]{0,31}$", description="user, assistant, tool, system…")
]


class MessageAdded(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    session_id: str
    role: str
    content: Any
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


def stream_of(user_id: str, session_id: str) -> str:
    return f"session:{user_id}:{session_id}"


def session_prefix(user_id: str, session_id: str) -> str:
    """Both parts are length-prefixed, so no session's prefix is the start of another's."""
    return f"{len(user_id)}:{user_id}:{len(session_id)}:{session_id}:"


def message_key(user_id: str, session_id: str, index: int) -> str:
    return f"{session_prefix(user_id, session_id)}{index:012d}"


def message_event(
    user_id: str, session_id: str, role: str, content: Any, metadata: dict[str, Any]
) -> NewEvent:
    record = MessageAdded(
        user_id=user_id, session_id=session_id, role=role, content=content, metadata=metadata
    )
    return NewEvent(type=MESSAGE_ADDED, data=msgspec.to_builtins(record))


class SessionsProjection:
    """Each message becomes one document; its index is its version on the session stream."""

    name = "sessions"
    handles = frozenset({MESSAGE_ADDED})
    collections = frozenset({COLLECTION})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        message = msgspec.convert(event.data, MessageAdded)
        index = event.version - 1
        data = {
            "index": index,
            "role": message.role,
            "content": message.content,
            "metadata": message.metadata,
            "position": event.position,
            "recorded_at": msgspec.to_builtins(event.recorded_at),
        }
        key = message_key(message.user_id, message.session_id, index)
        return [Upsert(collection=COLLECTION, key=key, data=data, position=event.position)]
