"""Keeps a process's `ControlPlane` and routing `Registry` caught up with the system partition.

Every process holds the whole control plane in memory (it is small) and refreshes it when the
system partition advances; a lookup that misses catches up once before answering "unknown", so
a record written by another process a moment ago is never reported missing.
"""

from __future__ import annotations

import anyio

from spine.domain import routing
from spine.domain.control_plane import HANDLES, ControlPlane
from spine.domain.partition import Partition
from spine.domain.ports import EventSpine, Notifier

_HANDLES = HANDLES | routing.HANDLES


class ControlPlaneProjector:
    def __init__(self, spine: EventSpine, notifier: Notifier, partition: Partition) -> None:
        self.state = ControlPlane()
        self.registry = routing.Registry()
        self.partition = partition
        self._spine = spine
        self._notifier = notifier
        self._lock = anyio.Lock()

    async def catch_up(self) -> int:
        """Apply every control-plane event up to the current head; answer that position."""
        async with self._lock:
            while True:
                page = await self._spine.read(
                    self.partition, after=self.state.position, limit=1000, types=_HANDLES
                )
                for event in page.events:
                    if event.type in routing.HANDLES:
                        self.registry.apply(event)
                    else:
                        self.state.apply(event)
                self.state.position = page.next
                if page.next >= page.head:
                    return page.next

    async def follow(self, poll_seconds: float) -> None:
        """Run until cancelled: catch up whenever the system partition advances (or a poll passes)."""
        async with self._notifier.subscribe(self.partition) as subscription:
            while True:
                position = await self.catch_up()
                await subscription.wait(position, poll_seconds)
