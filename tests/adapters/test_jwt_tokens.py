"""`TokenService`: Spine-minted HS256 tokens, and an external issuer's RS256 tokens checked against
its key set, read from a file or fetched from a URL (served here from 127.0.0.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.jwt_tokens import SPINE_AUDIENCE, SPINE_ISSUER, ExternalIssuer, TokenService
from domain.errors import InvalidToken, MintingDisabled
from domain.identity import Principal

KEY = "a-spine-token-key-long-enough-for-hs512-" + "0123456789abcdef" * 2
OTHER_KEY = "another-spine-token-key-of-a-decent-length-0123456789"
ISSUER = "https://issuer.example"
AUDIENCE = "spine-api"
KID = "key-1"


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid Spine claims; an override of None removes the claim."""
    now = int(time.time())
    base = {
        "iss": SPINE_ISSUER,
        "aud": SPINE_AUDIENCE,
        "sub": "u1",
        "tenant_id": "t1",
        "iat": now,
        "exp": now + 600,
    }
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256_by_hand(payload: dict[str, Any], secret: bytes) -> str:
    """HS256 without PyJWT's guard against asymmetric keys: the algorithm-confusion attack."""
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def assert_invalid(service: TokenService, token: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        await service.verify(token)
    assert caught.value.error_code == "auth.invalid_token"


# Spine-minted tokens


@pytest.fixture
def service() -> TokenService:
    return TokenService(KEY)


async def test_a_minted_token_verifies_to_its_principal(service: TokenService) -> None:
    token = service.mint(tenant_id="t1", user_id="u1", ttl_seconds=60)
    assert await service.verify(token) == Principal(user_id="u1", tenant_id="t1", issuer=SPINE_ISSUER)


async def test_a_minted_token_may_pin_an_env(service: TokenService) -> None:
    token = service.mint(tenant_id="t1", user_id="u1", ttl_seconds=60, env="prod")
    principal = await service.verify(token)
    assert (principal.tenant_id, principal.user_id, principal.env) == ("t1", "u1", "prod")


async def test_minted_claims_are_the_documented_ones(service: TokenService) -> None:
    token = service.mint(tenant_id="t1", user_id="u1", ttl_seconds=120)
    decoded = jwt.decode(token, KEY, algorithms=["HS256"], audience=SPINE_AUDIENCE)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert decoded.keys() >= {"iss", "aud", "sub", "tenant_id", "iat", "exp", "jti"}
    assert "env" not in decoded
    assert decoded["exp"] - decoded["iat"] == 120


async def test_a_token_crafted_with_the_same_key_verifies(service: TokenService) -> None:
    # The baseline for the table below: each of its tokens differs from this one by one defect.
    principal = await service.verify(jwt.encode(claims(env="dev"), KEY, algorithm="HS256"))
    assert principal == Principal(user_id="u1", tenant_id="t1", issuer=SPINE_ISSUER, env="dev")


def _tamper_signature(token: str) -> str:
    head, body, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return ".".join([head, body, signature[:middle] + flipped + signature[middle + 1 :]])


def _tamper_payload(token: str) -> str:
    head, _, signature = token.split(".")
    return ".".join([head, b64(json.dumps(claims(tenant_id="t2")).encode()), signature])


INVALID_SPINE_TOKENS: list[Any] = [
    pytest.param(lambda: jwt.encode(claims(exp=int(time.time()) - 3600), KEY, algorithm="HS256"), id="expired"),
    pytest.param(lambda: jwt.encode(claims(exp=None), KEY, algorithm="HS256"), id="no-exp"),
    pytest.param(lambda: jwt.encode(claims(), OTHER_KEY, algorithm="HS256"), id="forged-other-key"),
    pytest.param(lambda: _tamper_signature(jwt.encode(claims(), KEY, algorithm="HS256")), id="tampered-signature"),
    pytest.param(lambda: _tamper_payload(jwt.encode(claims(), KEY, algorithm="HS256")), id="tampered-payload"),
    pytest.param(lambda: jwt.encode(claims(), "", algorithm="none"), id="alg-none"),
    pytest.param(lambda: jwt.encode(claims(), KEY, algorithm="HS512"), id="alg-hs512"),
    pytest.param(lambda: jwt.encode(claims(aud="someone-else"), KEY, algorithm="HS256"), id="wrong-audience"),
    pytest.param(lambda: jwt.encode(claims(aud=None), KEY, algorithm="HS256"), id="no-audience"),
    pytest.param(lambda: jwt.encode(claims(iss="someone-else"), KEY, algorithm="HS256"), id="wrong-issuer"),
    pytest.param(lambda: jwt.encode(claims(iss=None), KEY, algorithm="HS256"), id="no-issuer"),
    pytest.param(lambda: jwt.encode(claims(sub=None), KEY, algorithm="HS256"), id="no-subject"),
    pytest.param(lambda: jwt.encode(claims(tenant_id=None), KEY, algorithm="HS256"), id="no-tenant-id"),
    pytest.param(lambda: jwt.encode(claims(tenant_id=7), KEY, algorithm="HS256"), id="tenant-id-not-a-string"),
    pytest.param(lambda: jwt.encode(claims(nbf=int(time.time()) + 3600), KEY, algorithm="HS256"), id="not-yet-valid"),
    pytest.param(lambda: "not-a-jwt", id="garbage"),
    pytest.param(lambda: "", id="empty"),
]  # fmt: skip


@pytest.mark.parametrize("make_token", INVALID_SPINE_TOKENS)
async def test_an_invalid_spine_token_is_refused(
    service: TokenService, make_token: Callable[[], str]
) -> None:
    await assert_invalid(service, make_token())


async def test_without_a_key_nothing_is_minted_or_trusted() -> None:
    keyless = TokenService(None)
    with pytest.raises(MintingDisabled):
        keyless.mint(tenant_id="t1", user_id="u1", ttl_seconds=60)
    await assert_invalid(keyless, jwt.encode(claims(), KEY, algorithm="HS256"))


# The cache of verified tokens


class Clock:
    """The cache's clock, moved by hand (PyJWT checks `exp` against the real one)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens that reached PyJWT, once per verification: what the cache did not answer."""
    seen: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("options", {}).get("verify_signature", True):
            seen.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


async def test_a_verified_token_is_answered_from_memory_until_its_exp_never_after(
    verifications: list[str],
) -> None:
    clock = Clock()
    service = TokenService(KEY, clock=clock)
    token = service.mint(tenant_id="t1", user_id="u1", ttl_seconds=600)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    principal = await service.verify(token)
    assert await service.verify(token) == principal
    assert verifications == [token]  # the second answer came from memory
    clock.now = expires  # its last moment: the cache no longer vouches for it
    assert await service.verify(token) == principal  # PyJWT, on the real clock, still accepts it
    assert verifications == [token, token]


async def test_the_cache_keeps_the_most_recently_used_tokens(verifications: list[str]) -> None:
    service = TokenService(KEY, cache_size=2)
    first, second, third = (service.mint(tenant_id="t1", user_id=u, ttl_seconds=600) for u in ("a", "b", "c"))
    for token in (first, second, first, third):  # `first` used again: `second` is the oldest
        await service.verify(token)
    assert verifications == [first, second, third]
    await service.verify(first)
    await service.verify(second)
    assert verifications == [first, second, third, second]  # dropped, so verified again


@pytest.mark.parametrize("tamper", [_tamper_signature, _tamper_payload], ids=["signature", "payload"])
async def test_a_token_is_cached_by_its_whole_string(
    service: TokenService, tamper: Callable[[str], str]
) -> None:
    token = jwt.encode(claims(), KEY, algorithm="HS256")
    await service.verify(token)  # cached
    await assert_invalid(service, tamper(token))  # one byte off: verified on its own, and refused
    assert await service.verify(token) == Principal(user_id="u1", tenant_id="t1", issuer=SPINE_ISSUER)


async def test_a_refused_token_is_never_cached(service: TokenService, verifications: list[str]) -> None:
    expired = jwt.encode(claims(exp=int(time.time()) - 3600), KEY, algorithm="HS256")
    for _ in range(2):
        await assert_invalid(service, expired)
    assert verifications == [expired, expired]


# An external issuer with a locally generated key set


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer_key() -> rsa.RSAPrivateKey:
    return rsa_key()


@pytest.fixture(scope="module")
def stranger_key() -> rsa.RSAPrivateKey:
    return rsa_key()


@pytest.fixture(scope="module")
def jwks(issuer_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(issuer_key.public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}


def external_claims(**overrides: Any) -> dict[str, Any]:
    return claims(**{"iss": ISSUER, "aud": AUDIENCE, **overrides})


def rs256(key: rsa.RSAPrivateKey, payload: dict[str, Any], kid: str | None = KID) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm="RS256", headers=headers)


@pytest.fixture
def jwks_file(tmp_path: Path, jwks: dict[str, Any]) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    return path


class JwksServer:
    """A key set served over HTTP from a thread; counts the fetches."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        body = json.dumps(jwks).encode()
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def jwks_server(jwks: dict[str, Any]) -> Iterator[JwksServer]:
    with JwksServer(jwks) as server:
        yield server


@pytest.fixture(params=["jwks_file", "jwks_url"])
def external(request: pytest.FixtureRequest) -> TokenService:
    """A Spine that mints its own tokens and trusts the external issuer, by file or by URL."""
    if request.param == "jwks_file":
        issuer = ExternalIssuer(ISSUER, AUDIENCE, jwks_file=request.getfixturevalue("jwks_file"))
    else:
        issuer = ExternalIssuer(ISSUER, AUDIENCE, jwks_url=request.getfixturevalue("jwks_server").url)
    return TokenService(KEY, issuer)


async def test_an_external_token_verifies_to_its_principal(
    external: TokenService, issuer_key: rsa.RSAPrivateKey
) -> None:
    token = rs256(issuer_key, external_claims(sub="alice", tenant_id="acme", env="production"))
    principal = await external.verify(token)
    assert principal == Principal(user_id="alice", tenant_id="acme", issuer=ISSUER, env="production")


async def test_spine_tokens_still_verify_beside_an_external_issuer(external: TokenService) -> None:
    token = external.mint(tenant_id="t1", user_id="u1", ttl_seconds=60)
    assert (await external.verify(token)).issuer == SPINE_ISSUER


async def test_a_token_without_kid_is_checked_against_the_key_set_file(
    jwks_file: Path, issuer_key: rsa.RSAPrivateKey, stranger_key: rsa.RSAPrivateKey
) -> None:
    service = TokenService(None, ExternalIssuer(ISSUER, AUDIENCE, jwks_file=jwks_file))
    assert (await service.verify(rs256(issuer_key, external_claims(), kid=None))).user_id == "u1"
    await assert_invalid(service, rs256(stranger_key, external_claims(), kid=None))


async def test_the_key_set_url_is_fetched_and_cached(
    jwks_server: JwksServer, issuer_key: rsa.RSAPrivateKey
) -> None:
    service = TokenService(None, ExternalIssuer(ISSUER, AUDIENCE, jwks_url=jwks_server.url))
    before = jwks_server.fetches
    for i in range(3):  # three different tokens: the key set is what is cached here, not a token
        await service.verify(rs256(issuer_key, external_claims(jti=f"token-{i}")))
    assert jwks_server.fetches == before + 1


INVALID_EXTERNAL_TOKENS: list[Any] = [
    pytest.param(lambda own, stranger: rs256(stranger, external_claims()), id="signed-by-another-key-same-kid"),
    pytest.param(lambda own, stranger: rs256(stranger, external_claims(), kid="key-2"), id="signed-by-another-key-unknown-kid"),
    pytest.param(lambda own, stranger: rs256(own, external_claims(aud="someone-else")), id="wrong-audience"),
    pytest.param(lambda own, stranger: rs256(own, external_claims(aud=SPINE_AUDIENCE)), id="spine-audience"),
    pytest.param(lambda own, stranger: rs256(own, external_claims(iss="https://evil.example")), id="wrong-issuer"),
    pytest.param(lambda own, stranger: rs256(own, external_claims(iss=SPINE_ISSUER)), id="rsa-token-claiming-spine"),
    pytest.param(lambda own, stranger: rs256(own, external_claims(exp=int(time.time()) - 3600)), id="expired"),
    pytest.param(lambda own, stranger: rs256(own, external_claims(tenant_id=None)), id="no-tenant-id"),
    pytest.param(lambda own, stranger: rs256(own, external_claims(sub=None)), id="no-subject"),
    pytest.param(lambda own, stranger: jwt.encode(external_claims(), "", algorithm="none"), id="alg-none"),
    pytest.param(lambda own, stranger: _hs256_with_public_key(own), id="hs256-signed-with-the-public-key"),
]  # fmt: skip


def _hs256_with_public_key(key: rsa.RSAPrivateKey) -> str:
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hs256_by_hand(external_claims(), public_pem)


@pytest.mark.parametrize("make_token", INVALID_EXTERNAL_TOKENS)
async def test_an_invalid_external_token_is_refused(
    external: TokenService,
    issuer_key: rsa.RSAPrivateKey,
    stranger_key: rsa.RSAPrivateKey,
    make_token: Callable[[rsa.RSAPrivateKey, rsa.RSAPrivateKey], str],
) -> None:
    await assert_invalid(external, make_token(issuer_key, stranger_key))


async def test_an_external_token_is_refused_where_that_issuer_is_not_trusted(
    issuer_key: rsa.RSAPrivateKey,
) -> None:
    await assert_invalid(TokenService(KEY), rs256(issuer_key, external_claims()))


def test_an_external_issuer_needs_exactly_one_key_source(jwks_file: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ExternalIssuer(ISSUER, AUDIENCE)
    with pytest.raises(ValueError, match="exactly one"):
        ExternalIssuer(ISSUER, AUDIENCE, jwks_url="http://127.0.0.1:9/jwks.json", jwks_file=jwks_file)
