"""Keeps a process's `ControlPlane` and routing `Registry` caught up with the system partition.

Every process holds the whole control plane in memory (it is small) and refreshes it when the
system partition advances; a lookup that misses catches up once before answering "unknown", so
a record written by another process a moment ago is never reported missing. A stored record that
does not decode (an older version's, or one with an id that breaks today's rules) is skipped and
logged once, like a projection skips an event it cannot read: it never keeps the service down.
"""

from __future__ import annotations

import logging

import anyio
import msgspec

from domain import routing
from domain.control_plane import HANDLES, ControlPlane
from domain.errors import SpineError
from domain.events import Event
from domain.partition import Partition
from domain.ports import EventSpine, Notifier
from projections.runtime import retry_delay

log = logging.getLogger(f"spine.{__name__}")

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
                    self._apply(event)
                self.state.position = page.next
                if page.next >= page.head:
                    return page.next

    def _apply(self, event: Event) -> None:
        try:
            if event.type in routing.HANDLES:
                self.registry.apply(event)
            else:
                self.state.apply(event)
        except (msgspec.ValidationError, SpineError):  # read once per process: logged once
            log.warning(
                "control-plane record skipped: it does not decode",
                extra={"position": event.position, "type": event.type, "stream": event.stream[:300]},
            )

    async def follow(self, poll_seconds: float) -> None:
        """Run until cancelled: catch up whenever the system partition advances (or a poll passes)."""
        async with self._notifier.subscribe(self.partition) as subscription:
            failures = 0
            while True:
                try:
                    position = await self.catch_up()
                except Exception as exc:  # the system spine is down: serve what is known
                    failures += 1
                    log.warning(
                        "control plane not advanced: retrying",
                        extra={"error": getattr(exc, "error_code", type(exc).__name__), "failures": failures},
                    )
                    await anyio.sleep(retry_delay(failures, poll_seconds))
                    continue
                failures = 0
                await subscription.wait(position, poll_seconds)
