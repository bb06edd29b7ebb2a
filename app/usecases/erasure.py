"""Erasing a user's personal data by crypto-shredding (`DELETE /v1/tenants/{t}/users/{u}/data`).

The user's data key is destroyed first: from then on every personal field sealed under it reads
`[erased]`, in every log, view, SSE frame and export, on every backend, with nothing rewritten.
Then the erasure is recorded in the control plane (every process drops its cached keys of the
user when it sees the record) and in the tenant's audit trail, neither with any of the data.
A repeated request destroys nothing more and is recorded again: it answers the same.
"""

from __future__ import annotations

import msgspec

from app.key_ring import KeyRing
from app.usecases.audit import record_audit
from app.usecases.control_plane import ControlPlaneService, system_meta
from domain.audit import TENANT_WIDE
from domain.context import RequestContext
from domain.control_plane import UserDataErased, decide_erasure
from domain.ports import EventSpine

ERASED_EVENT = "user.data_erased"


class Erased(msgspec.Struct, frozen=True, kw_only=True):
    """An erasure done: the user's key is destroyed, and `position` is its control-plane record's."""

    tenant_id: str
    user_id: str
    erased: bool
    position: int


async def erase_user_data(
    keys: KeyRing,
    control: ControlPlaneService,
    system_spine: EventSpine,
    ctx: RequestContext,
    command: UserDataErased,
) -> Erased:
    """Destroy the user's key, then record the erasure in the control plane and the audit trail."""
    control.state.tenant(command.tenant_id)  # 404 for an unknown tenant, before anything changes
    await keys.destroy(command.tenant_id, command.user_id)
    env = control.projector.partition.env
    position = await control.execute(lambda state: [decide_erasure(state, command)], system_meta(env, ctx))
    await record_audit(
        system_spine,
        tenant_id=command.tenant_id,
        env=env,
        stream="audit:erasure",
        event_type=ERASED_EVENT,
        data={
            "user_id": command.user_id,
            "project_id": TENANT_WIDE,  # every project of the tenant reads it
            "actor": ctx.user_id,
            "request_id": ctx.request_id,
        },
        user_id=ctx.user_id,
        request_id=ctx.request_id,
    )
    return Erased(tenant_id=command.tenant_id, user_id=command.user_id, erased=True, position=position)
