"""One backend named by a URL: the form `SPINE_SYSTEM_URL` and `spine replay --into` take.

    sqlite:///ABSOLUTE/PATH.db  or  sqlite:///./relative/to/data-dir.db
    memory://                                                   (tests only: nothing is kept)
    dynamodb://TABLE?region=REGION[&endpoint_url=URL][&create_table=true]
    firestore://PROJECT[?database=NAME][&emulator_host=HOST:PORT]
    cosmos://HOST:PORT/DATABASE?key=secret://…[&tls=false][&container=NAME]

Every cloud form also takes `connect_timeout_seconds=S` and `request_timeout_seconds=S`
(`domain.timeouts`; default 2 and 5).

For DynamoDB and Firestore the host part is the table or project; for Cosmos DB it is the
account's host and port (`https://` unless `tls=false`) and the path names the database. Every
other key of a route's `config` goes in the query under its own name, so a URL and a route say
the same thing. A secret is only ever a `secret://` reference, as in a route: the URL is held to
the rule a route's config is (`check_config`), its user info included.
"""

from __future__ import annotations

from typing import Any, Final, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec

from domain.errors import InvalidRequest
from domain.routing import BLOB_BACKENDS, BackendType, check_config
from domain.secrets import check_secrets
from domain.timeouts import TIMEOUT_KEYS, timeouts_of

# The config key the host part names, per backend.
_MAIN: Final[dict[str, str]] = {"dynamodb": "table", "firestore": "project"}
_FLAGS: Final = frozenset({"create_table"})


class Backend(msgspec.Struct, frozen=True, kw_only=True):
    backend_type: BackendType
    config: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def url(self) -> str:
        """The URL naming this backend (the inverse of `parse_backend_url`)."""
        if self.backend_type == "sqlite":
            return f"sqlite:///{self.config['path']}"
        if self.backend_type == "memory":
            return "memory://"
        if self.backend_type == "cosmos":
            endpoint = urlsplit(str(self.config["endpoint"]))
            rest = {k: v for k, v in self.config.items() if k not in ("endpoint", "database")}
            if endpoint.scheme == "http":
                rest["tls"] = "false"
            return f"cosmos://{endpoint.netloc}/{self.config['database']}" + _query(rest)
        main = _MAIN[self.backend_type]
        rest = {k: str(v).lower() if isinstance(v, bool) else v for k, v in self.config.items() if k != main}
        return f"{self.backend_type}://{self.config[main]}" + _query(rest)


def _query(values: dict[str, Any]) -> str:
    return f"?{urlencode(values, safe=':/')}" if values else ""


def parse_backend_url(url: str) -> Backend:
    """The backend `url` names; `InvalidRequest` saying what is wrong (never echoing the query)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in get_args(BackendType) or scheme in ("redis", *BLOB_BACKENDS):
        raise InvalidRequest(
            f"a backend URL starts with sqlite://, memory://, dynamodb://, firestore:// or cosmos://, not {scheme!r}"
        )
    backend_type: BackendType = scheme  # type: ignore[assignment]  # checked against the Literal above
    # Credentials in the URL itself (`dynamodb://user:pw@TABLE`) would end up in the table's name,
    # where no config rule would see them.
    check_secrets(url.split("?", 1)[0], "the URL", files=None)
    if backend_type == "sqlite":
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise InvalidRequest("a sqlite URL is sqlite:///ABSOLUTE/PATH or sqlite:///./RELATIVE/PATH")
        return Backend(backend_type="sqlite", config={"path": url.removeprefix("sqlite:///")})
    if backend_type == "memory":
        return Backend(backend_type="memory")
    parts = urlsplit(url)
    config: dict[str, Any] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise InvalidRequest(
            f"the query of a {backend_type} URL must be NAME=VALUE pairs joined by &"
        ) from None
    for name, value in pairs:
        config[name] = value.lower() in ("1", "true", "yes") if name in _FLAGS else value
    timeouts = timeouts_of(config)  # numbers of seconds, as in a route's JSON; else refused
    for name, seconds in zip(TIMEOUT_KEYS, (timeouts.connect, timeouts.request), strict=True):
        if name in config:
            config[name] = seconds
    if backend_type == "cosmos":
        database = parts.path.strip("/")
        if not parts.netloc or not database or "/" in database:
            raise InvalidRequest("a cosmos URL is cosmos://HOST:PORT/DATABASE?key=secret://…")
        scheme = "http" if str(config.pop("tls", "true")).lower() in ("0", "false", "no") else "https"
        config.update(endpoint=f"{scheme}://{parts.netloc}/", database=database)
    else:
        main = _MAIN[backend_type]
        if not parts.netloc or parts.path.strip("/"):
            raise InvalidRequest(f"a {backend_type} URL names its {main}: {backend_type}://{main.upper()}?…")
        config[main] = parts.netloc
    # File references are confined where they are read (the resolver knows SPINE_SECRETS_DIR).
    check_config(backend_type, config, files=None)
    return Backend(backend_type=backend_type, config=config)
