"""Retention throughput: how fast a run plans and removes expired events, per backend, beside
raw SQLite deleting the same rows, in one run.

    .venv/bin/python bench/bench_retention.py [--events 20000] [--runs 3] [--backends sqlite,dynamodb]
    .venv/bin/python bench/bench_retention.py --smoke   # every case at a tiny size (CI runs this)

Each run fills a fresh spine (SQLite file, DynamoDB Local table, Firestore emulator project or
Cosmos peer container: the contract suites' peers, `tests/peers/*.py`) with `--events` events of
~300 bytes over 100 streams, appended in batches of 100 (untimed). The rule keeps each stream's
newest 10 events, so a run removes most of the partition (95 % at the default size). Then, timed:

  plan      `app.usecases.retention.plan`: the partition read once, in pages of 1000
  remove    `EventSpine.remove` of the planned positions, 1000 per call, as a run does
  baseline  raw sqlite3 on a file with the SQLite spine's own table and indexes, the same rows:
            one `DELETE … WHERE pkey = ? AND position IN (…)` per 1000 positions, in one
            transaction, with `synchronous=FULL` like the adapter. It skips the adapter's check
            that keeps each stream's last event, so it is the floor the adapter pays above.

The table shows the median run in events per second (scanned for plan, removed for remove).
Figures are printed, never asserted. A peer that cannot run here is reported as skipped (under
CI=true the script fails instead); `--smoke` runs every case once at 1,000 events.
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import anyio
import msgspec
import pytest
from _env import REPO, header, load

sys.path.insert(0, str(REPO))  # `tests` (the peers' factories) is importable from the repository root

from adapters.local_notifier import LocalNotifier
from adapters.sqlite.spine import _SCHEMA
from app.usecases.retention import REMOVE_BATCH, plan
from domain.append import AppendRequest
from domain.events import EventMeta, NewEvent
from domain.partition import Partition
from domain.ports import EventSpine
from domain.retention import RetentionRule, RetentionSet

BACKENDS = ("sqlite", "dynamodb", "firestore", "cosmos")
PARTITION = Partition(tenant_id="t1", env="dev", project_id="p1")
META = EventMeta(tenant_id="t1", env="dev", project_id="p1", user_id="u-42")
DATA = {"role": "assistant", "content": "Sure: the report is due Friday; I drafted the outline. " * 4}
STREAMS, BATCH, KEEP = 100, 100, 10
RULES = RetentionSet(
    tenant_id="t1", project_id="p1", rules=[RetentionRule(stream_prefix="chat:", keep_last=KEEP)]
)
FULL = {"events": 20_000, "runs": 3}
SMOKE = {"events": 1_000, "runs": 1}


async def fill(spine: EventSpine, events: int) -> None:
    batches = max(1, events // BATCH)
    for index in range(batches):
        request = AppendRequest(
            stream=f"chat:{index % STREAMS}",
            events=[NewEvent(type="chat.said", data=DATA)] * BATCH,
            meta=META,
        )
        await spine.append(PARTITION, request)


async def adapter_run(backend: str, events: int) -> tuple[float, float, int]:
    """(plan events/s, remove events/s, removed) on a fresh spine of `backend`."""
    factory = importlib.import_module("tests.backends").SPINES[backend]
    with tempfile.TemporaryDirectory(prefix="spine-bench-retention-") as directory:
        async with factory(Path(directory), LocalNotifier()) as spine:
            await fill(spine, events)
            started = time.perf_counter()
            planned = await plan(spine, PARTITION, RULES, datetime.now(UTC))
            planning = time.perf_counter() - started
            positions = planned.positions
            started = time.perf_counter()
            removed = 0
            for start in range(0, len(positions), REMOVE_BATCH):
                removed += await spine.remove(PARTITION, positions[start : start + REMOVE_BATCH])
            removing = time.perf_counter() - started
            if removed != len(positions) or not removed:
                raise RuntimeError(f"removed {removed} of {len(positions)} planned")
            return planned.scanned / planning, removed / removing, removed


def baseline_run(events: int, removed_positions: int) -> float:
    """Raw sqlite3: the same table, the same number of rows deleted in batches of 1000."""
    with tempfile.TemporaryDirectory(prefix="spine-bench-retention-raw-") as directory:
        connection = sqlite3.connect(Path(directory) / "raw.db", isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.executescript(_SCHEMA)
        body = b"x" * 300
        rows = [
            (PARTITION.key, p, f"id-{p}", f"chat:{p % STREAMS}", p, "chat.said", body)
            for p in range(1, events + 1)
        ]
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        connection.execute("COMMIT")
        doomed = list(range(1, removed_positions + 1))
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        for start in range(0, len(doomed), REMOVE_BATCH):
            chunk = doomed[start : start + REMOVE_BATCH]
            connection.execute(
                f"DELETE FROM events WHERE pkey = ? AND position IN ({', '.join('?' * len(chunk))})",
                [PARTITION.key, *chunk],
            )
        connection.execute("COMMIT")
        elapsed = time.perf_counter() - started
        connection.close()
        return len(doomed) / elapsed


async def main(backends: list[str], events: int, runs: int, smoke: bool) -> int:
    print(header("bench_retention: events planned and removed per second, beside raw SQLite deletes"))
    if smoke:
        print(
            "  SMOKE RUN: every case once at a tiny size, to show the bench still runs; the figures mean nothing"
        )
    print(
        f"  {events:,} events ({len(msgspec.json.encode(DATA))} bytes of data each) over {STREAMS} streams; keep_last {KEEP}; {runs} run(s)"
    )
    rows: list[tuple[str, str, float | None, str]] = []
    failed = False
    removed = 0
    for backend in backends:
        try:
            figures = [await adapter_run(backend, events) for _ in range(runs)]
        except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:
            skipped = isinstance(exc, pytest.skip.Exception)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            rows.append((backend, "skipped" if skipped else "FAILED", None, reason))
            if isinstance(exc, Exception):
                traceback.print_exception(exc)
                failed = True
            continue
        removed = figures[0][2]
        rows.append((backend, "plan (scanned/s)", statistics.median(f[0] for f in figures), ""))
        rows.append((backend, "remove (removed/s)", statistics.median(f[1] for f in figures), ""))
    if removed:
        raw = statistics.median(baseline_run(events, removed) for _ in range(runs))
        rows.append(("raw sqlite", "DELETE (removed/s)", raw, "the same rows, no last-event check"))
    print(f"\n  {'backend':<11} {'case':<20} {'events/s':>10}  note\n  " + "-" * 60)
    for backend, case, rate, note in rows:
        figure = f"{rate:>10,.0f}" if rate is not None else f"{'-':>10}"
        print(f"  {backend:<11} {case:<20} {figure}  {note}")
    print(f"\n  removed per run: {removed:,}. After the run: {load()}")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="every case once at a tiny size (for CI)")
    parser.add_argument("--events", type=int, help="events per run (default 20000; --smoke: 1000)")
    parser.add_argument("--runs", type=int, help="runs per backend; the median is shown (default 3)")
    parser.add_argument(
        "--backends", default="sqlite,dynamodb", help=f"comma-separated, from {', '.join(BACKENDS)}"
    )
    args = parser.parse_args()
    for knob, default in (SMOKE if args.smoke else FULL).items():
        if getattr(args, knob) is None:
            setattr(args, knob, default)
    chosen = [name.strip() for name in args.backends.split(",") if name.strip()]
    if unknown := set(chosen) - set(BACKENDS):
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if args.events < BATCH or args.runs < 1:
        parser.error(f"--events must be at least {BATCH}, --runs at least 1")
    sys.exit(anyio.run(main, chosen, args.events, args.runs, args.smoke))
