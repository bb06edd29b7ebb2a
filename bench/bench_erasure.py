"""What opening personal fields costs a read: the same events read as stored and through
`PersonalSpine` (AES-GCM decryption of each sealed field), one run.

    .venv/bin/python bench/bench_erasure.py [--events 20000] [--users 100] [--rounds 3] [--smoke]

A fresh SQLite spine and SQLite key store in a temporary directory. `--events` memory writes
(`memory.set`, a small JSON value each: the personal field) of `--users` users are appended
through `PersonalSpine`, so each value is sealed under its user's key. Then, each round, the whole
partition is read in pages of 1000 four ways:
- `read` as stored (the sealed fields stay sealed): the plain read, the baseline;
- `read` through `PersonalSpine`: every sealed field opened;
- `read_encoded` as stored, and through `PersonalSpine` (SSE and `GET /v1/events` read this way:
  only events of declared types are decoded, opened and encoded again).
The key cache is warmed by one read before the rounds (a process's steady state); the cold read,
which fetches each user's key from the store once, is timed on its own. Figures: events per second
and µs per event, best of the rounds, and the overhead beside the plain read. Printed, never
asserted; the script exits non-zero only when an opened value is not the one written.
`--smoke`: a few thousand events, to show the bench still works.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from _env import header, load

from adapters.local_notifier import LocalNotifier
from adapters.sqlite.spine import SQLiteSpine
from adapters.sqlite.views import SQLiteViewStore
from app.key_ring import KeyRing
from app.personal_spine import PersonalSpine
from domain.append import AppendRequest
from domain.events import EventMeta
from domain.memory import set_event
from domain.partition import Partition
from domain.ports import EventSpine, ViewStore

DEFAULTS = {"events": 20_000, "users": 100, "rounds": 3}
SMOKE = {"events": 2_000, "users": 10, "rounds": 2}
PARTITION = Partition(tenant_id="t1", env="dev", project_id="p1")
PAGE = 1000
BATCH = 100  # events per append: one user's writes at a time, as a busy agent makes them


def value_of(n: int) -> dict[str, object]:
    return {"email": f"user{n}@example.org", "note": "prefers the morning", "n": n}


async def fill(spine: PersonalSpine, events: int, users: int) -> None:
    now = datetime.now(UTC)
    for first in range(0, events, BATCH):
        user = f"u{(first // BATCH) % users}"
        batch = [
            set_event(user, f"k{n}", value_of(n), None, now) for n in range(first, min(first + BATCH, events))
        ]
        meta = EventMeta(tenant_id="t1", env="dev", project_id="p1", user_id=user)
        await spine.append(
            PARTITION, AppendRequest(stream=f"memory:{user}:k{first}", events=batch, meta=meta)
        )


async def read_all(spine: EventSpine, encoded: bool) -> int:
    count, cursor = 0, 0
    while True:
        if encoded:
            page = await spine.read_encoded(PARTITION, after=cursor, limit=PAGE)
            count += len(page.events)
            next_, head = page.next, page.head
        else:
            plain = await spine.read(PARTITION, after=cursor, limit=PAGE)
            count += len(plain.events)
            next_, head = plain.next, plain.head
        if next_ >= head:
            return count
        cursor = next_


async def timed(read: Callable[[], Awaitable[int]]) -> float:
    started = time.perf_counter()
    await read()
    return time.perf_counter() - started


async def check(spine: PersonalSpine, events: int) -> None:
    page = await spine.read(PARTITION, after=0, limit=PAGE)
    for event in page.events:
        n = int(event.data["key"][1:])
        if event.data["value"] != value_of(n):
            raise SystemExit(f"event {event.position}: opened {event.data['value']!r}, wrote {value_of(n)!r}")
    if await spine.head(PARTITION) != events:
        raise SystemExit("not every event was appended")


async def bench(args: argparse.Namespace, directory: Path) -> None:
    async with (
        SQLiteSpine(directory / "spine.db", notifier=LocalNotifier()) as stored,
        SQLiteViewStore(directory / "views.db") as key_store,
    ):

        async def store_of(_: str) -> ViewStore:
            return key_store

        def ring() -> KeyRing:
            return KeyRing(store_of, lambda _tenant, _user: 0)

        started = time.perf_counter()
        await fill(PersonalSpine(stored, ring()), args.events, args.users)
        filled = time.perf_counter() - started
        cold = await timed(lambda: read_all(PersonalSpine(stored, ring()), encoded=False))  # a fresh cache
        personal = PersonalSpine(stored, ring())
        await check(personal, args.events)
        await read_all(personal, encoded=False)  # warm: every key cached, as in a running process
        cases: dict[str, Callable[[], Awaitable[int]]] = {
            "read, as stored (plain)": lambda: read_all(stored, encoded=False),
            "read, opened": lambda: read_all(personal, encoded=False),
            "read_encoded, as stored": lambda: read_all(stored, encoded=True),
            "read_encoded, opened": lambda: read_all(personal, encoded=True),
        }
        best = dict.fromkeys(cases, float("inf"))
        for _ in range(args.rounds):
            for name, read in cases.items():
                best[name] = min(best[name], await timed(read))
    n = args.events
    print(f"\n{n} memory.set events of {args.users} users, pages of {PAGE}; best of {args.rounds} round(s)")
    print(f"  appended through PersonalSpine (sealing) in {filled:.2f} s: {n / filled:,.0f} events/s")
    print(f"  {'case':<28}{'events/s':>12}{'µs/event':>10}{'overhead':>10}")
    for name, seconds in best.items():
        baseline = best["read_encoded, as stored" if "encoded" in name else "read, as stored (plain)"]
        overhead = f"{(seconds / baseline - 1) * 100:+.0f}%" if seconds is not baseline else ""
        print(f"  {name:<28}{n / seconds:>12,.0f}{seconds / n * 1e6:>10.1f}{overhead:>10}")
    print(f"  {'read, opened, cold cache':<28}{n / cold:>12,.0f}{cold / n * 1e6:>10.1f}"
          f"{(cold / best['read, as stored (plain)'] - 1) * 100:>+9.0f}%")  # fmt: skip


def main(args: argparse.Namespace) -> None:
    print(header("bench_erasure: reads of sealed personal fields, opened and as stored, same spine and run"))
    with tempfile.TemporaryDirectory(prefix="spine-bench-erasure-") as directory:
        asyncio.run(bench(args, Path(directory)))
    print(f"  after the run: {load()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, help="memory writes (default 20000; smoke 2000)")
    parser.add_argument("--users", type=int, help="users they are spread over (default 100; smoke 10)")
    parser.add_argument("--rounds", type=int, help="rounds, each case once (default 3; smoke 2)")
    parser.add_argument(
        "--smoke", action="store_true", help="a few thousand events (an explicit flag still wins)"
    )
    arguments = parser.parse_args()
    for name, value in (SMOKE if arguments.smoke else DEFAULTS).items():
        if getattr(arguments, name) is None:
            setattr(arguments, name, value)
    main(arguments)
