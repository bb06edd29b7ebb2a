"""`Range: bytes=…` (RFC 9110 §14): the one range of an object a GET asks for.

One range only: `first-last`, `first-` or `-suffix`. A header Spine does not serve as a range (no
`bytes=` unit, several ranges, a malformed spec) is ignored, as the RFC lets a server do, and the
whole object is answered (200). A well-formed range none of whose bytes the object has is
`RangeNotSatisfiable` (416, `Content-Range: bytes */size`).
"""

from __future__ import annotations

import re
from typing import Final

from domain.blobs import ByteRange
from domain.errors import RangeNotSatisfiable

_SPEC: Final = re.compile(
    r"^bytes[ \t]*=[ \t]*(?:(\d{1,19})-(\d{0,19})|-(\d{1,19}))[ \t]*$(?!\n)", re.IGNORECASE
)


def byte_range(header: str | None, size: int) -> ByteRange | None:
    """The bytes `header` asks for of an object of `size` bytes; None: the whole object."""
    if header is None:
        return None
    match = _SPEC.match(header)
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        wanted = int(suffix)
        if wanted == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(first=max(size - wanted, 0), last=size - 1)
    start = int(first)
    end = int(last) if last else None
    if end is not None and end < start:
        return None  # invalid: ignored (RFC 9110 §14.1.1)
    if start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(first=start, last=size - 1 if end is None else min(end, size - 1))


def content_range(chosen: ByteRange, size: int) -> str:
    return f"bytes {chosen.first}-{chosen.last}/{size}"
