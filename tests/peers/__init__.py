"""Servers the tests start for themselves: the cloud backends' peers, and `spine serve`."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> Callable[[], bool]:
    def accepts() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    return accepts


def await_ready(process: subprocess.Popen[bytes], ready: Callable[[], bool], seconds: float) -> str | None:
    """None once `ready()` holds; else why not: the process exited, or `seconds` passed.

    Polling is how one waits on another process to come up; it is bounded, and no test's
    outcome depends on its timing.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"it exited with status {process.returncode}"
        if ready():
            return None
        time.sleep(0.1)
    return f"it was not ready within {seconds:g} s"
