"""`/v1/stream-tickets`: a page trades its token for a ticket its native `EventSource` can send.

The ticket is read-only and bound to this request's context (`domain.stream_tickets`); it opens
`GET /v1/events/stream?ticket=…`, `GET /v1/events?ticket=…` and `GET /v1/flags/stream?ticket=…`, and
nothing else.
"""

from __future__ import annotations

from litestar import Controller, post
from litestar.params import JSONBody

from app.http.services import CallDep
from domain.stream_tickets import IssuedTicket, TicketRequest, issue_ticket


class StreamTicketsController(Controller):
    path = "/v1/stream-tickets"
    tags = ["events"]

    @post(
        "/",
        status_code=201,
        summary="Issue a read-only ticket for GET /v1/events[/stream]?ticket=",
        description="The ticket stands for the token and the context headers of this request, "
        "until `expires_at` (`ttl_seconds`, default 600, at most 3600); every use checks the "
        "membership again. An empty body (or `{}`) asks for the default.",
    )
    async def issue(self, call: CallDep, data: JSONBody[TicketRequest | None] = None) -> IssuedTicket:
        ttl_seconds = (data or TicketRequest()).ttl_seconds
        ticket = issue_ticket(call.ctx, now=call.services.clock(), ttl_seconds=ttl_seconds)
        return IssuedTicket(ticket=call.services.identity.tickets.sign(ticket), expires_at=ticket.expiry)
