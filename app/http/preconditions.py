"""`If-Match` and `expected_version`: the version a writer read, sent as a header or in the body.

`If-Match` follows RFC 9110 §13.1.1. Spine's entity tags are versions (`"3"`), always strong.
- `*` matches any current representation: on a resource that has none (never written, or
  deleted) the write is refused with 412 `precondition.failed` and nothing is appended.
- A list (`"1", "2"`) matches when any of its tags does.
- If-Match compares strongly, so a weak tag (`W/"3"`) never matches; a list of weak tags only
  is refused with 412.
- A strong tag that is not the current version keeps its older answer, the resource's own
  409 `…version_conflict`; a tag that is no version at all (`3`, `"abc"`, `"1.0"`) is 422.
As RFC 9110 §13.2.1 asks, a route whose unconditional answer would be 404 (updating a save never
created, deleting what is not there) answers 404 before any precondition is evaluated.
Writes apply a `Precondition` through the unit of work (`app/usecases/unit_of_work.py`:
`decide_and_append` for a decision, `expected_at` for a write that replaces what is there).
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from litestar.params import HeaderParameter

from domain.errors import InvalidRequest, PreconditionFailed
from domain.events import ANY, NO_STREAM, ExpectedVersion

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description='the version you read (its ETag): "3"; a list "2", "3"; or * (any current version)',
    ),
]

_TAG = re.compile(r'^(W/)?"([0-9]{1,18})"$')


class Precondition(msgspec.Struct, frozen=True):
    """The versions a write may apply to; `versions=None` is `*`, any current version."""

    versions: frozenset[int] | None = None

    @property
    def exact(self) -> int | None:
        """The one version named, when the append's compare-and-set decides alone."""
        if self.versions is not None and len(self.versions) == 1:
            return next(iter(self.versions))
        return None

    def version_for(self, current: int, *, live: bool) -> int:
        """The version to append at, for a resource at `current` (`live`: it has a current
        representation). A listed version that is not current is answered as the write's conflict
        by the append, which expects it."""
        if self.versions is None:
            if not live:
                raise PreconditionFailed("If-Match: * and the resource has no current version")
            return current
        if not self.versions:
            raise PreconditionFailed('If-Match compares strong tags: W/"N" never matches; send "N"')
        return current if current in self.versions else min(self.versions)


def precondition(body: ExpectedVersion | None, if_match: str | None) -> Precondition | None:
    """What the writer expects, or None for an unconditional write.

    `"any"` expects nothing and `"no_stream"` version 0. Given both, the body and the header must
    agree (422 otherwise), as must a malformed header.
    """
    header = _parse(if_match)
    version = _version(body)
    if version is None:
        return header
    if header is not None and not _agree(header, version):
        raise InvalidRequest("If-Match and expected_version disagree")
    return Precondition(frozenset({version}))


def _parse(if_match: str | None) -> Precondition | None:
    if if_match is None:
        return None
    if if_match.strip() == "*":
        return Precondition()
    elements = [element.strip() for element in if_match.split(",")]
    tags = [_TAG.match(element) for element in elements if element]  # a list may hold empty elements
    if not tags or not all(tags):
        raise InvalidRequest(
            f"If-Match must be *, a version such as '\"3\"' or a list of them, got {if_match[:40]!r}"
        )
    return Precondition(frozenset(int(tag[2]) for tag in tags if tag is not None and not tag[1]))


def _agree(header: Precondition, version: int) -> bool:
    if header.versions is None:
        return version != 0  # `*` wants a current version; `no_stream` wants none
    return version in header.versions


def _version(expected: ExpectedVersion | None) -> int | None:
    if expected is None or expected == ANY:
        return None
    return 0 if expected == NO_STREAM else int(expected)
