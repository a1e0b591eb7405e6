"""Where a restore may write, through the installed `cacher` (issue 25, items 5, 6, 7 and 9).

- No restore writes inside, onto or above the file store's or the local tier's directory, for
  every kind that writes to a path (`file`, `dir`, `paths`).
- `paths` takes each restore lock once; every lock wait is bounded, says what it waits for and
  which process holds it.
- A `paths` restore never writes through a link in a parent of any of its paths.
- The scratch directory of a SIGKILLed `paths download` is counted by `stats` and removed by the
  next restore.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cacher.fs.staging import force_rmtree
from cacher.testing.cli import CACHER
from tests.conftest import assert_one_error_line
from tests.kinds.test_paths import forged, stored


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- item 5: the store's and the tier's directories ----------------------------------------------


@pytest.fixture
def two_objects(cacher, tmp_path: Path, local_root: Path) -> Path:
    """A dir object ``dk.tar.zst`` and a file object ``fk`` in the default file store."""
    tree(tmp_path / "src", {"a.txt": "a\n", "sub/b.txt": "b\n"})
    assert cacher("dir", "upload", "dk.tar.zst", str(tmp_path / "src")).code == 0
    (tmp_path / "f.txt").write_text("the file object\n")
    assert cacher("upload", "fk", str(tmp_path / "f.txt")).code == 0
    assert (local_root / "dk.tar.zst").is_file()
    return local_root


def test_file_download_into_the_store_directory_is_refused(cacher, two_objects: Path, tmp_path: Path) -> None:
    before = files_under(two_objects)
    run = cacher("download", "fk", str(two_objects / "dk.tar.zst"))
    assert_one_error_line(run, "refusing", "the file store's directory")
    assert files_under(two_objects) == before  # the other object intact, nothing written beside it
    run = cacher("dir", "download", "dk.tar.zst", str(tmp_path / "out"))
    assert run.code == 0, run
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "b\n"


def test_file_download_through_a_link_into_the_store_is_refused(cacher, two_objects: Path, tmp_path: Path) -> None:
    (tmp_path / "into-store").symlink_to(two_objects)
    before = files_under(two_objects)
    run = cacher("download", "fk", str(tmp_path / "into-store" / "new-object"))
    assert_one_error_line(run, "refusing", "the file store's directory")
    assert files_under(two_objects) == before


def test_dir_download_inside_the_store_is_refused(cacher, two_objects: Path) -> None:
    before = files_under(two_objects)
    run = cacher("dir", "download", "dk.tar.zst", str(two_objects / "sub"))
    assert_one_error_line(run, "refusing", "the file store's directory")
    assert files_under(two_objects) == before
    assert not (two_objects / "sub").exists()


def test_paths_download_onto_an_object_is_refused(cacher, two_objects: Path, home: Path) -> None:
    pattern = "~/.cache/cacher/dk.tar.zst"
    assert cacher("paths", "upload", "pk.tar.zst", pattern).code == 0
    (two_objects / "dk.tar.zst").write_bytes(b"changed since")
    before = files_under(two_objects)
    run = cacher("paths", "download", "pk.tar.zst", pattern)
    assert_one_error_line(run, "refusing", "the file store's directory")
    assert files_under(two_objects) == before


def test_file_download_into_the_local_tier_is_refused(cacher, two_objects: Path, tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    env = {"CACHER_LOCAL_TIER": str(tier)}
    assert cacher("download", "fk", str(tmp_path / "warm"), extra_env=env).code == 0
    before = files_under(tier)
    run = cacher("download", "fk", str(tier / "planted"), extra_env=env)
    assert_one_error_line(run, "refusing", "the local tier")
    assert files_under(tier) == before


# --- item 6: one lock per place; bounded, told waits ----------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """A workspace with ``real/`` (files) and ``link -> real``, and nothing else."""
    ws = tmp_path / "ws"
    tree(ws / "real", {"x.txt": "x\n", "deep/y.txt": "y\n"})
    (ws / "link").symlink_to("real")
    return ws


def test_paths_naming_a_link_and_its_target_restores_once(cacher, linked: Path) -> None:
    run = cacher("paths", "upload", "k.tar.zst", "link", "real", cwd=linked, timeout=30)
    assert run.code == 0, run
    (linked / "real" / "x.txt").write_text("changed\n")
    (linked / "real" / "extra").write_text("not in the archive\n")
    run = cacher("paths", "download", "k.tar.zst", "link", "real", cwd=linked, timeout=30)
    assert run.code == 0, run
    assert files_under(linked / "real") == {"x.txt": b"x\n", "deep/y.txt": b"y\n"}
    assert (linked / "link").is_symlink()
    run = cacher("paths", "upload", "g.tar.zst", "*", cwd=linked, timeout=30)  # the glob matches both too
    assert run.code == 0, run
    (linked / "real" / "extra").write_text("not in the archive\n")
    run = cacher("paths", "download", "g.tar.zst", "*", cwd=linked, timeout=30)
    assert run.code == 0, run
    assert files_under(linked / "real") == {"x.txt": b"x\n", "deep/y.txt": b"y\n"}


def test_an_archive_listing_one_place_twice_is_refused_not_a_hang(
    cacher, linked: Path, local_root: Path
) -> None:
    """Objects stored before the fix list both ``link`` and ``real``: refused, nothing moved."""
    patterns = ["link", "real"]
    obj = stored(local_root, patterns, "old.tar.zst")
    obj.parent.mkdir(parents=True)
    entries = [{"root": "workspace", "path": p, "type": "dir"} for p in patterns]
    obj.write_bytes(
        forged(entries, patterns, {"workspace/link/x.txt": b"from link", "workspace/real/x.txt": b"from real"})
    )
    before = files_under(linked / "real")
    run = cacher("paths", "download", "old.tar.zst", *patterns, cwd=linked, timeout=30)
    assert_one_error_line(run, "one directory")
    assert files_under(linked / "real") == before


def _lock_file(tmpdir: Path, target: Path) -> Path:
    digest = hashlib.sha256(os.fsencode(os.path.realpath(target))).hexdigest()
    return tmpdir / f"cacher-{os.getuid()}" / "locks" / f"{digest}.lock"


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, f"{os.getpid()}\\n".encode())
print("held", flush=True)
time.sleep(120)
"""


