"""`ChainSecretResolver`: env (lab and dev only), files (inside the secrets directory), AWS Secrets
Manager, and its TTL cache; never Spine's own secrets.

AWS Secrets Manager is a boundary we do not own: its tests talk to moto's server, run here as a
stand-in Secrets Manager on 127.0.0.1, over the real HTTP protocol, through the real SDK.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from adapters.secret_resolver import ChainSecretResolver
from domain.errors import InvalidSecretRef, SecretUnavailable, SpineError
from domain.secrets import SecretFiles
from tests.conftest import require_server
from tests.peers import free_port

VALUE = "s3cr3t-value-that-must-never-leak"
REGION = "us-east-1"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def assert_hides(exc: SpineError, value: str) -> None:
    """Neither the error, its details, nor any exception chained to it (what a log prints) shows `value`."""
    assert value not in str(exc)
    assert value not in repr(exc.details())
    assert value not in "".join(traceback.format_exception(exc))


def resolver(tmp_path: Path, **kwargs: Any) -> ChainSecretResolver:
    """Secret files may be anywhere under `tmp_path`; Spine's own keys are in `tmp_path/own`."""
    files = SecretFiles(root=str(tmp_path), own=str(tmp_path / "own"))
    return ChainSecretResolver(**{"allow_env": True, "files": files, **kwargs})


# --- env -------------------------------------------------------------------------------------------


async def test_env_is_read_where_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SPINE_DB_PASSWORD", VALUE)
    assert await resolver(tmp_path).resolve("secret://env/TEST_SPINE_DB_PASSWORD") == VALUE


async def test_env_is_refused_outside_lab_and_dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SPINE_DB_PASSWORD", VALUE)
    with pytest.raises(InvalidSecretRef) as caught:
        await resolver(tmp_path, allow_env=False).resolve("secret://env/TEST_SPINE_DB_PASSWORD")
    assert caught.value.code == "secret.invalid_ref"
    assert "only in lab and dev" in str(caught.value)
    assert_hides(caught.value, VALUE)


async def test_a_missing_variable_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_SPINE_NOT_SET", raising=False)
    with pytest.raises(SecretUnavailable) as caught:
        await resolver(tmp_path).resolve("secret://env/TEST_SPINE_NOT_SET")
    assert caught.value.code == "secret.unavailable"
    assert "TEST_SPINE_NOT_SET" in str(caught.value)
    assert caught.value.details() == {"ref": "secret://env/TEST_SPINE_NOT_SET"}


async def test_an_empty_variable_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SPINE_EMPTY", "")
    with pytest.raises(SecretUnavailable, match="empty"):
        await resolver(tmp_path).resolve("secret://env/TEST_SPINE_EMPTY")


@pytest.mark.parametrize("ref", ["secret://env/lower", "secret://vault/x", "not-a-ref"])
async def test_malformed_references_are_refused(tmp_path: Path, ref: str) -> None:
    with pytest.raises(InvalidSecretRef):
        await resolver(tmp_path).resolve(ref)


# --- file ------------------------------------------------------------------------------------------


async def test_a_relative_path_resolves_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "db").write_text(VALUE + "\n")
    assert await resolver(tmp_path).resolve("secret://file/secrets/db") == VALUE


async def test_an_absolute_path_inside_the_secrets_dir_resolves(tmp_path: Path) -> None:
    (tmp_path / "db").write_text(VALUE)
    assert await resolver(tmp_path).resolve(f"secret://file/{tmp_path / 'db'}") == VALUE


@pytest.mark.parametrize(
    ("content", "secret"),
    [
        ("v", "v"),
        ("v\n", "v"),
        ("v\r\n", "v"),
        ("v\n\n", "v\n"),
        (" v \n", " v "),
        ("line1\nline2\n", "line1\nline2"),
    ],
)
async def test_one_trailing_newline_is_stripped(tmp_path: Path, content: str, secret: str) -> None:
    (tmp_path / "s").write_bytes(content.encode())
    assert await resolver(tmp_path).resolve("secret://file/s") == secret


async def test_a_missing_file_is_unavailable_and_named(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable) as caught:
        await resolver(tmp_path).resolve("secret://file/nope/db")
    assert str(tmp_path / "nope" / "db") in str(caught.value)
    assert caught.value.details() == {"ref": "secret://file/nope/db"}


async def test_a_directory_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(SecretUnavailable):
        await resolver(tmp_path).resolve("secret://file/dir")


async def test_an_empty_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretUnavailable, match="empty"):
        await resolver(tmp_path).resolve("secret://file/empty")


