"""A deployment as the offline commands open it (`replay`, `export`, `import`, `retention run`): its
system spine and control plane, and the event spine each partition is routed to; and the options,
settings and error handling those commands share.

The system spine is named by `SPINE_SYSTEM_URL` (`--system-url`), default the data dir's
`spine.db`; the routing registry in it sends each partition to its backend, which is opened on
first use, as the service opens it. A lab tenant's partition without a route lives in the system
spine's own store, as the service's lab fallback has it, and so does every tenant's audit trail.
`keys` is the deployment's key ring (`app.key_ring`), for the commands that show personal fields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TypeVar

import anyio
import click
import msgspec

from adapters.local_notifier import LocalNotifier
from app.backends import EVENT_SPINE, Backends, lab_views_of, secrets_for
from app.cli import bars
from app.http.metrics import Metrics
from app.key_ring import KeyRing, routed_key_stores
from app.settings import Settings
from app.usecases.audit import AUDIT_PROJECT
from app.usecases.control_plane import ControlPlaneService
from domain.backend_url import Backend
from domain.control_plane import ControlPlane
from domain.errors import SpineError
from domain.partition import SYSTEM_PROJECT, Partition
from domain.ports import EventSpine
from domain.routing import Registry, resolve
from projections.control_plane import ControlPlaneProjector


class Deployment:
    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        system: EventSpine,
        control: ControlPlaneService,
        keys: KeyRing,
    ) -> None:
        self.settings = settings
        self.backends = backends
        self.system = system
        self.control = control
        self.keys = keys

    @property
    def state(self) -> ControlPlane:
        return self.control.state

    @property
    def registry(self) -> Registry:
        return self.control.projector.registry

    async def spine_of(
        self, partition: Partition, mode: str, registry: Registry | None = None
    ) -> tuple[EventSpine, Backend]:
        """The spine `partition` is routed to (by `registry`, default the deployment's), and its backend.

        Raises `MissingRoute` when a tenant of `mode` has no route there (lab: the system's store).
        A tenant's audit trail lives in the system spine, whatever its routes (`app.usecases.audit`),
        and so does the control plane's own partition."""
        if partition.project_id in (AUDIT_PROJECT, SYSTEM_PROJECT):
            return self.system, self.settings.system
        route = resolve(
            registry or self.registry,
            EVENT_SPINE,
            partition.tenant_id,
            partition.env,
            partition.project_id,
            mode,
        ).route
        backend = (
            self.settings.system
            if route is None
            else Backend(backend_type=route.backend_type, config=route.config)
        )
        return await self.backends.spine(backend), backend


def require_system_store(settings: Settings) -> None:
    """A SQLite system spine that is not there is a wrong `--data-dir`, not an empty deployment."""
    system = settings.system
    if system.backend_type == "sqlite" and not Path(system.config["path"]).exists():
        raise click.ClickException(f"no spine at {system.config['path']}")


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Deployment]:
    """The deployment `settings` name, its control plane caught up; every backend closed on exit."""
    async with AsyncExitStack() as stack:
        notifier = LocalNotifier()
        backends = Backends(
            stack=stack, notifier=notifier, metrics=Metrics(), secrets=secrets_for(settings),
            data_dir=settings.data_dir, synchronous=settings.sqlite_synchronous,
        )  # fmt: skip
        system = await backends.spine(settings.system)
        projector = ControlPlaneProjector(system, notifier, Partition.system(settings.default_env))
        await projector.catch_up()
        lab_views = await backends.views(lab_views_of(settings.system), "views")
        keys = KeyRing.following(routed_key_stores(projector, backends, lab_views), projector)
        yield Deployment(settings, backends, system, ControlPlaneService(system, projector), keys)


T = TypeVar("T")
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the embedded store lives [env SPINE_DATA_DIR; default ./spine-data].",
)
progress_option = click.option("--progress/--no-progress", default=None, help=bars.PROGRESS_HELP)


def offline_settings(data_dir: Path | None, system_url: str | None) -> Settings:
    settings = Settings.from_env(data_dir=data_dir, system_url=system_url)
    try:
        settings.system  # noqa: B018  # a wrong URL is a usage error, said before anything opens
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--system-url' / SPINE_SYSTEM_URL") from None
    return settings


def routed_by(deployment: Deployment) -> Callable[[Partition], Awaitable[EventSpine]]:
    async def spine_of(partition: Partition) -> EventSpine:
        tenant = deployment.state.tenant(partition.tenant_id)
        return (await deployment.spine_of(partition, tenant.mode))[0]

    return spine_of


def run_offline(main: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(main)
    except SpineError as exc:
        raise click.ClickException(f"{exc.error_code}: {exc.message}") from None
    except msgspec.ValidationError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}") from None
