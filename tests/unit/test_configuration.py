"""Backends are chosen by routes, never by the environment (bootstrap configuration aside)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spine.app.settings import Settings

SPINE = Path(__file__).parents[2] / "spine"
# settings.py reads SPINE_* bootstrap configuration; the secret resolver's secret://env/ scheme
# reads the variable a route names (lab and dev only). Nothing else may read the environment.
MAY_READ_THE_ENVIRONMENT = {"app/settings.py", "adapters/secret_resolver.py"}


def test_only_bootstrap_configuration_reads_the_environment() -> None:
    readers = {
        str(path.relative_to(SPINE))
        for path in SPINE.rglob("*.py")
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
def test_system_url_forms(url: str, path: str) -> None:
    assert Settings(system_url=url).spine_path == Path(path)


def test_an_unknown_system_url_is_refused() -> None:
    with pytest.raises(ValueError, match="SPINE_SYSTEM_URL"):
        _ = Settings(system_url="dynamodb://t?region=r").spine_path
