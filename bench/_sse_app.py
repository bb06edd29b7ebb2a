"""The servers `bench_sse.py` drives: Spine's own app, or a bare Litestar broadcaster.

    .venv/bin/python bench/_sse_app.py --port 8089 --data-dir /tmp/somewhere [--bare]

Spine: `create_app(Settings(…))` with the caps raised for thousands of followers of one tenant,
served by `app.http.server.serve_app` exactly as `spine serve` runs it.

Bare (`--bare`): the baseline. A Litestar app on the same server stack (`serve_app`: uvicorn,
the same HTTP protocol class and switch interval) with `POST /bare/events`, which takes the same
JSON body as `POST /v1/events`, stamps it into an `Event` of the same shape Spine stores, frames it
as Spine's SSE does and puts the frame on one asyncio queue per follower; and
`GET /bare/stream`, each follower's queue drained into a `Stream`. No identity, no log, no
middleware: what fan-out over HTTP costs when nothing else is done.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from _provision import BOOTSTRAP_KEY
from litestar import Litestar, get, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.response import Stream

from app.http.controllers.events import AppendBody
from app.http.factory import create_app
from app.http.fanout import sse_frame
from app.http.server import serve_app
from app.logs import configure_logging
from app.settings import Settings
from domain.events import AppendResult, Event, EventMeta, event_encoder

CAP = 20_000  # connections, requests and followers: the bench's followers must all get in


def spine(data_dir: Path) -> Litestar:
    return create_app(
        Settings(
            data_dir=data_dir,
            bootstrap_key=BOOTSTRAP_KEY,
            max_connections=CAP,
            max_requests_per_tenant=CAP,
            max_followers_per_tenant=CAP,
        )
    )


class Broadcaster:
    """Followers' queues; a position and stream versions, as a log would hand out."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[bytes]] = set()
        self.position = 0
        self.versions: dict[str, int] = {}
        self.meta = EventMeta(tenant_id="t1", env="dev", project_id="p1", mode="lab", surface_id="web")

    def publish(self, body: AppendBody) -> AppendResult:
        first = self.position + 1
        for new in body.events:
            self.position += 1
            version = self.versions[body.stream] = self.versions.get(body.stream, 0) + 1
            event = Event(
                id=new.id or str(uuid.uuid4()),
                type=new.type,
                stream=body.stream,
                version=version,
                position=self.position,
                data=new.data,
                meta=self.meta,
                recorded_at=datetime.now(UTC),
            )
            frame = sse_frame((self.position, new.type, event_encoder.encode(event)))
            for queue in self.queues:
                queue.put_nowait(frame)
        return AppendResult(
            first_position=first, last_position=self.position, stream_version=self.versions[body.stream]
        )

    async def follow(self) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield b"retry: 2000\n\n"
            while True:
                yield await queue.get()
        finally:
            self.queues.discard(queue)


def bare() -> Litestar:
    broadcaster = Broadcaster()

    @post("/bare/events", status_code=201)
    async def append(data: JSONBody[AppendBody]) -> AppendResult:
        return broadcaster.publish(data)

    @get("/bare/stream", media_type="text/event-stream")
    async def stream() -> Stream:
        return Stream(
            broadcaster.follow(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    # `serve_app` reads the connection cap and timeouts from the app's settings, as for Spine
    settings = Settings(max_connections=CAP)
    return Litestar(
        [append, stream, ready],
        state=State({"settings": settings}),
        openapi_config=None,
        logging_config=None,
        debug=False,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--bare", action="store_true", help="the bare broadcaster instead of Spine")
    args = parser.parse_args()
    configure_logging("warning")  # as `spine serve` does; only problems reach stderr
    serve_app(bare() if args.bare else spine(args.data_dir), host="127.0.0.1", port=args.port)
