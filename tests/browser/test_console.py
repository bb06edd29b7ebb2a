"""The operator console in real headless Chromium, against a real `spine serve` process.

An operator signs in with the bootstrap token, makes a tenant, a project and a surface through
the forms, writes a route through the switch form (and sees a racing change refused by its
expected version), follows the tenant's log live through a server restart (each event once),
rebuilds a view and watches it finish; a member's token sees the admin pages answer 403, as
messages. Everything the console does goes through the public API the test could call itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from tests.browser.cdp import chromium
from tests.browser.console import Console, admin_token, append, member_token
from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def console_of(tmp_path: Path) -> AsyncIterator[tuple[SpineServer, httpx.AsyncClient, Console]]:
    """`spine serve` (provisioned: tenant t1, project p1, a member u1), an HTTP client to it, and
    the console open in Chromium."""
    async with (
        SpineServer(tmp_path / "data", tmp_path).running() as spine,
        httpx.AsyncClient(base_url=spine.url, timeout=10) as http,
        chromium(tmp_path) as page,
    ):
        console = Console(page, spine.url)
        await console.open()
        yield spine, http, console


async def test_an_operator_runs_spine_from_the_console(tmp_path: Path) -> None:
    with anyio.fail_after(300):
        async with console_of(tmp_path) as (spine, http, console):
            admin = await admin_token(http, spine.data_dir)
            as_admin = {"Authorization": f"Bearer {admin}"}
            await console.sign_in(admin)
            assert "t_system" in await console.shows("#who", "system admin")
            # The token is in this tab's session storage only: never local storage, never the URL.
            kept = await console.page.evaluate(
                "({session: sessionStorage.getItem('spine.console.token'), local: localStorage.length,"
                " url: location.href})"
            )
            assert (kept["session"], kept["local"]) == (admin, 0)
            assert admin not in kept["url"]
            unlabelled = {"sign-in": await console.unlabelled()}

            # A tenant, then its project, surface and an admin member, through the forms
            said = await console.submit("New tenant", {"tenant_id": "acme", "name": "Acme", "mode": "lab"})
            assert said.startswith("Created tenant acme (lab)"), said
            await console.shows("#tenant-list", "acme")
            unlabelled["tenants"] = await console.unlabelled()
            await console.click('#tenant-list a[href="#/tenants/acme"]')
            await console.shows("main h1", "Tenant acme")
            said = await console.submit("New project", {"project_id": "demo", "name": "Demo"})
            assert said.startswith("Created project demo"), said
            said = await console.submit("New surface", {"surface_id": "web", "name": "Web"})
            assert said.startswith("Created surface web"), said
            said = await console.submit("Add a member", {"user_id": "ops", "role": "admin"})
            assert said == "ops is now admin of acme.", said
            tenant = (await http.get("/v1/tenants/acme", headers=as_admin)).json()
            assert [p["project_id"] for p in tenant["projects"]] == ["demo"]
            assert tenant["members"] == {"ops": "admin"}
            unlabelled["tenant"] = await console.unlabelled()

            # A route through the switch form: in the table, the history and the diagnostics
            await console.go("routes/acme", title="Routes of acme")
            route = {
                "resource_kind": "event_spine",
                "tenant_id": "acme",
                "env": "dev",
                "project_id": "*",
                "backend_type": "sqlite",
                "config": '{"path": "acme.db"}',
                "switch_rationale": "its own file",
                "expected_version": "0",
            }
            said = await console.submit("Write a route", route)
            assert said == "Wrote event_spine of acme (dev, project *) → sqlite: version 1.", said
            assert "acme.db" in await console.shows("#route-table", "acme.db")
            assert "its own file" in await console.shows("#route-history", "its own file")
            await console.shows("#route-diagnostics", "sqlite")
            unlabelled["routes"] = await console.unlabelled()

            # Another operator changes the route after the form was filled: the form's write,
            # which expects the version it read, is refused rather than undoing theirs.
            switch = '#route-table button[aria-label="Switch event_spine of acme/dev/*"]'
            await console.click(switch)  # fills the form with the route and its version
            meanwhile = {**route, "config": {"path": "theirs.db"}, "switch_rationale": "a colleague"}
            del meanwhile["expected_version"]
            assert (await http.put("/v1/routes", json=meanwhile, headers=as_admin)).status_code == 200
            said = await console.submit("Write a route", {"config": '{"path": "mine.db"}'})
            assert said.startswith("409 routing.version_conflict:"), said
            await console.click("form[aria-label='Filter routes'] button")  # read the registry again
            await console.shows("#route-table", "theirs.db")
            await console.click(switch)
            said = await console.submit(
                "Write a route", {"config": '{"path": "mine.db"}', "switch_rationale": "mine"}
            )
            assert (
                said == "Switched event_spine of acme (dev, project *) from sqlite to sqlite: version 3."
            ), said
            history = await console.shows("#route-history", "mine")
            assert "a colleague" in history

            # A token for the tenant's admin, minted and used in the console: the tenant's log
            await console.go("tenants/acme", title="Tenant acme")
            await console.submit("Mint a token", {"user_id": "ops"}, message=False)
            await console.shows("main", "It is shown once")
            await console.click("#use-token")
            await console.shows("#who-tenant", "acme")
            await console.shows("main h1", "Log")
            ops = {
                "Authorization": f"Bearer {await member_token(http, admin, 'acme', 'ops')}",
                "X-Project-Id": "demo",
                "X-Surface-Id": "web",
            }
            await append(http, ops, "notes", "before-1", "before-2")
            await console.submit("Choose the partition", {"project": "demo", "surface": "web"}, message=False)
            await console.tail_shows("before-2")
            await console.shows("#tail-state", "live")

            await append(http, ops, "notes", "live-1")
            await console.tail_shows("live-1")

            # The server restarts under the page: the tail resumes after the last event it showed.
            await spine.kill()
            await spine.start()
            last = await append(http, ops, "notes", "after-restart")
            await console.tail_shows("after-restart")
            shown = await console.tail()
            assert [event_id for _, event_id in shown] == ["before-1", "before-2", "live-1", "after-restart"]
            assert [position for position, _ in shown] == [1, 2, 3, last]

            # Pause, an event while paused, resume: it arrives once, after what was shown
            await console.click("#tail-pause")
            await console.shows("#tail-state", "paused")
            await append(http, ops, "notes", "while-paused")
            await console.click("#tail-resume")
            await console.tail_shows("while-paused")
            assert [event_id for _, event_id in await console.tail()][-2:] == [
                "after-restart",
                "while-paused",
            ]
            unlabelled["log"] = await console.unlabelled()

            # The log by cursor, and one stream's versions
            await console.submit("Read events", {"after": "1", "limit": "2"}, message=False)
            page = await console.shows("#events-page", "Head 5")
            assert "Positions 2\N{EN DASH}3" in page
            assert "before-2" in page
            assert "live-1" in page
            await console.click("#events-page table button")
            versions = await console.shows("#stream-page", "Stream notes is at version 5")
            assert "while-paused" in versions

            # A view of the partition, rebuilt from the console until the new generation serves
            written = await http.put("/v1/memory/greeting", json={"value": "hello"}, headers=ops)
            assert written.status_code == 200, written.text
            await console.go("projections", title="Projections")
            rebuild = 'button[aria-label="Rebuild memory of acme/dev/demo"]'
            await console.page.wait_for(f"document.querySelector({rebuild!r})", seconds=60)
            await console.click(rebuild)
            views = await console.shows("#views", "swapped")
            assert "generation 1 serves" in views or "generation 2 serves" in views, views
            unlabelled["projections"] = await console.unlabelled()

            # The switch is in the tenant's audit trail, which its admin searches
            await console.go("audit", title="Audit")
            await console.submit(
                "Search the audit records", {"action": "route.backend_switched"}, message=False
            )
            records = await console.shows("#audit-records", "route.backend_switched")
            assert "admin" in records
            unlabelled["audit"] = await console.unlabelled()
            await console.go("metrics", title="Metrics")
            await console.shows("#metric-cards", "Append rate")
            unlabelled["metrics"] = await console.unlabelled()

            # Back to the system admin, whose routes page shows every tenant's
            await console.click("#who button")  # "Back to admin @ t_system"
            await console.shows("#who-tenant", "t_system")
            problems = [line for line in console.page.console if "uncaught" in line]
            assert problems == [], problems
            assert {page: controls for page, controls in unlabelled.items() if controls} == {}


async def test_a_member_sees_the_admin_pages_refused_as_messages(tmp_path: Path) -> None:
    """A member of t1 signs in: every admin page says 403 with its error code, none is blank; the
    data pages, which a member may read, work."""
    with anyio.fail_after(180):
        async with console_of(tmp_path) as (spine, http, console):
            token = spine.headers["Authorization"].removeprefix("Bearer ")
            await console.sign_in(token)
            await console.shows("#who", "member")

            refused = "403 auth.forbidden: this needs a"  # a system administrator, or t1's administrator
            assert refused in await console.shows("#tenant-list", "403 auth.forbidden")
            await console.go("routes", title="Routes")
            assert refused in await console.shows("#route-table", "403")
            assert refused in await console.shows("#route-history", "403")
            assert refused in await console.shows("#route-diagnostics", "403")
            said = await console.submit("Write a route", {"tenant_id": "t1"})
            assert said == "403 auth.forbidden: this needs a system administrator", said  # writing a route
            await console.go("projections", title="Projections")
            assert refused in await console.shows("main", "403 auth.forbidden")
            await console.go("tenants/t1", title="Tenant t1")
            assert refused in await console.shows("main", "403 auth.forbidden")

            # What a member may read: their partition's log, and their own audit records
            await append(http, spine.headers, "notes", "mine")
            await console.go("log", title="Log")
            await console.submit("Choose the partition", {"project": "p1", "surface": "web"}, message=False)
            await console.tail_shows("mine")
            await console.go("metrics", title="Metrics")
            await console.shows("#metric-cards", "Append rate")
