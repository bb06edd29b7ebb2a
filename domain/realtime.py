"""The realtime registry: threads and canvases, who owns each, who is in it, where it began, and
the messages posted in it.

A thread and a canvas are one aggregate with a `kind`; each is one stream of the project's
partition, `thread:{id}` or `canvas:{id}`, holding two sorts of events:

- registry events, `{kind}.created`, `.retitled`, `.members_added`, `.members_removed`,
  `.owner_transferred`, `.archived`: each carries the whole registry entry as it stands after it
  (`Registered`), and what it changed, so one event is all a decision or the projection needs;
- messages, `{kind}.message_posted` (a canvas's operations are its messages: one route, one name),
  each carrying `registry_version`, the version of the registry event in force when it was posted.

So the registry's state is read from the log in at most two reads: the stream's last event, and,
when that is a message, the registry event it points to. Decisions are made on that state, never
on the view (which may lag), and every registry change is checked against its owner: only the
owner changes the registry; a tenant admin may transfer the ownership of a thread (one whose owner
left, say), and that transfer records `authority: "tenant_admin"`. The registry's own version (the
ETag, what `If-Match` names) is the version of its last registry event: messages posted in between
never make an owner's change conflict.

Stored events are read back leniently (`Registered`, `Posted` check nothing): rules tightened
later never stop the projection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Final, Literal, NamedTuple

import msgspec

from domain.errors import (
    InvalidCursor,
    NotThreadMember,
    NotThreadOwner,
    OwnerNotRemovable,
    ThreadArchived,
    ThreadNotFound,
    TooManyMembers,
)
from domain.events import Event, EventId, NewEvent
from domain.identifiers import DOCUMENT_ID_PATTERN, IDENTIFIER_PATTERN, matches
from domain.pages import Title as Title  # one rule for a one-line title
from domain.views import Delete, Upsert, ViewOp

Kind = Literal["thread", "canvas"]
KINDS: Final[tuple[Kind, ...]] = ("thread", "canvas")
CREATED, RETITLED, MEMBERS_ADDED, MEMBERS_REMOVED, OWNER_TRANSFERRED, ARCHIVED = (
    "created", "retitled", "members_added", "members_removed", "owner_transferred", "archived",
)  # fmt: skip
MESSAGE_POSTED: Final = "message_posted"
_CHANGES: Final = (CREATED, RETITLED, MEMBERS_ADDED, MEMBERS_REMOVED, OWNER_TRANSFERRED, ARCHIVED)
REGISTRY_TYPES: Final = frozenset(f"{kind}.{change}" for kind in KINDS for change in _CHANGES)
MESSAGE_TYPES: Final = frozenset(f"{kind}.{MESSAGE_POSTED}" for kind in KINDS)
Authority = Literal["owner", "tenant_admin"]

REGISTRY: Final = "realtime"  # one entry per thread or canvas: `{kind}:{id}`
BY_MEMBER: Final = "realtime.by_member"  # the entry again under each member, for their listing

MAX_MEMBERS: Final = 256  # every registry change rewrites the entry under each member
MAX_MESSAGE_BYTES: Final = 64 * 1024  # content and metadata as JSON

ThreadId = Annotated[
    str, msgspec.Meta(pattern=DOCUMENT_ID_PATTERN, description="client-chosen, else a UUIDv7")
]
UserId = Annotated[str, msgspec.Meta(pattern=IDENTIFIER_PATTERN, description="a user id of the tenant")]
Members = Annotated[list[UserId], msgspec.Meta(max_length=MAX_MEMBERS, description="user ids")]


class NewThread(msgspec.Struct, frozen=True, kw_only=True):
    """A thread or canvas as its creator (its owner, from the token) asks for it."""

    id: ThreadId | None = None
    title: Title | None = None
    members: Members = msgspec.field(default_factory=list)  # the owner is a member whether named or not


class Patch(msgspec.Struct, frozen=True, kw_only=True):
    """Registry changes, applied in this order as one atomic append, each its own event: the
    title, members added (with the new owner when not a member yet), the owner, members removed,
    archived. A change that changes nothing (a member added twice) makes no event."""

    title: Title | None = None
    owner: UserId | None = None
    add_members: Members | None = None
    remove_members: Members | None = None
    archived: Literal[True] | None = None  # archiving is for good: there is no un-archive

    def __post_init__(self) -> None:
        check_patch(self)  # a ValueError is a 422 naming what is wrong

    @property
    def transfers_only(self) -> bool:
        """Whether the ownership is all it changes (what a tenant admin may do)."""
        rest = (self.title, self.add_members, self.remove_members, self.archived)
        return self.owner is not None and all(value is None for value in rest)


def check_patch(patch: Patch) -> None:
    """A patch changes something, and never adds and removes one member at once."""
    fields = (patch.title, patch.owner, patch.add_members, patch.remove_members, patch.archived)
    if all(value is None for value in fields):
        raise ValueError("nothing to change: send title, owner, add_members, remove_members or archived")
    both = set(patch.add_members or ()) & set(patch.remove_members or ())
    if both:
        raise ValueError(f"add_members and remove_members both name {sorted(both)}")


class NewMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message (a canvas's operation) as a member posts it; `id` makes a retry answer the original."""

    content: Any
    metadata: dict[str, Any] | None = None
    id: EventId | None = None

    def __post_init__(self) -> None:
        check_message(self.content, self.metadata)


