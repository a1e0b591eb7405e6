"""No key is ever poisoned, and restore keys find only what fits.

A stored object that a restore refuses (damaged, stored by another kind) must never become a
permanent failure: ``ensure`` builds and replaces it, a restore-key candidate is skipped for the
next one, and ``download`` says how to replace it. Restore keys skip other kinds' objects and,
with ``arch_suffix``, other machines' builds. Every case runs through the installed ``cacher``
on the file store and on SeaweedFS.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cacher.keying.platform_names import go_arch, go_os
from tests.conftest import assert_one_error_line, tree_files

OTHER_ARCH = "arm64" if go_arch() != "arm64" else "amd64"


@pytest.fixture
def store(request: pytest.FixtureRequest, store_env: dict[str, str], local_root: Path) -> dict[str, Any]:
    """The store's variables, and how to truncate a stored object behind cacher's back."""
    if not store_env:  # the default file store

        def truncate(key: str) -> None:
            path = local_root / key
            data = path.read_bytes()
            with open(path, "r+b") as f:  # in place: the recorded metadata (xattrs) stays
                f.truncate(len(data) // 2)

        return {"env": {}, "truncate": truncate}
    server = request.getfixturevalue("seaweed_s3")
    bucket = store_env["CACHER_BUCKET"]

    def truncate_s3(key: str) -> None:
        client = server.client()
        got = client.get_object(Bucket=bucket, Key=key)
        body = got["Body"].read()
        client.put_object(Bucket=bucket, Key=key, Body=body[: len(body) // 2], Metadata=got["Metadata"])

    return {"env": store_env, "truncate": truncate_s3}


def tree(root: Path, content: str) -> Path:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "sub" / "f.txt").write_text(content)
    return root


def test_ensure_rebuilds_and_replaces_a_truncated_object(cacher, store, tmp_path: Path) -> None:
    env = store["env"]
    assert cacher("dir", "upload", "venv.tar.zst", str(tree(tmp_path / "v1", "one")), extra_env=env).code == 0
    store["truncate"]("venv.tar.zst")
    dest = tmp_path / "dest"
    built = tmp_path / "built"
    build = f"mkdir -p {dest}/sub && echo two > {dest}/sub/f.txt && touch {built}"
    run = cacher("dir", "ensure", "venv.tar.zst", str(dest), "--", "sh", "-c", build, extra_env=env)
    assert run.code == 0, run
    assert built.exists(), "the build did not run: the key stayed poisoned"
    assert "failed verification" in run.err or "was refused" in run.err, run
    again = tmp_path / "again"
    run = cacher("dir", "download", "venv.tar.zst", str(again), extra_env=env)
    assert run.code == 0, run
    assert tree_files(again) == {"sub/f.txt": b"two\n"}


def test_download_of_a_refused_object_says_how_to_replace_it(cacher, store, tmp_path: Path) -> None:
    env = store["env"]
    assert cacher("dir", "upload", "k.tar.zst", str(tree(tmp_path / "v1", "one")), extra_env=env).code == 0
    store["truncate"]("k.tar.zst")
    dest = tree(tmp_path / "dest", "mine")
    run = cacher("dir", "download", "k.tar.zst", str(dest), extra_env=env)
    assert_one_error_line(run, "upload --force k.tar.zst")
    assert tree_files(dest) == {"sub/f.txt": b"mine"}
    skipped = cacher("dir", "upload", "k.tar.zst", str(tree(tmp_path / "v2", "two")), extra_env=env)
    assert skipped.code == 0 and "already stored" in skipped.err, skipped
    forced = cacher("dir", "upload", "--force", "k.tar.zst", str(tmp_path / "v2"), extra_env=env)
    assert forced.code == 0, forced
    run = cacher("dir", "download", "k.tar.zst", str(dest), extra_env=env)
    assert run.code == 0, run
    assert tree_files(dest) == {"sub/f.txt": b"two"}


def test_another_kinds_object_is_named_not_misread(cacher, store, tmp_path: Path) -> None:
    env = store["env"]
    blob = tmp_path / "blob"
    blob.write_bytes(b"not a tar stream" * 100)
    assert cacher("upload", "k.tar.zst", str(blob), extra_env=env).code == 0
    dest = tree(tmp_path / "dest", "mine")
    run = cacher("dir", "download", "k.tar.zst", str(dest), extra_env=env)
    assert_one_error_line(run, "stored by 'file', not 'dir'")
    assert tree_files(dest) == {"sub/f.txt": b"mine"}


def test_a_refused_restore_key_candidate_is_skipped_for_the_next(cacher, store, tmp_path: Path) -> None:
    env = store["env"]
    assert cacher("dir", "upload", "venv-a.tar.zst", str(tree(tmp_path / "a", "good")), extra_env=env).code == 0
    time.sleep(1.1)  # listings order by modification time, to the second on some stores
    assert cacher("dir", "upload", "venv-b.tar.zst", str(tree(tmp_path / "b", "bad")), extra_env=env).code == 0
    store["truncate"]("venv-b.tar.zst")
    time.sleep(1.1)
    blob = tmp_path / "blob"
    blob.write_bytes(b"a file, not a tree")
    assert cacher("upload", "venv-c.tar.zst", str(blob), extra_env=env).code == 0  # newest, another kind
    dest = tmp_path / "dest"
    run = cacher("dir", "download", "venv-new.tar.zst", str(dest), "--restore-key", "venv-", "--json", extra_env=env)
    assert run.code == 0, run
    assert '"matched_key": "venv-a.tar.zst"' in run.out, run
    assert tree_files(dest) == {"sub/f.txt": b"good"}
    assert "skipped venv-b.tar.zst" in run.err, run
    # The refused candidate was never overwritten: it still fails as it did.
    again = cacher("dir", "download", "venv-b.tar.zst", str(tmp_path / "b2"), extra_env=env)
    assert again.code == 2, again


def test_restore_keys_respect_the_arch_suffix(cacher, store, tmp_path: Path) -> None:
    env = store["env"]
    other = f"deps-v1-{go_os()}-{OTHER_ARCH}.tar.zst"
    assert cacher("dir", "upload", other, str(tree(tmp_path / "o", "other arch")), extra_env=env).code == 0
    dest = tmp_path / "dest"
    arch_env = {**env, "CACHER_ARCH_SUFFIX": "true"}
    run = cacher("dir", "download", "deps-v2.tar.zst", str(dest), "--restore-key", "deps-", extra_env=arch_env)
    assert run.code == 3, run
    assert not dest.exists()
    mine = cacher("dir", "upload", "deps-v0.tar.zst", str(tree(tmp_path / "m", "mine")), extra_env=arch_env)
    assert mine.code == 0, mine
    run = cacher("dir", "download", "deps-v2.tar.zst", str(dest), "--restore-key", "deps-", "--json", extra_env=arch_env)
    assert run.code == 0, run
    assert f'"matched_key": "deps-v0-{go_os()}-{go_arch()}.tar.zst"' in run.out, run
    assert tree_files(dest) == {"sub/f.txt": b"mine"}


def test_an_empty_restore_key_is_a_usage_error(cacher, store, tmp_path: Path) -> None:
    env = store["env"]
    assert cacher("dir", "upload", "x.tar.zst", str(tree(tmp_path / "x", "x")), extra_env=env).code == 0
    dest = tmp_path / "dest"
    run = cacher("dir", "download", "y.tar.zst", str(dest), "--restore-key", "", extra_env=env)
    assert_one_error_line(run, "restore key must not be empty")
    assert not dest.exists()
