"""What the object routes answer: the shapes of their JSON bodies, and a store's answer.

Shared by `/v1/objects` (`app.http.controllers.objects`) and Spine's own upload URL
(`app.http.controllers.object_urls`), which answer a store the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Response

from app.http.object_io import ObjectInfo, etag
from app.usecases.objects import Stored
from domain.object_grants import DEFAULT_TTL_SECONDS, TtlSeconds


class StoredObject(msgspec.Struct, frozen=True, kw_only=True):
    """A store's answer: the object's new version (its ETag) and where the event is in the log."""

    key: str
    version: int
    size: int
    sha256: str
    content_type: str
    position: int


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """What the project's objects hold in all, as the index counts them (what `max_total_bytes`
    is checked against)."""

    bytes: int
    objects: int


class Objects(msgspec.Struct, frozen=True, kw_only=True):
    """Objects by key; `next` is the `after` of the next page, null on the last; `usage`: the
    whole project's, whatever the prefix."""

    objects: list[ObjectInfo]
    next: str | None
    usage: Usage


class UrlRequest(msgspec.Struct, frozen=True, kw_only=True):
    """`…/upload-url`: what the upload will be (its content type, at most how many bytes);
    `…/download-url`: `ttl_seconds` only. Identity fields may repeat the request's, no more."""

    content_type: str | None = None
    size: Annotated[int, msgspec.Meta(ge=0)] | None = None
    ttl_seconds: TtlSeconds = DEFAULT_TTL_SECONDS
    tenant_id: str | None = None
    env: str | None = None
    mode: str | None = None
    project_id: str | None = None
    surface_id: str | None = None
    app_id: str | None = None
    user_id: str | None = None


class SignedUrl(msgspec.Struct, frozen=True, kw_only=True):
    """A request to send as it is until `expires_at`: `method` `url` with `headers`, and for a
    form POST (S3) `fields` before the file. An upload's `upload_id` completes it
    (`POST {complete_url}`); Spine's own upload URL completes at once."""

    method: str
    url: str
    headers: dict[str, str]
    fields: dict[str, str]
    expires_at: datetime
    upload_id: str | None = None
    complete_url: str | None = None
    max_bytes: int | None = None


def stored_answer(stored: Stored) -> Response[StoredObject]:
    """201 when the key held no object, else 200; the version as ETag, the event's position."""
    return Response(stored_object(stored), status_code=status_of(stored), headers=headers_of(stored))


def stored_object(stored: Stored) -> StoredObject:
    record = stored.record
    return StoredObject(
        key=record.key,
        version=stored.version,
        size=record.size,
        sha256=record.sha256,
        content_type=record.content_type,
        position=stored.position,
    )


def status_of(stored: Stored) -> int:
    return 201 if stored.created else 200


def headers_of(stored: Stored) -> dict[str, str]:
    return {"X-Spine-Position": str(stored.position), "ETag": etag(stored.version)}
