"""The paths kind through the installed `cacher`: several paths under one key, globs, ~,
!excludes, the path list bound into the key, and every path staged before any is swapped in.

Runs on the local default store and on SeaweedFS; the conformance kit (`TestPathsKind`) covers
the memory, file and s3 stores through the engine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import zstandard

from cacher.fs.staging import force_rmtree
from cacher.kinds.paths import namespace_of, patterns_of
from cacher.testing import KindContract, path_snapshot
from tests.conftest import assert_one_error_line, s3_store_env
from tests.trees import snapshot


class TestPathsKind(KindContract):
    kind_name = "paths"
    key = "conformance/paths.tar.zst"

    def make_artifact(self, tmp_path: Path) -> list[str]:
        tree = tmp_path / "ws" / "tree"
        (tree / "a" / "b").mkdir(parents=True)
        (tree / "a" / "b" / "data").write_bytes(os.urandom(300_000))
        (tree / "a" / "link").symlink_to("b/data")
        (tree / "ro").mkdir()
        (tree / "ro" / "f").write_text("read only")
        (tree / "ro").chmod(0o555)
        single = tmp_path / "ws" / "single.txt"
        single.write_text("one file\n")
        return [f"{tree}\n{single}"]  # one target, two patterns: a tree and a file

    def restore_target(self, tmp_path: Path, targets: Sequence[str]) -> str:
        for pattern in patterns_of(targets):  # restore into the places they came from, emptied
            force_rmtree(Path(pattern))
        return targets[0]

    def prepare_existing_target(self, target: str | None, targets: Sequence[str]) -> None:
        tree, single = patterns_of(targets)
        Path(tree).mkdir(parents=True, exist_ok=True)
        (Path(tree) / "precious").write_text("keep me")
        Path(single).write_text("keep me")

    def snapshot(self, target: str | None) -> object:
        return tuple(path_snapshot(p) for p in patterns_of([target or ""]))


def archive_names(path: Path) -> list[str]:
    data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def stored(local_root: Path, patterns: Sequence[str], key: str) -> Path:
    return local_root / namespace_of(patterns) / key


@pytest.fixture
def project(tmp_path: Path, home: Path) -> Path:
    """A workspace (the cacher fixture's cwd, tmp_path) and a HOME with caches in both."""
    (tmp_path / "node_modules" / "pkg").mkdir(parents=True)
    (tmp_path / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1\n")
    (tmp_path / "node_modules" / ".cache").mkdir()
    (tmp_path / "node_modules" / ".cache" / "junk").write_text("junk")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "a.o").write_bytes(b"obj a")
    (tmp_path / "build" / "b.o").write_bytes(b"obj b")
    (tmp_path / "build" / "build.log").write_text("log")
    (home / ".npm" / "_cacache").mkdir(parents=True)
    (home / ".npm" / "_cacache" / "index").write_bytes(os.urandom(50_000))
    (home / ".npm" / "_logs").mkdir()
    (home / ".npm" / "_logs" / "debug.log").write_text("log")
    return tmp_path


def places(project: Path, home: Path) -> tuple[object, ...]:
    """What a restore may touch (HOME's own .cache changes with every run: not compared)."""
    return tuple(path_snapshot(p) for p in (project / "node_modules", project / "build", home / ".npm"))


PATTERNS = ["node_modules", "~/.npm", "build/*.o", "!node_modules/.cache", "!~/.npm/_logs"]


def test_round_trip_globs_home_and_excludes(cacher, project: Path, home: Path, local_root: Path) -> None:
    run = cacher("paths", "upload", "deps.tar.zst", *PATTERNS)
    assert run.code == 0, run
    obj = stored(local_root, PATTERNS, "deps.tar.zst")
    assert obj.is_file()
    # The archive records what the globs matched, under where each came from.
    names = archive_names(obj)
    assert names[0] == "cacher-paths.json"
    assert "workspace/build/a.o" in names and "workspace/build/b.o" in names
    assert not any("build.log" in n or ".cache" in n or "_logs" in n for n in names)
    assert "home/.npm/_cacache/index" in names
    want_nm = snapshot(project / "node_modules")
    want_npm = snapshot(home / ".npm")
    for p in (project / "node_modules", home / ".npm"):
        force_rmtree(p)
    (project / "build" / "a.o").unlink()
    (project / "build" / "b.o").write_bytes(b"changed")

    run = cacher("paths", "download", "--json", "deps.tar.zst", *PATTERNS)
    assert run.code == 0, run
    doc = json.loads(run.out)
    assert doc["match"] == "exact" and doc["matched_key"] == "deps.tar.zst" and doc["kind"] == "paths"
    del want_nm[".cache"], want_nm[".cache/junk"]
    del want_npm["_logs"], want_npm["_logs/debug.log"]
    assert snapshot(project / "node_modules") == want_nm
    assert snapshot(home / ".npm") == want_npm
    assert (project / "build" / "a.o").read_bytes() == b"obj a"
    assert (project / "build" / "b.o").read_bytes() == b"obj b"
    assert (project / "build" / "build.log").read_text() == "log"  # not matched: left alone
    assert not list(project.rglob("*cacher-*")), "a staging leftover"


def test_changed_path_list_is_a_miss(cacher, project: Path, home: Path, local_root: Path) -> None:
    assert cacher("paths", "upload", "deps.tar.zst", "node_modules", "build/*.o").code == 0
    before = places(project, home)
    run = cacher("paths", "download", "deps.tar.zst", "node_modules")
    assert run.code == 3, run
    run = cacher("paths", "download", "deps.tar.zst", "build/*.o", "node_modules")  # order counts
    assert run.code == 3, run
    assert places(project, home) == before
    # The same key with another path list is another object; both stay.
    assert cacher("paths", "upload", "deps.tar.zst", "node_modules").code == 0
    assert stored(local_root, ["node_modules"], "deps.tar.zst").is_file()
    assert stored(local_root, ["node_modules", "build/*.o"], "deps.tar.zst").is_file()


def test_restore_keys_match_only_the_same_paths(cacher, project: Path) -> None:
    assert cacher("paths", "upload", "deps-old.tar.zst", "node_modules").code == 0
    assert cacher("paths", "upload", "deps-other.tar.zst", "build").code == 0
    force_rmtree(project / "node_modules")
    run = cacher("paths", "download", "--json", "deps-new.tar.zst", "node_modules", "--restore-key", "deps-")
    assert run.code == 0, run
    doc = json.loads(run.out)
    assert doc["match"] == "partial" and doc["matched_key"] == "deps-old.tar.zst"
    assert (project / "node_modules" / "pkg" / "index.js").is_file()


def test_several_patterns_in_one_argument(cacher, project: Path, home: Path) -> None:
    assert cacher("paths", "upload", "k.tar.zst", "node_modules\n~/.npm\n").code == 0
    force_rmtree(home / ".npm")
    run = cacher("paths", "download", "k.tar.zst", "node_modules", "~/.npm")
    assert run.code == 0, run  # the same list, written as separate arguments
    assert (home / ".npm" / "_logs" / "debug.log").is_file()


@pytest.mark.parametrize("pattern", [".", "~", "/", "..", "*"])
def test_refuses_what_a_restore_must_not_replace(cacher, project: Path, local_root: Path, pattern: str) -> None:
    run = cacher("paths", "upload", "bad.tar.zst", pattern)
    assert_one_error_line(run, "refusing")
    assert not list(local_root.rglob("bad.tar.zst"))


def test_nothing_matched_stores_nothing(cacher, project: Path, local_root: Path) -> None:
    run = cacher("paths", "upload", "none.tar.zst", "no-such-dir", "*.nothing")
    assert_one_error_line(run, "no file or directory matches")
    assert not list(local_root.rglob("none.tar.zst"))
    assert_one_error_line(cacher("paths", "upload", "x.tar.zst", "!node_modules"), "not an exclude")
    assert_one_error_line(cacher("paths", "download", "x.tar.zst"), "at least one PATH")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_object_leaves_every_path_untouched(cacher, project: Path, home: Path, local_root: Path, damage: str) -> None:
    assert cacher("paths", "upload", "deps.tar.zst", *PATTERNS).code == 0
    obj = stored(local_root, PATTERNS, "deps.tar.zst")
    data = bytearray(obj.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 200]
    else:
        data[len(data) // 2] ^= 0x55
    obj.write_bytes(bytes(data))
    (project / "node_modules" / "new").write_text("mine")
    (project / "build" / "a.o").write_bytes(b"mine")
    before = places(project, home)
    run = cacher("paths", "download", "deps.tar.zst", *PATTERNS)
    assert run.code == 2, run
    assert "Traceback" not in run.err
    assert places(project, home) == before


def test_one_unplaceable_path_leaves_the_others_untouched(cacher, project: Path, home: Path) -> None:
    """A file entry whose place is now a directory fails the restore before anything moves."""
    assert cacher("paths", "upload", "deps.tar.zst", "node_modules", "build/a.o", "~/.npm").code == 0
    (project / "build" / "a.o").unlink()
    (project / "build" / "a.o").mkdir()
    force_rmtree(home / ".npm")
    (project / "node_modules" / "new").write_text("mine")
    before = places(project, home)
    run = cacher("paths", "download", "deps.tar.zst", "node_modules", "build/a.o", "~/.npm")
    assert_one_error_line(run, "a directory is in its place")
    assert places(project, home) == before


def forged(entries: list[dict[str, str]], patterns: list[str], members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        manifest = json.dumps({"version": 1, "patterns": patterns, "entries": entries}).encode()
        for name, data in [("cacher-paths.json", manifest), *members.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor(write_checksum=True).compress(buf.getvalue())


@pytest.mark.parametrize(
    "entry",
    [
        {"root": "root", "path": "PLACEHOLDER/outside.txt", "type": "file"},  # a place no PATH names
        {"root": "home", "path": ".bashrc", "type": "file"},
        {"root": "workspace", "path": "../escape", "type": "file"},
        {"root": "nowhere", "path": "x", "type": "file"},
    ],
)
def test_archive_naming_other_places_is_refused(
    cacher, project: Path, home: Path, local_root: Path, tmp_path: Path, entry: dict[str, str]
) -> None:
    outside = tmp_path.parent / f"outside-{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"
    outside.mkdir(exist_ok=True)
    entry = {**entry, "path": entry["path"].replace("PLACEHOLDER", str(outside).lstrip("/"))}
    patterns = ["build/*.o"]
    obj = stored(local_root, patterns, "evil.tar.zst")
    obj.parent.mkdir(parents=True)
    member = f"{entry['root']}/{entry['path']}"
    obj.write_bytes(forged([entry], patterns, {} if ".." in member else {member: b"pwned"}))
    before = places(project, home)
    run = cacher("paths", "download", "evil.tar.zst", *patterns)
    assert run.code == 2, run
    assert "Traceback" not in run.err
    assert places(project, home) == before
    assert not (outside / "outside.txt").exists()


@pytest.fixture
def s3env(seaweed_s3: Any, s3_bucket: str) -> dict[str, str]:
    return {
        **s3_store_env(seaweed_s3, s3_bucket),
        "CACHER_PREFIX": "proj",
        "CACHER_SCOPE": "feature/x",
        "CACHER_FALLBACK_SCOPES": "main",
    }


def test_s3_scoped_round_trip(cacher, project: Path, home: Path, s3env: Mapping[str, str], seaweed_s3: Any, s3_bucket: str) -> None:
    main = {**s3env, "CACHER_SCOPE": "main"}
    assert cacher("paths", "upload", "deps-1.tar.zst", *PATTERNS, extra_env=main).code == 0
    keys = seaweed_s3.list_keys(s3_bucket)
    assert keys == [f"proj/_scopes/main/{namespace_of(PATTERNS)}/deps-1.tar.zst"]
    force_rmtree(project / "node_modules")
    run = cacher("paths", "download", "--json", "deps-2.tar.zst", *PATTERNS, "--restore-key", "deps-", extra_env=s3env)
    assert run.code == 0, run
    doc = json.loads(run.out)
    assert (doc["match"], doc["matched_key"], doc["scope"]) == ("partial", "deps-1.tar.zst", "main")
    assert (project / "node_modules" / "pkg" / "index.js").is_file()
    assert not (project / "node_modules" / ".cache").exists()


def test_one_target_kinds_still_take_one(cacher, tmp_path: Path) -> None:
    """Several download targets reach a kind only when it declares them (Target.many)."""
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("x")
    assert cacher("dir", "upload", "d.tar.zst", str(tree)).code == 0
    run = cacher("dir", "download", "d.tar.zst", str(tmp_path / "r"), str(tmp_path / "s"))
    assert run.code == 2, run
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()
    run = cacher("dir", "download", "d.tar.zst", str(tmp_path / "r"))
    assert run.code == 0, run
    assert (tmp_path / "r" / "f").read_text() == "x"


# --- dir upload --exclude, for parity -----------------------------------------------------------


def test_dir_upload_exclude(cacher, project: Path, local_root: Path, tmp_path: Path) -> None:
    (project / "node_modules" / "pkg" / "debug.log").write_text("log")
    run = cacher("dir", "upload", "nm.tar.zst", "node_modules", "--exclude", ".cache\n**/*.log")
    assert run.code == 0, run
    run = cacher("dir", "download", "nm.tar.zst", str(tmp_path / "restored"))
    assert run.code == 0, run
    restored = sorted(str(p.relative_to(tmp_path / "restored")) for p in (tmp_path / "restored").rglob("*"))
    assert restored == ["pkg", "pkg/index.js"]
    assert (project / "node_modules" / ".cache" / "junk").is_file()  # the source is untouched


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ("**/*.log", ["a.log", "x/y/a.log"], ["a.logx", "x/a.txt"]),
        ("build/**", ["build", "build/a", "build/a/b"], ["buildx", "src/build"]),
        ("/w/**/node_modules", ["/w/node_modules", "/w/a/b/node_modules"], ["/w/node_modules/x"]),
        ("a/*/c", ["a/b/c"], ["a/b/d/c", "a/c"]),
        ("f?.[ch]", ["f1.c", "fx.h"], ["f1.o", "f12.c"]),
        ("[!a]x", ["bx"], ["ax"]),
    ],
)
def test_glob_patterns(pattern: str, yes: list[str], no: list[str]) -> None:
    from cacher.fs.globs import glob_regex

    regex = glob_regex(pattern)
    assert all(regex.fullmatch(p) for p in yes), [p for p in yes if not regex.fullmatch(p)]
    assert not any(regex.fullmatch(p) for p in no), [p for p in no if regex.fullmatch(p)]
