"""Upload bodies go with ``x-amz-content-sha256: UNSIGNED-PAYLOAD``, and every other Garage
rule of the wire test still holds (docs/reliability.md, "No pass over the bytes that buys
nothing"; issue 29)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

pytestmark = pytest.mark.s3


def test_bodies_go_unsigned_and_everything_else_is_signed(
    cacher: Any, seaweed_s3: Any, s3_bucket: str, tmp_path: Path
) -> None:
    from tests.realparts.recording_proxy import RecordingProxy

    big, small = tmp_path / "big.bin", tmp_path / "small.bin"
    big.write_bytes(os.urandom(11 << 20))  # three 5 MiB parts: a multipart upload
    small.write_bytes(b"small")  # one PutObject
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        env = {
            "CACHER_ENDPOINT": proxy.endpoint,
            "CACHER_BUCKET": s3_bucket,
            "CACHER_S3_KEY_ID": seaweed_s3.key_id,
            "CACHER_S3_SECRET": seaweed_s3.secret,
            "CACHER_PART_SIZE_MB": "5",
        }
        assert cacher("upload", "p/big", str(big), extra_env=env).code == 0
        assert cacher("upload", "p/small", str(small), extra_env=env).code == 0
        assert cacher("exists", "p/big", extra_env=env).code == 0
        assert cacher("download", "p/big", str(tmp_path / "out"), extra_env=env).code == 0
        requests = list(proxy.requests)
    assert (tmp_path / "out").read_bytes() == big.read_bytes()
    puts = [r for r in requests if r.method == "PUT"]
    assert len(puts) == 4, [r.target for r in requests]  # three parts and one PutObject
    for r in requests:
        authorization = r.header("Authorization") or ""
        assert authorization.startswith("AWS4-HMAC-SHA256 "), r.target
        assert "x-amz-content-sha256" in authorization, r.target  # the header itself is signed
        payload = r.header("x-amz-content-sha256")
        names = {n.lower() for n in r.header_names()}
        assert not any(n.startswith("x-amz-checksum-") for n in names), (r.target, names)
        assert "aws-chunked" not in (r.header("Content-Encoding") or ""), r.target
        if r.method in ("PUT", "POST"):  # parts, PutObject, create and complete: not hashed
            assert payload == "UNSIGNED-PAYLOAD", (r.target, payload)
        else:  # HEAD and GET, signed by hand: no body, the empty string's hash
            assert payload == EMPTY_SHA256, (r.target, payload)
    metadata = [r for r in requests if r.method == "PUT" and "uploadId" not in r.target]
    assert all("x-amz-meta-" in (r.header("Authorization") or "") for r in metadata)  # metadata signed
