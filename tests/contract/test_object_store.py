"""The ObjectStore contract, run against every adapter in `tests.backends.OBJECTS` on its real peer:
the lab directory, S3 (moto's server) and Azure Blob (Azurite)."""

from __future__ import annotations

import hashlib
import random
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.lowlevel
import httpx
import pytest

from domain.blobs import ByteRange
from domain.errors import BackendUnavailable, BlobMissing, ObjectTooLarge
from domain.ports import ObjectStore
from tests.backends import OBJECTS, UNREACHABLE_OBJECTS, ObjectsUnderTest

MiB = 1024 * 1024
CHUNK = 64 * 1024  # about what an ASGI server hands over per receive
LIMIT = 1 << 40  # no limit to speak of


@pytest.fixture(params=list(OBJECTS))
async def objects(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectsUnderTest]:
    async with OBJECTS[request.param](tmp_path) as under_test:
        yield under_test


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def chunked(data: bytes, size: int = CHUNK) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def generated(total: int, seed: int = 0) -> AsyncIterator[bytes]:
    """`total` bytes made as they are asked for: the test itself holds one chunk."""
    rng = random.Random(seed)
    for start in range(0, total, CHUNK):
        yield rng.randbytes(min(CHUNK, total - start))


async def failing(data: bytes) -> AsyncIterator[bytes]:
    async for chunk in chunked(data):
        yield chunk
    raise ConnectionResetError("the client went away")


async def read_all(store: ObjectStore, name: str, byte_range: ByteRange | None = None) -> bytes:
    return b"".join([chunk async for chunk in await store.read(name, byte_range)])


async def test_a_put_is_read_back_whole_with_its_size_hash_and_type(objects: ObjectsUnderTest) -> None:
    data = payload(2 * objects.part_size + 12345)
    stored = await objects.store.put(
        "t/env/p/blob-1", chunked(data), content_type="image/png", max_bytes=LIMIT
    )
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await read_all(objects.store, "t/env/p/blob-1") == data
    head = await objects.store.head("t/env/p/blob-1")
    assert head is not None
    assert (head.size, head.content_type) == (len(data), "image/png")


async def test_small_and_empty_objects(objects: ObjectsUnderTest) -> None:
    for name, data in [("small", b"hello, bytes"), ("empty", b"")]:
        stored = await objects.store.put(name, chunked(data), content_type="text/plain", max_bytes=LIMIT)
        assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert await read_all(objects.store, name) == data
        head = await objects.store.head(name)
        assert head is not None
        assert head.size == len(data)


async def test_an_object_of_exactly_one_part(objects: ObjectsUnderTest) -> None:
    data = payload(objects.part_size)
    await objects.store.put(
        "one-part", chunked(data), content_type="application/octet-stream", max_bytes=LIMIT
    )
    assert await read_all(objects.store, "one-part") == data


async def test_ranges_first_middle_last_and_whole(objects: ObjectsUnderTest) -> None:
    data = payload(objects.part_size + 4321, seed=1)
    await objects.store.put("ranged", chunked(data), content_type="application/octet-stream", max_bytes=LIMIT)
    last = len(data) - 1
    middle = len(data) // 2
    for first, end in [(0, 0), (middle, middle + 999), (last, last), (0, last), (10, last)]:
        got = await read_all(objects.store, "ranged", ByteRange(first=first, last=end))
        assert got == data[first : end + 1], (first, end)


async def test_reads_abandoned_midway_give_their_connections_back(objects: ObjectsUnderTest) -> None:
    data = payload(objects.part_size + 1)
    await objects.store.put("abandoned", chunked(data), content_type="text/plain", max_bytes=LIMIT)
    for _ in range(15):  # more than a client's connection pool (botocore's: 10)
        chunks = await objects.store.read("abandoned")
        assert await anext(chunks)
        await chunks.aclose()  # type: ignore[attr-defined]  # what a server does when its client goes
    for _ in range(3):  # and reads never started at all
        await objects.store.read("abandoned")
    assert await read_all(objects.store, "abandoned") == data


async def test_head_of_a_missing_blob_is_none(objects: ObjectsUnderTest) -> None:
    assert await objects.store.head("never/written") is None


async def test_reading_a_missing_blob_raises_before_any_chunk(objects: ObjectsUnderTest) -> None:
    with pytest.raises(BlobMissing):
        await objects.store.read("never/written")
    with pytest.raises(BlobMissing):
        await objects.store.read("never/written", ByteRange(first=0, last=9))


async def test_delete_is_idempotent(objects: ObjectsUnderTest) -> None:
    await objects.store.put("doomed", chunked(b"bytes"), content_type="text/plain", max_bytes=LIMIT)
    await objects.store.delete("doomed")
    await objects.store.delete("doomed")
    await objects.store.delete("never/written")
    assert await objects.store.head("doomed") is None
    with pytest.raises(BlobMissing):
        await objects.store.read("doomed")


async def test_an_upload_whose_source_fails_midway_leaves_nothing(objects: ObjectsUnderTest) -> None:
    data = payload(2 * objects.part_size + 100)  # more than one part sent before the failure
    with pytest.raises(ConnectionResetError):
        await objects.store.put("interrupted", failing(data), content_type="text/plain", max_bytes=LIMIT)
    assert await objects.store.head("interrupted") is None
    assert await objects.leftovers() == []


