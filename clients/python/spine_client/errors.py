"""What the client raises: the server's problem details, or no answer at all."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec


class SpineClientError(Exception):
    """The server answered with an error: RFC 9457 problem details carrying `error_code`.

    `retry_after` is the answer's `Retry-After` in seconds (None without one): the server says a
    retry may succeed after that long (429, 503). `problem` is the whole problem-details body, with
    the fields some codes add (`current_version` of a conflict, `limit` of a budget, …).
    Answers that are not problem details get `error_code` `http.<status>`; answers the client
    cannot read get `client.*` codes (`client.unexpected_answer`, `client.not_an_event_stream`).
    """

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        problem: Mapping[str, Any] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.problem: Mapping[str, Any] = problem or {}
        self.retry_after = retry_after


class SpineConnectionError(Exception):
    """No answer from the server (connect failed, connection dropped, timeout)."""


class SpineTimeoutError(SpineConnectionError):
    """No answer from the server within the client's timeout. The request may or may not have
    been applied: an append is safe to send again with the same event ids."""


def error_of(response: httpx.Response) -> SpineClientError:
    """The error an answer that is not a success stands for (its body must have been read)."""
    retry_after = retry_after_of(response)
    try:
        problem = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        problem = None
    if isinstance(problem, dict) and isinstance(problem.get("error_code"), str):
        message = problem.get("message") or problem.get("detail") or response.reason_phrase
        return SpineClientError(
            response.status_code, problem["error_code"], str(message), problem, retry_after=retry_after
        )
    text = response.text[:200] or response.reason_phrase
    return SpineClientError(
        response.status_code, f"http.{response.status_code}", text, retry_after=retry_after
    )


def retry_after_of(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3); None when absent
    or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def unexpected_answer(status: int, what: str, exc: Exception) -> SpineClientError:
    return SpineClientError(status, "client.unexpected_answer", f"{what}: {exc}")
