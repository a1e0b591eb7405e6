"""A file upload proves its file unchanged by stat where that is as safe as a second sha256
(cacher/engine/unchanged.py), and hashes again everywhere else (issue 29)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from cacher import config, engine
from cacher.engine.unchanged import RACY_NS, filesystem, watch
from cacher.errors import ArtifactError
from cacher.kinds.file import FileKind
from cacher.registry import Registry
from cacher.stores import open_store

SIZE = 3 << 20  # three of the file kind's 1 MiB reads


def settled(path: Path, data: bytes) -> Path:
    """``data`` at ``path``, last changed long ago (as a CI cache's input usually is)."""
    path.write_bytes(data)
    old = time.time_ns() - 10 * RACY_NS
    os.utime(path, ns=(old, old))
    time.sleep(RACY_NS / 1e9)  # ctime cannot be set back: let it age past the racy window
    return path


@pytest.fixture
def local(tmp_path: Path) -> Path:
    if filesystem(str(tmp_path)) not in {"ext4", "xfs", "btrfs", "tmpfs", "overlay"}:
        pytest.skip(f"tmp_path is on {filesystem(str(tmp_path))}: the stat path is not taken there")
    return tmp_path


def test_a_settled_local_file_is_watched_and_anything_else_is_hashed(local: Path) -> None:
    src = settled(local / "f.bin", b"x" * 10)
    kind = FileKind("file")
    watched = watch(kind, [str(src)])
    assert watched is not None and watched.holds()

    fresh = local / "fresh.bin"
    fresh.write_bytes(b"y")
    assert watch(kind, [str(fresh)]) is None  # changed within RACY_NS: hashed

    os.mkfifo(local / "fifo")
    assert watch(kind, [str(local / "fifo")]) is None  # not a regular file

    class OwnDigest(FileKind):
        def digest(self, targets: Any, options: Any) -> str:
            return "0" * 64

    assert watch(OwnDigest("file"), [str(src)]) is None  # a kind that digests otherwise
    assert watch(kind, [str(local / "missing")]) is None


@pytest.mark.parametrize("how", ["rewritten", "rewritten, times set back", "replaced", "appended"])
def test_a_watched_file_that_changes_is_seen(local: Path, how: str) -> None:
    src = settled(local / "f.bin", b"a" * 100)
    watched = watch(FileKind("file"), [str(src)])
    assert watched is not None
    before = os.stat(src)
    if how.startswith("rewritten"):
        with open(src, "r+b") as f:
            f.write(b"b")
        if how.endswith("set back"):
            os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif how == "replaced":
        other = local / "other"
        other.write_bytes(b"a" * 100)
        os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(other, src)
    else:
        with open(src, "ab") as f:
            f.write(b"more")
    assert not watched.holds()


def test_a_file_rewritten_mid_upload_is_not_published(local: Path) -> None:
    """The stat path end to end: a settled file, rewritten in place (its times set back) while
    its bytes stream to a real file store. Nothing is published."""
    src = settled(local / "f.bin", b"a" * SIZE)
    before = os.stat(src)
    settings = config.load({}, {"backend": "file", "bucket": str(local / "store")}, config_flag=os.devnull)
    store = open_store(settings, {})
    codec = Registry.from_entry_points().codec("none")

    def rewrite(done: int, total: int | None) -> None:
        if done == 1 << 20:  # after the first read: the rest of the file is no longer the digest's
            with open(src, "r+b") as f:
                f.seek(2 << 20)
                f.write(b"b" * 10)
            os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))

    request = engine.UploadRequest(FileKind("file"), codec, "f.bin", [str(src)], {}, progress=rewrite)
    with pytest.raises(ArtifactError, match="changed while it was uploaded"):
        engine.upload(store, request)
    assert not store.exists("f.bin")
    assert not any((local / "store").rglob("*.bin*"))


def test_a_settled_file_uploads_and_restores_verified(local: Path) -> None:
    src = settled(local / "f.bin", os.urandom(SIZE))
    settings = config.load({}, {"backend": "file", "bucket": str(local / "store")}, config_flag=os.devnull)
    store = open_store(settings, {})
    codec = Registry.from_entry_points().codec("none")
    result = engine.upload(store, engine.UploadRequest(FileKind("file"), codec, "f.bin", [str(src)], {}))
    assert result.outcome == "uploaded"
    info = store.head("f.bin")
    assert info is not None
    import hashlib

    assert info.metadata.get("sha256") == hashlib.sha256(src.read_bytes()).hexdigest()
