"""`If-Match` and `expected_version`: the version a writer read, sent as a header or in the body."""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter

from spine.domain.errors import InvalidRequest
from spine.domain.events import ANY, NO_STREAM, ExpectedVersion

IfMatch = Annotated[
    str | None, HeaderParameter(name="If-Match", description='the version you read (its ETag): "3"')
]


def precondition(body: ExpectedVersion | None, if_match: str | None) -> int | None:
    """The version the writer expects, or None for an unconditional write.

    `If-Match: *` and `"any"` expect nothing; `"no_stream"` expects version 0. Both given, they must
    agree (422 otherwise), as must a malformed tag.
    """
    header = _tag(if_match)
    if header is not None and body is not None and _version(body) != header:
        raise InvalidRequest("If-Match and expected_version disagree")
    return header if header is not None else _version(body)


def _tag(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isascii() or not tag.isdigit():
        raise InvalidRequest(f"If-Match must be a version such as '\"3\"', got {if_match[:40]!r}")
    return int(tag)


def _version(expected: ExpectedVersion | None) -> int | None:
    if expected is None or expected == ANY:
        return None
    return 0 if expected == NO_STREAM else int(expected)
