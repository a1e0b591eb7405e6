"""Sentences in docs/ that say what cacher does with credentials, held to the code.

Issue 27 item 1: docs/migration.md once said cacher never reads the ``AWS_*`` variables while
it did. Each test here reads the sentence from the page and runs the installed cacher against
SeaweedFS, so the page and the code cannot drift apart again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.s3


def _migration_row() -> str:
    rows = [line for line in (DOCS / "migration.md").read_text().splitlines() if line.startswith("| `AWS_ACCESS_KEY_ID`")]
    assert len(rows) == 1, rows
    return rows[0]


def test_migration_says_the_aws_chain_is_the_fallback_and_it_is(
    cacher, seaweed_s3: Any, s3_bucket: str, tmp_path: Path
) -> None:
    row = _migration_row()
    assert "does not read" not in row
    assert "fall back to the AWS chain" in row and "the `AWS_*` ones are never read" in row
    f = tmp_path / "f.bin"
    f.write_bytes(b"via the AWS chain")
    store = {"CACHER_ENDPOINT": seaweed_s3.endpoint, "CACHER_BUCKET": s3_bucket}
    aws = {"AWS_ACCESS_KEY_ID": seaweed_s3.key_id, "AWS_SECRET_ACCESS_KEY": seaweed_s3.secret}
    # Only AWS_* set: the chain is read, as the page says.
    up = cacher("upload", "aws.bin", str(f), extra_env={**store, **aws})
    assert up.code == 0, up
    doctor = cacher("doctor", extra_env={**store, **aws})
    assert doctor.code == 0 and "AWS chain" in doctor.err, doctor
    # cacher's own set too: the AWS_* ones are never read (wrong ones would fail the signature).
    own = {"CACHER_S3_KEY_ID": seaweed_s3.key_id, "CACHER_S3_SECRET": seaweed_s3.secret}
    wrong = {"AWS_ACCESS_KEY_ID": "AKIDWRONG", "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    run = cacher("download", "aws.bin", str(tmp_path / "out"), extra_env={**store, **own, **wrong})
    assert run.code == 0, run
    assert (tmp_path / "out").read_bytes() == b"via the AWS chain"
    assert "wrong-secret" not in run.err + run.out
