"""Two `spine serve` processes on one data dir, woken through Redis: one projects each view (it
holds the lease), the other serves reads from what it writes; either can take over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

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
