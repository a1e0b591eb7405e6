"""What a red-team pass through the installed cacher found, each now a test that failed before.

Ranked as found: a restore that replaced cacher's own store, a download over a device, an
upload racing a restore of its directory, restore keys reaching into scopes, keys shaped like
cacher's temporaries, empty variables (init --prefix, --hash-from, HOME, ensure's command) and
a duration too large for the calendar; then a tree upload of `/` or HOME (`"$UNSET/"`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import time
from pathlib import Path

from tests.conftest import CACHER, assert_one_error_line


def tree(root: Path, content: str) -> Path:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "sub" / "f.txt").write_text(content)
    return root


def test_a_restore_never_replaces_the_directory_holding_the_store(cacher, home: Path, tmp_path: Path) -> None:
    """Caching ~/.cache whole is common; restoring it must not roll back or delete the store in it."""
    cache = home / ".cache"
    (cache / "pip").mkdir(parents=True)
    (cache / "pip" / "w").write_text("w")
    assert cacher("dir", "upload", "home-cache.tar.zst", str(cache)).code == 0
    f = tmp_path / "f"
    f.write_text("tool")
    assert cacher("upload", "tool.bin", str(f)).code == 0
    run = cacher("dir", "download", "home-cache.tar.zst", str(cache))
    assert_one_error_line(run, "the file store's directory")
    assert cacher("exists", "tool.bin").code == 0
    assert cacher("exists", "home-cache.tar.zst").code == 0


def test_a_restore_never_replaces_the_local_tier(cacher, tmp_path: Path) -> None:
    work = tree(tmp_path / "work", "x")
    tier = work / "tier"
    env = {"CACHER_LOCAL_TIER": str(tier)}
    assert cacher("dir", "upload", "w.tar.zst", str(work / "sub"), extra_env=env).code == 0
    run = cacher("dir", "download", "w.tar.zst", str(work), extra_env=env)
    assert_one_error_line(run, "the local tier")
    assert tier.is_dir() and (work / "sub" / "f.txt").read_text() == "x"


def test_a_download_never_replaces_a_device_or_a_fifo(cacher, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    assert cacher("upload", "k", str(f)).code == 0
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    run = cacher("download", "k", str(fifo))
    assert_one_error_line(run, "not a regular file")
    assert fifo.is_fifo()
    run = cacher("download", "k", "/dev/null")
    assert_one_error_line(run, "not a regular file")
    assert Path("/dev/null").is_char_device()


def test_a_dir_upload_waits_for_a_restore_of_its_directory(cacher, env: dict[str, str], tmp_path: Path) -> None:
    """An upload archiving DIR while a restore swaps its subtrees would publish a tree that never
    existed: it takes turns on the restore lock (held here as a restore would hold it)."""
    src = tree(tmp_path / "src", "whole")
    run_dir = tmp_path / "run"
    lock = run_dir / "cacher" / "locks" / f"{hashlib.sha256(os.fsencode(os.path.realpath(src))).hexdigest()}.lock"
    lock.parent.mkdir(parents=True, mode=0o700)
    run_dir.chmod(0o700)
    (run_dir / "cacher").chmod(0o700)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen([CACHER, "dir", "upload", "s.tar.zst", str(src)],
                                env={**env, "XDG_RUNTIME_DIR": str(run_dir)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        waited = proc.poll() is None
    _, err = proc.communicate(timeout=60)
    assert waited, err
    assert proc.returncode == 0, err


def test_restore_keys_never_reach_into_scopes(cacher, tmp_path: Path) -> None:
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "payload").write_text("PWNED")
    assert cacher("dir", "upload", "zz.tar.zst", str(evil), "--scope", "pr-from-fork").code == 0
    for prefix in ("_scopes/", "_", ""):
        dest = tmp_path / f"deps{len(prefix)}"
        args = ["dir", "download", "deps-v2.tar.zst", str(dest), "--restore-key", prefix]
        run = cacher(*args)
        if prefix:
            assert run.code == 3, run
        else:
            assert_one_error_line(run, "must not be empty")
        assert not dest.exists()


def test_keys_shaped_like_temporaries_are_refused(cacher, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    run = cacher("upload", ".tool.cacher-tmp-abcdefgh", str(f))
    assert_one_error_line(run, "temporary files")
    assert cacher("list").out == ""


def test_empty_variables_never_count(cacher, env: dict[str, str], home: Path, tmp_path: Path) -> None:
    # init with an empty --prefix keeps the configured one.
    init = ["init", "--no-check", "--backend", "file", "--bucket", str(tmp_path / "b")]
    assert cacher(*init, "--prefix", "proj").code == 0
    assert cacher(*init, "--prefix", "").code == 0
    assert 'prefix = "proj"' in (home / ".config" / "cacher" / "config.toml").read_text()
    # --hash-from "$UNSET" is an error, not a hash of the whole checkout.
    run = cacher("key", "npm-{hash}", "--hash-from", "")
    assert_one_error_line(run, "empty path")
    assert run.out == ""
    # An empty build command is a usage error, not "cannot run".
    run = cacher("dir", "ensure", "k.tar.zst", str(tmp_path / "out"), "--", "")
    assert_one_error_line(run, "needs a build command")
    # An empty HOME puts no store into the checkout.
    f = tmp_path / "f"
    f.write_text("x")
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    bare = {**env, "HOME": "", "XDG_CACHE_HOME": "", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    proc = subprocess.run([CACHER, "upload", "k", str(f)], env=bare, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "HOME and XDG_CACHE_HOME are empty" in proc.stderr
    assert list(cwd.iterdir()) == []


def test_a_duration_past_the_calendar_is_a_usage_error(cacher) -> None:
    run = cacher("prune", "x/", "--older-than", "3000000d", "--dry-run")
    assert_one_error_line(run, "at most 100 years")
    run = cacher("prune", "x/", "--older-than", "999999999999d", "--dry-run")
    assert_one_error_line(run, "at most 100 years")


def test_a_tree_upload_never_packs_the_root_or_home(cacher, home: Path, tmp_path: Path) -> None:
    """`dir upload KEY "$UNSET/"` or `~/$UNSET` would pack the machine or the user's credentials
    into a shared cache: refused before anything is read, nothing stored (docs/dir.md)."""
    (home / ".aws").mkdir(parents=True, exist_ok=True)
    (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = SECRET\n")
    link = tmp_path / "to-home"
    link.symlink_to(home)
    for target in ("/", str(home), str(home) + "/", str(home.parent), str(link)):
        run = cacher("dir", "upload", "k.tar.zst", target)
        assert_one_error_line(run, "refusing to upload", "holds far more than a cache")
        assert "SECRET" not in run.err
        assert cacher("exists", "k.tar.zst").code == 1, target
    # The current directory, a tree of its own, may be packed (a restore names another place).
    work = tree(tmp_path / "work", "x")
    assert cacher("dir", "upload", "w.tar.zst", ".", cwd=work).code == 0
    assert cacher("exists", "w.tar.zst").code == 0
