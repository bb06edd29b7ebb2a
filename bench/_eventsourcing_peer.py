"""The Python `eventsourcing` library (9.5) on SQLite: the peer bench_spine.py compares single appends with.

Its `Application` is the level a Spine append is comparable to: a domain event encoded as JSON,
an optimistic-concurrency check on the aggregate's version (the primary key on originator id and
version), an application-wide order (the notification id, SQLite's rowid) and one transaction per
save. Its recorder alone would skip the encoding that a Spine append pays, so it is not used.
`save` is synchronous. `saves` runs them one after the other in one thread, with no event loop at
all: the peer at its best, and the baseline of the targets. `saves_from_event_loop` makes them from
an event loop, one worker-thread call each, as an async service would have to (a Spine append
leaves the event loop for its fsync too).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate


class Agent(Aggregate):
    """One stream: each save appends one `Remembered` event to it."""

    class Remembered(Aggregate.Event):
        data: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            pass

    def remember(self, data: dict[str, Any]) -> None:
        self.trigger_event(self.Remembered, data=data)


class Peer:
    """An `Application` on a fresh SQLite file with one `Agent`, and the padded data its saves carry."""

    def __init__(self, path: Path, data: dict[str, Any], body_bytes: int) -> None:
        self.path = path
        self.app: Application[Any] = Application(
            env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        )
        self.agent = Agent()
        self.app.save(self.agent)
        probe = Agent.Remembered(
            originator_id=self.agent.id,
            originator_version=2,
            timestamp=Agent.Event.create_timestamp(),
            data=data,
        )
        # `data` padded so that the stored state is about `body_bytes` long, the size of a Spine body
        short = body_bytes - len(self.app.mapper.to_stored_event(probe).state)
        self.data = {**data, "padding": "x" * max(0, short - len(',"padding":""'))}

    def save_one(self) -> None:
        self.agent.remember(self.data)
        self.app.save(self.agent)

    def close(self) -> tuple[float, str]:
        """(mean stored body bytes, the file's journal mode and synchronous setting)."""
        self.app.close()
        connection = sqlite3.connect(self.path)
        try:
            (mean_body,) = connection.execute(
                "SELECT avg(length(state)) FROM stored_events WHERE originator_version > 1"
            ).fetchone()
            # a fresh connection sees the same defaults eventsourcing's own connections got
            (synchronous,) = connection.execute("PRAGMA synchronous").fetchone()
            (journal,) = connection.execute("PRAGMA journal_mode").fetchone()
        finally:
            connection.close()
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return float(mean_body), f"{journal.upper()}, synchronous={names.get(synchronous, synchronous)}"


def saves(path: Path, count: int, data: dict[str, Any], body_bytes: int) -> tuple[float, float, str]:
    """`count` saves of one new event each, one after the other in this thread: the peer at its best.
    (seconds, mean stored body bytes, pragmas)."""
    peer = Peer(path, data, body_bytes)
    try:
        started = time.perf_counter()
        for _ in range(count):
            peer.save_one()
        elapsed = time.perf_counter() - started
    finally:
        mean_body, pragmas = peer.close()
    return elapsed, mean_body, pragmas


async def saves_from_event_loop(
    path: Path, count: int, data: dict[str, Any], body_bytes: int
) -> tuple[float, float, str]:
    """The same saves made by a caller on an event loop, as a Spine append is: each save in a worker
    thread (`anyio.to_thread`), so that its fsync does not block the loop."""
    peer = await anyio.to_thread.run_sync(Peer, path, data, body_bytes)
    try:
        started = time.perf_counter()
        for _ in range(count):
            await anyio.to_thread.run_sync(peer.save_one)
        elapsed = time.perf_counter() - started
    finally:
        mean_body, pragmas = await anyio.to_thread.run_sync(peer.close)
    return elapsed, mean_body, pragmas
