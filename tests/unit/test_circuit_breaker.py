"""The circuit breaker's state machine, with a clock the tests move by hand."""

from __future__ import annotations

import pytest

from domain.circuit_breaker import PROBE_RETRY_SECONDS, BreakerPolicy, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(BreakerPolicy(failures=3, cool_down_seconds=10), clock)


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        admission = breaker.admit()
        assert admission.allowed
        breaker.failed(admission)


def test_a_new_breaker_is_closed_and_lets_calls_through(breaker: CircuitBreaker) -> None:
    assert breaker.state == "closed"
    assert breaker.refusal() is None
    admission = breaker.admit()
    assert (admission.allowed, admission.probe) == (True, False)


def test_it_opens_after_n_failures_in_a_row_and_then_refuses_at_once(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 2)
    assert breaker.state == "closed"
    fail(breaker)
    assert breaker.state == "open"
    clock.now += 4
    refused = breaker.admit()
    assert (refused.allowed, refused.retry_after) == (False, pytest.approx(6))
    assert breaker.status().retry_after_seconds == pytest.approx(6)
    assert breaker.status().failures == 3


def test_a_success_between_failures_starts_the_count_again(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.succeeded(breaker.admit())
    fail(breaker, 2)
    assert breaker.state == "closed"
    fail(breaker)
    assert breaker.state == "open"


def test_after_the_cool_down_one_probe_goes_through_and_its_success_closes_it(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.now += 10
    assert breaker.state == "half_open"
    probe = breaker.admit()
    assert (probe.allowed, probe.probe) == (True, True)
    # while the probe is in flight every other call is refused, and told to ask again soon
    other = breaker.admit()
    assert (other.allowed, other.retry_after) == (False, PROBE_RETRY_SECONDS)
    breaker.succeeded(probe)
    assert breaker.state == "closed"
    assert breaker.admit().allowed
    assert breaker.status().failures == 0


def test_a_failed_probe_opens_it_for_a_full_cool_down(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.now += 25
    probe = breaker.admit()
    assert probe.probe
    breaker.failed(probe)
    assert breaker.state == "open"
    assert breaker.refusal() == pytest.approx(10)
    clock.now += 9.5
    assert not breaker.admit().allowed
    clock.now += 0.5
    assert breaker.admit().probe


def test_an_abandoned_probe_frees_the_place_for_the_next_call(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    fail(breaker, 3)
    clock.now += 10
    probe = breaker.admit()
    breaker.abandoned(probe)  # cancelled: neither a success nor a failure
    assert breaker.state == "half_open"
    assert breaker.admit().probe


def test_abandoning_a_call_that_was_no_probe_does_not_free_the_probe(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    early = breaker.admit()  # let through while closed, still in flight
    fail(breaker, 3)
    clock.now += 10
    probe = breaker.admit()
    breaker.abandoned(early)
    assert not breaker.admit().allowed
    breaker.succeeded(probe)
    assert breaker.state == "closed"


def test_a_late_failure_while_open_restarts_the_cool_down(breaker: CircuitBreaker, clock: FakeClock) -> None:
    early = breaker.admit()
    fail(breaker, 3)
    clock.now += 8
    breaker.failed(early)
    assert breaker.refusal() == pytest.approx(10)


def test_a_late_success_closes_it(breaker: CircuitBreaker) -> None:
    early = breaker.admit()
    fail(breaker, 3)
    breaker.succeeded(early)  # the backend answered: it is not down
    assert breaker.state == "closed"


@pytest.mark.parametrize(("failures", "cool_down"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_a_policy_that_would_never_let_anything_through_is_refused(failures: int, cool_down: float) -> None:
    with pytest.raises(ValueError, match="breaker"):
        BreakerPolicy(failures=failures, cool_down_seconds=cool_down)
