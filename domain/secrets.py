"""Secret references (`secret://…`), the rule that keeps secrets out of route configs, and the
one redaction of what may hold secrets.

A route's config never holds a secret, only a reference to one, resolved by the `SecretResolver`
port when a backend is opened. `check_secrets` refuses a config that holds a value instead (under a
secret-looking key, as a URL's user info, as a secret-looking query parameter) or a reference to
Spine's own secrets. References are not secrets: `redact` shows them as they are, and shows
anything else under a secret-looking key, a URL's user info and secret query values as ``***``.
"""

from __future__ import annotations

import os.path
import re
from typing import Final, Literal
from urllib.parse import unquote_plus

import msgspec

from domain.errors import ForbiddenSecretRef, InvalidSecretRef, SecretInConfig

PREFIX: Final = "secret://"
REDACTED: Final = "***"
# Spine reads every setting from SPINE_<FIELD>, and several hold credentials (bootstrap and token
# keys, a Redis URL with its password): the whole namespace is Spine's, today's names and those
# settings added later, so no route may name a variable in it.
OWN_ENV_PREFIX: Final = "SPINE_"

SecretScheme = Literal["env", "file", "aws-sm"]

_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# Secrets Manager names are [A-Za-z0-9/_+=.@-]; an ARN adds ':'. Whitespace is always a typo.
_AWS_ID = re.compile(r"[A-Za-z0-9/_+=.@:-]{1,2048}")
_SECRET_KEY_PARTS: Final = ("key", "secret", "password", "token", "credential", "connection_string")
# Names too short to look for inside other names: they are secret only when they are the whole name.
_SECRET_NAMES: Final = frozenset({"pass", "passwd", "pwd", "sig", "signature", "x-amz-signature"})
# `scheme://userinfo@host`: the authority runs to the first / ? or #, the user info to its last @.
_USER_INFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@")
# NAME=VALUE in a URL's query (after ? & or ;) or a connection string (`Server=h;Password=p`).
_PARAMETER = re.compile(r"(?:^|(?<=[?&;]))(?P<name>[^=&;#?\s]+)=(?P<value>[^&;#\s]*)")


class SecretFiles(msgspec.Struct, frozen=True, kw_only=True):
    """Where `secret://file/…` references may point: inside `root` (None: nowhere) and never inside
    `own`, the directory of Spine's own key material. Both absolute paths."""

    root: str | None = None
    own: str | None = None


NO_SECRET_FILES: Final = SecretFiles()


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


def looks_secret(name: object) -> bool:
    """True for a config key or query parameter name under which a value would be a secret."""
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(part in lowered for part in _SECRET_KEY_PARTS)


def own_secret_reason(ref: SecretRef, files: SecretFiles | None) -> str | None:
    """Why no route may reference `ref`, or None: Spine's own secrets are never a route's, and a
    file reference stays inside the secrets directory (`files`; None leaves files to the resolver)."""
    if ref.scheme == "env" and ref.name.startswith(OWN_ENV_PREFIX):
        return f"{OWN_ENV_PREFIX}* variables are Spine's own configuration"
    if ref.scheme != "file" or files is None:
        return None
    if ".." in ref.name.split("/"):
        return "a file reference may not climb out with '..'"
    if files.root is None:
        return "this deployment reads no secret files (SPINE_SECRETS_DIR is not set)"
    full = os.path.join(files.root, ref.name)  # an absolute name replaces the root
    if files.own is not None and _inside(full, files.own):
        return "the file is Spine's own key material"
    if not _inside(full, files.root):
        return "the file is outside the secrets directory (SPINE_SECRETS_DIR)"
    return None


def _inside(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or below it, by name only (the resolver follows links)."""
    path, directory = os.path.normpath(path), os.path.normpath(directory)
    try:
        return os.path.commonpath([path, directory]) == directory
    except ValueError:  # one absolute, one relative: not the absolute paths `SecretFiles` holds
        return False


def check_secrets(value: object, where: str, *, files: SecretFiles | None) -> None:
    """Refuse a config that holds a secret or a reference no route may hold, at any depth.

    `SecretInConfig` for a value under a secret-looking key that is not a well-formed reference, a
    URL with user info (`scheme://user:pw@host`, `redis://:pw@host`) or a secret-looking parameter
    (`?password=…`); `ForbiddenSecretRef` for a reference to Spine's own secrets or, unless `files`
    is None, to a file outside the secrets directory. Errors name `where` (`config.endpoint_url`),
    never the value.
    """
    _check(value, where, secret=False, files=files)


def _check(value: object, where: str, *, secret: bool, files: SecretFiles | None) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check(item, f"{where}.{key}", secret=secret or looks_secret(key), files=files)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]", secret=secret, files=files)
        return
    if is_secret_ref(value):
        reason = own_secret_reason(parse_secret_ref(str(value)), files)
        if reason is not None:
            raise ForbiddenSecretRef(where, reason)
        return
    if secret:
        raise SecretInConfig(where, "by its name")
    if isinstance(value, str):
        if _USER_INFO.search(value) is not None:
            raise SecretInConfig(where, "a URL with user info")
        for match in _PARAMETER.finditer(value):
            if _secret_parameter(match):
                raise SecretInConfig(where, f"a {unquote_plus(match['name'])!r} parameter")


def _secret_parameter(match: re.Match[str]) -> bool:
    value = unquote_plus(match["value"])
    return bool(value) and looks_secret(unquote_plus(match["name"])) and not is_secret_ref(value)


def redact(value: object, *, secret: bool = False) -> object:
    """A copy of `value` (dicts and lists walked) as answers and logs may show it.

    Every string under a key that looks secret, at any depth below it (or every string, with
    `secret`), is ``***`` unless it is a well-formed secret reference; elsewhere a URL's user info
    and the values of secret-looking parameters are (`http://***@host`, `?password=***`).
    """
    return _redact(value, secret=secret)


def _redact(value: object, *, secret: bool) -> object:
    if isinstance(value, dict):
        return {k: _redact(v, secret=secret or looks_secret(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, secret=secret) for item in value]
    if not isinstance(value, str) or is_secret_ref(value):
        return value
    if secret:
        return REDACTED
    shown = _USER_INFO.sub(rf"\g<scheme>{REDACTED}@", value)
    return _PARAMETER.sub(_redact_parameter, shown)


def _redact_parameter(match: re.Match[str]) -> str:
    return f"{match['name']}={REDACTED}" if _secret_parameter(match) else match[0]
