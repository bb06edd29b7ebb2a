"""What the S3 object store does beyond the contract: the conditions its pre-signed POST carries
(moto's server does not enforce them, S3 does, so the test reads the signed policy itself), and
the route config it refuses."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec
import pytest

from adapters.s3.objects import S3ObjectStore, s3_options
from domain.errors import InvalidRequest
from tests.backends import OBJECTS


async def test_a_signed_post_bounds_the_size_and_fixes_the_type(tmp_path: Path) -> None:
    async with OBJECTS["s3"](tmp_path) as objects:
        upload = await objects.store.signed_upload(
            "photos/cat.png", content_type="image/png", max_bytes=1234, expires_in=300
        )
    assert upload is not None
    assert upload.method == "POST"
    assert upload.fields["key"] == "tests/photos/cat.png"  # the route's prefix, then the name
    assert upload.fields["Content-Type"] == "image/png"
    policy = json.loads(base64.b64decode(upload.fields["policy"]))
    assert ["content-length-range", 0, 1234] in policy["conditions"]
    assert {"Content-Type": "image/png"} in policy["conditions"]
    assert "x-amz-signature" in upload.fields  # SigV4, which every region takes


@pytest.mark.parametrize(
    "config",
    [
        {"multipart_threshold_bytes": 1024},  # below S3's minimum part
        {"multipart_threshold_bytes": "8MB"},
        {"request_timeout_seconds": 0},
    ],
)
def test_a_config_the_adapter_cannot_use_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        S3ObjectStore(**s3_options({"bucket": "b", "region": "us-east-1", **config}))


def test_the_route_config_reaches_the_adapter() -> None:
    options = s3_options(
        {"bucket": "b", "region": "eu-west-1", "endpoint_url": "http://s3.local", "prefix": "p/",
         "multipart_threshold_bytes": 16 * 1024 * 1024, "connect_timeout_seconds": 1}
    )  # fmt: skip
    assert options["part_size"] == 16 * 1024 * 1024
    assert (options["bucket"], options["region"], options["endpoint_url"], options["prefix"]) == (
        "b", "eu-west-1", "http://s3.local", "p/",
    )  # fmt: skip
    assert msgspec.to_builtins(options["timeouts"]) == {"connect": 1.0, "request": 5.0}
