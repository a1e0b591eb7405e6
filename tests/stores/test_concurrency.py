"""Many writers and readers of one key on a real S3 server (SeaweedFS).

Eight processes upload different contents under the same key (``--force``: each really
uploads) while eight download it. Every download ends with a miss (exit 3) or one writer's
complete content, never a mix of two; the final object is one writer's complete content; no
multipart upload is left. S3 has no locks: the last writer wins, and a reader is pinned to
the object it started with (If-Match on every ranged GET).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CACHER
from tests.fault_proxy import s3_env

pytestmark = pytest.mark.s3

WRITERS = READERS = 8
SIZE = 7 << 20  # two 5 MiB parts; two ranged GETs per download


def _round(env: dict[str, str], tmp_path: Path, sources: list[Path]) -> list[tuple[int, str, Path]]:
    procs: list[tuple[subprocess.Popen[str], Path | None]] = []
    for src in sources:
        procs.append(
            (
                subprocess.Popen(
                    [CACHER, "upload", "--force", "shared.bin", str(src)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
                None,
            )
        )
    for i in range(READERS):
        time.sleep(0.3)  # readers spread over the writers' lifetime
        dest = tmp_path / f"dest{i}.bin"
        procs.append(
            (
                subprocess.Popen(
                    [CACHER, "download", "shared.bin", str(dest)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
                dest,
            )
        )
    results = []
    for proc, dest in procs:
        _, err = proc.communicate(timeout=180)
        results.append((proc.returncode, err, dest))
    return results


def test_eight_writers_and_eight_readers_of_one_key(
    env: dict[str, str], seaweed_s3: Any, s3_bucket: str, tmp_path: Path
) -> None:
    env = {**env, **s3_env(seaweed_s3, s3_bucket, CACHER_READ_TIMEOUT="60")}
    sources = []
    for i in range(WRITERS + 1):
        src = tmp_path / f"src{i}.bin"
        src.write_bytes(bytes([i]) * 4096 + os.urandom(SIZE))
        sources.append(src)
    contents = {src.read_bytes() for src in sources}

    # A first version exists, so every reader finds an object while the writers replace it.
    seaweed_s3.client().put_object(Bucket=s3_bucket, Key="shared.bin", Body=sources[-1].read_bytes())
    outcomes = {"miss": 0, "hit": 0, "replaced": 0}
    for code, err, dest in _round(env, tmp_path, sources[:WRITERS]):
        assert "Traceback" not in err, err
        if dest is None:
            assert code == 0, err
        elif code == 3:  # allowed by the contract; here the key always exists
            assert not dest.exists()
            outcomes["miss"] += 1
        elif code == 2:
            # Reads are pinned to the ETag: a replaced object is never mixed into the output.
            assert "replaced while it was read" in err, err
            assert not dest.exists()
            outcomes["replaced"] += 1
        else:
            assert code == 0, f"download exited {code}: {err}"
            assert dest.read_bytes() in contents, "a download restored a mix of two writers"
            outcomes["hit"] += 1
    assert seaweed_s3.get_bytes(s3_bucket, "shared.bin") in contents
    assert seaweed_s3.multipart_uploads(s3_bucket) == []
    assert seaweed_s3.list_keys(s3_bucket) == ["shared.bin"]
    assert sorted(p.name for p in tmp_path.iterdir() if ".cacher-" in p.name) == []
    assert not outcomes["replaced"], f"a download failed on a replaced object instead of reading it again: {outcomes}"
    assert outcomes["hit"] + outcomes["miss"] == READERS, outcomes
