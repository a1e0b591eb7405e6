"""Every restore is verified: a raw file's sha256 is recorded at upload and checked before DEST
is replaced; objects stored without one (older versions) still restore, said to be unverified.

Through the installed ``cacher`` on the file store and on SeaweedFS, except the one engine test
that needs a file to change between the two hashes of an upload: no real part can make that
happen on cue, so a kind whose digest is wrong on purpose stands in for it (said so there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_one_error_line


@pytest.fixture
def store(request: pytest.FixtureRequest, store_env: dict[str, str], local_root: Path) -> dict[str, Any]:
    """The store's variables, and how to rewrite a stored object behind cacher's back."""
    if not store_env:  # the default file store

        def rewrite(key: str, change: Any, drop: str | None = None) -> None:
            path = local_root / key
            data = change(path.read_bytes())
            with open(path, "r+b") as f:  # in place: the recorded metadata (xattrs) stays
                f.write(data)
                f.truncate(len(data))
            if drop:
                os.removexattr(path, f"user.cacher-{drop}")

        return {"env": {}, "rewrite": rewrite}
    server = request.getfixturevalue("seaweed_s3")
    bucket = store_env["CACHER_BUCKET"]

    def rewrite_s3(key: str, change: Any, drop: str | None = None) -> None:
        client = server.client()
        got = client.get_object(Bucket=bucket, Key=key)
        meta = {k: v for k, v in got["Metadata"].items() if k != f"cacher-{drop}"}
        client.put_object(Bucket=bucket, Key=key, Body=change(got["Body"].read()), Metadata=meta)

    return {"env": store_env, "rewrite": rewrite_s3}


def flip(data: bytes) -> bytes:
    return data[:100] + bytes([data[100] ^ 1]) + data[101:]


def test_a_flipped_byte_in_a_raw_object_is_refused(cacher, store, tmp_path: Path) -> None:
    env = store["env"]
    src = tmp_path / "tool.bin"
    src.write_bytes(os.urandom(300_000))
    assert cacher("upload", "tool.bin", str(src), extra_env=env).code == 0
    store["rewrite"]("tool.bin", flip)
    dest = tmp_path / "dest.bin"
    run = cacher("download", "tool.bin", str(dest), extra_env=env)
    assert_one_error_line(run, "sha256 mismatch")
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dest")] == []  # no temporary left


def test_an_object_without_a_digest_restores_unverified(cacher, store, tmp_path: Path) -> None:
    env = store["env"]
    src = tmp_path / "old.bin"
    src.write_bytes(b"written by an older cacher" * 100)
    assert cacher("upload", "old.bin", str(src), extra_env=env).code == 0
    store["rewrite"]("old.bin", lambda d: d, drop="sha256")
    dest = tmp_path / "dest.bin"
    run = cacher("download", "old.bin", str(dest), "--json", extra_env=env)
    assert run.code == 0, run
    assert dest.read_bytes() == src.read_bytes()
    assert json.loads(run.out)["verified"] is False
    assert "unverified" in run.err, run
    fresh = cacher("download", "old.bin", str(dest), "--json", extra_env=env)
    assert fresh.code == 0 and json.loads(fresh.out)["verified"] is False


def test_a_verified_raw_restore_says_so(cacher, store, tmp_path: Path) -> None:
    env = store["env"]
    src = tmp_path / "new.bin"
    src.write_bytes(b"x" * 5000)
    assert cacher("upload", "new.bin", str(src), extra_env=env).code == 0
    run = cacher("download", "new.bin", str(tmp_path / "dest.bin"), "--json", extra_env=env)
    assert run.code == 0, run
    assert json.loads(run.out)["verified"] is True
    assert "unverified" not in run.err


def test_a_file_that_changes_between_the_two_hashes_is_not_published(tmp_path: Path) -> None:
    """In-process, with a stand-in kind: the upload's first hash (``digest``) and the bytes
    packed disagree, as when a file is rewritten mid-upload. Nothing may be published."""
    from cacher import config, engine
    from cacher.errors import ArtifactError
    from cacher.kinds.file import FileKind
    from cacher.registry import Registry
    from cacher.stores import open_store

    class ChangedUnderfoot(FileKind):
        def digest(self, targets: Any, options: Any) -> str:  # the file "before" the upload
            return "0" * 64

    settings = config.load({}, {"backend": "file", "bucket": str(tmp_path / "store")}, config_flag=os.devnull)
    store = open_store(settings, {})
    src = tmp_path / "f.bin"
    src.write_bytes(b"data" * 1000)
    codec = Registry.from_entry_points().codec("none")
    with pytest.raises(ArtifactError, match="changed while it was uploaded"):
        engine.upload(store, engine.UploadRequest(ChangedUnderfoot("file"), codec, "f.bin", [str(src)], {}))
    assert not store.exists("f.bin")
    assert not any((tmp_path / "store").rglob("*.bin*"))
