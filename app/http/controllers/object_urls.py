"""Spine's own upload and download URLs, for object stores that cannot sign one (the lab's
filesystem): `PUT /v1/object-uploads/{upload_id}`, `GET /v1/object-downloads/{download_id}`.

The grant in the path is the only credential (`domain.object_grants`): no token, no context
headers. It is checked as a stream ticket is (Spine's signature, its expiry against the service's
clock: 401 `auth.invalid_token` / `object.url_expired`), and its user must still be a member of
its tenant (a member removed since: 403). The request then runs as that user in the grant's
partition (its context is set for the access log, CORS and the tenant's request slots), and the
grant bounds it: an upload writes at most `max_bytes` of the grant's content type to object
`key`, and completes at once; a download reads the version it was issued for, and 404s once that
version is replaced or deleted. Grants travel in URLs, so the access log never writes a path.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from litestar import Controller, Request, Response, get, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter
from litestar.response import Stream

from app.http.limits import admit
from app.http.middleware import lab_warnings_of
from app.http.object_answers import StoredObject, stored_answer
from app.http.object_io import (
    INDEX,
    OBJECT_HEADERS,
    IfNoneMatch,
    IfRange,
    RangeHeader,
    announced,
    body_of,
    indexed,
    max_object_bytes,
    quota_of,
    streamed,
)
from app.http.services import Services, ServicesDep
from app.object_stores import object_store
from app.usecases import objects
from domain.context import RequestContext
from domain.errors import NotMember, ObjectNotFound
from domain.object_grants import ObjectGrant, Purpose, check_unexpired
from domain.objects import upload_event_id

GrantPath = Annotated[str, PathParameter(description="what the upload-url or download-url answer named")]
_PUBLIC = {"public": True, "rate_limit": False}


class ObjectUploadsController(Controller):
    path = "/v1/object-uploads"
    tags = ["objects"]

    @put(
        "/{upload_id:str}",
        summary="Upload an object's bytes to Spine's own upload URL (the upload id is the credential); "
        "completes at once (201 created, 200 replaced)",
        opt={**_PUBLIC, "raw_body": True},
        request_max_body_size=None,  # the grant's max_bytes applies instead
        status_code=200,
        responses={201: ResponseSpec(StoredObject, description="Created: the key held no object")},
    )
    async def upload(
        self, upload_id: GrantPath, services: ServicesDep, request: Request[Any, Any, Any]
    ) -> Response[StoredObject]:
        grant, ctx = await _granted(services, request, upload_id, "upload")
        warnings = lab_warnings_of(request.scope)
        blobs = await object_store(services.backends, services.control.projector, ctx, warnings)
        max_bytes = min(grant.max_bytes, max_object_bytes(services, ctx.tenant_id))
        announced(request, max_bytes)
        runner = await services.views.runner(INDEX, ctx, warnings=warnings)
        spine = await services.spines.for_context(ctx, warnings)
        stored = await objects.store(
            spine,
            blobs,
            ctx,
            grant.key,
            body_of(request),
            content_type=grant.content_type or "application/octet-stream",
            max_bytes=max_bytes,
            quota=await quota_of(services, ctx, runner),
            wanted=None,
            create_only=False,
            via="signed",
            event_id=upload_event_id(grant.blob),
        )
        return stored_answer(stored)


class ObjectDownloadsController(Controller):
    path = "/v1/object-downloads"
    tags = ["objects"]

    @get(
        "/{download_id:str}",
        summary="An object's bytes from Spine's own download URL (the URL is the credential); Range as GET "
        "/v1/objects/{key}",
        opt=_PUBLIC,
        media_type="*/*",
        response_headers=OBJECT_HEADERS,
        responses={
            206: ResponseSpec(bytes, description="Partial content: the range asked for", media_type="*/*"),
            304: ResponseSpec(None, description="Not modified: If-None-Match names the current ETag"),
        },
    )
    async def download(
        self,
        download_id: GrantPath,
        services: ServicesDep,
        request: Request[Any, Any, Any],
        range_header: RangeHeader = None,
        if_none_match: IfNoneMatch = None,
        if_range: IfRange = None,
    ) -> Stream:
        grant, ctx = await _granted(services, request, download_id, "download")
        warnings = lab_warnings_of(request.scope)
        blobs = await object_store(services.backends, services.control.projector, ctx, warnings)
        runner = await services.views.runner(INDEX, ctx, warnings=warnings)
        found = await indexed(runner, grant.key)
        if found is None or found[1] != grant.blob:  # deleted, or replaced since the URL was made
            raise ObjectNotFound(grant.key)
        info, blob = found
        answer = await streamed(
            blobs, info, blob, range_header=range_header, if_none_match=if_none_match, if_range=if_range
        )
        return cast(Stream, answer)  # a Stream, or a 304 without a body


async def _granted(
    services: Services, request: Request[Any, Any, Any], text: str, purpose: Purpose
) -> tuple[ObjectGrant, RequestContext]:
    """The grant `text` is, unexpired, and the context it runs in: its user's, in its partition,
    if that user is still a member. Set on the request as the identity guard sets a token's."""
    grant = services.grants.verify(text, purpose)
    check_unexpired(grant, services.clock())
    admit(request, grant.tenant_id, {})  # one of the tenant's request slots, like any verified call
    control = services.control
    if grant.user_id is None or control.state.role_of(grant.tenant_id, grant.user_id) is None:
        await control.projector.catch_up()  # a membership written a moment ago, maybe elsewhere
    tenant = control.state.tenants.get(grant.tenant_id)
    role = None if grant.user_id is None else control.state.role_of(grant.tenant_id, grant.user_id)
    if role is None or tenant is None:
        raise NotMember(f"user {grant.user_id!r} is no longer a member of tenant {grant.tenant_id!r}")
    ctx = RequestContext(
        tenant_id=grant.tenant_id,
        env=grant.env,
        project_id=grant.project_id,
        mode=tenant.mode,
        user_id=grant.user_id,
        surface_id=grant.surface_id,
        request_id=request.scope["state"].get("request_id"),
        roles=frozenset({role}),
    )
    request.scope["state"]["ctx"] = ctx
    return grant, ctx
