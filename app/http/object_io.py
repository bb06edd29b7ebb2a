"""What the object routes share: the key as sent, the streamed body, the tenant's limits, the
request's object store and the index's entry (or the log's, when the index lags a replace), and
the answer that streams an object's bytes (whole, a range, or 304).

Object bodies are read here, from the ASGI `receive`, chunk by chunk: no guard has read them
(`opt={"raw_body": True}`), and Litestar's body limit is off on these routes
(`request_max_body_size=None`), so the only limit is the tenant's object size, applied at once
to a `Content-Length` and to the bytes counted as they pass (`adapters.blob_parts`). The
slow-client body timeout (`app.http.limits`) wraps `receive`, so it applies as to any body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any, Final, cast
from urllib.parse import quote, unquote_to_bytes

import msgspec
from litestar import Request, Response
from litestar.datastructures import ResponseHeader
from litestar.params import HeaderParameter
from litestar.response import Stream

from app.http.reads import caught_up, reflecting
from app.http.services import Call, Services
from app.object_stores import object_store
from app.usecases.objects import Quota
from app.usecases.unit_of_work import last_event
from domain.byte_ranges import byte_range, content_range
from domain.context import RequestContext
from domain.errors import BlobMissing, BodyIncomplete, InvalidRequest, ObjectNotFound, ObjectTooLarge
from domain.objects import OBJECTS, USAGE, USAGE_KEY, check_key, current, stream_of
from domain.partition import Partition
from domain.ports import EventSpine, ObjectStore
from projections.catalog import VIEWS
from projections.runtime import Runner

PREFIX: Final = "/v1/objects/"
INDEX: Final = VIEWS["objects"]  # the object index, kept beside the partition's log
IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-None-Match",
        description="GET/HEAD: ETags you hold (304 when one is current); PUT: `*`, create only (412 if the key holds an object)",
    ),
]
RangeHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Range",
        description="one range: bytes=first-last, bytes=first- or bytes=-suffix (206); another form is ignored",
    ),
]
IfRange = Annotated[
    str | None,
    HeaderParameter(name="If-Range", description="an ETag: the Range applies only while it is current"),
]

# What an object's GET and HEAD answer besides ETag (documented; the answers set them)
OBJECT_HEADERS: Final = [
    ResponseHeader(
        name="Content-Length", documentation_only=True, description="the bytes sent (of the range)"
    ),
    ResponseHeader(name="Last-Modified", documentation_only=True, description="when this version was stored"),
    ResponseHeader(name="Accept-Ranges", documentation_only=True, description="`bytes`: Range is served"),
    ResponseHeader(
        name="Content-Range", documentation_only=True, description="206 only: `bytes first-last/size`"
    ),
]


class ObjectInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An object as the index holds it (the blob's name is the backend's, never shown)."""

    key: str
    size: int
    content_type: str
    sha256: str
    version: int
    position: int
    stored_at: str
    stored_by: str | None
    via: str


async def blobs_of(call: Call) -> ObjectStore:
    """The request's object store (503 before anything when it has none; a lab fallback noted)."""
    services = call.services
    return await object_store(services.backends, services.control.projector, call.ctx, call.warnings)


async def found(call: Call, key: str, min_position: str | None) -> tuple[ObjectStore, tuple[ObjectInfo, str]]:
    """The request's object store, and the object under `key` in the index once it reflects
    `min_position` (with its blob's name); `ObjectNotFound` when there is none."""
    blobs = await blobs_of(call)
    runner = await caught_up(call, INDEX, min_position)
    held = await indexed(runner, key)
    if held is None:
        raise ObjectNotFound(key)
    return blobs, held


def sent_key(request: Request[Any, Any, Any]) -> str:
    """The object key the request's path names, exactly as sent (percent-decoded, strict UTF-8).

    Not the router's `{key:path}`: the router drops empty segments and a trailing '/', and a key
    it changed would be another object than the one sent. Validated by the one key rule (422).
    """
    return check_key(sent_path(request))


def sent_path(request: Request[Any, Any, Any]) -> str:
    """What follows `/v1/objects/` in the path as sent, percent-decoded (strict UTF-8)."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    try:
        path = unquote_to_bytes(raw.partition(b"?")[0]).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("an object key is UTF-8, percent-encoded in the path") from None
    if not path.startswith(PREFIX):  # the router matched it: only a server that rewrote the path
        raise InvalidRequest("an object key follows /v1/objects/")
    return path[len(PREFIX) :]


def key_path(key: str) -> str:
    """The key as a path below /v1/objects/: percent-encoded, '/' kept."""
    return quote(key, safe="/")


async def body_of(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    """The request's body as it arrives; `BodyIncomplete` when the client leaves before its end."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise BodyIncomplete()
        chunk = cast(bytes, message.get("body", b""))
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def announced(request: Request[Any, Any, Any], max_bytes: int) -> int | None:
    """The body's `Content-Length`, refused at once (413) past `max_bytes`; None when chunked."""
    sent = request.headers.get("content-length")
    if sent is None:
        return None
    if not sent.strip().isdigit() or len(sent.strip()) > 19:
        raise InvalidRequest("Content-Length must be a number of bytes")
    length = int(sent)
    if length > max_bytes:
        raise ObjectTooLarge(max_bytes)
    return length


