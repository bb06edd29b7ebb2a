"""Streaming throughput of the ObjectStore port's `put` and `read` per backend, beside the peer's
own client moving the same bytes to the same server, in one run.

    .venv/bin/python bench/bench_objects.py [--mib 64] [--runs 3] [--backends filesystem,s3,azure_blob]
    .venv/bin/python bench/bench_objects.py --smoke   # every case at a small size (CI runs this)

The peers are the contract suite's (`tests/peers/s3.py`: moto's S3 server; `tests/peers/azurite.py`:
Azurite's blob service, installed by `.ci/peers/azurite.sh`), each started on a free port in a
process of its own. One object of `--mib` MiB of random bytes is made once; every case moves it:

  adapter put     `put` fed 64 KiB chunks (what an ASGI server hands over), with the adapter's
                  default parts (8 MiB: a multipart upload, a block list), hashing as it goes
  baseline put    s3: aioboto3's `upload_fileobj` (its transfer manager: 8 MiB parts, 10 in
                  parallel); azure_blob: the SDK's own `upload_blob` of the whole buffer (parts
                  as it chooses); filesystem: the bytes written to a file, 1 MiB at a time, fsync
  adapter read    `read` of the whole object, chunk by chunk
  baseline read   s3: `download_fileobj` (ranged GETs in parallel); azure_blob: `download_blob`
                  and `readinto`; filesystem: the file read 1 MiB at a time

Cases take turns (adapter, baseline, adapter, …) `--runs` times; the table shows the median run
in MB/s (10^6 bytes per second) and the adapter's figure as a share of the baseline's. Figures
are printed, never asserted. A peer that cannot run here is reported as skipped (under CI=true
the script fails instead, as the contract suite does); any other error fails the run once every
backend has run. `--smoke` moves 12 MiB once (still two parts), so CI notices a bench that no
longer runs; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from _env import REPO, header, load

sys.path.insert(0, str(REPO))  # `tests` (the peers) is importable from the repository root

from adapters.azure_blob.objects import AzureBlobObjectStore
from adapters.filesystem.objects import FilesystemObjectStore
from adapters.s3.objects import S3ObjectStore
from domain.ports import ObjectStore
from tests.peers import azurite, s3

MiB = 1024 * 1024
CHUNK = 64 * 1024
FILE_BLOCK = MiB
BACKENDS = ("filesystem", "s3", "azure_blob")
DEFAULTS = {"mib": 64, "runs": 3}
SMOKE = {"mib": 12, "runs": 1}
CASES = ("put", "read")

Timed = Callable[[], Awaitable[None]]


class PeerMissing(Exception):
    """The backend's peer cannot run on this machine (not installed)."""


@dataclass
class Pair:
    """One backend's cases: the adapter's and the baseline's put and read, each timed alone."""

    adapter_put: Timed
    baseline_put: Timed
    adapter_read: Timed
    baseline_read: Timed


async def chunks(payload: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), CHUNK):
        yield payload[start : start + CHUNK]


async def drain(store: ObjectStore, name: str) -> int:
    return sum([len(chunk) async for chunk in await store.read(name)])


class _Sink(io.RawIOBase):
    """A writable, seekable file (ranged downloads write parts where they go) that counts what it
    is given and keeps none of it."""

    def __init__(self) -> None:
        self.size = 0
        self._position = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._position = offset if whence == io.SEEK_SET else self._position + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def write(self, data: Any) -> int:
        self.size += len(data)
        self._position += len(data)
        return len(data)


def adapter_cases(store: ObjectStore, payload: bytes) -> tuple[Timed, Timed]:
    name = f"bench/{uuid.uuid4().hex}"

    async def put() -> None:
        stored = await store.put(
            name, chunks(payload), content_type="application/octet-stream", max_bytes=1 << 40
        )
        if stored.size != len(payload):
            raise RuntimeError(f"put stored {stored.size} bytes of {len(payload)}")

    async def read() -> None:
        if (size := await drain(store, name)) != len(payload):
            raise RuntimeError(f"read gave {size} bytes of {len(payload)}")

    return put, read


async def filesystem(stack: AsyncExitStack, payload: bytes) -> Pair:
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spine-bench-objects-")))
    store = await stack.enter_async_context(FilesystemObjectStore(root / "objects"))
    path = root / "baseline.bin"

    def write() -> None:
        with path.open("wb") as file:
            for start in range(0, len(payload), FILE_BLOCK):
                file.write(payload[start : start + FILE_BLOCK])
            file.flush()
            os.fsync(file.fileno())

    def read() -> None:
        with path.open("rb") as file:
            while file.read(FILE_BLOCK):
                pass

    async def baseline_put() -> None:
        await anyio.to_thread.run_sync(write)

    async def baseline_read() -> None:
        await anyio.to_thread.run_sync(read)

    put, get = adapter_cases(store, payload)
    return Pair(put, baseline_put, get, baseline_read)


async def s3_pair(stack: AsyncExitStack, payload: bytes) -> Pair:
    try:
        process, url = await anyio.to_thread.run_sync(s3.start_moto)
    except RuntimeError as exc:
        raise PeerMissing(str(exc)) from exc
    stack.callback(s3.stop, process)
    bucket = await stack.enter_async_context(s3.bucket(url))
    store = await stack.enter_async_context(
        S3ObjectStore(bucket, region=s3.REGION, endpoint_url=url, session=s3.session())
    )
    client = await stack.enter_async_context(
        s3.session().client("s3", endpoint_url=url, region_name=s3.REGION)
    )
    key = f"baseline/{uuid.uuid4().hex}"

    async def baseline_put() -> None:
        await client.upload_fileobj(io.BytesIO(payload), bucket, key)

    async def baseline_read() -> None:
        sink = _Sink()
        await client.download_fileobj(bucket, key, sink)
        if sink.size != len(payload):
            raise RuntimeError(f"download_fileobj gave {sink.size} bytes of {len(payload)}")

    put, get = adapter_cases(store, payload)
    return Pair(put, baseline_put, get, baseline_read)


