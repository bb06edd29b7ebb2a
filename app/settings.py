"""Process settings: where the embedded store lives and how the server behaves.

Backend *choice* per tenant is data (the routing registry), never read from here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from adapters.sqlite.file import Synchronous
from domain.backend_url import Backend, parse_backend_url
from domain.errors import InvalidRequest
from domain.json_depth import DEFAULT_MAX_DEPTH, MAX_SETTABLE_DEPTH


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Never log a Settings: `bootstrap_key` and `token_key` are secrets."""

    data_dir: Path = Path("spine-data")
    # The one directory routes' `secret://file/…` references may name (relative names resolve
    # inside it); unset, no route may reference a file. Spine's own keys (data_dir/secrets) never.
    secrets_dir: Path | None = None
    # `lab` makes its own key material under data_dir; `production` must be given it.
    deployment: Literal["lab", "production"] = "lab"
    # Where the system spine lives (control plane, routes, audit trail; in lab also the lab store):
    # a backend URL (`domain.backend_url`): `sqlite:///PATH.db` (relative to the working
    # directory), `dynamodb://TABLE?region=…`, `firestore://PROJECT`, `cosmos://DATABASE?endpoint=…`,
    # or `memory://` (tests only). The one backend choice read from the environment; every other
    # one is a route.
    system_url: str | None = None
    sqlite_synchronous: Synchronous = "FULL"
    redis_url: str | None = None
    default_env: str = "dev"
    heartbeat_seconds: float = 15.0
    poll_seconds: float = 2.0
    retry_ms: int = 2000
    max_body_bytes: int = 4 * 1024 * 1024
    # The largest object a tenant may store where its limits (`objects.max_object_bytes`) say
    # nothing: object bodies stream, so max_body_bytes (a JSON body's) does not apply to them.
    max_object_bytes: Annotated[int, msgspec.Meta(ge=0)] = 5 * 1024**3
    # How deeply a body's JSON may nest (`domain.json_depth`); deeper is 422 request.too_deep.
    max_json_depth: Annotated[int, msgspec.Meta(ge=8, le=MAX_SETTABLE_DEPTH)] = DEFAULT_MAX_DEPTH
    ready_timeout_seconds: float = 2.0
    # How often `spine serve` runs retention (`app.retention_job`); 0: never (run `spine retention run`).
    retention_interval_seconds: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    read_wait_seconds: float = 5.0  # how long a read with X-Spine-Min-Position waits for its view
    # Circuit breakers (`app.breakers`), one per opened cloud backend: after this many
    # failures in a row its calls are refused at once (503, Retry-After) for the cool-down, then
    # one probe call goes through and its success closes the breaker.
    breaker_failures: Annotated[int, msgspec.Meta(ge=1)] = 3
    breaker_cool_down_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # Slow clients and concurrency (`app.http.connections`, `app.http.limits`): a request head must
    # arrive whole within header_timeout_seconds, a body may pause at most body_timeout_seconds
    # between chunks; caps on open connections (all tenants) and, per tenant, on requests in
    # flight and SSE followers (a follower counts as both).
    header_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    body_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    max_connections: Annotated[int, msgspec.Meta(ge=1)] = 1000
    max_requests_per_tenant: Annotated[int, msgspec.Meta(ge=1)] = 256
    max_followers_per_tenant: Annotated[int, msgspec.Meta(ge=1)] = 64
    # How far an SSE follower may fall behind its partition's shared reader, in events, before its
    # stream is ended (the client resumes with Last-Event-ID): a client that stops reading never
    # holds more than this, nor slows the other followers (`app.http.fanout`).
    sse_buffer_events: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    # Names this process's projection leases. Kept across restarts (default: the host name) so a
    # restarted instance retakes them at once; give each process on one host its own.
    instance_id: str = msgspec.field(default_factory=socket.gethostname)
    # identity
    bootstrap_key: str | None = None
    token_key: str | None = None  # signs Spine-minted tokens (HS256)
    token_ttl_seconds: int = 3600
    max_token_ttl_seconds: int = 30 * 24 * 3600
    jwt_issuer: str | None = None  # an external issuer whose tokens are accepted (production)
    jwt_audience: str = "spine"
    jwks_url: str | None = None
    jwks_file: Path | None = None

    @property
    def system(self) -> Backend:
        """The backend `system_url` names (default: `spine.db` in the data dir), a SQLite path absolute."""
        url = self.system_url or f"sqlite:///{self.data_dir / 'spine.db'}"
        try:
            backend = parse_backend_url(url)
        except InvalidRequest as exc:
            raise ValueError(f"SPINE_SYSTEM_URL: {exc.message}") from None
        if backend.backend_type == "sqlite":
            return Backend(
                backend_type="sqlite", config={"path": str(Path(backend.config["path"]).resolve())}
            )
        return backend

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """`SPINE_<FIELD>` environment variables, then explicit overrides (CLI flags) on top."""
        values: dict[str, object] = {}
        for name in cls.__struct_fields__:
            raw = os.environ.get(f"SPINE_{name.upper()}")
            if raw is not None:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return msgspec.convert(values, cls, strict=False)
