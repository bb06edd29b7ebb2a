"""Objects through a real `spine serve`, on the lab's filesystem store and on S3 (moto's server):

- a 50 MB body generated on the fly and sent chunked is streamed through: the server's peak
  resident memory (VmHWM, /proc) grows by far less than the body, and the bytes read back have
  the same SHA-256;
- an upload cut midway (a raw socket: the head and part of the body, then closed) leaves nothing:
  no object listed, no event, no blob, no partial upload in the backend;
- what was stored outlives a clean stop and a SIGKILL: listed and read back the same.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer
from tests.e2e.test_rate_limits_restart import admin_headers
from tests.peers import s3

pytestmark = pytest.mark.e2e

MB = 1024 * 1024
BIG = 50 * MB
CHUNK = 64 * 1024
# Far less than the body: the S3 route's parts are 5 MiB (S3's least), a few copies of which are
# alive at once (the part being gathered, the one being sent, the SDK's buffers).
MAX_GROWTH = 24 * MB
WAIT_SECONDS = 30.0  # the server's log shows a cut upload ended well within this

Leftovers = Callable[[], Coroutine[Any, Any, list[str]]]


async def generated(size: int, digest: Any) -> AsyncIterator[bytes]:
    """`size` pseudo-random bytes in chunks, hashed into `digest` as they are sent: never held."""
    seed = hashlib.sha256(b"spine").digest()
    for sent in range(0, size, CHUNK):
        block = hashlib.sha256(seed + sent.to_bytes(8, "big")).digest() * (CHUNK // 32)
        chunk = block[: min(CHUNK, size - sent)]
        digest.update(chunk)
        yield chunk


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0])
    return fields


@asynccontextmanager
async def filesystem_backend(server: SpineServer, http: httpx.AsyncClient) -> AsyncIterator[Leftovers]:
    """No route: lab's fallback, the filesystem store under the data dir."""
    root = server.data_dir / "objects"

    async def leftovers() -> list[str]:
        files = (p.relative_to(root) for p in root.rglob("*") if p.is_file())
        return sorted(str(path) for path in files if path.parts[0] != "types")  # a type goes with its blob

    yield leftovers


@asynccontextmanager
async def s3_backend(server: SpineServer, http: httpx.AsyncClient) -> AsyncIterator[Leftovers]:
    url = await anyio.to_thread.run_sync(s3.endpoint)
    async with (
        s3.bucket(url) as bucket,
        s3.session().client("s3", endpoint_url=url, region_name=s3.REGION) as client,
    ):
        route = {"resource_kind": "object_store", "tenant_id": "t1", "env": "dev", "project_id": "p1",
                 "backend_type": "s3", "config": {"bucket": bucket, "region": s3.REGION, "endpoint_url": url,
                 "access_key_id": "secret://env/TEST_SPINE_S3_KEY_ID",
                 "secret_access_key": "secret://env/TEST_SPINE_S3_SECRET",
                 "multipart_threshold_bytes": 5 * MB}}  # fmt: skip
        answer = await http.put("/v1/routes", json=route, headers=await admin_headers(http, server))
        assert answer.status_code in (200, 201), answer.text

        async def leftovers() -> list[str]:
            listed = await client.list_objects_v2(Bucket=bucket)
            pending = await client.list_multipart_uploads(Bucket=bucket)
            return sorted([o["Key"] for o in listed.get("Contents", [])] + [
                f"multipart:{u['Key']}" for u in pending.get("Uploads", [])])  # fmt: skip

        yield leftovers


BACKENDS = {"filesystem": filesystem_backend, "s3": s3_backend}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SpineServer]:
    # the S3 route's credentials reach the service by reference (secret://env/…), as in production
    env = {"TEST_SPINE_S3_KEY_ID": s3.ACCESS_KEY_ID, "TEST_SPINE_S3_SECRET": s3.SECRET_ACCESS_KEY}
    async with SpineServer(tmp_path / "data", tmp_path, env=env).running() as spine:
        yield spine


async def listed(http: httpx.AsyncClient, headers: dict[str, str], position: str | None = None) -> list[Any]:
    wait = {} if position is None else {"X-Spine-Min-Position": position}
    answer = await http.get("/v1/objects", headers={**headers, **wait})
    assert answer.status_code == 200, answer.text
    return [{k: v for k, v in o.items() if k != "stored_at"} for o in answer.json()["objects"]]


