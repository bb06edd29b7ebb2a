"""In-process benchmarks of the SQLite spine, each against raw stdlib sqlite3 doing the same I/O.

    .venv/bin/python bench/bench_spine.py [--runs 3] [--scale 1.0] [--loop asyncio|uvloop] [--smoke]

Every measurement runs on a fresh SQLite file in a temporary directory, WAL with synchronous=FULL
(the spine default), on asyncio's own event loop (`--loop uvloop`: uvloop's, which `spine serve`
runs on). Each case runs `--runs` times, alternating with its baselines so that a change of
machine load hits both; the table shows the median run and the spread. Figures are printed,
never asserted.

(a) spine appends: 1, 16 and 64 concurrent single-event appenders (each its own stream), and
    4 concurrent appenders of 500-event batches; group-commit sizes come from `on_commit`.
(b) the baselines: raw sqlite3 inserts into the same table (one transaction per event, 64 and
    500 per transaction), and the Python `eventsourcing` library (9.5, the `bench` extra) saving
    one new event per `Application.save` on SQLite, same pragmas and body size.
(c) replay of a 200k-event partition: `spine.read` pages of 1000 decoded events, against the same
    paged SELECT without decoding, and one full `SELECT body` scan.

--smoke runs every case once at a hundredth of the sizes: seconds, for CI, figures meaningless.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import msgspec
from _env import header, load

from adapters.sqlite.spine import SQLiteSpine
from domain.append import AppendRequest
from domain.events import EventMeta, NewEvent
from domain.ids import new_event_id
from domain.partition import Partition

PARTITION = Partition(tenant_id="t1", env="dev", project_id="p1")
META = EventMeta(tenant_id="t1", env="dev", project_id="p1")
EVENT_TYPE = "memory.set"
# A typical agent-memory event: a key, a short value and some bookkeeping (~150 bytes of data).
DATA = {
    "key": "user.preferences.language",
    "value": "The user prefers answers in British English, with short paragraphs.",
    "source": "chat",
    "confidence": 0.92,
    "turn": 17,
}

# The spine's `events` table, copied rather than imported from a private name; the run prints
# whether the spine's file really has the same schema.
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    pkey     TEXT    NOT NULL,
    position INTEGER NOT NULL,
    id       TEXT    NOT NULL,
    stream   TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    type     TEXT    NOT NULL,
    body     BLOB    NOT NULL,
    PRIMARY KEY (pkey, position)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_version ON events (pkey, stream, version);
CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events (pkey, id);
"""
INSERT = "INSERT INTO events (pkey, position, id, stream, version, type, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
PAGE_SQL = "SELECT body FROM events WHERE pkey = ? AND position > ? ORDER BY position LIMIT ?"
PAGE = 1000
BATCH = 500

# Each target is a ratio to a baseline measured in the same run (issue 15).
TARGET_SINGLE_RATIO = 0.80  # 1 appender, of raw sqlite3 at 1 event per transaction
TARGET_PEER_RATIO = 1.00  # 1 appender, of `eventsourcing` single saves: above the peer
TARGET_APPENDERS_64_RATIO = 0.75  # 64 appenders, of raw sqlite3 at 64 events per transaction
TARGET_BATCHED_RATIO = 0.85  # of raw sqlite3 at 500 events per transaction
TARGET_REPLAY_RATIO = 0.40  # of the raw paged scan

Rows = list[tuple[str, int, str, str, int, str, bytes]]


@dataclass
class Row:
    case: str
    events: int
    seconds: float
    commits: int = 0
    requests: int = 0
    commit_seconds: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass
class CommitStats:
    """The `on_commit` observer: counts group commits and what they carried."""

    commits: int = 0
    requests: int = 0
    seconds: float = 0.0

    def __call__(self, requests: int, events: int, seconds: float) -> None:
        self.commits += 1
        self.requests += requests
        self.seconds += seconds


Measure = Callable[[Path], Awaitable[Row | None]]


async def alternating(runs: int, *measures: Measure) -> list[Row | None]:
    """Each measure `runs` times, in turns, each on a fresh database file: the median run of each,
    noting the spread. Taking turns puts a case and its baselines under the same machine load.
    A measure that answers None (its library is missing) has no row."""
    results: list[list[Row]] = [[] for _ in measures]
    for _ in range(runs):
        for rows, measure in zip(results, measures, strict=True):
            with tempfile.TemporaryDirectory(prefix="spine-bench-") as directory:
                row = await measure(Path(directory) / "spine.db")
            if row is not None:
                rows.append(row)
    return [_median(rows, runs) if rows else None for rows in results]


