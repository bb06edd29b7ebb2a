"""JWT tokens with PyJWT: Spine-minted (HS256) for lab and dev, an external issuer (JWKS) in production.

Which key verifies a token is decided by its `iss` claim, read before verification only to pick
the key; a token of an issuer that is not configured is invalid.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import anyio
import jwt

from domain.errors import InvalidToken, MintingDisabled
from domain.identifiers import matches
from domain.identity import Principal
from domain.partition import normalize_env

SPINE_ISSUER = "spine"
SPINE_AUDIENCE = "spine"
_LEEWAY_SECONDS = 30
_ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
CACHED_TOKENS = 10_000  # verified tokens kept, least recently used first out


class ExternalIssuer:
    """An OpenID-style issuer: tokens signed by a key of its JWKS (a file, or a URL fetched and cached)."""

    def __init__(
        self, issuer: str, audience: str, *, jwks_url: str | None = None, jwks_file: Path | None = None
    ) -> None:
        if (jwks_url is None) == (jwks_file is None):
            raise ValueError("an external issuer needs exactly one of jwks_url and jwks_file")
        self.issuer = issuer
        self.audience = audience
        self._client = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self._keys = jwt.PyJWKSet.from_dict(json.loads(jwks_file.read_text())) if jwks_file else None

    def signing_key(self, token: str) -> jwt.PyJWK:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token)
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if kid is None or key.key_id == kid:
                return key
        raise jwt.InvalidKeyError(f"no key {kid!r} in the issuer's key set")


class TokenService:
    """Mints Spine tokens (when it has a key) and verifies Spine and external tokens.

    A client sends the same token on every request, so a verified token is kept (keyed by the
    whole token string: a token differing in any byte, its signature included, is verified on
    its own) and answered from memory until its `exp`, never after it: from then on it goes
    through the whole verification again, which refuses it once the clock-skew leeway has passed
    too. At most `cache_size` tokens are kept, the least recently used dropped first; a refused
    token is never kept.
    """

    def __init__(
        self,
        spine_key: str | None,
        external: ExternalIssuer | None = None,
        *,
        cache_size: int = CACHED_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._spine_key = spine_key
        self._external = external
        self._cache_size = cache_size
        self._clock = clock
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    @property
    def can_mint(self) -> bool:
        return self._spine_key is not None

    def mint(self, *, tenant_id: str, user_id: str, ttl_seconds: int, env: str | None = None) -> str:
        if self._spine_key is None:
            raise MintingDisabled("this deployment mints no tokens: no token key is configured")
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": SPINE_ISSUER,
            "aud": SPINE_AUDIENCE,
            "sub": user_id,
            "tenant_id": tenant_id,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if env is not None:
            claims["env"] = env
        return jwt.encode(claims, self._spine_key, algorithm="HS256")

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if self._clock() < expires:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, expires = await self._verify(token)
        self._verified[token] = (principal, expires)
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
            if issuer == SPINE_ISSUER and self._spine_key is not None:
                claims = jwt.decode(
                    token,
                    self._spine_key,
                    algorithms=["HS256"],
                    audience=SPINE_AUDIENCE,
                    issuer=SPINE_ISSUER,
                    leeway=_LEEWAY_SECONDS,
                    options={"require": ["exp", "sub", "iss", "aud"]},
                )
            elif self._external is not None and issuer == self._external.issuer:
                external = self._external
                key = await anyio.to_thread.run_sync(external.signing_key, token)  # may fetch the JWKS
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=_ASYMMETRIC,
                    audience=external.audience,
                    issuer=external.issuer,
                    leeway=_LEEWAY_SECONDS,
                    options={"require": ["exp", "sub", "iss", "aud"]},
                )
            else:
                raise InvalidToken("the token's issuer is not trusted here")
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidToken(f"invalid token: {type(exc).__name__}") from exc
        tenant_id, env = claims.get("tenant_id"), claims.get("env")
        if not isinstance(tenant_id, str) or not isinstance(claims["sub"], str):
            raise InvalidToken("the token names no tenant_id or subject")
        # They become parts of keys: a claim no identifier could be is a bad token, not a 500 later.
        if not (matches(tenant_id) and matches(claims["sub"])):
            raise InvalidToken("the token's tenant_id or subject is not a valid identifier")
        if isinstance(env, str) and not matches(normalize_env(env)):
            raise InvalidToken("the token's env is not a valid identifier")
        principal = Principal(
            user_id=claims["sub"],
            tenant_id=tenant_id,
            issuer=issuer,
            env=env if isinstance(env, str) else None,
        )
        return principal, float(claims["exp"])
