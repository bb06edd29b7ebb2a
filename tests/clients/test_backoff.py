"""The client's pure rules: how long to wait before trying again."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from spine_client._retry import full_jitter
from spine_client.errors import retry_after_of


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("3", 3.0), (" 0 ", 0.0), ("soon", None), ("-1", None), ("1.5", None)],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    assert retry_after_of(httpx.Response(503, headers=headers)) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    waited = retry_after_of(httpx.Response(503, headers={"Retry-After": later}))
    assert waited is not None
    assert 100 < waited <= 120
    past = email.utils.formatdate(time.time() - 120, usegmt=True)
    assert retry_after_of(httpx.Response(503, headers={"Retry-After": past})) == 0.0


def test_full_jitter_doubles_per_failure_up_to_its_cap() -> None:
    top = [full_jitter(2.0, 30.0, failures, rand=lambda: 1.0) for failures in range(1, 8)]
    assert top == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert full_jitter(2.0, 30.0, 3, rand=lambda: 0.0) == 0.0
    assert full_jitter(2.0, 30.0, 10_000, rand=lambda: 0.5) == 15.0  # no overflow, however long it fails
