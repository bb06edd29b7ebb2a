"""Objects: bytes by key, shared by the members of a project like its blackboards, every change
an event of the partition's log.

The bytes live in the `object_store` route's backend (S3, Azure Blob, a lab directory) under a
blob name made fresh for each upload (`blob_name`), never the key: bytes are written first and
the event is appended after, so the index never points at half-written bytes, a replaced object's
bytes stay readable until the event that replaces them lands, and an upload cut short leaves
neither event nor blob. Each key is one stream, `object:{key}` spelled into the stream alphabet
(`stream_of`), with two event types:

- `object.stored`: the object now holds the blob named (its size, content type and SHA-256, who
  stored it and how: `direct` through Spine, or `signed` by a browser straight to the backend).
  It names the blob it replaced, so the use case deletes that one once the event is in the log.
- `object.deleted`: the object is gone (a tombstone version); its blob is deleted after.

The index (`ObjectsProjection`) is a view of these events: one document per live key, in key
order for listings, and one usage document per partition (bytes and objects stored), which
quotas read. Stored events are read back as the lenient structs below, which check nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Final, Literal

import msgspec

from domain.errors import InvalidRequest, ObjectNotFound, PreconditionFailed
from domain.events import Event, NewEvent
from domain.ids import new_event_id
from domain.partition import Partition
from domain.views import Delete, Upsert, ViewDoc, ViewOp

STORED: Final = "object.stored"
DELETED: Final = "object.deleted"
OBJECTS: Final = "objects"  # one document per live key, by key: what a listing reads
USAGE: Final = "objects.usage"  # one document per partition: what its live objects hold
USAGE_KEY: Final = "total"
STREAM_PREFIX: Final = "object:"
MAX_STREAM: Final = 256  # the stream pattern's length (`domain.identifiers.NAME_PATTERN`)
MAX_KEY: Final = MAX_STREAM - len(STREAM_PREFIX)  # in stream characters: see `stream_of`
MAX_PREFIX: Final = 1024  # a listing's prefix: what no key can start with finds nothing
MAX_CONTENT_TYPE: Final = 255
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
Via = Literal["direct", "signed"]

# Kept as they are in a stream name; `/` is spelled `~`, and every other character `=XX` per
# UTF-8 byte, so the spelling is one to one and stays in the stream alphabet.
_PLAIN: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@+-")
_TCHARS: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CONTENT_TYPE: Final = re.compile(
    rf'^{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*{_TCHARS}=(?:{_TCHARS}|"[^"\\\x00-\x1f\x7f]*"))*$(?!\n)'
)
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Names of the uploads Spine completes for a browser: the same upload id makes the same event id,
# so a completion sent twice appends once (`domain.append`: ids are idempotency keys).
_UPLOADS: Final = uuid.UUID("5f1b7d1e-6c1a-4f0e-9a39-3c2f1a0b7e51")

KEY_RULE: Final = (
    "an object key: segments separated by '/', none empty, '.' or '..', no control character, "
    f"at most {MAX_KEY} characters once spelled in its stream name (a character other than a letter, "
    "a digit, '_', '.', ':', '@', '+', '-' or '/' takes three per UTF-8 byte)"
)


def stream_of(key: str) -> str:
    """`object:{key}`, spelled in the stream alphabet: `media/2026/a.png` is
    `object:media~2026~a.png`, `é` is `=C3=A9`."""
    spelled = []
    for char in key:
        if char in _PLAIN:
            spelled.append(char)
        elif char == "/":
            spelled.append("~")
        else:
            spelled.extend(f"={byte:02X}" for byte in char.encode())
    return STREAM_PREFIX + "".join(spelled)


def check_key(key: str) -> str:
    """`key` when it is an object key (`KEY_RULE`); `InvalidRequest` (422) saying why not."""
    if not key:
        raise InvalidRequest("an object key is required")
    if _control(key):
        raise InvalidRequest(f"an object key holds no control character: {KEY_RULE}")
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise InvalidRequest(f"no segment of an object key is empty, '.' or '..': {KEY_RULE}")
    if len(stream_of(key)) > MAX_STREAM:
        raise InvalidRequest(f"the object key is too long: {KEY_RULE}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing's `prefix`: the start of some key, or nothing."""
    if len(prefix) > MAX_PREFIX or _control(prefix):
        raise InvalidRequest(f"a prefix holds no control character and at most {MAX_PREFIX} characters")
    return prefix


def check_content_type(sent: str | None) -> str:
    """The media type an object is stored with: the one sent (`type/subtype;param=value`), else
    `application/octet-stream`. It is sent back as `Content-Type`, so nothing else is accepted."""
    if sent is None or not sent.strip():
        return DEFAULT_CONTENT_TYPE
    value = sent.strip()
    if len(value) > MAX_CONTENT_TYPE or not _CONTENT_TYPE.match(value):
        raise InvalidRequest(f"Content-Type must be a media type such as image/png, got {value[:60]!r}")
    return value


