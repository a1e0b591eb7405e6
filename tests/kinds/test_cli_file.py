"""The seed's single-file commands through the installed `cacher`, on the local default store.

The same behaviour runs on S3 in test_s3.py; here the store is the file backend under an
isolated HOME, which is what a user with no configuration gets.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import assert_one_error_line, tree_files

DATA = os.urandom(3 << 20) + b"tail"
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    f = tmp_path / "artifact.bin"
    f.write_bytes(DATA)
    return f


def test_exit_code_table(cacher, artifact: Path, tmp_path: Path) -> None:
    """0 ok, 1 exists-miss, 2 error, 2 usage error, 3 download miss."""
    rows = [
        (["upload", "k/a.bin", str(artifact)], 0),
        (["exists", "k/a.bin"], 0),
        (["exists", "k/missing"], 1),
        (["download", "k/missing", str(tmp_path / "x")], 3),
        (["download", "k/a.bin", str(tmp_path / "nodir" / "x")], 2),
        (["upload", "k/b", str(tmp_path / "nope")], 2),
        (["download"], 2),
        (["no-such-command"], 2),
        (["exists", "k", "--no-such-flag"], 2),
        (["download", "k/a.bin", str(tmp_path / "out.bin")], 0),
    ]
    for args, code in rows:
        run = cacher(*args)
        assert run.code == code, f"{args}: {run}"
        if code == 2:
            assert_one_error_line(run)
    assert (tmp_path / "out.bin").read_bytes() == DATA


def test_upload_skips_existing_unless_force(cacher, artifact: Path, local_root: Path) -> None:
    assert cacher("upload", "k", str(artifact)).code == 0
    artifact.write_bytes(b"new")
    run = cacher("upload", "k", str(artifact))
    assert run.code == 0 and "skipped" in run.err
    assert (local_root / "k").read_bytes() == DATA
    assert cacher("upload", "k", str(artifact), "--force").code == 0
    assert (local_root / "k").read_bytes() == b"new"


def test_stored_object_is_plain_bytes(cacher, artifact: Path, local_root: Path) -> None:
    run = cacher("upload", "tools/go.tar.gz", str(artifact))
    assert run.code == 0, run
    assert (local_root / "tools" / "go.tar.gz").read_bytes() == DATA


def test_list_and_delete(cacher, artifact: Path) -> None:
    for key in ("a/1", "a/2", "ab/3", "b/4"):
        assert cacher("upload", key, str(artifact)).code == 0
    run = cacher("list", "a")
    assert (run.code, run.out.split()) == (0, ["a/1", "a/2", "ab/3"])
    run = cacher("list", "a/")
    assert (run.code, run.out.split()) == (0, ["a/1", "a/2"])
    run = cacher("list", "a/", "--long")
    assert run.code == 0 and str(len(DATA)) in run.out
    assert cacher("delete", "a/1").code == 0
    assert cacher("delete", "a/1").code == 1
    assert cacher("list").out.split() == ["a/2", "ab/3", "b/4"]


def test_prefix_is_joined_to_every_key(cacher, artifact: Path, local_root: Path) -> None:
    assert cacher("upload", "k", str(artifact), "--prefix", "proj/x").code == 0
    assert (local_root / "proj" / "x" / "k").read_bytes() == DATA
    assert cacher("exists", "k", "--prefix", "proj/x").code == 0
    assert cacher("exists", "k").code == 1
    run = cacher("list", extra_env={"CACHER_PREFIX": "proj"})
    assert run.out.split() == ["x/k"]


def test_arch_suffix_applies_to_storage_keys(cacher, artifact: Path, local_root: Path) -> None:
    assert cacher("upload", "bin/tool", str(artifact), "--arch-suffix").code == 0
    assert [p.name for p in (local_root / "bin").iterdir()] == [
        "tool-linux-" + os.uname().machine.replace("x86_64", "amd64").replace("aarch64", "arm64")
    ]


def test_download_url_miss_fetches_verifies_and_stores(
    cacher, http, tmp_path: Path, local_root: Path
) -> None:
    url = http.put("dl/go.tar.gz", DATA)
    dest = tmp_path / "go.tar.gz"
    run = cacher("download", "go.tar.gz", str(dest), "--url", url, "--sha256", SHA)
    assert run.code == 0, run
    assert dest.read_bytes() == DATA
    assert (local_root / "go.tar.gz").read_bytes() == DATA
    assert http.count("/dl/go.tar.gz", "GET") == 1
    dest.unlink()
    run = cacher("download", "go.tar.gz", str(dest), "--url", url, "--sha256", SHA)
    assert run.code == 0 and "hit" in run.err, run
    assert dest.read_bytes() == DATA
    assert http.count("/dl/go.tar.gz", "GET") == 1  # the second run never touched the URL


def test_download_sha_mismatch_writes_and_stores_nothing(
    cacher, http, tmp_path: Path, local_root: Path
) -> None:
    url = http.put("bad.bin", DATA + b"tampered")
    dest = tmp_path / "dest.bin"
    run = cacher("download", "bad.bin", str(dest), "--url", url, "--sha256", SHA)
    assert run.code == 2, run
    assert_one_error_line(run, "sha256 mismatch")
    assert not dest.exists()
    assert list(tmp_path.glob(".dest.bin*")) == []
    assert not local_root.exists() or tree_files(local_root) == {}


def test_existing_dest_untouched_on_failure(cacher, http, tmp_path: Path) -> None:
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"precious")
    url = http.put("x.bin", b"other")
    run = cacher("download", "x.bin", str(dest), "--url", url, "--sha256", SHA)
    assert run.code == 2
    assert dest.read_bytes() == b"precious"
    run = cacher("download", "missing", str(dest), "--url", http.url("nothing-here"))
    assert run.code == 2, run
    assert_one_error_line(run, "404")
    assert dest.read_bytes() == b"precious"


def test_cached_object_not_matching_sha_is_refetched(cacher, http, tmp_path: Path, local_root: Path) -> None:
    """A corrupt cached object with a --url fallback is treated as a miss and replaced."""
    (local_root).mkdir(parents=True)
    (local_root / "tool").write_bytes(b"corrupted cache entry")
    url = http.put("tool", DATA)
    dest = tmp_path / "tool"
    run = cacher("download", "tool", str(dest), "--url", url, "--sha256", SHA)
    assert run.code == 0, run
    assert "failed verification" in run.err
    assert dest.read_bytes() == DATA
    assert (local_root / "tool").read_bytes() == DATA


def test_cached_object_not_matching_sha_without_fallback_fails(
    cacher, tmp_path: Path, local_root: Path
) -> None:
    local_root.mkdir(parents=True)
    (local_root / "tool").write_bytes(b"corrupted")
    dest = tmp_path / "tool"
    run = cacher("url", "download", "tool", str(dest), "--sha256", SHA)
    assert run.code == 2, run  # url download needs --url
    run = cacher("download", "tool", str(dest), "--sha256", SHA)
    assert run.code == 2, run
    assert_one_error_line(run, "sha256 mismatch")
    assert not dest.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["download", "/abs", "{dest}"], "leading '/'"),
        (["download", "a/../b", "{dest}"], "'..'"),
        (["download", "a\x01b", "{dest}"], "control characters"),
        (["download", "../escape", "{dest}"], "'..'"),
        (["upload", "a//b", "{src}"], "empty segment"),
        (["download", "k", "{dest}", "--sha256", "abc"], "64 hexadecimal"),
        (["download", "k", "{dest}", "--url", "{url}", "--sha256", "z" * 64], "64 hexadecimal"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    cacher, tmp_path: Path, local_root: Path, http, args: list[str], needle: str
) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x")
    dest = tmp_path / "dest"
    subst = {"{dest}": str(dest), "{src}": str(src), "{url}": http.put("u", b"x")}
    run = cacher(*[subst.get(a, a) for a in args])
    assert run.code == 2, run
    assert_one_error_line(run, needle)
    assert not dest.exists()
    assert not local_root.exists() or tree_files(local_root) == {}
    assert http.count("/u") == 0


def test_url_kind_streams_a_url_into_the_cache(cacher, http, local_root: Path, tmp_path: Path) -> None:
    url = http.put("big.bin", DATA)
    run = cacher("url", "upload", "big.bin", url, "--sha256", SHA)
    assert run.code == 0, run
    assert (local_root / "big.bin").read_bytes() == DATA
    run = cacher("url", "upload", "bad.bin", url, "--sha256", "0" * 64)
    assert run.code == 2, run
    assert not (local_root / "bad.bin").exists()


def test_debug_shows_traceback(cacher, tmp_path: Path) -> None:
    run = cacher("upload", "k", str(tmp_path / "nope"), "--debug")
    assert run.code == 2 and "Traceback" in run.err
    run = cacher("upload", "k", str(tmp_path / "nope"), extra_env={"CACHER_DEBUG": "1"})
    assert run.code == 2 and "Traceback" in run.err


def test_version_names_cacher_and_its_libraries(cacher) -> None:
    from cacher import __version__

    run = cacher("--version")
    assert run.code == 0, run
    first, second = run.out.splitlines()
    assert first == f"cacher {__version__}"
    for dist in ("fsspec", "s3fs", "zstandard", "stevedore", "cyclopts", "tomli-w"):
        assert f"{dist} " in second