async def test_a_file_that_is_not_text_is_unavailable_and_not_quoted(tmp_path: Path) -> None:
    """A decoding error quotes the file's bytes: neither it nor they reach the message or the chain."""
    (tmp_path / "bin").write_bytes(b"\xff\xfe" + VALUE.encode())
    with pytest.raises(SecretUnavailable) as caught:
        await resolver(tmp_path).resolve("secret://file/bin")
    assert "UTF-8" in str(caught.value)
    assert_hides(caught.value, VALUE)
    assert "0xff" not in "".join(traceback.format_exception(caught.value))


# --- Spine's own secrets and the secrets directory -----------------------------------------------


@pytest.mark.parametrize("name", ["SPINE_TOKEN_KEY", "SPINE_BOOTSTRAP_KEY", "SPINE_REDIS_URL"])
async def test_spine_variables_are_never_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Even where env references are allowed, and for a record an older version stored."""
    monkeypatch.setenv(name, VALUE)
    with pytest.raises(InvalidSecretRef, match="Spine's own configuration") as caught:
        await resolver(tmp_path).resolve(f"secret://env/{name}")
    assert_hides(caught.value, VALUE)


@pytest.mark.parametrize("name", ["../outside", "a/../../outside", "inside/../../outside"])
async def test_a_file_reference_never_climbs(tmp_path: Path, name: str) -> None:
    secrets_dir = tmp_path / "secrets"
    (secrets_dir / "inside").mkdir(parents=True)
    (tmp_path / "outside").write_text(VALUE)
    with pytest.raises(InvalidSecretRef, match=r"'\.\.'") as caught:
        await resolver(secrets_dir).resolve(f"secret://file/{name}")
    assert_hides(caught.value, VALUE)


async def test_an_absolute_path_outside_the_secrets_dir_is_refused(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (tmp_path / "db").write_text(VALUE)
    with pytest.raises(InvalidSecretRef, match="outside the secrets directory") as caught:
        await resolver(secrets_dir).resolve(f"secret://file/{tmp_path / 'db'}")
    assert_hides(caught.value, VALUE)


async def test_a_symlink_out_of_the_secrets_dir_is_refused_without_naming_its_target(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    target = tmp_path / "private" / "host.key"
    target.parent.mkdir()
    target.write_text(VALUE)
    (secrets_dir / "db").symlink_to(target)
    (secrets_dir / "dir").symlink_to(target.parent, target_is_directory=True)
    for ref in ("secret://file/db", "secret://file/dir/host.key"):
        with pytest.raises(InvalidSecretRef, match="symbolic link") as caught:
            await resolver(secrets_dir).resolve(ref)
        assert_hides(caught.value, VALUE)
        assert "private" not in str(caught.value)


async def test_a_symlink_inside_the_secrets_dir_resolves(tmp_path: Path) -> None:
    (tmp_path / "v1").write_text(VALUE)
    (tmp_path / "current").symlink_to(tmp_path / "v1")
    assert await resolver(tmp_path).resolve("secret://file/current") == VALUE


async def test_spines_own_key_files_are_refused_even_inside_the_secrets_dir(tmp_path: Path) -> None:
    """`own` (data_dir/secrets) holds the bootstrap and token keys a lab deployment makes."""
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "token.key").write_text(VALUE)
    (tmp_path / "link").symlink_to(tmp_path / "own" / "token.key")
    for ref in ("secret://file/own/token.key", f"secret://file/{tmp_path / 'own' / 'token.key'}"):
        with pytest.raises(InvalidSecretRef, match="Spine's own key material") as caught:
            await resolver(tmp_path).resolve(ref)
        assert_hides(caught.value, VALUE)
    with pytest.raises(InvalidSecretRef, match="symbolic link"):
        await resolver(tmp_path).resolve("secret://file/link")


async def test_without_a_secrets_dir_no_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "db").write_text(VALUE)
    secrets = ChainSecretResolver(allow_env=True, files=SecretFiles(root=None, own=None))
    for ref in ("secret://file/db", f"secret://file/{tmp_path / 'db'}"):
        with pytest.raises(InvalidSecretRef, match="SPINE_SECRETS_DIR") as caught:
            await secrets.resolve(ref)
        assert_hides(caught.value, VALUE)


# --- cache -----------------------------------------------------------------------------------------


async def test_a_value_is_cached_for_the_ttl(tmp_path: Path) -> None:
    clock = Clock()
    secrets = resolver(tmp_path, ttl_seconds=60, clock=clock)
    (tmp_path / "s").write_text("first")
    assert await secrets.resolve("secret://file/s") == "first"

    (tmp_path / "s").write_text("second")
    clock.now += 59.9
    assert await secrets.resolve("secret://file/s") == "first"

    clock.now += 0.1
    assert await secrets.resolve("secret://file/s") == "second"


async def test_the_cache_holds_values_without_reading_again(tmp_path: Path) -> None:
    secrets = resolver(tmp_path, clock=Clock())
    (tmp_path / "s").write_text(VALUE)
    assert await secrets.resolve("secret://file/s") == VALUE
    (tmp_path / "s").unlink()
    assert await secrets.resolve("secret://file/s") == VALUE


async def test_the_cache_is_keyed_by_reference(tmp_path: Path) -> None:
    secrets = resolver(tmp_path, clock=Clock())
    (tmp_path / "a").write_text("A")
    (tmp_path / "b").write_text("B")
    assert await secrets.resolve("secret://file/a") == "A"
    assert await secrets.resolve("secret://file/b") == "B"


async def test_failures_are_not_cached(tmp_path: Path) -> None:
    secrets = resolver(tmp_path, clock=Clock())
    with pytest.raises(SecretUnavailable):
        await secrets.resolve("secret://file/s")
    (tmp_path / "s").write_text(VALUE)
    assert await secrets.resolve("secret://file/s") == VALUE


# --- aws-sm, against moto's server standing in for AWS Secrets Manager ---------------------------


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stand_in_secrets_manager() -> Iterator[str]:
    """moto's server as a stand-in AWS Secrets Manager: a boundary we do not own, spoken to over HTTP."""
    port = free_port()
    if find_spec("moto") is None:
        require_server(
            "127.0.0.1", port, "moto's stand-in Secrets Manager server (moto[server] is not installed)"
        )
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not _listening(port) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        require_server("127.0.0.1", port, "moto's stand-in Secrets Manager server")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials the stand-in accepts, and nothing from this machine's AWS set-up."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def secrets_manager(stand_in_secrets_manager: str, aws_env: None) -> Any:
    """A boto3 client of the stand-in, to create the secrets the resolver then reads."""
    import boto3

    return boto3.client("secretsmanager", region_name=REGION, endpoint_url=stand_in_secrets_manager)