def max_object_bytes(services: Services, tenant_id: str) -> int:
    """The largest object the tenant may store: its `objects.max_object_bytes`, else the deployment's."""
    limits = services.control.state.limits.get(tenant_id)
    chosen = None if limits is None or limits.objects is None else limits.objects.max_object_bytes
    return services.settings.max_object_bytes if chosen is None else chosen


async def quota_of(services: Services, ctx: RequestContext, runner: Runner) -> Quota | None:
    """The tenant's `max_total_bytes` against what the project's index counts once it reflects
    the log's head (503 `projection.lagging` if it cannot in time); None: no limit."""
    limits = services.control.state.limits.get(ctx.tenant_id)
    limit = None if limits is None or limits.objects is None else limits.objects.max_total_bytes
    if limit is None:
        return None
    head = await (await services.spines.for_context(ctx)).head(ctx.partition)
    await reflecting(runner, head, services.settings.read_wait_seconds)
    usage = await runner.get(USAGE, USAGE_KEY)
    return Quota(limit=limit, used=0 if usage is None else int(usage.data["bytes"]))


async def indexed(runner: Runner, key: str) -> tuple[ObjectInfo, str] | None:
    """The object under `key` in the index, and its blob's name."""
    doc = await runner.get(OBJECTS, key)
    if doc is None:
        return None
    return msgspec.convert(doc.data, ObjectInfo), str(doc.data["blob"])


async def logged(spine: EventSpine, partition: Partition, key: str) -> tuple[ObjectInfo, str] | None:
    """The object under `key` as the log says now, and its blob's name: what a read serves when
    the index still names bytes a newer version has replaced (and deleted)."""
    last, _ = await last_event(spine, partition, stream_of(key))
    held = current(last)
    if last is None or held is None:
        return None
    info = ObjectInfo(
        key=held.key,
        size=held.size,
        content_type=held.content_type,
        sha256=held.sha256,
        version=last.version,
        position=last.position,
        stored_at=msgspec.to_builtins(last.recorded_at),
        stored_by=held.user_id,
        via=held.via,
    )
    return info, held.blob


def etag(version: int) -> str:
    return f'"{version}"'


def described(info: ObjectInfo) -> dict[str, str]:
    """The headers every answer about the object carries (GET, HEAD, 206, 304)."""
    return {
        "ETag": etag(info.version),
        "Last-Modified": format_datetime(datetime.fromisoformat(info.stored_at), usegmt=True),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",  # members only; revalidate: a key's bytes change
    }


def matches_any(if_none_match: str, tag: str) -> bool:
    """`If-None-Match` names `tag` (weak comparison, RFC 9110 §13.1.2), or is `*`."""
    if if_none_match.strip() == "*":
        return True
    return tag in {part.strip().removeprefix("W/") for part in if_none_match.split(",")}


async def streamed(
    blobs: ObjectStore,
    info: ObjectInfo,
    blob: str,
    *,
    range_header: str | None,
    if_none_match: str | None,
    if_range: str | None,
    head: bool = False,
) -> Response[Any]:
    """The answer of a GET (or HEAD) of an object: 304 when the client holds it, 206 for a range
    (416 when none of its bytes exist), else 200, the bytes streamed from the backend."""
    headers = described(info)
    if if_none_match is not None and matches_any(if_none_match, headers["ETag"]):
        return Response(b"", status_code=304, headers=headers)
    headers["Content-Type"] = info.content_type
    if head:
        return Response(b"", status_code=200, headers={**headers, "Content-Length": str(info.size)})
    wanted = range_header if if_range is None or if_range.strip() == headers["ETag"] else None
    chosen = byte_range(wanted, info.size)
    try:
        chunks = await blobs.read(blob, chosen)  # the blob's absence now, not mid-stream
    except BlobMissing:  # deleted a moment ago, and the index does not show it yet
        raise ObjectNotFound(info.key) from None
    if chosen is None:
        return Stream(chunks, status_code=200, headers={**headers, "Content-Length": str(info.size)})
    ranged = {
        **headers,
        "Content-Length": str(chosen.length),
        "Content-Range": content_range(chosen, info.size),
    }
    return Stream(chunks, status_code=206, headers=ranged)
