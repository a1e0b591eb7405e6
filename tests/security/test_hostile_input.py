"""Hostile input through the installed `cacher`: the slips CI scripts really make.

An unset variable, a `cd` into the wrong place, a mistyped path: each row of `CASES` runs one
command in a small world (a HOME with dotfiles, a git checkout that is the current directory,
a stored key, a shared store with two projects) and checks the exit code, the one error line
and that what the command must not touch is byte for byte as it was. A new verb or kind joins
by adding a row. The tests after the table cover what a row cannot say (a symlinked DIR
restored through its link, a reporting failure after the work was done).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import assert_one_error_line

OLD = 1_600_000_000  # an mtime far in the past, for prune


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root`` without following links: type, content, link target, mode."""
    out: dict[str, tuple[object, ...]] = {}
    if root.is_symlink() or root.is_file():
        return {".": ("link", os.readlink(root)) if root.is_symlink() else ("file", root.read_bytes())}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes())
    return out


@dataclass(frozen=True)
class World:
    """``root`` holds: home/ (HOME, with the default store), project/ (a checkout; the commands
    run in project/sub), src/ (what k.tar.zst holds), shared/ (a store with proj/ and other/),
    link-to-project -> project."""

    root: Path
    home: Path

    def fill(self, text: str) -> str:
        return text.format(root=self.root, home=self.home, long="x" * 235, s3long="k/" + "y" * 1100)


