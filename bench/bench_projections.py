"""Projection benchmarks: how fast each product view rebuilds, and how far a live view lags.

    .venv/bin/python bench/bench_projections.py [--events 1000000] [--views memory,blackboard,...]
    .venv/bin/python bench/bench_projections.py --smoke   # every case at tiny sizes, a few seconds

(1) rebuild: each view is rebuilt from position 0 of a partition of `--events` events by the real
    `Rebuild` (a new generation in a fresh `SQLiteViewStore`, then the swap), on SQLite in WAL with
    the service's default `synchronous`. Beside it, from the same run and the same partition, the
    replay rates of what the rebuild reads: `spine.read_encoded` pages, decoded `spine.read` pages
    and a raw sqlite3 paged SELECT of the same rows (the floor). Each view's partition holds only
    its own events, built with the domain's own event constructors; the audit view, which reads
    every event, is rebuilt from the memory partition. Partitions are built once per size, in
    1000-event group commits, and reused from `--data-dir` by later runs.
(2) live lag: an in-process SQLite spine, a `LocalNotifier` and a running `Runner` of one view;
    single-event appends at a steady `--rate` (an absolute schedule, one task per append) for
    `--seconds`. For each event: the time from its append being acknowledged to the runner's batch
    holding it being written to the view (the runner's `on_batch`). Append latency is the baseline.

(3) rebuild from 0 vs from a snapshot: a partition of long streams (`--snapshot-keys` blackboard
    keys x `--snapshot-writes` writes each), its view snapshotted, then a tail of writes (one per
    key and ten); the real `Rebuild` with `from_="start"` (replays every event) beside one with
    `from_="snapshot"` (copies the snapshot's documents, replays the tail), in the same run.

`--smoke` runs every case and code path at tiny sizes (partitions of 3,000 events, built in a
temporary directory and removed afterwards unless `--data-dir` is given; two rebuilds per view;
2 s of lag test per view) so that CI notices when the bench stops running; its figures mean
nothing. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import msgspec
from _env import header, load

from adapters.local_notifier import LocalNotifier
from adapters.sqlite.spine import SQLiteSpine
from adapters.sqlite.views import SQLiteViewStore
from app.settings import Settings
from domain import blackboard, budget, memory, sessions
from domain.append import AppendRequest
from domain.events import Event, EventMeta, NewEvent, Page
from domain.partition import Partition
from domain.ports import Projection
from domain.views import ViewOp, space_of
from projections.catalog import VIEWS
from projections.runtime import PAGE, Rebuild, Runner
from projections.snapshots import TakeSnapshot

SYNCHRONOUS = Settings().sqlite_synchronous  # what the service uses unless told otherwise
LAYOUT = "v1"  # part of the cached files' names: bump it when the generated events change
TENANT, ENV = "t1", "dev"
CHUNK = 1000  # events per group commit while building a partition
SEED = 7
BASE_TIME = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

# key distributions
USERS = 100
MEMORY_KEYS_PER_USER = 100  # 10,000 memory keys over 100 users
RUNS, RUN_KEYS, ACTIVE_RUNS = 1000, 20, 20  # blackboards: 1000 runs x 20 keys, ~20 runs written at once
SESSIONS, ACTIVE_SESSIONS = 10_000, 50  # 100 sessions per user, ~50 conversations at once
UNITS = (("tokens", 0.6), ("usd", 0.25), ("calls", 0.15))  # budget units and their share of usages

TARGET_REBUILD = 50_000  # events/s, blackboard and memory
TARGET_LAG_P99_MS = 50.0
LAG_VIEWS = ("memory", "blackboard")
SNAPSHOT_KEYS = 20  # blackboard keys of the snapshot case, each written --snapshot-writes times
WARMUP_SECONDS = 1.0
# The size knobs' defaults, and what `--smoke` uses instead (an explicit flag wins over both).
FULL = {"events": 1_000_000, "runs": 1, "rate": 1000.0, "seconds": 10.0, "snapshot_writes": 1000}
SMOKE = {"events": 3 * CHUNK, "runs": 2, "rate": 200.0, "seconds": 1.0, "snapshot_writes": 20}
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "spine-bench-data"

Decision = tuple[str, NewEvent, str | None]  # (stream, event, the user whose request appended it)


# (0) realistic events, from the domain's own constructors

TOPICS = ("profile", "preference", "task", "fact", "tool")
PHRASES = (
    "The user prefers answers in British English, with short paragraphs.",
    "Working on the quarterly report; the deadline is Friday.",
    "Allergic to peanuts.",
    "Prefers Python examples over JavaScript ones.",
    "Time zone: Europe/Berlin; available 9:00-17:00.",
    "Asked to be reminded about the dentist appointment next Tuesday at 10:30.",
)
BOARD_KEYS = (
    "plan", "status", "owner", "budget", "deadline", "summary", "risks", "next_step", "sources", "draft",
    "review", "decision", "blockers", "metrics", "notes", "result", "tests", "links", "handoff", "log",
)  # fmt: skip
MODELS = ("gpt-4o-mini", "claude-sonnet-4", "llama-3.1-70b", "mistral-large")


def memory_events(n: int, rng: random.Random) -> Iterator[Decision]:
    """10,000 keys over 100 users, uniformly; 5% deletes, 20% of sets with a one-hour TTL."""
    for i in range(n):
        user = f"user-{rng.randrange(USERS):03d}"
        k = rng.randrange(MEMORY_KEYS_PER_USER)
        key = f"{TOPICS[k % len(TOPICS)]}.{k}"
        if rng.random() < 0.05:
            yield memory.stream_of(user, key), memory.deleted_event(user, key), user
            continue
        value: Any = rng.choice(PHRASES)
        if rng.random() < 0.3:
            value = {"text": value, "confidence": round(rng.random(), 2), "source": "chat", "turn": i % 40}
        ttl = 3600 if rng.random() < 0.2 else None
        now = BASE_TIME + timedelta(milliseconds=10 * i)
        yield memory.stream_of(user, key), memory.set_event(user, key, value, ttl, now), user


def blackboard_events(n: int, rng: random.Random) -> Iterator[Decision]:
    """1000 runs x 20 keys; runs follow one another, about 20 of them written to at any time."""
    for i in range(n):
        run = (i * RUNS // n + rng.randrange(ACTIVE_RUNS)) % RUNS
        run_id = f"run-{run:04d}"
        key = BOARD_KEYS[rng.randrange(RUN_KEYS)]
        agent = f"agent-{rng.randrange(8)}"
        value = {"status": rng.choice(("todo", "doing", "done")), "progress": round(rng.random(), 2),
                 "note": rng.choice(PHRASES)}  # fmt: skip
        yield blackboard.stream_of(run_id, key), blackboard.written_event(run_id, key, value, agent), agent


def sessions_events(n: int, rng: random.Random) -> Iterator[Decision]:
    """10,000 sessions (100 per user), ~50 conversations at once; user and assistant turns."""
    for i in range(n):
        session = (i * SESSIONS // n + rng.randrange(ACTIVE_SESSIONS)) % SESSIONS
        user, session_id = f"user-{session % USERS:03d}", f"s-{session:05d}"
        if rng.random() < 0.5:
            role, content, metadata = "user", rng.choice(PHRASES), {}
        else:
            role = "assistant"
            content = " ".join(rng.choice(PHRASES) for _ in range(3))
            metadata = {"model": rng.choice(MODELS), "tokens": rng.randrange(50, 800)}
        event = sessions.message_event(user, session_id, role, content, metadata)
        yield sessions.stream_of(user, session_id), event, user


def budget_events(n: int, rng: random.Random, partition: Partition) -> Iterator[Decision]:
    """Soft day limits on 3 units, then usages (with model and run) decided on each unit's stream."""
    states: dict[str, budget.BudgetState] = {}
    limits = {"tokens": 50_000_000.0, "usd": 500.0, "calls": 20_000.0}
    for i in range(n):
        now = BASE_TIME + timedelta(milliseconds=500 * i)
        user = f"user-{rng.randrange(USERS):03d}"
        unit = rng.choices([u for u, _ in UNITS], weights=[w for _, w in UNITS])[0]
        state = states.get(unit) or budget.BudgetState(unit=unit)
        if unit not in states:
            change = budget.LimitChange(period="day", unit=unit, limit=limits[unit], hard=False)
            event = budget.decide_limit(state, change, now)
        else:
            amount = {"tokens": float(rng.randrange(200, 6000)), "usd": round(rng.uniform(0.001, 0.2), 4)}
            usage = budget.Usage(
                amount=amount.get(unit, 1.0),
                unit=unit,
                cost_usd=round(rng.uniform(0.0, 0.05), 5),
                model=rng.choice(MODELS),
                run_id=f"run-{rng.randrange(RUNS):04d}",
            )
            event = budget.decide_usage(state, usage, now, partition=partition)
        states[unit] = msgspec.convert(event.data["state"], budget.BudgetState)  # as `state_after` does
        yield budget.stream_of(unit), event, user


