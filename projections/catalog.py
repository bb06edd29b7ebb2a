"""Every product view: its projection and the resource kind whose routed store keeps it.

Startup, `GET /v1/projections`, rebuilds and the controllers that read or write a view find it
here by name: this is the one place a projection is paired with its store's resource kind.
"""

from __future__ import annotations

from typing import NamedTuple

from domain.analytics import AnalyticsProjection
from domain.audit import AuditProjection
from domain.blackboard import BlackboardProjection
from domain.budget import BudgetProjection
from domain.flags import FlagsProjection
from domain.kpis import KpisProjection
from domain.memory import MemoryProjection
from domain.objects import ObjectsProjection
from domain.pages import PagesProjection
from domain.ports import Projection
from domain.realtime import RealtimeProjection
from domain.saves import SavesProjection
from domain.seo import SeoProjection
from domain.sessions import SessionsProjection
from domain.strategy_locks import StrategyLocksProjection
from domain.tables import TablesProjection


class View(NamedTuple):
    """A product view: the projection that builds it, and the resource kind that routes its store."""

    projection: Projection
    kind: str

    @property
    def name(self) -> str:
        return self.projection.name


VIEWS: dict[str, View] = {
    view.name: view
    for view in (
        View(MemoryProjection(), "memory_store"),
        View(SessionsProjection(), "memory_store"),  # sessions are session memory: the same store
        View(BlackboardProjection(), "blackboard_store"),
        View(BudgetProjection(), "budget_store"),
        View(SavesProjection(), "tabular_store"),
        View(StrategyLocksProjection(), "tabular_store"),  # saves and strategy locks share the store
        View(TablesProjection(), "tabular_store"),  # and so do the generic tables
        View(SeoProjection(), "seo_config_store"),
        View(PagesProjection(), "page_content_store"),
        View(AuditProjection(), "audit"),  # a project's writes, and its tenant's security trail
        View(AnalyticsProjection(), "analytics_store"),
        View(KpisProjection(), "kpi_store"),
        View(FlagsProjection(), "feature_flags"),
        View(RealtimeProjection(), "realtime_registry"),  # threads and canvases
        # The object index: the bytes' stores (S3, Azure Blob, a directory) hold no views, so it
        # lives beside the partition's log, wherever `event_spine` routes that (`app.views`).
        View(ObjectsProjection(), "event_spine"),
    )
}