async def azure_pair(stack: AsyncExitStack, payload: bytes) -> Pair:
    if azurite.command() is None:
        raise PeerMissing("Azurite is not installed (run .ci/peers/azurite.sh)")
    try:
        process, url, location = await anyio.to_thread.run_sync(azurite.start_azurite)
    except RuntimeError as exc:
        raise PeerMissing(str(exc)) from exc
    stack.callback(azurite.stop, process, location)
    container = await stack.enter_async_context(azurite.container(url))
    store = await stack.enter_async_context(
        AzureBlobObjectStore(url, container.container_name, account_key=azurite.KEY)
    )
    blob = container.get_blob_client(f"baseline/{uuid.uuid4().hex}")

    async def baseline_put() -> None:
        await blob.upload_blob(payload, overwrite=True)

    async def baseline_read() -> None:
        sink = _Sink()
        await (await blob.download_blob()).readinto(sink)
        if sink.size != len(payload):
            raise RuntimeError(f"download_blob gave {sink.size} bytes of {len(payload)}")

    put, get = adapter_cases(store, payload)
    return Pair(put, baseline_put, get, baseline_read)


OPENERS: dict[str, Callable[[AsyncExitStack, bytes], Awaitable[Pair]]] = {
    "filesystem": filesystem,
    "s3": s3_pair,
    "azure_blob": azure_pair,
}


async def seconds(case: Timed) -> float:
    started = time.perf_counter()
    await case()
    return time.perf_counter() - started


async def measure(backend: str, payload: bytes, runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """(adapter, baseline) seconds per run, per case."""
    async with AsyncExitStack() as stack:
        pair = await OPENERS[backend](stack, payload)
        put: tuple[list[float], list[float]] = ([], [])
        read: tuple[list[float], list[float]] = ([], [])
        for _ in range(runs):  # a put before each read: the read has something to read
            put[0].append(await seconds(pair.adapter_put))
            put[1].append(await seconds(pair.baseline_put))
            read[0].append(await seconds(pair.adapter_read))
            read[1].append(await seconds(pair.baseline_read))
        return {"put": put, "read": read}


def rate(size: int, runs: list[float]) -> float:
    return size / statistics.median(runs) / 1e6


async def main(backends: list[str], mib: int, runs: int, smoke: bool) -> int:
    print(header("bench_objects: ObjectStore put/read throughput per backend, beside the peer's own client"))
    if smoke:
        print(
            "  SMOKE RUN: every case once at a small size, to show the bench still runs; the figures mean nothing"
        )
    print(
        f"  one object of {mib} MiB, random bytes; {runs} run(s) per case, the median shown; MB/s = 10^6 B/s"
    )
    payload = random.Random(0).randbytes(mib * MiB)
    rows: list[str] = []
    failed: list[str] = []
    for backend in backends:
        started = time.perf_counter()
        try:
            figures = await measure(backend, payload, runs)
        except PeerMissing as exc:
            if os.environ.get("CI") == "true":
                print(f"  {backend:<11} FAILED: CI=true requires its peer: {exc}", file=sys.stderr)
                failed.append(backend)
            else:
                print(f"  {backend:<11} SKIPPED (its peer cannot run here): {exc}")
            continue
        except Exception as exc:  # a fault of the bench or an adapter: reported, the others still run
            print(f"  {backend:<11} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exception(exc)
            failed.append(backend)
            continue
        print(f"  {backend:<11} done in {time.perf_counter() - started:.0f} s")
        for case in CASES:
            adapter, baseline = figures[case]
            ours, theirs = rate(len(payload), adapter), rate(len(payload), baseline)
            spread = f"{rate(len(payload), [max(adapter)]):.0f}-{rate(len(payload), [min(adapter)]):.0f}"
            rows.append(
                f"  {backend:<11} {case:<5} {ours:>12.0f} {spread:>12} {theirs:>12.0f} {ours / theirs:>9.2f}"
            )
    print(
        f"\n  {'backend':<11} {'case':<5} {'adapter MB/s':>12} {'(range)':>12} {'peer MB/s':>12} {'adapter/peer':>9}"
    )
    print("\n".join(rows))
    print(f"  after the run: {load()}")
    if failed:
        print(f"  FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, help="the object's size in MiB (default 64; --smoke: 12)")
    parser.add_argument("--runs", type=int, help="runs per case; the median is shown (default 3; --smoke: 1)")
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated, from {', '.join(BACKENDS)} (default all)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="every case once at 12 MiB (an explicit flag still wins)"
    )
    arguments = parser.parse_args()
    for name, value in (SMOKE if arguments.smoke else DEFAULTS).items():
        if getattr(arguments, name) is None:
            setattr(arguments, name, value)
    chosen = [backend.strip() for backend in arguments.backends.split(",") if backend.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(unknown)}")
    sys.exit(asyncio.run(main(chosen, arguments.mib, arguments.runs, arguments.smoke)))
