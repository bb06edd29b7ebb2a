"""`read` for every spine adapter that stores events as JSON: its `read_encoded` page, decoded."""

from __future__ import annotations

from collections.abc import Collection

from domain.events import EncodedPage, Page, decode_page
from domain.partition import Partition


class DecodedReads:
    """Mixed into an adapter that implements `read_encoded`."""

    async def read_encoded(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> EncodedPage:
        raise NotImplementedError

    async def read(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> Page:
        page = await self.read_encoded(partition, after=after, limit=limit, stream=stream, types=types)
        # One decoder call for the whole page is several times faster than one per event.
        return decode_page(page)
