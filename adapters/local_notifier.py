"""In-process notifier: wakes followers in this process when a partition advances."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from domain.partition import Partition


class LocalSubscription:
    """Remembers the highest announced position, so a wake-up before `wait` is never lost."""

    def __init__(self) -> None:
        self.latest = 0
        self._changed = anyio.Event()

    def announce(self, position: int) -> None:
        if position > self.latest:
            self.latest = position
            self._changed.set()

    async def wait(self, after: int, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while self.latest <= after:
                if self._changed.is_set():
                    self._changed = anyio.Event()
                await self._changed.wait()
        return self.latest > after


class LocalNotifier:
    """Fan-out by partition key inside one event loop. Cross-process delivery is `RedisNotifier`."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[LocalSubscription]] = defaultdict(set)

    async def publish(self, partition: Partition, position: int) -> None:
        self.announce(partition.key, position)

    def announce(self, partition_key: str, position: int) -> None:
        for subscription in self._subscribers.get(partition_key, ()):
            subscription.announce(position)

    @asynccontextmanager
    async def subscribe(self, partition: Partition) -> AsyncIterator[LocalSubscription]:
        subscription = LocalSubscription()
        subscribers = self._subscribers[partition.key]
        subscribers.add(subscription)
        try:
            yield subscription
        finally:
            subscribers.discard(subscription)
            if not subscribers:
                self._subscribers.pop(partition.key, None)
