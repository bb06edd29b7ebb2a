"""An EventSpine decorator that counts appends, measures their latency, and calls the backend
through its circuit breaker (`app.breakers`): while the backend is known to be down, every
call is refused at once, and no exception of the adapter reaches a client untranslated."""

from __future__ import annotations

import time
from collections.abc import Collection

from app.breakers import Guard
from app.http.metrics import Metrics
from domain.append import AppendRequest
from domain.errors import SpineError
from domain.events import AppendResult, EncodedPage, Event, Page
from domain.partition import Partition
from domain.ports import EventSpine


class MeteredSpine:
    def __init__(self, inner: EventSpine, metrics: Metrics, guard: Guard) -> None:
        self._inner = inner
        self._metrics = metrics
        self.guard = guard
        self._appended_ok = metrics.appends.labels("ok")  # looked up once: every append counts here

    async def append(self, partition: Partition, request: AppendRequest) -> AppendResult:
        started = time.perf_counter()
        try:
            result = await self.guard.call(lambda: self._inner.append(partition, request))
        except SpineError as exc:
            self._metrics.appends.labels(exc.error_code).inc()
            raise
        self._metrics.append_seconds.observe(time.perf_counter() - started)
        self._appended_ok.inc()
        self._metrics.appended_events.inc(result.last_position - result.first_position + 1)
        return result

    async def read(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> Page:
        return await self.guard.call(
            lambda: self._inner.read(partition, after=after, limit=limit, stream=stream, types=types)
        )

    async def read_encoded(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> EncodedPage:
        return await self.guard.call(
            lambda: self._inner.read_encoded(partition, after=after, limit=limit, stream=stream, types=types)
        )

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        return await self.guard.call(
            lambda: self._inner.read_stream(partition, stream, after_version=after_version, limit=limit)
        )

    async def head(self, partition: Partition) -> int:
        return await self.guard.call(lambda: self._inner.head(partition))

    async def remove(self, partition: Partition, positions: Collection[int]) -> int:
        return await self.guard.call(lambda: self._inner.remove(partition, positions))
