"""Progress bars of the long commands (`replay`, `export`, `import`), on stderr: stdout stays the
command's output. Shown when stderr is a terminal, unless `--progress/--no-progress` says."""

from __future__ import annotations

import sys
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

PROGRESS_HELP = "Progress bar on stderr [default: when a terminal]."
Update = Callable[[int], None]  # called with the count done so far


def shown(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def bars(show: bool) -> Progress:
    """Bars whose tasks each show a label, a count, a share, a rate and the time left."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=Console(stderr=True), disable=not show)


def task(progress: Progress, label: str, total: int, unit: str = "ev") -> Update:
    """A new bar of `total` `unit`s on `progress`, and its update."""
    added = progress.add_task(label, total=total, rate=f"- {unit}/s")

    def update(done: int) -> None:
        progress.update(added, completed=done)
        speed = next(t.speed for t in progress.tasks if t.id == added) or 0
        progress.update(added, rate=f"{speed:,.0f} {unit}/s")

    return update
