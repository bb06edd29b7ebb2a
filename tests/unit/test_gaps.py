"""Placeholders for the positions retention removed: every stream's versions rise with positions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.gaps import GapsUnfillable, placeholders


def complete(log: list[tuple[str, int]], removed: set[int]) -> dict[int, tuple[str, int]]:
    survivors = [(p, s, v) for p, (s, v) in enumerate(log, 1) if p not in removed]
    return placeholders(survivors, len(log))


@given(
    streams=st.lists(st.sampled_from("abcd"), min_size=1, max_size=80),
    data=st.data(),
)
def test_any_log_retention_could_leave_is_completed_consistently(
    streams: list[str], data: st.DataObject
) -> None:
    versions: dict[str, int] = {}
    log = []
    for stream in streams:
        versions[stream] = versions.get(stream, 0) + 1
        log.append((stream, versions[stream]))
    lasts = {max(p for p, (s, _) in enumerate(log, 1) if s == stream) for stream in versions}
    removable = [p for p in range(1, len(log) + 1) if p not in lasts]
    removed = set(data.draw(st.lists(st.sampled_from(removable), unique=True))) if removable else set()
    filled = complete(log, removed)
    assert set(filled) == removed
    whole = {p: log[p - 1] for p in range(1, len(log) + 1) if p not in removed} | filled
    for stream, last in versions.items():  # each stream: versions 1..last, rising with positions
        assert [v for p, (s, v) in sorted(whole.items()) if s == stream] == list(range(1, last + 1))


def test_a_gapless_log_needs_none() -> None:
    assert complete([("a", 1), ("b", 1), ("a", 2)], set()) == {}


def test_versions_no_placeholders_can_complete_are_refused() -> None:
    with pytest.raises(GapsUnfillable):
        placeholders([(2, "a", 3)], 2)  # versions 1 and 2 of a, but one position before it
