"""The azure_blob object store's factories for the contract suite, against Azurite's blob service.

The peer is Microsoft's Azure Storage emulator from npm (`.ci/peers/azurite.sh` installs it under
`.peers/azurite` and exports `SPINE_TEST_AZURITE_BLOB`, its `azurite-blob` command). It is started
once per test session on a free port with a temporary location, in a process of its own, and
stopped at exit; `SPINE_TEST_AZURITE_URL` (an account URL such as
`http://127.0.0.1:10000/devstoreaccount1`) points the tests at one that already runs instead.
Each factory call gets a container of its own, deleted afterwards. The account is Azurite's
well-known development account.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from azure.storage.blob.aio import ContainerClient

from adapters.azure_blob.objects import AzureBlobObjectStore
from domain.ports import ObjectStore
from tests.backends import OBJECTS, UNREACHABLE_OBJECTS, ObjectsUnderTest
from tests.conftest import unavailable
from tests.peers import await_ready, free_port, listening

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every copy): no secret
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
PART_SIZE = 1024 * 1024
_lock = threading.Lock()
_peer: dict[str, str | None] = {}


def command() -> Path | None:
    configured = os.environ.get("SPINE_TEST_AZURITE_BLOB")
    found = Path(configured) if configured else ROOT / ".peers/azurite/node_modules/.bin/azurite-blob"
    return found if found.exists() else None


def start_azurite() -> tuple[subprocess.Popen[bytes], str, Path]:
    """Azurite's blob service on a free port: the process, the account URL and its data folder.
    RuntimeError with the reason it did not start."""
    azurite = command()
    if azurite is None or shutil.which("node") is None:
        raise RuntimeError("Azurite is not installed (run .ci/peers/azurite.sh; it needs node)")
    port = free_port()
    location = Path(tempfile.mkdtemp(prefix="azurite-"))
    process = subprocess.Popen(
        [str(azurite), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
         "--skipApiVersionCheck", "--loose", "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    failure = await_ready(process, listening(port), 60)
    if failure is not None:
        stop(process, location)
        raise RuntimeError(f"Azurite failed: {failure}")
    return process, f"http://127.0.0.1:{port}/{ACCOUNT}", location


def stop(process: subprocess.Popen[bytes], location: Path) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    shutil.rmtree(location, ignore_errors=True)


def account_url() -> str:
    """The peer's account URL, starting it on first use; skips (fails under CI=true) when it cannot run."""
    with _lock:
        if not _peer:
            url = os.environ.get("SPINE_TEST_AZURITE_URL")
            if url:
                _peer.update(url=url, reason=None)
            else:
                try:
                    process, url, location = start_azurite()
                    atexit.register(stop, process, location)
                    _peer.update(url=url, reason=None)
                except RuntimeError as exc:
                    _peer.update(url=None, reason=str(exc))
    url = _peer["url"]
    if url is None:
        unavailable(f"Azurite cannot run here: {_peer['reason']}")
    return url


@asynccontextmanager
async def container(url: str) -> AsyncIterator[ContainerClient]:
    """A fresh container on the account at `url`; deleted afterwards."""
    async with ContainerClient(url, f"spine-test-{uuid.uuid4().hex[:16]}", credential=KEY) as client:
        await client.create_container()
        try:
            yield client
        finally:
            await client.delete_container()


@asynccontextmanager
async def _azure_objects(_: Path) -> AsyncIterator[ObjectsUnderTest]:
    url = await anyio.to_thread.run_sync(account_url)
    async with (
        container(url) as client,
        AzureBlobObjectStore(
            url, client.container_name, account_key=KEY, prefix="tests/", part_size=PART_SIZE
        ) as store,
    ):

        async def leftovers() -> list[str]:
            # staged blocks nobody committed are invisible (the service drops them): only blobs count
            return []

        yield ObjectsUnderTest(store=store, part_size=PART_SIZE, leftovers=leftovers, signs=True)


@asynccontextmanager
async def _azure_down() -> AsyncIterator[ObjectStore]:
    url = f"http://127.0.0.1:{free_port()}/{ACCOUNT}"  # nothing listens there
    async with AzureBlobObjectStore(url, "nowhere", account_key=KEY) as store:
        yield store


OBJECTS["azure_blob"] = _azure_objects
UNREACHABLE_OBJECTS["azure_blob"] = _azure_down