async def sha256_of(http: httpx.AsyncClient, headers: dict[str, str], key: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    async with http.stream("GET", f"/v1/objects/{key}", headers=headers) as answer:
        assert answer.status_code == 200
        async for chunk in answer.aiter_bytes():
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@pytest.mark.parametrize("backend", sorted(BACKENDS))
async def test_50_mb_stream_through_in_bounded_memory_and_survive_a_stop_and_a_kill(
    server: SpineServer, backend: str
) -> None:
    headers = server.headers
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as setup,
        BACKENDS[backend](server, setup),  # for the whole test: a bucket outlives the service's restarts
    ):
        await stored_then_restarted(server, headers, backend)


async def stored_then_restarted(server: SpineServer, headers: dict[str, str], backend: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        warm = await http.put("/v1/objects/warm-up", content=b"x" * MB, headers=headers)  # the SDK, loaded
        assert warm.status_code == 201, warm.text
        assert server.process is not None
        pid = server.process.pid
        before = memory_kib(pid)
        sent = hashlib.sha256()
        big = await http.put("/v1/objects/media/big.bin", content=generated(BIG, sent), headers=headers)
        assert big.status_code == 201, big.text
        assert (big.json()["size"], big.json()["sha256"]) == (BIG, sent.hexdigest())
        wait = {**headers, "X-Spine-Min-Position": big.headers["x-spine-position"]}
        assert await sha256_of(http, wait, "media/big.bin") == (sent.hexdigest(), BIG)
        after = memory_kib(pid)
        grown = (after["VmHWM"] - before["VmHWM"]) * 1024
        print(
            f"\n{backend}: 50 MB up and down; peak RSS {before['VmHWM'] // 1024} -> {after['VmHWM'] // 1024} MiB"
        )
        assert grown < MAX_GROWTH, f"peak RSS grew by {grown / MB:.1f} MiB for a 50 MiB body"
        objects = await listed(http, headers, big.headers["x-spine-position"])
        assert [(o["key"], o["size"]) for o in objects] == [("media/big.bin", BIG), ("warm-up", MB)]

    await server.stop()
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        assert await listed(http, headers) == objects
        assert await sha256_of(http, headers, "media/big.bin") == (sent.hexdigest(), BIG)
        again = await http.put("/v1/objects/after-stop", content=b"stopped", headers=headers)
        assert again.status_code == 201, again.text
        position = again.headers["x-spine-position"]

    await server.restart()  # SIGKILL, then start again
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        after_kill = await listed(http, headers, position)
        assert [o["key"] for o in after_kill] == ["after-stop", "media/big.bin", "warm-up"]
        assert after_kill[1:] == objects
        assert await sha256_of(http, headers, "media/big.bin") == (sent.hexdigest(), BIG)
        ranged = await http.get("/v1/objects/after-stop", headers={**headers, "Range": "bytes=-4"})
        assert (ranged.status_code, ranged.content) == (206, b"pped")


async def logged(server: SpineServer, text: str, *, after: int) -> None:
    """Return once the server's log holds `text` past its first `after` characters."""
    with anyio.fail_after(WAIT_SECONDS):
        while True:  # another process's log file: nothing to await but the file itself
            if text in server.log_path.read_text(errors="replace")[after:]:
                return
            await anyio.sleep(0.05)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
async def test_an_upload_cut_midway_leaves_no_object_no_event_and_no_blob(
    server: SpineServer, backend: str
) -> None:
    headers = server.headers
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as http,
        BACKENDS[backend](server, http) as leftovers,
    ):
        head = [f"{name}: {value}" for name, value in headers.items()]
        request = ["PUT /v1/objects/cut/short.bin HTTP/1.1", "Host: spine", *head, f"Content-Length: {BIG}"]
        log_before = server.log_path.read_text(errors="replace")
        async with await anyio.connect_tcp("127.0.0.1", server.port) as connection:
            await connection.send("\r\n".join(request).encode() + b"\r\n\r\n")
            for _ in range(12 * MB // CHUNK):  # past the first part of either store, then gone
                await connection.send(os.urandom(CHUNK))
        # the server logs the request once it has ended it (and cleaned up after it): wait for that
        await logged(server, "request.incomplete", after=len(log_before))
        assert await leftovers() == []
        assert await listed(http, headers) == []
        assert (await http.get("/v1/events", headers=headers)).json()["events"] == []
        # and the key is free: the next upload is a creation at version 1
        done = await http.put(
            "/v1/objects/cut/short.bin", content=b"whole", headers={**headers, "If-None-Match": "*"}
        )
        assert (done.status_code, done.json()["version"]) == (201, 1), done.text
        assert len(await leftovers()) == 1
