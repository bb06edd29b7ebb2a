"""Refilling what retention removed, to copy a log with gaps position for position.

A copy (`spine replay --into`, `spine import`) lands each event at its own position with its own
stream version, and a spine only appends at its head: a log retention thinned out cannot be
copied as it is. So the copy fills each removed position with a placeholder of the right stream
and version, copies, then removes the placeholders (`EventSpine.remove`): the target then holds
exactly the survivors, where the source holds them.

Which stream and version each removed position held is gone with it; any assignment in which
every stream's versions still rise with positions will do. `placeholders` finds one: each missing
version of a stream must land after that stream's version before it and before its version after
it (a stream's last event always survives, so that one exists); taking, at each removed position,
the missing version whose next survivor comes first (earliest deadline first) finds an
assignment whenever one exists, and the original is one.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable
from typing import Final

from domain.errors import InvalidRequest

PLACEHOLDER_TYPE: Final = "retention.removed"
_IDS: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:spine:retention:placeholder")


class GapsUnfillable(InvalidRequest):
    """A log whose survivors no placeholders can complete (versions out of order): not a log
    retention left, and nothing is copied."""


def placeholder_id(partition_key: str, position: int) -> str:
    """The same placeholder id for the same position, so a copy that resumes retries, never doubles."""
    return str(uuid.uuid5(_IDS, f"{partition_key}/{position}"))


def placeholders(survivors: Iterable[tuple[int, str, int]], head: int) -> dict[int, tuple[str, int]]:
    """For a log of `head` positions whose surviving events are (position, stream, version) in
    position order: the (stream, version) to put at each missing position."""
    present: dict[str, list[tuple[int, int]]] = {}  # stream -> (version, position), rising
    at: dict[int, tuple[str, int]] = {}
    for position, stream, version in survivors:
        present.setdefault(stream, []).append((version, position))
        at[position] = (stream, version)
    if len(at) == head:
        return {}
    # per stream: its next version to place, and the index of its next survivor
    next_version = dict.fromkeys(present, 1)
    next_survivor = dict.fromkeys(present, 0)
    ready: list[tuple[int, str]] = []  # (deadline: the position of the stream's next survivor, stream)

    def release(stream: str) -> None:
        versions = present[stream]
        index = next_survivor[stream]
        if index < len(versions) and next_version[stream] < versions[index][0]:
            heapq.heappush(ready, (versions[index][1], stream))

    for stream in present:
        release(stream)
    filled: dict[int, tuple[str, int]] = {}
    for position in range(1, head + 1):
        if position in at:
            stream, version = at[position]
            if next_version[stream] != version:
                raise GapsUnfillable(f"stream {stream!r} reaches version {version} at {position} too soon")
            next_version[stream] = version + 1
            next_survivor[stream] += 1
            release(stream)
            continue
        if not ready:
            raise GapsUnfillable(f"no stream's missing version can be placed at {position}")
        _, stream = heapq.heappop(ready)  # a survivor past its deadline raised above, on arrival
        filled[position] = (stream, next_version[stream])
        next_version[stream] += 1
        release(stream)
    return filled
