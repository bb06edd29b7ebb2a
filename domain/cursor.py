"""Position cursors as clients send them (`?after=`, `Last-Event-ID`)."""

from __future__ import annotations

from domain.errors import InvalidCursor

MAX_POSITION = 2**63 - 1


def parse_cursor(raw: str | None, *, name: str = "after") -> int:
    """A cursor is a decimal position ≥ 0; absent means the start of the log."""
    if raw is None or raw.strip() == "":
        return 0
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_POSITION:
        raise InvalidCursor(f"{name} must be a position (an integer ≥ 0), got {raw[:40]!r}")
    return int(text)


def check_cursor(after: int, head: int) -> None:
    """A cursor past the head was not issued by this log (another partition, or lost data)."""
    if after > head:
        raise InvalidCursor(f"position {after} is past the head of this partition ({head})")
