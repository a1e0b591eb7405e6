"""The dir kind through the installed `cacher`: fidelity, determinism, interop, safety, atomicity.

Runs on the local default store; tests/stores/test_s3.py repeats the round trip on SeaweedFS and the
conformance kit covers the memory store.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from tests.conftest import CACHER, assert_one_error_line
from tests.trees import make_tree, snapshot


def make_go_modcache(root: Path) -> Path:
    """Go's module cache: 0444 files in 0555 directories."""
    mod = root / "golang.org" / "x" / "mod@v0.1.0"
    mod.mkdir(parents=True)
    for i in range(5):
        (mod / f"f{i}.go").write_text(f"package mod // {i}\n")
        (mod / f"f{i}.go").chmod(0o444)
    for d in (mod, mod.parent, mod.parent.parent):
        d.chmod(0o555)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


def test_round_trip_keeps_everything(cacher, tree: Path, tmp_path: Path) -> None:
    run = cacher("dir", "upload", "t/tree.tar.zst", str(tree))
    assert run.code == 0, run
    dest = tmp_path / "dest"
    run = cacher("dir", "download", "t/tree.tar.zst", str(dest))
    assert run.code == 0, run
    assert snapshot(dest) == snapshot(tree)


@pytest.mark.parametrize("suffix", [".tar.zst", ".tar.gz", ".tar"])
def test_codec_follows_suffix(cacher, tree: Path, tmp_path: Path, local_root: Path, suffix: str) -> None:
    assert cacher("dir", "upload", f"t{suffix}", str(tree)).code == 0
    stored = (local_root / f"t{suffix}").read_bytes()
    magic = {".tar.zst": b"\x28\xb5\x2f\xfd", ".tar.gz": b"\x1f\x8b"}.get(suffix)
    if magic:
        assert stored.startswith(magic)
    else:
        assert tarfile.open(fileobj=io.BytesIO(stored)).getnames()
    dest = tmp_path / "d"
    assert cacher("dir", "download", f"t{suffix}", str(dest)).code == 0
    assert snapshot(dest) == snapshot(tree)


def test_read_only_tree_restores_over_itself(cacher, tmp_path: Path) -> None:
    src = make_go_modcache(tmp_path / "gomod")
    assert cacher("dir", "upload", "go.tar.zst", str(src)).code == 0
    dest = tmp_path / "restored"
    for _ in range(2):
        run = cacher("dir", "download", "go.tar.zst", str(dest))
        assert run.code == 0, run
        assert snapshot(dest) == snapshot(src)


def test_deterministic_archive_bytes(cacher, tree: Path, local_root: Path, tmp_path: Path) -> None:
    assert cacher("dir", "upload", "a.tar", str(tree)).code == 0
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(tree), str(copy)], check=True)
    assert cacher("dir", "upload", "b.tar", str(copy)).code == 0
    assert (local_root / "a.tar").read_bytes() == (local_root / "b.tar").read_bytes()


def test_gnu_tar_and_zstd_read_what_cacher_wrote(cacher, tree: Path, local_root: Path, tmp_path: Path) -> None:
    assert cacher("dir", "upload", "t.tar.zst", str(tree)).code == 0
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(f"zstd -d < {local_root / 't.tar.zst'} | tar -C {out} -xf -", shell=True, check=True)
    assert snapshot(out) == snapshot(tree)


@pytest.mark.parametrize("fmt", ["gnu", "posix", "oldgnu"])
def test_cacher_reads_what_gnu_tar_and_zstd_wrote(
    cacher, tree: Path, local_root: Path, tmp_path: Path, fmt: str
) -> None:
    """GNU tar's default (GNU long-name headers), PAX records, and the old GNU format."""
    local_root.mkdir(parents=True)
    obj = local_root / "shell.tar.zst"
    subprocess.run(f"tar --format={fmt} -C {tree} -cf - . | zstd -q -T0 -3 > {obj}", shell=True, check=True)
    dest = tmp_path / "from-shell"
    run = cacher("dir", "download", "shell.tar.zst", str(dest))
    assert run.code == 0, run
    assert snapshot(dest) == snapshot(tree)


