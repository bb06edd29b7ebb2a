"""The object methods of the Python client, once, against a live server: bytes, a file and an
async iterator stored; read whole, by range and streamed; headed, listed, deleted; an upload URL
used without the token and completed; each answer decoded into the client's own types."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from spine_client import SpineClient, SpineClientError, SyncSpineClient
from spine_client.types import ObjectContent, ObjectHead, StoredObject

BODY = bytes(range(256)) * 8192  # 2 MiB: several of the client's file reads


async def chunks(body: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_store_read_stream_head_list_and_delete(client: SpineClient, tmp_path: Path) -> None:
    small = await client.put_object("notes/a.txt", b"hello", content_type="text/plain", create_only=True)
    assert isinstance(small, StoredObject)
    assert (small.key, small.version, small.size, small.content_type) == ("notes/a.txt", 1, 5, "text/plain")
    with pytest.raises(SpineClientError) as exists:
        await client.put_object("notes/a.txt", b"again", create_only=True)
    assert (exists.value.status, exists.value.error_code) == (412, "precondition.failed")
    path = tmp_path / "big.bin"
    path.write_bytes(BODY)
    with path.open("rb") as file:
        from_file = await client.put_object("media/big.bin", file)
    assert (from_file.size, from_file.sha256) == (len(BODY), hashlib.sha256(BODY).hexdigest())
    streamed = await client.put_object("media/é 2.bin", chunks(BODY), expected_version=None)
    assert streamed.sha256 == from_file.sha256

    whole = await client.get_object("notes/a.txt", min_position=streamed.position)
    assert isinstance(whole, ObjectContent)
    assert (whole.content, whole.head.version, whole.head.size, whole.head.content_type) == (
        b"hello", 1, 5, "text/plain")  # fmt: skip
    part = await client.get_object("media/big.bin", first=256, last=511)
    assert (part.content, part.head.length, part.head.size) == (BODY[256:512], 256, len(BODY))
    assert part.head.content_range == f"bytes 256-511/{len(BODY)}"
    digest, received = hashlib.sha256(), 0
    async with client.stream_object("media/é 2.bin") as found:
        assert (found.head.size, found.head.version) == (len(BODY), 1)
        async for chunk in found.chunks:
            digest.update(chunk)
            received += len(chunk)
    assert (received, digest.hexdigest()) == (len(BODY), streamed.sha256)
    head = await client.head_object("media/big.bin")
    assert isinstance(head, ObjectHead)
    assert (head.size, head.etag, head.content_range) == (len(BODY), '"1"', None)

    listed = await client.list_objects(prefix="media/", limit=1)
    assert ([o.key for o in listed.objects], listed.next) == (["media/big.bin"], "media/big.bin")
    rest = await client.list_objects(prefix="media/", after=listed.next)
    assert [o.key for o in rest.objects] == ["media/é 2.bin"]
    assert rest.usage is not None
    assert (rest.usage.objects, rest.usage.bytes) == (3, 5 + 2 * len(BODY))

    replaced = await client.put_object("notes/a.txt", b"bye", expected_version=1)
    with pytest.raises(SpineClientError) as stale:
        await client.put_object("notes/a.txt", b"late", expected_version=1)
    assert (stale.value.status, stale.value.error_code) == (409, "object.version_conflict")
    deleted = await client.delete_object("notes/a.txt", expected_version=replaced.version)
    assert (deleted.deleted, deleted.version) == (True, 3)
    with pytest.raises(SpineClientError) as gone:
        async with client.stream_object("notes/a.txt", min_position=deleted.position):
            pass
    assert (gone.value.status, gone.value.error_code) == (404, "object.not_found")


async def test_an_upload_url_is_used_without_the_token_and_completed(client: SpineClient) -> None:
    signed = await client.upload_url("from/page.txt", content_type="text/plain", size=100, ttl_seconds=60)
    assert (signed.method, signed.max_bytes, signed.upload_id is not None) == ("PUT", 100, True)
    async with httpx.AsyncClient() as browser:  # no token, no Spine header: the URL is the credential
        sent = await browser.request(
            signed.method, signed.url, content=b"from a page", headers=signed.headers
        )
    assert sent.status_code == 201, sent.text
    assert signed.upload_id is not None
    done = await client.complete_upload("from/page.txt", signed.upload_id)  # done already: the same answer
    assert (done.size, done.version, done.position) == (11, 1, sent.json()["position"])
    url = await client.download_url("from/page.txt", ttl_seconds=60, min_position=done.position)
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(url.url)).content == b"from a page"


def test_the_sync_client_has_the_same_methods(sync_client: SyncSpineClient) -> None:
    stored = sync_client.put_object("sync/file.bin", io.BytesIO(BODY), content_type="application/x-test")
    assert stored.size == len(BODY)
    iterated = sync_client.put_object("sync/iter.bin", iter([b"ab", b"cd"]))
    assert iterated.size == 4
    assert sync_client.get_object("sync/iter.bin", first=1, min_position=iterated.position).content == b"bcd"
    with sync_client.stream_object("sync/file.bin") as found:
        assert found.head.content_type == "application/x-test"
        assert b"".join(found.chunks) == BODY
    assert sync_client.head_object("sync/iter.bin").size == 4
    assert [o.key for o in sync_client.list_objects().objects] == ["sync/file.bin", "sync/iter.bin"]
    assert sync_client.delete_object("sync/iter.bin").deleted
    with pytest.raises(SpineClientError) as missing:
        sync_client.head_object("nothing")
    assert missing.value.status == 404
