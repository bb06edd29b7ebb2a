"""What every group-committing spine adapter does around a commit: hold each caller's request and
future, answer each with its own outcome once the commit returned, and announce the new heads.

Answers and announcements do not depend on the caller still waiting: a caller that went away
(cancelled) leaves its append standing, and the head is announced in a task of the adapter's own,
so a cancelled caller cannot swallow the notification followers wait for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from domain.append import AppendRequest
from domain.errors import SpineError
from domain.events import AppendResult
from domain.partition import Partition
from domain.ports import Notifier

Outcome = AppendResult | SpineError


class Pending:
    """One append waiting in a writer's queue."""

    __slots__ = ("future", "partition", "request")

    def __init__(
        self, partition: Partition, request: AppendRequest, future: asyncio.Future[AppendResult]
    ) -> None:
        self.partition = partition
        self.request = request
        self.future = future


class Waiting(Protocol):
    @property
    def partition(self) -> Partition: ...

    @property
    def future(self) -> asyncio.Future[AppendResult]: ...


def answer(future: asyncio.Future[AppendResult], outcome: AppendResult | BaseException) -> None:
    """Hand a caller its outcome, unless it went away (the outcome stands all the same)."""
    if future.done():
        return
    if isinstance(outcome, AppendResult):
        future.set_result(outcome)
    else:
        future.set_exception(outcome)


def settle(batch: Sequence[Waiting], outcomes: Sequence[Outcome]) -> tuple[dict[Partition, int], int]:
    """Answer every caller of a committed batch; each partition's new head, and the events written."""
    heads: dict[Partition, int] = {}
    events = 0
    for pending, outcome in zip(batch, outcomes, strict=True):
        if isinstance(outcome, AppendResult):
            events += outcome.last_position - outcome.first_position + 1
            heads[pending.partition] = max(heads.get(pending.partition, 0), outcome.last_position)
        answer(pending.future, outcome)
    return heads, events


class Announcements:
    """New heads published in tasks of the adapter's own; `drain` waits for them on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, notifier: Notifier | None, heads: dict[Partition, int]) -> None:
        if notifier is None or not heads:
            return
        task = asyncio.create_task(_publish(notifier, heads))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks)


async def _publish(notifier: Notifier, heads: dict[Partition, int]) -> None:
    for partition, position in heads.items():
        await notifier.publish(partition, position)
