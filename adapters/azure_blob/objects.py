"""The object store on Azure Blob Storage (`azure.storage.blob.aio`): block blobs in one container.

Uploads: an object of at most 1 MiB is one `Put Blob`; a larger one is staged a block per part
(`multipart_threshold_bytes`, 8 MiB by default) as the parts fill (`Put Block`) and committed once,
at the end (`Put Block List`). Blocks nobody commits are invisible and dropped by the
service after a week, so an upload that fails (too large, the client gone, the backend, a
cancellation) leaves nothing under its name, and a blob it was replacing stays as it was. Each
upload names its blocks with an id of its own, so two uploads never mix their blocks.

Downloads are ranged requests of `READ_CHUNK` bytes each (the SDK's first request would read
32 MiB into memory by default).

Timeouts (`domain.timeouts`): connecting takes at most `connect_timeout_seconds` and each socket
read at most `request_timeout_seconds`; the SDK retries twice, a second apart (its own default
waits 15 s and more between retries).

Credentials: the account key (the route's `key`, a `secret://` reference resolved by the caller),
which also signs the SAS URLs of direct uploads and downloads. Errors: Azure's (HTTP answers,
requests not sent or not answered), aiohttp's and the socket's, and a key that is no base64 all
become `BackendUnavailable("object_store")`, naming the status and error code or the type only.
"""

from __future__ import annotations

import binascii
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from io import BytesIO
from types import TracebackType
from typing import Any

import aiohttp
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobSasPermissions, ContentSettings, generate_blob_sas
from azure.storage.blob.aio import BlobClient, ContainerClient, LinearRetry

from adapters.blob_parts import Parts
from domain.blobs import BlobHead, ByteRange, SignedRequest, StoredBlob
from domain.errors import BackendUnavailable, BlobMissing, InvalidRequest
from domain.timeouts import Timeouts, timeouts_of

log = logging.getLogger(f"spine.{__name__}")

KIND = "object_store"
MiB = 1024 * 1024
DEFAULT_PART = 8 * MiB
MAX_PART = 4000 * MiB  # the largest block Azure takes
READ_CHUNK = 4 * MiB
# The SDK sends a single put's body as bytes, which aiohttp writes at once (and warns about above
# 1 MiB): the socket's buffer then copies what it does not take. Larger objects go as blocks.
SINGLE_PUT_MAX = MiB
_MISSING_BLOB = "BlobNotFound"


