"""Who is asking, and the one rule about what a request may claim about itself.

The token says who the caller is; the tenant record says the mode. Headers and payload fields may
only repeat those facts. `check_claims` is the single rule every route goes through.
"""

from __future__ import annotations

import msgspec

from domain.errors import IdentityOverride
from domain.partition import normalize_env


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The verified subject of a token."""

    user_id: str
    tenant_id: str
    issuer: str
    env: str | None = None  # set when the token pins an environment


class SentIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Identity fields a request states itself, in headers or in its JSON body."""

    tenant_id: str | None = None
    user_id: str | None = None
    mode: str | None = None
    env: str | None = None
    project_id: str | None = None
    surface_id: str | None = None
    app_id: str | None = None


NOTHING_SENT = SentIdentity()


def effective_env(principal: Principal, headers: SentIdentity, default: str) -> str:
    """The env a request acts in: the token's pin, else `X-Env`, else the deployment's default."""
    return normalize_env(principal.env or headers.env or default)


def check_claims(
    principal: Principal, mode: str, env: str, headers: SentIdentity, payload: SentIdentity
) -> None:
    """Raise `IdentityOverride` for the first stated field that disagrees with the truth.

    Headers may repeat the token's tenant, user and pinned env, and the tenant's mode. A payload
    may repeat those, the request's effective `env` and the project, surface and app the headers
    chose.
    """
    if _states_no_truth(headers) and payload == NOTHING_SENT:
        return  # the usual request: context headers only, and a body without identity fields
    truth = stated_truth(principal, mode)
    for field, actual in truth.items():
        sent = getattr(headers, field)
        if sent is not None and actual is not None and _norm(field, sent) != _norm(field, actual):
            raise IdentityOverride(field, "header", sent, actual)
    chosen = {
        **truth,
        "env": env,
        "project_id": headers.project_id,
        "surface_id": headers.surface_id,
        "app_id": headers.app_id,
    }
    for field, actual in chosen.items():
        sent = getattr(payload, field)
        if sent is not None and (actual is None or _norm(field, sent) != _norm(field, actual)):
            raise IdentityOverride(field, "payload", sent, actual)


def _states_no_truth(headers: SentIdentity) -> bool:
    """Whether the headers state none of the facts `stated_truth` holds (so none can disagree)."""
    return (
        headers.tenant_id is None and headers.user_id is None and headers.mode is None and headers.env is None
    )


def _norm(field: str, value: str) -> str:
    return normalize_env(value) if field == "env" else value


def stated_truth(principal: Principal, mode: str) -> dict[str, str | None]:
    """What identity headers may only repeat: the token's tenant, user and pinned env, the tenant's
    mode (the context headers, project and the like, choose instead)."""
    return {
        "tenant_id": principal.tenant_id,
        "user_id": principal.user_id,
        "mode": mode,
        "env": principal.env,
    }
