"""The calls of the realtime registry: threads and canvases (`kind="canvas"`), their owner and
members, and the messages their members post.

Only the owner changes a thread (a tenant admin may transfer its ownership); `expected_version`
(the `version` a read answered) makes a change a compare-and-set (409
`realtime.version_conflict`). A message gets its id here, before the first try, so a retry is
answered with the original. Follow a thread live with `follow(stream=f"thread:{id}")` (a canvas:
`canvas:{id}`): its messages and registry changes are events of that stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from spine_client._calls import Call, call, min_position_header, new_event_id, present, segment
from spine_client.types import ExpectedVersion, MessagePosted, Thread, ThreadMessages, Threads, ThreadWritten

Kind = Literal["thread", "canvas"]
_PATHS = {"thread": "/v1/threads", "canvas": "/v1/canvases"}


def create_thread(
    *, id: str | None = None, title: str | None = None, members: Sequence[str] = (), kind: Kind = "thread"
) -> Call[ThreadWritten]:
    """A new thread (or canvas) owned by the caller; `id` defaults to a UUIDv7 the server makes.
    Never retried (409 `realtime.already_exists` would answer a retry of one that was made)."""
    sent = present(id=id, title=title, members=list(members) or None)
    return call("POST", _PATHS[kind], ThreadWritten, json=sent)


def get_thread(thread_id: str, *, kind: Kind = "thread", min_position: int | None = None) -> Call[Thread]:
    """The registry entry (members and tenant admins; 403 `realtime.not_member` for others)."""
    return call("GET", _path(kind, thread_id), Thread, headers=min_position_header(min_position))


def list_threads(
    *,
    kind: Kind = "thread",
    surface: str | None = None,
    archived: bool | None = None,
    after: str | None = None,
    limit: int = 100,
    min_position: int | None = None,
) -> Call[Threads]:
    """The caller's threads (or canvases), live first; `surface` and `archived` narrow them."""
    params = {"surface": surface, "archived": archived, "after": after, "limit": limit}
    return call("GET", _PATHS[kind], Threads, params=params, headers=min_position_header(min_position))


def update_thread(
    thread_id: str,
    *,
    title: str | None = None,
    owner: str | None = None,
    add_members: Sequence[str] = (),
    remove_members: Sequence[str] = (),
    archived: bool | None = None,
    expected_version: ExpectedVersion | None = None,
    kind: Kind = "thread",
) -> Call[ThreadWritten]:
    """Registry changes by the owner, in one atomic append; archiving (`archived=True`) is for good."""
    sent = present(
        title=title, owner=owner, add_members=list(add_members) or None,
        remove_members=list(remove_members) or None, archived=archived, expected_version=expected_version,
    )  # fmt: skip
    return call("PATCH", _path(kind, thread_id), ThreadWritten, json=sent)


def post_message(
    thread_id: str,
    content: Any,
    *,
    metadata: dict[str, Any] | None = None,
    id: str | None = None,
    kind: Kind = "thread",
) -> Call[MessagePosted]:
    """A message (members only), with an id made here when none is given: retried safely."""
    sent = {"content": content, "id": id or new_event_id(), **present(metadata=metadata)}
    return call("POST", f"{_path(kind, thread_id)}/messages", MessagePosted, json=sent, idempotent=True)


def list_messages(
    thread_id: str, *, after: int = 0, limit: int = 100, kind: Kind = "thread"
) -> Call[ThreadMessages]:
    """Messages after the version `after`, in order, from the log (members only)."""
    params = {"after": after, "limit": limit}
    return call("GET", f"{_path(kind, thread_id)}/messages", ThreadMessages, params=params)


def _path(kind: Kind, thread_id: str) -> str:
    return f"{_PATHS[kind]}/{segment(thread_id)}"
