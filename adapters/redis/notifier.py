"""Redis pub/sub notifier: one spine log, several processes, each woken when it advances.

Every process pattern-subscribes to the spine's channels once and fans messages out to its local
followers. Publishing is fire-and-forget: if Redis is down, followers fall back to polling the log,
so a Redis outage costs latency, never an event.

Timeouts (`domain.timeouts`): connecting takes at most `connect_timeout_seconds` and a
publish `request_timeout_seconds` (defaults 2 s and 5 s), so an unreachable Redis neither piles up
publishing tasks nor holds a shutdown; the subscription's blocking read is exempt (redis-py waits
for messages as long as it takes) and reconnects when its connection fails.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from types import TracebackType

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from adapters.local_notifier import LocalNotifier, LocalSubscription
from domain.partition import Partition
from domain.timeouts import Timeouts

log = logging.getLogger(f"spine.{__name__}")

CHANNEL_PREFIX = "spine:head:"
_RECONNECT_DELAY_SECONDS = 1.0


class RedisNotifier:
    """Notifier over Redis pub/sub; use as `async with RedisNotifier(url) as notifier`."""

    def __init__(
        self, url: str, *, channel_prefix: str = CHANNEL_PREFIX, timeouts: Timeouts | None = None
    ) -> None:
        self._url = url
        self._prefix = channel_prefix
        self._timeouts = timeouts or Timeouts()
        self._local = LocalNotifier()
        self._redis: aioredis.Redis | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self.listening = anyio.Event()

    async def __aenter__(self) -> RedisNotifier:
        self._redis = aioredis.from_url(
            self._url, socket_connect_timeout=self._timeouts.connect, socket_timeout=self._timeouts.request
        )
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._listen)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task_group is not None
        assert self._redis is not None
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(exc_type, exc, tb)
        await self._redis.aclose()

    async def publish(self, partition: Partition, position: int) -> None:
        # Local followers need not wait for the round trip through Redis.
        self._local.announce(partition.key, position)
        assert self._redis is not None
        try:
            await self._redis.publish(self._prefix + partition.key, str(position))
        except (RedisError, OSError) as exc:
            log.warning("redis publish failed; followers will poll", extra={"error": type(exc).__name__})

    def subscribe(self, partition: Partition) -> AbstractAsyncContextManager[LocalSubscription]:
        return self._local.subscribe(partition)

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(self._prefix + "*")
                    self.listening.set()
                    async for message in pubsub.listen():
                        self._dispatch(message)
            except (RedisError, OSError) as exc:
                log.warning("redis subscription lost; retrying", extra={"error": type(exc).__name__})
            self.listening = anyio.Event()
            await anyio.sleep(_RECONNECT_DELAY_SECONDS)

    def _dispatch(self, message: dict[str, object]) -> None:
        channel, data = message.get("channel"), message.get("data")
        if not isinstance(channel, bytes) or not isinstance(data, bytes):
            return
        try:
            position = int(data)
        except ValueError:
            return
        self._local.announce(channel.decode()[len(self._prefix) :], position)
