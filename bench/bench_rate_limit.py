"""The rate limiter's added latency per request: the same read with and without a limit, one run.

    .venv/bin/python bench/bench_rate_limit.py [--requests 2000] [--rounds 3]
                                               [--redis-url redis://127.0.0.1:6379/15] [--smoke]

One Spine app in this process (Litestar's `AsyncTestClient`: no sockets of its own, so what is
measured is the app, the guard and the Redis round trip), with a fresh SQLite spine and two lab
tenants: `t1` without limits (the baseline), `t2` with a reads limit far above what the run sends,
routed to the Redis of `--redis-url` under a key prefix of this run's own. Rounds alternate the
two tenants' `GET /v1/events?limit=1`, each request timed alone; the limiter's own round trip
(`RedisRateLimiter.admit`, one `EVALSHA`) is timed beside them. Figures are p50/p99 per request;
"added" is limited minus baseline. Printed, never asserted; the script exits non-zero only when a
request was not answered 200 or the limited answers lacked the `RateLimit` header (the limiter was
not on the path). `--smoke` sends a few hundred requests, to show that the bench still works.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _env import header, load
from litestar.testing import AsyncTestClient

from adapters.redis.rate_limiter import RedisRateLimiter
from app.http.factory import create_app
from app.settings import Settings
from domain.rate_limits import Limit

BOOTSTRAP_KEY = "bench-bootstrap-key"
DEFAULTS = {"requests": 2000, "rounds": 3}
SMOKE = {"requests": 100, "rounds": 2}
GENEROUS = {"limit": 1_000_000, "window_seconds": 1}  # never reached: every request is admitted


async def provision(client: AsyncTestClient, tenant: str) -> dict[str, str]:
    admin_token = (await client.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": BOOTSTRAP_KEY})).json()
    admin = {"Authorization": f"Bearer {admin_token['token']}"}
    steps = [
        ("/v1/tenants", {"tenant_id": tenant, "name": tenant, "mode": "lab"}),
        (f"/v1/tenants/{tenant}/projects", {"project_id": "p1", "name": "p1"}),
        (f"/v1/tenants/{tenant}/surfaces", {"surface_id": "web", "name": "web"}),
        (f"/v1/tenants/{tenant}/members", {"user_id": "agent-1", "role": "agent"}),
    ]
    for path, body in steps:
        answer = await client.post(path, json=body, headers=admin)
        assert answer.status_code == 201, answer.text
    token = (
        await client.post(f"/v1/tenants/{tenant}/tokens", json={"user_id": "agent-1"}, headers=admin)
    ).json()
    return {"Authorization": f"Bearer {token['token']}", "X-Project-Id": "p1", "X-Surface-Id": "web"}


async def limit(client: AsyncTestClient, tenant: str, redis_url: str, prefix: str) -> None:
    admin_token = (await client.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": BOOTSTRAP_KEY})).json()
    admin = {"Authorization": f"Bearer {admin_token['token']}"}
    route = {"resource_kind": "rate_limit", "tenant_id": tenant, "env": "dev", "backend_type": "redis",
             "config": {"url": redis_url, "prefix": prefix}}  # fmt: skip
    for answer in (
        await client.put("/v1/routes", json=route, headers=admin),
        await client.put(
            f"/v1/tenants/{tenant}/limits", json={"classes": {"reads": GENEROUS}}, headers=admin
        ),
    ):
        assert answer.status_code in (200, 201), answer.text


async def timed(client: AsyncTestClient, headers: dict[str, str], n: int, limited: bool) -> list[float]:
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        answer = await client.get("/v1/events", params={"limit": 1}, headers=headers)
        seconds.append(time.perf_counter() - started)
        if answer.status_code != 200 or ("ratelimit" in answer.headers) != limited:
            sys.exit(f"unexpected answer {answer.status_code} (limited={limited}): {answer.text[:200]}")
    return seconds


async def limiter_alone(redis_url: str, prefix: str, n: int) -> list[float]:
    seconds = []
    async with RedisRateLimiter(redis_url, prefix=prefix) as limiter:
        for _ in range(n):
            started = time.perf_counter()
            await limiter.admit("alone", Limit(**GENEROUS))
            seconds.append(time.perf_counter() - started)
    return seconds


def p(seconds: list[float], q: int) -> float:
    return statistics.quantiles(seconds, n=100, method="inclusive")[q - 1] * 1e6


async def bench(args: argparse.Namespace, data_dir: Path) -> None:
    prefix = f"bench:rl:{uuid.uuid4().hex}:"
    settings = Settings(data_dir=data_dir, bootstrap_key=BOOTSTRAP_KEY)
    async with AsyncTestClient(create_app(settings)) as client:
        baseline_headers = await provision(client, "t1")
        limited_headers = await provision(client, "t2")
        await limit(client, "t2", args.redis_url, prefix)
        await timed(client, baseline_headers, 50, limited=False)  # warm-up: first opens, caches
        await timed(client, limited_headers, 50, limited=True)
        rounds: dict[str, list[float]] = {"baseline": [], "limited": []}
        for _ in range(args.rounds):
            rounds["baseline"] += await timed(client, baseline_headers, args.requests, limited=False)
            rounds["limited"] += await timed(client, limited_headers, args.requests, limited=True)
    alone = await limiter_alone(args.redis_url, prefix, args.requests)
    print(
        f"\n{args.rounds} round(s) x {args.requests} requests per case, GET /v1/events?limit=1, µs per request"
    )
    print(f"  {'case':<28}{'p50':>10}{'p99':>10}")
    for name, seconds in rounds.items():
        print(f"  {name:<28}{p(seconds, 50):>10.0f}{p(seconds, 99):>10.0f}")
    added50 = p(rounds["limited"], 50) - p(rounds["baseline"], 50)
    added99 = p(rounds["limited"], 99) - p(rounds["baseline"], 99)
    print(f"  {'added by the limiter':<28}{added50:>10.0f}{added99:>10.0f}")
    print(f"  {'limiter alone (one EVALSHA)':<28}{p(alone, 50):>10.0f}{p(alone, 99):>10.0f}")


def main(args: argparse.Namespace) -> None:
    logging.getLogger("spine").setLevel(logging.ERROR)  # the lab tenants' missing-route warnings
    print(header("bench_rate_limit: a request with and without the Redis rate limiter, same app and run"))
    print(f"  redis: {args.redis_url}; app in-process (AsyncTestClient), fresh SQLite spine")
    with tempfile.TemporaryDirectory(prefix="spine-bench-rl-") as directory:
        asyncio.run(bench(args, Path(directory)))
    print(f"  after the run: {load()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, help="requests per case and round (default 2000; smoke 100)")
    parser.add_argument("--rounds", type=int, help="rounds, each case once (default 3; smoke 2)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15", help="the Redis to limit on")
    parser.add_argument(
        "--smoke", action="store_true", help="a few hundred requests (an explicit flag still wins)"
    )
    arguments = parser.parse_args()
    for name, value in (SMOKE if arguments.smoke else DEFAULTS).items():
        if getattr(arguments, name) is None:
            setattr(arguments, name, value)
    main(arguments)
