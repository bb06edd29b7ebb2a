"""Screenshots of every page of the operator console, for the README and `docs/console/`.

    .venv/bin/python -m tests.browser.screenshots [--out docs/console]

Starts `spine serve` on a fresh data directory (in a temporary directory), gives it a little
life through the public API — tenants, routes and a switch, events, a view rebuilt, audit
records, appends running while the metrics are polled — then opens the console in headless
Chromium (`SPINE_CHROMIUM`, or `chromium` on the PATH) and saves one full-page PNG per page.
Not a test: it asserts nothing beyond what it needs to reach each page, and it waits in real time
for the charts to gather samples.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import anyio
import httpx

from tests.browser.cdp import chromium
from tests.browser.console import Console, admin_token, append, member_token
from tests.e2e.test_kill_restart import SpineServer

DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
CHART_SECONDS = 40  # of appends while the metrics and projections pages poll: their charts' samples


async def populate(http: httpx.AsyncClient, admin: str) -> dict[str, str]:
    """Tenants, routes, events and views through the API; the acme admin's data-route headers."""
    as_admin = {"Authorization": f"Bearer {admin}"}

    async def ok(method: str, path: str, body: object) -> None:
        answer = await http.request(method, path, json=body, headers=as_admin)
        assert answer.status_code in (200, 201), f"{method} {path}: {answer.text}"

    await ok("POST", "/v1/tenants", {"tenant_id": "acme", "name": "Acme Corp", "mode": "lab"})
    await ok("POST", "/v1/tenants", {"tenant_id": "globex", "name": "Globex", "mode": "saas"})
    for project, name in (("demo", "Demo"), ("checkout", "Checkout")):
        await ok("POST", "/v1/tenants/acme/projects", {"project_id": project, "name": name})
    await ok("POST", "/v1/tenants/globex/projects", {"project_id": "agents", "name": "Agents"})
    await ok("POST", "/v1/tenants/acme/surfaces", {"surface_id": "web", "name": "Web"})
    await ok("POST", "/v1/tenants/acme/surfaces", {"surface_id": "mobile", "name": "Mobile app"})
    origins = ["https://app.acme.example", "http://localhost:5173"]
    await ok("PUT", "/v1/tenants/acme/apps/storefront", {"name": "Storefront", "origins": origins})
    for user, role in (("ops", "admin"), ("alice", "member"), ("planner", "agent")):
        await ok("POST", "/v1/tenants/acme/members", {"user_id": user, "role": role})
    route = {"resource_kind": "event_spine", "tenant_id": "acme", "env": "dev", "backend_type": "sqlite"}
    await ok(
        "PUT", "/v1/routes", {**route, "config": {"path": "acme.db"}, "switch_rationale": "its own file"}
    )
    await ok(
        "PUT", "/v1/routes", {**route, "config": {"path": "acme-ssd.db"}, "switch_rationale": "faster disk"}
    )
    await ok("PUT", "/v1/routes", {**route, "resource_kind": "memory_store", "backend_type": "memory",
                                   "tier": "scratch", "switch_rationale": "session memory may be lost"})  # fmt: skip
    dynamodb = {"table": "globex", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:9",
                "connect_timeout_seconds": 0.5, "request_timeout_seconds": 1}  # fmt: skip
    await ok("PUT", "/v1/routes", {"resource_kind": "event_spine", "tenant_id": "globex", "env": "dev",
                                   "backend_type": "dynamodb", "config": dynamodb, "tier": "gold",
                                   "switch_rationale": "production-like"})  # fmt: skip
    ops = {
        "Authorization": f"Bearer {await member_token(http, admin, 'acme', 'ops')}",
        "X-Project-Id": "demo",
        "X-Surface-Id": "web",
    }
    for order in range(1, 9):
        await append(http, ops, f"order:{order}", f"order-{order}-placed")
    await append(http, ops, "notes", "note-1", "note-2", "note-3")
    for key in ("greeting", "plan", "last-run"):
        answer = await http.put(f"/v1/memory/{key}", json={"value": {"key": key}}, headers=ops)
        assert answer.status_code == 200, answer.text
    for action in ("deploy.started", "deploy.finished"):
        answer = await http.post("/v1/audit", json={"action": action, "resource": "release:42"}, headers=ops)
        assert answer.status_code == 201, answer.text
    answer = await http.post(
        "/v1/projections/memory/rebuild?wait=true",
        json={"tenant_id": "acme", "project_id": "demo"},
        headers=as_admin,
    )
    assert answer.status_code == 202, answer.text
    return ops


