"""What every object-store adapter does to an upload's chunks on their way to the backend.

An HTTP body arrives in chunks of whatever size the client and the server chose; a backend takes
parts (S3's multipart parts, a block blob's blocks, a thread's write). `Parts` regroups the chunks
into parts of one size, counting and hashing the bytes as they pass and refusing them with
`ObjectTooLarge` as soon as they exceed the limit.

Memory: a part is joined from the chunks that make it (two parts' worth for a moment), and the
generator reads one chunk ahead so that each part says whether it is the last (an adapter sends
an object that fits in one part in a single request). A consumer that drops each part once sent
(`del`) holds about two parts at most.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator

from domain.blobs import StoredBlob
from domain.errors import ObjectTooLarge


class Parts:
    """`async for data, last in Parts(chunks, part_size=…, max_bytes=…)`: every part is
    `part_size` bytes but the last (an empty body is one empty last part); `stored()` once done."""

    def __init__(self, chunks: AsyncIterable[bytes], *, part_size: int, max_bytes: int) -> None:
        if part_size < 1:
            raise ValueError("a part holds at least one byte")
        self._chunks = chunks
        self._part_size = part_size
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self.size = 0

    def stored(self) -> StoredBlob:
        return StoredBlob(size=self.size, sha256=self._digest.hexdigest())

    async def __aiter__(self) -> AsyncIterator[tuple[bytes, bool]]:
        source = aiter(self._chunks)
        held: list[memoryview] = []
        count = 0
        chunk = await self._pull(source)
        while True:
            while chunk is not None and count < self._part_size:
                take = min(self._part_size - count, len(chunk))
                held.append(chunk[:take])  # views: no copy until the join
                count += take
                chunk = chunk[take:] or await self._pull(source)
            part = b"".join(held)
            held.clear()
            count = 0
            last = chunk is None
            yield part, last
            del part  # before the next part is joined: never two of them here
            if last:
                return

    async def _pull(self, source: AsyncIterator[bytes]) -> memoryview | None:
        """The next chunk that holds a byte, counted and hashed; None at the end."""
        async for chunk in source:
            if not chunk:
                continue
            self.size += len(chunk)
            if self.size > self._max_bytes:
                raise ObjectTooLarge(self._max_bytes)
            self._digest.update(chunk)
            return memoryview(chunk)
        return None