def partition_of(view: str) -> Partition:
    return Partition(tenant_id=TENANT, env=ENV, project_id=f"bench-{view}")


GENERATORS: dict[str, Callable[[int, random.Random], Iterator[Decision]]] = {
    "memory": memory_events,
    "blackboard": blackboard_events,
    "sessions": sessions_events,
    "budget": lambda n, rng: budget_events(n, rng, partition_of("budget")),
}
SOURCE = {"memory": "memory", "blackboard": "blackboard", "sessions": "sessions", "budget": "budget",
          "audit": "memory"}  # fmt: skip  # the partition each view is rebuilt from


def meta_of(partition: Partition, user: str | None) -> EventMeta:
    """What `RequestContext.event_meta()` stamps: the caller, its surface and the request id."""
    request_id = uuid.uuid4().hex
    return EventMeta(
        tenant_id=partition.tenant_id, env=partition.env, project_id=partition.project_id, user_id=user,
        surface_id="web", request_id=request_id, correlation_id=request_id,
    )  # fmt: skip


def requests_of(partition: Partition, decided: Sequence[Decision]) -> list[AppendRequest]:
    """One request per stream of a chunk, its events in order."""
    grouped: dict[str, tuple[str | None, list[NewEvent]]] = {}
    for stream, event, user in decided:
        grouped.setdefault(stream, (user, []))[1].append(event)
    return [
        AppendRequest(stream=stream, events=events, meta=meta_of(partition, user))
        for stream, (user, events) in grouped.items()
    ]