def measured(row: Row | None) -> Row:
    """A row only the optional peer can leave out."""
    if row is None:
        raise RuntimeError("a spine or raw sqlite3 case answered no row")
    return row


def _median(rows: list[Row], runs: int) -> Row:
    rows.sort(key=lambda row: row.rate)
    median = rows[len(rows) // 2]
    if runs > 1:
        median.note = f"{rows[0].rate:,.0f}..{rows[-1].rate:,.0f} over {runs} runs  {median.note}"
    return median


# (a) spine appends


async def spine_appends(path: Path, appenders: int, appends_each: int, batch: int) -> Row:
    stats = CommitStats()
    events = [NewEvent(type=EVENT_TYPE, data=DATA) for _ in range(batch)]
    async with SQLiteSpine(path, on_commit=stats) as spine:

        async def appender(index: int) -> None:
            request = AppendRequest(stream=f"agent:{index}", events=events, meta=META)
            for _ in range(appends_each):
                await spine.append(PARTITION, request)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for index in range(appenders):
                tg.start_soon(appender, index)
        elapsed = time.perf_counter() - started
        head = await spine.head(PARTITION)

    total = appenders * appends_each * batch
    case = f"spine, {appenders:>2} appender(s) x {batch} event(s)"
    note = "" if head == total else f"HEAD {head} != {total} APPENDED"
    return Row(case, total, elapsed, stats.commits, stats.requests, stats.seconds, note=note)


# (b) raw sqlite3 baseline


def open_raw(path: Path | str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.executescript(SCHEMA)
    return connection


def event_rows(total: int, per_txn: int, streams: int, run: int | None = None) -> Rows:
    """Rows shaped like the spine's: UUIDv7 ids, gapless positions, an Event-shaped JSON body.

    `run` consecutive rows share a stream (default: a whole transaction's worth)."""
    recorded_at = datetime.now(UTC)
    versions: dict[str, int] = {}
    rows = []
    for position in range(1, total + 1):
        stream = f"agent:{((position - 1) // (run or per_txn)) % streams}"
        version = versions[stream] = versions.get(stream, 0) + 1
        event_id = new_event_id()
        body = msgspec.json.encode(
            {
                "id": event_id,
                "type": EVENT_TYPE,
                "stream": stream,
                "version": version,
                "position": position,
                "data": DATA,
                "meta": {"tenant_id": "t1", "env": "dev", "project_id": "p1"},
                "recorded_at": recorded_at,
            }
        )
        rows.append((PARTITION.key, position, event_id, stream, version, EVENT_TYPE, body))
    return rows


def raw_inserts(path: Path, rows: Rows, per_txn: int) -> Row:
    """SQLite alone: the rows are built before the clock starts."""
    connection = open_raw(path)
    try:
        started = time.perf_counter()
        for start in range(0, len(rows), per_txn):
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(INSERT, rows[start : start + per_txn])
            connection.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    return Row(f"raw sqlite3, {per_txn} event(s)/txn", len(rows), elapsed, commits=len(rows) // per_txn)


def threaded(work: Callable[..., Row | None], *args: object) -> Measure:
    return lambda path: anyio.to_thread.run_sync(work, path, *args)


# (b) the eventsourcing peer


def eventsourcing_saves(path: Path, saves: int, body_bytes: float) -> Row | None:
    """`Application.save` of one new event each, in one thread: see bench/_eventsourcing_peer.py."""
    try:
        import _eventsourcing_peer  # the `bench` extra: without it the row is left out
    except ImportError:
        return None
    elapsed, mean_body, pragmas = _eventsourcing_peer.saves(path, saves, DATA, round(body_bytes))
    note = f"body {mean_body:.0f} bytes, {pragmas}"
    return Row("eventsourcing 9.5, 1 event/save", saves, elapsed, commits=saves, note=note)


async def eventsourcing_saves_from_event_loop(path: Path, saves: int, body_bytes: float) -> Row | None:
    """The same saves made from the event loop, each in a worker thread, as an async caller must."""
    try:
        import _eventsourcing_peer
    except ImportError:
        return None
    elapsed, _, _ = await _eventsourcing_peer.saves_from_event_loop(path, saves, DATA, round(body_bytes))
    return Row("  same, each save via to_thread", saves, elapsed, commits=saves)


def mean_body_bytes(path: Path) -> float:
    connection = sqlite3.connect(path)
    try:
        return float(connection.execute("SELECT avg(length(body)) FROM events").fetchone()[0])
    finally:
        connection.close()


def schema_of(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'events' ORDER BY name")
    return [" ".join(sql.split()) for (sql,) in rows]


# (c) replay


async def spine_replay(path: Path, *, encoded: bool) -> int:
    """Decoded pages are what projections read; encoded pages what SSE catch-up and `spine replay` send."""
    count, cursor = 0, 0
    async with SQLiteSpine(path) as spine:
        read = spine.read_encoded if encoded else spine.read
        while True:
            page = await read(PARTITION, after=cursor, limit=PAGE)
            count += len(page.events)
            if page.next >= page.head:
                return count
            cursor = page.next


def raw_paged_scan(path: Path) -> int:
    count, cursor = 0, 0
    connection = sqlite3.connect(path)
    try:
        while rows := connection.execute(PAGE_SQL, (PARTITION.key, cursor, PAGE)).fetchall():
            count += len(rows)
            cursor += len(rows)  # positions are gapless from 1
    finally:
        connection.close()
    return count


def raw_full_scan(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return sum(1 for _ in connection.execute("SELECT body FROM events"))
    finally:
        connection.close()


async def replay_rows(path: Path, runs: int) -> list[Row]:
    async def timed(case: str, read: Callable[[], Awaitable[int]]) -> Row:
        rows = []
        for _ in range(runs):
            started = time.perf_counter()
            count = await read()
            rows.append(Row(case, count, time.perf_counter() - started))
        rows.sort(key=lambda row: row.rate)
        median = rows[len(rows) // 2]
        median.note = f"{rows[0].rate:,.0f}..{rows[-1].rate:,.0f} over {runs} runs"
        return median

    def in_thread(scan: Callable[[Path], int]) -> Callable[[], Awaitable[int]]:
        return lambda: anyio.to_thread.run_sync(scan, path)

    return [
        await timed("spine.read_encoded, 1000/page (replay)", lambda: spine_replay(path, encoded=True)),
        await timed("spine.read, 1000/page, decoded", lambda: spine_replay(path, encoded=False)),
        await timed("raw paged SELECT body, 1000/page", in_thread(raw_paged_scan)),
        await timed("raw full SELECT body scan", in_thread(raw_full_scan)),
    ]


# report


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    header = (
        f"  {'case':<38} {'events':>8} {'seconds':>8} {'events/s':>10}"
        f" {'req/commit':>10} {'ev/commit':>10} {'ms/commit':>9}  spread"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for row in rows:
        per_request = f"{row.requests / row.commits:,.1f}" if row.requests else "-"
        per_commit = f"{row.events / row.commits:,.1f}" if row.commits else "-"
        commit_ms = f"{row.commit_seconds / row.commits * 1000:.2f}" if row.commit_seconds else "-"
        print(
            f"  {row.case:<38} {row.events:>8,} {row.seconds:>8.2f} {row.rate:>10,.0f}"
            f" {per_request:>10} {per_commit:>10} {commit_ms:>9}  {row.note}"
        )


def print_target(label: str, value: float, target: float, unit: str = "") -> None:
    shown = f"{value:,.0f}{unit}" if unit else f"{value:.2f}"
    wanted = f">= {target:,.0f}{unit}" if unit else f">= {target:.2f}"
    status = "meets" if value >= target else "BELOW"
    print(f"  {label:<42} {shown:>12}   target {wanted:<16} {value / target:>5.2f}x  {status}")


async def main(runs: int, scale: float, loop: str) -> None:
    def n(count: int) -> int:
        return max(1, round(count * scale))

    print(header("bench_spine: SQLiteSpine in-process"))
    print(
        f"  sqlite {sqlite3.sqlite_version}, WAL, synchronous=FULL, fresh temp file per run, scale {scale},"
        f" {loop} event loop"
    )

    single_rows, batched_rows = event_rows(n(5_000), 1, 64), event_rows(n(100_000), BATCH, 4)
    grouped_rows = event_rows(n(19_200), 64, 64, run=1)  # like 64 appenders: a stream per row
    body_bytes = sum(len(row[-1]) for row in single_rows) / len(single_rows)

    # Each spine case takes turns with its baselines (see `alternating`).
    single, raw_single, peer, peer_from_loop = await alternating(
        runs,
        lambda path: spine_appends(path, 1, n(5_000), 1),
        threaded(raw_inserts, single_rows, 1),
        threaded(eventsourcing_saves, n(5_000), body_bytes),
        lambda path: eventsourcing_saves_from_event_loop(path, n(5_000), body_bytes),
    )
    (sixteen,) = await alternating(runs, lambda path: spine_appends(path, 16, n(1_250), 1))
    # what one full group commit of the 64-appender case costs SQLite alone: its ceiling
    sixty_four, raw_grouped = await alternating(
        runs, lambda path: spine_appends(path, 64, n(300), 1), threaded(raw_inserts, grouped_rows, 64)
    )
    batched, raw_batched = await alternating(
        runs, lambda path: spine_appends(path, 4, n(50), BATCH), threaded(raw_inserts, batched_rows, BATCH)
    )
    single, raw_single, sixteen = measured(single), measured(raw_single), measured(sixteen)
    sixty_four, raw_grouped = measured(sixty_four), measured(raw_grouped)
    batched, raw_batched = measured(batched), measured(raw_batched)
    print_table(
        "(a) SQLiteSpine.append (req = append request, ev = event)", [single, sixteen, sixty_four, batched]
    )
    baselines = [raw_single, raw_grouped, raw_batched, *(row for row in (peer, peer_from_loop) if row)]
    print_table(
        "(b) baselines: raw sqlite3 inserts, same table and indexes; the eventsourcing peer", baselines
    )
    if peer is None:
        print("  eventsourcing: not installed, no peer row (pip install -e '.[bench]')")

    with tempfile.TemporaryDirectory(prefix="spine-bench-") as directory:
        path = Path(directory) / "spine.db"
        # Built by the spine itself, in 500-event batches, so the rows are exactly what it stores.
        built = await spine_appends(path, 4, n(200_000) // (4 * BATCH) or 1, BATCH)
        replay = await replay_rows(path, runs)
        body = mean_body_bytes(path)
        with sqlite3.connect(path) as spine_db:
            same_schema = schema_of(spine_db) == schema_of(open_raw(":memory:"))
    print_table(f"(c) replay of one {built.events:,}-event partition from position 0", replay)
    print(
        f"  partition built by the spine at {built.rate:,.0f} ev/s; mean stored body {body:.0f} bytes"
        f" (raw rows: {body_bytes:.0f} bytes);"
        f" schema {'identical to' if same_schema else 'DIFFERS from'} the baseline's"
    )

    print("\ntargets: ratios to a baseline of the same run (printed, not asserted)")
    print_target("1 appender / raw sqlite3 1 per txn", single.rate / raw_single.rate, TARGET_SINGLE_RATIO)
    if peer is not None:
        print_target("1 appender / eventsourcing single saves", single.rate / peer.rate, TARGET_PEER_RATIO)
    if peer_from_loop is not None:
        print(f"  {'(same, the peer saving via to_thread)':<42} {single.rate / peer_from_loop.rate:>12.2f}")
    print_target(
        "64 appenders / raw sqlite3 64 per txn", sixty_four.rate / raw_grouped.rate, TARGET_APPENDERS_64_RATIO
    )
    print_target(
        "batched spine / raw sqlite3 500 per txn", batched.rate / raw_batched.rate, TARGET_BATCHED_RATIO
    )
    print_target(
        "replay: read_encoded / raw paged scan", replay[0].rate / replay[2].rate, TARGET_REPLAY_RATIO
    )
    print(f"  {'(decoded spine.read / raw paged scan)':<42} {replay[1].rate / replay[2].rate:>12.2f}")
    print(f"  {'(read_encoded / raw full scan)':<42} {replay[0].rate / replay[3].rate:>12.2f}")
    print(f"  after the run: {load()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the median is shown (default 3)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every event count (default 1)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every case once at a hundredth of the sizes (--runs 1 --scale 0.01)",
    )
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="the event loop the spine runs on (default asyncio; `spine serve` runs uvloop)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.scale = 1, 0.01
    anyio.run(main, args.runs, args.scale, args.loop, backend_options={"use_uvloop": args.loop == "uvloop"})
