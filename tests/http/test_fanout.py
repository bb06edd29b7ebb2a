"""The SSE fan-out in process: `follow` generators on a real SQLite spine, one shared reader.

A test that must know exactly when the shared reader reads builds the spine without a notifier
and announces commits itself (`notifier.announce`), with a poll far beyond the test's length: the
reader then reads only when told to, and each handoff case (a follower behind the reader, or
ahead of it) is set up on purpose instead of by luck.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters.local_notifier import LocalNotifier, LocalSubscription
from adapters.sqlite.spine import SQLiteSpine
from app.http.fanout import Fanout
from app.http.follow import follow
from app.http.metrics import Metrics
from domain.append import AppendRequest
from domain.errors import BackendUnavailable
from domain.events import EncodedPage, EventMeta, NewEvent
from domain.partition import Partition
from domain.ports import EventSpine

PARTITION = Partition(tenant_id="t1", env="dev", project_id="p1")
META = EventMeta(tenant_id="t1", env="dev", project_id="p1")
FRAME = re.compile(rb"^id: (\d+)\n(?:event: ([\w.:-]+)\n)?data: (.*)$", re.MULTILINE)
FOREVER = 3600.0  # a poll or heartbeat that never comes within a test


class CountingNotifier(LocalNotifier):
    """The in-process notifier, counting the subscriptions open (the shared readers' own)."""

    def __init__(self) -> None:
        super().__init__()
        self.open = 0

    @asynccontextmanager
    async def subscribe(self, partition: Partition) -> AsyncIterator[LocalSubscription]:
        self.open += 1
        try:
            async with super().subscribe(partition) as subscription:
                yield subscription
        finally:
            self.open -= 1


class CountingSpine:
    """A real spine, its `read_encoded` calls counted, and failing on demand."""

    def __init__(self, inner: EventSpine) -> None:
        self.inner = inner
        self.reads = 0
        self.failing = False

    async def read_encoded(self, partition: Partition, **options: Any) -> EncodedPage:
        self.reads += 1
        if self.failing:
            raise BackendUnavailable("event_spine", "down for the test")
        return await self.inner.read_encoded(partition, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Follower:
    """Consumes one `follow` stream in a task: the positions (and types) it was sent, in order."""

    def __init__(self, frames: AsyncIterator[bytes]) -> None:
        self.frames = frames
        self.positions: list[int] = []
        self.types: list[str] = []
        self.heartbeats = 0
        self.ended = False
        self._progress = anyio.Event()

    async def run(self) -> None:
        async with aclosing(self.frames) as frames:  # type: ignore[type-var]
            async for chunk in frames:
                for position, type_, _ in FRAME.findall(chunk):
                    self.positions.append(int(position))
                    self.types.append(type_.decode())
                self.heartbeats += chunk.count(b": heartbeat")
                self._signal()
        self.ended = True
        self._signal()

    async def until(self, position: int) -> None:
        """Until it was sent `position` (or a later one), or its stream ended."""
        while not self.ended and (not self.positions or self.positions[-1] < position):
            await self._progress.wait()

    async def until_ended(self) -> None:
        while not self.ended:
            await self._progress.wait()

    def _signal(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()


class Harness:
    def __init__(
        self, spine: CountingSpine, notifier: LocalNotifier, fanout: Fanout, metrics: Metrics
    ) -> None:
        self.spine = spine
        self.notifier = notifier
        self.fanout = fanout
        self.metrics = metrics
        self.draining = anyio.Event()

    def follow(
        self, after: int = 0, *, stream: str | None = None, types: Collection[str] = (), named: bool = True
    ) -> AsyncIterator[bytes]:
        return follow(
            self.spine,  # type: ignore[arg-type]
            self.fanout,
            self.metrics,
            PARTITION,
            after=after,
            stream=stream,
            types=types,
            retry_ms=1000,
            heartbeat_seconds=FOREVER,
            draining=self.draining,
            named=named,
        )

    async def append(self, count: int, *, stream: str = "s", type_: str = "t", announce: bool = False) -> int:
        events = [NewEvent(type=type_, data={"n": n}) for n in range(count)]
        result = await self.spine.inner.append(
            PARTITION, AppendRequest(stream=stream, events=events, meta=META)
        )
        if announce:
            self.announce(result.last_position)
        return result.last_position

    def announce(self, position: int) -> None:
        self.notifier.announce(PARTITION.key, position)

    def metric(self, name: str) -> float:
        for line in self.metrics.render().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no metric {name}")


Setup = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    @asynccontextmanager
    async def running(*, notify: bool = True, buffer_events: int = 10_000) -> AsyncIterator[Harness]:
        """notify: the spine announces its commits; else only the test does (`announce=True`)."""
        notifier = CountingNotifier()
        metrics = Metrics()
        async with SQLiteSpine(tmp_path / "spine.db", notifier=notifier if notify else None) as inner:
            fanout = Fanout(
                notifier,
                metrics,
                poll_seconds=FOREVER,
                heartbeat_seconds=FOREVER,
                buffer_events=buffer_events,
            )
            harness = Harness(CountingSpine(inner), notifier, fanout, metrics)
            async with anyio.create_task_group() as tasks:
                await tasks.start(fanout.run, harness.draining)
                yield harness
                harness.draining.set()

    return running


async def start(tasks: anyio.abc.TaskGroup, frames: AsyncIterator[bytes]) -> Follower:
    follower = Follower(frames)
    tasks.start_soon(follower.run)
    return follower


async def test_many_followers_each_get_every_event_once_in_order_while_appends_run(setup: Setup) -> None:
    async with setup() as h, anyio.create_task_group() as tasks:
        with anyio.fail_after(30):
            plain = [await start(tasks, h.follow()) for _ in range(40)]
            unnamed = [await start(tasks, h.follow(named=False)) for _ in range(5)]
            of_a = [await start(tasks, h.follow(stream="a")) for _ in range(5)]
            of_type = [await start(tasks, h.follow(types=["odd"])) for _ in range(5)]

            async def appender(name: str) -> None:
                for n in range(25):  # single events and small batches, committed together or not
                    await h.append(1 + n % 3, stream=name, type_="odd" if n % 2 else "even")

            async with anyio.create_task_group() as appenders:
                for name in ("a", "b", "c"):
                    appenders.start_soon(appender, name)
            log = stored_log(h)
            head = len(log)
            of_a_expected = [p for p, stream, _ in log if stream == "a"]
            of_type_expected = [p for p, _, type_ in log if type_ == "odd"]
            for follower in plain + unnamed:
                await follower.until(head)
            for follower in of_a:
                await follower.until(of_a_expected[-1])
            for follower in of_type:
                await follower.until(of_type_expected[-1])
            tasks.cancel_scope.cancel()

    everything = list(range(1, head + 1))
    assert all(f.positions == everything for f in plain + unnamed)
    assert all(set(f.types) == {"odd", "even"} for f in plain)
    assert all(f.types == [""] * head for f in unnamed)  # no `event:` line
    assert all(f.positions == of_a_expected for f in of_a)
    assert all(f.positions == of_type_expected for f in of_type)


def stored_log(h: Harness) -> list[tuple[int, str, str]]:
    """(position, stream, type) of every event, read straight from the SQLite file."""
    path = h.spine.inner.path  # type: ignore[attr-defined]
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT position, stream, type FROM events ORDER BY position").fetchall()
    return [(int(p), str(s), str(t)) for p, s, t in rows]


async def test_a_commit_costs_one_read_however_many_follow(setup: Setup) -> None:
    async with setup(notify=False) as h, anyio.create_task_group() as tasks:
        with anyio.fail_after(30):
            followers = [await start(tasks, h.follow()) for _ in range(50)]
            await h.append(1, announce=True)
            for follower in followers:
                await follower.until(1)
            reads = h.spine.reads
            for n in range(2, 12):
                await h.append(1, announce=True)
                for follower in followers:
                    await follower.until(n)
            tasks.cancel_scope.cancel()
    assert h.spine.reads - reads == 10  # one per commit, not one per follower and commit
    assert all(f.positions == list(range(1, 12)) for f in followers)


async def test_a_follower_behind_the_shared_reader_reads_the_gap_itself_then_skips_what_it_sent(
    setup: Setup,
) -> None:
    async with setup(notify=False) as h, anyio.create_task_group() as tasks:
        with anyio.fail_after(30):
            live = await start(tasks, h.follow())
            await live.until(await h.append(10, announce=True))
            # A follower from an old cursor sends its catch-up (4..10), and stops there a while:
            late = h.follow(after=3)
            assert b"retry" in await anext(late)
            caught_up = await anext(late)
            assert [int(p) for p, _, _ in FRAME.findall(caught_up)] == list(range(4, 11))
            # Meanwhile the shared reader moves on to 20, and the log to 30 (not announced yet).
            await live.until(await h.append(10, announce=True))
            await h.append(10)
            # The late follower joins with its cursor (10) behind the reader (20): it reads
            # (10, 30] itself; then the reader's page of 21..30 comes, all sent already: skipped.
            late_follower = await start(tasks, late)
            await late_follower.until(30)
            h.announce(30)
            await live.until(30)
            await live.until(await h.append(5, announce=True))
            await late_follower.until(35)
            tasks.cancel_scope.cancel()
    assert live.positions == list(range(1, 36))
    assert late_follower.positions == list(range(11, 36))


async def test_a_follower_ahead_of_the_shared_reader_skips_what_it_already_sent(setup: Setup) -> None:
    async with setup(notify=False) as h, anyio.create_task_group() as tasks:
        with anyio.fail_after(30):
            live = await start(tasks, h.follow())
            await live.until(await h.append(20, announce=True))
            await h.append(10)  # 21..30, which the reader has not been told of
            # It catches up to 30 by itself and joins the reader, which is still at 20.
            ahead = await start(tasks, h.follow())
            await ahead.until(30)
            await live.until(await h.append(5, announce=True))  # the reader reads 21..35 at once
            await ahead.until(35)
            tasks.cancel_scope.cancel()
    assert live.positions == list(range(1, 36))
    assert ahead.positions == list(range(1, 36))


async def test_followers_joining_mid_stream_from_old_cursors_miss_and_repeat_nothing(setup: Setup) -> None:
    """The same handoff, by luck this time: followers join from every cursor while appends run."""
    async with setup() as h, anyio.create_task_group() as tasks:
        with anyio.fail_after(60):
            first = await start(tasks, h.follow())
            joined: list[tuple[int, Follower]] = []
            for round_ in range(20):
                head = await h.append(1 + round_ % 4)
                for after in (0, head // 2, max(head - 1, 0), head):
                    joined.append((after, await start(tasks, h.follow(after=after))))
            head = await h.append(3)
            for _, follower in [(0, first), *joined]:
                await follower.until(head)
            tasks.cancel_scope.cancel()
    assert first.positions == list(range(1, head + 1))
    for after, follower in joined:
        assert follower.positions == list(range(after + 1, head + 1)), after


async def test_a_stalled_follower_is_cut_without_slowing_the_others_and_resumes_without_loss(
    setup: Setup,
) -> None:
    async with setup(buffer_events=5) as h, anyio.create_task_group() as tasks:
        with anyio.fail_after(30):
            stalled = h.follow()
            assert b"retry" in await anext(stalled)
            first: list[bytes] = []

            async def take_one() -> None:
                first.append(await anext(stalled))

            async with anyio.create_task_group() as one:
                one.start_soon(take_one)
                await eventually(lambda: h.metric("spine_sse_readers") == 1)  # it joined the reader
                others = [await start(tasks, h.follow()) for _ in range(3)]
                await h.append(1)
            # From now on it takes nothing, as a client that stopped reading: the reader does not
            # wait for it, and once it holds more than 5 events, lets it go.
            for _ in range(8):
                await h.append(1)
            for other in others:
                await other.until(9)
            assert h.metric("spine_sse_followers_cut_total") == 1
            # When it is read again, its stream ends: nothing it had not sent before the cut.
            assert [chunk async for chunk in stalled] == []
            sent = [int(p) for p, _, _ in FRAME.findall(first[0])]
            assert sent == [1]
            # The client resumes with its Last-Event-ID, while appends go on.
            resumed = await start(tasks, h.follow(after=sent[-1]))
            await resumed.until(9)
            await h.append(2)
            await resumed.until(11)
            for other in others:
                await other.until(11)
            tasks.cancel_scope.cancel()
    assert sent + resumed.positions == list(range(1, 12))
    assert all(other.positions == list(range(1, 12)) for other in others)


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll a condition that no event announces (the caller holds the deadline)."""
    while not condition():  # noqa: ASYNC110
        await anyio.sleep(0.005)


async def test_the_reader_stops_when_the_last_follower_leaves(setup: Setup) -> None:
    async with setup() as h:
        notifier = h.notifier
        assert isinstance(notifier, CountingNotifier)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                followers = [await start(tasks, h.follow()) for _ in range(3)]
                await h.append(1)
                for follower in followers:
                    await follower.until(1)
                assert (notifier.open, h.metric("spine_sse_readers")) == (1, 1)
                tasks.cancel_scope.cancel()  # every follower leaves
            assert h.metric("spine_sse_readers") == 0  # at once
            await eventually(lambda: notifier.open == 0)  # its task ends (a read in flight first)
            # The next follower starts a reader of its own, from its cursor.
            async with anyio.create_task_group() as tasks:
                again = await start(tasks, h.follow(after=1))
                await again.until(await h.append(2))
                assert h.metric("spine_sse_readers") == 1
                await eventually(lambda: notifier.open == 1)  # its task has started
                tasks.cancel_scope.cancel()
            assert h.metric("spine_sse_readers") == 0
            await eventually(lambda: notifier.open == 0)
    assert again.positions == [2, 3]


async def test_a_failing_read_ends_the_followers_who_resume_once_it_answers(setup: Setup) -> None:
    async with setup() as h, anyio.create_task_group() as tasks:
        with anyio.fail_after(30):
            followers = [await start(tasks, h.follow()) for _ in range(3)]
            await h.append(2)
            for follower in followers:
                await follower.until(2)
            h.spine.failing = True
            await h.append(1)  # the reader's read fails: every follower's stream ends
            for follower in followers:
                await follower.until_ended()
            h.spine.failing = False
            resumed = await start(tasks, h.follow(after=followers[0].positions[-1]))
            await resumed.until(await h.append(1))
            tasks.cancel_scope.cancel()
    assert all(follower.positions == [1, 2] for follower in followers)
    assert resumed.positions == [3, 4]


async def test_draining_ends_every_follower_and_any_that_joins_after(setup: Setup) -> None:
    async with setup() as h, anyio.create_task_group() as tasks:
        with anyio.fail_after(30):
            followers = [await start(tasks, h.follow()) for _ in range(3)]
            await h.append(1)
            for follower in followers:
                await follower.until(1)
            h.draining.set()
            for follower in followers:
                await follower.until_ended()
            late = await start(tasks, h.follow())
            await late.until_ended()
    assert [f.positions for f in followers] == [[1]] * 3
    assert late.positions == []