@pytest.fixture
def world(cacher, home: Path, tmp_path: Path) -> World:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "sub").mkdir()
    (project / "sub" / "main.go").write_text("package main\n")
    (home / ".bashrc").write_text("# my shell\n")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("not really a key\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "cached").write_text("from the cache\n")
    run = cacher("dir", "upload", "k.tar.zst", str(src))
    assert run.code == 0, run
    for name in ("proj/a", "other/b"):
        obj = tmp_path / "shared" / name
        obj.parent.mkdir(parents=True)
        obj.write_text(name)
        os.utime(obj, (OLD, OLD))
    (tmp_path / "link-to-project").symlink_to(project)
    (tmp_path / "key-id").write_text("id\n")
    (tmp_path / "secret").write_text("secret\n")
    return World(tmp_path, home)


@dataclass(frozen=True)
class Case:
    """One hostile command: run in ``cwd`` (under the world's root) with ``env`` added and
    ``config`` as the config file; it must exit ``code`` (with one error line naming each of
    ``needles`` when 2) and leave every path in ``unchanged`` (relative to the root) as it was."""

    id: str
    args: tuple[str, ...]
    code: int
    unchanged: tuple[str, ...] = (".",)
    needles: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    config: str | None = None
    cwd: str = "project/sub"


RESTORE = ("dir", "download", "k.tar.zst")
ENSURE = ("dir", "ensure", "k.tar.zst")
SHARED = 'backend = "file"\nbucket = "{root}/shared"\n'
DEAD_S3 = {
    "CACHER_ENDPOINT": "http://127.0.0.1:9",
    "CACHER_BUCKET": "b",
    "CACHER_S3_KEY_ID": "id",
    "CACHER_S3_SECRET": "secret",
    "CACHER_MAX_ATTEMPTS": "1",
    "CACHER_CONNECT_TIMEOUT": "1",
}

CASES = [
    # 1. a restore never replaces a directory that is not a cache
    Case("empty DIR", (*RESTORE, ""), 2, needles=("empty path",)),
    Case("DIR is .", (*RESTORE, "."), 2, needles=("current directory",)),
    Case("DIR is ..", (*RESTORE, ".."), 2, needles=("contains the current directory",)),
    Case("DIR is cwd with a trailing slash", (*RESTORE, "{root}/project/sub/"), 2),
    Case("DIR is HOME", (*RESTORE, "{home}"), 2, needles=("home directory",)),
    Case("DIR contains HOME", (*RESTORE, "{home}/.."), 2),
    Case("DIR is /", (*RESTORE, "/"), 2, needles=("root directory",)),
    Case("DIR is a link to an ancestor", (*RESTORE, "{root}/link-to-project"), 2, needles=("current",)),
    Case("miss into .", ("dir", "download", "missing.tar.zst", "."), 2),
    Case("ensure into .", (*ENSURE, ".", "touch", "{root}/built"), 2, needles=("current directory",)),
    Case("ensure into empty DIR", (*ENSURE, "", "touch", "{root}/built"), 2, needles=("empty path",)),
    Case("ensure miss into ..", ("dir", "ensure", "new.tar.zst", "..", "touch", "{root}/built"), 2),
    # 2. an empty variable or argument never widens a command's reach
    Case(
        "CACHER_PREFIX= keeps the configured prefix",
        ("prune", "--older-than", "1s"),
        0,
        unchanged=("shared/other", "project", "home/.ssh"),
        env={"CACHER_PREFIX": ""},
        config=SHARED + 'prefix = "proj"\n',
    ),
    Case(
        '--prefix "" keeps the configured prefix',
        ("prune", "--older-than", "1s", "--prefix", ""),
        0,
        unchanged=("shared/other", "project", "home/.ssh"),
        config=SHARED + 'prefix = "proj"\n',
    ),
    Case("prune with no prefix anywhere", ("prune", "--older-than", "1s"), 2, needles=("--all-projects",),
         config=SHARED),
    Case("prune with an empty PREFIX", ("prune", "", "--older-than", "1s"), 2, needles=("whole bucket",),
         config=SHARED),
    Case(
        "CACHER_BUCKET= keeps the configured bucket",
        ("exists", "a"),
        0,
        env={"CACHER_BUCKET": ""},
        config=SHARED + 'prefix = "proj"\n',
        cwd=".",
    ),
    # 3. a mistyped setting is an error naming it, not a silent fall-back
    Case("--config names a missing file", (*RESTORE, "out", "--config", "{root}/nope.toml"), 2,
         needles=("nope.toml", "does not exist")),
    Case("CACHER_CONFIG names a missing file", (*RESTORE, "out"), 2, needles=("nope.toml", "CACHER_CONFIG"),
         env={"CACHER_CONFIG": "{root}/nope.toml"}),
    Case("endpoint without a scheme (env)", ("exists", "k"), 2, needles=("endpoint", "CACHER_ENDPOINT"),
         env={**DEAD_S3, "CACHER_ENDPOINT": "s3.example.com"}),
    Case("endpoint without a scheme (file)", ("exists", "k"), 2, needles=("endpoint", "config file"),
         config='endpoint = "s3.example.com"\nbucket = "b"\n'),
    Case("only the key id in the environment", ("exists", "k"), 2, needles=("CACHER_S3_SECRET",),
         env={"CACHER_S3_KEY_ID": "id"},
         config='endpoint = "http://127.0.0.1:9"\nbucket = "b"\nkey_file = "{root}/key-id"\n'
         'secret_file = "{root}/secret"\n'),
    Case("key_file without secret_file", ("exists", "k"), 2, needles=("incomplete", "secret_file"),
         config='endpoint = "http://127.0.0.1:9"\nbucket = "b"\nkey_file = "{root}/key-id"\n'),
    Case("zstd level 99", ("dir", "upload", "new.tar.zst", "{root}/src"), 2,
         needles=("compression_level 99", "CACHER_COMPRESSION_LEVEL"), env={"CACHER_COMPRESSION_LEVEL": "99"}),
    Case("gzip level 10", ("dir", "upload", "new.tar.gz", "{root}/src"), 2,
         needles=("compression_level 10", "gzip"), config="compression_level = 10\n"),
    Case("file store segment over 234 bytes", ("upload", "{long}", "{root}/src/cached"), 2,
         needles=("key too long", "234")),
    Case("S3 name over 1024 bytes", ("exists", "{s3long}"), 2, needles=("key too long", "1024"), env=DEAD_S3),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(cacher, world: World, case: Case) -> None:
    if case.config is not None:
        path = world.home / ".config" / "cacher" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(world.fill(case.config))
    before = {p: snapshot(world.root / p) for p in case.unchanged}
    args = [world.fill(a) for a in case.args]
    env = {k: world.fill(v) for k, v in case.env.items()}
    run = cacher(*args, extra_env=env, cwd=world.root / case.cwd)
    assert run.code == case.code, run
    if case.code == 2:
        assert_one_error_line(run, *case.needles)
    for p, seen in before.items():
        assert snapshot(world.root / p) == seen, f"{p} changed\n{run}"
    assert not (world.root / "built").exists(), "the build command ran"
    leftovers = [p for p in world.root.rglob("*") if ".cacher-" in p.name]
    assert leftovers == [], leftovers


def test_prune_all_projects_is_said_in_so_many_words(cacher, world: World) -> None:
    cfg = world.home / ".config" / "cacher" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(world.fill(SHARED))
    run = cacher("prune", "--older-than", "1s", "--all-projects", cwd=world.root)
    assert run.code == 0, run
    assert not (world.root / "shared" / "proj" / "a").exists()
    assert not (world.root / "shared" / "other" / "b").exists()


def test_empty_endpoint_variable_keeps_the_configured_endpoint(cacher, world: World) -> None:
    cfg = world.home / ".config" / "cacher" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text('endpoint = "http://127.0.0.1:9"\nbucket = "b"\nmax_attempts = 1\nconnect_timeout = 1.0\n')
    run = cacher("doctor", extra_env={"CACHER_ENDPOINT": "", "CACHER_S3_KEY_ID": "id", "CACHER_S3_SECRET": "s"})
    assert run.code == 2, run
    assert "endpoint: 'http://127.0.0.1:9' (file)" in run.err, run


def test_file_store_segments_up_to_234_bytes(cacher, world: World) -> None:
    """234 bytes is stored (its temporary sibling's name is 255); 235 is refused before I/O."""
    root = world.home / ".cache" / "cacher"
    run = cacher("upload", "d/" + "x" * 234, str(world.root / "src" / "cached"))
    assert run.code == 0, run
    assert (root / "d" / ("x" * 234)).read_text() == "from the cache\n"
    run = cacher("upload", "e/" + "é" * 118, str(world.root / "src" / "cached"))  # 236 bytes
    assert run.code == 2, run
    assert_one_error_line(run, "key too long", "236 bytes")
    assert not (root / "e").exists()


def test_symlinked_dir_is_restored_through_the_link(cacher, world: World) -> None:
    """DIR a link to a directory elsewhere (a module cache on a bigger disk): the link stays,
    its target gets the tree."""
    target = world.root / "big-disk" / "modcache"
    target.mkdir(parents=True)
    (target / "stale").write_text("old")
    link = world.root / "modcache"
    link.symlink_to(target)
    run = cacher("dir", "download", "k.tar.zst", str(link), cwd=world.root)
    assert run.code == 0, run
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert sorted(p.name for p in target.iterdir()) == ["cached"]
    assert (target / "cached").read_text() == "from the cache\n"
    assert [p.name for p in world.root.iterdir() if ".cacher-" in p.name] == []
    assert [p.name for p in target.parent.iterdir()] == ["modcache"]


def test_unwritable_github_output_warns_and_keeps_the_exit_code(cacher, world: World) -> None:
    """GITHUB_OUTPUT names a directory: the restore happened, so exit 0 and a warning; a miss
    stays exit 3."""
    out = world.root / "out"
    env = {"GITHUB_OUTPUT": str(world.root)}
    run = cacher("dir", "download", "k.tar.zst", str(out), extra_env=env, cwd=world.root)
    assert run.code == 0, run
    assert (out / "cached").read_text() == "from the cache\n"
    assert "cacher: warning: cannot write the GitHub output file" in run.err, run
    assert "error" not in run.err
    run = cacher("dir", "download", "missing.tar.zst", str(world.root / "o2"), extra_env=env, cwd=world.root)
    assert run.code == 3, run
    assert not (world.root / "o2").exists()


def test_json_on_a_full_stdout_warns_and_keeps_the_exit_code(world: World, env: dict[str, str]) -> None:
    import subprocess

    from tests.conftest import CACHER

    out = world.root / "out"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([CACHER, "dir", "download", "k.tar.zst", str(out), "--json"], env=env,
                              cwd=world.root, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "cacher: warning: cannot write the JSON result" in proc.stderr
    assert (out / "cached").read_text() == "from the cache\n"


# -- jobs side by side: restores of one DIR take turns; leftovers of killed jobs are cleared --


def _lock_file(run_dir: Path, target: Path) -> Path:
    """The lock file restores of ``target`` take turns on (docs/dir.md)."""
    import hashlib

    digest = hashlib.sha256(os.fsencode(os.path.realpath(target))).hexdigest()
    return run_dir / "cacher" / "locks" / f"{digest}.lock"


def test_a_restore_waits_for_the_one_holding_the_dir(world: World, env: dict[str, str]) -> None:
    """The lock is a file in the runtime dir named by the sha256 of the resolved DIR: a restore
    started while another holds it waits, then completes; nothing is written beside DIR."""
    import fcntl
    import subprocess
    import time

    from tests.conftest import CACHER

    run_dir = world.root / "run"
    run_dir.mkdir()
    out = world.root / "area" / "out"
    lock = _lock_file(run_dir, out)
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen([CACHER, "dir", "download", "k.tar.zst", str(out)],
                                env={**env, "XDG_RUNTIME_DIR": str(run_dir)}, cwd=world.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        waited = proc.poll() is None
        restored_meanwhile = out.exists()
    _, err = proc.communicate(timeout=60)
    assert waited and not restored_meanwhile, err
    assert proc.returncode == 0, err
    assert (out / "cached").read_text() == "from the cache\n"
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def test_parallel_restores_of_one_dir_all_succeed(world: World, env: dict[str, str]) -> None:
    """Three restores of one key into one DIR at once, round after round: every one exits 0 and
    the tree is whole (the check-then-rename race failed one round in about 60)."""
    import subprocess

    from tests.conftest import CACHER

    src = world.root / "many"
    for i in range(200):
        (src / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 10}" / f"f{i}").write_text(str(i))
    assert subprocess.run([CACHER, "dir", "upload", "many.tar.zst", str(src)], env=env,
                          capture_output=True).returncode == 0
    out = world.root / "area" / "out"
    for _ in range(12):
        procs = [subprocess.Popen([CACHER, "dir", "download", "many.tar.zst", str(out)], env=env, cwd=world.root,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        errors = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
        for p in procs:
            if p.stderr:
                p.stderr.close()
        assert [code for code, _ in errors] == [0, 0, 0], errors
        assert len(list(out.rglob("f*"))) == 200
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def test_leftovers_of_killed_restores_are_removed_unless_held(cacher, world: World) -> None:
    """A staging or old tree that no process holds (its owner was SIGKILLed) is removed by the
    next restore of the same DIR; one whose owner is alive (holds its flock) is kept."""
    import fcntl

    area = world.root / "area"
    out = area / "out"
    for name in (".out.cacher-staging-dead1", ".out.cacher-old-dead2", ".out.cacher-staging-alive",
                 ".other.cacher-staging-x"):
        (area / name / "sub").mkdir(parents=True)
        (area / name / "sub" / "f").write_text("partial")
    alive = os.open(area / ".out.cacher-staging-alive", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(alive, fcntl.LOCK_EX)
        run = cacher("dir", "download", "k.tar.zst", str(out), cwd=world.root)
    finally:
        os.close(alive)
    assert run.code == 0, run
    assert sorted(p.name for p in area.iterdir()) == [".other.cacher-staging-x", ".out.cacher-staging-alive", "out"]


def test_a_sigkilled_restore_leaves_nothing_after_the_next(world: World, env: dict[str, str]) -> None:
    import json
    import signal
    import subprocess
    import time

    from tests.conftest import CACHER

    src = world.root / "big"
    src.mkdir()
    for i in range(160):
        (src / f"f{i:04d}").write_bytes(os.urandom(256 << 10))
    assert subprocess.run([CACHER, "dir", "upload", "big.tar", str(src)], env=env, capture_output=True).returncode == 0
    area = world.root / "area"
    area.mkdir()
    out = area / "out"
    proc = subprocess.Popen([CACHER, "dir", "download", "big.tar", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(".cacher-staging-" in p.name for p in area.iterdir()):
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert any(".cacher-staging-" in p.name for p in area.iterdir()), "the restore ended before the kill"
    run = subprocess.run([CACHER, "dir", "download", "k.tar.zst", str(out)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert [p.name for p in area.iterdir()] == ["out"]
    assert (out / "cached").read_text() == "from the cache\n"

    # the same for an upload into the file store: its temporary is counted, then cleared
    store = world.home / ".cache" / "cacher"
    proc = subprocess.Popen([CACHER, "dir", "upload", "big2.tar", str(src)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(".cacher-tmp-" in p.name for p in store.iterdir()):
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [p.name for p in store.iterdir() if ".cacher-tmp-" in p.name], "the upload ended before the kill"
    stats = subprocess.run([CACHER, "stats", "--json"], env=env, capture_output=True, text=True)
    assert stats.returncode == 0, stats
    assert json.loads(stats.stdout)["unfinished_uploads"]["count"] == 1, stats.stdout
    run = subprocess.run([CACHER, "dir", "upload", "big2.tar", str(src)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert [p.name for p in store.iterdir() if ".cacher-" in p.name] == []


def test_temporaries_of_killed_uploads_are_counted_and_cleared(cacher, world: World) -> None:
    """A file-store temporary no writer holds is counted by stats, removed by the next write of
    its key and by prune; one a living writer holds is left alone."""
    import fcntl
    import json

    root = world.home / ".cache" / "cacher"
    (root / "p").mkdir()
    dead_a = root / "p" / ".a.cacher-tmp-dead0001"
    dead_b = root / "p" / ".b.cacher-tmp-dead0002"
    alive = root / "p" / ".a.cacher-tmp-alive001"
    for path in (dead_a, dead_b, alive):
        path.write_bytes(b"x" * 1000)
    held = open(alive, "rb")
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        run = cacher("stats", "--json", cwd=world.root)
        assert run.code == 0, run
        assert json.loads(run.out)["unfinished_uploads"] == {"count": 2, "bytes": 2000}
        run = cacher("upload", "p/a", str(world.root / "src" / "cached"), cwd=world.root)
        assert run.code == 0, run
        assert not dead_a.exists() and dead_b.exists() and alive.exists()
        run = cacher("prune", "p/", "--older-than", "30d", cwd=world.root)
        assert run.code == 0, run
        assert "removed 1 unfinished uploads of killed jobs" in run.err, run
        assert not dead_b.exists() and alive.exists()
        assert (root / "p" / "a").read_text() == "from the cache\n"
    finally:
        held.close()


def test_restore_lock_directory_of_another_user_is_refused(cacher, world: World) -> None:
    """A runtime directory someone else made (a shared /tmp) is not trusted with the locks."""
    if os.getuid() != 0:
        pytest.skip("needs root to give a directory to another user")
    run_dir = world.root / "run"
    (run_dir / "cacher").mkdir(parents=True)
    os.chown(run_dir / "cacher", 12345, 12345)
    out = world.root / "out"
    out.mkdir()
    (out / "keep").write_text("keep")
    run = cacher("dir", "download", "k.tar.zst", str(out), extra_env={"XDG_RUNTIME_DIR": str(run_dir)})
    assert run.code == 2, run
    assert_one_error_line(run, "restore locks", "uid 12345")
    assert [p.name for p in world.root.iterdir() if ".cacher-" in p.name] == []
    assert [p.name for p in out.iterdir()] == ["keep"]


def test_s3_multipart_uploads_of_killed_runners_are_found_and_aborted(seaweed_s3, s3_bucket: str) -> None:
    """On S3 the leftovers are multipart uploads under the prefix started over a day ago: a
    younger one may be a running job's and is left alone. (The day is a parameter here: the
    server's clock cannot be moved.)"""
    from datetime import timedelta

    from cacher.stores import open_store
    from cacher.testing.fixtures import s3_environ, s3_settings

    client = seaweed_s3.client()
    for key in ("proj/x.tar.zst", "other/y.tar.zst"):
        client.create_multipart_upload(Bucket=s3_bucket, Key=key)
    store = open_store(s3_settings(seaweed_s3, s3_bucket, prefix="proj"), s3_environ(seaweed_s3))
    assert store.leftovers("") == []  # started just now: not a leftover
    found = store.leftovers("", older_than=timedelta(0))
    assert [lo.key for lo in found] == ["x.tar.zst"]
    assert store.leftovers("nope", older_than=timedelta(0)) == []
    assert store.remove_leftover(found[0])
    assert [u["Key"] for u in seaweed_s3.multipart_uploads(s3_bucket)] == ["other/y.tar.zst"]


def test_prune_and_stats_leave_a_running_multipart_upload_alone(cacher, seaweed_s3, s3_bucket: str) -> None:
    import json

    env = {"CACHER_ENDPOINT": seaweed_s3.endpoint, "CACHER_BUCKET": s3_bucket,
           "CACHER_S3_KEY_ID": seaweed_s3.key_id, "CACHER_S3_SECRET": seaweed_s3.secret}
    seaweed_s3.client().create_multipart_upload(Bucket=s3_bucket, Key="p/running.tar.zst")
    run = cacher("stats", "--json", extra_env=env)
    assert run.code == 0, run
    assert json.loads(run.out)["unfinished_uploads"] == {"count": 0, "bytes": 0}
    run = cacher("prune", "--older-than", "1s", "--all-projects", extra_env=env)
    assert run.code == 0, run
    assert [u["Key"] for u in seaweed_s3.multipart_uploads(s3_bucket)] == ["p/running.tar.zst"]
