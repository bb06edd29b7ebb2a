"""Route timeouts: `connect_timeout_seconds` and `request_timeout_seconds`, in a route's config and
in a backend URL's query."""

from __future__ import annotations

import pytest

from domain.backend_url import parse_backend_url
from domain.errors import InvalidRequest
from domain.timeouts import Timeouts, timeouts_of


def test_defaults_fail_fast() -> None:
    assert timeouts_of({}) == Timeouts(connect=2.0, request=5.0)


def test_a_route_sets_either() -> None:
    assert timeouts_of({"connect_timeout_seconds": 0.5}) == Timeouts(connect=0.5, request=5.0)
    assert timeouts_of({"request_timeout_seconds": 30}) == Timeouts(connect=2.0, request=30.0)


@pytest.mark.parametrize("bad", [0, -1, 301, float("nan"), float("inf"), True, "soon", [], {}])
def test_what_is_no_number_of_seconds_is_refused(bad: object) -> None:
    with pytest.raises(InvalidRequest, match="request_timeout_seconds"):
        timeouts_of({"request_timeout_seconds": bad})


def test_a_url_carries_them_as_numbers_and_back() -> None:
    url = "dynamodb://spine?region=eu-west-1&connect_timeout_seconds=0.5&request_timeout_seconds=3"
    backend = parse_backend_url(url)
    assert (backend.config["connect_timeout_seconds"], backend.config["request_timeout_seconds"]) == (
        0.5,
        3.0,
    )
    assert parse_backend_url(backend.url) == backend
    with pytest.raises(InvalidRequest, match="connect_timeout_seconds"):
        parse_backend_url("firestore://p?connect_timeout_seconds=soon")
