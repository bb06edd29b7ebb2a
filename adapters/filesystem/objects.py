"""The lab's object store: blobs as files under one directory (`ObjectStore`, lab only).

Layout under `root` (each name's segments percent-encoded, so any name maps to one path and none
leaves the tree; a directory segment ends in `@`, which encoding never produces, so blobs `a/b`
and `a/b/c` can live side by side as they do in a bucket):

    blobs/a@/b       the bytes of blob `a/b`
    types/a@/b       its content type
    partial/<uuid>   an upload in progress

`put` writes to a file in `partial/`, fsyncs it and `os.replace`s it to its name: the rename is
atomic within the tree, so a blob is either absent or whole, and an upload that fails (too large,
the client gone, cancelled) leaves nothing but is removed. Blocking file calls run in worker
threads, a part (`part_size`) at a time, so the event loop never waits on the disk and memory
holds one part. `OSError`s become `BackendUnavailable` naming the errno, never a path.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import BinaryIO
from urllib.parse import quote

import anyio

from adapters.blob_parts import Parts
from domain.blobs import BlobHead, ByteRange, SignedRequest, StoredBlob
from domain.errors import BackendUnavailable, BlobMissing, InvalidRequest

KIND = "object_store"
PART_SIZE = 1024 * 1024  # what one thread call writes or reads: few hops, little memory
_DIRECTORY = "@"


class FilesystemObjectStore:
    """`async with FilesystemObjectStore(root) as store`; `root` is created when missing."""

    def __init__(self, root: Path, *, part_size: int = PART_SIZE) -> None:
        self.root = root
        self._blobs = root / "blobs"
        self._types = root / "types"
        self._partial = root / "partial"
        self._part_size = part_size

    async def __aenter__(self) -> FilesystemObjectStore:
        with _translated():
            await anyio.to_thread.run_sync(self._make_dirs)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def put(
        self, name: str, chunks: AsyncIterable[bytes], *, content_type: str, max_bytes: int
    ) -> StoredBlob:
        relative = _relative(name)
        partial = self._partial / uuid.uuid4().hex
        parts = Parts(chunks, part_size=self._part_size, max_bytes=max_bytes)
        with _translated():
            file = await anyio.to_thread.run_sync(_create, partial)
        try:
            async for data, _ in parts:
                with _translated():
                    await anyio.to_thread.run_sync(file.write, data)
                del data  # not kept while the next part is gathered
            with _translated():
                await anyio.to_thread.run_sync(self._publish, file, partial, relative, content_type)
        except BaseException:
            with anyio.CancelScope(shield=True):  # cancelled or not, the partial file goes
                await anyio.to_thread.run_sync(_discard, file, partial)
            raise
        return parts.stored()

    async def read(self, name: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        chunks = self._chunks(_relative(name), byte_range)
        await anext(chunks)  # opened, or BlobMissing now rather than mid-stream
        return chunks

    async def head(self, name: str) -> BlobHead | None:
        relative = _relative(name)
        with _translated():
            return await anyio.to_thread.run_sync(self._head, relative)

    async def delete(self, name: str) -> None:
        relative = _relative(name)
        with _translated():
            await anyio.to_thread.run_sync(self._delete, relative)

    async def signed_upload(
        self, name: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> SignedRequest | None:
        return None  # nothing but the service can write here: it hands out its own URL

    async def signed_download(self, name: str, *, expires_in: int) -> SignedRequest | None:
        return None

    async def probe(self) -> None:
        with _translated():
            await anyio.to_thread.run_sync(self._probe)

    async def _chunks(self, relative: Path, byte_range: ByteRange | None) -> AsyncGenerator[bytes, None]:
        path = self._blobs / relative
        with _translated():
            try:
                file = await anyio.to_thread.run_sync(_open_blob, path)
            except (FileNotFoundError, NotADirectoryError):
                raise BlobMissing(str(relative)) from None
        try:
            yield b""  # the caller's `anext` in `read`: the blob is open
            first, left = (0, -1) if byte_range is None else (byte_range.first, byte_range.length)
            if first:
                with _translated():
                    await anyio.to_thread.run_sync(file.seek, first)
            while left != 0:
                wanted = self._part_size if left < 0 else min(left, self._part_size)
                with _translated():
                    data = await anyio.to_thread.run_sync(file.read, wanted)
                if not data:
                    return
                left = left if left < 0 else left - len(data)
                yield data
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(file.close)

    def _make_dirs(self) -> None:
        for directory in (self._blobs, self._types, self._partial):
            directory.mkdir(parents=True, exist_ok=True)

    def _publish(self, file: BinaryIO, partial: Path, relative: Path, content_type: str) -> None:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        # the type first: a blob is visible once its bytes are, and never without its type
        type_path = self._types / relative
        type_path.parent.mkdir(parents=True, exist_ok=True)
        typed = self._partial / f"{partial.name}.type"
        typed.write_text(content_type, encoding="utf-8")
        os.replace(typed, type_path)
        path = self._blobs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, path)
        _fsync_dir(path.parent)  # the rename itself survives a power cut

    def _head(self, relative: Path) -> BlobHead | None:
        try:
            size = (self._blobs / relative).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            content_type: str | None = (self._types / relative).read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            content_type = None
        return BlobHead(size=size, content_type=content_type)

    def _delete(self, relative: Path) -> None:
        for path in (self._blobs / relative, self._types / relative):
            with suppress(FileNotFoundError, NotADirectoryError):  # what is not there is deleted
                path.unlink()

    def _probe(self) -> None:
        probe = self._partial / f"probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()


def _relative(name: str) -> Path:
    """The blob's path below `blobs/` (and `types/`). Names come from the use case, but a name that
    could leave the tree (`..`, absolute, empty segments, NUL) is refused here all the same."""
    segments = name.split("/")
    if "\x00" in name or any(segment in {"", ".", ".."} for segment in segments):
        raise InvalidRequest("the object name is not a valid blob name")
    encoded = [quote(segment, safe="") for segment in segments]
    if any(len(segment) + len(_DIRECTORY) > 255 for segment in encoded):  # NAME_MAX of every filesystem here
        raise InvalidRequest("a segment of the object name is too long for the filesystem store")
    return Path(*(segment + _DIRECTORY for segment in encoded[:-1]), encoded[-1])


def _create(path: Path) -> BinaryIO:
    return path.open("xb")


def _open_blob(path: Path) -> BinaryIO:
    return path.open("rb")


def _discard(file: BinaryIO, partial: Path) -> None:
    file.close()
    partial.unlink(missing_ok=True)
    Path(f"{partial}.type").unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        reason = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        raise BackendUnavailable(KIND, f"the filesystem object store failed ({reason})") from exc
