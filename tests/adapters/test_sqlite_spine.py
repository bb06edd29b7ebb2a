"""SQLite-specific behaviour: durability on reopen, group commit, several writers on one file."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import anyio
import pytest

from adapters.redis.notifier import RedisNotifier
from adapters.sqlite import commit
from adapters.sqlite.spine import SQLiteSpine
from domain.errors import BackendUnavailable
from domain.events import AppendResult
from tests.contract.test_event_spine import P, all_events, req


async def test_events_survive_closing_and_reopening_the_file(sqlite_path: Path) -> None:
    async with SQLiteSpine(sqlite_path) as spine:
        await spine.append(P, req("a", "x", "y", ids=["k-1", "k-2"]))
    async with SQLiteSpine(sqlite_path) as spine:
        assert [e.id for e in await all_events(spine)] == ["k-1", "k-2"]
        retried = await spine.append(P, req("a", "x", "y", ids=["k-1", "k-2"]))
        assert retried.last_position == 2
        assert (await spine.append(P, req("a", "z"))).first_position == 3


async def test_the_file_is_in_wal_mode(sqlite_path: Path) -> None:
    async with SQLiteSpine(sqlite_path):
        mode = sqlite3.connect(sqlite_path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


async def test_concurrent_appends_are_coalesced_into_group_commits(sqlite_path: Path) -> None:
    commits: list[tuple[int, int]] = []
    async with (
        SQLiteSpine(sqlite_path, on_commit=lambda n, events, _: commits.append((n, events))) as spine,
        anyio.create_task_group() as tg,
    ):
        for i in range(64):
            tg.start_soon(spine.append, P, req(f"s-{i}", "x"))
    assert sum(events for _, events in commits) == 64
    assert len(commits) < 64
    assert max(n for n, _ in commits) > 1


async def test_a_conflict_fails_only_its_own_request_in_a_group(sqlite_path: Path) -> None:
    outcomes: dict[str, str] = {}

    async def attempt(name: str, expected: int | str) -> None:
        try:
            await spine.append(P, req(name, "x", expected=expected))  # type: ignore[arg-type]
            outcomes[name] = "ok"
        except Exception as exc:
            outcomes[name] = type(exc).__name__

    async with SQLiteSpine(sqlite_path) as spine:
        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt, "good-1", "no_stream")
            tg.start_soon(attempt, "bad", 5)
            tg.start_soon(attempt, "good-2", "any")
        assert outcomes == {"good-1": "ok", "bad": "VersionConflict", "good-2": "ok"}
        assert [e.stream for e in await all_events(spine)] == ["good-1", "good-2"]


async def test_two_spines_on_one_file_keep_positions_gapless(sqlite_path: Path) -> None:
    async with SQLiteSpine(sqlite_path) as first, SQLiteSpine(sqlite_path) as second:

        async def write(spine: SQLiteSpine, tag: str) -> None:
            for i in range(200):
                await spine.append(P, req(f"{tag}-{i % 3}", "x"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(write, first, "a")
            tg.start_soon(write, second, "b")
        events = await all_events(first)
    assert [e.position for e in events] == list(range(1, 401))
    for stream in {e.stream for e in events}:
        versions = [e.version for e in events if e.stream == stream]
        assert versions == list(range(1, len(versions) + 1))


@pytest.mark.redis
async def test_a_follower_on_another_process_is_woken_through_redis(
    sqlite_path: Path, redis_url: str
) -> None:
    prefix = f"spine-test:{uuid.uuid4().hex}:"
    async with (
        RedisNotifier(redis_url, channel_prefix=prefix) as writer_notifier,
        RedisNotifier(redis_url, channel_prefix=prefix) as reader_notifier,
        SQLiteSpine(sqlite_path, notifier=writer_notifier) as writer,
        SQLiteSpine(sqlite_path, notifier=reader_notifier) as reader,
        reader_notifier.subscribe(P) as subscription,
    ):
        with anyio.fail_after(10):
            await reader_notifier.listening.wait()
        result = await writer.append(P, req("a", "x"))
        # only a notification can make wait() answer True; a poll would not
        assert await subscription.wait(0, timeout=10)
        page = await reader.read(P)
        assert [e.position for e in page.events] == [result.last_position]


async def test_an_unusable_file_is_a_backend_unavailable_error(tmp_path: Path) -> None:
    (tmp_path / "spine.db").mkdir()
    with pytest.raises(BackendUnavailable) as caught:
        async with SQLiteSpine(tmp_path / "spine.db"):
            pass
    assert caught.value.error_code == "event_spine.backend_unavailable"


async def test_a_write_lock_held_elsewhere_fails_appends_with_backend_unavailable(sqlite_path: Path) -> None:
    async with SQLiteSpine(sqlite_path, busy_timeout_ms=50) as spine:
        blocker = sqlite3.connect(sqlite_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(BackendUnavailable):
                await spine.append(P, req("a", "x"))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert (await spine.append(P, req("a", "x"))).first_position == 1


async def test_appends_after_another_connection_wrote_continue_from_what_it_wrote(sqlite_path: Path) -> None:
    """The writer keeps heads and stream versions from its own commits; a commit made through
    another connection must be seen, whether the next group fits one statement or not."""
    async with SQLiteSpine(sqlite_path) as spine:
        await spine.append(P, req("a", "x"))
        await spine.append(P, req("b", "x"))  # heads and versions now come from the writer's cache
        async with SQLiteSpine(sqlite_path) as other:
            await other.append(P, req("a", "y", ids=["elsewhere"]))
        # `a` is at version 2 now: expecting it must not be refused on the cached version 1
        small = await spine.append(P, req("a", "z", expected=2))
        assert (small.first_position, small.stream_version) == (4, 3)
        async with SQLiteSpine(sqlite_path) as other:
            await other.append(P, req("b", "y"))
        large = await spine.append(P, req("b", *["x.y"] * 300, expected=2))
        assert (large.first_position, large.last_position, large.stream_version) == (6, 305, 302)
        retried = await spine.append(P, req("a", "y", ids=["elsewhere"]))
        assert (retried.first_position, retried.stream_version) == (3, 2)
        again = await spine.append(P, req("b", *["x.y"] * 300, expected=302))
        assert (again.first_position, again.last_position, again.stream_version) == (306, 605, 602)
        events = await all_events(spine)
    assert [e.position for e in events] == list(range(1, 606))
    assert [e.version for e in events if e.stream == "a"] == [1, 2, 3]


async def test_a_group_of_many_requests_and_ids_keeps_each_outcome(sqlite_path: Path) -> None:
    """One group larger than one insert statement, with client ids repeated inside the group and
    across groups, and a refused request in the middle."""
    async with SQLiteSpine(sqlite_path) as spine:
        await spine.append(P, req("warm", "x"))
        outcomes: dict[int, AppendResult | str] = {}

        async def attempt(index: int) -> None:
            request = (
                req("s-refused", "x", expected=7)
                if index == 150
                else req(f"s-{index % 40}", "x", "y", ids=[f"k-{index % 200}-a", f"k-{index % 200}-b"])
            )
            try:
                outcomes[index] = await spine.append(P, request)
            except Exception as exc:
                outcomes[index] = type(exc).__name__

        async with anyio.create_task_group() as tg:
            for index in range(300):
                tg.start_soon(attempt, index)
        events = await all_events(spine)
    assert outcomes[150] == "VersionConflict"
    assert len(events) == 1 + 2 * 199  # 200 distinct id pairs, one of them refused
    assert [e.position for e in events] == list(range(1, len(events) + 1))
    by_id = {e.id: e.position for e in events}
    for index, outcome in outcomes.items():
        if index == 150:
            continue
        # a repeat (same ids, same stream) is answered where the first append of its ids landed
        assert isinstance(outcome, AppendResult), outcome
        assert outcome.first_position == by_id[f"k-{index % 200}-a"]


async def test_streams_the_writer_stopped_remembering_are_read_again(
    sqlite_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commit, "_MAX_CACHED_STREAMS", 4)
    async with SQLiteSpine(sqlite_path) as spine:
        for round_ in range(1, 4):
            for i in range(10):
                result = await spine.append(P, req(f"s-{i}", "x", expected=round_ - 1 or "no_stream"))
                assert result.stream_version == round_
        assert await spine.head(P) == 30


async def test_a_bug_in_a_commit_answers_its_callers_and_the_writer_goes_on(
    sqlite_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a store error but ours: its callers get 503 instead of waiting for ever, nothing is written."""
    real_decide = commit.GroupCommitter._decide
    broken = [True]

    def decide_once_broken(self: commit.GroupCommitter, *args: object, **kwargs: object) -> object:
        if broken[0]:
            broken[0] = False
            raise TypeError("a bug")
        return real_decide(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(commit.GroupCommitter, "_decide", decide_once_broken)
    async with SQLiteSpine(sqlite_path) as spine:
        with pytest.raises(BackendUnavailable, match="could not be committed"):
            await spine.append(P, req("a", "x"))
        assert (await spine.append(P, req("a", "y"))).first_position == 1
        assert [e.type for e in await all_events(spine)] == ["y"]
