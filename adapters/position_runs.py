"""Positions to remove, grouped for the adapters whose logs keep several events per item."""

from __future__ import annotations


def runs_of(wanted: list[int], gap: int) -> list[list[int]]:
    """Sorted positions cut where two are more than `gap` apart: each run is looked up by one
    range query instead of one query per position or one query over everything between."""
    runs: list[list[int]] = []
    for position in wanted:
        if runs and position - runs[-1][-1] <= gap:
            runs[-1].append(position)
        else:
            runs.append([position])
    return runs
