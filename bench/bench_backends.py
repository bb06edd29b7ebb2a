"""Append and replay throughput of the EventSpine port on each backend, SQLite as the baseline.

    .venv/bin/python bench/bench_backends.py [--events 1000] [--runs 3] [--backends sqlite,dynamodb,...]
    .venv/bin/python bench/bench_backends.py --smoke   # every case at tiny sizes (CI runs this)

The peers are the ones the contract suites use (`tests/peers/*.py`, installed by
`.ci/peers/*.sh`): DynamoDB Local, Google's Cloud Firestore emulator and @vercel/cosmosdb-server,
each started once on a free port. Every run gets a fresh spine (SQLite file, table, project or
container) and the same partition shape. A peer that cannot run here is reported on its rows as
skipped, and the others still run; under CI=true (where `.ci/peers` installs them all) it fails
the run instead, as in the contract suites. Any other error is reported on its rows and makes the
script exit non-zero once every backend has run.
Each case runs `--runs` times; the table shows the median run, its spread, and its events/s as a
multiple of SQLite's. Figures are printed, never asserted.

(a) 1 appender, one event per request, `--events` events: latency-bound; p50/p99 per append.
(b) 16 concurrent appenders, each appending one event at a time to its own stream, 4 x `--events`
    events in all: group commit (every adapter has it).
(c) 1 appender, batches of 100 events per request, 100 x `--events` events, on one stream.
(d) replay of the partition (c) built, from position 0, in pages of 1000: `read_encoded` (stored
    JSON, what SSE catch-up and `spine replay` send), then `read` (decoded `Event`s).
(e) `spine replay --into`: a SQLite partition of 4 x `--events` events, appended one at a time by
    16 appenders (so streams interleave and nearly every event is an append of its own), copied
    into the backend; then its verification (both logs read and hashed per range).

`--smoke` runs every case on every backend at tiny sizes (`--events 20`, 2 runs: (d) still reads
more than one page), so that CI notices when the bench stops running; its figures mean nothing.
Most of its time is the peers starting.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec
import pytest
from _env import REPO, header, load

from adapters.local_notifier import LocalNotifier
from adapters.sqlite.spine import SQLiteSpine
from app.usecases.move import copy_log, digests
from domain.append import AppendRequest
from domain.events import EventMeta, NewEvent
from domain.partition import Partition
from domain.ports import EventSpine

BACKENDS = ("sqlite", "dynamodb", "firestore", "cosmos")
PARTITION = Partition(tenant_id="t1", env="dev", project_id="p1")
META = EventMeta(tenant_id="t1", env="dev", project_id="p1", user_id="u-42", surface_id="chat")
EVENT_TYPE = "memory.set"
# An agent-memory write: a key, a sentence or two of value and its bookkeeping (~300 bytes of JSON).
DATA = {
    "key": "user.preferences.writing_style",
    "value": (
        "Prefers answers in British English, short paragraphs, no bullet lists unless asked; "
        "code samples in Python 3.11 with type hints; cite sources inline."
    ),
    "source": "chat",
    "confidence": 0.92,
    "turn": 17,
    "session_id": "s-01JD8Y6ZQ4K7M2N9P3R5T7V9XB",
    "tags": ["style", "language", "format"],
}
APPENDERS = 16
BATCH = 100
PAGE = 1000
CONCURRENT_EVENTS, BATCHED_EVENTS = 4, 100  # x --events
# `--events` and `--runs` by default, and with `--smoke` (an explicit flag wins over both)
FULL = {"events": 1000, "runs": 3}
SMOKE = {"events": 20, "runs": 2}


@dataclass
class Run:
    events: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds per request (or page)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


@dataclass
class Result:
    runs: list[Run] = field(default_factory=list)
    error: str = ""
    skipped: bool = False  # its peer cannot run here (never under CI=true)

    @property
    def median(self) -> Run:
        return sorted(self.runs, key=lambda run: run.rate)[len(self.runs) // 2]


CASES = {
    "a": "(a) 1 appender x 1 event",
    "b": f"(b) {APPENDERS} appenders x 1 event",
    "c": f"(c) 1 appender x {BATCH}-event batches",
    "d1": f"(d) replay, read_encoded {PAGE}/page",
    "d2": f"(d) replay, read {PAGE}/page, decoded",
    "e1": "(e) move into it: copy",
    "e2": "(e) move into it: verify both logs",
}


async def appends(spine: EventSpine, appenders: int, appends_each: int, batch: int) -> Run:
    events = [NewEvent(type=EVENT_TYPE, data=DATA) for _ in range(batch)]
    latencies: list[float] = []

    async def appender(index: int) -> None:
        request = AppendRequest(stream=f"agent:{index}", events=events, meta=META)
        for _ in range(appends_each):
            started = time.perf_counter()
            await spine.append(PARTITION, request)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for index in range(appenders):
            tg.start_soon(appender, index)
    elapsed = time.perf_counter() - started
    total, head = appenders * appends_each * batch, await spine.head(PARTITION)
    if head != total:
        raise RuntimeError(f"head {head} after appending {total} events")
    return Run(total, elapsed, latencies)


async def replay(spine: EventSpine, *, encoded: bool) -> Run:
    """The whole partition from position 0, in pages of PAGE; latencies are per page."""
    read = spine.read_encoded if encoded else spine.read
    count, cursor, latencies = 0, 0, []
    started = time.perf_counter()
    while True:
        page_started = time.perf_counter()
        page = await read(PARTITION, after=cursor, limit=PAGE)
        latencies.append(time.perf_counter() - page_started)
        count += len(page.events)
        if page.next >= page.head:
            return Run(count, time.perf_counter() - started, latencies)
        cursor = page.next


async def move(target: EventSpine, events: int) -> tuple[Run, Run]:
    """`spine replay --into`'s copy and verification from a fresh SQLite partition into `target`."""
    with tempfile.TemporaryDirectory(prefix="spine-bench-source-") as directory:
        async with SQLiteSpine(Path(directory) / "source.db") as source:
            await appends(source, APPENDERS, max(1, events // APPENDERS), 1)  # untimed
            pages: list[float] = []
            mark = time.perf_counter()

            def page_done(_: int) -> None:
                nonlocal mark
                pages.append(time.perf_counter() - mark)
                mark = time.perf_counter()

            started = time.perf_counter()
            head, _ = await copy_log(source, target, PARTITION, page_done)
            copied = Run(head, time.perf_counter() - started, pages[1:])  # the first call is the start
            pages.clear()
            started = mark = time.perf_counter()
            same = await digests(source, PARTITION, head, 10_000, page_done) == await digests(
                target, PARTITION, head, 10_000, page_done
            )
            if not same:
                raise RuntimeError("the copy differs from its source")
            return copied, Run(2 * head, time.perf_counter() - started, pages)


async def stored_bytes(spine: EventSpine) -> float:
    """The mean size of an event's stored JSON, from the first page (untimed)."""
    page = await spine.read_encoded(PARTITION, limit=PAGE)
    return sum(len(body) for _, _, body in page.events) / max(1, len(page.events))


async def measure(backend: str, events: int, runs: int) -> tuple[dict[str, Result], float]:
    """Every case on one backend; the mean stored event size. Raises when the peer cannot start."""
    factory = importlib.import_module("tests.backends").SPINES[backend]
    results = {case: Result() for case in CASES}
    stored = 0.0

    async def fresh(case: Callable[[EventSpine], Awaitable[None]]) -> None:
        with tempfile.TemporaryDirectory(prefix="spine-bench-") as directory:
            async with factory(Path(directory), LocalNotifier()) as spine:
                await case(spine)

    async def single(spine: EventSpine) -> None:
        results["a"].runs.append(await appends(spine, 1, events, 1))

    async def concurrent(spine: EventSpine) -> None:
        each = max(1, CONCURRENT_EVENTS * events // APPENDERS)
        results["b"].runs.append(await appends(spine, APPENDERS, each, 1))

    async def batched_then_replayed(spine: EventSpine) -> None:
        nonlocal stored
        results["c"].runs.append(await appends(spine, 1, max(1, BATCHED_EVENTS * events // BATCH), BATCH))
        results["d1"].runs.append(await replay(spine, encoded=True))
        results["d2"].runs.append(await replay(spine, encoded=False))
        stored = await stored_bytes(spine)

    async def moved(spine: EventSpine) -> None:
        copied, verified = await move(spine, CONCURRENT_EVENTS * events)
        results["e1"].runs.append(copied)
        results["e2"].runs.append(verified)

    for _ in range(runs):
        for case in (single, concurrent, batched_then_replayed, moved):
            await fresh(case)
    return results, stored


def print_table(results: dict[str, dict[str, Result]], runs: int) -> None:
    head = (
        f"  {'case':<36} {'backend':<10} {'events':>7} {'seconds':>8} {'events/s':>9} {'x sqlite':>8}"
        f" {'p50 ms':>8} {'p99 ms':>8}  spread (events/s)"
    )
    print(f"\n{head}\n  " + "-" * (len(head) - 2))
    baseline = results.get("sqlite", {})
    for case, title in CASES.items():
        for backend, cases in results.items():
            label = title if backend == next(iter(results)) else ""
            result = cases[case]
            if not result.runs:
                reason = f": {result.error}" if case == next(iter(CASES)) else ""  # once per backend
                print(f"  {label:<36} {backend:<10} {'skipped' if result.skipped else 'failed'}{reason}")
                continue
            run = result.median
            base = baseline.get(case)
            ratio = f"{run.rate / base.median.rate:.2f}x" if base and base.runs else "-"
            rates = sorted(r.rate for r in result.runs)
            spread = f"{rates[0]:,.0f}..{rates[-1]:,.0f} over {runs}" if runs > 1 else ""
            print(
                f"  {label:<36} {backend:<10} {run.events:>7,} {run.seconds:>8.2f} {run.rate:>9,.0f}"
                f" {ratio:>8} {run.percentile_ms(0.5):>8.2f} {run.percentile_ms(0.99):>8.2f}  {spread}"
            )


async def main(backends: list[str], events: int, runs: int, smoke: bool) -> int:
    """Runs every backend; the exit status: 1 when one failed (a peer merely absent here is skipped)."""
    sys.path.insert(0, str(REPO))  # `tests` (the peers' factories) is importable from the repo root
    print(header("bench_backends: EventSpine append and replay per backend (peers are local emulators)"))
    if smoke:
        print("  SMOKE RUN: every case at tiny sizes, to show the bench still runs; the figures mean nothing")
    data_bytes = len(msgspec.json.encode(DATA))
    print(
        f"  events: (a) {events:,}, (b) and (e) {CONCURRENT_EVENTS * events:,}, (c) and (d) {BATCHED_EVENTS * events:,};"
        f" {runs} run(s) each; event data {data_bytes} bytes of JSON"
    )
    results: dict[str, dict[str, Result]] = {}
    for backend in backends:
        started = time.perf_counter()
        try:
            results[backend], stored = await measure(backend, events, runs)
        except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:
            # The peers' factories skip when a peer cannot run here, and fail instead under CI=true.
            skipped = isinstance(exc, pytest.skip.Exception)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            results[backend] = {case: Result(error=reason, skipped=skipped) for case in CASES}
            outcome = "SKIPPED (its peer cannot run here)" if skipped else "FAILED"
            print(f"  {backend:<10} {outcome} after {time.perf_counter() - started:.0f} s: {reason}")
            if isinstance(exc, Exception):  # a fault of the bench or an adapter, not of the machine
                traceback.print_exception(exc)
            continue
        print(
            f"  {backend:<10} done in {time.perf_counter() - started:.0f} s; mean stored event {stored:.0f} bytes"
        )
    print_table(results, runs)
    print(
        f"\n  p50/p99: per append request for (a)-(c), per page of 1000 for (d) and (e). After the run: {load()}"
    )
    outcomes = {backend: cases[next(iter(CASES))] for backend, cases in results.items()}
    skipped = [f"{name} ({r.error})" for name, r in outcomes.items() if not r.runs and r.skipped]
    failed = [name for name, r in outcomes.items() if not r.runs and not r.skipped]
    if skipped:
        print(f"  skipped, their peers cannot run here: {'; '.join(skipped)}")
    if failed:
        print(f"  FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every case on every backend at tiny sizes, in a few seconds plus the peers' start (for CI)",
    )
    parser.add_argument(
        "--events", type=int, help="events of (a); (b) 4x, (c)/(d) 100x (default 1000; --smoke: 20)"
    )
    parser.add_argument("--runs", type=int, help="runs per case; the median is shown (default 3; --smoke: 2)")
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated, from {', '.join(BACKENDS)} (default all)",
    )
    args = parser.parse_args()
    for knob, default in (SMOKE if args.smoke else FULL).items():
        if getattr(args, knob) is None:
            setattr(args, knob, default)
    chosen = [name.strip() for name in args.backends.split(",") if name.strip()]
    if args.events < 1 or args.runs < 1:
        parser.error("--events and --runs must be at least 1")
    if unknown := set(chosen) - set(BACKENDS):
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    sys.exit(anyio.run(main, chosen, args.events, args.runs, args.smoke))
