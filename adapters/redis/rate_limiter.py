"""GCRA rate limiting on Redis: one `EVALSHA` per request, time from the Redis server.

The script reads the bucket's theoretical arrival time, decides and writes it back with an expiry
of one window, all inside Redis: several processes sharing a Redis share each budget exactly, and
no two clocks disagree (the time is Redis's own `TIME`). Same arithmetic as `domain.rate_limits.gcra`.

Timeouts (`domain.timeouts`): connecting takes at most `connect_timeout_seconds`, a call
`request_timeout_seconds`; any Redis or socket failure is `BackendUnavailable("rate_limit")`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from domain.errors import BackendUnavailable
from domain.rate_limits import Limit, Verdict
from domain.timeouts import Timeouts

KIND = "rate_limit"
DEFAULT_PREFIX = "spine:rl:"

# KEYS[1] bucket; ARGV[1] limit, ARGV[2] window (s). Answers {allowed, remaining, reset µs, retry µs}.
_GCRA = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000000
local interval = window / limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
local base = math.max(tat, now)
local new_tat = base + interval
local allow_at = new_tat - window
if allow_at > now then
  local remaining = math.max(math.floor((window - (base - now)) / interval), 0)
  return {0, remaining, base - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(window / 1000) + 1)
return {1, math.floor((window - (new_tat - now)) / interval + 1e-9), new_tat - now, 0}
"""


class RedisRateLimiter:
    """`RateLimiter` on one Redis; use as `async with RedisRateLimiter(url) as limiter`."""

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        timeouts: Timeouts | None = None,
    ) -> None:
        timeouts = timeouts or Timeouts()
        options: dict[str, Any] = {
            "socket_connect_timeout": timeouts.connect,
            "socket_timeout": timeouts.request,
        }
        if password is not None:
            options["password"] = password
        self._redis = aioredis.from_url(url, **options)
        self._prefix = prefix
        self._script = self._redis.register_script(_GCRA)  # EVALSHA; loads the script on NOSCRIPT

    async def __aenter__(self) -> RedisRateLimiter:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._redis.aclose()

    async def probe(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def admit(self, key: str, limit: Limit) -> Verdict:
        try:
            allowed, remaining, reset, retry = await self._script(
                keys=[self._prefix + key], args=[limit.limit, limit.window_seconds]
            )
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return Verdict(
            allowed=bool(allowed),
            remaining=int(remaining),
            reset_seconds=int(reset) / 1e6,
            retry_after=int(retry) / 1e6,
        )


def _unavailable(exc: Exception) -> BackendUnavailable:
    # the type only: a driver's message may quote the URL, password included
    return BackendUnavailable(KIND, f"the rate-limit backend (redis) failed ({type(exc).__name__})")
