"""A page on another origin follows Spine in real headless Chromium, with nothing but spine.js.

`spine serve` runs as a real process; the page, served from another port (another origin), imports
`/v1/client.js`, trades its member token for short stream tickets through `fetch`, and follows
with the browser's own EventSource. Events are appended before the page opens, while it follows,
after its first ticket expired, and across a restart of the server; the page must show each one
exactly once, in order. The figures are printed, and a screenshot is kept for humans.

The others: a page that never notices its tickets expire (Spine's refusal must bring a new one),
`append` and `read` from a page, the README's page as written, and an origin no app lists.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.browser.cdp import Page, chromium
from tests.browser.pages import PageServer, page_server
from tests.e2e.test_kill_restart import TENANT, SpineServer

pytestmark = pytest.mark.e2e

TICKET_SECONDS = 3  # short, so tickets expire while the page follows
ROUND = 4  # appends per round, of BATCH events each
BATCH = 5
SECONDS = 60  # for the page to see what was appended; generous for a loaded CI machine

Seen = list[tuple[int, str]]  # (position, id), as the page recorded them


def follow_page(spine: SpineServer, *, ticket_seconds: int, clock_behind: bool = False) -> str:
    """The README's page, plus what the test reads: `window.seen`, `window.tickets`, `window.follower`.

    `clock_behind`: the page believes every ticket lasts a year (a clock far behind Spine's), so it
    never renews one in time; it must still resume when Spine refuses an expired ticket.
    """
    headers = {
        "Authorization": spine.headers["Authorization"],
        "X-Project-Id": spine.headers["X-Project-Id"],
        "X-Surface-Id": spine.headers["X-Surface-Id"],
        "Content-Type": "application/json",
    }
    return f"""<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Spine events</title>
<style>
  body {{ font: 14px system-ui, sans-serif; margin: 1.5rem; }}
  #status {{ color: #444; }}
  ol {{ columns: 4; font-family: monospace; }}
</style>
<h1>Spine events</h1>
<p id="status">connecting…</p>
<ol id="events"></ol>
<script type="module">
  import {{ follow }} from "{spine.url}/v1/client.js";

  const spine = {json.dumps(spine.url)};
  const headers = {json.dumps(headers)};
  window.seen = [];
  window.tickets = [];  // the expires_at of each ticket fetched
  window.problems = [];

  async function getTicket() {{
    const answer = await fetch(`${{spine}}/v1/stream-tickets`, {{
      method: "POST",
      headers,
      body: JSON.stringify({{ ttl_seconds: {ticket_seconds} }}),
    }});
    if (!answer.ok) throw new Error(`no ticket: ${{answer.status}}`);
    const ticket = await answer.json();
    window.tickets.push(ticket.expires_at);
    return {json.dumps(clock_behind)} ? {{ ...ticket, expires_at: "2999-01-01T00:00:00Z" }} : ticket;
  }}

  const list = document.getElementById("events");
  const status = document.getElementById("status");
  const show = () => {{
    const f = window.follower;
    status.textContent = `${{window.seen.length}} events, last position ${{f.position}}; ` +
      `${{f.tickets}} tickets, ${{f.connections}} connections`;
  }};
  window.follower = follow({{
    url: spine,
    getTicket,
    after: 0,
    onEvent(event) {{
      window.seen.push([event.position, event.id]);
      const item = document.createElement("li");
      item.value = event.position;
      item.textContent = `${{event.id}}`;
      list.append(item);
      show();
    }},
    onError(error) {{
      window.problems.push(String(error.message ?? error));
      show();
    }},
  }});
</script>
</html>
"""


@asynccontextmanager
async def spine_and_pages(tmp_path: Path) -> AsyncIterator[tuple[SpineServer, PageServer]]:
    """`spine serve`, provisioned, whose app lists the origin of a page server."""
    with page_server() as pages:
        async with SpineServer(tmp_path / "data", tmp_path).running() as spine:
            yield spine, pages


async def allow_origin(spine: SpineServer, origin: str) -> None:
    """The tenant admin lists the page's origin on the tenant's app."""
    key = (spine.data_dir / "secrets" / "bootstrap.key").read_text().strip()
    async with httpx.AsyncClient(base_url=spine.url, timeout=10) as http:
        answer = await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": key})
        admin = {"Authorization": f"Bearer {answer.json()['token']}"}
        body = {"name": "app1", "origins": [origin]}
        answer = await http.put(f"/v1/tenants/{TENANT}/apps/app1", json=body, headers=admin)
        assert answer.status_code in (200, 201), answer.text


async def append_round(spine: SpineServer, name: str) -> Seen:
    """ROUND appends of BATCH events, ids of our own; the (position, id) of each, as acknowledged."""
    appended: Seen = []
    async with httpx.AsyncClient(base_url=spine.url, headers=spine.headers, timeout=10) as http:
        for batch in range(ROUND):
            ids = [f"{name}-{batch}-{i}" for i in range(BATCH)]
            events = [{"id": event_id, "type": "tick", "data": {"round": name}} for event_id in ids]
            answer = await http.post("/v1/events", json={"stream": f"browser-{name}", "events": events})
            assert answer.status_code == 201, answer.text
            first = answer.json()["first_position"]
            appended += [(first + i, event_id) for i, event_id in enumerate(ids)]
    return appended


async def seen_by(page: Page, expected: Seen) -> Seen:
    """What the page has shown once it shows as many events as `expected`."""
    await page.wait_for(f"window.seen.length >= {len(expected)}", seconds=SECONDS)
    seen: list[list[Any]] = await page.evaluate("window.seen")
    return [(position, event_id) for position, event_id in seen]


async def log_of(spine: SpineServer) -> Seen:
    async with httpx.AsyncClient(base_url=spine.url, headers=spine.headers, timeout=10) as http:
        answer = await http.get("/v1/events", params={"after": 0, "limit": 1000})
        assert answer.status_code == 200, answer.text
        return [(event["position"], event["id"]) for event in answer.json()["events"]]


async def test_a_page_follows_across_ticket_expiry_and_a_restart(tmp_path: Path) -> None:
    with anyio.fail_after(240):
        async with spine_and_pages(tmp_path) as (spine, pages):
            await allow_origin(spine, pages.origin)
            url = pages.serve("/follow.html", follow_page(spine, ticket_seconds=TICKET_SECONDS))
            expected = await append_round(spine, "before")
            async with chromium(tmp_path) as page:
                await page.navigate(url)
                assert await seen_by(page, expected) == expected

                expected += await append_round(spine, "live")
                assert await seen_by(page, expected) == expected

                # Tickets expire while the page follows: it renews them, and sees what comes next.
                await page.wait_for(
                    "window.tickets.length >= 2 && Date.now() > Date.parse(window.tickets[0])",
                    seconds=SECONDS,
                )
                expected += await append_round(spine, "after-expiry")
                assert await seen_by(page, expected) == expected

                connections = await page.evaluate("window.follower.connections")
                await spine.kill()  # SIGKILL: the page's stream breaks mid-flight
                await spine.start()
                expected += await append_round(spine, "after-restart")
                seen = await seen_by(page, expected)
                figures = await page.evaluate(
                    "({tickets: window.follower.tickets, connections: window.follower.connections})"
                )
                screenshot = await page.screenshot(tmp_path / "follow-in-chromium.png")
                problems = await page.evaluate("window.problems")

            assert seen == expected, page.console
            assert seen == await log_of(spine)
            assert figures["tickets"] > 1
            assert figures["connections"] > connections, "the page resumed after the restart"
            print(
                f"\nbrowser follow: {len(seen)}/{len(expected)} events delivered, exactly once, in order; "
                f"{figures['tickets']} tickets fetched, {figures['connections'] - 1} reconnects; "
                f"{len(problems)} failed attempts reported\nscreenshot: {screenshot}"
            )


async def test_a_page_whose_tickets_expire_unnoticed_resumes_when_spine_refuses_one(tmp_path: Path) -> None:
    """The browser's own reconnect brings an expired ticket; Spine refuses it (401), the EventSource
    closes without saying why, and spine.js asks for a fresh ticket and resumes."""
    with anyio.fail_after(240):
        async with spine_and_pages(tmp_path) as (spine, pages):
            await allow_origin(spine, pages.origin)
            html = follow_page(spine, ticket_seconds=2, clock_behind=True)
            url = pages.serve("/follow.html", html)
            async with chromium(tmp_path) as page:
                await page.navigate(url)
                expected = await append_round(spine, "before")
                assert await seen_by(page, expected) == expected
                # The ticket is spent before the server is back: SIGTERM ends the stream cleanly.
                await page.wait_for("Date.now() > Date.parse(window.tickets[0])", seconds=SECONDS)
                await spine.stop()
                await spine.start()
                expected += await append_round(spine, "after-restart")
                assert await seen_by(page, expected) == expected
                tickets = await page.evaluate("window.follower.tickets")
                problems = await page.evaluate("window.problems")

            assert tickets >= 2
            assert any("closed" in problem for problem in problems), problems


async def test_append_and_read_from_a_page(tmp_path: Path) -> None:
    """spine.js's `append` and `read` with `fetch`: a token refreshed after a 401, a problem thrown
    as a SpineError, reads by ticket and by token, and an append that rides out a restart."""
    with anyio.fail_after(180):
        async with spine_and_pages(tmp_path) as (spine, pages):
            await allow_origin(spine, pages.origin)
            url = pages.serve("/client.html", "<!doctype html><title>client</title>")
            token = spine.headers["Authorization"].removeprefix("Bearer ")
            caller = {
                "url": spine.url,
                "project": spine.headers["X-Project-Id"],
                "surface": spine.headers["X-Surface-Id"],
            }
            async with chromium(tmp_path) as page:
                await page.navigate(url)
                setup = f"""(async () => {{
                    window.spine = await import("{spine.url}/v1/client.js");
                    window.caller = {json.dumps(caller)};
                    window.asked = [];  // getToken's hints
                    window.caller.getToken = async (hint) => {{
                        window.asked.push(Boolean(hint?.refresh));
                        return hint?.refresh ? {json.dumps(token)} : "a-stale-token";
                    }};
                    const fetchOf = window.fetch;  // counts the attempts that found no server
                    window.unreached = 0;
                    window.fetch = async (...args) => {{
                        try {{ return await fetchOf(...args); }}
                        catch (error) {{ window.unreached += 1; throw error; }}
                    }};
                    return true;
                }})()"""
                await page.evaluate(setup)

                appended = await page.evaluate(
                    """spine.append({...caller, stream: "notes", events: [
                        {type: "note.added", data: {n: 1}}, {type: "note.added", data: {n: 2}, id: "mine"}]})"""
                )
                assert (appended["first_position"], appended["last_position"]) == (1, 2)
                assert await page.evaluate("window.asked") == [False, True]

                conflict = await page.evaluate(
                    """spine.append({...caller, stream: "notes", expectedVersion: "no_stream",
                                     events: [{type: "note.added", data: {}}]})
                        .then(() => null, (e) => ({isSpineError: e instanceof spine.SpineError,
                                                   status: e.status, errorCode: e.errorCode}))"""
                )
                assert conflict == {
                    "isSpineError": True,
                    "status": 409,
                    "errorCode": "spine.version_conflict",
                }

                by_ticket = await page.evaluate(
                    f"""(async () => {{
                        const answer = await fetch("{spine.url}/v1/stream-tickets", {{method: "POST",
                            headers: {{Authorization: "Bearer {token}", "X-Project-Id": caller.project,
                                       "X-Surface-Id": caller.surface}}}});
                        const {{ticket}} = await answer.json();
                        return spine.read({{url: caller.url, ticket, after: 0}});
                    }})()"""
                )
                by_token = await page.evaluate("spine.read({...caller, after: 1, limit: 10})")
                assert [e["id"] for e in by_ticket["events"]][1:] == ["mine"]
                assert (by_ticket["head"], by_token["events"], by_token["next"]) == (
                    2,
                    by_ticket["events"][1:],
                    2,
                )

                # The server is down when the append starts; it retries until the server is back.
                await spine.kill()
                await page.evaluate(
                    """window.pending = spine.append({...caller, stream: "notes",
                        events: [{type: "note.added", data: {n: 3}}, {type: "note.added", data: {n: 4}}]}); true"""
                )
                await page.wait_for("window.unreached >= 1", seconds=SECONDS)
                await spine.start()
                resumed = await page.evaluate("window.pending")

            assert (resumed["first_position"], resumed["last_position"]) == (3, 4)
            log = await log_of(spine)
            assert [position for position, _ in log] == [1, 2, 3, 4]  # each once


def readme_page(spine: SpineServer) -> str:
    """The page of the README's "From a browser", pointed at this server and its member."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## From a browser\n", 1)[1]
    html = section.split("```html\n", 1)[1].split("```", 1)[0]
    token = spine.headers["Authorization"].removeprefix("Bearer ")
    for sample, actual in (
        ("http://localhost:8080", spine.url),
        ('const token = "…"', f'const token = "{token}"'),
        ('"demo"', json.dumps(spine.headers["X-Project-Id"])),
        ('"web"', json.dumps(spine.headers["X-Surface-Id"])),
    ):
        assert sample in html, f"the README's page no longer has {sample}"
        html = html.replace(sample, actual)
    return html


async def test_the_readme_page_follows_and_appends(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        async with spine_and_pages(tmp_path) as (spine, pages):
            await allow_origin(spine, pages.origin)
            url = pages.serve("/readme.html", readme_page(spine))
            appended = await append_round(spine, "curl")
            async with chromium(tmp_path) as page:
                await page.navigate(url)
                # what was appended before, then the page's own note
                items = await page.wait_for(
                    f"""(() => {{
                        const items = [...document.querySelectorAll("#events li")];
                        return items.length > {len(appended)} && items.map((li) => [li.value, li.textContent]);
                    }})()""",
                    seconds=SECONDS,
                )

            assert [position for position, _ in items] == list(range(1, len(appended) + 2))
            assert items[-1][1] == 'note.added {"text":"hello"}', page.console
            assert [event_id for _, event_id in await log_of(spine)][: len(appended)] == [
                event_id for _, event_id in appended
            ]


async def test_a_page_on_an_origin_no_app_lists_cannot_read_spine(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        async with spine_and_pages(tmp_path) as (spine, pages):
            await allow_origin(spine, "http://listed.example")
            url = pages.serve("/elsewhere.html", "<!doctype html><title>elsewhere</title>")
            headers = {**spine.headers, "Content-Type": "application/json"}
            attempt = f"""(async () => {{
                const module = await import("{spine.url}/v1/client.js");  // public: any origin
                const tries = {{}};
                for (const [name, path, method, body] of [
                    ["ticket", "/v1/stream-tickets", "POST", "{{}}"],
                    ["read", "/v1/events?after=0", "GET", undefined],
                ]) {{
                    try {{
                        const answer = await fetch("{spine.url}" + path, {{
                            method, body, headers: {json.dumps(headers)},
                        }});
                        tries[name] = `read ${{answer.status}}`;
                    }} catch (error) {{
                        tries[name] = error.name;
                    }}
                }}
                return {{ module: typeof module.follow, ...tries }};
            }})()"""
            async with chromium(tmp_path) as page:
                await page.navigate(url)
                outcome = await page.evaluate(attempt)

            assert outcome == {"module": "function", "ticket": "TypeError", "read": "TypeError"}


async def test_a_page_follows_the_flags_across_a_restart(tmp_path: Path) -> None:
    """`followFlags`: each flag change once, in order, evaluated for the ticket's caller (a rule
    for its surface), across a restart of the server."""
    with anyio.fail_after(180):
        async with spine_and_pages(tmp_path) as (spine, pages):
            await allow_origin(spine, pages.origin)
            url = pages.serve("/flags.html", "<!doctype html><title>flags</title>")
            async with chromium(tmp_path) as page:
                await page.navigate(url)
                await page.evaluate(
                    f"""(async () => {{
                        const spine = await import("{spine.url}/v1/client.js");
                        window.changes = [];
                        const getTicket = async () => (await fetch("{spine.url}/v1/stream-tickets",
                            {{method: "POST", headers: {json.dumps(spine.headers)}}})).json();
                        window.follower = spine.followFlags({{url: "{spine.url}", getTicket,
                            onChange: (c) => window.changes.push(
                                [c.position, c.key, c.version, c.value, c.reason, c.deleted])}});
                        return true;
                    }})()"""
                )
                rules = [{"surfaces": [spine.headers["X-Surface-Id"]], "value": "mine"}]
                expected: list[list[Any]] = []
                async with httpx.AsyncClient(base_url=spine.url, headers=spine.headers, timeout=10) as http:
                    for enabled, value, reason in ((True, "mine", "rule"), (False, "classic", "off")):
                        body = {"type": "string", "default": "classic", "enabled": enabled, "rules": rules,
                                "reason": reason}  # fmt: skip
                        answer = await http.put("/v1/flags/checkout", json=body)
                        written = answer.json()
                        expected.append(
                            [written["position"], "checkout", written["version"], value, reason, False]
                        )
                await page.wait_for(f"window.changes.length >= {len(expected)}", seconds=SECONDS)
                await spine.stop()
                await spine.start()
                async with httpx.AsyncClient(base_url=spine.url, headers=spine.headers, timeout=10) as http:
                    answer = await http.delete("/v1/flags/checkout", params={"reason": "retired"})
                    written = answer.json()
                expected.append(
                    [written["position"], "checkout", written["version"], None, "not_found", True]
                )
                await page.wait_for(f"window.changes.length >= {len(expected)}", seconds=SECONDS)
                changes = await page.evaluate("window.changes")
            assert changes == expected
