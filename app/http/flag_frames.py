"""The frames of `/v1/flags/stream`: each flag change of the log, evaluated for its follower.

The follower machinery (`app.http.follow`, `app.http.fanout`) reads the partition's log and picks
the flag events; this frames each one for the follower's own context, from the event alone (a
`flag.changed` holds the whole definition), so a frame never waits for a view.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from app.http.fanout import Framing
from domain.context import RequestContext
from domain.events import EncodedEvent
from domain.flag_evaluation import NOT_FOUND, Caller, StoredFlag, evaluate
from domain.flags import DELETED

log = logging.getLogger(f"spine.{__name__}")


class _Stored(msgspec.Struct):
    """What a frame needs of a stored event's JSON; everything else is skipped."""

    type: str
    version: int
    data: dict[str, Any]


class _Frame(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    value: Any
    reason: str
    version: int
    deleted: bool
    rule: int | None = None


_decoder = msgspec.json.Decoder(_Stored)
_encoder = msgspec.json.Encoder()


def caller_of(ctx: RequestContext) -> Caller:
    return Caller(env=ctx.env, surface_id=ctx.surface_id, app_id=ctx.app_id, user_id=ctx.user_id)


def flag_frame(caller: Caller) -> Framing:
    """Frames for one follower: `event: flag.changed` (or `flag.deleted`) with the flag's value
    for `caller`; a stored event that does not read as a flag change is logged and skipped."""

    def frame(event: EncodedEvent) -> bytes:
        position, _, body = event
        try:
            stored = _decoder.decode(body)
            key = str(stored.data["key"])
            if stored.type == DELETED:
                found = NOT_FOUND
            else:
                found = evaluate(key, msgspec.convert(stored.data, StoredFlag), caller)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
            log.warning("a flag event that does not read as one is skipped", extra={"position": position})
            return b""
        deleted = stored.type == DELETED
        data = _Frame(key=key, value=found.value, reason=found.reason, version=stored.version,
                      deleted=deleted, rule=found.rule)  # fmt: skip
        name = b"flag.deleted" if deleted else b"flag.changed"
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (position, name, _encoder.encode(data))

    return frame
