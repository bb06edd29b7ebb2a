"""`create_app(settings)`: the one composition root of the HTTP service."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

import anyio
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from adapters.jwt_tokens import ExternalIssuer, TokenService
from adapters.local_notifier import LocalNotifier
from adapters.object_grants import GrantSigner
from adapters.redis.notifier import RedisNotifier
from adapters.stream_tickets import TicketSigner
from app.backends import Backends, lab_views_of, secrets_for
from app.http.allow import AllowPlugin
from app.http.controllers.analytics import AnalyticsController
from app.http.controllers.audit import AuditController
from app.http.controllers.blackboard import BlackboardController
from app.http.controllers.budget import BudgetController
from app.http.controllers.client_js import client_js
from app.http.controllers.console import console_asset, console_page
from app.http.controllers.control_plane import ModesController, TenantsController, bootstrap
from app.http.controllers.diagnostics import diagnostics
from app.http.controllers.erasure import ErasureController
from app.http.controllers.events import EventsController, StreamsController
from app.http.controllers.flags import FlagsController
from app.http.controllers.kpis import KpisController
from app.http.controllers.memory import MemoryController
from app.http.controllers.object_urls import ObjectDownloadsController, ObjectUploadsController
from app.http.controllers.objects import ObjectsController
from app.http.controllers.ops import health, metrics, ready
from app.http.controllers.pages import PagesController
from app.http.controllers.projections import projections, rebuild, snapshot
from app.http.controllers.rate_limits import RateLimitsController
from app.http.controllers.realtime import CanvasesController, ThreadsController
from app.http.controllers.retention import RetentionController
from app.http.controllers.routes import RoutesController
from app.http.controllers.saves import SavesController
from app.http.controllers.seo import SeoController
from app.http.controllers.sessions import SessionsController
from app.http.controllers.strategy_locks import StrategyLocksController
from app.http.controllers.stream_tickets import StreamTicketsController
from app.http.controllers.tables import TablesController
from app.http.cors import send_cors_headers
from app.http.errors import exception_handlers
from app.http.fanout import Fanout
from app.http.guards import run_guards
from app.http.identity import IdentityService, identity_guard
from app.http.json_limits import json_depth_guard
from app.http.limits import limits_middleware
from app.http.metrics import Metrics
from app.http.middleware import ObservedApp, echo_request_id, send_lab_warnings
from app.http.openapi import OpenAPIDeclarations, openapi_config
from app.http.paths import encoded_slash_guard
from app.http.rate_limits import rate_limit_guard, send_rate_limit_headers
from app.http.services import Services, provide_call, provide_services
from app.key_ring import KeyRing, routed_key_stores
from app.lab_secrets import lab_secret
from app.retention_job import run_forever
from app.settings import Settings
from app.spines import SpineRouter
from app.usecases.control_plane import ControlPlaneService
from app.views import ViewRouter
from domain.circuit_breaker import BreakerPolicy
from domain.partition import Partition
from domain.ports import Notifier
from projections.control_plane import ControlPlaneProjector


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None) -> Litestar:
    """The app; `clock` (timezone-aware now) is replaceable so tests can move time for TTLs."""
    settings = settings or Settings.from_env()
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            notifier: Notifier
            if settings.redis_url:
                notifier = await stack.enter_async_context(RedisNotifier(settings.redis_url))
            else:
                notifier = LocalNotifier()
            backends = Backends(
                stack=stack,
                notifier=notifier,
                metrics=app_metrics,
                secrets=secrets_for(settings),
                data_dir=settings.data_dir,
                synchronous=settings.sqlite_synchronous,
                breakers=BreakerPolicy(
                    failures=settings.breaker_failures, cool_down_seconds=settings.breaker_cool_down_seconds
                ),
                # a test's clock moves breakers' cool-downs too; real time is monotonic
                clock=time.monotonic if clock is None else (lambda: clock().timestamp()),
            )
            # A route naming the system's backend gets this very adapter (`Backends` opens each once).
            metered = await backends.spine(settings.system)
            projector = ControlPlaneProjector(metered, notifier, Partition.system(settings.default_env))
            await projector.catch_up()
            token_key = _lab_or(settings, settings.token_key, "token.key")
            tokens = TokenService(token_key, _external_issuer(settings))
            lab_views = await backends.views(lab_views_of(settings.system), "views")
            keys = KeyRing.following(routed_key_stores(projector, backends, lab_views), projector)
            spines = SpineRouter(lab_store=metered, projector=projector, backends=backends, keys=keys)
            # Background work (projection runners, the control-plane follower) ends before any
            # store closes: stores, even those opened later by requests, live in the outer stack.
            async with anyio.create_task_group() as background:
                services = Services(
                    spine=metered,
                    notifier=notifier,
                    metrics=app_metrics,
                    settings=settings,
                    control=ControlPlaneService(metered, projector),
                    identity=IdentityService(
                        tokens,
                        projector,
                        metered,
                        settings,
                        tickets=TicketSigner(token_key),
                        clock=clock or _now,
                    ),
                    bootstrap_key=_lab_or(settings, settings.bootstrap_key, "bootstrap.key"),
                    spines=spines,
                    views=ViewRouter(
                        lab_views=lab_views,
                        projector=projector,
                        spines=spines,
                        system_spine=metered,
                        backends=backends,
                        notifier=notifier,
                        metrics=app_metrics,
                        task_group=background,
                        poll_seconds=settings.poll_seconds,
                        instance_id=settings.instance_id,
                    ),
                    clock=clock or _now,
                    backends=backends,
                    fanout=Fanout(
                        notifier,
                        app_metrics,
                        poll_seconds=settings.poll_seconds,
                        heartbeat_seconds=settings.heartbeat_seconds,
                        buffer_events=settings.sse_buffer_events,
                    ),
                    grants=GrantSigner(token_key),
                )
                await background.start(services.fanout.run, services.draining)
                app.state.services = services
                background.start_soon(projector.follow, settings.poll_seconds)
                if settings.retention_interval_seconds:
                    background.start_soon(run_forever, services, settings.retention_interval_seconds)
                views = services.views
                app_metrics.watch_projections(
                    lambda: [(r.projection.name, max(r.head - r.position, 0)) for r in views.runners]
                )
                await views.start_known()  # restarts continue from checkpoints; nothing replays from 0
                try:
                    yield
                finally:
                    services.draining.set()
                    background.cancel_scope.cancel()

    return ObservedApp(
        metrics=app_metrics,  # and the access log: every request, routed or not
        answer_hooks=[echo_request_id, send_lab_warnings, send_cors_headers, send_rate_limit_headers],
        route_handlers=[
            EventsController,
            StreamsController,
            bootstrap,
            ModesController,
            TenantsController,
            RateLimitsController,
            RetentionController,
            ErasureController,
            RoutesController,
            MemoryController,
            SessionsController,
            BlackboardController,
            AuditController,
            BudgetController,
            SavesController,
            StrategyLocksController,
            TablesController,
            StreamTicketsController,
            AnalyticsController,
            SeoController,
            KpisController,
            PagesController,
            FlagsController,
            ObjectsController,
            ObjectUploadsController,
            ObjectDownloadsController,
            ThreadsController,
            CanvasesController,
            diagnostics,
            projections,
            rebuild,
            snapshot,
            client_js,
            console_page,
            console_asset,
            health,
            ready,
            metrics,
        ],
        # The token first: a body (slow or deep) is read only for a verified caller, in one of its
        # tenant's request slots; the identity guard checks the depth of what it decodes itself.
        # One hook runs the guards: Litestar copies the route handler for each of its `guards=`.
        # Rate limits once the caller is known, before its body is parsed (`app.http.rate_limits`).
        before_request=run_guards(encoded_slash_guard, identity_guard, rate_limit_guard, json_depth_guard),
        dependencies={
            "services": Provide(provide_services, sync_to_thread=False),
            "call": Provide(provide_call, sync_to_thread=False),
        },
        state=State({"settings": settings}),
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        middleware=[limits_middleware(settings)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        plugins=[OpenAPIDeclarations(), AllowPlugin()],
        logging_config=None,  # `spine serve` installs JSON logging; the app must not replace it
        debug=False,
    )


def begin_drain(app: Litestar) -> None:
    """Ask long-lived responses (SSE followers) to finish: the server is about to stop."""
    services: Services | None = app.state.get("services")
    if services is not None:
        services.draining.set()


def _lab_or(settings: Settings, configured: str | None, name: str) -> str | None:
    """A configured secret, else (in lab only) one the deployment makes for itself."""
    if configured is not None or settings.deployment != "lab":
        return configured
    return lab_secret(settings.data_dir, name)


def _external_issuer(settings: Settings) -> ExternalIssuer | None:
    if settings.jwt_issuer is None:
        return None
    return ExternalIssuer(
        settings.jwt_issuer, settings.jwt_audience, jwks_url=settings.jwks_url, jwks_file=settings.jwks_file
    )


def _now() -> datetime:
    return datetime.now(UTC)
