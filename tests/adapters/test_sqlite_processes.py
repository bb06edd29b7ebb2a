"""Two processes appending to one SQLite file at once, as `spine serve --workers 2` does.

Each process's writer keeps the heads and stream versions of its own commits; what the other
process commits in between must be seen before the next group is written (`PRAGMA data_version`),
or positions and versions would collide.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from pathlib import Path

import anyio

from adapters.sqlite.spine import SQLiteSpine
from tests.contract.test_event_spine import P, all_events, req

TURNS = 50  # appends each, taking turns: every append follows a commit of the other process
APPENDS = 250  # appends each, then, both at once, a few in flight in each process
STREAMS = 3  # both processes write the same streams: every stream's version races too

_spawn = multiprocessing.get_context("spawn")
Acknowledged = dict[str, tuple[int, int]]  # event id → (position, stream version)


async def _append(spine: SQLiteSpine, event_id: str, acknowledged: Acknowledged, i: int) -> None:
    result = await spine.append(P, req(f"s-{i % STREAMS}", "x", ids=[event_id]))
    acknowledged[event_id] = (result.last_position, result.stream_version)


async def _race(spine: SQLiteSpine, tag: str, acknowledged: Acknowledged) -> None:
    async def lane(first: int) -> None:
        for i in range(first, APPENDS, 4):
            await _append(spine, f"{tag}-race-{i}", acknowledged, i)

    async with anyio.create_task_group() as tg:
        for first in range(4):
            tg.start_soon(lane, first)


def _other_process(path: str, turns: Connection) -> None:
    async def run() -> Acknowledged:
        acknowledged: Acknowledged = {}
        async with SQLiteSpine(Path(path)) as spine:
            turns.send("ready")
            for i in range(TURNS):
                await anyio.to_thread.run_sync(turns.recv)  # the parent's append is committed
                await _append(spine, f"child-turn-{i}", acknowledged, i)
                turns.send("done")
            await _race(spine, "child", acknowledged)
        return acknowledged

    turns.send(anyio.run(run))


async def test_two_processes_appending_to_one_file_keep_positions_and_versions_gapless(
    sqlite_path: Path,
) -> None:
    ours: Acknowledged = {}
    turns, theirs_end = _spawn.Pipe()
    child = _spawn.Process(target=_other_process, args=(str(sqlite_path), theirs_end))
    async with SQLiteSpine(sqlite_path) as spine:
        await spine.append(P, req("warm", "x"))  # this writer has heads cached before the other starts
        child.start()
        theirs_end.close()  # the child's end: if it dies, our next receive fails instead of waiting
        try:
            assert await anyio.to_thread.run_sync(turns.recv) == "ready"
            for i in range(TURNS):
                await _append(spine, f"parent-turn-{i}", ours, i)
                turns.send("go")
                assert await anyio.to_thread.run_sync(turns.recv) == "done"
            await _race(spine, "parent", ours)
            theirs: Acknowledged = await anyio.to_thread.run_sync(turns.recv)
        finally:
            turns.close()  # a child still waiting for its turn stops
            await anyio.to_thread.run_sync(child.join, 30)
            if child.is_alive():
                child.kill()
        events = await all_events(spine)
    assert child.exitcode == 0
    assert [e.position for e in events] == list(range(1, 2 * (TURNS + APPENDS) + 2))
    for stream in {e.stream for e in events}:
        versions = [e.version for e in events if e.stream == stream]
        assert versions == list(range(1, len(versions) + 1))
    stored = {e.id: (e.position, e.version) for e in events}
    assert len(stored) == len(events)  # no id twice
    assert ours | theirs == {k: v for k, v in stored.items() if k != events[0].id}
    # the turns interleave: parent, child, parent, … each after the other's commit
    turn_ids = [e.id for e in events if "-turn-" in e.id]
    assert turn_ids == [f"{who}-turn-{i}" for i in range(TURNS) for who in ("parent", "child")]
