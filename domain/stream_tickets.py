"""Stream tickets: the read-only credential a page's native `EventSource` sends in its URL.

An `EventSource` cannot send headers, so a page trades its token (through `fetch`) for a ticket
bound to the context of that request: tenant, env, project, surface, app and user. The ticket
reads that partition's events (`GET /v1/events`, `GET /v1/events/stream`) and follows its flag
changes (`GET /v1/flags/stream`) until it expires, and nothing else. Its own expiry bounds it, not the token's; the membership is checked on every use,
like a token's, so removing a member ends their tickets too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec

from domain.context import RequestContext
from domain.errors import IdentityOverride, TicketExpired
from domain.identifiers import Identifier
from domain.identity import Principal, SentIdentity, check_claims

DEFAULT_TTL_SECONDS: Final = 600
MAX_TTL_SECONDS: Final = 3600
TICKET_ISSUER: Final = "spine:stream-ticket"  # the `issuer` of a ticket's Principal
TICKET_ROUTES: Final = "a stream ticket only reads /v1/events, /v1/events/stream and /v1/flags/stream"

TtlSeconds = Annotated[
    int,
    msgspec.Meta(
        ge=1, le=MAX_TTL_SECONDS, description=f"seconds the ticket is valid (default {DEFAULT_TTL_SECONDS})"
    ),
]


class TicketRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The body of `POST /v1/stream-tickets`."""

    ttl_seconds: TtlSeconds = DEFAULT_TTL_SECONDS


class IssuedTicket(msgspec.Struct, frozen=True, kw_only=True):
    """The answer: the opaque ticket, and when it stops being accepted."""

    ticket: str
    expires_at: datetime


class StreamTicket(msgspec.Struct, frozen=True, kw_only=True):
    """What a ticket grants: reading one partition, as one user of one surface (and app), until
    `expires_at` (whole seconds since the epoch, UTC)."""

    tenant_id: Identifier
    env: Identifier
    project_id: Identifier
    surface_id: Identifier
    user_id: Identifier
    app_id: Identifier | None = None
    expires_at: int

    @property
    def principal(self) -> Principal:
        """The ticket's subject, with its env pinned: `X-Env` may only repeat it."""
        return Principal(user_id=self.user_id, tenant_id=self.tenant_id, issuer=TICKET_ISSUER, env=self.env)

    @property
    def expiry(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)


def issue_ticket(ctx: RequestContext, *, now: datetime, ttl_seconds: int) -> StreamTicket:
    """A ticket for the context a request was verified in; its expiry in whole seconds, as a JWT
    `exp` carries it (so the answer's `expires_at` is exactly when it stops being accepted)."""
    if ctx.user_id is None or ctx.surface_id is None:
        raise ValueError("a stream ticket is issued for a data route's context: a user and a surface")
    return StreamTicket(
        tenant_id=ctx.tenant_id,
        env=ctx.env,
        project_id=ctx.project_id,
        surface_id=ctx.surface_id,
        user_id=ctx.user_id,
        app_id=ctx.app_id,
        expires_at=int(now.timestamp()) + ttl_seconds,
    )


def check_unexpired(ticket: StreamTicket, now: datetime) -> None:
    """Raise `TicketExpired` from `expires_at` on: the client asks for a new ticket and resumes."""
    if now >= ticket.expiry:
        raise TicketExpired(ticket.expiry)


def check_ticket_claims(ticket: StreamTicket, mode: str, headers: SentIdentity) -> None:
    """Headers sent along with a ticket may only repeat it: the token's rule (`check_claims`) for
    tenant, user, env and mode, and the same for the project, surface and app the ticket chose
    (with a token the headers choose those; with a ticket they were chosen when it was issued)."""
    check_claims(ticket.principal, mode, ticket.env, headers, SentIdentity())
    chosen = {"project_id": ticket.project_id, "surface_id": ticket.surface_id, "app_id": ticket.app_id}
    for field, actual in chosen.items():
        sent = getattr(headers, field)
        if sent is not None and sent != actual:
            raise IdentityOverride(field, "header", sent, actual)