class AzureBlobObjectStore:
    """`async with AzureBlobObjectStore(account_url, container, account_key=…) as store`."""

    def __init__(
        self,
        account_url: str,
        container: str,
        *,
        account_key: str,
        prefix: str = "",
        timeouts: Timeouts | None = None,
        part_size: int = DEFAULT_PART,
    ) -> None:
        if not 1 <= part_size <= MAX_PART:
            raise InvalidRequest(f"config 'multipart_threshold_bytes' must be from 1 to {MAX_PART}")
        timeouts = timeouts or Timeouts()
        self._key = account_key
        self._prefix = prefix
        self._part_size = part_size
        # a string credential is the account key; the account's name comes from the URL
        self._container = ContainerClient(
            account_url,
            container,
            credential=account_key,
            connection_timeout=timeouts.connect,
            read_timeout=timeouts.request,
            retry_policy=LinearRetry(backoff=1, retry_total=2, random_jitter_range=0),
            max_single_get_size=READ_CHUNK,
            max_chunk_get_size=READ_CHUNK,
        )
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> AzureBlobObjectStore:
        await self._stack.enter_async_context(self._container)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    async def put(
        self, name: str, chunks: AsyncIterable[bytes], *, content_type: str, max_bytes: int
    ) -> StoredBlob:
        blob = self._blob(name)
        settings = ContentSettings(content_type=content_type)
        parts = Parts(chunks, part_size=self._part_size, max_bytes=max_bytes)
        stream = aiter(parts)
        data, last = await anext(stream)  # a part, perhaps empty, always comes
        if last and len(data) <= SINGLE_PUT_MAX:
            with _translated():
                await blob.upload_blob(data, overwrite=True, content_settings=settings)
            return parts.stored()
        upload = uuid.uuid4().hex  # block ids of this upload only (all of a blob's are one length)
        blocks: list[BlobBlock] = []
        while True:
            block_id = f"{upload}-{len(blocks):06d}"  # the SDK encodes it in base64
            with _translated():  # a stream, which aiohttp sends a slice at a time
                await blob.stage_block(block_id, BytesIO(data), length=len(data))
            blocks.append(BlobBlock(block_id=block_id))
            del data  # not kept while the next part is gathered
            if last:
                break
            data, last = await anext(stream)
        with _translated():
            await blob.commit_block_list(blocks, content_settings=settings)
        return parts.stored()

    async def read(self, name: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        chunks = self._chunks(name, byte_range)
        await anext(chunks)  # the first range is in, or BlobMissing now rather than mid-stream
        return chunks

    async def head(self, name: str) -> BlobHead | None:
        try:
            with _translated(missing=name):
                properties = await self._blob(name).get_blob_properties()
        except BlobMissing:
            return None
        return BlobHead(size=int(properties.size), content_type=properties.content_settings.content_type)

    async def delete(self, name: str) -> None:
        with suppress(BlobMissing), _translated(missing=name):  # what is not there is deleted
            await self._blob(name).delete_blob(delete_snapshots="include")

    async def signed_upload(
        self, name: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> SignedRequest | None:
        # A SAS cannot bound the size: the service checks the stored size (`head`) afterwards.
        blob = self._blob(name)
        expires_at = _expiry(expires_in)
        sas = self._sas(blob, BlobSasPermissions(create=True, write=True), expires_at)
        return SignedRequest(
            method="PUT",
            url=f"{blob.url}?{sas}",
            expires_at=expires_at,
            headers={"x-ms-blob-type": "BlockBlob", "Content-Type": content_type},
        )

    async def signed_download(self, name: str, *, expires_in: int) -> SignedRequest | None:
        blob = self._blob(name)
        expires_at = _expiry(expires_in)
        sas = self._sas(blob, BlobSasPermissions(read=True), expires_at)
        return SignedRequest(method="GET", url=f"{blob.url}?{sas}", expires_at=expires_at)

    async def probe(self) -> None:
        with _translated():
            await self._container.get_container_properties()

    async def _chunks(self, name: str, byte_range: ByteRange | None) -> AsyncGenerator[bytes, None]:
        blob = self._blob(name)
        offset, length = (None, None) if byte_range is None else (byte_range.first, byte_range.length)
        with _translated(missing=name):
            downloader = await blob.download_blob(offset=offset, length=length)
        yield b""  # the caller's `anext` in `read`: the blob is there
        chunks = downloader.chunks()
        while True:
            with _translated():
                chunk = await anext(chunks, None)
            if chunk is None:
                return
            yield chunk

    def _blob(self, name: str) -> BlobClient:
        return self._container.get_blob_client(self._prefix + name)

    def _sas(self, blob: BlobClient, permission: BlobSasPermissions, expires_at: datetime) -> str:
        with _translated():  # a key that is no base64 fails here, when it signs
            return generate_blob_sas(
                account_name=str(blob.account_name),
                container_name=blob.container_name,
                blob_name=blob.blob_name,
                account_key=self._key,
                permission=permission,
                expiry=expires_at,
            )


def azure_blob_options(config: Mapping[str, object]) -> dict[str, Any]:
    """A route's config (`{"account_url", "container", "prefix"?, "multipart_threshold_bytes"?,
    "connect_timeout_seconds"?, "request_timeout_seconds"?}`) as the adapter's keyword arguments;
    the account key (`key`: a `secret://` reference) is resolved by the caller."""
    threshold = config.get("multipart_threshold_bytes", DEFAULT_PART)
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise InvalidRequest("config 'multipart_threshold_bytes' must be a number of bytes")
    return {
        "account_url": str(config["account_url"]),
        "container": str(config["container"]),
        "prefix": str(config.get("prefix", "")),
        "timeouts": timeouts_of(config),
        "part_size": threshold,
    }


def _expiry(expires_in: int) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=expires_in)


@contextmanager
def _translated(*, missing: str | None = None) -> Iterator[None]:
    """Azure's and the HTTP stack's errors as ours; with `missing`, a missing blob (not a missing
    container: a route naming none is a backend that cannot serve) is `BlobMissing`."""
    try:
        yield
    except ResourceNotFoundError as exc:
        if missing is not None and getattr(exc, "error_code", None) == _MISSING_BLOB:
            raise BlobMissing(missing) from None
        raise _unavailable(exc) from exc
    except (AzureError, aiohttp.ClientError, OSError, TimeoutError, binascii.Error, ValueError) as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: Exception) -> BackendUnavailable:
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        reason = f"answered {exc.status_code} {getattr(exc, 'error_code', None) or ''}".rstrip()
    else:  # the type only: a message may quote the URL and its SAS
        reason = f"is unreachable or misconfigured ({type(exc).__name__})"
    log.warning("azure blob error", extra={"error": reason})
    return BackendUnavailable(KIND, f"Azure Blob {reason}")
