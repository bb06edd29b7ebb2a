"""`PUT/GET /v1/retention`: the caller's project's retention rules (control-plane data).

The tenant's admins set them (a PUT replaces the whole list); every member may read them, with
how far retention has removed in the caller's env (`truncated_through`). What a run keeps and how
readers are told: `domain.retention`; the runs: `app.usecases.retention`.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.params import JSONBody

from app.http.services import CallDep
from app.usecases import retention
from app.usecases.control_plane import acting_user, system_meta
from domain.control_plane import ControlPlane, decide_retention, require_admin
from domain.retention import RetentionRule, RetentionSet, Rules, check_distinct


class RetentionBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole of the project's rules: a stream no prefix matches keeps every event."""

    rules: Rules

    def __post_init__(self) -> None:
        check_distinct(self.rules)


class RetentionView(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    project_id: str
    rules: list[RetentionRule]
    truncated_through: int  # in the caller's env: events at or below it may have been removed
    position: int


class RunBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    dry_run: bool = False  # plan and answer what would go, remove nothing


class RunView(msgspec.Struct, frozen=True, kw_only=True):
    scanned: int
    planned: int
    removed: int
    by_stream: dict[str, int]  # what was (dry run: would be) removed, per stream
    truncated_through: int


class RetentionController(Controller):
    path = "/v1/retention"
    tags = ["retention"]

    @put("/", summary="Replace the project's retention rules (tenant admins)")
    async def put_rules(self, data: JSONBody[RetentionBody], call: CallDep) -> Response[RetentionView]:
        ctx, services = call.ctx, call.services
        require_admin(services.control.state, ctx.tenant_id, acting_user(ctx), ctx.tenant_id)
        record = RetentionSet(tenant_id=ctx.tenant_id, project_id=ctx.project_id, rules=data.rules)
        await services.control.execute(
            lambda state: decide_retention(state, record), system_meta(ctx.env, ctx)
        )
        view = _view(services.control.state, call)
        return Response(view, headers={"X-Spine-Position": str(view.position)})

    @post("/runs", status_code=200, summary="Run retention on the caller's partition now (tenant admins)")
    async def run_now(self, data: JSONBody[RunBody], call: CallDep) -> RunView:
        ctx, services = call.ctx, call.services
        state = services.control.state
        require_admin(state, ctx.tenant_id, acting_user(ctx), ctx.tenant_id)
        rules = state.retention.get((ctx.tenant_id, ctx.project_id)) or RetentionSet(
            tenant_id=ctx.tenant_id, project_id=ctx.project_id, rules=[]
        )
        # the log as stored: planning reads every event, and opens none of their personal fields
        spine = await services.spines.stored_for_context(ctx, call.warnings)
        outcome = await retention.run_partition(
            spine, services.control, ctx.partition, rules, services.clock(), dry_run=data.dry_run
        )
        return RunView(
            scanned=outcome.scanned,
            planned=outcome.planned,
            removed=outcome.removed,
            by_stream=outcome.by_stream,
            truncated_through=services.control.state.truncated_through(ctx.partition.key),
        )

    @get("/", summary="The project's retention rules, and how far they have removed")
    async def get_rules(self, call: CallDep) -> RetentionView:
        return _view(call.services.control.state, call)


def _view(state: ControlPlane, call: CallDep) -> RetentionView:
    ctx = call.ctx
    record = state.retention.get((ctx.tenant_id, ctx.project_id))
    return RetentionView(
        tenant_id=ctx.tenant_id,
        project_id=ctx.project_id,
        rules=[] if record is None else record.rules,
        truncated_through=state.truncated_through(ctx.partition.key),
        position=state.position,
    )
