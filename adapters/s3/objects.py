"""The object store on S3 or any S3-protocol server (aioboto3): one client per route's bucket.

Uploads: an object that fits in one part (`multipart_threshold_bytes`, 8 MiB by default) is one
`PutObject`; a larger one is a multipart upload whose parts (that size again: at least 5 MiB,
S3's minimum) are sent as they fill, completed at the end and aborted on any failure (too large,
the client gone, the backend, a cancellation), so that memory holds about two parts and nothing
ever appears under a name but a whole object.

Timeouts (`domain.timeouts`): connecting takes at most `connect_timeout_seconds`, and a request
waits at most `request_timeout_seconds` for each read from the socket: a dead server fails fast,
while a part or a download that keeps moving is never cut for being large. botocore retries
throttling and dropped connections a couple of times (parts and puts are idempotent).

Errors: botocore's and aiohttp's (refused, timed out, an answer of S3 such as `NoSuchBucket` or
`AccessDenied`) become `BackendUnavailable("object_store")`, whose message names the error code
or type, never a key or a URL.

Credentials: `access_key_id` and `secret_access_key` as given (resolved from the route's
`secret://` references by the caller), else the default AWS chain.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import aioboto3  # type: ignore[import-untyped]
import aiohttp
import anyio
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from adapters.blob_parts import Parts
from domain.blobs import BlobHead, ByteRange, SignedRequest, StoredBlob
from domain.errors import BackendUnavailable, BlobMissing, InvalidRequest
from domain.timeouts import Timeouts, timeouts_of

log = logging.getLogger(f"spine.{__name__}")

KIND = "object_store"
MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3 refuses a smaller part other than the last
MAX_PART = 5 * 1024 * MiB
DEFAULT_PART = 8 * MiB
READ_CHUNK = 256 * 1024  # what a download yields at a time
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3ObjectStore:
    """`async with S3ObjectStore(bucket, region=…) as store`."""

    def __init__(
        self,
        bucket: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        prefix: str = "",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session: aioboto3.Session | None = None,
        timeouts: Timeouts | None = None,
        part_size: int = DEFAULT_PART,
    ) -> None:
        if not MIN_PART <= part_size <= MAX_PART:
            raise InvalidRequest(f"config 'multipart_threshold_bytes' must be from {MIN_PART} to {MAX_PART}")
        if (access_key_id is None) != (secret_access_key is None):
            raise InvalidRequest("config 'access_key_id' and 'secret_access_key' go together")
        self.bucket = bucket
        self._prefix = prefix
        self._part_size = part_size
        self._session = session or aioboto3.Session(
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
        )
        timeouts = timeouts or Timeouts()
        self._client_options: dict[str, Any] = {
            "region_name": region,
            "endpoint_url": endpoint_url,
            "config": Config(
                connect_timeout=timeouts.connect,
                read_timeout=timeouts.request,
                retries={"mode": "standard", "total_max_attempts": 3},
                signature_version="s3v4",  # pre-signed URLs too: SigV2 is refused in newer regions
                # a server of our own (moto, MinIO) is one host: buckets in the path, not the name
                s3={"addressing_style": "path" if endpoint_url else "auto"},
            ),
        }
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> S3ObjectStore:
        with _translated():
            self._client = await self._stack.enter_async_context(
                self._session.client("s3", **self._client_options)
            )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client = None
        await self._stack.aclose()

    async def put(
        self, name: str, chunks: AsyncIterable[bytes], *, content_type: str, max_bytes: int
    ) -> StoredBlob:
        key = self._key(name)
        parts = Parts(chunks, part_size=self._part_size, max_bytes=max_bytes)
        stream = aiter(parts)
        data, last = await anext(stream)  # a part, perhaps empty, always comes
        if last:
            with _translated():
                await self._client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
                )
            return parts.stored()
        with _translated():
            started = await self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type
            )
        upload_id = started["UploadId"]
        try:
            sent: list[dict[str, Any]] = []
            while True:
                with _translated():
                    answer = await self._client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=len(sent) + 1, Body=data
                    )
                sent.append({"PartNumber": len(sent) + 1, "ETag": answer["ETag"]})
                del data  # not kept while the next part is gathered
                if last:
                    break
                data, last = await anext(stream)
            with _translated():
                await self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": sent}
                )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._abort(key, upload_id)
            raise
        return parts.stored()

    async def read(self, name: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        chunks = self._chunks(self._key(name), name, byte_range)
        await anext(chunks)  # the answer's headers are in, or BlobMissing now rather than mid-stream
        return chunks

    async def head(self, name: str) -> BlobHead | None:
        try:
            with _translated(missing=name):
                answer = await self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        except BlobMissing:
            return None
        return BlobHead(size=int(answer["ContentLength"]), content_type=answer.get("ContentType"))

    async def delete(self, name: str) -> None:
        with _translated():  # S3 answers a delete of a missing key as a success
            await self._client.delete_object(Bucket=self.bucket, Key=self._key(name))

    async def signed_upload(
        self, name: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> SignedRequest | None:
        expires_at = _expiry(expires_in)
        with _translated():
            post = await self._client.generate_presigned_post(
                Bucket=self.bucket,
                Key=self._key(name),
                Fields={"Content-Type": content_type},
                Conditions=[{"Content-Type": content_type}, ["content-length-range", 0, max_bytes]],
                ExpiresIn=expires_in,
            )
        return SignedRequest(
            method="POST",
            url=post["url"],
            expires_at=expires_at,
            fields={k: str(v) for k, v in post["fields"].items()},
        )

    async def signed_download(self, name: str, *, expires_in: int) -> SignedRequest | None:
        expires_at = _expiry(expires_in)
        with _translated():
            url = await self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(name)}, ExpiresIn=expires_in
            )
        return SignedRequest(method="GET", url=url, expires_at=expires_at)

    async def probe(self) -> None:
        with _translated():
            await self._client.head_bucket(Bucket=self.bucket)

    async def _chunks(self, key: str, name: str, byte_range: ByteRange | None) -> AsyncGenerator[bytes, None]:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if byte_range is not None:
            request["Range"] = f"bytes={byte_range.first}-{byte_range.last}"
        with _translated(missing=name):
            answer = await self._client.get_object(**request)
        body = answer["Body"]
        try:
            yield b""  # the caller's `anext` in `read`: the object is there
            while True:
                with _translated():
                    chunk = await body.read(READ_CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()  # a download stopped halfway must not hold its connection

    async def _abort(self, key: str, upload_id: str) -> None:
        try:
            with _translated():
                await self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except BackendUnavailable:
            # S3 drops the parts of an upload nobody completes by the bucket's lifecycle rule
            # (AbortIncompleteMultipartUpload); never visible under the name meanwhile.
            log.warning("an aborted multipart upload could not be cleaned up", extra={"bucket": self.bucket})

    def _key(self, name: str) -> str:
        return self._prefix + name


def s3_options(config: Mapping[str, object]) -> dict[str, Any]:
    """A route's config (`{"bucket", "region", "endpoint_url"?, "prefix"?, "multipart_threshold_bytes"?,
    "connect_timeout_seconds"?, "request_timeout_seconds"?}`) as the adapter's keyword arguments;
    the credentials (`access_key_id`, `secret_access_key`: `secret://` references) are resolved by
    the caller."""
    endpoint = config.get("endpoint_url")
    threshold = config.get("multipart_threshold_bytes", DEFAULT_PART)
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise InvalidRequest("config 'multipart_threshold_bytes' must be a number of bytes")
    return {
        "bucket": str(config["bucket"]),
        "region": str(config["region"]),
        "endpoint_url": None if endpoint is None else str(endpoint),
        "prefix": str(config.get("prefix", "")),
        "timeouts": timeouts_of(config),
        "part_size": threshold,
    }


def _expiry(expires_in: int) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=expires_in)


@contextmanager
def _translated(*, missing: str | None = None) -> Iterator[None]:
    """S3's and the HTTP stack's errors as ours; with `missing`, a missing key is `BlobMissing`."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
        if missing is not None and code in _MISSING:
            raise BlobMissing(missing) from None
        log.warning("s3 error", extra={"error": code})
        raise BackendUnavailable(KIND, f"S3 answered {code}") from exc
    except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        # refused, reset, timed out, no credentials: the type only (a message may quote the URL)
        raise BackendUnavailable(KIND, f"S3 is unreachable or misconfigured ({type(exc).__name__})") from exc
