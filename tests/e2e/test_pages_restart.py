"""Page content through a real `spine serve`: what was acknowledged is read back after a stop and
a start on the same data dir, and after a SIGKILL; page versions go on from where they were, and a
rollback after the restart still finds the published version it copies in the log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e

HERO = {"id": "hero", "type": "hero", "data": {"heading": "Rockets"}}
TEXT = {"id": "intro", "type": "text", "data": {"markdown": "We *ship*."}}


@pytest.fixture
def server(server: SpineServer) -> SpineServer:
    server.headers = {**server.headers, "X-App-Id": "app1"}  # provisioning made app1; the routes need it
    return server


async def snapshot(http: httpx.AsyncClient, headers: dict[str, str], position: str) -> dict[str, Any]:
    """Every page of the caller's app and surface: its published content, draft and history, once
    the view reflects `position`."""
    waited = {**headers, "X-Spine-Min-Position": position}
    listed = await http.get("/v1/pages", headers=waited)
    assert listed.status_code == 200, listed.text
    found: dict[str, Any] = {"pages": listed.json()["pages"]}
    for summary in listed.json()["pages"]:
        for path in ("content", "content/draft", "content/versions"):
            answer = await http.get(f"/v1/pages/{summary['page']}/{path}", headers=waited)
            found[f"{summary['page']}/{path}"] = (answer.status_code, answer.json())
    return found


async def ok(answer: Any) -> dict[str, Any]:
    response: httpx.Response = await answer
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body | {"_position": response.headers["x-spine-position"]}


async def test_pages_survive_a_stop_a_start_and_a_kill(server: SpineServer) -> None:
    headers = server.headers
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        await ok(
            http.put(
                "/v1/pages/home/content/draft", json={"title": "Home", "blocks": [HERO]}, headers=headers
            )
        )
        await ok(http.post("/v1/pages/home/publish", json={"expected_version": 1}, headers=headers))  # 2
        await ok(
            http.put("/v1/pages/home/content/draft", json={"blocks": [HERO, TEXT]}, headers=headers)
        )  # 3
        await ok(
            http.put("/v1/pages/about/content", json={"title": "About", "blocks": [TEXT]}, headers=headers)
        )
        last = await ok(http.post("/v1/pages/home/publish", json={}, headers=headers))  # 4, from 3
        position = last["_position"]
        before = await snapshot(http, headers, position)
    assert [p["page"] for p in before["pages"]] == ["about", "home"]
    assert before["home/content"][1]["blocks"] == [HERO, TEXT]
    assert [v["change"] for v in before["home/content/versions"][1]["versions"]] == [
        "draft", "published", "draft", "published"]  # fmt: skip
    assert before["about/content/draft"][0] == 404

    await server.stop()
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await snapshot(http, headers, position) == before
        stale = await http.post(
            "/v1/pages/home/rollback", json={"to": 2, "expected_version": 3}, headers=headers
        )
        assert (stale.status_code, stale.json()["error_code"]) == (409, "page_content.version_conflict")
        back = await ok(
            http.post("/v1/pages/home/rollback", json={"to": 2}, headers={**headers, "If-Match": '"4"'})
        )
        assert (back["version"], back["from_version"]) == (5, 2)
        drafted = await http.post("/v1/pages/home/rollback", json={"to": 3}, headers=headers)
        assert (drafted.status_code, drafted.json()["error_code"]) == (
            422,
            "page_content.not_a_published_version",
        )
        position = back["_position"]
        after_writes = await snapshot(http, headers, position)
    assert (after_writes["home/content"][1]["blocks"], after_writes["home/content"][1]["change"]) == (
        [HERO], "rolled_back")  # fmt: skip

    await server.restart()  # SIGKILL, then start again
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await snapshot(http, headers, position) == after_writes
        again = await ok(http.post("/v1/pages/home/publish", json={"version": 3}, headers=headers))
        assert (again["version"], again["from_version"]) == (6, 3)
