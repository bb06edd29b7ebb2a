"""Lab key material made by several processes starting at once on one data directory, as the
workers of `spine serve --workers N` do: all of them must read the same, complete key."""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

from app.lab_secrets import lab_secret

PROCESSES = 6
_spawn = multiprocessing.get_context("spawn")


def _read_key(data_dir: str, go: EventType, answers: Connection) -> None:
    go.wait()  # every process is up: they race for the file
    answers.send(lab_secret(Path(data_dir), "token.key"))


def test_processes_starting_at_once_share_one_complete_key(tmp_path: Path) -> None:
    go = _spawn.Event()
    pipes = [_spawn.Pipe(duplex=False) for _ in range(PROCESSES)]
    processes = [_spawn.Process(target=_read_key, args=(str(tmp_path), go, sending)) for _, sending in pipes]
    for process in processes:
        process.start()
    go.set()
    keys = {receiving.recv() for receiving, _ in pipes}
    for process in processes:
        process.join(30)
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    assert len(keys) == 1
    (key,) = keys
    assert len(key) == 64
    assert lab_secret(tmp_path, "token.key") == key
    assert [p.name for p in (tmp_path / "secrets").iterdir()] == ["token.key"]  # no candidate left
