"""HTTP single-event appends and Spine's no-op POST, against a bare Litestar POST on the same stack.

    .venv/bin/python bench/bench_http.py [--duration 10] [--rounds 3] [--connections 64]
                                         [--threads 1] [--workers 1] [--smoke]

Starts two servers from `bench/_http_app.py`, each with `--workers` worker processes: Spine's own
app with an extra `POST /bench/noop` (fresh SQLite spine, synchronous=FULL), and a bare Litestar
app whose only route decodes the same body into the same msgspec struct and answers 201. Drives
the bare POST, the no-op and `POST /v1/events` with wrk when it is installed, else with a small
asyncio HTTP/1.1 client. A preflight POST to each endpoint must succeed first. Rounds alternate
the three after a short warm-up of each; the summary uses the median round. Figures are printed,
never asserted; the script exits non-zero only when a request was not answered 2xx. `--smoke`
runs every case for one second, with a few connections, to show that the bench still works.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from _env import header, load
from _provision import provision

HERE = Path(__file__).resolve().parent
HEADERS = {"Content-Type": "application/json"}  # `provision` adds the token and the context headers
ENDPOINTS = {"bare": "/bench/bare", "noop": "/bench/noop", "append": "/v1/events"}
SERVED_BY = {"bare": "bare", "noop": "spine", "append": "spine"}
STREAMS = 64  # requests rotate over this many streams, as the in-process bench's appenders do
EVENT_TYPE = "note.added"  # a type no product route owns: `/v1/events` refuses those (422)
DATA = {
    "key": "user.preferences.language",
    "value": "The user prefers answers in British English, with short paragraphs.",
    "source": "chat",
    "confidence": 0.92,
    "turn": 17,
}
TARGETS = {"noop": 0.80, "append": 0.60}  # each over the bare POST, median rounds of one run
WARMUP_SECONDS = 2


def body_for(stream: int) -> bytes:
    events = [{"type": EVENT_TYPE, "data": DATA}]
    return json.dumps({"stream": f"agent:{stream}", "events": events}, separators=(",", ":")).encode()


@dataclass
class Run:
    endpoint: str
    label: str
    requests: int
    seconds: float
    rate: float
    failed: int  # non-2xx answers
    errors: str  # wrk's socket errors, "" when none
    p50_ms: float
    p99_ms: float


# the server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as answer:
        return bytes(answer.read())


def preflight(bases: dict[str, str]) -> None:
    """One POST to each endpoint before measuring: a rate of error answers means nothing."""
    for endpoint, path in ENDPOINTS.items():
        url = f"{bases[SERVED_BY[endpoint]]}{path}"
        request = urllib.request.Request(url, data=body_for(0), headers=HEADERS, method="POST")
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode(errors="replace")
            sys.exit(
                f"preflight: POST {path} answered {error.code}, so nothing was measured: {detail}\n"
                f"The bench sends only the headers {sorted(HEADERS)}; update HEADERS if the app needs more."
            )


def wait_until_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Until the server answers anything (the bare app has no /ready: its 404 is an answer)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}:\n{log.read_text()}")
        try:
            get(f"{base}/ready")
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
        else:
            return
    server.kill()
    sys.exit(f"the server did not answer within 30 s:\n{log.read_text()}")


def start_server(name: str, directory: Path, workers: int) -> tuple[str, subprocess.Popen[bytes], Path]:
    """`_http_app.py` for `name` ("spine" or "bare") on a free port: its base URL, process and log."""
    port, log = free_port(), directory / f"{name}.log"
    command = [sys.executable, str(HERE / "_http_app.py"), "--port", str(port), "--workers", str(workers)]
    command += ["--bare"] if name == "bare" else ["--data-dir", str(directory / "data")]
    with log.open("wb") as log_file:
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    return f"http://127.0.0.1:{port}", server, log


# load generators


def wrk_script(directory: Path, path: str) -> Path:
    """POST `path` with the JSON body and headers, rotating the stream over `STREAMS`."""
    headers = "\n".join(f'wrk.headers["{name}"] = "{value}"' for name, value in HEADERS.items())
    template = body_for(0).decode().replace("agent:0", "agent:%d")
    script = directory / "post.lua"
    script.write_text(
        f"""wrk.method = "POST"
{headers}
local template = '{template}'
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "{path}", nil, string.format(template, counter % {STREAMS}))
end
"""
    )
    return script


def wrk_duration(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(base: str, endpoint: str, label: str, seconds: int, connections: int, threads: int) -> Run:
    with tempfile.TemporaryDirectory() as directory:
        script = wrk_script(Path(directory), ENDPOINTS[endpoint])
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
        out = subprocess.run([*command, base], capture_output=True, text=True, check=True).stdout

    def find(pattern: str, default: str = "0") -> str:
        match = re.search(pattern, out)
        return match.group(1) if match else default

    requests, elapsed = re.search(r"(\d+) requests in ([\d.]+\w+),", out).groups()  # type: ignore[union-attr]
    errors = find(r"Socket errors: (.*)", "")
    return Run(
        endpoint,
        label,
        int(requests),
        wrk_duration(elapsed) / 1000,
        float(find(r"Requests/sec:\s+([\d.]+)")),
        int(find(r"Non-2xx or 3xx responses: (\d+)")),
        errors,
        wrk_duration(find(r"\s50%\s+(\S+)", "0ms")),
        wrk_duration(find(r"\s99%\s+(\S+)", "0ms")),
    )


def run_asyncio(base: str, endpoint: str, label: str, seconds: int, connections: int, threads: int) -> Run:
    """The fallback generator: keep-alive HTTP/1.1 over plain asyncio streams, one task per connection."""
    url = urlsplit(base)
    path = ENDPOINTS[endpoint]
    latencies: list[float] = []
    failed = 0

    async def connection(index: int, deadline: float) -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        count = index
        try:
            while time.perf_counter() < deadline:
                count += connections
                body = body_for(count % STREAMS)
                head = f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {len(body)}\r\n"
                head += "".join(f"{name}: {value}\r\n" for name, value in HEADERS.items())
                sent = time.perf_counter()
                writer.write(head.encode() + b"\r\n" + body)
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - sent)
                failed += not 200 <= status < 300
        finally:
            writer.close()

    async def drive() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(connection(index, started + seconds) for index in range(connections)))
        return time.perf_counter() - started

    elapsed = asyncio.run(drive())
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Run(
        endpoint,
        label,
        len(latencies),
        elapsed,
        len(latencies) / elapsed,
        failed,
        "",
        cuts[49] * 1000,
        cuts[98] * 1000,
    )


# report


def print_runs(runs: list[Run]) -> None:
    print(
        f"\n  {'endpoint':<22} {'run':<8} {'requests':>9} {'req/s':>9}"
        f" {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  errors"
    )
    print("  " + "-" * 84)
    for run in runs:
        print(
            f"  {'POST ' + ENDPOINTS[run.endpoint]:<22} {run.label:<8} {run.requests:>9,} {run.rate:>9,.0f}"
            f" {run.p50_ms:>8.1f} {run.p99_ms:>8.1f} {run.failed:>8}  {run.errors or '-'}"
        )


def spine_state(base: str) -> tuple[int, dict[str, float]]:
    """The partition head and the spine's own counters, from the server itself."""
    page = json.loads(
        get(f"{base}/v1/events?limit=1", {k: v for k, v in HEADERS.items() if k != "Content-Type"})
    )
    wanted = (
        "spine_appends_total",
        "spine_commit_batch_requests_sum",
        "spine_commit_batch_requests_count",
        "spine_commit_seconds_sum",
    )
    metrics: dict[str, float] = {}
    for line in get(f"{base}/metrics").decode().splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(wanted):
            metrics[name] = float(value)
    return int(page["head"]), metrics


