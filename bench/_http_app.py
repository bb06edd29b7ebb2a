"""The server `bench_http.py` drives: Spine's own app plus one no-op POST.

    .venv/bin/python bench/_http_app.py --port 8089 --data-dir /tmp/somewhere

`POST /bench/noop` takes the same JSON body and the same request context as `POST /v1/events`
and goes through the same app, middleware and server; it only skips the append itself. The gap
between the two is what the spine costs per request.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from litestar import Litestar, post
from litestar.params import JSONBody

from app.http.controllers.events import AppendBody
from app.http.factory import create_app
from app.http.server import serve_app
from app.http.services import CallDep
from app.logs import configure_logging
from app.settings import Settings


@post("/bench/noop", status_code=201)
async def noop(data: JSONBody[AppendBody], call: CallDep) -> dict[str, int]:
    return {"first_position": 0, "last_position": 0, "stream_version": len(data.events)}


def build(data_dir: Path) -> Litestar:
    app = create_app(Settings(data_dir=data_dir, bootstrap_key="bench-bootstrap-key"))
    app.register(noop)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    configure_logging("warning")  # as `spine serve` does; only problems reach stderr
    serve_app(build(args.data_dir), host="127.0.0.1", port=args.port)  # exactly as `spine serve` runs
