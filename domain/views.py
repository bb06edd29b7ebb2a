"""Read views: documents a projection derives from the log, and the ops that change them.

Every document records the position of the event it reflects. An op whose event is not newer
than the document is skipped, so delivering an event twice changes nothing: with the checkpoint
written in the same batch, that makes projections effectively exactly-once. A delete leaves a
tombstone with its position, so an older upsert delivered again cannot bring the document back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

from domain.identifiers import VIEW_NAME_PATTERN

ViewName = Annotated[str, msgspec.Meta(pattern=VIEW_NAME_PATTERN)]


class ViewDoc(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    collection: str
    key: str
    position: int
    data: dict[str, Any]


class Upsert(msgspec.Struct, frozen=True, kw_only=True, tag="upsert"):
    """Replace the document at (collection, key) with `data`, as of the event at `position`."""

    collection: str
    key: str
    data: dict[str, Any]
    position: int


class Delete(msgspec.Struct, frozen=True, kw_only=True, tag="delete"):
    """Remove the document at (collection, key), as of the event at `position`."""

    collection: str
    key: str
    position: int


ViewOp = Upsert | Delete


class Generations(msgspec.Struct, frozen=True, kw_only=True):
    """Which generation of a projection's view serves reads, and which one a rebuild is building."""

    serving: int = 0
    building: int | None = None


def space_of(partition_key: str, projection: str, generation: int) -> str:
    """Where one generation of one projection of one partition keeps its documents and checkpoint."""
    return f"{partition_key}/{projection}/{generation}"


SNAPSHOT_META: Final = "spine.snapshot"  # the collection of a snapshot's meta document: no projection's
SNAPSHOT_META_KEY: Final = "meta"


class SnapshotMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What a snapshot of a view holds, written after its documents: without it, a snapshot is
    incomplete. `position` is the view's checkpoint when the copy began: every event up to it
    is in the documents (some may reflect later ones, which replaying after it leaves alone)."""

    projection_version: int
    position: int
    taken_at: datetime
    documents: int


def snapshot_space(partition_key: str, projection: str) -> str:
    """Where the snapshot of one projection of one partition keeps its copy of the view: a space
    beside the generations (which are numbered), in the view's own store."""
    return f"{partition_key}/{projection}/snapshot"
