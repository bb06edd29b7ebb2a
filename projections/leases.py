"""Leases: of several processes, only the holder of a space's lease writes it (projects a view,
builds a generation, takes a snapshot); the others wait or follow."""

from __future__ import annotations

import time

from domain.ports import ViewStore

LEASE_SECONDS = 10.0


class Lease:
    """A space's lease, renewed when a third of it is left; asks the store only then."""

    def __init__(self, views: ViewStore, space: str, holder: str) -> None:
        self._views = views
        self.space = space
        self._holder = holder
        self._renew_at = 0.0

    @property
    def due(self) -> bool:
        """Whether the next `held` asks the store."""
        return time.monotonic() >= self._renew_at

    async def held(self) -> bool:
        now = time.monotonic()
        if now < self._renew_at:
            return True
        if await self._views.lease(self.space, self._holder, LEASE_SECONDS):
            self._renew_at = now + LEASE_SECONDS * 2 / 3
            return True
        self._renew_at = 0.0
        return False

    async def release(self) -> None:
        """Let the lease lapse now (a zero-length renewal), so another holder may take it at once."""
        if self._renew_at:
            await self._views.lease(self.space, self._holder, 0.0)
        self._renew_at = 0.0
