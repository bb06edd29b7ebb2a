"""A small Chrome DevTools Protocol driver: headless Chromium, one page, navigate, evaluate, screenshot.

Chromium is Debian's `chromium` (`.ci/peers/chromium.sh` installs it and exports SPINE_CHROMIUM).
One coroutine talks to the browser at a time: a command is sent and the answers are read until
its own comes back; events read on the way are kept (console messages, uncaught exceptions) to
explain a failure.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import unavailable

READY_SECONDS = 30
_DEVTOOLS = re.compile(r"DevTools listening on (ws://\S+)")
_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1024,768",
    "--remote-debugging-port=0",
)


class CdpError(Exception):
    """The browser refused a command, or the page's script threw."""


def chromium_binary() -> str:
    """SPINE_CHROMIUM, else `chromium` on the PATH; skipped locally (failed under CI) without it."""
    binary = os.environ.get("SPINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(binary, os.X_OK):
        unavailable(f"Chromium is not installed ({binary}); .ci/peers/chromium.sh installs it")
    return binary


class Page:
    """One tab, attached in flat mode: its commands carry its `sessionId` (the browser's, none)."""

    def __init__(
        self, socket: ClientConnection, session_id: str | None, ids: Iterator[int] | None = None
    ) -> None:
        self._socket = socket
        self._session = session_id
        self._ids = ids or itertools.count(1)  # one sequence per connection
        self.console: list[str] = []  # console messages and uncaught exceptions, as they came

    def attached(self, session_id: str) -> Page:
        """The page of a target attached on the same connection."""
        return Page(self._socket, session_id, self._ids)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message_id = next(self._ids)
        command: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if self._session is not None:
            command["sessionId"] = self._session
        await self._socket.send(json.dumps(command))
        while True:
            message = await self._receive()
            if message.get("id") == message_id:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def navigate(self, url: str) -> None:
        """Open `url` and wait for its load event (module scripts have run by then)."""
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CdpError(f"navigating to {url}: {answer['errorText']}")
        while (await self._receive()).get("method") != "Page.loadEventFired":
            pass

    async def evaluate(self, expression: str) -> Any:
        """The expression's value (awaited when it is a promise), as JSON would carry it."""
        answer = await self.send(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            thrown = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"{thrown}\nconsole:\n" + "\n".join(self.console[-20:]))
        return answer["result"].get("value")

    async def wait_for(self, condition: str, *, seconds: float) -> Any:
        """Evaluate `condition` in the page until it is truthy (checked every 50 ms, in the page),
        and return its value; fail after `seconds`."""
        return await self.evaluate(
            f"""new Promise((resolve, reject) => {{
                const deadline = Date.now() + {seconds * 1000};
                const check = () => {{
                    const value = ({condition});
                    if (value) resolve(value);
                    else if (Date.now() > deadline) reject(new Error("not within {seconds} s: " + {json.dumps(condition)}));
                    else setTimeout(check, 50);
                }};
                check();
            }})"""
        )

    async def screenshot(self, path: Path) -> Path:
        answer = await self.send("Page.captureScreenshot", {"format": "png"})
        await anyio.Path(path).write_bytes(base64.b64decode(answer["data"]))
        return path

    async def _receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self._socket.recv())
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            words = (str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            self.console.append(f"console.{params.get('type')}: {' '.join(words)}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.console.append(f"uncaught: {details.get('exception', {}).get('description', details)}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append(f"{entry.get('source')}.{entry.get('level')}: {entry.get('text')}")
        return message


@asynccontextmanager
async def chromium(workdir: Path) -> AsyncIterator[Page]:
    """Headless Chromium with one blank page, stopped on exit; its profile and log in `workdir`."""
    binary = chromium_binary()
    profile = workdir / "chromium-profile"
    log_path = workdir / "chromium.log"
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = await anyio.open_process(
            [binary, *_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        endpoint = await _devtools_endpoint(process, log_path)
        async with connect(endpoint, max_size=None) as socket:
            browser = Page(socket, session_id=None)
            target = await browser.send("Target.createTarget", {"url": "about:blank"})
            attached = await browser.send(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            page = browser.attached(attached["sessionId"])
            for domain in ("Page", "Runtime", "Log"):
                await page.send(f"{domain}.enable")
            yield page
    finally:
        with anyio.CancelScope(shield=True):
            process.terminate()
            with anyio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
            await process.aclose()


async def _devtools_endpoint(process: anyio.abc.Process, log_path: Path) -> str:
    """The browser's WebSocket, from the `DevTools listening on ws://…` line of its stderr.

    Polling its log is how one waits on another process to come up; it is bounded.
    """
    log = anyio.Path(log_path)
    found = None
    with anyio.move_on_after(READY_SECONDS):
        while process.returncode is None:
            found = _DEVTOOLS.search(await log.read_text(errors="replace"))
            if found:
                break
            await anyio.sleep(0.05)
    if found is None:
        tail = (await log.read_text(errors="replace"))[-3000:]
        unavailable(f"Chromium did not start (exit status {process.returncode}):\n{tail}")
    return found.group(1)
