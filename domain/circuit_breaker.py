"""A circuit breaker: the state machine that lets a failing backend fail fast.

    closed     calls go through; `failures` failures in a row open the breaker
    open       calls are refused at once for `cool_down_seconds` (`Admission.retry_after` says
               how long is left): nobody waits a timeout on a backend known to be down
    half_open  the cool-down is over: one call, the probe, goes through; its success closes the
               breaker, its failure opens it for another cool-down. Other calls are refused
               while it is in flight.

Any success closes the breaker (the backend answered). A call that ends with neither (it was
cancelled) is `abandoned`: a probe abandoned so frees its place for the next call.

Pure: time comes from the `clock` passed in (seconds, monotonic), so tests move it by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

import msgspec

BreakerState = Literal["closed", "open", "half_open"]

# While a probe is in flight nobody knows when the next call may pass: ask again soon.
PROBE_RETRY_SECONDS: Final = 1.0


class BreakerPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How many failures in a row open a breaker, and how long it stays open before a probe."""

    failures: int = 3
    cool_down_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ValueError("a breaker opens after at least 1 failure")
        if not self.cool_down_seconds > 0:
            raise ValueError("a breaker's cool-down is a positive number of seconds")


class Admission(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to "may a call go through now?"; hand it back with the call's outcome."""

    allowed: bool
    probe: bool = False
    retry_after: float | None = None  # when refused: seconds until a call may pass


class BreakerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator sees: the state, failures in a row, and when the next call may pass."""

    state: BreakerState
    failures: int
    retry_after_seconds: float | None = None


class CircuitBreaker:
    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None  # None: closed
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._remaining() <= 0 else "open"

    def status(self) -> BreakerStatus:
        """The state, without admitting anything (diagnostics read it; it never waits)."""
        retry_after = self.refusal()
        shown = None if retry_after is None else round(retry_after, 3)
        return BreakerStatus(state=self.state, failures=self._failures, retry_after_seconds=shown)

    def refusal(self) -> float | None:
        """Seconds until a call may pass, or None when one would be let through now."""
        if self._opened_at is None:
            return None
        remaining = self._remaining()
        if remaining > 0:
            return remaining
        return PROBE_RETRY_SECONDS if self._probing else None

    def admit(self) -> Admission:
        """Let a call through (in half-open state, as the one probe), or refuse it."""
        retry_after = self.refusal()
        if retry_after is not None:
            return Admission(allowed=False, retry_after=retry_after)
        if self._opened_at is None:
            return Admission(allowed=True)
        self._probing = True
        return Admission(allowed=True, probe=True)

    def succeeded(self, admission: Admission) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failed(self, admission: Admission) -> None:
        self._failures += 1
        if admission.probe:
            self._probing = False
        if self._opened_at is not None or self._failures >= self.policy.failures:
            # a failed probe, or a late failure while open: a full cool-down from now
            self._opened_at = self._clock()

    def abandoned(self, admission: Admission) -> None:
        if admission.probe:
            self._probing = False

    def _remaining(self) -> float:
        assert self._opened_at is not None
        return self._opened_at + self.policy.cool_down_seconds - self._clock()
