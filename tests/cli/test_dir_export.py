"""``cacher dir export KEY``: a stored tree as a plain tar on stdout, in either format.

The installed ``cacher`` uploads a tree (content-addressed with ``--tree-format cas``, or the
plain tar.zst), ``cacher dir export`` pipes into GNU tar, and the extracted tree equals the
original; ``cacher dir download`` restores the same tree from the manifest. A miss exits 3 with
nothing on stdout, a damaged pack exits 2 with one error line and the destination untouched.
On the file store and on SeaweedFS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cacher.cas import names
from tests.conftest import CACHER, assert_one_error_line
from tests.trees import make_tree, snapshot

MiB = 1 << 20


def tree(root: Path) -> Path:
    """Every entry type (tests.trees), a file split in blobs, an empty file, a small venv."""
    make_tree(root)
    (root / "large.bin").write_bytes(os.urandom(5 * MiB))
    (root / "empty.txt").write_bytes(b"")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    return root


@pytest.fixture
def run_env(env: dict[str, str], store_env: dict[str, str]) -> dict[str, str]:
    return {**env, **store_env}


def export_into(run_env: dict[str, str], key: str, dest: Path, cwd: Path) -> tuple[int, int, str]:
    """``cacher dir export KEY | tar -x -C DEST``: cacher's exit, tar's exit, cacher's stderr."""
    if shutil.which("tar") is None or b"GNU tar" not in subprocess.run(
        ["tar", "--version"], capture_output=True, check=False
    ).stdout:
        pytest.skip("GNU tar is not installed")
    dest.mkdir()
    export = subprocess.Popen(
        [CACHER, "dir", "export", key], env=run_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert export.stdout is not None and export.stderr is not None
    untar = subprocess.run(
        ["tar", "-x", "-p", "-f", "-", "-C", str(dest)], stdin=export.stdout, capture_output=True, check=False
    )
    export.stdout.close()
    err = export.stderr.read().decode()
    return export.wait(timeout=120), untar.returncode, err


@pytest.mark.parametrize("tree_format", ["cas", "tar"])
def test_export_piped_into_gnu_tar_gives_the_tree(
    cacher: Any, run_env: dict[str, str], tmp_path: Path, tree_format: str
) -> None:
    original = tree(tmp_path / "tree")
    up = cacher("dir", "upload", "--tree-format", tree_format, "venv-1", str(original), extra_env=run_env)
    assert up.code == 0, up
    code, tar_code, err = export_into(run_env, "venv-1", tmp_path / "out", tmp_path)
    assert (code, tar_code) == (0, 0), err
    assert snapshot(tmp_path / "out") == snapshot(original)

    down = cacher("dir", "download", "venv-1", str(tmp_path / "restored"), extra_env=run_env)
    assert down.code == 0, down
    assert snapshot(tmp_path / "restored") == snapshot(original)


def test_export_of_a_missing_key_exits_3_with_nothing_on_stdout(cacher: Any, run_env: dict[str, str]) -> None:
    got = cacher("dir", "export", "nothing-here", extra_env=run_env)
    assert got.code == 3, got
    assert got.out == ""
    assert "miss" in got.err


@pytest.fixture
def damage(request: pytest.FixtureRequest, store_env: dict[str, str], local_root: Path) -> Any:
    """Change one byte in the largest stored pack, behind cacher's back."""
    if not store_env:

        def in_file() -> None:
            pack = max((local_root / names.PACKS).rglob("*.pack"), key=lambda p: p.stat().st_size)
            data = bytearray(pack.read_bytes())
            data[len(data) // 3] ^= 0xFF
            with open(pack, "r+b") as f:
                f.write(data)

        return in_file
    server, bucket = request.getfixturevalue("seaweed_s3"), store_env["CACHER_BUCKET"]

    def in_s3() -> None:
        client = server.client()
        listed = client.list_objects_v2(Bucket=bucket, Prefix=names.PACKS)["Contents"]
        key = max(listed, key=lambda o: o["Size"])["Key"]
        got = client.get_object(Bucket=bucket, Key=key)
        data = bytearray(got["Body"].read())
        data[len(data) // 3] ^= 0xFF
        client.put_object(Bucket=bucket, Key=key, Body=bytes(data), Metadata=got["Metadata"])

    return in_s3


def test_a_damaged_pack_fails_export_and_download_with_exit_2(
    cacher: Any, run_env: dict[str, str], tmp_path: Path, damage: Any
) -> None:
    original = tree(tmp_path / "tree")
    assert cacher("dir", "upload", "--tree-format", "cas", "k", str(original), extra_env=run_env).code == 0
    damage()
    got = cacher("dir", "export", "k", extra_env=run_env)
    assert got.code == 2, got
    assert got.out == ""  # every blob is checked before the first byte is written
    assert_one_error_line(got, "k")

    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("previous")
    before = snapshot(dest)
    down = cacher("dir", "download", "k", str(dest), extra_env=run_env)
    assert down.code == 2, down
    assert_one_error_line(down)
    assert snapshot(dest) == before
