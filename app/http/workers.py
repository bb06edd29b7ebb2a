"""`spine serve --workers N`: N worker processes on one port and one data directory.

**Sockets: one per worker, with `SO_REUSEPORT`, all made and kept by the supervisor.** The kernel
spreads new connections over the sockets by a hash of their addresses, so a burst of connections
(a client's pool opening, a load balancer reconnecting) lands on every worker. One socket shared
by all workers (uvicorn's own multiprocess mode) leaves that to whichever worker wakes first, and
an event loop accepts every connection waiting at once: a burst of 32 connections often went
to one worker of two, which then served all of their requests for as long as they stayed open
(tests/e2e/test_workers.py). The supervisor keeps every socket open, so the connections queued
on a worker that died wait for its replacement, which gets the same socket, instead of being
reset. `SO_REUSEPORT` would let a second server of the same user join the port unseen: the
supervisor first binds it without the option, so a port already in use is refused as usual.

**Supervisor: ours, not uvicorn's `Multiprocess`,** which builds a plain `uvicorn.Server` from a
pickled `Config`: it has no place for the draining shutdown SSE followers need
(`app.http.server.DrainingServer`), for the per-deployment protocol class, for a socket per
worker, or for a worker index (each worker needs an `instance_id` of its own for projection
leases, kept when it is restarted). This one restarts a worker that dies, stops them all when one
cannot start (a broken deployment would fail the same way every time), and stops them all on
SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from multiprocessing.process import BaseProcess

import msgspec
from uvicorn.config import STARTUP_FAILURE

from app.http.factory import create_app
from app.http.server import serve_app
from app.logs import configure_logging
from app.settings import Settings

log = logging.getLogger(f"spine.{__name__}")

Worker = Callable[[int, socket.socket], None]
"""One worker's whole life: serve on its listening socket until stopped; called with its index."""

_spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no event loop or thread is inherited
_BACKLOG = 2048  # uvicorn's default
_STOP_SECONDS = 15.0  # a worker's graceful shutdown (5 s) plus its lifespan's
_RESTART_SECONDS = 1.0  # at most one restart per worker slot per second


def listening_sockets(host: str, port: int, workers: int) -> list[socket.socket]:
    """One listening socket per worker on host:port; `OSError` when the port is taken (or not ours)."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    _check_free(host, port)
    sockets: list[socket.socket] = []
    try:
        for _ in range(workers):
            sockets.append(_listen(host, port))
    except OSError:
        for made in sockets:
            made.close()
        raise
    return sockets


def serve_workers(worker: Worker, sockets: list[socket.socket]) -> None:
    """Run one process of `worker` per socket (`listening_sockets`), until a signal stops them;
    the sockets are closed when they have all stopped.

    `worker` must be picklable (a module-level function, or a `functools.partial` of one). Exits
    with uvicorn's startup-failure code when a worker could not start.
    """
    with ExitStack() as stack:
        for listening in sockets:
            stack.enter_context(listening)
        supervisor = _Supervisor(worker, sockets)
        supervisor.run()
    if supervisor.failed:
        raise SystemExit(STARTUP_FAILURE)


def spine_worker(
    settings: Settings, log_level: str, host: str, port: int, index: int, listening: socket.socket
) -> None:
    """One worker of `spine serve --workers`: the app, with an instance id of its own (projection
    leases name their holder by it: `<instance_id>-<index>`, the same when the worker restarts)."""
    configure_logging(log_level)  # a spawned process starts with Python's defaults
    instance = msgspec.structs.replace(settings, instance_id=f"{settings.instance_id}-{index}")
    serve_app(create_app(instance), host=host, port=port, sockets=[listening])


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _check_free(host: str, port: int) -> None:
    """Raise `OSError` (address in use) when another socket listens on host:port."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is fine
        probe.bind((host, port))


def _listen(host: str, port: int) -> socket.socket:
    listening = socket.socket(_family(host), socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listening.bind((host, port))
    listening.listen(_BACKLOG)
    return listening


class _Supervisor:
    def __init__(self, worker: Worker, sockets: list[socket.socket]) -> None:
        self._worker = worker
        self._sockets = sockets
        self._processes: list[BaseProcess] = []
        self._started_at: list[float] = []
        self._stop = threading.Event()
        self.failed = False

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for index in range(len(self._sockets)):
                self._processes.append(self._start(index))
                self._started_at.append(time.monotonic())
            log.info("workers started", extra={"workers": len(self._processes), "pids": self._pids()})
            while not self._stop.wait(0.2):
                self._keep_alive()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop.set()

    def _start(self, index: int) -> BaseProcess:
        process = _spawn.Process(
            target=_run_worker,
            args=(self._worker, index, self._sockets[index], os.getpid()),
            name=f"spine-worker-{index}",
        )
        process.start()
        return process

    def _keep_alive(self) -> None:
        for index, process in enumerate(self._processes):
            if process.is_alive():
                continue
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                log.error("a worker could not start: stopping", extra={"worker": index, "pid": process.pid})
                self.failed = True
                self._stop.set()
                return
            if time.monotonic() < self._started_at[index] + _RESTART_SECONDS:
                continue  # a worker that dies at once is not restarted in a tight loop
            log.warning(
                "a worker died: restarting it",
                extra={"worker": index, "pid": process.pid, "exitcode": process.exitcode},
            )
            self._processes[index] = self._start(index)
            self._started_at[index] = time.monotonic()

    def _stop_all(self) -> None:
        for process in self._processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_SECONDS
        for process in self._processes:
            process.join(max(deadline - time.monotonic(), 0.0))
            if process.is_alive():
                log.error("a worker did not stop in time: killed", extra={"pid": process.pid})
                process.kill()
                process.join()

    def _pids(self) -> list[int | None]:
        return [process.pid for process in self._processes]


def _run_worker(worker: Worker, index: int, listening: socket.socket, supervisor: int) -> None:
    """In the worker process: serve until stopped, or until the supervisor is gone."""
    # Ctrl-C reaches the whole process group: the supervisor stops the workers with SIGTERM, and
    # uvicorn handles SIGINT itself while it serves, so the default handler is not needed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_supervisor, args=(supervisor,), daemon=True).start()
    worker(index, listening)


def _watch_supervisor(supervisor: int) -> None:
    """A worker whose supervisor died (SIGKILL) stops too, rather than serving on unsupervised."""
    while os.getppid() == supervisor:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
