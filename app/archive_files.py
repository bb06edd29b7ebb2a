"""The files of a tenant archive (`domain.archive`): gzip-compressed JSON lines, written so that the
same lines always give the same bytes, hashed as they are written, and read back line by line.

Deterministic gzip: the header carries no file name and a modification time of 0, and the level
is fixed, so two exports of the same data are byte-equal (with the same zlib). Nothing is ever
held whole in memory: lines are compressed as they come and read as they are decompressed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Final, TypeVar

import msgspec

from domain.archive import ArchiveInvalid, FileEntry
from domain.events import Event, Page
from domain.partition import Partition

COMPRESS_LEVEL: Final = 6
_CHUNK: Final = 1 << 20
_event_decoder: Final = msgspec.json.Decoder(Event)
T = TypeVar("T")


def encode_line(value: object) -> bytes:
    """One JSON line, keys sorted at every depth: the same value always gives the same bytes."""
    return msgspec.json.encode(value, order="deterministic") + b"\n"


class _Hashing(io.RawIOBase):
    """Counts and hashes what is written through it to `sink`."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha256.update(data)
        self.size += len(data)
        return self._sink.write(data)


class LinesWriter:
    """`logs/dev/p1.jsonl.gz` under `root`, written line by line; `entry` once closed."""

    def __init__(self, root: Path, path: str) -> None:
        self.path = path
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        self._file = target.open("xb")
        self._hashing = _Hashing(self._file)
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._hashing, compresslevel=COMPRESS_LEVEL, mtime=0
        )
        self.lines = 0
        self._entry: FileEntry | None = None

    @property
    def entry(self) -> FileEntry:
        """The file's SHA-256 and size, once it is closed."""
        assert self._entry is not None, "the file is still being written"
        return self._entry

    def write(self, line: bytes) -> None:
        self._gzip.write(line)
        self.lines += 1

    def __enter__(self) -> LinesWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._gzip.close()
        self._file.flush()
        if kind is None:
            _fsync(self._file)
        self._file.close()
        self._entry = FileEntry(
            path=self.path, sha256=self._hashing.sha256.hexdigest(), bytes=self._hashing.size
        )


def _fsync(file: IO[bytes]) -> None:
    os.fsync(file.fileno())


def staging_dir(out: Path) -> Path:
    """A fresh directory beside `out` to write an archive into, renamed to `out` once complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))


def publish(work: Path, out: Path) -> None:
    """`work` becomes `out` in one rename (an empty `out` directory is replaced)."""
    work.replace(out)


def discard(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)


def write_bytes(root: Path, path: str, data: bytes) -> None:
    with (root / path).open("xb") as file:
        file.write(data)
        file.flush()
        _fsync(file)


def file_entry(root: Path, path: str, progress: Callable[[int], None] | None = None) -> FileEntry:
    """The SHA-256 and size of `root/path` as it is now, read in chunks; `progress` gets bytes read."""
    sha256, size = hashlib.sha256(), 0
    with (root / path).open("rb") as file:
        while chunk := file.read(_CHUNK):
            sha256.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return FileEntry(path=path, sha256=sha256.hexdigest(), bytes=size)


def read_lines(root: Path, path: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a gzip JSON-lines file, decompressed as it is read."""
    try:
        with gzip.open(root / path, "rb") as lines:
            yield from enumerate(lines, start=1)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ArchiveInvalid(f"{path}: not a readable gzip file ({exc})") from None


def decode_lines(root: Path, path: str, kind: type[T]) -> Iterator[T]:
    """Each line of `path` as a `kind`; `ArchiveInvalid` naming the line that is not one."""
    decoder = msgspec.json.Decoder(kind)
    for number, line in read_lines(root, path):
        try:
            yield decoder.decode(line)
        except msgspec.ValidationError as exc:
            raise ArchiveInvalid(f"{path} line {number}: {exc}") from None
        except msgspec.DecodeError:
            raise ArchiveInvalid(f"{path} line {number}: not JSON") from None


class ArchivedLog:
    """One partition's log as its archive file holds it: a `LogReader` for `copy_log` and `digests`.

    Read forward, one decompression pass; a read that asks for positions behind the last one read
    starts the file again (a copy's first look at the target's head does, once). Positions must
    rise to the manifest's head; where retention removed events they skip (the copy fills those,
    `app.usecases.move`), and the head's own event is always there (a stream's last event stays).
    """

    def __init__(self, root: Path, path: str, head: int) -> None:
        self._root = root
        self._path = path
        self._head = head
        self._lines: Iterator[tuple[int, bytes]] | None = None
        self._at = 0  # the position of the last event taken from `_lines`

    async def head(self, partition: Partition) -> int:
        return self._head

    async def read(self, partition: Partition, *, after: int = 0, limit: int = 100) -> Page:
        if self._lines is None or after < self._at:
            self._lines, self._at = read_lines(self._root, self._path), 0
        events: list[Event] = []
        while len(events) < limit and self._at < self._head:
            event = self._next(self._lines)
            if event is None:
                raise ArchiveInvalid(f"{self._path}: ends at position {self._at}, not {self._head}")
            if event.position > after:
                events.append(event)
        return Page(events=events, next=events[-1].position if events else self._head, head=self._head)

    def _next(self, lines: Iterator[tuple[int, bytes]]) -> Event | None:
        taken = next(lines, None)
        if taken is None:
            return None
        number, line = taken
        try:
            event = _event_decoder.decode(line)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ArchiveInvalid(f"{self._path} line {number}: not an event ({exc})") from None
        if event.position <= self._at or event.position > self._head:
            raise ArchiveInvalid(f"{self._path} line {number}: position {event.position} after {self._at}")
        self._at = event.position
        return event
