"""How long a backend may take: the `connect_timeout_seconds` and `request_timeout_seconds` of a
route's config (and of a backend URL's query), with defaults chosen to fail fast.

`connect_timeout_seconds` bounds opening a connection (TCP and TLS; for gRPC, each connection
attempt). `request_timeout_seconds` bounds one call to the backend *with its retries*: the
adapters retry throttling and dropped connections only while this budget lasts, and each
attempt waits for an answer at most this long, so a call never takes much longer than it.

Why 2 s and 5 s: a healthy cloud store answers a point read in milliseconds and a 4 MB
transaction well under a second, and a connection within a region opens in milliseconds (2 s
covers a cold TLS handshake across regions). The SDKs' own defaults (botocore: 60 s per read
and retries; azure-cosmos: 300 s; gRPC: minutes of reconnect backoff) make a request behind an
unreachable backend hang for tens of seconds or more, holding a client and a worker all that
time; 5 s leaves throttling a few retries and answers 503 while a client still waits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from domain.errors import InvalidRequest

CONNECT_TIMEOUT: Final = "connect_timeout_seconds"
REQUEST_TIMEOUT: Final = "request_timeout_seconds"
TIMEOUT_KEYS: Final = (CONNECT_TIMEOUT, REQUEST_TIMEOUT)
# Above this a "timeout" no longer makes a backend fail fast: a typo (ms for s) more likely.
MAX_SECONDS: Final = 300.0


class Timeouts(msgspec.Struct, frozen=True, kw_only=True):
    connect: float = 2.0
    request: float = 5.0


def timeouts_of(config: Mapping[str, object]) -> Timeouts:
    """The timeouts a route's config sets (defaults for those it does not); `InvalidRequest` for a
    value that is not a number of seconds in (0, 300]."""
    defaults = Timeouts()
    return Timeouts(
        connect=_seconds(config, CONNECT_TIMEOUT, defaults.connect),
        request=_seconds(config, REQUEST_TIMEOUT, defaults.request),
    )


def _seconds(config: Mapping[str, object], name: str, default: float) -> float:
    value = config.get(name)
    if value is None:
        return default
    if isinstance(value, str):  # a backend URL's query carries text
        try:
            value = float(value)
        except ValueError:
            raise InvalidRequest(f"config {name!r} must be a number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"config {name!r} must be a number of seconds")
    if not 0 < value <= MAX_SECONDS:
        raise InvalidRequest(f"config {name!r} must be more than 0 and at most {MAX_SECONDS:g} seconds")
    return float(value)
