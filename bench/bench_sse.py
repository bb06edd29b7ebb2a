"""SSE fan-out: many followers of one partition, beside a bare Litestar broadcaster in the same run.

    .venv/bin/python bench/bench_sse.py [--followers 500] [--rate 50] [--seconds 10] [--idle 5000]
                                        [--idle-seconds 5] [--rounds 3] [--profile PATH] [--smoke]

Starts two servers, each a subprocess of `bench/_sse_app.py` served as `spine serve` serves
(uvicorn, Spine's HTTP protocol, `app.http.server.serve_app`): Spine with a fresh SQLite spine
(synchronous=FULL), and the bare broadcaster (one asyncio queue per follower, no log). Then, per
round, for Spine and then the bare broadcaster (never both busy at once):

- live: `--followers` followers of one partition, each a real HTTP/1.1 connection, then appends
  through the HTTP API at `--rate` per second for `--seconds` (after a 1 s warm-up), each started
  on an absolute schedule. For every delivery of a measured append, latency is the time from the
  append's answer reaching the client (the ack) to the frame reaching that follower; a frame that
  arrives before its ack counts 0 (and is counted). Every delivery is checked: missing,
  duplicate and out-of-order positions are counted per follower. A stream the server ends is
  resumed with `Last-Event-ID`, as a client does, and counted as a reconnect.
- idle: `--idle` followers that get no events for `--idle-seconds`: the server's RSS growth per
  follower and its CPU use while they wait.

The summary is the median, over the rounds, of each round's ratio Spine / bare (p50 and p99):
the two run back to back, so a round's ratio is taken under one machine load.

The client is one process: asyncio (uvloop when installed) with raw sockets, one protocol per
connection that only finds `id:` lines in what it reads. Its own CPU use over the live phase is
printed, to show it is not the bottleneck. Figures are printed, never asserted; the script exits
1 when a follower of Spine missed an event or got one twice or out of order (with `--smoke` too).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from array import array
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _env import header, load
from _provision import provision

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
STREAMS = 64  # appends rotate over this many streams
DATA = {
    "key": "user.preferences.language",
    "value": "The user prefers answers in British English, with short paragraphs.",
    "source": "chat",
    "confidence": 0.92,
    "turn": 17,
}
ID_LINE = re.compile(rb"^id: (\d+)$", re.MULTILINE)
STREAM_END = b"\n0\r\n\r\n"  # the last chunk of a chunked body, after a chunk's closing CRLF
CONNECT_BATCH = 250  # connections opened at once: below uvicorn's listen backlog
WARMUP_SECONDS = 1.0
KEEP_ALIVE_SECONDS = 3.0  # an append connection idle longer is not reused: uvicorn closes them at 5 s
DRAIN_SECONDS = 30.0  # how long the followers may take to get the last append after it was acked
TARGET_P50, TARGET_P99 = 2.0, 1.5
DEFAULTS = {"followers": 500, "rate": 50.0, "seconds": 10.0, "idle": 5000, "idle_seconds": 5.0, "rounds": 3}
SMOKE = {"followers": 20, "rate": 20.0, "seconds": 2.0, "idle": 100, "idle_seconds": 1.0, "rounds": 1}


def body_for(index: int) -> bytes:
    events = [{"type": "bench.tick", "data": DATA}]
    return json.dumps(
        {"stream": f"agent:{index % STREAMS}", "events": events}, separators=(",", ":")
    ).encode()


# the servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Server:
    """One `_sse_app.py` subprocess, and what /proc says of it."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.log = directory / f"{name}.log"
        data_dir = directory / name
        data_dir.mkdir()
        command = [sys.executable, str(HERE / "_sse_app.py"), "--port", str(self.port)]
        command += ["--data-dir", str(data_dir)] + (["--bare"] if name == "bare" else [])
        with self.log.open("wb") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        self._wait_until_up()
        if name == "spine":
            self.headers = provision(self.base)
            self.follow_path, self.append_path = "/v1/events/stream", "/v1/events"
        else:
            self.headers = {}
            self.follow_path, self.append_path = "/bare/stream", "/bare/events"

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(
                    f"the {self.name} server exited with {self.process.returncode}:\n{self.log.read_text()}"
                )
            try:
                urllib.request.urlopen(f"{self.base}/ready", timeout=5).close()
            except OSError:
                time.sleep(0.1)
            else:
                return
        self.stop()
        sys.exit(f"the {self.name} server did not answer /ready within 30 s:\n{self.log.read_text()}")

    def stop(self) -> str:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log.read_text().strip()

    def rss(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """User + system time of the whole process (its threads included)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def connections(self) -> int:
        """The server's TCP connections still open on its side (established, or closed by the client
        only): IPv4 on loopback is all the bench uses."""
        port = f":{self.port:04X}"
        rows = (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        return sum(1 for row in rows if row[1].endswith(port) and row[3] in ("01", "08"))

    async def settle(self) -> None:
        """Wait until the connections the client closed are gone from the server too."""
        deadline = time.monotonic() + 20
        while self.connections() and time.monotonic() < deadline:  # noqa: ASYNC110 (the kernel's table)
            await asyncio.sleep(0.05)


# the client


class Follower:
    """One follower across its connections: the positions it got and when."""

    def __init__(self, client: Client, after: int) -> None:
        self.client = client
        self.last = after
        self.positions = array("q")
        self.times = array("d")
        self.reconnects = 0
        self.failure: str | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.connection: Connection | None = None
        self.stopping = False

    def stream_ended(self) -> None:
        if self.stopping:
            return
        self.reconnects += 1
        self.client.spawn(self.client.connect(self))

    def stop(self) -> None:
        self.stopping = True
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.close()


class Connection(asyncio.Protocol):
    """One HTTP/1.1 request for the stream; reads the answer's head, then only `id:` lines."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self.transport: asyncio.Transport | None = None
        self._head = b""
        self._rest = b""
        self._streaming = False
        self._over = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        self.follower.connection = self
        transport.write(self.follower.client.request(self.follower.last))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        follower = self.follower
        if not self._streaming:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self._head.split(b" ", 2)[1]
            data, self._head = self._head[end + 4 :], b""
            if status != b"200":
                follower.failure = f"HTTP {status.decode()}"
                self._end()
                return
            self._streaming = True
            if not follower.ready.done():
                follower.ready.set_result(None)
        buffer = self._rest + data if self._rest else data
        end = buffer.rfind(b"\n\n")  # frames are only parsed whole
        if end >= 0:
            for match in ID_LINE.finditer(buffer, 0, end + 1):
                position = int(match.group(1))
                follower.positions.append(position)
                follower.times.append(now)
                follower.last = max(follower.last, position)
            buffer = buffer[end + 2 :]
        self._rest = buffer
        if buffer.endswith(STREAM_END):
            self._end()  # the server ended the stream: resume, as a client does

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.follower.ready.done():
            self.follower.failure = self.follower.failure or f"connection lost: {exc}"
            self.follower.ready.set_result(None)
            return
        self._end()

    def _end(self) -> None:
        if self._over:
            return
        self._over = True
        if self.transport is not None:
            self.transport.close()
        if self.follower.ready.done() and self.follower.failure is None:
            self.follower.stream_ended()
        elif not self.follower.ready.done():
            self.follower.ready.set_result(None)


