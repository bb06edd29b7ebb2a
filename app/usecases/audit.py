"""Appending to a tenant's audit trail: security events and route switches.

The trail is the tenant's `_audit` partition (project ids starting with `_` are reserved). Until
the audit view is routed on its own, it lives in the system spine. Each event's data names the
project it concerns (`project_id`; `*` for the whole tenant), and every member of that project reads
it in `GET /v1/audit`: what is recorded here must never hold a secret.
"""

from __future__ import annotations

from typing import Any

from domain.append import AppendRequest
from domain.audit import AUDIT_PROJECT
from domain.events import EventMeta, NewEvent
from domain.partition import Partition
from domain.ports import EventSpine

__all__ = ["AUDIT_PROJECT", "record_audit", "trail_partition"]


def trail_partition(tenant_id: str, env: str) -> Partition:
    """The tenant's audit trail: security events, whichever project they concern."""
    return Partition(tenant_id=tenant_id, env=env, project_id=AUDIT_PROJECT)


async def record_audit(
    spine: EventSpine,
    *,
    tenant_id: str,
    env: str,
    stream: str,
    event_type: str,
    data: dict[str, Any],
    user_id: str | None,
    request_id: str | None,
) -> None:
    meta = EventMeta(
        tenant_id=tenant_id, env=env, project_id=AUDIT_PROJECT, user_id=user_id, request_id=request_id
    )
    request = AppendRequest(stream=stream, events=[NewEvent(type=event_type, data=data)], meta=meta)
    await spine.append(trail_partition(tenant_id, env), request)