def main(duration: int, rounds: int, connections: int, threads: int, workers: int, smoke: bool) -> None:
    warmup = 1 if smoke else WARMUP_SECONDS
    if shutil.which("wrk"):
        generator, drive = (
            f"wrk -t{threads} -c{connections} -d{duration}s (Lua: POST, JSON body, headers)",
            run_wrk,
        )
    else:
        generator, drive = (
            f"asyncio HTTP/1.1 keep-alive client, {connections} connections (wrk not found:"
            " `apt-get install wrk`; this client is slower than the server and caps every figure)",
            run_asyncio,
        )
    print(header("bench_http: POST /v1/events and POST /bench/noop (Spine) vs POST /bench/bare (Litestar)"))
    print(
        f"  servers: uvicorn (httptools, uvloop) on 127.0.0.1, {workers} worker process(es) each;"
        " Spine with a fresh SQLite spine (synchronous=FULL)"
    )
    print(f"  load generator: {generator}")
    print(
        f"  {rounds} round(s) of {duration}s per endpoint, alternating,"
        f" after a {warmup}s warm-up of each{'  (--smoke: figures mean nothing)' if smoke else ''}"
    )

    with tempfile.TemporaryDirectory(prefix="spine-bench-http-") as name:
        directory = Path(name)
        servers = {server: start_server(server, directory, workers) for server in ("spine", "bare")}
        bases = {server: base for server, (base, _, _) in servers.items()}
        try:
            for base, process, log in servers.values():
                wait_until_up(base, process, log)
            HEADERS.update(provision(bases["spine"]))
            preflight(bases)
            runs = [
                drive(bases[SERVED_BY[endpoint]], endpoint, "warm-up", warmup, connections, threads)
                for endpoint in ENDPOINTS
            ]
            for number in range(1, rounds + 1):
                runs += [
                    drive(
                        bases[SERVED_BY[endpoint]],
                        endpoint,
                        f"round {number}",
                        duration,
                        connections,
                        threads,
                    )
                    for endpoint in ENDPOINTS
                ]
            head, metrics = spine_state(bases["spine"])
        finally:
            for _, process, _ in servers.values():
                process.terminate()
            for _, process, _ in servers.values():
                process.wait(timeout=30)
        server_logs = {server: log.read_text().strip() for server, (_, _, log) in servers.items()}

    print_runs(runs)
    measured = {
        endpoint: statistics.median(
            run.rate for run in runs if run.endpoint == endpoint and run.label != "warm-up"
        )
        for endpoint in ENDPOINTS
    }
    bare = measured["bare"]
    answered = 1 + sum(run.requests for run in runs if run.endpoint == "append")  # 1: the preflight
    failed = sum(run.failed for run in runs)

    print("\nsummary (median round; printed, not asserted)")
    print(f"  bare Litestar POST {bare:>9,.0f} req/s  (decode the body, answer 201: the baseline)")
    print(
        f"  Spine no-op POST   {measured['noop']:>9,.0f} req/s  (identity, limits, logs, metrics; no append)"
    )
    print(f"  Spine append POST  {measured['append']:>9,.0f} req/s  (1 event per request)")
    for endpoint, target in TARGETS.items():
        ratio = measured[endpoint] / bare
        status = "meets" if ratio >= target else "BELOW"
        print(f"  {endpoint + ' / bare':<18} {ratio:>9.2f}        target >= {target:.2f}  {status}")
    print(f"  {'append / no-op':<18} {measured['append'] / measured['noop']:>9.2f}")
    print(f"  non-2xx answers: {failed} (all runs, all endpoints)")
    print(
        f"  appends answered to the load generator: {answered:,}; partition head afterwards: {head:,}"
        " (the head may exceed the count by requests in flight when a run stopped)"
    )
    outcomes = ", ".join(
        f"{name.split('{')[1].rstrip('}')}: {value:,.0f}"
        for name, value in metrics.items()
        if name.startswith("spine_appends_total")
    )
    commits = metrics.get("spine_commit_batch_requests_count", 0)
    if commits:
        mean_batch = metrics.get("spine_commit_batch_requests_sum", 0) / commits
        mean_ms = metrics.get("spine_commit_seconds_sum", 0) / commits * 1000
        whose = "one worker's" if workers > 1 else "the server's"
        print(
            f"  {whose} metrics: appends by outcome {{{outcomes}}}; {commits:,.0f} group commits,"
            f" mean {mean_batch:.1f} requests and {mean_ms:.2f} ms each"
        )
    print(f"  after the run: {load()}")
    for server, text in server_logs.items():
        if text:
            print(f"\n{server} server output:\n{text}")
    if failed:
        sys.exit(f"{failed} request(s) were not answered 2xx: the figures are not comparable")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per endpoint (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument(
        "--threads", type=int, default=1, help="wrk threads (default 1: the server gets the other core)"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes of each server (default 1)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every case once for 1 s with 8 connections: checks that the bench runs (a few seconds)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.rounds, args.connections = 1, 1, 8
    main(args.duration, args.rounds, args.connections, args.threads, args.workers, args.smoke)