def test_sparse_member_is_refused(cacher, local_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "sparse-src"
    src.mkdir()
    with open(src / "holes.bin", "wb") as f:
        f.truncate(64 << 20)
        f.write(b"data at the start")
    local_root.mkdir(parents=True)
    obj = local_root / "sparse.tar.zst"
    subprocess.run(f"tar --sparse -C {src} -cf - . | zstd -q > {obj}", shell=True, check=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    run = cacher("dir", "download", "sparse.tar.zst", str(dest))
    assert run.code == 2, run
    assert_one_error_line(run, "sparse")
    assert [p.name for p in dest.iterdir()] == ["keep"]


def test_download_replaces_not_merges(cacher, tree: Path, tmp_path: Path) -> None:
    assert cacher("dir", "upload", "t.tar.zst", str(tree)).code == 0
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "stale.txt").write_text("from an earlier build")
    assert cacher("dir", "download", "t.tar.zst", str(dest)).code == 0
    assert not (dest / "stale.txt").exists()
    assert snapshot(dest) == snapshot(tree)


def test_miss_exits_3_and_leaves_dir(cacher, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    run = cacher("dir", "download", "nope.tar.zst", str(dest))
    assert run.code == 3, run
    assert (dest / "keep").read_text() == "keep"
    assert cacher("dir", "exists", "nope.tar.zst").code == 1


# -- hostile archives ------------------------------------------------------------------------


OUTSIDE = "@outside@"  # replaced by the absolute path of the test's own "outside" directory


def _member(name: str, type_: bytes = tarfile.REGTYPE, data: bytes = b"evil", linkname: str = "") -> tuple:
    return name, type_, data, linkname


def _tarinfo(name: str, type_: bytes = tarfile.REGTYPE, data: bytes = b"evil", linkname: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    info.size = len(data) if type_ == tarfile.REGTYPE else 0
    info.mode = 0o755 if type_ == tarfile.DIRTYPE else 0o644
    info.mtime = 1_600_000_000
    return info, (io.BytesIO(data) if type_ == tarfile.REGTYPE else None)


def _archive(members: list[tuple], outside: Path) -> bytes:
    """A GNU tar of ``ok.txt`` then ``members``, zstd-compressed; OUTSIDE in a link names ``outside``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, type_, data, linkname in [_member("ok.txt", data=b"fine"), *members]:
            tar.addfile(*_tarinfo(name, type_, data, linkname.replace(OUTSIDE, str(outside))))
    return zstandard.ZstdCompressor().compress(buf.getvalue())


def _outside(tmp_path: Path) -> Path:
    """A directory beside DEST that a write through a link would reach: a secret file, an empty dir."""
    outside = tmp_path / "outside"
    (outside / "empty").mkdir(parents=True)
    (outside / "secret").write_text("secret")
    return outside


# Refused as a whole: each would create, open or chmod something through a symlink (or is a
# name, hardlink or node that is never restored). The archive's links alone are fine data.
HOSTILE = {
    "absolute": [_member("/tmp/cacher-evil-abs")],
    "dotdot": [_member("a/../../cacher-evil-dotdot")],
    "symlink-out-then-write": [
        _member("esc", tarfile.SYMTYPE, linkname="../outside"),
        _member("esc/pwned"),
    ],
    "write-through-absolute-link": [
        _member("abs", tarfile.SYMTYPE, linkname=OUTSIDE),
        _member("abs/pwned"),
    ],
    "write-through-absolute-link-to-a-dir-deeper": [
        _member("abs", tarfile.SYMTYPE, linkname=OUTSIDE),
        _member("abs/empty/pwned"),
    ],
    "overwrite-through-absolute-link": [
        _member("abs", tarfile.SYMTYPE, linkname=OUTSIDE),
        _member("abs/secret"),
    ],
    "write-through-link-chain": [
        _member("a", tarfile.SYMTYPE, linkname="b"),
        _member("b", tarfile.SYMTYPE, linkname=OUTSIDE),
        _member("a/pwned"),
    ],
    "write-through-relative-link-chain": [
        _member("x", tarfile.DIRTYPE),
        _member("x/y", tarfile.SYMTYPE, linkname=".."),
        _member("s", tarfile.SYMTYPE, linkname="x/y/../outside"),
        _member("s/pwned"),
    ],
    "link-replaced-mid-archive": [
        _member("l", tarfile.SYMTYPE, linkname=OUTSIDE),
        _member("l", data=b"now a file"),
        _member("l/pwned"),
    ],
    "dir-through-link": [
        _member("abs", tarfile.SYMTYPE, linkname=OUTSIDE),
        _member("abs/made", tarfile.DIRTYPE),
    ],
    "chmod-through-link": [
        _member("abs", tarfile.SYMTYPE, linkname=OUTSIDE),
        _member("abs/empty", tarfile.DIRTYPE),
    ],
    "hardlink-through-link": [
        _member("abs", tarfile.SYMTYPE, linkname=OUTSIDE),
        _member("h", tarfile.LNKTYPE, linkname="abs/secret"),
    ],
    "hardlink-to-a-link": [
        _member("abs", tarfile.SYMTYPE, linkname=OUTSIDE + "/secret"),
        _member("h", tarfile.LNKTYPE, linkname="abs"),
    ],
    "hardlink-out": [_member("h", tarfile.LNKTYPE, linkname="../outside/secret")],
    "hardlink-absolute": [_member("h", tarfile.LNKTYPE, linkname="/etc/passwd")],
    "device": [_member("dev", tarfile.CHRTYPE)],
    "fifo": [_member("fifo", tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused(cacher, tmp_path: Path, local_root: Path, case: str) -> None:
    local_root.mkdir(parents=True)
    outside = _outside(tmp_path)
    (local_root / "evil.tar.zst").write_bytes(_archive(HOSTILE[case], outside))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    before_outside = snapshot(outside)
    passwd = Path("/etc/passwd").read_bytes()
    run = cacher("dir", "download", "evil.tar.zst", str(dest))
    assert run.code == 2, run
    assert_one_error_line(run, "refusing")
    assert snapshot(dest) == {"keep": snapshot(dest)["keep"]} and (dest / "keep").read_text() == "keep"
    assert snapshot(outside) == before_outside
    assert Path("/etc/passwd").read_bytes() == passwd
    assert not Path("/tmp/cacher-evil-abs").exists()
    assert not (tmp_path / "cacher-evil-dotdot").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "home", "outside"]


# Restored: symlinks are data, whatever their target, as GNU tar restores them. What each case
# leaves: name -> ("link", target) or ("file", content).
LINKS_ARE_DATA: dict[str, tuple[list[tuple], dict[str, tuple[str, str | bytes]]]] = {
    "symlink-absolute": (
        [_member("abs", tarfile.SYMTYPE, linkname="/etc")],
        {"abs": ("link", "/etc")},
    ),
    "symlink-absolute-outside": (
        [_member("abs", tarfile.SYMTYPE, linkname=OUTSIDE + "/secret")],
        {"abs": ("link", OUTSIDE + "/secret")},
    ),
    "symlink-relative-out": (
        [_member("d/up", tarfile.SYMTYPE, linkname="../../outside")],
        {"d/up": ("link", "../../outside")},
    ),
    "link-chain": (
        [_member("a", tarfile.SYMTYPE, linkname="b"), _member("b", tarfile.SYMTYPE, linkname=OUTSIDE)],
        {"a": ("link", "b"), "b": ("link", OUTSIDE)},
    ),
    # The later member replaces the link itself (tar semantics); the file it named is untouched.
    "link-replaced-by-a-file": (
        [_member("l", tarfile.SYMTYPE, linkname=OUTSIDE + "/secret"), _member("l", data=b"now a file")],
        {"l": ("file", b"now a file")},
    ),
    "link-replaced-by-a-dir": (
        [
            _member("l", tarfile.SYMTYPE, linkname=OUTSIDE),
            _member("l", tarfile.DIRTYPE),
            _member("l/inside", data=b"in the new dir"),
        ],
        {"l/inside": ("file", b"in the new dir")},
    ),
    "python-venv-shape": (
        [
            _member("bin", tarfile.DIRTYPE),
            _member("bin/python", tarfile.SYMTYPE, linkname="/usr/bin/python3"),
            _member("bin/python3", tarfile.SYMTYPE, linkname="python"),
            _member("lib64", tarfile.SYMTYPE, linkname="lib"),
            _member("lib/python3/site-packages/m.py", data=b"x = 1\n"),
        ],
        {
            "bin/python": ("link", "/usr/bin/python3"),
            "bin/python3": ("link", "python"),
            "lib64": ("link", "lib"),
        },
    ),
}


@pytest.mark.parametrize("case", sorted(LINKS_ARE_DATA))
def test_symlinks_are_restored_as_data(cacher, tmp_path: Path, local_root: Path, case: str) -> None:
    """Restored as links, never written through, nothing written outside DEST."""
    local_root.mkdir(parents=True)
    outside = _outside(tmp_path)
    members, expected = LINKS_ARE_DATA[case]
    (local_root / "links.tar.zst").write_bytes(_archive(members, outside))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "stale").write_text("replaced")
    before_outside = snapshot(outside)
    run = cacher("dir", "download", "links.tar.zst", str(dest))
    assert run.code == 0, run
    assert (dest / "ok.txt").read_bytes() == b"fine" and not (dest / "stale").exists()
    for name, (kind, value) in expected.items():
        path = dest / name
        if kind == "link":
            assert path.is_symlink() and os.readlink(path) == str(value).replace(OUTSIDE, str(outside)), name
        else:
            assert not path.is_symlink() and path.read_bytes() == value, name
    assert snapshot(outside) == before_outside
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "home", "outside"]


def test_tree_with_links_out_round_trips(cacher, tmp_path: Path) -> None:
    """Links out of the tree, absolute and relative, dangling or not, upload and restore as they were."""
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "python").symlink_to("/usr/bin/python3")
    (src / "bin" / "py").symlink_to("python")
    (src / "up").symlink_to("../outside")
    (src / "gone").symlink_to("/nonexistent/cacher/path")
    (src / "loop").symlink_to("loop")
    assert cacher("dir", "upload", "links.tar.zst", str(src)).code == 0
    dest = tmp_path / "dest"
    run = cacher("dir", "download", "links.tar.zst", str(dest))
    assert run.code == 0, run
    assert snapshot(dest) == snapshot(src)
    run = cacher("dir", "download", "links.tar.zst", str(dest))  # again, over itself
    assert run.code == 0, run
    assert snapshot(dest) == snapshot(src)


def _malformed(case: str) -> bytes:
    """Archives cacher's own reader refuses as a format error (not a hostile member)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(*_tarinfo("ok.txt", data=b"fine"))
        if case == "huge-extended-header":
            info, data = _tarinfo("big.txt", data=b"x")
            info.pax_headers = {"comment": "c" * (2 << 20)}  # a 2 MiB PAX record: bigger than any path
            tar.addfile(info, data)
        elif case == "malformed-pax":
            info = tarfile.TarInfo("././@PaxHeader")
            info.type, payload = tarfile.XHDTYPE, b"not a record\n"
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
            tar.addfile(*_tarinfo("after.txt"))
    raw = bytearray(buf.getvalue())
    if case == "bad-checksum":
        raw[0] ^= 0x01  # the first header's name changes; its checksum no longer matches
    return bytes(raw)


@pytest.mark.parametrize("case", ["huge-extended-header", "malformed-pax", "bad-checksum"])
def test_malformed_archive_is_refused(cacher, tmp_path: Path, local_root: Path, case: str) -> None:
    local_root.mkdir(parents=True)
    (local_root / "bad.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(_malformed(case)))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    run = cacher("dir", "download", "bad.tar.zst", str(dest))
    assert run.code == 2, run
    assert_one_error_line(run, "not a valid tar stream")
    assert [p.name for p in dest.iterdir()] == ["keep"] and (dest / "keep").read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir() if ".cacher-" in p.name] == []


# -- atomicity -------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_object_leaves_dir_untouched(cacher, tree: Path, tmp_path: Path, local_root: Path, damage: str) -> None:
    assert cacher("dir", "upload", "t.tar.zst", str(tree)).code == 0
    obj = local_root / "t.tar.zst"
    data = bytearray(obj.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray()
    obj.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    run = cacher("dir", "download", "t.tar.zst", str(dest))
    assert run.code == 2, run
    assert_one_error_line(run)
    assert [p.name for p in dest.iterdir()] == ["keep"]
    assert [p.name for p in tmp_path.iterdir() if ".cacher-" in p.name] == []


def test_upload_of_unreadable_tree_publishes_nothing(cacher, tmp_path: Path, local_root: Path, env: dict[str, str]) -> None:
    """Run as an unprivileged user (root reads everything) against a world-writable store."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    tree = make_tree(tmp_path / "src")
    subprocess.run(["chmod", "-R", "a+rX", str(tree)], check=True)  # whatever the umask
    secret = tree / "pkg" / "secret"
    secret.write_text("no")
    secret.chmod(0)
    store, config_home = tmp_path / "store", tmp_path / "nobody-config"
    for d in (store, config_home):
        d.mkdir()
        d.chmod(0o777)
    for p in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
        p.chmod(p.stat().st_mode | 0o005)
    proc = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", CACHER,
         "dir", "upload", "t.tar.zst", str(tree), "--backend", "file", "--bucket", str(store)],
        env={**env, "HOME": str(config_home), "XDG_CONFIG_HOME": str(config_home), "XDG_CACHE_HOME": str(config_home)},
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc
    assert str(secret) in proc.stderr and "Traceback" not in proc.stderr
    assert list(store.rglob("*")) == []


def test_upload_with_fifo_publishes_nothing(cacher, tree: Path, local_root: Path) -> None:
    os.mkfifo(tree / "pipe")
    run = cacher("dir", "upload", "t.tar.zst", str(tree))
    assert run.code == 2, run
    assert_one_error_line(run, "pipe")
    assert not local_root.exists() or list(local_root.rglob("*")) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_restore_leaves_dir_untouched(env: dict[str, str], tmp_path: Path, local_root: Path, sig: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(400):
        (src / f"f{i:04d}").write_bytes(os.urandom(256 << 10))
    run = subprocess.run([CACHER, "dir", "upload", "big.tar", str(src)], env=env, capture_output=True)
    assert run.returncode == 0
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    proc = subprocess.Popen([CACHER, "dir", "download", "big.tar", str(dest)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(".cacher-staging-" in p.name for p in tmp_path.iterdir()):
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig
    assert [p.name for p in dest.iterdir()] == ["keep"]
    assert [p.name for p in tmp_path.iterdir() if ".cacher-" in p.name] == []
