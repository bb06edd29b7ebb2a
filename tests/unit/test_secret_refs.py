"""Secret references: what parses, what does not, what no route config may hold, and what `redact`
hides."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from app.settings import Settings
from domain.backend_url import parse_backend_url
from domain.errors import ForbiddenSecretRef, InvalidSecretRef, SecretInConfig
from domain.routing import Route, RouteChange
from domain.secrets import (
    NO_SECRET_FILES,
    SecretFiles,
    SecretRef,
    check_secrets,
    is_secret_ref,
    own_secret_reason,
    parse_secret_ref,
    redact,
)

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"


@pytest.mark.parametrize(
    ("ref", "scheme", "name"),
    [
        ("secret://env/DB_PASSWORD", "env", "DB_PASSWORD"),
        ("secret://env/_X1", "env", "_X1"),
        ("secret://env/A", "env", "A"),
        ("secret://file//run/secrets/db", "file", "/run/secrets/db"),
        ("secret://file/secrets/db.txt", "file", "secrets/db.txt"),
        ("secret://file/with space/and:colon", "file", "with space/and:colon"),
        ("secret://aws-sm/prod/db", "aws-sm", "prod/db"),
        ("secret://aws-sm/name_with+=.@-chars", "aws-sm", "name_with+=.@-chars"),
        (f"secret://aws-sm/{ARN}", "aws-sm", ARN),
    ],
)
def test_well_formed_references_parse(ref: str, scheme: str, name: str) -> None:
    parsed = parse_secret_ref(ref)
    assert parsed == SecretRef(scheme=scheme, name=name)
    assert str(parsed) == ref
    assert is_secret_ref(ref)


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "secret://",
        "secret://env",
        "secret://env/",
        "secret://env/db_password",
        "secret://env/1ABC",
        "secret://env/A-B",
        "secret://env/A B",
        "secret://env/ABC\n",
        "secret://env/A/B",
        "secret://file/",
        "secret://file",
        "secret://file/a\x00b",
        "secret://aws-sm/",
        "secret://aws-sm",
        "secret://aws-sm/has space",
        "secret://aws-sm/new\nline",
        "secret://vault/kv/db",
        "secret://ENV/DB",
        "secret:/env/DB",
        "SECRET://env/DB",
        " secret://env/DB",
        "env/DB",
        "https://example.com/secret",
    ],
)
def test_malformed_references_are_refused(ref: str) -> None:
    with pytest.raises(InvalidSecretRef) as caught:
        parse_secret_ref(ref)
    assert caught.value.code == "secret.invalid_ref"
    assert not is_secret_ref(ref)


def test_a_string_without_the_scheme_is_not_echoed() -> None:
    """What was passed where a reference belongs may be the secret itself."""
    pasted = "hunter2-the-actual-password"
    with pytest.raises(InvalidSecretRef) as caught:
        parse_secret_ref(pasted)
    assert pasted not in str(caught.value)
    assert pasted not in repr(caught.value.details())


def test_a_malformed_reference_is_named() -> None:
    with pytest.raises(InvalidSecretRef) as caught:
        parse_secret_ref("secret://vault/kv/db")
    assert "secret://vault/kv/db" in str(caught.value)
    assert caught.value.details() == {"ref": "secret://vault/kv/db"}


@pytest.mark.parametrize(
    "value", [None, 42, b"secret://env/A", ["secret://env/A"], {"ref": "secret://env/A"}]
)
def test_non_strings_are_not_references(value: object) -> None:
    assert not is_secret_ref(value)


@pytest.mark.parametrize(
    ("config", "shown"),
    [
        ({"password": "p"}, {"password": "***"}),
        ({"Password": "p", "user": "u"}, {"Password": "***", "user": "u"}),
        ({"api_key": "k", "KeyId": "k2"}, {"api_key": "***", "KeyId": "***"}),
        ({"client_secret": "s", "SECRET": "s"}, {"client_secret": "***", "SECRET": "***"}),
        ({"auth_token": "t"}, {"auth_token": "***"}),
        ({"credentials": "c", "aws_credential": "c"}, {"credentials": "***", "aws_credential": "***"}),
        ({"connection_string": "Server=x;Password=p"}, {"connection_string": "***"}),
        ({"password": "secret://env/DB_PASSWORD"}, {"password": "secret://env/DB_PASSWORD"}),
        ({"password": "secret://file//run/secrets/db"}, {"password": "secret://file//run/secrets/db"}),
        # a malformed reference under a secret key may be a secret: hidden like one
        ({"password": "secret://hunter2"}, {"password": "***"}),
        # non-secret keys are shown, whatever their values look like
        ({"url": "redis://h:6379", "table": "events"}, {"url": "redis://h:6379", "table": "events"}),
        ({"region": "eu-west-1", "tier": "hot"}, {"region": "eu-west-1", "tier": "hot"}),
        # only strings are secrets: numbers, booleans and None under secret keys are kept
        (
            {"token_ttl": 3600, "key_rotation": True, "secret": None},
            {"token_ttl": 3600, "key_rotation": True, "secret": None},
        ),
        # nested dicts and lists are walked
        ({"backend": {"password": "p", "host": "h"}}, {"backend": {"password": "***", "host": "h"}}),
        ({"replicas": [{"token": "t", "host": "h"}]}, {"replicas": [{"token": "***", "host": "h"}]}),
        # everything under a secret key is hidden, at any depth, references excepted
        ({"api_keys": ["k1", "secret://aws-sm/k2"]}, {"api_keys": ["***", "secret://aws-sm/k2"]}),
        (
            {"credentials": {"user": "u", "pw": "p", "ref": "secret://env/PW"}},
            {"credentials": {"user": "***", "pw": "***", "ref": "secret://env/PW"}},
        ),
        # non-dict roots
        ("plain", "plain"),
        (["a", {"secret": "s"}], ["a", {"secret": "***"}]),
        (None, None),
    ],
)
def test_redact(config: object, shown: object) -> None:
    assert redact(config) == shown


def test_redact_copies_and_leaves_the_input_alone() -> None:
    config = {"password": "p", "nested": {"token": "t"}, "list": [{"key": "k"}]}
    before = {"password": "p", "nested": {"token": "t"}, "list": [{"key": "k"}]}
    redact(config)
    assert config == before


# --- no secret in a config, no reference to Spine's own ---------------------------------------------

PW = "hunter2-pw"
FILES = SecretFiles(root="/run/secrets", own="/var/spine/secrets")


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"endpoint_url": f"http://user:{PW}@host:8000"}, "config.endpoint_url"),
        ({"endpoint_url": f"http://{PW}@host"}, "config.endpoint_url"),
        ({"url": f"redis://:{PW}@host:6379/0"}, "config.url"),
        ({"url": f"redis://host:6379/0?password={PW}"}, "config.url"),
        ({"url": f"redis://host:6379/0?db=1&pass%77ord={PW}"}, "config.url"),  # percent-encoded name
        ({"account_url": f"https://acct.blob.core.windows.net/?sv=2024&sig={PW}"}, "config.account_url"),
        ({"dsn": f"Server=db;Password={PW}"}, "config.dsn"),
        ({"a": [{"b": [f"https://u:{PW}@h"]}]}, "config.a[0].b[0]"),
        ({"note": f"mirror at ftp://u:{PW}@mirror/x"}, "config.note"),
        ({"password": PW}, "config.password"),
        ({"auth": {"token": PW}}, "config.auth.token"),
        ({"credentials": {"user": "u"}}, "config.credentials.user"),
        ({"key": 12345}, "config.key"),
        ({"key": "secret://vault/kv"}, "config.key"),  # malformed under a secret key: may be a secret
    ],
)
def test_a_config_holding_a_secret_is_refused_naming_where(config: dict[str, Any], key: str) -> None:
    with pytest.raises(SecretInConfig) as caught:
        check_secrets(config, "config", files=FILES)
    assert caught.value.code == "routing.secret_in_config"
    assert caught.value.details() == {"key": key}
    assert PW not in str(caught.value)
    assert "12345" not in str(caught.value)


@pytest.mark.parametrize(
    "config",
    [
        {"endpoint_url": "http://localhost:8000", "table": "t", "region": "eu-west-1"},
        {"url": "redis://cache:6379/0?db=1&socket_timeout=2"},
        {"url": "redis://cache:6379/0?password=secret://env/REDIS_PW"},  # a reference in a query
        {"endpoint": "https://acct.documents.azure.com:443/", "key": "secret://aws-sm/prod/cosmos"},
        {"credentials": {"ref": "secret://env/DB_PW"}, "password": "secret://file/db"},
        {"path": "data/a@b.db", "email": "ops@example.com", "emulator_host": "127.0.0.1:8080"},
        {"endpoint_url": "https://host/path@v2?x=1"},  # an @ after the authority is not user info
        {"url": "redis://cache:6379/0?password="},  # an empty value holds nothing
        {"create_table": True, "retries": 3, "tags": ["a", "b"]},
    ],
)
def test_a_config_without_secrets_passes(config: dict[str, Any]) -> None:
    check_secrets(config, "config", files=FILES)


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("secret://env/SPINE_TOKEN_KEY", "Spine's own configuration"),
        ("secret://env/SPINE_BOOTSTRAP_KEY", "Spine's own configuration"),
        ("secret://env/SPINE_REDIS_URL", "Spine's own configuration"),
        ("secret://env/SPINE_", "Spine's own configuration"),
        ("secret://file/../etc/passwd", "'..'"),
        ("secret://file/a/../../etc/passwd", "'..'"),
        ("secret://file/a/../b", "'..'"),  # even back inside: a reference names its file plainly
        ("secret://file//etc/passwd", "outside the secrets directory"),
        ("secret://file//run/secrets-other/db", "outside the secrets directory"),
        ("secret://file//var/spine/secrets/token.key", "Spine's own key material"),
        ("secret://file//var/spine/secrets/bootstrap.key", "Spine's own key material"),
    ],
)
def test_a_reference_no_route_may_hold_is_refused(ref: str, reason: str) -> None:
    assert reason in (own_secret_reason(parse_secret_ref(ref), FILES) or "")
    with pytest.raises(ForbiddenSecretRef, match=re.escape(reason)) as caught:
        check_secrets({"nested": [{"key": ref}]}, "config", files=FILES)
    assert caught.value.code == "routing.invalid_secret_ref"
    assert caught.value.details() == {"key": "config.nested[0].key"}


def test_spines_own_key_files_are_refused_even_inside_the_secrets_dir() -> None:
    inside = SecretFiles(root="/var/spine", own="/var/spine/secrets")
    assert own_secret_reason(parse_secret_ref("secret://file/secrets/token.key"), inside) is not None
    assert own_secret_reason(parse_secret_ref("secret://file/vault/db"), inside) is None


@pytest.mark.parametrize(
    "ref",
    [
        "secret://env/DB_PASSWORD",
        "secret://env/MY_SPINE_KEY",  # Spine's namespace is a prefix
        "secret://file/db",
        "secret://file/team/db.key",
        "secret://file//run/secrets/db",
        "secret://aws-sm/prod/db",
    ],
)
def test_references_a_route_may_hold(ref: str) -> None:
    assert own_secret_reason(parse_secret_ref(ref), FILES) is None
    check_secrets({"key": ref}, "config", files=FILES)


def test_without_a_secrets_dir_no_file_reference_passes() -> None:
    for ref in ("secret://file/db", "secret://file//run/secrets/db"):
        assert "SPINE_SECRETS_DIR" in (own_secret_reason(parse_secret_ref(ref), NO_SECRET_FILES) or "")
    # None: the caller leaves files to the resolver (a backend URL, parsed before any settings)
    check_secrets({"key": "secret://file//anywhere"}, "config", files=None)
    with pytest.raises(ForbiddenSecretRef):
        check_secrets({"key": "secret://env/SPINE_TOKEN_KEY"}, "config", files=None)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("http://user:pw@host:8000/p", "http://***@host:8000/p"),
        ("http://user@host", "http://***@host"),
        ("redis://:pw@cache:6379/0", "redis://***@cache:6379/0"),
        ("http://user:p@ss@host/x@y", "http://***@host/x@y"),  # the user info runs to the last @
        ("redis://cache:6379/0?db=1&password=pw", "redis://cache:6379/0?db=1&password=***"),
        ("https://a.blob.core.windows.net/?sv=1&sig=abc", "https://a.blob.core.windows.net/?sv=1&sig=***"),
        ("Server=db;Password=pw;Db=x", "Server=db;Password=***;Db=x"),
        ("see https://ops:pw@wiki/db and http://ok/", "see https://***@wiki/db and http://ok/"),
        ("redis://cache?password=secret://env/PW", "redis://cache?password=secret://env/PW"),
        ("http://host:8000", "http://host:8000"),
        ("ops@example.com", "ops@example.com"),
    ],
)
def test_redact_hides_user_info_and_secret_parameters_anywhere(value: str, shown: str) -> None:
    assert redact(value) == shown
    assert redact({"url": value, "list": [value]}) == {"url": shown, "list": [shown]}


def test_redact_with_secret_hides_every_value_but_references() -> None:
    refs = {"a": "secret://env/A", "b": "plaintext", "c": ["secret://hunter2", "secret://file/x"]}
    assert redact(refs, secret=True) == {"a": "secret://env/A", "b": "***", "c": ["***", "secret://file/x"]}


@pytest.mark.parametrize(
    "url",
    [
        f"dynamodb://user:{PW}@spine?region=eu-west-1",
        f"dynamodb://spine?region=eu-west-1&endpoint_url=http://u:{PW}@localhost:8000",
        f"firestore://p?emulator_host=h:1&password={PW}",
        f"cosmos://u:{PW}@acct.documents.azure.com:443/db?key=secret://env/K",
        f"cosmos://acct.documents.azure.com:443/db?key={PW}",
    ],
)
def test_a_system_url_holding_a_secret_is_refused_without_echoing_it(url: str) -> None:
    """`SPINE_SYSTEM_URL` (and `spine replay --into`) are held to the one rule."""
    with pytest.raises(SecretInConfig) as caught:
        parse_backend_url(url)
    assert PW not in str(caught.value)
    with pytest.raises(ValueError, match="SPINE_SYSTEM_URL") as refused:
        _ = Settings(system_url=url).system
    assert PW not in str(refused.value)


@pytest.mark.parametrize("name", ["SPINE_TOKEN_KEY", "SPINE_BOOTSTRAP_KEY"])
def test_a_system_url_referencing_spines_own_key_is_refused(name: str) -> None:
    with pytest.raises(ForbiddenSecretRef):
        parse_backend_url(f"cosmos://acct.documents.azure.com:443/db?key=secret://env/{name}")


def test_a_stored_route_and_its_history_are_shown_redacted() -> None:
    """What a route.set written by an older version holds is never shown as it is."""
    route = Route(
        resource_kind="event_spine", tenant_id="t1", env="dev", backend_type="dynamodb",
        config={"table": "t", "region": "r", "endpoint_url": "http://u:pw@h", "nested": {"password": "pw"}},
        secret_refs={"a": "secret://env/A", "b": "pw"}, cost_notes="http://u:pw@wiki",
        switch_rationale="moved off redis://:pw@old",
    )  # fmt: skip
    shown = route.redacted()
    assert shown.config == {
        "table": "t",
        "region": "r",
        "endpoint_url": "http://***@h",
        "nested": {"password": "***"},
    }
    assert shown.secret_refs == {"a": "secret://env/A", "b": "***"}
    assert (shown.cost_notes, shown.switch_rationale) == ("http://***@wiki", "moved off redis://***@old")
    assert route.config["endpoint_url"] == "http://u:pw@h"  # the registry keeps what it resolves
    change = RouteChange(
        position=1, at=datetime(2026, 1, 1, tzinfo=UTC), action="set", route=route, key=route.key,
        rationale="moved off redis://:pw@old",
    )  # fmt: skip
    assert change.redacted().route == shown
    assert change.redacted().rationale == "moved off redis://***@old"
    assert "pw" not in msgspec.json.encode(change.redacted()).decode().replace("password", "")


def test_every_variable_spine_reads_is_refused_as_a_reference() -> None:
    """`Settings.from_env` reads SPINE_<FIELD>: each one, credential or not, is Spine's own."""
    for field in Settings.__struct_fields__:
        ref = SecretRef(scheme="env", name=f"SPINE_{field.upper()}")
        assert own_secret_reason(ref, None) is not None, ref
