"""`/v1/objects`: bytes by key, streamed both ways, each change an event (`domain.objects`).

Keys may hold `/` (`media/2026/a.png`), so an object's path is the rest of the URL after
`/v1/objects/`, taken as sent (`app.http.object_io.sent_key`). Every route resolves the
partition's `object_store` route first: without one (outside lab) it answers 503
`object_store.missing_route` before reading a body or appending anything. The object's index is
a view beside the partition's log (`projections.catalog`), read with `X-Spine-Min-Position` like
any view.

An object takes no POST of its own, so POST names what is asked below the key:
`…/{key}/upload-url` (a request a browser sends straight to the backend, and its upload id),
`…/{key}/uploads/{upload_id}` (completes it), `…/{key}/download-url`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, cast

import msgspec
from litestar import Controller, Request, Response, delete, get, head, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter, PathParameter
from litestar.response import Stream

from app.http import object_actions
from app.http.object_answers import (
    Objects,
    SignedUrl,
    StoredObject,
    UrlRequest,
    Usage,
    headers_of,
    status_of,
    stored_answer,
    stored_object,
)
from app.http.object_io import (
    INDEX,
    OBJECT_HEADERS,
    IfNoneMatch,
    IfRange,
    ObjectInfo,
    RangeHeader,
    announced,
    blobs_of,
    body_of,
    etag,
    found,
    logged,
    max_object_bytes,
    quota_of,
    sent_key,
    sent_path,
    streamed,
)
from app.http.preconditions import IfMatch, Precondition, precondition
from app.http.reads import MinPosition, caught_up
from app.http.services import Call, CallDep
from app.usecases import objects
from app.usecases.unit_of_work import last_event
from domain.errors import (
    InvalidCursor,
    InvalidRequest,
    ObjectConflict,
    ObjectNotFound,
    PreconditionFailed,
)
from domain.objects import (
    OBJECTS,
    USAGE,
    USAGE_KEY,
    check_content_type,
    check_key,
    check_prefix,
    is_live,
    stream_of,
)

MAX_PAGE = 1000
KeyPath = Annotated[
    str,
    PathParameter(
        description="the object key, slashes and all (media/2026/a.png); POST: followed by /upload-url, "
        "/download-url or /uploads/{upload_id}"
    ),
]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]
_ACTION: Final = re.compile(
    r"^(?P<key>.+)/(?:(?P<url>upload-url|download-url)|uploads/(?P<upload>[^/]+))$", re.DOTALL
)


class ObjectsController(Controller):
    path = "/v1/objects"
    tags = ["objects"]

    @get("/", summary="Objects whose keys start with `prefix`, in key order, by cursor")
    async def list_objects(
        self,
        call: CallDep,
        prefix: Annotated[str, Parameter(description="only keys starting with it: media/")] = "",
        after: Annotated[str | None, Parameter(description="the `next` of the previous page")] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[Objects]:
        check_prefix(prefix)
        if after is not None:
            try:
                check_key(after)
            except InvalidRequest:
                raise InvalidCursor(f"after must be an object key, got {after[:40]!r}") from None
        await blobs_of(call)
        runner = await caught_up(call, INDEX, min_position)
        docs = await runner.list(OBJECTS, prefix=prefix, after=after or "", limit=limit + 1)
        page = [msgspec.convert(doc.data, ObjectInfo) for doc in docs[:limit]]
        counted = await runner.get(USAGE, USAGE_KEY)
        usage = Usage(bytes=0, objects=0) if counted is None else msgspec.convert(counted.data, Usage)
        return Response(Objects(objects=page, next=page[-1].key if len(docs) > limit else None, usage=usage))

    @put(
        "/{key:path}",
        summary="Store an object: the body's bytes, streamed (201 created, 200 replaced); If-Match or "
        "If-None-Match: * make it conditional",
        opt={"raw_body": True},
        request_max_body_size=None,  # the tenant's object limit applies instead (`object_io`)
        status_code=200,
        responses={201: ResponseSpec(StoredObject, description="Created: the key held no object")},
    )
    async def put_object(
        self,
        key: KeyPath,
        call: CallDep,
        request: Request[Any, Any, Any],
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[StoredObject]:
        name = sent_key(request)
        blobs = await blobs_of(call)  # 503 before a byte is read
        content_type = check_content_type(request.headers.get("content-type"))
        wanted = precondition(None, if_match)
        create_only = _create_only(if_none_match)
        max_bytes = max_object_bytes(call.services, call.ctx.tenant_id)
        length = announced(request, max_bytes)
        runner = await call.view(INDEX)  # the index's store is routed: 503 before anything is stored
        spine = await call.spine()
        quota = await quota_of(call.services, call.ctx, runner)
        if quota is not None and length is not None:
            quota.check(length)  # a known size refused before it is sent; counted again after
        await _refused_early(call, name, wanted, create_only)
        stored = await objects.store(
            spine,
            blobs,
            call.ctx,
            name,
            body_of(request),
            content_type=content_type,
            max_bytes=max_bytes,
            quota=quota,
            wanted=wanted,
            create_only=create_only,
        )
        return stored_answer(stored)

    @get(
        "/{key:path}",
        summary="An object's bytes (Range: one range, 206; If-None-Match: 304)",
        media_type="*/*",
        response_headers=OBJECT_HEADERS,
        responses={
            206: ResponseSpec(bytes, description="Partial content: the range asked for", media_type="*/*"),
            304: ResponseSpec(None, description="Not modified: If-None-Match names the current ETag"),
        },
    )
    async def read_object(
        self,
        key: KeyPath,
        call: CallDep,
        request: Request[Any, Any, Any],
        range_header: RangeHeader = None,
        if_none_match: IfNoneMatch = None,
        if_range: IfRange = None,
        min_position: MinPosition = None,
    ) -> Stream:
        name = sent_key(request)
        blobs, (info, blob) = await found(call, name, min_position)
        try:
            answer = await streamed(
                blobs, info, blob, range_header=range_header, if_none_match=if_none_match, if_range=if_range
            )
        except ObjectNotFound:  # its bytes are gone: replaced by a version the index does not show yet
            now = await logged(await call.spine(), call.ctx.partition, name)
            if now is None or now[1] == blob:
                raise
            answer = await streamed(
                blobs, *now, range_header=range_header, if_none_match=if_none_match, if_range=if_range
            )
        return cast(Stream, answer)  # a Stream, or a 304 without a body

    @head(
        "/{key:path}",
        summary="An object's headers: what a GET answers, without the bytes",
        media_type="*/*",
        response_headers=OBJECT_HEADERS,
    )
    async def head_object(
        self,
        key: KeyPath,
        call: CallDep,
        request: Request[Any, Any, Any],
        if_none_match: IfNoneMatch = None,
        min_position: MinPosition = None,
    ) -> Response[None]:
        name = sent_key(request)
        blobs, (info, blob) = await found(call, name, min_position)
        return await streamed(
            blobs, info, blob, range_header=None, if_none_match=if_none_match, if_range=None, head=True
        )

    @delete("/{key:path}", status_code=200, summary="Delete an object: a tombstone version, then its bytes")
    async def delete_object(
        self, key: KeyPath, call: CallDep, request: Request[Any, Any, Any], if_match: IfMatch = None
    ) -> Response[dict[str, Any]]:
        name = sent_key(request)
        blobs = await blobs_of(call)
        await call.view(INDEX)
        spine = await call.spine()
        version, position = await objects.delete(spine, blobs, call.ctx, name, precondition(None, if_match))
        headers = {"X-Spine-Position": str(position), "ETag": etag(version)}
        return Response(
            {"key": name, "deleted": True, "version": version, "position": position}, headers=headers
        )

    @post(
        "/{key:path}",
        status_code=201,
        summary="…/{key}/upload-url: a browser's direct upload (201); …/{key}/uploads/{upload_id}: complete "
        "it (201 created, 200 replaced); …/{key}/download-url: a direct download (201)",
        responses={
            200: ResponseSpec(StoredObject, description="An upload completed: the key held an object")
        },
    )
    async def act(
        self,
        key: KeyPath,
        call: CallDep,
        request: Request[Any, Any, Any],
        data: JSONBody[UrlRequest | None] = None,
        min_position: MinPosition = None,
    ) -> Response[SignedUrl | StoredObject]:
        target = _ACTION.match(sent_path(request))
        if target is None:
            raise InvalidRequest(
                "POST …/{key}/upload-url, …/{key}/download-url or …/{key}/uploads/{upload_id}"
            )
        name = check_key(target["key"])
        body = data or UrlRequest()
        if target["upload"] is not None:
            stored = await object_actions.complete(call, name, target["upload"])
            return Response(stored_object(stored), status_code=status_of(stored), headers=headers_of(stored))
        if target["url"] == "upload-url":
            return Response(await object_actions.upload_url(call, request, name, body), status_code=201)
        return Response(
            await object_actions.download_url(call, request, name, body, min_position), status_code=201
        )


def _create_only(if_none_match: str | None) -> bool:
    if if_none_match is None:
        return False
    if if_none_match.strip() != "*":
        raise InvalidRequest("a PUT takes If-None-Match: * (create only), nothing else")
    return True


async def _refused_early(call: Call, key: str, wanted: Precondition | None, create_only: bool) -> None:
    """A precondition the object fails now is refused before its bytes are sent; the append
    checks it again (another writer may come in between)."""
    if wanted is None and not create_only:
        return
    spine = await call.spine()
    last, version = await last_event(spine, call.ctx.partition, stream_of(key))
    if create_only and is_live(last):
        raise PreconditionFailed(f"If-None-Match: * and object {key!r} exists")
    if wanted is not None:
        expected = wanted.version_for(version, live=is_live(last))
        if expected != version:
            raise ObjectConflict(stream_of(key), expected, version)
