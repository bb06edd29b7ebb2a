"""The rate-limit rules: GCRA's arithmetic, which limit applies, route classes, keys and headers."""

from __future__ import annotations

import pytest

from domain.rate_limits import (
    Limit,
    LimitsSet,
    bucket_key,
    gcra,
    headers_of,
    route_class_of,
)

FOUR_A_MINUTE = Limit(limit=4, window_seconds=60)


def test_gcra_admits_a_burst_of_the_limit_then_one_request_per_interval() -> None:
    tat, now = None, 1000.0
    verdicts = []
    for _ in range(5):
        verdict, tat = gcra(tat, now, FOUR_A_MINUTE)
        verdicts.append(verdict)
    assert [v.allowed for v in verdicts] == [True, True, True, True, False]
    assert [v.remaining for v in verdicts] == [3, 2, 1, 0, 0]
    assert verdicts[-1].retry_after == pytest.approx(15.0)  # window / limit
    assert verdicts[-1].reset_seconds == pytest.approx(60.0)
    refused_at, _ = gcra(tat, now + 14.9, FOUR_A_MINUTE)
    admitted_at, _ = gcra(tat, now + 15.0, FOUR_A_MINUTE)
    assert (refused_at.allowed, admitted_at.allowed) == (False, True)


def test_a_refused_request_leaves_the_bucket_as_it_was() -> None:
    tat = None
    for _ in range(4):
        _, tat = gcra(tat, 0.0, FOUR_A_MINUTE)
    _, after_refusal = gcra(tat, 0.0, FOUR_A_MINUTE)
    assert after_refusal == tat


def test_an_idle_bucket_is_full_again_after_one_window() -> None:
    tat = None
    for _ in range(4):
        _, tat = gcra(tat, 0.0, FOUR_A_MINUTE)
    verdict, _ = gcra(tat, 60.0, FOUR_A_MINUTE)
    assert (verdict.allowed, verdict.remaining) == (True, 3)


def test_the_most_specific_limit_applies() -> None:
    def writes(n: int) -> dict[str, Limit]:
        return {"writes": Limit(limit=n, window_seconds=60)}

    limits = LimitsSet(tenant_id="t", classes=writes(1), projects={"p": writes(2)}, users={"u": writes(3)})
    assert [
        limits.limit_for("q", "v", "writes"),
        limits.limit_for("p", "v", "writes"),
        limits.limit_for("p", "u", "writes"),
        limits.limit_for("q", "u", "writes"),
    ] == [writes(n)["writes"] for n in (1, 2, 3, 3)]
    assert limits.limit_for("p", "u", "reads") is None


def test_outages_fail_open_for_reads_and_closed_for_writes_unless_the_tenant_says_otherwise() -> None:
    default = LimitsSet(tenant_id="t")
    assert [default.fails_open(c) for c in ("reads", "sse", "writes", "analytics")] == [
        True,
        True,
        False,
        False,
    ]
    chosen = LimitsSet(tenant_id="t", on_unavailable={"reads": "closed", "writes": "open"})
    assert (chosen.fails_open("reads"), chosen.fails_open("writes")) == (False, True)


@pytest.mark.parametrize(
    ("method", "opt", "expected"),
    [
        ("GET", {}, "reads"),
        ("HEAD", {}, "reads"),
        ("POST", {}, "writes"),
        ("DELETE", {}, "writes"),
        ("GET", {"follower": True}, "sse"),
        ("POST", {"rate_limit": "analytics"}, "analytics"),
    ],
)
def test_a_route_s_class_comes_from_its_opt_or_its_method(
    method: str, opt: dict[str, object], expected: str
) -> None:
    assert route_class_of(method, opt) == expected


def test_bucket_keys_never_collide_and_name_the_limit() -> None:
    keys = {
        bucket_key("a:b", "c", "u", "writes", FOUR_A_MINUTE),
        bucket_key("a", "b:c", "u", "writes", FOUR_A_MINUTE),
        bucket_key("a", "b", "c:u", "writes", FOUR_A_MINUTE),
        bucket_key("a", "b", "c:u", "reads", FOUR_A_MINUTE),
        bucket_key("a", "b", "c:u", "reads", Limit(limit=5, window_seconds=60)),
    }
    assert len(keys) == 5


def test_headers_follow_the_ietf_draft() -> None:
    verdict, _ = gcra(None, 0.0, FOUR_A_MINUTE)
    assert headers_of("writes", FOUR_A_MINUTE, verdict) == {
        "RateLimit-Policy": '"writes";q=4;w=60',
        "RateLimit": '"writes";r=3;t=15',
    }
