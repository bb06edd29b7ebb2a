"""Every product view: its projection and the resource kind whose routed store keeps it.

Startup, `GET /v1/projections` and rebuilds find views here by name.
"""

from __future__ import annotations

from domain.analytics import AnalyticsProjection
from domain.audit import AuditProjection
from domain.blackboard import BlackboardProjection
from domain.budget import BudgetProjection
from domain.memory import MemoryProjection
from domain.saves import SavesProjection
from domain.seo import SeoProjection
from domain.sessions import SessionsProjection
from domain.strategy_locks import StrategyLocksProjection
from projections.runtime import Projection

VIEWS: dict[str, tuple[Projection, str]] = {
    projection.name: (projection, kind)
    for projection, kind in (
        (MemoryProjection(), "memory_store"),
        (SessionsProjection(), "memory_store"),  # sessions are session memory: the same store
        (BlackboardProjection(), "blackboard_store"),
        (BudgetProjection(), "budget_store"),
        (SavesProjection(), "tabular_store"),
        (StrategyLocksProjection(), "tabular_store"),  # saves and strategy locks share the store
        (SeoProjection(), "seo_config_store"),
        (AuditProjection(), "audit"),  # a project's writes, and its tenant's security trail
        (AnalyticsProjection(), "analytics_store"),
    )
}
