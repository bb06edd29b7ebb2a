"""Two `spine serve` processes on one data dir, woken through Redis: one projects each view (it
holds the lease), the other serves reads from what it writes; either can take over. They also
share one rate-limit budget, kept on Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e


@pytest.fixture
async def pair(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[SpineServer, SpineServer]]:
    servers = tuple(
        SpineServer(
            tmp_path / "data", tmp_path, args=("--redis-url", redis_url), env={"SPINE_INSTANCE_ID": name}
        )
        for name in ("one", "two")
    )
    try:
        for server in servers:
            await server.start()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            await server.stop()


async def test_writes_in_either_process_are_read_from_the_other(
    pair: tuple[SpineServer, SpineServer],
) -> None:
    one, two = pair
    await one.provision()
    headers = one.headers
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=10) as a,
        httpx.AsyncClient(base_url=two.url, timeout=10) as b,
    ):
        expected: dict[str, int] = {}
        position = "0"
        for i in range(40):
            writer = a if i % 2 else b
            answer = await writer.put(f"/v1/runs/r1/blackboard/k{i % 6}", json={"value": i}, headers=headers)
            assert answer.status_code == 200, answer.text
            expected[f"k{i % 6}"] = i
            position = answer.headers["x-spine-position"]
            reader = b if i % 2 else a  # the other process reads what this one just wrote
            read = await reader.get(
                f"/v1/runs/r1/blackboard/k{i % 6}", headers={**headers, "X-Spine-Min-Position": position}
            )
            assert (read.status_code, read.json()["value"]) == (200, i)
        boards = [
            (
                await c.get("/v1/runs/r1/blackboard", headers={**headers, "X-Spine-Min-Position": position})
            ).json()
            for c in (a, b)
        ]
        assert boards[0] == boards[1]
        assert {e["key"]: e["value"] for e in boards[0]["entries"]} == expected

        admin = await _admin(one)
        views = [(await c.get("/v1/projections", params={"name": "blackboard"}, headers=admin)).json()["projections"]
                 for c in (a, b)]  # fmt: skip
        leading = [view["leading"] for [view] in views]
        assert sorted(leading) == [False, True]  # exactly one of them projects the view

        await (one if leading[0] else two).stop()  # the projecting process goes away
        survivor, client = (two, b) if leading[0] else (one, a)
        answer = await client.put("/v1/runs/r1/blackboard/after", json={"value": "stop"}, headers=headers)
        read = await client.get("/v1/runs/r1/blackboard/after",
                                headers={**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]})  # fmt: skip
        assert read.status_code == 200, f"{read.text}\n{survivor.log()}"  # taken over within the read wait
        assert read.json()["value"] == "stop"


async def _admin(server: SpineServer) -> dict[str, str]:
    key = (server.data_dir / "secrets" / "bootstrap.key").read_text().strip()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": key})
        return {"Authorization": f"Bearer {answer.json()['token']}"}


async def test_two_processes_spend_one_rate_limit_budget(
    pair: tuple[SpineServer, SpineServer], redis_url: str
) -> None:
    """Writes alternate between the processes: together they get the limit, not twice it, and the
    `RateLimit` header counts down across both. The window is an hour, so nothing refills."""
    one, two = pair
    await one.provision()
    admin = await _admin(one)
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=10) as a,
        httpx.AsyncClient(base_url=two.url, timeout=10) as b,
    ):
        route = {"resource_kind": "rate_limit", "tenant_id": "t1", "env": "dev", "backend_type": "redis",
                 "config": {"url": redis_url, "prefix": f"test:{uuid.uuid4().hex}:"}}  # fmt: skip
        assert (await a.put("/v1/routes", json=route, headers=admin)).status_code in (200, 201)
        limits = {"classes": {"writes": {"limit": 6, "window_seconds": 3600}}}
        put = await a.put("/v1/tenants/t1/limits", json=limits, headers=admin)
        assert put.status_code == 200, put.text
        # The other process learns the route and the limits from the control plane's log (woken
        # through Redis); its limits answer says which position it has reached.
        for _ in range(200):  # polled: no request of ours can make the other process catch up
            seen = await b.get("/v1/tenants/t1/limits", headers=admin)
            if seen.json()["position"] >= put.json()["position"]:
                break
            await anyio.sleep(0.05)
        else:
            pytest.fail(f"the second process never saw the limits:\n{two.log()}")

        answers = []
        for i in range(10):
            body = {"stream": "s", "events": [{"type": "x.done", "data": {"i": i}}]}
            answers.append(await (a if i % 2 else b).post("/v1/events", json=body, headers=one.headers))
        assert [r.status_code for r in answers] == [201] * 6 + [429] * 4
        remaining = [r.headers["RateLimit"].split(";r=")[1].split(";")[0] for r in answers[:6]]
        assert remaining == ["5", "4", "3", "2", "1", "0"]
        assert all(int(r.headers["Retry-After"]) > 0 for r in answers[6:])
        assert {r.json()["error_code"] for r in answers[6:]} == {"rate_limit.exceeded"}
