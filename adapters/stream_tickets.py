"""Stream tickets as JWTs signed with Spine's own token key (HS256), kept apart from bearer tokens.

A ticket has an audience and a `typ` header of its own: the bearer-token check (audience
`spine`) refuses a ticket, and the ticket check refuses a bearer token (audience `spine`, `typ`
`JWT`), so neither can stand in for the other. Its expiry is not checked here but by the guard,
against the service's clock (`domain.stream_tickets.check_unexpired`): an expired ticket that is
genuine is told apart from a forged one (401 `auth.ticket_expired`, not `auth.invalid_token`).
Nothing raised here holds the ticket's text: it travels in a URL and must never reach a log.
"""

from __future__ import annotations

import jwt
import msgspec

from adapters.jwt_tokens import SPINE_ISSUER
from domain.errors import InvalidToken, MintingDisabled
from domain.stream_tickets import StreamTicket

TICKET_AUDIENCE = "spine:stream-ticket"
TICKET_TYPE = "spine-stream-ticket+jwt"
_ALGORITHM = "HS256"


class TicketSigner:
    """Signs and verifies stream tickets with the key `TokenService` mints tokens with."""

    def __init__(self, spine_key: str | None) -> None:
        self._key = spine_key

    def sign(self, ticket: StreamTicket) -> str:
        """Raises `MintingDisabled` where Spine has no key (an external issuer's tokens only)."""
        if self._key is None:
            raise MintingDisabled("this deployment mints no stream tickets: no token key is configured")
        claims = msgspec.structs.asdict(ticket)
        claims = {k: v for k, v in claims.items() if v is not None and k not in {"user_id", "expires_at"}}
        claims |= {
            "iss": SPINE_ISSUER,
            "aud": TICKET_AUDIENCE,
            "sub": ticket.user_id,
            "exp": ticket.expires_at,
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM, headers={"typ": TICKET_TYPE})

    def verify(self, text: str) -> StreamTicket:
        """The ticket `text` is, whether expired or not; `InvalidToken` if it is not one Spine signed."""
        if self._key is None:
            raise InvalidToken("this deployment issues no stream tickets")
        try:
            header = jwt.get_unverified_header(text)
            claims = jwt.decode(
                text,
                self._key,
                algorithms=[_ALGORITHM],
                audience=TICKET_AUDIENCE,
                issuer=SPINE_ISSUER,
                options={"require": ["exp", "sub", "iss", "aud"], "verify_exp": False},
            )
            ticket = msgspec.convert(
                {**claims, "user_id": claims["sub"], "expires_at": claims["exp"]}, StreamTicket
            )
        except (jwt.PyJWTError, msgspec.ValidationError, ValueError) as exc:
            # the type of the failure, never its text: PyJWT's messages may quote the ticket
            raise InvalidToken(f"invalid stream ticket: {type(exc).__name__}") from exc
        if header.get("typ") != TICKET_TYPE:  # signed by Spine, but a bearer token: not a ticket
            raise InvalidToken("not a stream ticket")
        return ticket
