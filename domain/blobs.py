"""What a blob backend (the `object_store` kind: S3, Azure Blob, a lab directory) deals in.

Blob names are the backend's: the object use case decides them (one per upload, so a replaced or
interrupted upload never overwrites the bytes an index entry points to); adapters only add the
route's `prefix`. Pure types, no I/O.
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class StoredBlob(msgspec.Struct, frozen=True, kw_only=True):
    """What `ObjectStore.put` wrote: counted and hashed as the bytes went through."""

    size: int
    sha256: str  # lowercase hex


class BlobHead(msgspec.Struct, frozen=True, kw_only=True):
    size: int
    content_type: str | None = None


class ByteRange(msgspec.Struct, frozen=True, kw_only=True):
    """Inclusive offsets, already checked against the blob's size (`first <= last < size`)."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


class SignedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request a browser makes straight to the backend, signed by it, until `expires_at`.

    `fields` are form fields for an HTML form POST (S3's pre-signed POST, which can bound the
    size); `headers` must be sent as given (Azure's `x-ms-blob-type`, a content type).
    """

    method: str
    url: str
    expires_at: datetime
    headers: dict[str, str] = {}
    fields: dict[str, str] = {}