def _control(text: str) -> bool:
    """Whether `text` holds a control character (C0, DEL, C1) or a lone surrogate."""
    return _CONTROL.search(text) is not None


def blob_name(partition: Partition) -> str:
    """A blob name nobody used: the partition's, then a UUIDv7 (blobs sort by upload time)."""
    return f"{partition.tenant_id}/{partition.env}/{partition.project_id}/{new_event_id()}"


def upload_event_id(blob: str) -> str:
    """The id of the `object.stored` event that completes an upload to `blob`."""
    return str(uuid.uuid5(_UPLOADS, blob))


class ObjectStored(msgspec.Struct, frozen=True, kw_only=True):
    """The data of `object.stored`."""

    key: str
    blob: str
    size: int
    content_type: str
    sha256: str
    user_id: str | None = None
    via: Via = "direct"
    replaced_blob: str | None = None  # the blob of the version it replaced, deleted once this lands
    replaced_size: int = 0


class ObjectDeleted(msgspec.Struct, frozen=True, kw_only=True):
    """The data of `object.deleted`: the blob (and its size) the object held."""

    key: str
    blob: str
    size: int
    user_id: str | None = None


def is_live(last: Event | None) -> bool:
    """Whether a stream ending with `last` holds an object (a tombstone does not)."""
    return last is not None and last.type == STORED


def current(last: Event | None) -> ObjectStored | None:
    """The object a stream ending with `last` holds, if any."""
    return msgspec.convert(last.data, ObjectStored) if last is not None and is_live(last) else None


def decide_store(
    stored: ObjectStored, last: Event | None, *, create_only: bool = False, event_id: str | None = None
) -> NewEvent:
    """`object.stored` for the key's stream ending with `last`, naming what it replaces;
    `PreconditionFailed` (412) when `create_only` (`If-None-Match: *`) and the object exists."""
    held = current(last)
    if create_only and held is not None:
        raise PreconditionFailed(f"If-None-Match: * and object {stored.key!r} exists")
    record = msgspec.structs.replace(
        stored,
        replaced_blob=None if held is None else held.blob,
        replaced_size=0 if held is None else held.size,
    )
    return NewEvent(type=STORED, data=msgspec.to_builtins(record), id=event_id or new_event_id())


def decide_delete(key: str, last: Event | None, user_id: str | None) -> NewEvent:
    """`object.deleted` of a live object; `ObjectNotFound` when there is none."""
    held = current(last)
    if held is None:
        raise ObjectNotFound(key, version=None if last is None else last.version)
    deleted = ObjectDeleted(key=key, blob=held.blob, size=held.size, user_id=user_id)
    return NewEvent(type=DELETED, data=msgspec.to_builtins(deleted))


class ObjectsProjection:
    """The object index: per `object.stored` the key's document (upserted), per `object.deleted`
    its removal, and each folded into the partition's usage (bytes and objects the index holds).

    The usage is a fold (`domain.ports.FoldingProjection`): an event adds its size less the size
    of what it replaced, which the event itself names, so the fold reads the usage document only
    and is exact whatever order the key documents land in.
    """

    name = "objects"
    handles = frozenset({STORED, DELETED})
    collections = frozenset({OBJECTS, USAGE})
    version = 1

    def reads(self, event: Event) -> list[tuple[str, str]]:
        return [(USAGE, USAGE_KEY)]

    def fold(self, event: Event, docs: Mapping[tuple[str, str], ViewDoc | None]) -> list[ViewOp]:
        position = event.position
        if event.type == STORED:
            record = msgspec.convert(event.data, ObjectStored)
            data = {
                "key": record.key,
                "size": record.size,
                "content_type": record.content_type,
                "sha256": record.sha256,
                "version": event.version,
                "position": position,
                "stored_at": msgspec.to_builtins(event.recorded_at),
                "stored_by": record.user_id,
                "via": record.via,
                "blob": record.blob,
            }
            ops: list[ViewOp] = [Upsert(collection=OBJECTS, key=record.key, data=data, position=position)]
            added, counted = record.size - record.replaced_size, 0 if record.replaced_blob else 1
        else:
            deleted = msgspec.convert(event.data, ObjectDeleted)
            ops = [Delete(collection=OBJECTS, key=deleted.key, position=position)]
            added, counted = -deleted.size, -1
        usage = docs.get((USAGE, USAGE_KEY))
        if usage is None or usage.position < position:  # else it counts this event already
            held = {"bytes": 0, "objects": 0} if usage is None else usage.data
            total = {
                "bytes": held["bytes"] + added,
                "objects": held["objects"] + counted,
                "position": position,
            }
            ops.append(Upsert(collection=USAGE, key=USAGE_KEY, data=total, position=position))
        return ops

    def apply(self, event: Event) -> list[ViewOp]:
        """The event's ops on a view that holds nothing yet (the runtime folds instead)."""
        return self.fold(event, {})
