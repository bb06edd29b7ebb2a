"""`check_claims`: what a request may state about itself, in headers and in its JSON body.

The token (a `Principal`) and the tenant record (its mode) are the truth. Headers may repeat the
tenant, user, mode and a pinned env; a body may repeat those and the env, project, surface and
app the headers chose. Anything else is an `IdentityOverride` naming the first field at fault.
"""

from __future__ import annotations

import pytest

from domain.errors import IdentityOverride
from domain.identity import Principal, SentIdentity, check_claims, effective_env

MODE = "lab"  # the tenant record's mode
UNPINNED = Principal(user_id="u1", tenant_id="t1", issuer="spine")
PINNED = Principal(user_id="u1", tenant_id="t1", issuer="spine", env="prod")
# The context a data request chose in its headers: what a body may repeat.
CHOSEN = SentIdentity(project_id="p1", surface_id="web", app_id="app1")
NOTHING = SentIdentity()


def headers(**fields: str) -> SentIdentity:
    return SentIdentity(**fields)


def chosen(**fields: str) -> SentIdentity:
    """Headers choosing p1/web/app1, plus `fields`."""
    return SentIdentity(project_id="p1", surface_id="web", app_id="app1", **fields)


def payload(**fields: str) -> SentIdentity:
    return SentIdentity(**fields)


REFUSED = [
    # (principal, headers, payload, (field, source, sent, actual))
    pytest.param(UNPINNED, headers(tenant_id="t2"), NOTHING, ("tenant_id", "header", "t2", "t1"), id="header-tenant"),
    pytest.param(UNPINNED, headers(tenant_id="T1"), NOTHING, ("tenant_id", "header", "T1", "t1"), id="header-tenant-case"),
    pytest.param(UNPINNED, headers(tenant_id=""), NOTHING, ("tenant_id", "header", "", "t1"), id="header-tenant-empty"),
    pytest.param(UNPINNED, headers(user_id="u2"), NOTHING, ("user_id", "header", "u2", "u1"), id="header-user"),
    pytest.param(UNPINNED, headers(mode="saas"), NOTHING, ("mode", "header", "saas", "lab"), id="header-mode"),
    pytest.param(PINNED, headers(env="dev"), NOTHING, ("env", "header", "dev", "prod"), id="header-env-pinned"),
    pytest.param(PINNED, headers(env="staging"), NOTHING, ("env", "header", "staging", "prod"), id="header-env-pinned-other"),
    pytest.param(UNPINNED, chosen(), payload(tenant_id="t2"), ("tenant_id", "payload", "t2", "t1"), id="payload-tenant"),
    pytest.param(UNPINNED, chosen(), payload(user_id="u2"), ("user_id", "payload", "u2", "u1"), id="payload-user"),
    pytest.param(UNPINNED, chosen(), payload(mode="saas"), ("mode", "payload", "saas", "lab"), id="payload-mode"),
    pytest.param(UNPINNED, chosen(env="dev"), payload(env="prod"), ("env", "payload", "prod", "dev"), id="payload-env-vs-header"),
    pytest.param(PINNED, chosen(), payload(env="dev"), ("env", "payload", "dev", "prod"), id="payload-env-vs-pinned"),
    pytest.param(UNPINNED, chosen(), payload(env="prod"), ("env", "payload", "prod", "dev"), id="payload-env-vs-default"),
    pytest.param(UNPINNED, chosen(), payload(project_id="p2"), ("project_id", "payload", "p2", "p1"), id="payload-project"),
    pytest.param(UNPINNED, NOTHING, payload(project_id="p1"), ("project_id", "payload", "p1", None), id="payload-project-nothing-chosen"),
    pytest.param(UNPINNED, chosen(), payload(surface_id="mobile"), ("surface_id", "payload", "mobile", "web"), id="payload-surface"),
    pytest.param(UNPINNED, NOTHING, payload(surface_id="web"), ("surface_id", "payload", "web", None), id="payload-surface-nothing-chosen"),
    pytest.param(UNPINNED, chosen(), payload(app_id="app2"), ("app_id", "payload", "app2", "app1"), id="payload-app"),
    pytest.param(UNPINNED, NOTHING, payload(app_id="app1"), ("app_id", "payload", "app1", None), id="payload-app-nothing-chosen"),
    # the first field at fault is the one reported: headers before the body, in field order
    pytest.param(UNPINNED, headers(user_id="u2"), payload(tenant_id="t2"), ("user_id", "header", "u2", "u1"), id="header-before-payload"),
    pytest.param(UNPINNED, headers(tenant_id="t2", mode="saas"), NOTHING, ("tenant_id", "header", "t2", "t1"), id="tenant-before-mode"),
]  # fmt: skip


