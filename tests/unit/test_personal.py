"""Personal fields: which are sealed, how the seal binds them to their subject, and what a field
reads as without its key or when it was altered."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from adapters.data_keys import DataKey, SealBroken, new_key
from app.personal_spine import open_sealed
from domain.personal import (
    ERASED,
    UNREADABLE,
    Sealed,
    Subject,
    open_fields,
    seal_fields,
    sealed_of,
)

TENANT, USER = "t1", "u1"


def key() -> DataKey:
    return DataKey(*new_key())


def sealed(
    data: dict[str, Any], event_type: str, data_key: DataKey, user: str | None = USER
) -> dict[str, Any]:
    return seal_fields(data, tenant_id=TENANT, user_id=user, event_type=event_type, seal=data_key.seal)


def opened(
    data: dict[str, Any], event_type: str, keys: dict[tuple[str, str], DataKey | None]
) -> dict[str, Any]:
    return open_fields(data, tenant_id=TENANT, user_id=USER, event_type=event_type,
                       open_=lambda subject, value: open_sealed(keys, subject, value))  # fmt: skip


@pytest.mark.parametrize(
    ("event_type", "data", "field"),
    [
        ("memory.set", {"user_id": USER, "key": "k", "value": {"name": "Ada"}}, "value"),
        (
            "session.message_added",
            {"user_id": USER, "session_id": "s", "role": "user", "content": "hi"},
            "content",
        ),
        (
            "analytics.event_recorded",
            {"name": "n", "platform": "web", "at": "x", "properties": {"e": 1}},
            "properties",
        ),
    ],
)
def test_declared_fields_are_sealed_and_open_with_their_key(
    event_type: str, data: dict[str, Any], field: str
) -> None:
    data_key = key()
    stored = sealed(data, event_type, data_key)
    seal = sealed_of(stored[field])
    assert seal is not None
    assert seal.key == data_key.key_id
    assert {k: v for k, v in stored.items() if k != field} == {k: v for k, v in data.items() if k != field}
    assert msgspec.json.encode(data[field]) not in msgspec.json.encode(stored)
    assert opened(stored, event_type, {(USER, data_key.key_id): data_key}) == data
    assert opened(stored, event_type, {})[field] == ERASED  # the key destroyed


def test_what_is_not_personal_stays_as_it_is() -> None:
    data_key = key()
    assert sealed({"value": 1}, "blackboard.written", data_key) == {"value": 1}
    assert sealed({"value": 1}, "memory.set", data_key, user=None) == {"value": 1}  # nobody's
    assert sealed({"properties": None}, "analytics.event_recorded", data_key) == {"properties": None}
    assert opened({"value": "plain, written before sealing"}, "memory.set", {}) == {
        "value": "plain, written before sealing"
    }


@pytest.mark.parametrize(
    "moved",
    [
        Subject(tenant_id="t2", user_id=USER, event_type="memory.set", field="value"),
        Subject(tenant_id=TENANT, user_id="u2", event_type="memory.set", field="value"),
        Subject(tenant_id=TENANT, user_id=USER, event_type="session.message_added", field="value"),
        Subject(tenant_id=TENANT, user_id=USER, event_type="memory.set", field="content"),
    ],
    ids=["tenant", "user", "event type", "field"],
)
def test_a_seal_opens_only_for_its_subject(moved: Subject) -> None:
    data_key = key()
    subject = Subject(tenant_id=TENANT, user_id=USER, event_type="memory.set", field="value")
    seal = data_key.seal(subject, "secret")
    assert data_key.open(subject, seal) == "secret"
    with pytest.raises(SealBroken):
        data_key.open(moved, seal)
    keys: dict[tuple[str, str], DataKey | None] = {(moved.user_id, data_key.key_id): data_key}
    assert open_sealed(keys, moved, seal) == UNREADABLE  # shown as such, never as another's data


def test_an_altered_seal_reads_unreadable_and_never_says_why_in_the_value() -> None:
    data_key = key()
    subject = Subject(tenant_id=TENANT, user_id=USER, event_type="memory.set", field="value")
    seal = data_key.seal(subject, "secret")
    flipped = bytes([seal.data[0] ^ 1]) + seal.data[1:]
    for altered in (
        msgspec.structs.replace(seal, data=flipped),
        msgspec.structs.replace(seal, nonce=b"short"),
    ):
        assert open_sealed({(USER, data_key.key_id): data_key}, subject, altered) == UNREADABLE


def test_a_value_that_only_looks_sealed_is_a_plain_value() -> None:
    assert sealed_of({"$sealed": "v1", "key": "k"}) is None  # missing parts
    assert sealed_of({"$sealed": "v1", "key": "k", "nonce": "n", "data": "d", "more": 1}) is None
    assert sealed_of({"$sealed": "v1", "key": "k", "nonce": "no base64!", "data": "AAAA"}) is None
    assert sealed_of({"$sealed": "v1", "key": "k", "nonce": "AAAA", "data": "AAAA"}) == Sealed(
        key="k", nonce=b"\0\0\0", data=b"\0\0\0"
    )


def test_keys_never_show_in_their_repr() -> None:
    key_id, material = new_key()
    assert repr(DataKey(key_id, material)) == f"DataKey({key_id!r})"
    assert len(material) == 32