def aws_resolver(tmp_path: Path, endpoint: str, **kwargs: Any) -> ChainSecretResolver:
    return resolver(tmp_path, allow_env=False, aws_region=REGION, aws_endpoint_url=endpoint, **kwargs)


def _name() -> str:
    return f"spine/test/{uuid.uuid4().hex}"


async def test_aws_secret_by_name_and_by_arn(
    tmp_path: Path, stand_in_secrets_manager: str, secrets_manager: Any
) -> None:
    name = _name()
    arn = secrets_manager.create_secret(Name=name, SecretString=VALUE)["ARN"]
    secrets = aws_resolver(tmp_path, stand_in_secrets_manager)
    assert await secrets.resolve(f"secret://aws-sm/{name}") == VALUE
    assert await secrets.resolve(f"secret://aws-sm/{arn}") == VALUE


async def test_aws_secret_is_cached_for_the_ttl(
    tmp_path: Path, stand_in_secrets_manager: str, secrets_manager: Any
) -> None:
    name = _name()
    secrets_manager.create_secret(Name=name, SecretString="first")
    clock = Clock()
    secrets = aws_resolver(tmp_path, stand_in_secrets_manager, ttl_seconds=60, clock=clock)
    assert await secrets.resolve(f"secret://aws-sm/{name}") == "first"

    secrets_manager.put_secret_value(SecretId=name, SecretString="second")
    assert await secrets.resolve(f"secret://aws-sm/{name}") == "first"
    clock.now += 60
    assert await secrets.resolve(f"secret://aws-sm/{name}") == "second"


async def test_a_missing_aws_secret_is_unavailable(
    tmp_path: Path, stand_in_secrets_manager: str, secrets_manager: Any
) -> None:
    ref = f"secret://aws-sm/{_name()}"
    with pytest.raises(SecretUnavailable) as caught:
        await aws_resolver(tmp_path, stand_in_secrets_manager).resolve(ref)
    assert "ResourceNotFoundException" in str(caught.value)
    assert caught.value.details() == {"ref": ref}


async def test_a_binary_aws_secret_is_unavailable_and_not_quoted(
    tmp_path: Path, stand_in_secrets_manager: str, secrets_manager: Any
) -> None:
    name = _name()
    secrets_manager.create_secret(Name=name, SecretBinary=VALUE.encode())
    with pytest.raises(SecretUnavailable, match="SecretString") as caught:
        await aws_resolver(tmp_path, stand_in_secrets_manager).resolve(f"secret://aws-sm/{name}")
    assert_hides(caught.value, VALUE)


async def test_an_unreachable_secrets_manager_is_unavailable(tmp_path: Path, aws_env: None) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(SecretUnavailable, match="unreachable"):
        await aws_resolver(tmp_path, endpoint).resolve("secret://aws-sm/prod/db")
