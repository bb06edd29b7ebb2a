"""The Redis GCRA script against a real Redis: the same verdicts as `domain.rate_limits.gcra`,
one budget however many clients share it, and `BackendUnavailable` when Redis is unreachable.

The window is an hour: nothing refills while the test runs, so counts are exact whatever the time.
"""

from __future__ import annotations

import uuid

import anyio
import pytest

from adapters.redis.rate_limiter import RedisRateLimiter
from domain.errors import BackendUnavailable
from domain.rate_limits import Limit
from domain.timeouts import Timeouts
from tests.peers import free_port

pytestmark = pytest.mark.anyio
HOURLY = Limit(limit=3, window_seconds=3600)


async def test_a_burst_of_the_limit_is_admitted_then_refused_until_one_interval(redis_url: str) -> None:
    key = uuid.uuid4().hex
    async with RedisRateLimiter(redis_url, prefix="test:rl:") as limiter:
        verdicts = [await limiter.admit(key, HOURLY) for _ in range(5)]
    assert [(v.allowed, v.remaining) for v in verdicts] == [
        (True, 2),
        (True, 1),
        (True, 0),
        (False, 0),
        (False, 0),
    ]
    assert 1190 < verdicts[3].retry_after <= 1200  # window / limit
    assert 3590 < verdicts[2].reset_seconds <= 3600


async def test_concurrent_clients_share_one_budget(redis_url: str) -> None:
    key, admitted = uuid.uuid4().hex, []
    limit = Limit(limit=7, window_seconds=3600)
    async with (
        RedisRateLimiter(redis_url, prefix="test:rl:") as one,
        RedisRateLimiter(redis_url, prefix="test:rl:") as two,
    ):

        async def ask(limiter: RedisRateLimiter) -> None:
            admitted.append((await limiter.admit(key, limit)).allowed)

        async with anyio.create_task_group() as group:
            for i in range(20):
                group.start_soon(ask, (one, two)[i % 2])
    assert admitted.count(True) == 7


async def test_an_unreachable_redis_is_backend_unavailable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with RedisRateLimiter(url, timeouts=Timeouts(connect=1, request=1)) as limiter:
        with pytest.raises(BackendUnavailable) as raised:
            await limiter.admit("k", HOURLY)
    assert raised.value.error_code == "rate_limit.backend_unavailable"
