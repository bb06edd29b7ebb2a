"""Backends are chosen by routes, never by the environment (bootstrap configuration aside)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.settings import Settings
from domain.backend_url import Backend, parse_backend_url

REPO = Path(__file__).parents[2]
CODE = [REPO / package for package in ("app", "adapters", "domain", "projections")]
# settings.py reads SPINE_* bootstrap configuration; the secret resolver's secret://env/ scheme
# reads the variable a route names (lab and dev only). Nothing else may read the environment.
MAY_READ_THE_ENVIRONMENT = {"app/settings.py", "adapters/secret_resolver.py"}


def test_only_bootstrap_configuration_reads_the_environment() -> None:
    readers = {
        str(path.relative_to(REPO))
        for package in CODE
        for path in package.rglob("*.py")
        if re.search(r"os\.environ|getenv|from os import environ", path.read_text())
    }
    assert readers == MAY_READ_THE_ENVIRONMENT


def test_the_one_backend_setting_is_the_system_spine() -> None:
    """Of the settings, only SPINE_SYSTEM_URL picks a store (SPINE_REDIS_URL picks the notifier)."""
    backendish = {
        name
        for name in Settings.__struct_fields__
        if re.search(r"url|store|backend|dynamo|firestore|cosmos", name)
    }
    assert backendish == {"system_url", "redis_url", "jwks_url"}


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////srv/spine/system.db", "/srv/spine/system.db"),
        ("sqlite:///./rel/system.db", "rel/system.db"),
    ],
)
def test_sqlite_system_urls_name_a_file_relative_to_the_working_directory(url: str, path: str) -> None:
    assert Settings(system_url=url).system == Backend(
        backend_type="sqlite", config={"path": str(Path(path).resolve())}
    )


@pytest.mark.parametrize(
    ("url", "backend_type", "config"),
    [
        ("memory://", "memory", {}),
        ("dynamodb://spine?region=eu-west-1", "dynamodb", {"table": "spine", "region": "eu-west-1"}),
        (
            "dynamodb://spine?region=us-east-1&endpoint_url=http://127.0.0.1:8000&create_table=true",
            "dynamodb",
            {
                "table": "spine",
                "region": "us-east-1",
                "endpoint_url": "http://127.0.0.1:8000",
                "create_table": True,
            },
        ),
        ("firestore://acme-prod", "firestore", {"project": "acme-prod"}),
        (
            "firestore://acme-dev?database=spine&emulator_host=127.0.0.1:8686",
            "firestore",
            {"project": "acme-dev", "database": "spine", "emulator_host": "127.0.0.1:8686"},
        ),
        (
            "cosmos://acme.documents.azure.com:443/spine?key=secret://env/COSMOS_KEY",
            "cosmos",
            {
                "database": "spine",
                "endpoint": "https://acme.documents.azure.com:443/",
                "key": "secret://env/COSMOS_KEY",
            },
        ),
        (
            "cosmos://127.0.0.1:8081/spine?key=secret://env/K&tls=false&container=events",
            "cosmos",
            {
                "database": "spine",
                "endpoint": "http://127.0.0.1:8081/",
                "key": "secret://env/K",
                "container": "events",
            },
        ),
    ],
)
def test_cloud_system_urls_carry_a_routes_config(
    url: str, backend_type: str, config: dict[str, object]
) -> None:
    backend = Settings(system_url=url).system
    assert backend == Backend(backend_type=backend_type, config=config)  # type: ignore[arg-type]
    assert parse_backend_url(backend.url) == backend  # printed and parsed back, it names the same


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgres://db/spine", "starts with"),
        ("spine.db", "starts with"),
        ("dynamodb://spine", "needs config ['region']"),
        ("dynamodb://?region=r", "names its table"),
        ("cosmos://host:443/db?key=plaintext", "looks like a secret"),
        ("cosmos://host:443?key=secret://env/K", "cosmos://HOST:PORT/DATABASE"),
        ("firestore://p?database", "NAME=VALUE"),
    ],
)
def test_a_wrong_system_url_is_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="SPINE_SYSTEM_URL") as refused:
        _ = Settings(system_url=url).system
    assert says in str(refused.value)
    assert "plaintext" not in str(refused.value)
