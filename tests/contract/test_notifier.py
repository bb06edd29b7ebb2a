"""The Notifier contract, run against the in-process notifier and Redis pub/sub.

For Redis, the publisher and the subscriber are two notifier instances (two connections), as two
processes on one log would be.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest

from adapters.local_notifier import LocalNotifier
from adapters.redis.notifier import RedisNotifier
from domain.partition import Partition
from domain.ports import Notifier

P = Partition(tenant_id="t1", env="dev", project_id="p1")
OTHER = Partition(tenant_id="t2", env="dev", project_id="p1")

Pair = tuple[Notifier, Notifier]
PairFactory = Callable[[], AbstractAsyncContextManager[Pair]]


@pytest.fixture(params=["local", "redis"])
def open_pair(request: pytest.FixtureRequest) -> PairFactory:
    """Opens (publisher, subscriber) inside the test: a notifier's listener task must live in one task."""
    if request.param == "local":

        @asynccontextmanager
        async def local() -> AsyncIterator[Pair]:
            notifier = LocalNotifier()
            yield notifier, notifier

        return local
    url = request.getfixturevalue("redis_url")

    @asynccontextmanager
    async def redis() -> AsyncIterator[Pair]:
        prefix = f"spine-test:{uuid.uuid4().hex}:"  # isolates concurrent runs on one server
        async with (
            RedisNotifier(url, channel_prefix=prefix) as publisher,
            RedisNotifier(url, channel_prefix=prefix) as subscriber,
        ):
            with anyio.fail_after(10):
                await subscriber.listening.wait()
            yield publisher, subscriber

    return redis


async def test_a_subscriber_is_woken_by_a_later_publish(open_pair: PairFactory) -> None:
    async with open_pair() as (publisher, subscriber), subscriber.subscribe(P) as subscription:
        await publisher.publish(P, 7)
        with anyio.fail_after(10):
            assert await subscription.wait(6, timeout=10)


async def test_a_publish_before_wait_is_not_lost(open_pair: PairFactory) -> None:
    async with open_pair() as (publisher, subscriber), subscriber.subscribe(P) as subscription:
        await publisher.publish(P, 3)
        with anyio.fail_after(10):
            assert await subscription.wait(0, timeout=10)
        # already announced: answers at once, without another publish
        assert await subscription.wait(2, timeout=0)


async def test_wait_times_out_when_nothing_newer_is_announced(open_pair: PairFactory) -> None:
    async with open_pair() as (publisher, subscriber), subscriber.subscribe(P) as subscription:
        await publisher.publish(OTHER, 99)
        await publisher.publish(P, 5)
        with anyio.fail_after(10):
            assert await subscription.wait(4, timeout=10)
        assert not await subscription.wait(5, timeout=0.05)


async def test_other_partitions_do_not_wake_a_subscriber(open_pair: PairFactory) -> None:
    async with (
        open_pair() as (publisher, subscriber),
        subscriber.subscribe(P) as mine,
        subscriber.subscribe(OTHER) as theirs,
    ):
        await publisher.publish(OTHER, 1)
        with anyio.fail_after(10):
            assert await theirs.wait(0, timeout=10)
        assert not await mine.wait(0, timeout=0.05)
