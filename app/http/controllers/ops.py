"""Unauthenticated operational endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import anyio
from litestar import Response, get

from app.http.services import ServicesDep
from domain.errors import BackendUnavailable, NotReady
from domain.partition import Partition
from domain.routing import missing_platform_defaults


@get("/health", summary="Liveness", tags=["ops"], opt={"public": True})
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", summary="Readiness: the event spine answers a read", tags=["ops"], opt={"public": True})
async def ready(services: ServicesDep) -> dict[str, str]:
    with anyio.move_on_after(services.settings.ready_timeout_seconds) as scope:
        await services.spine.head(Partition.system(services.settings.default_env))
    if scope.cancelled_caught:
        raise BackendUnavailable("event_spine", "the event spine did not answer in time")
    settings = services.settings
    if settings.deployment != "lab":
        missing = missing_platform_defaults(services.control.projector.registry, settings.default_env)
        if missing:
            raise NotReady(settings.default_env, missing)
    return {"status": "ready"}


@get(
    "/metrics",
    summary="Prometheus metrics",
    tags=["ops"],
    media_type="text/plain; version=0.0.4",
    opt={"public": True},
)
async def metrics(services: ServicesDep) -> Response[bytes]:
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
