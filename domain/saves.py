"""Saves: flows, graphs and overlays of a project, every change a new version, history kept.

A save is one stream, `save:{flow|graph|overlay}:{id}`, and its version is the stream's version:
creating expects `no_stream`, an update or delete with `expected_version` (or `If-Match`) is a
compare-and-set decided by the append, never against a lagging view. Deleting appends a tombstone
version; its history stays readable, and a later update writes a new live version (like a
versioned object store, the tombstone is history, not the end of the id).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from domain.errors import SaveConflict, SaveNotFound
from domain.events import Event, NewEvent
from domain.identifiers import DOCUMENT_ID_PATTERN
from domain.views import Delete, Upsert, ViewOp

KINDS: Final[dict[str, str]] = {"flows": "flow", "graphs": "graph", "overlays": "overlay"}  # → stream
# as blackboard names, shorter: `save:overlay:{id}` stays a valid stream name (256 characters)
ID_PATTERN = DOCUMENT_ID_PATTERN
SaveId = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, description="a UUIDv7 when omitted")]
SaveName = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]

CREATED, UPDATED, DELETED = "save.created", "save.updated", "save.deleted"
LATEST, LIVE, VERSIONS = "saves.latest", "saves.live", "saves.versions"
Change = Literal["created", "updated", "deleted"]
_CHANGES: Final[dict[str, Change]] = {CREATED: "created", UPDATED: "updated", DELETED: "deleted"}


class SaveWritten(msgspec.Struct, frozen=True, kw_only=True):
    """A version of a save: `body` is null in a tombstone (`save.deleted`), which keeps the name."""

    kind: str
    id: str
    name: str
    body: Any = None


def stream_of(kind: str, save_id: str) -> str:
    return f"save:{KINDS[kind]}:{save_id}"


def kind_prefix(kind: str) -> str:
    """Ids never contain '|': `flows|` lists every flow, by id, and nothing else."""
    return f"{kind}|"


def latest_key(kind: str, save_id: str) -> str:
    return f"{kind_prefix(kind)}{save_id}"


def versions_prefix(kind: str, save_id: str) -> str:
    """The id is length-prefixed: no save's prefix is the start of another's (`a` and `a:1`)."""
    return f"{kind_prefix(kind)}{len(save_id)}:{save_id}:"


def version_key(kind: str, save_id: str, version: int) -> str:
    return f"{versions_prefix(kind, save_id)}{version:012d}"


def created_event(kind: str, save_id: str, name: str, body: Any) -> NewEvent:
    return _event(CREATED, SaveWritten(kind=kind, id=save_id, name=name, body=body))


def decide_update(
    kind: str, save_id: str, name: str, body: Any, last: Event | None, precondition: int | None
) -> NewEvent:
    """A new version of a save that exists (a deleted one comes back to life with it).

    Raises `SaveNotFound` for an id never created, `SaveConflict` when `precondition` (the version
    the writer read) is not the save's version.
    """
    _existing(kind, save_id, last, precondition)
    return _event(UPDATED, SaveWritten(kind=kind, id=save_id, name=name, body=body))


def decide_delete(kind: str, save_id: str, last: Event | None, precondition: int | None) -> NewEvent:
    """A tombstone version, or `SaveNotFound` when there is no live save to delete."""
    current = _existing(kind, save_id, last, precondition)
    if current.type == DELETED:
        raise SaveNotFound(kind, save_id, deleted=True, version=current.version)
    written = msgspec.convert(current.data, SaveWritten)
    return _event(DELETED, SaveWritten(kind=kind, id=save_id, name=written.name))


def _existing(kind: str, save_id: str, last: Event | None, precondition: int | None) -> Event:
    if last is None:
        raise SaveNotFound(kind, save_id)
    if precondition is not None and precondition != last.version:
        raise SaveConflict(stream_of(kind, save_id), precondition, last.version)
    return last


def _event(event_type: str, written: SaveWritten) -> NewEvent:
    return NewEvent(type=event_type, data=msgspec.to_builtins(written))


class SavesProjection:
    """Per version: the save's latest document, its entry in the live list, its history document.

    Every document is the event's own version of the save, so no op reads another document. A
    tombstone replaces the latest document (GET answers 404 naming the deleted version) and removes
    the save from the live list; its history documents stay.
    """

    name = "saves"
    handles = frozenset(_CHANGES)
    collections = frozenset({LATEST, LIVE, VERSIONS})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        written = msgspec.convert(event.data, SaveWritten)
        deleted = event.type == DELETED
        summary = {
            "kind": written.kind,
            "id": written.id,
            "name": written.name,
            "version": event.version,
            "deleted": deleted,
            "updated_at": msgspec.to_builtins(event.recorded_at),
            "updated_by": event.meta.user_id,
            "position": event.position,
        }
        latest = {**summary, "body": written.body}
        history = {**latest, "change": _CHANGES[event.type]}
        key, position = latest_key(written.kind, written.id), event.position
        listed: ViewOp = (
            Delete(collection=LIVE, key=key, position=position)
            if deleted
            else Upsert(collection=LIVE, key=key, data=summary, position=position)
        )
        return [
            Upsert(collection=LATEST, key=key, data=latest, position=position),
            listed,
            Upsert(
                collection=VERSIONS,
                key=version_key(written.kind, written.id, event.version),
                data=history,
                position=position,
            ),
        ]
