"""spine.js's `request` in real headless Chromium: any operation with the token alone, a public one
with none, answers decoded by their type, and refusals thrown at once — a 503 that names the
deployment's configuration included, which retrying could only repeat."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from tests.browser.cdp import chromium
from tests.e2e.test_kill_restart import SpineServer
from tests.provision import provision

pytestmark = pytest.mark.e2e


async def test_request_calls_any_operation_and_throws_lasting_refusals_at_once(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        async with (
            SpineServer(tmp_path / "data", tmp_path).running() as spine,
            httpx.AsyncClient(base_url=spine.url, timeout=10) as http,
            chromium(tmp_path) as page,
        ):
            key = (spine.data_dir / "secrets" / "bootstrap.key").read_text().strip()
            admin = (await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": key})).json()["token"]
            saas = await provision(http, tenant="t9", project="p9", mode="saas", bootstrap_key=key)
            member = spine.headers["Authorization"].removeprefix("Bearer ")
            await page.navigate(f"{spine.url}/console")  # a page of Spine's own origin
            await page.evaluate(
                f"""(async () => {{
                    window.spine = await import("{spine.url}/v1/client.js");
                    const fetchOf = window.fetch;
                    window.fetches = 0;
                    window.fetch = (...args) => {{ window.fetches += 1; return fetchOf(...args); }};
                    window.as = (token, more = {{}}) => ({{url: {json.dumps(spine.url)},
                                                          getToken: async () => token, ...more}});
                    window.refusal = (call) => {{
                        window.fetches = 0;
                        return call.then(() => null, (e) => ({{name: e.name, status: e.status,
                            errorCode: e.errorCode, fetches: window.fetches}}));
                    }};
                    return true;
                }})()"""
            )

            tenants = await page.evaluate(
                f"spine.request({{...as({json.dumps(admin)}), path: '/v1/tenants'}})"
            )
            assert "t1" in [tenant["tenant_id"] for tenant in tenants["tenants"]]
            metrics = await page.evaluate(
                f"spine.request({{url: {json.dumps(spine.url)}, path: '/metrics'}})"
            )
            assert "spine_appended_events_total" in metrics

            forbidden = await page.evaluate(
                f"refusal(spine.request({{...as({json.dumps(member)}), path: '/v1/routes'}}))"
            )
            assert forbidden == {
                "name": "SpineError",
                "status": 403,
                "errorCode": "auth.forbidden",
                "fetches": 1,
            }

            saas_caller = {"project": saas["X-Project-Id"], "surface": saas["X-Surface-Id"]}
            token = saas["Authorization"].removeprefix("Bearer ")
            unrouted = await page.evaluate(
                f"""refusal(spine.append({{...as({json.dumps(token)}, {json.dumps(saas_caller)}),
                    stream: "s", events: [{{type: "x", data: {{}}}}]}}))"""
            )
            assert unrouted == {
                "name": "SpineError",
                "status": 503,
                "errorCode": "event_spine.missing_route",
                "fetches": 1,
            }
