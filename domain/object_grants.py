"""Upload ids and download URLs: what a browser is handed to move an object's bytes itself.

`POST /v1/objects/{key}/upload-url` answers a request the browser sends straight to the backend
(a pre-signed S3 POST, an Azure SAS URL), and an upload id: a grant signed by Spine naming the
partition, the key, the blob the bytes go to, their content type and how many bytes they may
be. No server state is kept: completing the upload (`POST …/uploads/{upload_id}`) reads all of it
back from the grant, so any instance can complete it. Where the backend cannot sign (the lab's
filesystem), the URL is Spine's own and the grant is its only credential; download URLs work the
same way. Grants are JWTs with an audience per purpose (`adapters.object_grants`), so one never
stands in for another, nor for a token or a stream ticket.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

import msgspec

from domain.context import RequestContext
from domain.errors import ObjectUrlExpired
from domain.identifiers import Identifier

DEFAULT_TTL_SECONDS: Final = 900
MAX_TTL_SECONDS: Final = 24 * 3600
Purpose = Literal["upload", "download"]

TtlSeconds = Annotated[
    int,
    msgspec.Meta(
        ge=1, le=MAX_TTL_SECONDS, description=f"seconds the URL is valid (default {DEFAULT_TTL_SECONDS})"
    ),
]


class ObjectGrant(msgspec.Struct, frozen=True, kw_only=True):
    """What an upload id or a download URL lets its bearer do, until `expires_at` (whole seconds
    since the epoch, UTC): write at most `max_bytes` of `content_type` to `blob` as object `key`
    of one partition, or read `blob` (the object's version `version`)."""

    purpose: Purpose
    tenant_id: Identifier
    env: Identifier
    project_id: Identifier
    surface_id: Identifier | None = None
    user_id: Identifier | None = None
    key: str
    blob: str
    content_type: str | None = None
    max_bytes: int = 0
    version: int = 0
    expires_at: int

    @property
    def expiry(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)

    def names(self, ctx: RequestContext, key: str) -> bool:
        """Whether the grant is for object `key` of the request's partition."""
        return (self.tenant_id, self.env, self.project_id, self.key) == (
            ctx.tenant_id, ctx.env, ctx.project_id, key)  # fmt: skip


def grant_for(
    ctx: RequestContext,
    purpose: Purpose,
    key: str,
    blob: str,
    *,
    now: datetime,
    ttl_seconds: int,
    content_type: str | None = None,
    max_bytes: int = 0,
    version: int = 0,
) -> ObjectGrant:
    return ObjectGrant(
        purpose=purpose,
        tenant_id=ctx.tenant_id,
        env=ctx.env,
        project_id=ctx.project_id,
        surface_id=ctx.surface_id,
        user_id=ctx.user_id,
        key=key,
        blob=blob,
        content_type=content_type,
        max_bytes=max_bytes,
        version=version,
        expires_at=int(now.timestamp()) + ttl_seconds,
    )


def check_unexpired(grant: ObjectGrant, now: datetime) -> None:
    """Where the grant is the credential (Spine's own URLs): `ObjectUrlExpired` from its expiry on."""
    if now >= grant.expiry:
        raise ObjectUrlExpired(grant.expiry)
