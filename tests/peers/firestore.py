"""The firestore backend's factories for the contract suites, against Google's Cloud Firestore emulator.

The emulator (a Java program of the Google Cloud SDK, `cloud-firestore-emulator.jar`) starts once
per test session, on a free port, the first time a firestore test asks for it, and stops when
the session ends. `SPINE_FIRESTORE_EMULATOR_JAR` names the jar (`.ci/peers/firestore.sh` exports
it); `SPINE_TEST_FIRESTORE_EMULATOR_HOST=HOST:PORT` uses an emulator already running instead.
Each factory call gets a project of its own, so tests never see each other's documents, and the
project's documents are deleted when the test ends. Where the emulator cannot run, the tests skip
with the reason, and fail under CI=true.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from adapters.firestore.spine import FirestoreSpine
from adapters.firestore.views import FirestoreViewStore
from domain.ports import EventSpine, Notifier, ViewStore
from tests.backends import SPINES, VIEWS
from tests.conftest import require_server, unavailable
from tests.peers import await_ready, free_port

JAR_ENV = "SPINE_FIRESTORE_EMULATOR_JAR"
HOST_ENV = "SPINE_TEST_FIRESTORE_EMULATOR_HOST"
DEFAULT_JAR = "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
START_SECONDS = 60.0

_lock = threading.Lock()
_emulator: dict[str, str] = {}  # "host" once started, "error" once it could not be


def emulator_host() -> str:
    """HOST:PORT of a running emulator: the one named by the environment, or ours, started once."""
    named = os.environ.get(HOST_ENV)
    if named:
        host, _, port = named.rpartition(":")
        require_server(host, int(port), "the Cloud Firestore emulator")
        return named
    with _lock:
        if "host" not in _emulator and "error" not in _emulator:
            try:
                _emulator["host"] = _start()
            except RuntimeError as exc:
                _emulator["error"] = str(exc)
    if "error" in _emulator:
        unavailable(_emulator["error"])
    return _emulator["host"]


def _start() -> str:
    jar = os.environ.get(JAR_ENV) or DEFAULT_JAR
    java = shutil.which("java")
    if not Path(jar).is_file():
        raise RuntimeError(
            f"the Cloud Firestore emulator is not installed ({jar} is missing); it ships only with the"
            " Google Cloud SDK (Debian package google-cloud-cli-firestore-emulator from Google's own apt"
            " repository): see .ci/peers/firestore.sh"
        )
    if java is None:
        raise RuntimeError(
            "the Cloud Firestore emulator needs Java (apt-get install openjdk-17-jre-headless)"
        )
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="firestore-emulator-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [java, "-Duser.language=en", "-cp", jar, MAIN_CLASS, "start", "--host=127.0.0.1", f"--port={port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    atexit.register(_stop, process, log.name)

    def answers() -> bool:  # it listens before it serves: ask for its root page
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    failure = await_ready(process, answers, START_SECONDS)
    if failure is None:
        return f"127.0.0.1:{port}"
    tail = Path(log.name).read_text(errors="replace")[-800:]
    raise RuntimeError(f"the Cloud Firestore emulator failed: {failure}: {tail}")


def _stop(process: subprocess.Popen[bytes], log: str) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    Path(log).unlink(missing_ok=True)


def _reset(host: str, project: str) -> None:
    """Delete every document of the test's project (the emulator's own reset endpoint)."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=30):
        pass


@asynccontextmanager
async def project_config() -> AsyncIterator[dict[str, object]]:
    """A route config for a project of its own on the emulator, emptied when the test ends."""
    host = emulator_host()
    project = f"spine-test-{uuid.uuid4().hex[:16]}"
    try:
        yield {"project": project, "emulator_host": host}
    finally:
        await anyio.to_thread.run_sync(_reset, host, project)


@asynccontextmanager
async def _firestore_spine(_: Path, notifier: Notifier) -> AsyncIterator[EventSpine]:
    async with project_config() as config, FirestoreSpine.from_config(config, notifier=notifier) as spine:
        yield spine


@asynccontextmanager
async def _firestore_views(_: Path) -> AsyncIterator[ViewStore]:
    async with project_config() as config, FirestoreViewStore.from_config(config) as views:
        yield views


SPINES["firestore"] = _firestore_spine
VIEWS["firestore"] = _firestore_views
