"""Event ids: UUIDv7, so ids sort by creation time and index well (RFC 9562 §5.7)."""

from __future__ import annotations

import os
import time
import uuid


def new_event_id() -> str:
    """A UUIDv7 string: 48-bit Unix milliseconds, version and variant bits, 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    return str(uuid.UUID(int=value))
