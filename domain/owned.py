"""Streams and event types that belong to a product route: the generic events API never writes them.

Their rules (a budget's hard limits, a blackboard entry's versions, whose memory a key is) are
checked by their own routes, and their projections trust the shapes those routes write. An event
appended around them could break a rule or stop a view, so `POST /v1/events` refuses them.
"""

from __future__ import annotations

from collections.abc import Iterable

OWNERS: dict[str, str] = {
    "memory": "/v1/memory/{key}",
    "session": "/v1/sessions/{id}/messages",
    "blackboard": "/v1/runs/{run}/blackboard/{key}",
    "budget": "/v1/budget",
    "audit": "/v1/audit",
    "save": "/v1/saves/{kind}",
    "strategy_lock": "/v1/strategy-locks/{id}/snapshots",
    "analytics": "/v1/analytics/events",
    "seo": "/v1/seo/{page}",
    "page_content": "/v1/pages/{page}/content",
    "table": "/v1/tables/{table}",
    "flag": "/v1/flags/{key}",
    "kpi": "/v1/kpis/{name}",
    "object": "/v1/objects/{key}",
    "thread": "/v1/threads",
    "canvas": "/v1/canvases",
}


def owning_route(stream: str, types: Iterable[str]) -> str | None:
    """The route that owns `stream` (`budget:…`) or one of `types` (`budget.…`), if any."""
    names = [stream.partition(":")[0], *(t.partition(".")[0] for t in types)]
    return next((OWNERS[name] for name in names if name in OWNERS), None)