async def keep_appending(http: httpx.AsyncClient, headers: dict[str, str], seconds: float) -> None:
    """A few events a second, in waves, so that the rates and the tail move."""
    with anyio.move_on_after(seconds):
        for tick in range(10_000):
            batch = 1 + (tick % 16 if tick % 32 < 16 else 16 - tick % 16) // 2  # 1 up to 8 and down again
            await append(http, headers, "sensor:7", *(f"reading-{tick}-{i}" for i in range(batch)))
            await anyio.sleep(0.3)


async def follow_quietly(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """An SSE follower reading and dropping what it gets, until cancelled: the gauge has one."""
    async with http.stream("GET", "/v1/events/stream", headers=headers, timeout=None) as stream:
        async for _ in stream.aiter_lines():
            pass


async def main(out: Path) -> None:
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spine-console-") as scratch:
        work = Path(scratch)
        async with (
            SpineServer(work / "data", work).running() as spine,
            httpx.AsyncClient(base_url=spine.url, timeout=20) as http,
            chromium(work) as page,
        ):
            admin = await admin_token(http, spine.data_dir)
            ops = await populate(http, admin)
            console = Console(page, spine.url)
            shots: list[Path] = []

            await console.open("sign-in")
            await console.shows("main h1", "Sign in")
            shots.append(await console.screenshot(out / "sign-in.png"))

            await console.sign_in(admin)
            await console.shows("#who", "system admin")
            await console.shows("#tenant-list", "globex")
            shots.append(await console.screenshot(out / "tenants.png"))

            await console.go("tenants/acme", title="Tenant acme")
            await console.shows("main", "https://app.acme.example")
            shots.append(await console.screenshot(out / "tenant.png"))

            await console.go("routes", title="Routes")
            await console.shows("#route-diagnostics", "unreachable")
            shots.append(await console.screenshot(out / "routes.png"))

            await console.go("projections", title="Projections")
            await console.shows("#views", "swapped")
            async with anyio.create_task_group() as load:
                load.start_soon(keep_appending, http, ops, CHART_SECONDS / 2)
            shots.append(await console.screenshot(out / "projections.png"))

            await console.go("metrics", title="Metrics")
            async with anyio.create_task_group() as load:
                for _ in range(2):
                    load.start_soon(follow_quietly, http, ops)
                await keep_appending(http, ops, CHART_SECONDS)
                shots.append(await console.screenshot(out / "metrics.png"))
                load.cancel_scope.cancel()

            await console.go("tenants/acme", title="Tenant acme")
            await console.submit("Mint a token", {"user_id": "ops"}, message=False)
            await console.click("#use-token")
            await console.shows("#who-tenant", "acme")
            await console.submit("Choose the partition", {"project": "demo", "surface": "web"}, message=False)
            await console.shows("#tail-state", "live")
            await append(http, ops, "notes", "note-4")
            await console.tail_shows("note-4")
            await console.submit("Read events", {"after": "0", "limit": "8"}, message=False)
            await console.shows("#events-page", "Head")
            await console.click("#events-page table button")
            await console.shows("#stream-page", "Stream order:1")
            shots.append(await console.screenshot(out / "log.png"))

            await console.go("audit", title="Audit")
            await console.submit("Search the audit records", {"limit": "20"}, message=False)
            await console.shows("#audit-records", "deploy.finished")
            shots.append(await console.screenshot(out / "audit.png"))

    for shot in shots:
        print(shot)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="where the PNGs go (default: docs/console)")
    anyio.run(main, parser.parse_args().out)