class Client:
    def __init__(self, server: Server) -> None:
        self.server = server
        head = f"GET {server.follow_path} HTTP/1.1\r\nHost: {HOST}:{server.port}\r\nAccept: text/event-stream\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in server.headers.items())
        self._head = head.encode()
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self, last: int) -> bytes:
        return self._head + b"Last-Event-ID: %d\r\n\r\n" % last

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connect(self, follower: Follower) -> None:
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: Connection(follower), HOST, self.server.port
            )
        except OSError as exc:
            follower.failure = f"connect: {exc}"
            if not follower.ready.done():
                follower.ready.set_result(None)

    async def open(self, count: int, after: int) -> list[Follower]:
        followers = [Follower(self, after) for _ in range(count)]
        for start in range(0, count, CONNECT_BATCH):
            batch = followers[start : start + CONNECT_BATCH]
            await asyncio.gather(*(self.connect(follower) for follower in batch))
            await asyncio.wait_for(asyncio.gather(*(follower.ready for follower in batch)), 60)
        return followers


class Appender:
    """Keep-alive connections for appends; each append takes one, or opens one when none is free."""

    def __init__(self, server: Server) -> None:
        self.server = server
        head = f"POST {server.append_path} HTTP/1.1\r\nHost: {HOST}:{server.port}\r\n"
        head += "Content-Type: application/json\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in server.headers.items())
        self._head = head
        self._pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def append(self, body: bytes) -> tuple[int, float, float]:
        """(position, sent, acked)."""
        while self._pool:
            reader, writer, used = self._pool.pop()
            if time.monotonic() - used < KEEP_ALIVE_SECONDS:
                break
            writer.close()  # the server may be closing it as idle: never send on it
        else:
            reader, writer = await asyncio.open_connection(HOST, self.server.port)
        sent = time.monotonic()
        writer.write(f"{self._head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status_line = await reader.readline()
        if not status_line:
            raise RuntimeError("the server closed a kept-alive connection before answering an append")
        status = status_line.split()[1]
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = await reader.readexactly(length)
        acked = time.monotonic()
        self._pool.append((reader, writer, acked))
        if status != b"201":
            raise RuntimeError(f"append answered {status.decode()}: {answer[:300].decode(errors='replace')}")
        return int(json.loads(answer)["last_position"]), sent, acked

    async def run(self, rate: float, count: int) -> list[tuple[int, float, float]]:
        """`count` appends started on an absolute schedule, so a slow one never delays the next."""
        tasks: list[asyncio.Task[tuple[int, float, float]]] = []
        start = time.monotonic()
        for index in range(count):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.append(body_for(index))))
        return list(await asyncio.gather(*tasks))

    def close(self) -> None:
        for _, writer, _ in self._pool:
            writer.close()


