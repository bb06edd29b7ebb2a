"""Object stores opened by `Backends` from a route's config, behind their breaker (`GuardedObjectStore`):
credentials from `secret://` references, a filesystem root kept inside the data directory, a
client's failure passed through without counting against the backend, a dead backend refused
fast once its breaker opens."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from adapters.local_notifier import LocalNotifier
from adapters.secret_resolver import ChainSecretResolver
from app.backends import OBJECT_STORE, Backends
from app.http.metrics import Metrics
from domain.backend_url import Backend
from domain.blobs import ByteRange
from domain.circuit_breaker import BreakerPolicy
from domain.errors import BackendUnavailable, BlobMissing
from domain.secrets import SecretFiles
from tests.peers import azurite, free_port, s3

LIMIT = 1 << 30


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[Backends]:
    async with AsyncExitStack() as stack:
        yield Backends(
            stack=stack, notifier=LocalNotifier(), metrics=Metrics(), data_dir=tmp_path / "data",
            synchronous="FULL", secrets=ChainSecretResolver(allow_env=True, files=SecretFiles()),
            breakers=BreakerPolicy(failures=2, cool_down_seconds=600),
        )  # fmt: skip


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def going_away(data: bytes) -> AsyncIterator[bytes]:
    async for chunk in chunks(data):
        yield chunk
    raise ConnectionResetError("the client went away")


async def read_all(chunked: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunked])


async def test_a_filesystem_route_is_kept_inside_the_data_dir(backends: Backends, tmp_path: Path) -> None:
    inside = Backend(backend_type="filesystem", config={"path": "objects"})
    store = await backends.objects(inside)
    await store.put("a/b", chunks(b"lab bytes"), content_type="text/plain", max_bytes=LIMIT)
    assert await read_all(await store.read("a/b", ByteRange(first=4, last=8))) == b"bytes"
    assert (tmp_path / "data/objects/blobs").is_dir()
    spelled_otherwise = Backend(backend_type="filesystem", config={"path": str(tmp_path / "data/objects")})
    assert await backends.objects(spelled_otherwise) is store
    assert backends.breaker(inside, kind=OBJECT_STORE) is None  # on this machine: no breaker
    for outside in ["../elsewhere", str(tmp_path / "elsewhere")]:
        with pytest.raises(BackendUnavailable) as refused:
            await backends.objects(Backend(backend_type="filesystem", config={"path": outside}))
        assert refused.value.error_code == "object_store.backend_unavailable"
        assert "inside the data directory" in str(refused.value)


async def test_s3_credentials_come_from_secret_refs(
    backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await anyio.to_thread.run_sync(s3.endpoint)
    monkeypatch.setenv("TEST_SPINE_S3_KEY_ID", s3.ACCESS_KEY_ID)
    monkeypatch.setenv("TEST_SPINE_S3_SECRET", s3.SECRET_ACCESS_KEY)
    async with s3.bucket(url) as bucket:
        backend = Backend(
            backend_type="s3",
            config={"bucket": bucket, "region": s3.REGION, "endpoint_url": url, "prefix": "t1/",
                    "access_key_id": "secret://env/TEST_SPINE_S3_KEY_ID",
                    "secret_access_key": "secret://env/TEST_SPINE_S3_SECRET"},
        )  # fmt: skip
        store = await backends.objects(backend)
        await store.put("x", chunks(b"through the route"), content_type="text/plain", max_bytes=LIMIT)
        assert await read_all(await store.read("x")) == b"through the route"
        await store.probe()
        signed = await store.signed_download("x", expires_in=60)
        assert signed is not None
        assert f"X-Amz-Credential={s3.ACCESS_KEY_ID}" in signed.url
        status = backends.breaker(backend, kind=OBJECT_STORE)
        assert status is not None
        assert (status.state, status.failures) == ("closed", 0)
        await store.delete("x")


async def test_a_client_that_goes_away_is_not_a_backend_failure(backends: Backends) -> None:
    url = await anyio.to_thread.run_sync(s3.endpoint)
    async with s3.bucket(url) as bucket:
        backend = Backend(
            backend_type="s3",
            config={"bucket": bucket, "region": s3.REGION, "endpoint_url": url,
                    "access_key_id": "secret://env/TEST_SPINE_S3_KEY_ID",
                    "secret_access_key": "secret://env/TEST_SPINE_S3_SECRET",
                    "multipart_threshold_bytes": 5 * 1024 * 1024},
        )  # fmt: skip
        with pytest.MonkeyPatch.context() as env:
            env.setenv("TEST_SPINE_S3_KEY_ID", s3.ACCESS_KEY_ID)
            env.setenv("TEST_SPINE_S3_SECRET", s3.SECRET_ACCESS_KEY)
            store = await backends.objects(backend)
        data = random.Random(0).randbytes(11 * 1024 * 1024)  # two parts sent, then the client is gone
        for _ in range(3):  # more than the breaker's failures
            with pytest.raises(ConnectionResetError):
                await store.put("gone", going_away(data), content_type="text/plain", max_bytes=LIMIT)
        status = backends.breaker(backend, kind=OBJECT_STORE)
        assert status is not None
        assert (status.state, status.failures) == ("closed", 0)
        assert await store.head("gone") is None
        with pytest.raises(BlobMissing):
            await store.read("gone")


async def test_a_dead_backend_opens_its_breaker(backends: Backends) -> None:
    backend = Backend(
        backend_type="s3",
        config={"bucket": "b", "region": s3.REGION, "endpoint_url": f"http://127.0.0.1:{free_port()}"},
    )
    with pytest.MonkeyPatch.context() as env:  # any credentials: nothing answers
        env.setenv("AWS_ACCESS_KEY_ID", "x")
        env.setenv("AWS_SECRET_ACCESS_KEY", "y")
        store = await backends.objects(backend)
        for _ in range(2):
            with pytest.raises(BackendUnavailable):
                await store.head("x")
    status = backends.breaker(backend, kind=OBJECT_STORE)
    assert status is not None
    assert status.state == "open"
    with pytest.raises(BackendUnavailable) as refused:
        await backends.objects(backend)  # refused at once, before any call
    assert refused.value.retry_after is not None
    with pytest.raises(BackendUnavailable):
        await store.put("x", chunks(b"bytes"), content_type="text/plain", max_bytes=LIMIT)


async def test_an_azure_route_without_a_key_is_refused_clearly(backends: Backends) -> None:
    backend = Backend(
        backend_type="azure_blob", config={"account_url": "http://127.0.0.1:1/a", "container": "c"}
    )
    with pytest.raises(BackendUnavailable) as refused:
        await backends.objects(backend)
    assert "needs 'key'" in str(refused.value)


async def test_an_azure_route_with_its_key(backends: Backends, monkeypatch: pytest.MonkeyPatch) -> None:
    url = await anyio.to_thread.run_sync(azurite.account_url)
    monkeypatch.setenv("TEST_SPINE_AZURE_KEY", azurite.KEY)
    async with azurite.container(url) as container:
        backend = Backend(
            backend_type="azure_blob",
            config={"account_url": url, "container": container.container_name,
                    "key": "secret://env/TEST_SPINE_AZURE_KEY"},
        )  # fmt: skip
        store = await backends.objects(backend)
        await store.put("y", chunks(b"blob bytes"), content_type="text/plain", max_bytes=LIMIT)
        assert await read_all(await store.read("y", ByteRange(first=5, last=9))) == b"bytes"
        await store.delete("y")
        status = backends.breaker(backend, kind=OBJECT_STORE)
        assert status is not None
        assert status.state == "closed"
