"""Driving the operator console (`/console`) in headless Chromium as an operator would: through
its forms, buttons and links, reading what it shows. Shared by `test_console.py` and the
screenshots script (`python -m tests.browser.screenshots`)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx

from tests.browser.cdp import Page

SECONDS = 60  # for the page to show what it was asked; generous for a loaded CI machine


class Console:
    """The console of the Spine at `url`, in `page`."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url

    async def open(self, route: str = "") -> None:
        """Load the console (a fresh document), at `#/route`."""
        await self.page.navigate(f"{self.url}/console#/{route}")

    async def go(self, route: str, *, title: str) -> None:
        """Follow the hash route `#/route` and wait for its page, whose <h1> starts with `title`."""
        await self.page.evaluate(f"location.hash = {json.dumps('#/' + route)}; true")
        await self.shows("main h1", title)

    async def sign_in(self, token: str, *, then: str = "tenants") -> None:
        """Paste `token` on the sign-in page; wait until the header names its user."""
        await self.go(f"sign-in/{then}", title="Sign in")
        await self.submit("Sign in with a token", {"token": token}, message=False)
        user = json.loads(_claims(token))["sub"]
        await self.shows("#who-user", user)

    async def submit(self, form: str, values: dict[str, str], *, message: bool = True) -> str:
        """Fill the form labelled `form` and submit it, as a click on its button would; answer the
        message it shows (a success, or the problem Spine answered), unless it shows none."""
        selector = json.dumps(f'form[aria-label="{form}"]')
        fill = f"""(() => {{
            const form = document.querySelector({selector});
            if (!form) throw new Error("no form " + {json.dumps(form)});
            form.parentElement.querySelector(".form-out").replaceChildren();
            for (const [name, value] of Object.entries({json.dumps(values)})) {{
                const control = form.elements.namedItem(name);
                if (!control) throw new Error("no control " + name);
                control.value = value;
                control.dispatchEvent(new Event("input", {{bubbles: true}}));
            }}
            form.requestSubmit();
            return true;
        }})()"""
        await self.page.evaluate(fill)
        if not message:
            return ""
        out = f'document.querySelector({selector}).parentElement.querySelector(".form-out .message")'
        text: str = await self.page.wait_for(f"{out}?.innerText", seconds=SECONDS)
        return text

    async def click(self, selector: str) -> None:
        """Click the first element `selector` matches, once there is one."""
        await self.page.wait_for(f"document.querySelector({json.dumps(selector)})", seconds=SECONDS)
        await self.page.evaluate(f"document.querySelector({json.dumps(selector)}).click(); true")

    async def shows(self, selector: str, text: str, *, seconds: float = SECONDS) -> str:
        """Wait until the element `selector` shows `text`; answer all it shows."""
        found: str = await self.page.wait_for(
            f"(document.querySelector({json.dumps(selector)})?.innerText ?? '').includes({json.dumps(text)})"
            f" && document.querySelector({json.dumps(selector)}).innerText",
            seconds=seconds,
        )
        return found

    async def text(self, selector: str) -> str:
        shown: str = await self.page.evaluate(
            f"document.querySelector({json.dumps(selector)})?.innerText ?? ''"
        )
        return shown

    async def unlabelled(self) -> list[str]:
        """The page's controls that have no label (a <label>, or aria-label), as `tag name`."""
        found: list[str] = await self.page.evaluate(
            """[...document.querySelectorAll("input, select, textarea, button")]
                .filter((c) => c.type !== "hidden")
                .filter((c) => !(c.labels?.length || c.getAttribute("aria-label") ||
                                 (c.tagName === "BUTTON" && c.textContent.trim())))
                .map((c) => `${c.tagName.toLowerCase()} ${c.name ?? ""}`)"""
        )
        return found

    async def tail(self) -> list[tuple[int, str]]:
        """What the live tail shows: (position, event id) of each line, in order."""
        lines: list[list[Any]] = await self.page.evaluate(
            "[...document.querySelectorAll('#tail li')].map((li) => [Number(li.dataset.position), li.dataset.id])"
        )
        return [(position, event_id) for position, event_id in lines]

    async def tail_shows(self, event_id: str) -> None:
        line = json.dumps(f'#tail li[data-id="{event_id}"]')
        await self.page.wait_for(f"document.querySelector({line})", seconds=SECONDS)

    async def screenshot(self, path: Path, *, width: int = 1280) -> Path:
        """The whole page (not only the window), `width` CSS pixels wide, as a PNG."""
        metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False}
        await self.page.send("Emulation.setDeviceMetricsOverride", metrics)  # the height at this width
        height = await self.page.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        metrics["height"] = min(int(height), 4000)
        await self.page.send("Emulation.setDeviceMetricsOverride", metrics)
        try:
            return await self.page.screenshot(path)
        finally:
            await self.page.send("Emulation.clearDeviceMetricsOverride")


def _claims(token: str) -> str:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


async def admin_token(http: httpx.AsyncClient, data_dir: Path) -> str:
    """What `spine bootstrap` prints: a t_system admin's token, from the lab bootstrap key."""
    key = (data_dir / "secrets" / "bootstrap.key").read_text().strip()
    answer = await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": key})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


async def member_token(http: httpx.AsyncClient, admin: str, tenant: str, user: str) -> str:
    answer = await http.post(
        f"/v1/tenants/{tenant}/tokens", json={"user_id": user}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


async def append(http: httpx.AsyncClient, headers: dict[str, str], stream: str, *event_ids: str) -> int:
    """Append one event per id to `stream`; the last position."""
    events = [{"id": event_id, "type": "note.added", "data": {"note": event_id}} for event_id in event_ids]
    answer = await http.post("/v1/events", json={"stream": stream, "events": events}, headers=headers)
    assert answer.status_code == 201, answer.text
    position: int = answer.json()["last_position"]
    return position