# the two phases


@dataclass
class Live:
    server: str
    followers: int
    failed: int
    appends: int
    expected: int  # deliveries of measured appends
    delivered: int
    missing: int  # over every position, warm-up included
    duplicates: int
    reordered: int
    reconnects: int
    early: int  # frames that reached the client before their append's ack
    p50_ms: float
    p99_ms: float
    max_ms: float
    append_p50_ms: float
    append_p99_ms: float
    server_cpu: float  # share of one core, over the measured appends and the drain
    client_cpu: float
    drained: bool


@dataclass
class Idle:
    server: str
    followers: int
    failed: int
    rss_before: int
    rss_after: int
    server_cpu: float


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def live(
    server: Server, followers: int, rate: float, seconds: float, after: int, profile: Path | None
) -> tuple[Live, int]:
    client = Client(server)
    opened = await client.open(followers, after)
    following = [follower for follower in opened if follower.failure is None]
    appender = Appender(server)
    warm = await appender.run(rate, max(1, int(rate * WARMUP_SECONDS)))
    profiler = start_profiler(server, profile, seconds)
    wall, cpu, server_cpu = time.monotonic(), time.process_time(), server.cpu_seconds()
    acks = await appender.run(rate, max(1, int(rate * seconds)))
    final = max(position for position, _, _ in warm + acks)
    deadline = time.monotonic() + DRAIN_SECONDS
    while any(f.last < final for f in following) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    drained = all(follower.last >= final for follower in following)
    wall = time.monotonic() - wall
    cpu, server_cpu = time.process_time() - cpu, server.cpu_seconds() - server_cpu
    for follower in opened:
        follower.stop()
    appender.close()
    if profiler is not None:
        await asyncio.to_thread(profiler.wait)

    acked = {position: ack for position, _, ack in acks}
    latencies: list[float] = []
    early = missing = duplicates = reordered = 0
    for follower in following:
        for position, received in zip(follower.positions, follower.times, strict=True):
            ack = acked.get(position)
            if ack is not None:
                early += received < ack
                latencies.append(max(received - ack, 0.0))
        positions = follower.positions
        unique = set(positions)
        duplicates += len(positions) - len(unique)
        missing += sum(1 for position in range(after + 1, final + 1) if position not in unique)
        reordered += sum(1 for a, b in itertools.pairwise(positions) if b <= a)
    append_latencies = [ack - sent for _, sent, ack in acks]
    figures = Live(
        server=server.name,
        followers=followers,
        failed=len(opened) - len(following),
        appends=len(acks),
        expected=len(acks) * len(following),
        delivered=len(latencies),
        missing=missing,
        duplicates=duplicates,
        reordered=reordered,
        reconnects=sum(follower.reconnects for follower in opened),
        early=early,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=max(latencies, default=float("nan")) * 1000,
        append_p50_ms=percentile(append_latencies, 0.50) * 1000,
        append_p99_ms=percentile(append_latencies, 0.99) * 1000,
        server_cpu=server_cpu / wall,
        client_cpu=cpu / wall,
        drained=drained,
    )
    await server.settle()
    return figures, final


