"""Personal data in events: which fields hold it, and the sealed form they are stored in.

Fields declared here are stored encrypted under a data key of the event's subject, the user of
its meta (the token's user: memory and session data name the same one). An event without a
user is stored as it came. Destroying the user's key (crypto-shredding) erases every such field
of every event and view at once, without rewriting the log: what is left of a sealed field
without its key reads as `ERASED`.

A sealed field is one JSON object in place of the value:

    {"$sealed": "v1", "key": "<key id>", "nonce": "<b64>", "data": "<b64 ciphertext>"}

The cipher (AES-GCM, in `adapters.data_keys`) binds it, as associated data, to the tenant, the
user, the event type and the field: a sealed value moved to another user or field does not open.
This module stays pure: sealing and opening take the cipher as a function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import msgspec

from domain.analytics import RECORDED as ANALYTICS_RECORDED
from domain.memory import SET as MEMORY_SET
from domain.sessions import MESSAGE_ADDED as SESSION_MESSAGE

PERSONAL_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    MEMORY_SET: ("value",),
    SESSION_MESSAGE: ("content",),
    ANALYTICS_RECORDED: ("properties",),
}
"""Per event type, the top-level `data` fields that hold personal data."""

ERASED: Final = "[erased]"
"""What a sealed field reads as once its user's key is destroyed."""
UNREADABLE: Final = "[unreadable]"
"""What a sealed field reads as when its key exists but it does not open (altered, or moved)."""
SEALED_TAG: Final = "$sealed"
SEALED_VERSION: Final = "v1"


class Sealed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A personal field as stored: its value's JSON encrypted under the data key `key`. `nonce` and
    `data` are bytes, which msgspec writes and reads as base64 (in C: it is on every read)."""

    version: Literal["v1"] = msgspec.field(name=SEALED_TAG, default=SEALED_VERSION)
    key: str
    nonce: bytes
    data: bytes


class Subject(msgspec.Struct, frozen=True, kw_only=True):
    """Whose personal data a sealed field is, and where it sits: the associated data of its seal."""

    tenant_id: str
    user_id: str
    event_type: str
    field: str

    def associated_data(self) -> bytes:
        """Unambiguous (a JSON array), so no two subjects share it."""
        return msgspec.json.encode(
            [SEALED_VERSION, self.tenant_id, self.user_id, self.event_type, self.field]
        )


Seal = Callable[[Subject, Any], Sealed]
"""Encrypts a value (its JSON) for a subject."""
Open = Callable[[Subject, Sealed], Any]
"""Decrypts a sealed value of a subject; answers `ERASED` or `UNREADABLE` when it cannot."""


def personal_fields(event_type: str) -> tuple[str, ...]:
    return PERSONAL_FIELDS.get(event_type, ())


def sealed_of(value: Any) -> Sealed | None:
    """`value` as a sealed field, or None when it is a plain value."""
    if not isinstance(value, dict) or SEALED_TAG not in value:
        return None
    try:
        return msgspec.convert(value, Sealed)
    except msgspec.ValidationError:
        return None  # a client's own value that merely looks sealed: it was sealed as it came


def seal_fields(
    data: dict[str, Any], *, tenant_id: str, user_id: str | None, event_type: str, seal: Seal
) -> dict[str, Any]:
    """`data` with its personal fields sealed; as it is when the event has no user or no such
    field (a null field stays null: it holds nothing)."""
    fields = personal_fields(event_type)
    if user_id is None or not any(data.get(field) is not None for field in fields):
        return data
    sealed = dict(data)
    for field in fields:
        if data.get(field) is not None:
            subject = Subject(tenant_id=tenant_id, user_id=user_id, event_type=event_type, field=field)
            sealed[field] = msgspec.to_builtins(seal(subject, data[field]))
    return sealed


def open_fields(
    data: dict[str, Any], *, tenant_id: str, user_id: str | None, event_type: str, open_: Open
) -> dict[str, Any]:
    """`data` with its sealed fields opened (`ERASED`/`UNREADABLE` where they cannot be)."""
    opened: dict[str, Any] | None = None
    for field in personal_fields(event_type):
        value = open_value(
            data.get(field),
            tenant_id=tenant_id,
            user_id=user_id,
            event_type=event_type,
            field=field,
            open_=open_,
        )
        if value is not data.get(field):
            opened = opened if opened is not None else dict(data)
            opened[field] = value
    return data if opened is None else opened


def open_value(
    value: Any, *, tenant_id: str, user_id: str | None, event_type: str, field: str, open_: Open
) -> Any:
    """One field's value opened; a plain value (written before sealing, or without a user) as it is."""
    sealed = sealed_of(value)
    if sealed is None:
        return value
    if user_id is None:
        return UNREADABLE  # sealed, yet nobody's: not a seal this service made
    return open_(Subject(tenant_id=tenant_id, user_id=user_id, event_type=event_type, field=field), sealed)
