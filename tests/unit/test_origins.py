"""The one rule for a browser origin an app may list (domain/origins.py)."""

from __future__ import annotations

import msgspec
import pytest

from domain.origins import MAX_ORIGINS, Origin, Origins, unique

SENT_BY_BROWSERS = [
    "https://app.example.com", "http://localhost:5173", "http://127.0.0.1:8080", "https://xn--bcher-kva.example",
    "http://[::1]:3000", "https://a-b.c.example", "http://localhost:443", "https://x.example:80",
    "http://x.example:65535", "http://x.example:1",
]  # fmt: skip
NEVER_SENT = [
    "https://app.example.com/", "https://App.example.com", "HTTPS://a.example", "https://a.example:443",
    "http://a.example:80", "null", "*", "https://*.a.example", "https://a.example/path", "https://a.example?q",
    "https://a.example#f", "https://u@a.example", "ftp://a.example", "https://a.example:0",
    "https://a.example:65536", "https://a.example:080", "https://a..example", "https://-a.example",
    "https://a.example\n", "https://bücher.example", "https://a.example:", "https://a_b.example", "", "https://",
    "https://" + "a" * 64 + ".example", "https://" + ".".join(["abcdefgh"] * 40),
]  # fmt: skip


@pytest.mark.parametrize("origin", SENT_BY_BROWSERS)
def test_an_origin_as_a_browser_sends_it_is_accepted(origin: str) -> None:
    assert msgspec.convert(origin, Origin) == origin


@pytest.mark.parametrize("origin", NEVER_SENT)
def test_an_origin_no_browser_sends_is_refused(origin: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(origin, Origin)


def test_an_app_lists_at_most_max_origins_each_once() -> None:
    many = [f"https://o{i}.example" for i in range(MAX_ORIGINS + 1)]
    assert msgspec.convert(many[:MAX_ORIGINS], Origins) == many[:MAX_ORIGINS]
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(many, Origins)
    assert unique(["https://b.example", "https://a.example", "https://b.example"]) == [
        "https://b.example",
        "https://a.example",
    ]
