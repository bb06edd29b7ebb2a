"""An EventSpine decorator that keeps personal fields (`domain.personal`) sealed in the log.

`append` seals the declared fields of each event whose meta names a user, under that user's data
key (`app.key_ring`); the reads open them, or show `[erased]` where the key was destroyed and
`[unreadable]` where a sealed value does not open under its key (altered, or moved from another
user or field: logged, without the value). Requests, SSE followers and `spine replay` read through
it; projections read the log as stored, so views keep the sealed form and their read paths open
it on the way out (`open_view_value`): a rebuilt view is as erased as the log.

`read_encoded` stays a pass-through for the events of types without personal fields: only the
others are decoded, opened and encoded again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from typing import Any

import msgspec

from adapters.data_keys import DataKey, SealBroken
from app.key_ring import KeyRing, UserKey
from domain.append import AppendRequest
from domain.events import AppendResult, EncodedEvent, EncodedPage, Event, Page, event_decoder, event_encoder
from domain.partition import Partition
from domain.personal import (
    ERASED,
    PERSONAL_FIELDS,
    UNREADABLE,
    Sealed,
    Subject,
    open_fields,
    open_value,
    personal_fields,
    seal_fields,
    sealed_of,
)
from domain.ports import EventSpine

log = logging.getLogger(f"spine.{__name__}")


class PersonalSpine:
    def __init__(self, inner: EventSpine, keys: KeyRing) -> None:
        self.inner = inner  # the log as stored: what projections and copies read
        self._keys = keys

    async def append(self, partition: Partition, request: AppendRequest) -> AppendResult:
        user_id = request.meta.user_id
        if (
            user_id is not None
            and request.expected_position is None  # a copy (`spine replay --into`) is stored as it was
            and any(event.type in PERSONAL_FIELDS for event in request.events)
        ):
            key = await self._keys.current(partition.tenant_id, user_id)
            events = [
                msgspec.structs.replace(
                    event,
                    data=seal_fields(
                        event.data,
                        tenant_id=partition.tenant_id,
                        user_id=user_id,
                        event_type=event.type,
                        seal=key.seal,
                    ),
                )
                for event in request.events
            ]
            request = msgspec.structs.replace(request, events=events)
        return await self.inner.append(partition, request)

    async def read(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> Page:
        page = await self.inner.read(partition, after=after, limit=limit, stream=stream, types=types)
        events = await self._opened(partition.tenant_id, page.events)
        return page if events is page.events else Page(events=events, next=page.next, head=page.head)

    async def read_encoded(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> EncodedPage:
        page = await self.inner.read_encoded(partition, after=after, limit=limit, stream=stream, types=types)
        personal = [i for i, (_, event_type, _) in enumerate(page.events) if event_type in PERSONAL_FIELDS]
        if not personal:
            return page
        decoded = [event_decoder.decode(page.events[i][2]) for i in personal]
        opened = await self._opened(partition.tenant_id, decoded)
        events: list[EncodedEvent] = list(page.events)
        for i, before, after_ in zip(personal, decoded, opened, strict=True):
            if after_ is not before:
                events[i] = (after_.position, after_.type, event_encoder.encode(after_))
        return EncodedPage(events=events, next=page.next, head=page.head)

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        events, version = await self.inner.read_stream(
            partition, stream, after_version=after_version, limit=limit
        )
        return await self._opened(partition.tenant_id, events), version

    async def head(self, partition: Partition) -> int:
        return await self.inner.head(partition)

    async def remove(self, partition: Partition, positions: Collection[int]) -> int:
        return await self.inner.remove(partition, positions)

    async def _opened(self, tenant_id: str, events: list[Event]) -> list[Event]:
        """`events` with their sealed fields opened; the same list when none has any."""
        wanted = {pair for event in events for pair in _sealed_in(event)}
        if not wanted:
            return events
        keys = await self._keys.find(tenant_id, wanted)

        def open_(subject: Subject, sealed: Sealed) -> Any:
            return open_sealed(keys, subject, sealed)

        opened = []
        for event in events:
            data = event.data
            if event.type in PERSONAL_FIELDS:
                data = open_fields(
                    data, tenant_id=tenant_id, user_id=event.meta.user_id, event_type=event.type, open_=open_
                )
            opened.append(event if data is event.data else msgspec.structs.replace(event, data=data))
        return opened


def _sealed_in(event: Event) -> Iterable[UserKey]:
    user_id = event.meta.user_id
    if user_id is None:
        return
    for field in personal_fields(event.type):
        sealed = sealed_of(event.data.get(field))
        if sealed is not None:
            yield (user_id, sealed.key)


def open_sealed(keys: dict[UserKey, DataKey | None], subject: Subject, sealed: Sealed) -> Any:
    """A sealed value opened with the keys found: `ERASED` without its key, `UNREADABLE` when it
    does not open under it."""
    key = keys.get((subject.user_id, sealed.key))
    if key is None:
        return ERASED
    try:
        return key.open(subject, sealed)
    except SealBroken:
        log.warning(
            "a sealed personal field does not open under its key: shown as unreadable",
            extra={"event_type": subject.event_type, "field": subject.field},
        )
        return UNREADABLE


async def open_documents(
    keys: KeyRing,
    tenant_id: str,
    docs: list[dict[str, Any]],
    *,
    event_type: str,
    field: str,
    user_of: Callable[[dict[str, Any]], str | None],
) -> list[dict[str, Any]]:
    """View documents with their copy of a personal field opened on the way out (views keep the
    sealed form); `user_of` names each document's user."""
    wanted = [(user, sealed.key) for doc in docs if (user := user_of(doc)) is not None
              and (sealed := sealed_of(doc.get(field))) is not None]  # fmt: skip
    if not wanted:
        return docs
    found = await keys.find(tenant_id, wanted)
    return [
        {**doc, field: open_value(doc.get(field), tenant_id=tenant_id, user_id=user_of(doc), event_type=event_type,
                                  field=field, open_=lambda subject, sealed: open_sealed(found, subject, sealed))}
        if sealed_of(doc.get(field)) is not None
        else doc
        for doc in docs
    ]  # fmt: skip
