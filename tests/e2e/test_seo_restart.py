"""SEO config through a real `spine serve`: what was acknowledged is read back after a stop and a
start on the same data dir, and after a SIGKILL; page versions go on from where they were."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e

HOME = {
    "title": "Acme — rockets",
    "description": "Rockets and launch pads.",
    "canonical_url": "https://acme.example/",
    "robots": "index, follow",
    "open_graph": {"og:title": "Acme"},
    "structured_data": {"@context": "https://schema.org", "@type": "Organization", "name": "Acme"},
}


@pytest.fixture
def server(server: SpineServer) -> SpineServer:
    server.headers = {**server.headers, "X-App-Id": "app1"}  # provisioning made app1; the routes need it
    return server


async def configs(http: httpx.AsyncClient, headers: dict[str, str], position: str) -> dict[str, Any]:
    """Every config of the caller's app and surface, by page, once the view reflects `position`."""
    waited = {**headers, "X-Spine-Min-Position": position}
    listed = await http.get("/v1/seo", headers=waited)
    assert listed.status_code == 200, listed.text
    found = {}
    for summary in listed.json()["pages"]:
        answer = await http.get(f"/v1/seo/{summary['page']}", headers=waited)
        assert answer.status_code == 200, answer.text
        found[summary["page"]] = answer.json()
    return found


async def test_configs_survive_a_stop_a_start_and_a_kill(server: SpineServer) -> None:
    headers = server.headers
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for page, body in (("home", HOME), ("about", {"title": "About"}), ("gone", {"title": "Gone"})):
            assert (await http.put(f"/v1/seo/{page}", json=body, headers=headers)).status_code == 200
        second = await http.put(
            "/v1/seo/about", json={"title": "About us", "expected_version": 1}, headers=headers
        )
        assert second.json()["version"] == 2
        deleted = await http.delete("/v1/seo/gone", headers=headers)
        assert deleted.status_code == 200, deleted.text
        position = deleted.headers["x-spine-position"]
        before = await configs(http, headers, position)
    assert sorted(before) == ["about", "home"]
    assert {k: before["home"][k] for k in HOME} == HOME
    assert (before["about"]["title"], before["about"]["version"]) == ("About us", 2)

    await server.stop()
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await configs(http, headers, position) == before
        stale = await http.put(
            "/v1/seo/about", json={"title": "late", "expected_version": 1}, headers=headers
        )
        assert (stale.status_code, stale.json()["error_code"]) == (409, "seo_config.version_conflict")
        third = await http.put(
            "/v1/seo/about", json={"title": "About, again"}, headers={**headers, "If-Match": '"2"'}
        )
        assert third.json()["version"] == 3, third.text
        back = await http.put("/v1/seo/gone", json={"title": "Back"}, headers=headers)
        assert back.json()["version"] == 3  # saved, deleted, saved: the stream's versions survived
        position = back.headers["x-spine-position"]
        after_writes = await configs(http, headers, position)
    assert (after_writes["about"]["title"], after_writes["gone"]["title"]) == ("About, again", "Back")

    await server.restart()  # SIGKILL, then start again
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await configs(http, headers, position) == after_writes
