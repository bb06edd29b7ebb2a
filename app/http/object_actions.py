"""What a POST below an object's key asks for: a browser's upload (`upload_url`) and its
completion (`complete`), or a download without the token (`download_url`).

The URLs are the backend's own, signed by it, where it can sign (S3, Azure Blob); else Spine's
(`app.http.controllers.object_urls`), with an object grant as their only credential. An upload id
is always a grant signed by Spine (`domain.object_grants`): completing it needs no server state.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request

from app.http.object_answers import SignedUrl, UrlRequest
from app.http.object_io import INDEX, blobs_of, found, key_path, max_object_bytes, quota_of
from app.http.services import Call
from app.usecases import objects
from app.usecases.objects import Stored
from domain.errors import InvalidToken, ObjectTooLarge, UploadNotFound
from domain.object_grants import grant_for
from domain.objects import blob_name, check_content_type

UPLOADS: Final = "/v1/object-uploads/"  # Spine's own URLs (`app.http.controllers.object_urls`)
DOWNLOADS: Final = "/v1/object-downloads/"


async def upload_url(call: Call, request: Request[Any, Any, Any], key: str, body: UrlRequest) -> SignedUrl:
    """A browser's upload of at most `size` bytes (or the tenant's limit) to a fresh blob: signed
    by the backend when it can, else Spine's own URL; and the upload id that completes it."""
    services, ctx = call.services, call.ctx
    blobs = await blobs_of(call)
    content_type = check_content_type(body.content_type)
    limit = max_object_bytes(services, ctx.tenant_id)
    if body.size is not None and body.size > limit:
        raise ObjectTooLarge(limit)
    max_bytes = limit if body.size is None else body.size
    if body.size is not None:
        quota = await quota_of(services, ctx, await call.view(INDEX))
        if quota is not None:
            quota.check(body.size)
    grant = grant_for(
        ctx,
        "upload",
        key,
        blob_name(ctx.partition),
        now=services.clock(),
        ttl_seconds=body.ttl_seconds,
        content_type=content_type,
        max_bytes=max_bytes,
    )
    upload_id = services.grants.sign(grant)
    signed = await blobs.signed_upload(
        grant.blob, content_type=content_type, max_bytes=max_bytes, expires_in=body.ttl_seconds
    )
    granted = {"upload_id": upload_id, "complete_url": f"/v1/objects/{key_path(key)}/uploads/{upload_id}"}
    if signed is None:  # the backend cannot sign: Spine takes the bytes, and completes at once
        own = {"Content-Type": content_type}
        url = _base(request) + UPLOADS + upload_id
        return SignedUrl(
            method="PUT",
            url=url,
            headers=own,
            fields={},
            expires_at=grant.expiry,
            max_bytes=max_bytes,
            **granted,
        )
    return SignedUrl(
        method=signed.method,
        url=signed.url,
        headers=dict(signed.headers),
        fields=dict(signed.fields),
        expires_at=signed.expires_at,
        max_bytes=max_bytes,
        **granted,
    )


async def download_url(
    call: Call, request: Request[Any, Any, Any], key: str, body: UrlRequest, min_position: str | None
) -> SignedUrl:
    """A GET of the object's current bytes without the token: signed by the backend when it can,
    else Spine's own URL."""
    services, ctx = call.services, call.ctx
    blobs, (info, blob) = await found(call, key, min_position)
    signed = await blobs.signed_download(blob, expires_in=body.ttl_seconds)
    if signed is None:
        now = services.clock()
        grant = grant_for(
            ctx, "download", key, blob, now=now, ttl_seconds=body.ttl_seconds, version=info.version
        )
        url = _base(request) + DOWNLOADS + services.grants.sign(grant)
        return SignedUrl(method="GET", url=url, headers={}, fields={}, expires_at=grant.expiry)
    return SignedUrl(
        method=signed.method,
        url=signed.url,
        headers=dict(signed.headers),
        fields=dict(signed.fields),
        expires_at=signed.expires_at,
    )


async def complete(call: Call, key: str, upload_id: str) -> Stored:
    """The browser's upload made object `key` (once: a completion sent again answers the same)."""
    services, ctx = call.services, call.ctx
    try:
        grant = services.grants.verify(upload_id, "upload")
    except InvalidToken:
        raise UploadNotFound("no upload of Spine's has this id") from None
    if not grant.names(ctx, key):
        raise UploadNotFound(f"this upload id is not one of object {key!r} in this project")
    blobs = await blobs_of(call)
    runner = await call.view(INDEX)
    spine = await call.spine()
    quota = await quota_of(services, ctx, runner)
    limit = max_object_bytes(services, ctx.tenant_id)
    return await objects.complete_upload(spine, blobs, ctx, grant, max_bytes=limit, quota=quota)


def _base(request: Request[Any, Any, Any]) -> str:
    """The service's URL as the client reached it: Spine's own URLs are on the same origin."""
    return str(request.base_url).rstrip("/")
