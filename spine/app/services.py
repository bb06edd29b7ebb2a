"""What the controllers are handed: the running adapters of this process."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
from litestar.datastructures import State
from litestar.di import NamedDependency

from spine.app.control import ControlPlaneService
from spine.app.identity import IdentityService
from spine.app.metrics import Metrics
from spine.app.settings import Settings
from spine.domain.ports import EventSpine, Notifier


@dataclass(frozen=True, slots=True)
class Services:
    spine: EventSpine
    notifier: Notifier
    metrics: Metrics
    settings: Settings
    control: ControlPlaneService
    identity: IdentityService
    bootstrap_key: str | None
    # Set when the server begins to shut down: followers end their streams instead of being cut.
    draining: anyio.Event = field(default_factory=anyio.Event)


ServicesDep = NamedDependency[Services]
SettingsDep = NamedDependency[Settings]


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings
