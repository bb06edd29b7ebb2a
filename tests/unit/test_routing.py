"""The routing rules: resolution order, mode rules, missing-route codes, route validation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from domain.errors import ForbiddenBackend, ForbiddenRoute, InvalidRequest, MissingRoute, NotFound
from domain.events import Event, EventMeta
from domain.routing import (
    RESOURCE_KINDS,
    Registry,
    Route,
    RouteDeleted,
    decide_route,
    decide_route_delete,
    resolve,
)
from domain.secrets import SecretFiles

NOW = datetime(2026, 11, 23, tzinfo=UTC)
CLOUD = {"backend_type": "dynamodb", "config": {"table": "spine", "region": "eu-west-1"}}


def route(tenant: str = "t1", project: str = "*", kind: str = "event_spine", **fields: Any) -> Route:
    body = {
        "resource_kind": kind,
        "tenant_id": tenant,
        "env": "dev",
        "project_id": project,
        **CLOUD,
        **fields,
    }
    return msgspec.convert(body, Route)


def registry_of(*routes: Route) -> Registry:
    registry = Registry()
    for position, item in enumerate(routes, start=1):
        plan, _ = decide_route(registry, item, mode=None, now=NOW)
        registry.apply(stored(plan.event.type, plan.event.data, position))
    return registry


def stored(type_: str, data: dict[str, Any], position: int) -> Event:
    meta = EventMeta(tenant_id="t_system", env="dev", project_id="_", user_id="admin")
    return Event(id=f"e{position}", type=type_, stream="s", version=position, position=position, data=data,
                 meta=meta, recorded_at=NOW)  # fmt: skip


def test_resolution_prefers_project_then_tenant_then_platform_default() -> None:
    exact = route(project="p1", config={"table": "exact", "region": "r"})
    tenant_wide = route(config={"table": "tenant", "region": "r"})
    default = route(tenant="*", config={"table": "default", "region": "r"})
    registry = registry_of(exact, tenant_wide, default)
    assert resolve(registry, "event_spine", "t1", "dev", "p1", "saas").route == exact
    assert resolve(registry, "event_spine", "t1", "dev", "p2", "saas").route == tenant_wide
    assert resolve(registry, "event_spine", "t2", "dev", "p1", "saas").route == default


def test_routes_are_per_env_and_kind() -> None:
    registry = registry_of(route())
    with pytest.raises(MissingRoute):
        resolve(registry, "event_spine", "t1", "prod", "p1", "saas")
    with pytest.raises(MissingRoute):
        resolve(registry, "memory_store", "t1", "dev", "p1", "saas")


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (kind, "save_store.missing_route" if kind == "tabular_store" else f"{kind}.missing_route")
        for kind in RESOURCE_KINDS
    ],
)
@pytest.mark.parametrize("mode", ["saas", "enterprise", "system"])
def test_a_missing_route_is_an_exact_code_outside_lab(kind: str, code: str, mode: str) -> None:
    with pytest.raises(MissingRoute) as caught:
        resolve(Registry(), kind, "t1", "dev", "p1", mode)
    assert caught.value.error_code == code


@pytest.mark.parametrize("kind", RESOURCE_KINDS)
def test_lab_falls_back_with_a_warning(kind: str) -> None:
    resolution = resolve(Registry(), kind, "t1", "dev", "p1", "lab")
    assert resolution.route is None
    assert resolution.warning == MissingRoute(kind, "t1", "dev", "p1").error_code


@pytest.mark.parametrize(
    "backend", [{"backend_type": "sqlite", "config": {"path": "x.db"}}, {"backend_type": "memory"}]
)
@pytest.mark.parametrize("mode", ["saas", "enterprise", "system"])
def test_embedded_backends_are_refused_outside_lab(backend: dict[str, Any], mode: str) -> None:
    with pytest.raises(ForbiddenBackend) as written:
        decide_route(Registry(), route(**backend), mode=mode, now=NOW)
    assert written.value.error_code == "routing.forbidden_backend"
    # a platform default may name one (lab tenants inherit it); other modes are refused it when resolving
    registry = registry_of(route(tenant="*", **backend))
    with pytest.raises(ForbiddenRoute):
        resolve(registry, "event_spine", "t1", "dev", "p1", mode)
    assert resolve(registry, "event_spine", "t1", "dev", "p1", "lab").route is not None


@pytest.mark.parametrize(
    "fields",
    [
        {"backend_type": "sqlite", "config": {}},
        {"backend_type": "dynamodb", "config": {"table": "t"}},
        {"backend_type": "cosmos", "config": {"endpoint": "e", "database": "d", "key": "plaintext"}},
        {"config": {"table": "t", "region": "r", "password": "hunter2"}},
        {"secret_refs": {"key": "plaintext"}},
    ],
    ids=["sqlite-no-path", "dynamodb-no-region", "inline-key", "inline-password", "secret-ref-not-a-ref"],
)
def test_invalid_routes_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        decide_route(Registry(), route(**fields), mode="lab", now=NOW)


def test_a_secret_reference_is_accepted_in_config() -> None:
    cosmos = route(
        backend_type="cosmos", config={"endpoint": "e", "database": "d", "key": "secret://file/cosmos"}
    )
    files = SecretFiles(root="/run/secrets", own="/var/spine/secrets")
    decide_route(Registry(), cosmos, mode="enterprise", now=NOW, files=files)


def test_a_switch_records_the_previous_backend_and_when() -> None:
    registry = registry_of(route())
    moved = route(backend_type="firestore", config={"project": "p"}, switch_rationale="latency")
    plan, previous = decide_route(registry, moved, mode="enterprise", now=NOW)
    assert previous is not None
    assert previous.backend_type == "dynamodb"
    assert plan.event.data["previous_backend_type"] == "dynamodb"
    assert plan.event.data["switch_rationale"] == "latency"
    # re-writing the same backend keeps the switch history
    registry.apply(stored(plan.event.type, plan.event.data, 2))
    again, _ = decide_route(registry, moved, mode="enterprise", now=NOW)
    assert again.event.data["previous_backend_type"] == "dynamodb"


def test_delete_and_history() -> None:
    registry = registry_of(route())
    deleted = RouteDeleted(
        resource_kind="event_spine", tenant_id="t1", env="dev", project_id="*", rationale="gone"
    )
    plan = decide_route_delete(registry, deleted)
    registry.apply(stored(plan.event.type, plan.event.data, 2))
    assert registry.routes == {}
    assert [(c.action, c.position) for c in registry.history] == [("set", 1), ("deleted", 2)]
    with pytest.raises(NotFound):
        decide_route_delete(registry, deleted)
