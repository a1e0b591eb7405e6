"""A missing bucket reads the same on every request path (issue 27 item 2), on moto's S3 server.

SeaweedFS creates a bucket on a PUT to a missing one, so this is moto's: it answers
``NoSuchBucket``. Every command exits 2 with the one line "the bucket 'x' does not exist" and
its hint (under ``--soft-fail``, a warning and a miss or a skipped upload); none blames a local
file, none calls it internal, and ``list`` never prints an empty listing for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_one_error_line

pytestmark = pytest.mark.s3

MESSAGE = "the bucket 'no-such-bucket' does not exist"


@pytest.fixture
def nobucket(moto_s3: Any) -> dict[str, str]:
    return {
        "CACHER_ENDPOINT": moto_s3.endpoint,
        "CACHER_BUCKET": "no-such-bucket",
        "CACHER_S3_KEY_ID": moto_s3.key_id,
        "CACHER_S3_SECRET": moto_s3.secret,
        "CACHER_MAX_ATTEMPTS": "1",
    }


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "small.txt").write_text("small")
    (tmp_path / "big.bin").write_bytes(os.urandom(12 << 20))  # multipart
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_text("f")
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["upload", "k", "{d}/small.txt"],
        ["upload", "k12", "{d}/big.bin"],
        ["dir", "upload", "d.tar.zst", "{d}/tree"],
        ["list"],
        ["list", "--json"],
        ["stats"],
        ["prune", "--older-than", "0s", "--dry-run", "p/"],
        ["exists", "k"],
        ["download", "k", "{d}/out"],
        ["download", "k", "{d}/out", "--restore-key", "k"],
        ["delete", "k"],
    ],
)
def test_every_command_names_the_missing_bucket(cacher, nobucket: dict[str, str], files: Path, argv: list[str]) -> None:
    run = cacher(*[a.format(d=files) for a in argv], extra_env=nobucket)
    assert_one_error_line(run, MESSAGE, "hint: create it")
    assert "internal" not in run.err and "cannot read" not in run.err
    if "--json" in argv:
        assert json.loads(run.out)["error"]["kind"] == "storage"
    assert not (files / "out").exists()


def test_soft_fail_makes_it_a_warning(cacher, nobucket: dict[str, str], files: Path) -> None:
    up = cacher("upload", "k", str(files / "small.txt"), "--soft-fail", extra_env=nobucket)
    assert up.code == 0 and "warning: soft failure" in up.err and MESSAGE in up.err, up
    down = cacher("download", "k", str(files / "out"), "--soft-fail", extra_env=nobucket)
    assert down.code == 3 and MESSAGE in down.err, down
    assert not (files / "out").exists()