def check_message(content: Any, metadata: Any) -> None:
    """Content is any JSON but null; content and metadata at most `MAX_MESSAGE_BYTES` as JSON."""
    if content is None:
        raise ValueError("content: a message has content (any JSON value but null)")
    size = len(msgspec.json.encode(content)) + len(msgspec.json.encode(metadata))
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"content: {size} bytes as JSON with metadata, more than {MAX_MESSAGE_BYTES}")


class Registered(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The data of every registry event, read back leniently: the entry after the event
    (no `created_at` on `created`, whose own time it is), and what the event changed (fields
    left at their defaults are not stored)."""

    kind: str
    id: str
    owner: str
    title: str | None = None
    members: list[str] = msgspec.field(default_factory=list)
    surface_id: str = ""
    created_by: str | None = None
    created_at: str | None = None
    archived: bool = False
    added: list[str] | None = None
    removed: list[str] | None = None
    previous_owner: str | None = None
    previous_title: str | None = None
    authority: str | None = None


class Posted(msgspec.Struct, frozen=True, kw_only=True):
    """The data of a message, read back leniently."""

    content: Any = None
    metadata: Any = None
    registry_version: int = 0


class ThreadState(NamedTuple):
    """A thread's registry entry as the log leaves it; `version` is its last registry event's."""

    kind: str
    id: str
    title: str | None
    owner: str
    members: tuple[str, ...]  # sorted
    surface_id: str
    created_by: str | None
    created_at: str
    archived: bool
    version: int


def stream_of(kind: str, ident: str) -> str:
    """An id has no `/` and starts as a name does: `thread:{id}` is a stream name of its own."""
    return f"{kind}:{ident}"


def registry_key(kind: str, ident: str) -> str:
    return f"{kind}:{ident}"


def member_prefix(kind: str, user: str) -> str:
    """User ids may contain `:`, so the user is length-prefixed: no other user's keys start so."""
    return f"{kind}:{len(user)}:{user}:"


def member_key(kind: str, user: str, archived: bool, surface: str, ident: str) -> str:
    """Live entries (`0`) before archived ones (`1`), then grouped by surface (length-prefixed:
    shorter ids first) and by id within one: `?archived=` and `?surface=` are each a narrower prefix."""
    return f"{member_prefix(kind, user)}{listing_suffix(archived, surface, ident)}"


def listing_suffix(archived: bool, surface: str, ident: str) -> str:
    """What follows a member's prefix in an entry's key: the listing's cursor is exactly this."""
    return f"{archived_part(archived)}{surface_part(surface)}{ident}"


def surface_part(surface: str) -> str:
    return f"{len(surface)}:{surface}:"


def archived_part(archived: bool) -> str:
    return "1:" if archived else "0:"


class Cursor(NamedTuple):
    """Where a member's listing goes on: after the entry (archived, surface, id)."""

    archived: bool
    surface: str
    ident: str


def parse_cursor(raw: str) -> Cursor:
    """A listing's `next` (`listing_suffix` of its last entry); anything else is `InvalidCursor`."""
    flag, _, rest = raw.partition(":")
    length, _, rest = rest.partition(":")
    if flag in ("0", "1") and length.isascii() and length.isdigit() and len(length) <= 3:
        surface, ident = rest[: int(length)], rest[int(length) + 1 :]
        if (
            rest[int(length) : int(length) + 1] == ":"
            and matches(surface)
            and matches(ident, DOCUMENT_ID_PATTERN)
        ):
            return Cursor(flag == "1", surface, ident)
    raise InvalidCursor(f"after must be a `next` a listing answered, got {raw[:60]!r}")


def state_of(event: Event) -> ThreadState:
    """The registry entry after `event`, a registry event."""
    record = msgspec.convert(event.data, Registered)
    created_at = record.created_at or msgspec.to_builtins(event.recorded_at)
    return ThreadState(
        kind=record.kind, id=record.id, title=record.title, owner=record.owner,
        members=tuple(sorted(set(record.members))), surface_id=record.surface_id,
        created_by=record.created_by, created_at=created_at, archived=record.archived,
        version=event.version,
    )  # fmt: skip


def registry_version_of(last: Event) -> int:
    """The version of the registry event in force at `last`, a stream's last event (0: none)."""
    if last.type in REGISTRY_TYPES:
        return last.version
    return msgspec.convert(last.data, Posted).registry_version


def decide_create(kind: Kind, ident: str, new: NewThread, *, owner: str, surface_id: str) -> NewEvent:
    """The `created` event: the caller owns it, and is one of its members."""
    members = _distinct([owner, *new.members])
    if len(members) > MAX_MEMBERS:
        raise TooManyMembers(kind, ident, MAX_MEMBERS)
    record = Registered(
        kind=kind, id=ident, owner=owner, title=new.title, members=sorted(members), surface_id=surface_id,
        created_by=owner,
    )  # fmt: skip
    return NewEvent(type=f"{kind}.{CREATED}", data=_data(record))


def authorize(
    state: ThreadState | None, kind: str, ident: str, caller: str, *, admin: bool, patch: Patch
) -> Authority:
    """Who may make `patch`: the owner; a tenant admin only to transfer the ownership.

    Raises `ThreadNotFound` for a thread never created, `NotThreadOwner` for anyone else.
    """
    if state is None:
        raise ThreadNotFound(kind, ident)
    if caller == state.owner:
        return "owner"
    if admin and patch.transfers_only:
        return "tenant_admin"
    raise NotThreadOwner(kind, ident)


def decide_changes(state: ThreadState, patch: Patch, authority: Authority) -> list[NewEvent]:
    """The events of `patch` on `state`, in order, each carrying the entry as it leaves it; none
    when it changes nothing.

    Raises `ThreadArchived` for an archived thread, `OwnerNotRemovable` when the owner (after the
    transfer, if any) is among the members removed, `TooManyMembers` past `MAX_MEMBERS`.
    """
    kind, ident = state.kind, state.id
    if state.archived:
        raise ThreadArchived(kind, ident)
    owner = patch.owner or state.owner
    if owner in (patch.remove_members or ()):
        raise OwnerNotRemovable(kind, ident, owner)
    entry = Registered(
        kind=kind, id=ident, owner=state.owner, title=state.title, members=list(state.members),
        surface_id=state.surface_id, created_by=state.created_by, created_at=state.created_at,
    )  # fmt: skip
    events: list[NewEvent] = []

    def change(name: str, after: dict[str, Any], **changed: Any) -> None:
        """One event: the entry as `after` leaves it, with what it changed beside it."""
        nonlocal entry
        entry = msgspec.structs.replace(entry, **after)
        record = msgspec.structs.replace(entry, **changed)
        events.append(NewEvent(type=f"{kind}.{name}", data=_data(record)))

    if patch.title is not None and patch.title != entry.title:
        change(RETITLED, {"title": patch.title}, previous_title=entry.title)
    adding = [user for user in _distinct([*(patch.add_members or ()), owner]) if user not in entry.members]
    if adding:
        if len(entry.members) + len(adding) > MAX_MEMBERS:
            raise TooManyMembers(kind, ident, MAX_MEMBERS)
        change(MEMBERS_ADDED, {"members": sorted([*entry.members, *adding])}, added=adding)
    if owner != entry.owner:
        change(OWNER_TRANSFERRED, {"owner": owner}, previous_owner=entry.owner, authority=authority)
    removing = [user for user in _distinct(patch.remove_members or ()) if user in entry.members]
    if removing:
        kept = [member for member in entry.members if member not in removing]
        change(MEMBERS_REMOVED, {"members": kept}, removed=removing)
    if patch.archived:
        change(ARCHIVED, {"archived": True})
    return events


def check_reader(state_members: Iterable[str], kind: str, ident: str, caller: str, *, admin: bool) -> None:
    """Members read a thread's entry; so do tenant admins (to find one whose owner left)."""
    if not admin and caller not in state_members:
        raise NotThreadMember(kind, ident)


def check_member(state: ThreadState | None, kind: str, ident: str, caller: str) -> ThreadState:
    """The thread, when `caller` is one of its members (its messages are theirs only)."""
    if state is None:
        raise ThreadNotFound(kind, ident)
    if caller not in state.members:
        raise NotThreadMember(kind, ident)
    return state


def decide_message(
    state: ThreadState | None, kind: str, ident: str, caller: str, message: NewMessage, event_id: str
) -> NewEvent:
    """The message as an event of the thread's stream, pointing to the registry entry in force.

    Raises `ThreadNotFound`, `NotThreadMember` (the caller is not a member), `ThreadArchived`.
    """
    found = check_member(state, kind, ident, caller)
    if found.archived:
        raise ThreadArchived(kind, ident)
    posted = Posted(content=message.content, metadata=message.metadata, registry_version=found.version)
    data: dict[str, Any] = msgspec.to_builtins(posted)
    return NewEvent(type=f"{kind}.{MESSAGE_POSTED}", data=data, id=event_id)


def _distinct(users: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(users))


def _data(record: Registered) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(record)
    return data


class RealtimeProjection:
    """Per registry event: the entry (`realtime`, by kind and id), and the same entry under each
    of its members (`realtime.by_member`), live or archived; a member removed, or an entry moved
    by archiving, leaves a tombstone at its old key. Each op is the event's own: none reads
    another document. Messages are not projected: they are read from the log."""

    name = "realtime"
    handles = REGISTRY_TYPES
    collections = frozenset({REGISTRY, BY_MEMBER})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        record = msgspec.convert(event.data, Registered)
        state = state_of(event)
        kind, ident, surface = state.kind, state.id, state.surface_id
        at = msgspec.to_builtins(event.recorded_at)
        entry = {
            "kind": kind, "id": ident, "title": state.title, "owner": state.owner,
            "members": list(state.members), "surface_id": surface, "created_at": state.created_at,
            "created_by": state.created_by, "archived": state.archived,
            "archived_at": at if event.type.endswith(f".{ARCHIVED}") else None,
            "version": event.version, "change": event.type, "position": event.position,
            "updated_at": at, "updated_by": event.meta.user_id,
        }  # fmt: skip
        position = event.position
        ops: list[ViewOp] = [
            Upsert(collection=REGISTRY, key=registry_key(kind, ident), data=entry, position=position)
        ]
        for member in state.members:
            key = member_key(kind, member, state.archived, surface, ident)
            ops.append(Upsert(collection=BY_MEMBER, key=key, data=entry, position=position))
        gone = [(user, state.archived) for user in record.removed or ()]
        if state.archived:
            gone += [(member, False) for member in state.members]
        for user, archived in gone:
            key = member_key(kind, user, archived, surface, ident)
            ops.append(Delete(collection=BY_MEMBER, key=key, position=position))
        return ops
