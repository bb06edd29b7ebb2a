"""The Server-Sent Events line protocol (WHATWG HTML §9.2.6), one line at a time, without I/O."""

from __future__ import annotations


class SSEParser:
    """Feed it the lines of one connection; it hands back each event's data when a blank line
    ends it. Comments (Spine's `: heartbeat`) are skipped; `retry:` is kept in `retry_ms`."""

    def __init__(self, last_event_id: str) -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self._id = last_event_id
        self._data: list[str] = []
        self._first = True

    def feed(self, line: str) -> str | None:
        """Take one line (without its terminator); return an event's data when a blank line ends it."""
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")
        if line == "":
            self.last_event_id = self._id
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return data
        if line.startswith(":"):
            return None  # a comment: heartbeats
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self._id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        # `event:` repeats the type the data already carries; unknown fields are ignored.
        return None
