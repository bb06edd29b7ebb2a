"""What the controllers are handed: the running adapters of this process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from adapters.object_grants import GrantSigner
from app.backends import Backends
from app.http.fanout import Fanout
from app.http.identity import IdentityService
from app.http.metrics import Metrics
from app.http.middleware import lab_warnings_of
from app.lab_warnings import LabWarnings
from app.settings import Settings
from app.spines import SpineRouter
from app.usecases.control_plane import ControlPlaneService
from app.views import ViewRouter
from domain.context import RequestContext
from domain.ports import EventSpine, Notifier
from projections.catalog import View
from projections.runtime import Runner


@dataclass(frozen=True, slots=True)
class Services:
    spine: EventSpine
    notifier: Notifier
    metrics: Metrics
    settings: Settings
    control: ControlPlaneService
    identity: IdentityService
    bootstrap_key: str | None
    spines: SpineRouter
    views: ViewRouter
    backends: Backends  # every opened backend, behind its circuit breaker
    clock: Callable[[], datetime]
    fanout: Fanout  # SSE followers' shared reader per partition (`app.http.fanout`)
    grants: GrantSigner  # object upload ids and download URLs (`domain.object_grants`)
    # Set when the server begins to shut down: followers end their streams instead of being cut.
    draining: anyio.Event = field(default_factory=anyio.Event)


@dataclass(frozen=True, slots=True)
class Call:
    """What a data or control-plane handler needs: who is asking, and the running services.

    One dependency rather than two: Litestar resolves sibling dependencies in a task group of
    their own, which costs more per request than the append itself. `spine()` and `view()` resolve
    the request's routed stores and note any lab fallback for the answer's `X-Spine-Warning`.
    """

    ctx: RequestContext
    services: Services
    warnings: LabWarnings  # what `send_lab_warnings` says in the answer's X-Spine-Warning

    async def spine(self) -> EventSpine:
        """The event spine the request's partition is routed to (a lab fallback is noted)."""
        return await self.services.spines.for_context(self.ctx, self.warnings)

    async def view(self, view: View) -> Runner:
        """The running `view` of the request's partition (a lab fallback is noted); a store
        without a route is `MissingRoute` (503), before anything is appended."""
        return await self.services.views.runner(view, self.ctx, warnings=self.warnings)


def provide_call(request: Request[Any, Any, Any]) -> Call:
    scope = request.scope  # its state directly: `request.state` wraps it in a new `State` on each access
    return Call(
        ctx=scope["state"]["ctx"], services=request.app.state.services, warnings=lab_warnings_of(scope)
    )


CallDep = NamedDependency[Call]
ServicesDep = NamedDependency[Services]


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services
