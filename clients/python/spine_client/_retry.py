"""When a request is sent again, without I/O: the async and the sync client follow the same steps.

After each try, `Attempts` says what comes next: `Done` (the decoded answer), `Wait` (then send
again), `Refresh` (ask the token provider for a fresh token, then send again), or it raises.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import httpx

from spine_client._calls import Call
from spine_client.errors import SpineClientError, SpineConnectionError, SpineTimeoutError, error_of

T = TypeVar("T")

# Refused before anything was done (Spine's concurrency and rate limits): safe for any request.
_RETRY_ALWAYS: Final = frozenset({429})
# The server or a proxy in front of it could not answer: safe for requests that can be repeated.
_RETRY_IF_IDEMPOTENT: Final = frozenset({502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How a request is tried again after a connection error, a 429, or (for requests safe to
    repeat: reads, PUT, DELETE, appends and the writes with an idempotency id) a 502/503/504.

    At most `attempts` tries in all, and none started past `deadline` seconds after the first.
    Between tries it waits the answer's `Retry-After`, else a random delay up to `base_delay`
    doubled per failure, at most `max_delay` (exponential backoff with full jitter).
    """

    attempts: int = 5
    deadline: float = 30.0
    base_delay: float = 0.2
    max_delay: float = 5.0


NO_RETRY: Final = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class Refresh:
    """Ask the token provider for a fresh token, then try again."""


Step = Done[T] | Wait | Refresh


def full_jitter(base: float, cap: float, failures: int, rand: Callable[[], float] = random.random) -> float:
    """A delay in [0, min(cap, base * 2**(failures-1))): spreads clients that failed together."""
    return rand() * min(cap, base * 2.0 ** min(max(failures - 1, 0), 32))


class Attempts(Generic[T]):
    """The tries of one call."""

    def __init__(
        self,
        call: Call[T],
        policy: RetryPolicy,
        *,
        can_refresh: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._call = call
        self._policy = policy
        self._can_refresh = can_refresh
        self._clock = clock
        self._started = clock()
        self._failures = 0
        self._refreshed = False

    def answered(self, response: httpx.Response) -> Step[T]:
        """The next step after an answer (its body read)."""
        if response.is_success:
            return Done(self._call.read(response))
        error = error_of(response)
        status = response.status_code
        if status == 401 and self._can_refresh and not self._refreshed:
            self._refreshed = True  # once per call: a fresh token refused again is final
            return Refresh()
        if status in _RETRY_ALWAYS or (status in _RETRY_IF_IDEMPOTENT and self._call.idempotent):
            return self._wait(error, error.retry_after)
        raise error

    def failed(self, exc: httpx.TransportError) -> Step[T]:
        """The next step after no answer."""
        what = self._call.describe()
        error: SpineConnectionError
        if isinstance(exc, httpx.TimeoutException):
            error = SpineTimeoutError(f"{what} got no answer in time: {exc!r}")
        else:
            error = SpineConnectionError(f"{what} failed: {exc!r}")
        error.__cause__ = exc
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        if not (self._call.idempotent or never_sent):
            raise error  # it may have been applied: only the caller knows whether to send it again
        return self._wait(error, None)

    def _wait(self, error: SpineClientError | SpineConnectionError, retry_after: float | None) -> Wait:
        self._failures += 1
        policy = self._policy
        delay = retry_after
        if delay is None:
            delay = full_jitter(policy.base_delay, policy.max_delay, self._failures)
        if self._failures >= policy.attempts or self._clock() + delay - self._started > policy.deadline:
            raise error
        return Wait(delay)
