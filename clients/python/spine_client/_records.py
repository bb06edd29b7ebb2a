"""The calls of the views that record: budget usage and limits, audit records, analytics events.

Their writes take an idempotency `id`; each gets one here when none is given, so that a retry
(after a lost answer, a 503) is never counted twice. As for every view, a write's `position`
passed as `min_position` makes a later read wait until the view reflects it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from spine_client._calls import Call, call, min_position_header, new_event_id, present, segment
from spine_client.types import (
    AnalyticsCounts,
    AnalyticsEvents,
    BatchRecorded,
    Recorded,
    Records,
    UsageRecorded,
)

Time = str | datetime  # ISO 8601


def record_usage(
    amount: float,
    unit: str,
    *,
    cost_usd: float | None = None,
    model: str | None = None,
    run_id: str | None = None,
    id: str | None = None,  # the field's name on the wire
) -> Call[UsageRecorded]:
    """Record usage of a unit (402 `budget.exceeded` past a hard limit)."""
    sent = present(
        amount=amount, unit=unit, cost_usd=cost_usd, model=model, run_id=run_id, id=id or new_event_id()
    )
    return call("POST", "/v1/budget/usage", UsageRecorded, json=sent, idempotent=True)


def set_budget_limit(
    unit: str, period: Literal["day", "month", "total"], limit: float, *, hard: bool
) -> Call[dict[str, Any]]:
    """Set a unit's limit for a period: hard refuses usage past it, soft warns."""
    sent = {"unit": unit, "period": period, "limit": limit, "hard": hard}
    return call("PUT", "/v1/budget/limits", dict[str, Any], json=sent)


def get_budget(*, unit: str | None = None, min_position: int | None = None) -> Call[dict[str, Any]]:
    """Limits and totals of the current day, month and all time, per unit."""
    return call("GET", "/v1/budget", dict[str, Any], params={"unit": unit}, headers=_min(min_position))


def get_budget_ledger(
    *,
    after: int = 0,
    limit: int = 100,
    run_id: str | None = None,
    unit: str | None = None,
    min_position: int | None = None,
) -> Call[dict[str, Any]]:
    """Usage entries in order, by cursor: `{"entries": […], "next"}`."""
    params = {"after": after, "limit": limit, "run_id": run_id, "unit": unit}
    return call("GET", "/v1/budget/ledger", dict[str, Any], params=params, headers=_min(min_position))


def add_audit_record(
    action: str,
    resource: str,
    *,
    details: Mapping[str, Any] | None = None,
    id: str | None = None,
) -> Call[Recorded]:
    """Add an audit record of the caller's own (the actor is the token's user)."""
    sent = present(action=action, resource=resource, details=details, id=id or new_event_id())
    return call("POST", "/v1/audit", Recorded, json=sent, idempotent=True)


def list_audit_records(
    *,
    after: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    start: Time | None = None,
    end: Time | None = None,
    limit: int = 100,
    min_position: int | None = None,
) -> Call[Records]:
    """Records by time, oldest first (`start` inclusive, `end` exclusive); continue from `next`."""
    params = {"after": after, "actor": actor, "action": action, "from": _time(start), "to": _time(end),
              "limit": limit}  # fmt: skip
    return call("GET", "/v1/audit", Records, params=params, headers=_min(min_position))


def get_audit_record(record_id: str, *, min_position: int | None = None) -> Call[dict[str, Any]]:
    return call("GET", f"/v1/audit/{segment(record_id)}", dict[str, Any], headers=_min(min_position))


def track(
    name: str,
    platform: str,
    *,
    run_id: str | None = None,
    properties: Mapping[str, Any] | None = None,
    utm_source: str | None = None,
    utm_medium: str | None = None,
    utm_campaign: str | None = None,
    utm_term: str | None = None,
    utm_content: str | None = None,
    id: str | None = None,
) -> Call[Recorded]:
    """Record an analytics event; attribution (app, surface, user…) comes from the client's context."""
    sent = present(name=name, platform=platform, run_id=run_id, properties=properties, utm_source=utm_source,
                utm_medium=utm_medium, utm_campaign=utm_campaign, utm_term=utm_term, utm_content=utm_content,
                id=id or new_event_id())  # fmt: skip
    return call("POST", "/v1/analytics/events", Recorded, json=sent, idempotent=True)


def track_batch(events: Sequence[Mapping[str, Any]]) -> Call[BatchRecorded]:
    """Record up to 1000 analytics events (each as `track` takes it); one bad event refuses all."""
    sent = [{**event, "id": event.get("id") or new_event_id()} for event in events]
    return call("POST", "/v1/analytics/events/batch", BatchRecorded, json={"events": sent}, idempotent=True)


def list_analytics_events(
    *,
    start: Time | None = None,
    end: Time | None = None,
    run_id: str | None = None,
    name: str | None = None,
    app_id: str | None = None,
    surface_id: str | None = None,
    after: str | None = None,
    limit: int = 100,
    min_position: int | None = None,
) -> Call[AnalyticsEvents]:
    """The project's events by time (every app and surface unless narrowed)."""
    params = {"from": _time(start), "to": _time(end), "run_id": run_id, "name": name, "app_id": app_id,
              "surface_id": surface_id, "after": after, "limit": limit}  # fmt: skip
    return call("GET", "/v1/analytics/events", AnalyticsEvents, params=params, headers=_min(min_position))


def count_analytics_events(
    *,
    start: str | None = None,
    end: str | None = None,
    name: str | None = None,
    after: str | None = None,
    limit: int = 100,
    min_position: int | None = None,
) -> Call[AnalyticsCounts]:
    """Events per name per UTC day (`start`, `end`: days such as 2025-01-31)."""
    params = {"from": start, "to": end, "name": name, "after": after, "limit": limit}
    return call("GET", "/v1/analytics/counts", AnalyticsCounts, params=params, headers=_min(min_position))


def _min(position: int | None) -> dict[str, str]:
    return min_position_header(position)


def _time(value: Time | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value