def test_a_lock_wait_is_bounded_and_names_the_holder(cacher, two_objects: Path, tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tree(tmp_path / "out", {"keep": "mine"})
    lock = _lock_file(tmpdir, out)
    lock.parent.mkdir(parents=True, mode=0o700)
    (tmpdir / f"cacher-{os.getuid()}").chmod(0o700)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        run = cacher(
            "dir", "download", "dk.tar.zst", str(out),
            extra_env={"TMPDIR": str(tmpdir), "CACHER_LOCK_TIMEOUT": "3"}, timeout=60,
        )
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert run.code == 2, run
    assert 2.5 < took < 30, took
    lines = run.err.splitlines()
    waiting = [line for line in lines if "waiting" in line]
    assert waiting and str(out) in waiting[0] and f"process {holder.pid}" in waiting[0], run
    assert lines[-1].startswith("cacher: error: ") and "3 s" in lines[-1] and str(holder.pid) in lines[-1], run
    assert "Traceback" not in run.err
    assert files_under(out) == {"keep": b"mine"}


def test_the_lock_file_names_its_holder(two_objects: Path, env: dict[str, str], tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [CACHER, "dir", "download", "dk.tar.zst", str(out)],
        env={**env, "TMPDIR": str(tmpdir)},
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert _lock_file(tmpdir, out).read_text().split() == [str(proc.pid)]


# --- item 7: links in a parent of a path ----------------------------------------------------------


@pytest.mark.parametrize("what", ["file", "dir"])
def test_paths_restore_never_writes_through_a_linked_parent(cacher, tmp_path: Path, what: str) -> None:
    ws = tmp_path / "ws"
    tree(ws, {"sub/f.txt": "file\n", "sub/d/g.txt": "dir\n"})
    pattern = "sub/f.txt" if what == "file" else "sub/d"
    assert cacher("paths", "upload", "k.tar.zst", pattern, cwd=ws).code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    force_rmtree(ws / "sub")
    (ws / "sub").symlink_to("../outside")
    run = cacher("paths", "download", "k.tar.zst", pattern, cwd=ws)
    assert_one_error_line(run, "symbolic link", "sub")
    assert list(outside.iterdir()) == []
    assert (ws / "sub").is_symlink()


def test_paths_upload_of_a_match_below_a_link_is_refused(cacher, linked: Path, local_root: Path) -> None:
    """A restore would refuse it: the upload says so, and stores nothing."""
    run = cacher("paths", "upload", "k.tar.zst", "link/x.txt", cwd=linked)
    assert_one_error_line(run, "symbolic link", "link")
    assert not list(local_root.rglob("k.tar.zst"))


# --- item 9: the scratch space of a SIGKILLed paths download -------------------------------------


def test_scratch_of_a_killed_paths_download_is_counted_then_removed(
    cacher, env: dict[str, str], tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    tmp_env = {"TMPDIR": str(tmpdir)}
    big = tmp_path / "big"
    big.mkdir()
    for i in range(8):
        (big / f"blob{i}").write_bytes(os.urandom(4 << 20))
    assert cacher("paths", "upload", "big.tar.zst", "big", extra_env=tmp_env).code == 0
    scratch: list[Path] = []
    for _attempt in range(5):
        proc = subprocess.Popen(
            [CACHER, "paths", "download", "big.tar.zst", "big"],
            env={**env, **tmp_env}, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            scratch = [p for p in tmpdir.iterdir() if p.name.startswith(".cacher-paths-")]
            if scratch and any(scratch[0].rglob("blob*")):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait()
        if proc.returncode == -signal.SIGKILL:
            break
    assert proc.returncode == -signal.SIGKILL, "the download ended before it could be killed"
    assert scratch and scratch[0].is_dir()
    run = cacher("stats", "--json", extra_env=tmp_env)
    assert run.code == 0, run
    doc = json.loads(run.out)["restore_scratch"]
    assert doc["count"] == 1 and doc["bytes"] > 0, run
    run = cacher("paths", "download", "big.tar.zst", "big", extra_env=tmp_env)
    assert run.code == 0, run
    assert [p.name for p in tmpdir.iterdir() if p.name.startswith(".cacher-")] == []
    assert json.loads(cacher("stats", "--json", extra_env=tmp_env).out)["restore_scratch"]["count"] == 0


def test_scratch_held_by_a_living_process_is_kept(cacher, tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    live = tmpdir / ".cacher-paths-alive"
    live.mkdir(parents=True, mode=0o700)
    (live / "data").write_bytes(b"x" * 1000)
    dead = tmpdir / ".cacher-paths-dead"
    dead.mkdir(mode=0o700)
    (dead / "data").write_bytes(b"y" * 500)
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        tree(tmp_path / "d", {"f": "f\n"})
        env = {"TMPDIR": str(tmpdir)}
        assert cacher("paths", "upload", "k.tar.zst", "d", extra_env=env).code == 0
        doc = json.loads(cacher("stats", "--json", extra_env=env).out)["restore_scratch"]
        assert doc == {"count": 1, "bytes": 500}
        assert cacher("paths", "download", "k.tar.zst", "d", extra_env=env).code == 0
        assert live.is_dir() and not dead.exists()
    finally:
        os.close(fd)


def test_staged_files_of_killed_paths_restores_are_removed_unless_held(cacher, tmp_path: Path) -> None:
    """A file is staged beside its destination and ``flock``ed until the swap: one nobody
    holds was left by a killed restore, and the next restore of that file removes it."""
    ws = tree(tmp_path / "ws", {"sub/f.txt": "file\n"})
    assert cacher("paths", "upload", "k.tar.zst", "sub/f.txt", cwd=ws).code == 0
    dead = ws / "sub" / ".f.txt.cacher-paths-0badf00d"
    dead.write_text("left by a SIGKILL")
    alive = ws / "sub" / ".f.txt.cacher-paths-1ive1ive"
    alive.write_text("a restore running now")
    fd = os.open(alive, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        run = cacher("paths", "download", "k.tar.zst", "sub/f.txt", cwd=ws)
        assert run.code == 0, run
    finally:
        os.close(fd)
    assert sorted(p.name for p in (ws / "sub").iterdir()) == [alive.name, "f.txt"]


@pytest.mark.parametrize("where", ["same", "inside", "above"])
def test_the_local_tier_and_the_file_store_never_share_a_directory(cacher, tmp_path: Path, where: str) -> None:
    """Red-team pass of issue 25: a tier set to the file store's directory put its lock and
    entries among the objects (`list` showed them, `prune` would delete them)."""
    store = tmp_path / "store"
    tier = {"same": store, "inside": store / "t", "above": tmp_path}[where]
    f = tmp_path / "f.bin"
    f.write_text("x")
    env = {"CACHER_BUCKET": str(store), "CACHER_BACKEND": "file", "CACHER_LOCAL_TIER": str(tier)}
    run = cacher("upload", "k", str(f), extra_env=env)
    assert run.code == 2 and "overlap" in run.err and run.err.count("cacher: error:") == 1, run
    assert not (store / "k").exists() and not (store / "lock").exists() and not (store / "entries").exists()


def test_a_planted_runtime_directory_does_not_stop_a_restore(cacher, tmp_path: Path) -> None:
    """Red-team pass of issue 25: another user who made ``$TMPDIR/cacher-<uid>`` first made
    every dir and paths restore of this user exit 2 (restore locks live there)."""
    tmp = tmp_path / "tmp"
    planted = tmp / f"cacher-{os.getuid()}"
    planted.mkdir(parents=True)
    os.chown(planted, 12345, 12345)
    env = {"TMPDIR": str(tmp), "XDG_RUNTIME_DIR": ""}
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("x")
    assert cacher("dir", "upload", "d.tar.zst", str(tree), extra_env=env).code == 0
    run = cacher("dir", "download", "d.tar.zst", str(tmp_path / "out"), extra_env=env)
    assert run.code == 0, run
    assert (tmp_path / "out" / "f").read_text() == "x"
    assert list(planted.iterdir()) == []  # nothing of ours went into the planted directory
