"""The projection runner: keeps one projection of one partition up to date.

Loop: read the log after the projection's checkpoint (only the event types it handles; the page's
`next` passes the rest), turn events into view ops with the projection's pure `apply`, write the
ops and the new checkpoint in one batch, then wait for the partition to advance. A crash between
reading and writing only means the same events are read again; their ops are skipped because no
document moves backwards, so nothing is counted twice.
"""

from __future__ import annotations

from typing import Protocol

import anyio

from spine.domain.events import Event
from spine.domain.partition import Partition
from spine.domain.ports import EventSpine, Notifier, ViewStore
from spine.domain.views import ViewDoc, ViewOp

PAGE = 500
_Docs = list[ViewDoc]  # named here: inside Runner, `list` is the method


class Projection(Protocol):
    """A read view's rules: which events it reads, and the ops each one makes. Pure."""

    @property
    def name(self) -> str: ...

    @property
    def handles(self) -> frozenset[str] | None:
        """The event types it reads; None: every event of the partition."""
        ...

    def apply(self, event: Event) -> list[ViewOp]: ...


class Runner:
    def __init__(
        self,
        projection: Projection,
        partition: Partition,
        spine: EventSpine,
        views: ViewStore,
        notifier: Notifier,
        *,
        poll_seconds: float = 2.0,
    ) -> None:
        self.projection = projection
        self.partition = partition
        self._spine = spine
        self.views = views
        self._notifier = notifier
        self._poll_seconds = poll_seconds
        self.position = 0  # the checkpoint as of the last batch written
        self._advanced = anyio.Event()
        self._lock = anyio.Lock()

    async def catch_up(self) -> int:
        """Project every event up to the current head; answer the checkpoint reached."""
        async with self._lock:
            if self.position == 0:
                self.position = await self.views.checkpoint(self.partition, self.projection.name)
            while True:
                page = await self._spine.read(
                    self.partition, after=self.position, limit=PAGE, types=self.projection.handles or ()
                )
                if page.next == self.position:
                    return self.position
                ops = [op for event in page.events for op in self.projection.apply(event)]
                await self.views.apply(self.partition, self.projection.name, ops, checkpoint=page.next)
                self.position = page.next
                self._advanced.set()
                self._advanced = anyio.Event()
                if page.next >= page.head:
                    return self.position

    async def run(self) -> None:
        """Until cancelled: catch up whenever the partition advances, or a poll interval passes."""
        async with self._notifier.subscribe(self.partition) as subscription:
            while True:
                position = await self.catch_up()
                await subscription.wait(position, self._poll_seconds)

    async def get(self, collection: str, key: str) -> ViewDoc | None:
        """A document of the serving view, or None."""
        return await self.views.get(self.partition, collection, key)

    async def list(self, collection: str, *, prefix: str = "", after: str = "", limit: int = 100) -> _Docs:
        """Documents of the serving view whose key starts with `prefix`, in key order, after `after`."""
        return await self.views.list(self.partition, collection, prefix=prefix, after=after, limit=limit)

    async def wait_for(self, position: int, timeout: float) -> bool:
        """True once the view reflects `position` (read-your-writes), False if `timeout` passes first."""
        with anyio.move_on_after(timeout):
            while self.position < position:
                await self._advanced.wait()
        return self.position >= position
