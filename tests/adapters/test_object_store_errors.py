"""The object stores' error translation against their real peers: a bucket or container that is not
there, an account key that is wrong or no key at all come out as `BackendUnavailable` naming the
error's code, never the SDK's exception, a key or a signature; a missing blob stays `BlobMissing`."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import anyio
import pytest

from adapters.azure_blob.objects import AzureBlobObjectStore
from adapters.s3.objects import S3ObjectStore
from domain.errors import BackendUnavailable, BlobMissing
from tests.peers import azurite, s3

WRONG_KEY = base64.b64encode(b"not the account's key, but base64 all the same").decode()


async def body() -> AsyncIterator[bytes]:
    yield b"bytes"


async def test_s3_bucket_that_is_not_there() -> None:
    url = await anyio.to_thread.run_sync(s3.endpoint)
    async with S3ObjectStore(
        "no-such-bucket-here", region=s3.REGION, endpoint_url=url, session=s3.session()
    ) as store:
        for call in (
            lambda: store.put("x", body(), content_type="text/plain", max_bytes=100),
            lambda: store.read("x"),
            lambda: store.delete("x"),
            store.probe,
        ):
            with pytest.raises(BackendUnavailable) as refused:
                await call()
            assert refused.value.error_code == "object_store.backend_unavailable"
            assert "S3 answered" in str(refused.value)
            assert s3.SECRET_ACCESS_KEY not in str(refused.value)


async def test_azure_with_a_wrong_key_is_refused_without_quoting_it() -> None:
    url = await anyio.to_thread.run_sync(azurite.account_url)
    async with (
        azurite.container(url) as container,
        AzureBlobObjectStore(url, container.container_name, account_key=WRONG_KEY) as store,
    ):
        for call in (
            lambda: store.put("x", body(), content_type="text/plain", max_bytes=100),
            lambda: store.head("x"),
            lambda: store.read("x"),
            store.probe,
        ):
            with pytest.raises(BackendUnavailable) as refused:
                await call()
            assert "Azure Blob answered 403" in str(refused.value)
            assert WRONG_KEY not in str(refused.value)


async def test_azure_with_a_key_that_is_no_base64() -> None:
    url = await anyio.to_thread.run_sync(azurite.account_url)
    async with AzureBlobObjectStore(url, "c", account_key="not base64!") as store:
        with pytest.raises(BackendUnavailable):
            await store.head("x")
        with pytest.raises(BackendUnavailable):
            await store.signed_download("x", expires_in=60)


async def test_an_azure_container_that_is_not_there_is_no_missing_blob() -> None:
    url = await anyio.to_thread.run_sync(azurite.account_url)
    async with AzureBlobObjectStore(url, "no-such-container", account_key=azurite.KEY) as store:
        for call in (lambda: store.head("x"), lambda: store.read("x"), store.probe):
            with pytest.raises(BackendUnavailable) as refused:
                await call()
            assert "ContainerNotFound" in str(refused.value)
        with pytest.raises(BackendUnavailable):
            await store.delete("x")


async def test_a_missing_blob_in_a_container_that_is_there() -> None:
    url = await anyio.to_thread.run_sync(azurite.account_url)
    async with (
        azurite.container(url) as container,
        AzureBlobObjectStore(url, container.container_name, account_key=azurite.KEY) as store,
    ):
        assert await store.head("x") is None
        with pytest.raises(BlobMissing):
            await store.read("x")
        await store.delete("x")