async def test_a_cancelled_upload_leaves_nothing(objects: ObjectsUnderTest) -> None:
    data = payload(2 * objects.part_size + 100)
    with anyio.CancelScope() as scope:

        async def cancelled_midway() -> AsyncIterator[bytes]:
            async for chunk in chunked(data):
                yield chunk
            scope.cancel()  # the request is cancelled (the server shuts down) while the put waits
            await anyio.lowlevel.checkpoint()

        await objects.store.put("cancelled", cancelled_midway(), content_type="text/plain", max_bytes=LIMIT)
    assert scope.cancelled_caught
    assert await objects.store.head("cancelled") is None
    assert await objects.leftovers() == []


async def test_a_failed_upload_leaves_the_blob_it_was_replacing(objects: ObjectsUnderTest) -> None:
    before = payload(1000, seed=2)
    await objects.store.put("kept", chunked(before), content_type="text/plain", max_bytes=LIMIT)
    with pytest.raises(ConnectionResetError):
        await objects.store.put(
            "kept", failing(payload(2 * objects.part_size)), content_type="x/y", max_bytes=LIMIT
        )
    assert await read_all(objects.store, "kept") == before
    assert await objects.leftovers() == []


@pytest.mark.parametrize("parts", [0.5, 2.5])
async def test_past_max_bytes_is_refused_with_nothing_left(objects: ObjectsUnderTest, parts: float) -> None:
    data = payload(int(parts * objects.part_size))
    with pytest.raises(ObjectTooLarge) as refused:
        await objects.store.put("too-big", chunked(data), content_type="text/plain", max_bytes=len(data) - 1)
    assert refused.value.limit == len(data) - 1
    assert await objects.store.head("too-big") is None
    assert await objects.leftovers() == []
    stored = await objects.store.put(
        "just-fits", chunked(data), content_type="text/plain", max_bytes=len(data)
    )
    assert stored.size == len(data)


async def test_a_50_mb_stream_is_stored_in_bounded_memory(objects: ObjectsUnderTest) -> None:
    total = 50 * MiB
    expected = hashlib.sha256()
    async for chunk in generated(total, seed=3):
        expected.update(chunk)
    tracemalloc.start()
    try:
        stored = await objects.store.put(
            "big", generated(total, seed=3), content_type="video/mp4", max_bytes=LIMIT
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (stored.size, stored.sha256) == (total, expected.hexdigest())
    # the adapter holds about two parts (one being sent, the next being gathered), never the object
    assert peak < 3 * objects.part_size + 2 * MiB, f"peak {peak / MiB:.1f} MiB"
    read_back = hashlib.sha256()
    size = 0
    async for chunk in await objects.store.read("big"):
        read_back.update(chunk)
        size += len(chunk)
    assert (size, read_back.hexdigest()) == (total, expected.hexdigest())
    await objects.store.delete("big")


async def test_signed_upload_then_signed_download(objects: ObjectsUnderTest) -> None:
    store = objects.store
    upload = await store.signed_upload(
        "signed/a b.txt", content_type="text/plain", max_bytes=1000, expires_in=300
    )
    download = await store.signed_download("signed/a b.txt", expires_in=300)
    if not objects.signs:
        assert (upload, download) == (None, None)
        return
    assert upload is not None
    assert download is not None
    data = b"straight from the browser"
    async with httpx.AsyncClient() as client:
        if upload.fields:  # a form POST: the file comes last
            sent = await client.request(
                upload.method, upload.url, data=upload.fields, files={"file": ("a b.txt", data, "text/plain")}
            )
        else:
            sent = await client.request(upload.method, upload.url, headers=upload.headers, content=data)
        assert sent.is_success, sent.text
        head = await store.head("signed/a b.txt")
        assert head is not None
        assert (head.size, head.content_type) == (len(data), "text/plain")
        fetched = await client.request(download.method, download.url, headers=download.headers)
        assert fetched.status_code == 200
        assert fetched.content == data


async def test_names_with_slashes_and_unicode(objects: ObjectsUnderTest) -> None:
    names = ["a/b", "a/b/c.txt", "ünïcödé/日本語 name 🌍.bin", "spaces and %2F/+plus&amp;", "a/b@/c"]
    for index, name in enumerate(names):
        await objects.store.put(name, chunked(payload(100, seed=index)), content_type="x/y", max_bytes=LIMIT)
    for index, name in enumerate(names):
        assert await read_all(objects.store, name) == payload(100, seed=index), name
        head = await objects.store.head(name)
        assert head is not None
        assert head.size == 100
    await objects.store.delete("a/b")
    assert await objects.store.head("a/b") is None
    assert await read_all(objects.store, "a/b/c.txt") == payload(100, seed=1)


@pytest.mark.parametrize("backend", list(UNREACHABLE_OBJECTS))
async def test_a_backend_that_is_down_raises_backend_unavailable(backend: str) -> None:
    async with UNREACHABLE_OBJECTS[backend]() as store:
        with pytest.raises(BackendUnavailable) as down:
            await store.put("x", chunked(b"bytes"), content_type="text/plain", max_bytes=LIMIT)
        assert down.value.kind == "object_store"
        with pytest.raises(BackendUnavailable):
            await store.put("x", chunked(payload(3 * MiB)), content_type="text/plain", max_bytes=LIMIT)
        with pytest.raises(BackendUnavailable):
            await store.read("x")
        with pytest.raises(BackendUnavailable):
            await store.head("x")
        with pytest.raises(BackendUnavailable):
            await store.delete("x")
        with pytest.raises(BackendUnavailable):
            await store.probe()


async def test_probe_answers(objects: ObjectsUnderTest) -> None:
    await objects.store.probe()
