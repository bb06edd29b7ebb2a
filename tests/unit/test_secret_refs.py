"""Secret references: what parses, what does not, and what `redact` hides."""

from __future__ import annotations

import pytest

from spine.domain.errors import InvalidSecretRef
from spine.domain.secrets import SecretRef, is_secret_ref, parse_secret_ref, redact

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