@pytest.mark.parametrize(("principal", "sent_headers", "sent_payload", "expected"), REFUSED)
def test_a_disagreeing_field_is_an_identity_override(
    principal: Principal,
    sent_headers: SentIdentity,
    sent_payload: SentIdentity,
    expected: tuple[str, str, str, str | None],
) -> None:
    with pytest.raises(IdentityOverride) as caught:
        check_claims(
            principal, MODE, effective_env(principal, sent_headers, "dev"), sent_headers, sent_payload
        )
    exc = caught.value
    assert (exc.field, exc.source, exc.sent, exc.actual) == expected
    assert exc.error_code == "auth.identity_override"
    assert exc.details() == {"field": expected[0], "source": expected[1]}


ACCEPTED = [
    pytest.param(UNPINNED, NOTHING, NOTHING, id="nothing-stated"),
    pytest.param(PINNED, NOTHING, NOTHING, id="nothing-stated-pinned"),
    pytest.param(UNPINNED, headers(tenant_id="t1", user_id="u1", mode="lab"), NOTHING, id="headers-repeat-the-truth"),
    pytest.param(UNPINNED, headers(env="qa"), NOTHING, id="header-env-chooses-when-unpinned"),
    pytest.param(PINNED, headers(env="prod"), NOTHING, id="header-env-repeats-pin"),
    pytest.param(PINNED, headers(env="production"), NOTHING, id="header-env-production-is-prod"),
    pytest.param(PINNED, headers(env=" PROD "), NOTHING, id="header-env-case-and-space"),
    pytest.param(Principal(user_id="u1", tenant_id="t1", issuer="x", env="production"), headers(env="prod"), NOTHING, id="pin-itself-unnormalized"),
    pytest.param(Principal(user_id="u1", tenant_id="t1", issuer="x", env="stage"), headers(env="staging"), NOTHING, id="pin-stage-is-staging"),
    pytest.param(UNPINNED, headers(project_id="any", surface_id="thing", app_id="goes"), NOTHING, id="headers-choose-project-surface-app"),
    pytest.param(UNPINNED, chosen(), payload(tenant_id="t1", user_id="u1", mode="lab"), id="payload-repeats-the-truth"),
    pytest.param(UNPINNED, chosen(), payload(project_id="p1", surface_id="web", app_id="app1"), id="payload-repeats-the-choice"),
    pytest.param(UNPINNED, chosen(env="dev"), payload(env="development"), id="payload-env-development-is-dev"),
    pytest.param(UNPINNED, chosen(), payload(env="dev"), id="payload-env-repeats-the-default"),
    pytest.param(UNPINNED, chosen(env="staging"), payload(env="stage"), id="payload-env-stage-is-staging"),
    pytest.param(PINNED, chosen(), payload(env="production"), id="payload-env-repeats-pin"),
    pytest.param(PINNED, chosen(env="prod"), payload(env="prod"), id="payload-env-pinned-and-header"),
    pytest.param(
        UNPINNED,
        chosen(tenant_id="t1", user_id="u1", mode="lab", env="dev"),
        payload(tenant_id="t1", user_id="u1", mode="lab", env="dev", project_id="p1", surface_id="web", app_id="app1"),
        id="everything-agrees",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("principal", "sent_headers", "sent_payload"), ACCEPTED)
def test_agreeing_fields_are_accepted(
    principal: Principal, sent_headers: SentIdentity, sent_payload: SentIdentity
) -> None:
    check_claims(principal, MODE, effective_env(principal, sent_headers, "dev"), sent_headers, sent_payload)


@pytest.mark.parametrize("mode", ["lab", "saas", "enterprise"])
def test_mode_is_compared_with_the_tenant_record_not_a_constant(mode: str) -> None:
    check_claims(UNPINNED, mode, "dev", headers(mode=mode), payload(mode=mode))
    other = "lab" if mode != "lab" else "saas"
    with pytest.raises(IdentityOverride) as caught:
        check_claims(UNPINNED, mode, "dev", headers(mode=other), NOTHING)
    assert (caught.value.sent, caught.value.actual) == (other, mode)


def test_only_env_is_normalized() -> None:
    check_claims(PINNED, MODE, "prod", headers(env="Production"), NOTHING)
    with pytest.raises(IdentityOverride):  # identifiers are compared exactly
        check_claims(UNPINNED, MODE, "dev", headers(tenant_id=" t1"), NOTHING)
    with pytest.raises(IdentityOverride):
        check_claims(UNPINNED, "lab", "dev", headers(mode="LAB"), NOTHING)