async def build_partition(path: Path, source: str, n: int) -> float:
    """The partition's file, built by the spine itself unless a complete one is cached: seconds taken."""
    if path.exists():  # noqa: ASYNC240
        return 0.0
    partial = path.with_name(path.name + ".partial")
    for leftover in path.parent.glob(partial.name + "*"):
        leftover.unlink()
    partition = partition_of(source)
    events = GENERATORS[source](n, random.Random(f"{SEED}:{source}"))
    print(f"  building {n:,} {source} events in {path} ...", flush=True)
    started = time.perf_counter()
    async with SQLiteSpine(partial, synchronous=SYNCHRONOUS) as spine:
        done = 0
        while chunk := [decided for _, decided in zip(range(CHUNK), events, strict=False)]:
            # Every stream's request of the chunk queued at once: the spine commits them together.
            async with anyio.create_task_group() as tg:
                for request in requests_of(partition, chunk):
                    tg.start_soon(spine.append, partition, request)
            done += len(chunk)
            if done % max(n // 10, CHUNK) < CHUNK:
                print(
                    f"    {done:>10,} events, {done / (time.perf_counter() - started):,.0f} ev/s", flush=True
                )
        head = await spine.head(partition)
    if head != n:
        raise RuntimeError(f"built {head} events of {source}, not {n}")
    if partial.with_name(partial.name + "-wal").exists():
        raise RuntimeError(f"{partial} was closed with its WAL left beside it")
    partial.rename(path)  # closing the last connection checkpointed and removed the WAL
    return time.perf_counter() - started


# (1) rebuild


class TimedSpine(SQLiteSpine):
    """The real spine, counting the time its callers spend in `read`."""

    read_seconds = 0.0

    async def read(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> Page:
        started = time.perf_counter()
        try:
            return await super().read(partition, after=after, limit=limit, stream=stream, types=types)
        finally:
            self.read_seconds += time.perf_counter() - started


class TimedViews(SQLiteViewStore):
    """The real view store, counting the time and ops of `apply` (encoding + its SQLite transaction)."""

    apply_seconds = 0.0
    ops = 0
    batches = 0

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        started = time.perf_counter()
        try:
            await super().apply(space, ops, checkpoint)
        finally:
            self.apply_seconds += time.perf_counter() - started
            self.ops += len(ops)
            self.batches += 1


class TimedProjection:
    """The catalog's projection, counting the time its pure `apply` takes."""

    def __init__(self, projection: Projection) -> None:
        self._projection = projection
        self.seconds = 0.0

    @property
    def name(self) -> str:
        return self._projection.name

    @property
    def handles(self) -> frozenset[str] | None:
        return self._projection.handles

    @property
    def collections(self) -> frozenset[str]:
        return self._projection.collections

    @property
    def version(self) -> int:
        return self._projection.version

    def apply(self, event: Event) -> list[ViewOp]:
        started = time.perf_counter()
        try:
            return self._projection.apply(event)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass
class RebuildRow:
    view: str
    source: str
    events: int
    rebuild: float  # seconds of `Rebuild.run`, from start to swap
    read: float  # of which in `spine.read`
    project: float  # of which in the projection's `apply`
    write: float  # of which in `views.apply`
    ops: int
    docs: int
    view_bytes: int
    replay: dict[str, float] = field(default_factory=dict)  # case -> events/s
    spread: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.rebuild


def raw_scan(path: Path, key: str, types: tuple[str, ...]) -> int:
    """The rows the rebuild reads, through stdlib sqlite3: the same paged query, no decoding."""
    sql = "SELECT position, type, body FROM events WHERE pkey = ? AND position > ?"
    if types:
        sql += f" AND type IN ({', '.join('?' * len(types))})"
    sql += " ORDER BY position LIMIT ?"
    count, cursor = 0, 0
    connection = sqlite3.connect(path)
    try:
        while rows := connection.execute(sql, (key, cursor, *types, PAGE)).fetchall():
            count += len(rows)
            cursor = rows[-1][0]
    finally:
        connection.close()
    return count


async def spine_scan(
    read: Callable[..., Awaitable[Any]], partition: Partition, types: tuple[str, ...]
) -> int:
    count, cursor = 0, 0
    while True:
        page = await read(partition, after=cursor, limit=PAGE, types=types)
        count += len(page.events)
        if page.next >= page.head:
            return count
        cursor = page.next


async def timed_rate(scan: Callable[[], Awaitable[int]]) -> float:
    started = time.perf_counter()
    count = await scan()
    return count / (time.perf_counter() - started)


async def rebuild_once(spine: TimedSpine, view: str, partition: Partition, work_dir: Path) -> RebuildRow:
    projection = TimedProjection(VIEWS[view][0])
    with tempfile.TemporaryDirectory(prefix="views-", dir=work_dir) as directory:
        views_path = Path(directory) / "views.db"
        views = TimedViews(views_path, synchronous=SYNCHRONOUS)
        async with views:
            head = await spine.head(partition)
            # The serving generation is current (and empty: its documents play no part), so the
            # runner's first catch-up finds nothing to do and the rebuild is all that runs.
            await views.apply(space_of(partition.key, view, 0), [], checkpoint=head)
            runner = Runner(projection, partition, spine, views, LocalNotifier())
            await runner.catch_up()
            rebuild = Rebuild(runner, grace_seconds=0)
            spine.read_seconds, views.apply_seconds, views.ops = 0.0, 0.0, 0
            started = time.perf_counter()
            await rebuild.run()  # builds generation 1 from position 0, swaps it in, drops generation 0
            elapsed = time.perf_counter() - started
            if rebuild.state != "swapped" or runner.generation != 1 or runner.position != head:
                raise RuntimeError(
                    f"rebuild of {view}: {rebuild.state} {rebuild.error}, at {runner.position}"
                )
            read, write, ops = spine.read_seconds, views.apply_seconds, views.ops
        with sqlite3.connect(views_path) as connection:
            docs = connection.execute("SELECT count(*) FROM view_documents").fetchone()[0]
        view_bytes = sum(p.stat().st_size for p in Path(directory).iterdir())  # noqa: ASYNC240
    return RebuildRow(
        view, SOURCE[view], head, elapsed, read, projection.seconds, write, ops, docs, view_bytes
    )


async def rebuild_view(view: str, path: Path, runs: int, work_dir: Path) -> RebuildRow:
    partition = partition_of(SOURCE[view])
    handles = VIEWS[view][0].handles
    types = tuple(sorted(handles)) if handles else ()
    spine = TimedSpine(path, synchronous=SYNCHRONOUS)
    key = partition.key
    async with spine:
        replays: dict[str, list[float]] = {"raw": [], "encoded": [], "decoded": []}
        rows = []
        for _ in range(runs):
            replays["raw"].append(
                await timed_rate(lambda: anyio.to_thread.run_sync(raw_scan, path, key, types))
            )
            replays["encoded"].append(
                await timed_rate(lambda: spine_scan(spine.read_encoded, partition, types))
            )
            replays["decoded"].append(await timed_rate(lambda: spine_scan(spine.read, partition, types)))
            rows.append(await rebuild_once(spine, view, partition, work_dir))
    rows.sort(key=lambda row: row.rate)
    row = rows[len(rows) // 2]
    row.replay = {case: statistics.median(rates) for case, rates in replays.items()}
    if runs > 1:
        row.spread = f"{rows[0].rate:,.0f}..{rows[-1].rate:,.0f} over {runs} runs"
    return row


def print_rebuilds(rows: list[RebuildRow], page: int) -> None:
    print(
        "\n(1) rebuild from position 0 (real Rebuild into a fresh SQLiteViewStore), beside replay of the same rows"
    )
    print(
        f"    every figure in events/s; replays read {page}-event pages filtered to the view's types, as the rebuild does"
    )
    head = (
        f"  {'view':<11} {'partition':<11} {'events':>9} {'rebuild':>9} {'read_encoded':>12}"
        f" {'read':>9} {'raw SELECT':>10} {'rebuild/read':>12}  spread"
    )
    print(head)
    print("  " + "-" * (len(head) - 2))
    for r in rows:
        print(
            f"  {r.view:<11} {r.source:<11} {r.events:>9,} {r.rate:>9,.0f} {r.replay['encoded']:>12,.0f}"
            f" {r.replay['decoded']:>9,.0f} {r.replay['raw']:>10,.0f} {r.rate / r.replay['decoded']:>12.2f}  {r.spread}"
        )
    print("\n  where the rebuild's time goes (seconds; µs per event)")
    head = (
        f"  {'view':<11} {'total':>7} {'spine.read':>16} {'projection.apply':>16} {'views.apply':>16}"
        f" {'other':>14} {'ops/ev':>6} {'docs':>10} {'views.db':>9}"
    )
    print(head)
    print("  " + "-" * (len(head) - 2))
    for r in rows:

        def part(seconds: float, r: RebuildRow = r) -> str:
            return f"{seconds:.1f} ({seconds / r.events * 1e6:.1f})"

        other = r.rebuild - r.read - r.project - r.write
        print(
            f"  {r.view:<11} {r.rebuild:>7.1f} {part(r.read):>16} {part(r.project):>16} {part(r.write):>16}"
            f" {part(other):>14} {r.ops / r.events:>6.1f} {r.docs:>10,} {r.view_bytes / 1e6:>7.0f}MB"
        )


# (3) rebuild from 0 vs from a snapshot


@dataclass
class SnapshotRow:
    keys: int
    writes: int  # per key, before the snapshot
    tail: int  # events after the snapshot
    documents: int
    take_seconds: float
    start_seconds: float
    snapshot_seconds: float


async def rebuild_from_snapshot(keys: int, writes: int, work_dir: Path) -> SnapshotRow:
    """Long streams (every write of a key carries the entry), a snapshot, a short tail; both rebuilds."""
    partition = partition_of("blackboard")
    meta = meta_of(partition, "u1")
    with tempfile.TemporaryDirectory(prefix="snapshot-", dir=work_dir) as directory:
        spine = SQLiteSpine(Path(directory) / "spine.db", synchronous=SYNCHRONOUS)
        views = SQLiteViewStore(Path(directory) / "views.db", synchronous=SYNCHRONOUS)
        async with spine, views:

            async def write(per_key: int) -> None:
                for start in range(0, per_key, 100):
                    for k in range(keys):
                        events = [blackboard.written_event("run-1", f"k{k}", {"n": n, "pad": "x" * 64}, "u1")
                                  for n in range(start, min(start + 100, per_key))]  # fmt: skip
                        await spine.append(partition, AppendRequest(
                            stream=blackboard.stream_of("run-1", f"k{k}"), events=events, meta=meta))  # fmt: skip

            await write(writes)
            runner = Runner(VIEWS["blackboard"].projection, partition, spine, views, LocalNotifier())
            await runner.catch_up()
            started = time.perf_counter()
            taking = TakeSnapshot(runner, now=datetime.now(UTC))
            await taking.run()
            take_seconds = time.perf_counter() - started
            if taking.meta is None:
                raise RuntimeError(f"snapshot not taken: {taking.state} {taking.error}")
            before = await spine.head(partition)
            await write(1)  # the tail: one more write per key
            tail = await spine.head(partition) - before
            await runner.catch_up()
            seconds = {}
            for source in ("start", "snapshot"):
                rebuild = Rebuild(runner, grace_seconds=0, from_=source)  # type: ignore[arg-type]
                started = time.perf_counter()
                await rebuild.run()
                seconds[source] = time.perf_counter() - started
                if (rebuild.state, rebuild.source) != ("swapped", source):
                    raise RuntimeError(
                        f"rebuild from {source}: {rebuild.state} {rebuild.source} {rebuild.error}"
                    )
    return SnapshotRow(keys, writes, tail, taking.meta.documents, take_seconds, seconds["start"],
                       seconds["snapshot"])  # fmt: skip


def print_snapshot(row: SnapshotRow) -> None:
    events = row.keys * row.writes + row.tail
    print(f"\n(3) rebuild of the blackboard view from 0 vs from a snapshot ({row.keys} keys x {row.writes:,}"
          f" writes, then {row.tail} more; the snapshot holds {row.documents} documents)")  # fmt: skip
    print(f"  {'from':<10} {'events replayed':>15} {'seconds':>9}")
    print(f"  {'start':<10} {events:>15,} {row.start_seconds:>9.3f}")
    print(f"  {'snapshot':<10} {row.tail:>15,} {row.snapshot_seconds:>9.3f}"
          f"   (taking the snapshot: {row.take_seconds:.3f} s)")  # fmt: skip


# (2) live lag


@dataclass
class Sample:
    due: float
    started: float
    acked: float
    position: int


@dataclass
class LagRow:
    view: str
    appends: int
    rate: float  # achieved appends/s
    lag_ms: list[float]
    append_ms: list[float]
    late_ms: float  # the latest an append started after its scheduled time
    batches: int
    seen_first: int  # events the view had written before their append was acknowledged


def live_events(view: str, n: int) -> list[Decision]:
    return list(GENERATORS[view](n, random.Random(f"{SEED}:live:{view}")))


async def paced(
    spine: SQLiteSpine, partition: Partition, decided: list[Decision], rate: float
) -> list[Sample]:
    """Each append starts at its own time on an absolute schedule; none waits for another."""
    samples: list[Sample] = []
    requests = [requests_of(partition, [item])[0] for item in decided]

    async def append(due: float, request: AppendRequest) -> None:
        started = time.perf_counter()
        result = await spine.append(partition, request)
        samples.append(Sample(due, started, time.perf_counter(), result.last_position))

    origin = time.perf_counter() + 0.01
    async with anyio.create_task_group() as tg:
        for index, request in enumerate(requests):
            due = origin + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            tg.start_soon(append, due, request)
    return samples


async def live_lag(view: str, rate: float, seconds: float, work_dir: Path) -> LagRow:
    partition = partition_of(f"live-{view}")
    warmup, measured = round(rate * WARMUP_SECONDS), round(rate * seconds)
    decided = live_events(view, warmup + measured)
    applied: dict[int, float] = {}
    batches = 0

    def on_batch(runner: Runner, events: list[Event]) -> None:
        nonlocal batches
        now = time.perf_counter()
        batches += 1
        for event in events:
            applied[event.position] = now

    notifier = LocalNotifier()
    with tempfile.TemporaryDirectory(prefix="live-", dir=work_dir) as directory:
        async with (
            SQLiteSpine(Path(directory) / "spine.db", notifier=notifier, synchronous=SYNCHRONOUS) as spine,
            SQLiteViewStore(Path(directory) / "views.db", synchronous=SYNCHRONOUS) as views,
        ):
            runner = Runner(
                VIEWS[view][0], partition, spine, views, notifier,
                poll_seconds=Settings().poll_seconds, on_batch=on_batch,
            )  # fmt: skip
            async with anyio.create_task_group() as tg:
                tg.start_soon(runner.run)
                await paced(spine, partition, decided[:warmup], rate)
                batches = 0
                samples = await paced(spine, partition, decided[warmup:], rate)
                last = max(sample.position for sample in samples)
                if not await runner.wait_for(last, 30.0):
                    raise RuntimeError(f"the {view} runner did not reach {last}")
                tg.cancel_scope.cancel()
    lags = [applied[s.position] - s.acked for s in samples]
    return LagRow(
        view=view,
        appends=len(samples),
        rate=len(samples) / (max(s.acked for s in samples) - min(s.due for s in samples)),
        lag_ms=[max(lag, 0.0) * 1000 for lag in lags],
        append_ms=[(s.acked - s.started) * 1000 for s in samples],
        late_ms=max(s.started - s.due for s in samples) * 1000,
        batches=batches,
        seen_first=sum(1 for lag in lags if lag < 0),
    )


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_lags(rows: list[LagRow], rate: float, seconds: float) -> None:
    print(
        f"\n(2) live projection lag: single-event appends at {rate:,.0f}/s for {seconds:g} s"
        f" (after {WARMUP_SECONDS:g} s of warm-up), a running Runner"
    )
    print("    lag: append acknowledged -> the runner's batch holding it written to the view (ms)")
    head = (
        f"  {'view':<11} {'appends':>7} {'ach./s':>7} {'lag p50':>8} {'p95':>6} {'p99':>6} {'max':>6}"
        f"  {'append p50':>10} {'p99':>6} {'max':>6}  {'batches':>7} {'ev/batch':>8} {'late max':>8}"
    )
    print(head)
    print("  " + "-" * (len(head) - 2))
    for r in rows:
        print(
            f"  {r.view:<11} {r.appends:>7,} {r.rate:>7,.0f} {quantile(r.lag_ms, 0.5):>8.1f}"
            f" {quantile(r.lag_ms, 0.95):>6.1f} {quantile(r.lag_ms, 0.99):>6.1f} {max(r.lag_ms):>6.1f}"
            f"  {quantile(r.append_ms, 0.5):>10.1f} {quantile(r.append_ms, 0.99):>6.1f} {max(r.append_ms):>6.1f}"
            f"  {r.batches:>7,} {r.appends / max(r.batches, 1):>8.1f} {r.late_ms:>7.1f}ms"
        )
        if r.seen_first:
            print(
                f"    ({r.seen_first} event(s) were in the view before their append's caller resumed: lag 0)"
            )


# report


def print_target(label: str, value: float, target: float, unit: str, *, at_most: bool = False) -> None:
    meets = value <= target if at_most else value >= target
    wanted = f"{'<=' if at_most else '>='} {target:,.0f}{unit}"
    print(f"  {label:<36} {value:>10,.1f}{unit:<5} target {wanted:<16} {'meets' if meets else 'MISSES'}")


async def main(args: argparse.Namespace) -> None:
    views = [name.strip() for name in args.views.split(",") if name.strip()]
    unknown = [name for name in views if name not in SOURCE]
    if unknown:
        raise SystemExit(f"unknown view(s) {unknown}; known: {', '.join(SOURCE)}")
    if args.data_dir is None and args.smoke:
        # Smoke partitions are built afresh (the build is a code path too) and never cached.
        with tempfile.TemporaryDirectory(prefix="spine-bench-smoke-") as directory:
            await measure(args, views, Path(directory))
    else:
        await measure(args, views, Path(args.data_dir or DEFAULT_DATA_DIR))


async def measure(args: argparse.Namespace, views: list[str], data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    print(header("bench_projections: rebuilds and live lag of the product views"))
    if args.smoke:
        print("  SMOKE RUN: every case at tiny sizes, to show the bench still runs; the figures mean nothing")
    print(
        f"  sqlite {sqlite3.sqlite_version}, WAL, synchronous={SYNCHRONOUS} (Settings default), "
        f"runtime PAGE={PAGE}; data dir {data_dir}"
    )

    rebuilds: list[RebuildRow] = []
    if not args.skip_rebuild:
        paths = {
            source: data_dir / f"{LAYOUT}-{source}-{args.events}.db" for source in {SOURCE[v] for v in views}
        }
        for source, path in sorted(paths.items()):
            built = await build_partition(path, source, args.events)
            status = f"built in {built:.0f} s ({args.events / built:,.0f} ev/s)" if built else "cached"
            print(f"  partition {source}: {path.name}, {path.stat().st_size / 1e6:,.0f} MB, {status}")
        for view in views:
            print(f"  rebuilding {view} ...", flush=True)
            rebuilds.append(await rebuild_view(view, paths[SOURCE[view]], args.runs, data_dir))
        print_rebuilds(rebuilds, PAGE)

    if not args.skip_snapshot:
        print_snapshot(await rebuild_from_snapshot(SNAPSHOT_KEYS, args.snapshot_writes, data_dir))

    lags: list[LagRow] = []
    if not args.skip_lag:
        for view in LAG_VIEWS:
            lags.append(await live_lag(view, args.rate, args.seconds, data_dir))
        print_lags(lags, args.rate, args.seconds)

    print(
        "\ntargets (printed, not asserted" + ("; a smoke run's figures mean nothing)" if args.smoke else ")")
    )
    for row in rebuilds:
        if row.view in ("memory", "blackboard"):
            print_target(f"rebuild {row.view}", row.rate, TARGET_REBUILD, " ev/s")
    for lag in lags:
        print_target(
            f"live lag p99, {lag.view}", quantile(lag.lag_ms, 0.99), TARGET_LAG_P99_MS, " ms", at_most=True
        )
    print(f"  after the run: {load()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every case at tiny sizes, in a few seconds, in a temporary directory (for CI)",
    )
    parser.add_argument("--events", type=int, help="events per partition (default 1,000,000; --smoke: 3,000)")
    parser.add_argument(
        "--views",
        default=",".join(SOURCE),
        help=f"views to rebuild, comma-separated (default {','.join(SOURCE)})",
    )
    parser.add_argument(
        "--runs", type=int, help="rebuilds per view; the median is shown (default 1; --smoke: 2)"
    )
    parser.add_argument("--rate", type=float, help="appends/s of the lag test (default 1000; --smoke: 200)")
    parser.add_argument("--seconds", type=float, help="length of each lag test (default 10; --smoke: 1)")
    parser.add_argument(
        "--data-dir",
        help="where partitions are cached between runs, and views built (default: $TMPDIR/spine-bench-data;"
        " --smoke: a temporary directory, removed afterwards)",
    )
    parser.add_argument(
        "--snapshot-writes",
        type=int,
        help=f"writes per key of the snapshot case's {SNAPSHOT_KEYS} keys (default 1000; --smoke: 20)",
    )
    parser.add_argument("--skip-snapshot", action="store_true", help="leave out rebuild from a snapshot")
    parser.add_argument("--skip-rebuild", action="store_true", help="only the lag test")
    parser.add_argument("--skip-lag", action="store_true", help="only the rebuilds")
    arguments = parser.parse_args()
    for knob, default in (SMOKE if arguments.smoke else FULL).items():
        if getattr(arguments, knob) is None:
            setattr(arguments, knob, default)
    if (arguments.events < 1 or arguments.runs < 1 or arguments.rate <= 0 or arguments.seconds <= 0
            or arguments.snapshot_writes < 1):  # fmt: skip
        parser.error("--events, --runs, --rate, --seconds and --snapshot-writes must be positive")
    anyio.run(main, arguments)
