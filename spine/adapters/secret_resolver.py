"""The one `SecretResolver`: `secret://env/…` (lab and dev only), `secret://file/…`, `secret://aws-sm/…`.

Resolved values are kept in memory for a short TTL, so a hot path that opens backends does not read
a file or call AWS per request; only successes are kept, so a secret that appears is seen at once.
No message raised here carries a value: file contents and AWS answers are never quoted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aioboto3  # type: ignore[import-untyped]
import anyio
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from spine.domain.errors import InvalidSecretRef, SecretUnavailable
from spine.domain.secrets import SecretRef, parse_secret_ref

DEFAULT_TTL_SECONDS = 60.0
_AWS_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


class ChainSecretResolver:
    """Resolves a reference by its scheme; `clock` (monotonic seconds) is injectable for tests."""

    def __init__(
        self,
        *,
        allow_env: bool,
        base_dir: Path,
        aws_region: str | None = None,
        aws_endpoint_url: str | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allow_env = allow_env
        self._base_dir = base_dir
        self._aws_region = aws_region
        self._aws_endpoint_url = aws_endpoint_url
        self._ttl = ttl_seconds
        self._clock = clock
        self._aws_session: aioboto3.Session | None = None
        self._cache: dict[str, tuple[str, float]] = {}

    async def resolve(self, ref: str) -> str:
        cached = self._cache.get(ref)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        parsed = parse_secret_ref(ref)
        match parsed.scheme:
            case "env":
                value = self._from_env(ref, parsed)
            case "file":
                value = await self._from_file(ref, parsed)
            case "aws-sm":
                value = await self._from_aws(ref, parsed)
        if not value:
            raise SecretUnavailable(ref, "the secret is empty")
        self._cache[ref] = (value, self._clock() + self._ttl)
        return value

    def _from_env(self, ref: str, parsed: SecretRef) -> str:
        if not self._allow_env:
            raise InvalidSecretRef(ref, "secret://env/… is allowed only in lab and dev")
        value = os.environ.get(parsed.name)
        if value is None:
            raise SecretUnavailable(ref, f"environment variable {parsed.name} is not set")
        return value

    async def _from_file(self, ref: str, parsed: SecretRef) -> str:
        path = self._base_dir / parsed.name  # an absolute name replaces base_dir
        try:
            text = await anyio.Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:  # it quotes the file's bytes, and holds them all: not chained
            raise SecretUnavailable(ref, f"{path} is not UTF-8 text") from None
        except OSError as exc:
            raise SecretUnavailable(ref, f"cannot read {path}: {exc.strerror or type(exc).__name__}") from exc
        return _strip_one_newline(text)

    async def _from_aws(self, ref: str, parsed: SecretRef) -> str:
        if self._aws_session is None:
            self._aws_session = aioboto3.Session()
        with _translate_aws_errors(ref):
            async with self._aws_session.client(
                "secretsmanager",
                region_name=self._aws_region,
                endpoint_url=self._aws_endpoint_url,
                config=_AWS_CONFIG,
            ) as client:
                answer = await client.get_secret_value(SecretId=parsed.name)
        value = answer.get("SecretString")
        if not isinstance(value, str):
            raise SecretUnavailable(ref, "the secret has no SecretString (binary secrets are not supported)")
        return value


def _strip_one_newline(text: str) -> str:
    """The newline editors add at the end of a file is not part of the secret; other spaces are."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


@contextmanager
def _translate_aws_errors(ref: str) -> Iterator[None]:
    """AWS SDK errors become `SecretUnavailable`, named by their code or class, never their text."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        raise SecretUnavailable(ref, f"AWS Secrets Manager answered {code}") from exc
    except BotoCoreError as exc:  # EndpointConnectionError, NoCredentialsError, NoRegionError, timeouts
        raise SecretUnavailable(ref, f"AWS Secrets Manager is unreachable ({type(exc).__name__})") from exc