def start_profiler(server: Server, profile: Path | None, seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy on the server over the measured appends: collapsed stacks, one file per server."""
    if profile is None:
        return None
    out = profile.with_name(f"{profile.stem}-{server.name}{profile.suffix or '.txt'}")
    command = ["py-spy", "record", "--format", "raw", "--rate", "200", "--threads", "--nonblocking"]
    command += ["--duration", str(max(1, int(seconds))), "-o", str(out), "-p", str(server.process.pid)]
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(py_spy), *command[1:]], stdout=subprocess.DEVNULL)


async def idle(server: Server, followers: int, seconds: float, after: int) -> Idle:
    rss_before = server.rss()
    client = Client(server)
    opened = await client.open(followers, after)
    server_cpu = server.cpu_seconds()
    await asyncio.sleep(seconds)  # the figure is what the server does while nothing happens
    server_cpu = (server.cpu_seconds() - server_cpu) / seconds
    rss_after = server.rss()
    for follower in opened:
        follower.stop()
    await server.settle()
    return Idle(
        server=server.name,
        followers=followers,
        failed=sum(follower.failure is not None for follower in opened),
        rss_before=rss_before,
        rss_after=rss_after,
        server_cpu=server_cpu,
    )


# report


def print_live(runs: list[tuple[int, Live]]) -> None:
    print(
        f"\n  {'round':<6} {'server':<6} {'deliveries':>11} {'missing':>8} {'dup':>5} {'reorder':>8}"
        f" {'reconn':>7} {'early':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'append p50/p99 ms':>18} {'server CPU':>11} {'client CPU':>11}"
    )
    print("  " + "-" * 133)
    for number, run in runs:
        delivered = f"{run.delivered:,}/{run.expected:,}"
        print(
            f"  {number:<6} {run.server:<6} {delivered:>11} {run.missing:>8} {run.duplicates:>5}"
            f" {run.reordered:>8} {run.reconnects:>7} {run.early:>6} {run.p50_ms:>8.1f}"
            f" {run.p99_ms:>8.1f} {run.max_ms:>8.1f}"
            f" {f'{run.append_p50_ms:.1f} / {run.append_p99_ms:.1f}':>18}"
            f" {run.server_cpu:>10.0%} {run.client_cpu:>10.0%}"
        )
        if run.failed or not run.drained:
            print(
                f"         {run.failed} follower(s) failed to open;"
                f" {'every follower got the last append' if run.drained else 'NOT every follower got the last append within 30 s'}"
            )


def print_idle(runs: list[Idle]) -> None:
    print(
        f"\n  {'server':<6} {'followers':>9} {'failed':>7} {'RSS before':>11} {'RSS after':>11}"
        f" {'KiB/follower':>13} {'server CPU idle':>16}"
    )
    print("  " + "-" * 80)
    for run in runs:
        per = (run.rss_after - run.rss_before) / max(run.followers - run.failed, 1) / 1024
        print(
            f"  {run.server:<6} {run.followers:>9,} {run.failed:>7} {run.rss_before / 2**20:>8.1f} MB"
            f" {run.rss_after / 2**20:>8.1f} MB {per:>13.1f} {run.server_cpu:>15.0%}"
        )


def summary(runs: list[tuple[int, Live]]) -> bool:
    """Each round's ratios (Spine, then the bare broadcaster right after it), and their median."""
    by_round = {(number, run.server): run for number, run in runs}
    rounds = sorted({number for number, _ in runs})
    p50s = [by_round[n, "spine"].p50_ms / by_round[n, "bare"].p50_ms for n in rounds]
    p99s = [by_round[n, "spine"].p99_ms / by_round[n, "bare"].p99_ms for n in rounds]
    spine = [by_round[n, "spine"] for n in rounds]
    complete = all(
        run.delivered == run.expected and not (run.missing or run.duplicates or run.reordered or run.failed)
        for run in spine
    )
    print("\nsummary (median of the rounds' ratios; printed, not asserted)")
    for label, ratios, target in (("p50", p50s, TARGET_P50), ("p99", p99s, TARGET_P99)):
        ratio = statistics.median(ratios)
        each = ", ".join(f"{value:.2f}" for value in ratios)
        status = "meets" if ratio <= target else "ABOVE"
        print(f"  {label} spine / bare  {ratio:>6.2f}x  target <= {target:.1f}x  {status}   (rounds: {each})")
    print(f"  every delivery made, once, in order (spine): {'yes' if complete else 'NO'}")
    return complete


async def bench(args: argparse.Namespace, servers: list[Server]) -> bool:
    """Every round and the idle phase; True when Spine made every delivery once, in order."""
    heads = dict.fromkeys((server.name for server in servers), 0)
    runs: list[tuple[int, Live]] = []
    for number in range(1, args.rounds + 1):
        for server in servers:
            figures, heads[server.name] = await live(
                server, args.followers, args.rate, args.seconds, heads[server.name], args.profile
            )
            runs.append((number, figures))
    idles = []
    if args.idle:
        for server in servers:
            idles.append(await idle(server, args.idle, args.idle_seconds, heads[server.name]))
    print(
        f"\nlive: {args.followers} followers of one partition, {args.rate:g} appends/s for {args.seconds:g} s"
        f" (after {WARMUP_SECONDS:g} s of warm-up); latency from each append's ack to each delivery"
    )
    print_live(runs)
    if idles:
        print(f"\nidle: {args.idle} followers, no appends, {args.idle_seconds:g} s")
        print_idle(idles)
    return summary(runs)


def main(args: argparse.Namespace) -> None:
    try:
        import uvloop

        runner, loop_name = uvloop.run, "uvloop"
    except ImportError:
        runner, loop_name = asyncio.run, "asyncio"
    print(header("bench_sse: SSE fan-out, Spine vs a bare Litestar broadcaster, same server stack"))
    print(
        f"  servers: bench/_sse_app.py, uvicorn on {HOST} (Spine: fresh SQLite spine, synchronous=FULL);"
        f" client: one process, {loop_name}, raw HTTP/1.1 sockets; {args.rounds} round(s)"
    )
    with tempfile.TemporaryDirectory(prefix="spine-bench-sse-") as directory:
        servers = [Server("spine", Path(directory)), Server("bare", Path(directory))]
        try:
            complete = runner(bench(args, servers))
        finally:
            logs = {server.name: server.stop() for server in servers}
    print(f"  after the run: {load()}")
    for name, text in logs.items():
        if text:
            print(f"\n{name} server output:\n{text}")
    if not complete:  # not a figure: an event lost, repeated or reordered is a bug, smoke or not
        sys.exit("some follower of Spine missed an event, or got one twice or out of order")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--followers", type=int, help="live followers (default 500; smoke 20)")
    parser.add_argument("--rate", type=float, help="appends per second (default 50; smoke 20)")
    parser.add_argument("--seconds", type=float, help="measured appending time (default 10; smoke 2)")
    parser.add_argument("--idle", type=int, help="idle followers, 0: skip (default 5000; smoke 100)")
    parser.add_argument("--idle-seconds", type=float, help="idle window (default 5; smoke 1)")
    parser.add_argument("--rounds", type=int, help="live rounds per server (default 3; smoke 1)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy each server over the measured appends; collapsed stacks to PATH-<server>.txt",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds, every case, at the smoke sizes above (an explicit flag still wins)",
    )
    arguments = parser.parse_args()
    sizes = SMOKE if arguments.smoke else DEFAULTS
    for name, value in sizes.items():
        if getattr(arguments, name) is None:
            setattr(arguments, name, value)
    main(arguments)
