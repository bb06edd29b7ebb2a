"""Every product view: its projection and the resource kind whose routed store keeps it.

Startup, `GET /v1/projections` and rebuilds find views here by name.
"""

from __future__ import annotations

from spine.domain.analytics import AnalyticsProjection
from spine.domain.audit import AuditProjection
from spine.domain.blackboard import BlackboardProjection
from spine.domain.budget import BudgetProjection
from spine.domain.memory import MemoryProjection
from spine.domain.saves import SavesProjection
from spine.domain.seo import SeoProjection
from spine.domain.sessions import SessionsProjection
from spine.domain.strategy_locks import StrategyLocksProjection
from spine.projections.runtime import Projection

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
