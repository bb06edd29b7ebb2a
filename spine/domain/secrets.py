"""Secret references (`secret://…`) and the redaction of configs that may hold secrets.

A route's config never holds a secret, only a reference to one, resolved by the `SecretResolver`
port when a backend is opened. References are not secrets: they are shown as they are. Anything
else under a key that looks secret is shown as ``***``.
"""

from __future__ import annotations

import re
from typing import Final, Literal

import msgspec

from spine.domain.errors import InvalidSecretRef

PREFIX: Final = "secret://"
REDACTED: Final = "***"

SecretScheme = Literal["env", "file", "aws-sm"]

_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# Secrets Manager names are [A-Za-z0-9/_+=.@-]; an ARN adds ':'. Whitespace is always a typo.
_AWS_ID = re.compile(r"[A-Za-z0-9/_+=.@:-]{1,2048}")
_SECRET_KEY_PARTS: Final = ("key", "secret", "password", "token", "credential", "connection_string")


class SecretRef(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed `secret://<scheme>/<name>` reference."""

    scheme: SecretScheme
    name: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.scheme}/{self.name}"


def parse_secret_ref(ref: str) -> SecretRef:
    """Parse `secret://env/NAME`, `secret://file/PATH` or `secret://aws-sm/ID`; else `InvalidSecretRef`."""
    if not ref.startswith(PREFIX):
        raise InvalidSecretRef(ref, f"a secret reference starts with {PREFIX}")
    scheme, slash, name = ref.removeprefix(PREFIX).partition("/")
    if not slash:
        raise InvalidSecretRef(ref, "expected secret://<env|file|aws-sm>/<name>")
    match scheme:
        case "env":
            if _ENV_NAME.fullmatch(name) is None:
                raise InvalidSecretRef(ref, "an environment variable name matches [A-Z_][A-Z0-9_]*")
            return SecretRef(scheme="env", name=name)
        case "file":
            if not name or "\x00" in name:
                raise InvalidSecretRef(ref, "a file reference needs a path without NUL")
            return SecretRef(scheme="file", name=name)
        case "aws-sm":
            if _AWS_ID.fullmatch(name) is None:
                raise InvalidSecretRef(ref, "an AWS Secrets Manager reference needs a secret name or ARN")
            return SecretRef(scheme="aws-sm", name=name)
        case _:
            raise InvalidSecretRef(ref, "the scheme is none of env, file, aws-sm")


def is_secret_ref(value: object) -> bool:
    """True for a string that is a well-formed secret reference."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return False
    try:
        parse_secret_ref(value)
    except InvalidSecretRef:
        return False
    return True


def _looks_secret(key: object) -> bool:
    return isinstance(key, str) and any(part in key.lower() for part in _SECRET_KEY_PARTS)


def redact(value: object) -> object:
    """A copy of `value` (dicts and lists walked) where every string under a key that looks secret,
    at any depth below it, is ``***``, unless it is a well-formed secret reference."""
    return _redact(value, secret=False)


def _redact(value: object, *, secret: bool) -> object:
    if isinstance(value, dict):
        return {k: _redact(v, secret=secret or _looks_secret(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, secret=secret) for item in value]
    if secret and isinstance(value, str) and not is_secret_ref(value):
        return REDACTED
    return value
