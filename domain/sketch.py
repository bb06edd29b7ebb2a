"""A mergeable quantile sketch: DDSketch (Masson, Rim, Lee, VLDB 2019), as plain JSON.

A value x > 0 is counted in bin `ceil(log_gamma(x))`, with gamma = (1 + a) / (1 - a); every value
of bin i lies in (gamma^(i-1), gamma^i], and the bin answers 2 gamma^i / (gamma + 1), which is
within `a` = 1% relative of each of them. Negative values are counted by their magnitude in bins
of their own; magnitudes below `MIN_MAGNITUDE` count as zero. So a quantile read from the sketch is
within 1% of the exact one (the value of rank floor(q (n - 1)) in sorted order), whatever the data.

Two sketches merge by adding bin counts, so a sketch is folded one value at a time into a view
document. Each sign keeps at most `MAX_BINS` bins: past that, the bins of the smallest magnitudes
are collapsed into one, which only blurs the quantiles among those smallest magnitudes (at 1%,
1024 bins span magnitudes over a range of about 10^8).

The sketch is a dict, stored as it is in a view document: `{"zero": n, "pos": {"i": n},
"neg": {"i": n}}` (bin indexes as text: JSON object keys). Every function here returns a new dict.
"""

from __future__ import annotations

import math
from typing import Any, Final

ACCURACY: Final = 0.01
GAMMA: Final = (1 + ACCURACY) / (1 - ACCURACY)
MAX_BINS: Final = 1024
MIN_MAGNITUDE: Final = 1e-9
_LOG_GAMMA: Final = math.log(GAMMA)

Sketch = dict[str, Any]


def empty() -> Sketch:
    return {"zero": 0, "pos": {}, "neg": {}}


def add(sketch: Sketch, value: float) -> Sketch:
    """`sketch` with `value` counted once more."""
    if abs(value) < MIN_MAGNITUDE:
        return {**sketch, "zero": sketch["zero"] + 1}
    side = "pos" if value > 0 else "neg"
    index = str(_index(abs(value)))
    bins = dict(sketch[side])
    bins[index] = bins.get(index, 0) + 1
    return {**sketch, side: _bounded(bins)}


def merge(a: Sketch, b: Sketch) -> Sketch:
    """The sketch of both sketches' values."""
    merged = {"zero": a["zero"] + b["zero"]}
    for side in ("pos", "neg"):
        bins = dict(a[side])
        for index, count in b[side].items():
            bins[index] = bins.get(index, 0) + count
        merged[side] = _bounded(bins)
    return merged


def count(sketch: Sketch) -> int:
    return int(sketch["zero"]) + sum(int(n) for side in ("pos", "neg") for n in sketch[side].values())


def quantile(sketch: Sketch, q: float) -> float | None:
    """The value of rank floor(q (n - 1)) among the n counted (0 <= q <= 1), within 1%; None when
    the sketch is empty."""
    total = count(sketch)
    if total == 0:
        return None
    rank = q * (total - 1)
    seen = 0
    # ascending values: the largest negative magnitudes first, then zero, then positive magnitudes
    for index in sorted((int(i) for i in sketch["neg"]), reverse=True):
        seen += sketch["neg"][str(index)]
        if seen > rank:
            return -_value(index)
    seen += sketch["zero"]
    if seen > rank:
        return 0.0
    for index in sorted(int(i) for i in sketch["pos"]):
        seen += sketch["pos"][str(index)]
        if seen > rank:
            return _value(index)
    return _value(max(int(i) for i in sketch["pos"])) if sketch["pos"] else 0.0  # float rounding


def _index(magnitude: float) -> int:
    return math.ceil(math.log(magnitude) / _LOG_GAMMA)


def _value(index: int) -> float:
    """The value bin `index` answers: within `ACCURACY` of every magnitude it counts."""
    return 2 * GAMMA**index / (GAMMA + 1)


def _bounded(bins: dict[str, int]) -> dict[str, int]:
    if len(bins) <= MAX_BINS:
        return bins
    indexes = sorted(int(i) for i in bins)
    cut = len(indexes) - MAX_BINS + 1  # these lowest bins become one, at the highest of them
    collapsed = sum(bins[str(i)] for i in indexes[:cut])
    kept = {str(i): bins[str(i)] for i in indexes[cut:]}
    kept[str(indexes[cut - 1])] = collapsed
    return kept
