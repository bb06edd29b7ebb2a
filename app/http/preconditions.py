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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

import msgspec
from litestar.params import HeaderParameter

from domain.errors import InvalidRequest, PreconditionFailed
from domain.events import ANY, NO_STREAM, Event, ExpectedVersion
from domain.partition import Partition
from domain.ports import EventSpine

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description='the version you read (its ETag): "3"; a list "2", "3"; or * (any current version)',
    ),
]

_TAG = re.compile(r'^(W/)?"([0-9]{1,18})"$')
_END = 10**18  # a version past any stream's: reading after it answers the version alone


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


async def expected_at(
    wanted: Precondition | None,
    spine: EventSpine,
    partition: Partition,
    stream: str,
    *,
    live: Callable[[Event], bool] = lambda _: True,
) -> ExpectedVersion:
    """The `expected_version` of an append to `stream` under `wanted`; the stream is read only
    when `wanted` is `*` or a list. `live`: whether the stream's last event leaves the resource
    with a current representation (a tombstone does not)."""
    if wanted is None:
        return ANY
    if (exact := wanted.exact) is not None:
        return exact
    last = await last_event(spine, partition, stream)
    return wanted.version_for(0 if last is None else last.version, live=last is not None and live(last))


async def last_event(spine: EventSpine, partition: Partition, stream: str) -> Event | None:
    """The stream's last event, read from the log (a view may lag)."""
    _, version = await spine.read_stream(partition, stream, after_version=_END, limit=1)
    if version == 0:
        return None
    [last], _ = await spine.read_stream(partition, stream, after_version=version - 1, limit=1)
    return last


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
