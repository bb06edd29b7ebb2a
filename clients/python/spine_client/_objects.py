"""The calls of the object store: bytes by key, in the client's project.

A store is a PUT of the bytes (`put_object`: bytes here; a file or an iterator of chunks is
streamed by the clients themselves, once, since a stream cannot be sent again); a read answers
the bytes, whole or one range (`first`..`last`, inclusive). `upload_url` and `download_url` hand
out requests a browser (or any HTTP client without the token) sends itself; an upload made that
way becomes the object with `complete_upload` (Spine's own upload URL completes at once).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import IO, Any, Final
from urllib.parse import quote

import anyio
import httpx

from spine_client._calls import Call, call, if_match, min_position_header, present
from spine_client.errors import unexpected_answer
from spine_client.types import ObjectContent, ObjectDeleted, ObjectHead, Objects, SignedUrl, StoredObject

CHUNK: Final = 1024 * 1024  # what one read of a file sends
_ETAG: Final = re.compile(r'^"([0-9]+)"$')
_SIZE: Final = re.compile(r"/([0-9]+)$")


def put_object(
    key: str,
    data: bytes = b"",
    *,
    content_type: str | None = None,
    expected_version: int | None = None,
    create_only: bool = False,
) -> Call[StoredObject]:
    """Store `data` as object `key` (a new version). `expected_version` makes it a compare-and-set
    (409 `object.version_conflict`), `create_only` refuses a key that holds an object (412)."""
    headers = {"Content-Type": content_type or "application/octet-stream", **if_match(expected_version)}
    if create_only:
        headers["If-None-Match"] = "*"
    sent = call("PUT", _path(key), StoredObject, headers=headers)
    return replace(sent, content=data, headers={**sent.headers, **headers})


def get_object(
    key: str, *, first: int | None = None, last: int | None = None, min_position: int | None = None
) -> Call[ObjectContent]:
    """The object's bytes read whole into memory (`stream_object` streams them), or the range
    `first`..`last` (inclusive; `last` None: to the end)."""
    headers = {**_range(first, last), **min_position_header(min_position)}
    return Call(method="GET", path=_path(key), read=lambda r: ObjectContent(head=head_of(key, r), content=r.content),
                headers={"Accept": "*/*", **headers}, idempotent=True)  # fmt: skip


def head_object(key: str, *, min_position: int | None = None) -> Call[ObjectHead]:
    """What a GET would answer about the object, without its bytes (404 `object.not_found`)."""
    return Call(method="HEAD", path=_path(key), read=lambda r: head_of(key, r),
                headers={"Accept": "*/*", **min_position_header(min_position)}, idempotent=True)  # fmt: skip


def delete_object(key: str, *, expected_version: int | None = None) -> Call[ObjectDeleted]:
    return call("DELETE", _path(key), ObjectDeleted, headers=if_match(expected_version))


def list_objects(
    *, prefix: str | None = None, after: str | None = None, limit: int = 100, min_position: int | None = None
) -> Call[Objects]:
    """Objects whose keys start with `prefix`, in key order; `next` is the `after` of the next page."""
    params = {"prefix": prefix, "after": after, "limit": limit}
    return call("GET", "/v1/objects", Objects, params=params, headers=min_position_header(min_position))


def upload_url(
    key: str, *, content_type: str | None = None, size: int | None = None, ttl_seconds: int | None = None
) -> Call[SignedUrl]:
    """A request that uploads at most `size` bytes (default: the tenant's limit) of `content_type`
    to object `key` without the token, until it expires."""
    sent = present(content_type=content_type, size=size, ttl_seconds=ttl_seconds)
    return call("POST", f"{_path(key)}/upload-url", SignedUrl, json=sent, idempotent=True)


def complete_upload(key: str, upload_id: str) -> Call[StoredObject]:
    """Make what was uploaded with `upload_id` object `key`: once, however often it is sent."""
    return call("POST", f"{_path(key)}/uploads/{quote(upload_id, safe='')}", StoredObject, idempotent=True)


def download_url(
    key: str, *, ttl_seconds: int | None = None, min_position: int | None = None
) -> Call[SignedUrl]:
    """A GET of the object's current version without the token, until it expires."""
    sent = present(ttl_seconds=ttl_seconds)
    return call("POST", f"{_path(key)}/download-url", SignedUrl, json=sent, headers=min_position_header(min_position),
                idempotent=True)  # fmt: skip


@dataclass(frozen=True)
class ObjectStream:
    """An object's answer, its bytes not read yet: `async for chunk in stream.chunks`."""

    head: ObjectHead
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class SyncObjectStream:
    """An object's answer, its bytes not read yet: `for chunk in stream.chunks`."""

    head: ObjectHead
    chunks: Iterator[bytes]


def head_of(key: str, response: httpx.Response) -> ObjectHead:
    """The `ObjectHead` an object's answer's headers describe."""
    headers = response.headers
    tag = _ETAG.match(headers.get("etag", ""))
    length = headers.get("content-length")
    if tag is None or length is None:
        raise unexpected_answer(response.status_code, f"{response.request.method} {_path(key)}",
                                ValueError("no ETag or Content-Length"))  # fmt: skip
    content_range = headers.get("content-range")
    size = _SIZE.search(content_range or "")
    return ObjectHead(
        key=key,
        version=int(tag[1]),
        size=int(size[1]) if size else int(length),
        length=int(length),
        content_type=headers.get("content-type", "application/octet-stream"),
        etag=headers["etag"],
        last_modified=headers.get("last-modified"),
        content_range=content_range,
    )


async def async_chunks(data: Any) -> AsyncIterator[bytes]:
    """A body to stream: an async iterator of chunks as it is, a binary file read a chunk at a
    time in a worker thread (the event loop never waits on the disk)."""
    if hasattr(data, "__aiter__"):
        async for chunk in data:
            yield bytes(chunk)
        return
    file: IO[bytes] = data
    while chunk := await anyio.to_thread.run_sync(file.read, CHUNK):
        yield chunk


def _range(first: int | None, last: int | None) -> dict[str, str]:
    if first is None and last is None:
        return {}
    return {"Range": f"bytes={first or 0}-{'' if last is None else last}"}


def _path(key: str) -> str:
    """The key's path: percent-encoded, its `/` kept (they separate its segments)."""
    return f"/v1/objects/{quote(key, safe='/')}"
