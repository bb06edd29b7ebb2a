"""Object grants (`domain.object_grants`) as JWTs signed with Spine's own token key (HS256).

Each purpose has an audience and a `typ` header of its own, which neither bearer tokens nor stream
tickets carry: an upload id is no download URL, no token and no ticket, and none of those is an
upload id. Expiry is checked by the caller against the service's clock where the grant is the
credential (`check_unexpired`); completing an upload does not need it (the backend refused bytes
sent after the signed request expired). Nothing raised here holds the grant's text: it travels
in URLs and must never reach a log.
"""

from __future__ import annotations

import jwt
import msgspec

from adapters.jwt_tokens import SPINE_ISSUER
from domain.errors import InvalidToken, MintingDisabled
from domain.object_grants import ObjectGrant, Purpose

_AUDIENCE = {"upload": "spine:object-upload", "download": "spine:object-download"}
_TYPE = {"upload": "spine-object-upload+jwt", "download": "spine-object-download+jwt"}
_ALGORITHM = "HS256"


class GrantSigner:
    """Signs and verifies object grants with the key `TokenService` mints tokens with."""

    def __init__(self, spine_key: str | None) -> None:
        self._key = spine_key

    def sign(self, grant: ObjectGrant) -> str:
        """Raises `MintingDisabled` where Spine has no key (an external issuer's tokens only)."""
        if self._key is None:
            raise MintingDisabled("this deployment signs no object URLs: no token key is configured")
        claims = {k: v for k, v in msgspec.structs.asdict(grant).items() if v is not None}
        claims.pop("expires_at")
        claims |= {"iss": SPINE_ISSUER, "aud": _AUDIENCE[grant.purpose], "exp": grant.expires_at}
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM, headers={"typ": _TYPE[grant.purpose]})

    def verify(self, text: str, purpose: Purpose) -> ObjectGrant:
        """The grant `text` is, expired or not; `InvalidToken` if Spine did not sign it for `purpose`."""
        if self._key is None:
            raise InvalidToken("this deployment signs no object URLs")
        try:
            header = jwt.get_unverified_header(text)
            claims = jwt.decode(
                text,
                self._key,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE[purpose],
                issuer=SPINE_ISSUER,
                options={"require": ["exp", "iss", "aud"], "verify_exp": False},
            )
            grant = msgspec.convert({**claims, "expires_at": claims["exp"]}, ObjectGrant)
        except (jwt.PyJWTError, msgspec.ValidationError, ValueError) as exc:
            # the type of the failure, never its text: PyJWT's messages may quote the grant
            raise InvalidToken(f"invalid {purpose} id: {type(exc).__name__}") from exc
        if header.get("typ") != _TYPE[purpose] or grant.purpose != purpose:
            raise InvalidToken(f"not an {purpose} id")
        return grant
