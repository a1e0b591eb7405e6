"""Key rules, templates and content digests, pinned against real coreutils."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from cacher.errors import UsageError
from cacher.keying.keyfunc import KeyContext
from cacher.keying.keyrules import validate_key
from cacher.keying.keytemplate import insert_before_extension, split_extension
from cacher.keying.platform_names import go_arch, go_os
from cacher.keys.builtin import ArchKey, EnvKey, HashKey, OsKey
from cacher.testing import KeyFunctionContract
from tests.conftest import assert_one_error_line


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "a/../b", "..", "./a", "a/./b", "a//b", "a/", "a\\b", "a\nb", "a\x00b", "a\x7fb"],
)
def test_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(UsageError):
        validate_key(key)


@pytest.mark.parametrize("key", ["a", "go-mod/abc.tar.zst", "a/b/c", "ünï/cødé", "a..b", ".hidden"])
def test_valid_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "stem", "ext"),
    [
        ("img/build.tar.zst", "img/build", ".tar.zst"),
        ("go-1.26.3.tar.gz", "go-1.26.3", ".tar.gz"),
        ("bin/cacher", "bin/cacher", ""),
        ("a.b/c", "a.b/c", ""),
        ("x/.hidden", "x/.hidden", ""),
        ("file.txt", "file", ".txt"),
    ],
)
def test_split_extension(key: str, stem: str, ext: str) -> None:
    assert split_extension(key) == (stem, ext)


def test_insert_before_extension() -> None:
    assert insert_before_extension("img/build.tar.zst", "abc") == "img/build-abc.tar.zst"
    assert insert_before_extension("bin/cacher", "linux-amd64") == "bin/cacher-linux-amd64"


def _sh(cmd: str, cwd: Path) -> str:
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a-b").mkdir()
    (root / "empty").mkdir()
    (root / "a" / "b" / "x.txt").write_text("x\n")
    (root / "a-b" / "y").write_bytes(b"\x00\x01" * 1000)
    (root / "top").write_text("top")
    (root / "sp ace").write_text("space")
    (root / "back\\slash").write_text("bs")
    (root / "ünï").write_text("u")
    (root / "link").symlink_to("top")
    return root


def test_single_file_digest_matches_sha256sum(cacher, tmp_path: Path) -> None:
    f = tmp_path / "go.sum"
    f.write_bytes(b"module example\n" * 1000)
    run = cacher("key", "go-mod/{hash}.tar.zst", "--hash-from", str(f))
    assert run.code == 0, run
    expected = _sh("sha256sum go.sum | cut -c1-16", tmp_path).strip()
    assert run.out.strip() == f"go-mod/{expected}.tar.zst"


def test_directory_digest_matches_documented_shell(cacher, tree: Path) -> None:
    run = cacher("key", "d/{hash}", "--hash-from", str(tree), "--hash-length", "64")
    assert run.code == 0, run
    shell = _sh(
        "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64",
        tree,
    ).strip()
    assert run.out.strip() == f"d/{shell}"


def test_several_inputs_digest_matches_documented_shell(cacher, tree: Path, tmp_path: Path) -> None:
    lock = tmp_path / "a.lock"
    lock.write_text("lock")
    run = cacher("key", "k-{hash}", "--hash-from", str(lock), "--hash-from", str(tree))
    assert run.code == 0, run
    shell = _sh(
        "{ sha256sum < a.lock | cut -d' ' -f1;"
        " (cd tree && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1;"
        "} | sha256sum | cut -c1-16",
        tmp_path,
    ).strip()
    assert run.out.strip() == f"k-{shell}"


def test_digest_ignores_mtime_but_not_content(cacher, tree: Path) -> None:
    first = cacher("key", "{hash}", "--hash-from", str(tree)).out
    (tree / "top").touch()
    assert cacher("key", "{hash}", "--hash-from", str(tree)).out == first
    (tree / "top").write_text("changed")
    assert cacher("key", "{hash}", "--hash-from", str(tree)).out != first


def test_hash_inserted_before_extension_without_placeholder(cacher, tmp_path: Path) -> None:
    f = tmp_path / "Dockerfile"
    f.write_text("FROM scratch\n")
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    run = cacher("key", "img/build.tar.zst", "--hash-from", str(f))
    assert (run.code, run.out) == (0, f"img/build-{digest[:16]}.tar.zst\n")
    run = cacher("key", "img/build.tar.zst", "--hash-from", str(f), "--hash-length", "8")
    assert (run.code, run.out) == (0, f"img/build-{digest[:8]}.tar.zst\n")


def test_arch_suffix_uses_go_names(cacher) -> None:
    run = cacher("key", "bin/cacher", "--arch-suffix")
    assert (run.code, run.out) == (0, f"bin/cacher-{go_os()}-{go_arch()}\n")
    assert go_os() == "linux" and go_arch() in {"amd64", "arm64"}
    run = cacher("key", "img/build.tar.zst", "--arch-suffix")
    assert run.out == f"img/build-{go_os()}-{go_arch()}.tar.zst\n"


def test_placeholders(cacher, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("1")
    run = cacher(
        "key",
        "{os}/{arch}/{env:CI_BRANCH}/{hash}.tar",
        "--hash-from",
        str(f),
        extra_env={"CI_BRANCH": "main"},
    )
    digest = hashlib.sha256(b"1").hexdigest()[:16]
    assert (run.code, run.out) == (0, f"{go_os()}/{go_arch()}/main/{digest}.tar\n")
    run = cacher("key", "x-{hash:8}", "--hash-from", str(f))
    assert (run.code, run.out) == (0, f"x-{digest[:8]}\n")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{hash}.tar"], "--hash-from"),
        (["{env:NOPE_UNSET}"], "NOPE_UNSET"),
        (["{nosuch}"], "unknown key function 'nosuch'"),
        (["a/{hash}", "--hash-from", "/does/not/exist"], "/does/not/exist"),
        (["/abs/key"], "leading '/'"),
        (["a/{env:DOTS}/b"], "'..'"),
        (["x", "--hash-length", "0"], "--hash-length"),
        (["{hash:abc}", "--hash-from", "/etc/hostname"], "{hash:abc}"),
    ],
)
def test_key_errors_exit_2(cacher, args: list[str], needle: str) -> None:
    run = cacher("key", *args, extra_env={"DOTS": ".."})
    assert run.code == 2, run
    assert run.out == ""
    assert_one_error_line(run, needle)


@pytest.mark.parametrize(
    "args",
    [
        ["key", "a/{hash}.tar.zst", "--hash-from", "{f}"],
        ["key", "img/build.tar.zst", "--hash-from={f}", "--hash-length=8", "--arch-suffix"],
        ["key", "--json", "x-{os}-{arch}"],
    ],
)
def test_fast_path_prints_what_the_full_parser_prints(args: list[str], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`cacher key` skips building the app for plain arguments; the answer must not change."""
    from cacher.cli.app import build_app
    from cacher.cli.keyrun import fast_key
    from cacher.registry import Registry

    f = tmp_path / "lock"
    f.write_text("lock")
    argv = [a.replace("{f}", str(f)) for a in args]
    assert fast_key(argv) == 0
    fast = capsys.readouterr().out
    build_app(Registry.from_entry_points())(argv, exit_on_error=False, result_action="return_value")
    assert capsys.readouterr().out == fast != ""


@pytest.mark.parametrize("args", [["key"], ["key", "--help"], ["key", "x", "--nope"], ["key", "x", "y"],
                                  ["key", "x", "--hash-length", "abc"], ["key", "x", "--hash-from"]])
def test_fast_path_hands_anything_unusual_to_the_full_parser(args: list[str]) -> None:
    from cacher.cli.keyrun import fast_key

    assert fast_key(args) is None


def test_env_value_with_braces_is_not_a_template_error(cacher) -> None:
    run = cacher("key", "k-{env:ODD}", extra_env={"ODD": "a{b}"})
    assert (run.code, run.out) == (0, "k-a{b}\n")


class TestHashKey(KeyFunctionContract):
    good_args = (None, "8", "64")
    bad_args = ("0", "65", "x")

    @pytest.fixture
    def key_function(self) -> HashKey:
        return HashKey()

    @pytest.fixture
    def key_context(self, tmp_path: Path) -> KeyContext:
        (tmp_path / "go.sum").write_text("module x\n")
        return KeyContext(hash_from=(tmp_path / "go.sum",))


class TestOsKey(KeyFunctionContract):
    @pytest.fixture
    def key_function(self) -> OsKey:
        return OsKey()


class TestArchKey(KeyFunctionContract):
    @pytest.fixture
    def key_function(self) -> ArchKey:
        return ArchKey()


class TestEnvKey(KeyFunctionContract):
    good_args = ("RUNNER_OS",)
    bad_args = (None, "", "UNSET_VARIABLE")

    @pytest.fixture
    def key_function(self) -> EnvKey:
        return EnvKey()

    @pytest.fixture
    def key_context(self) -> KeyContext:
        return KeyContext(environ={"RUNNER_OS": "Linux"})


@pytest.mark.parametrize(
    "key",
    ["k\u009b2J", "safe\u202etxt.exe", "zero\u200bwidth", "k\udcff"],
    ids=["c1-csi", "bidi-override", "zero-width", "not-utf8"],
)
def test_invisible_characters_are_refused_before_any_io(cacher, tmp_path: Path, key: str) -> None:
    """Red-team pass of issue 25: C1 controls and bidi overrides reached logs and listings raw;
    bytes that are not UTF-8 were an internal error on S3."""
    f = tmp_path / "f"
    f.write_text("x")
    run = cacher("upload", key, str(f))
    assert run.code == 2, run
    assert run.err.count("\n") == 1 and "control characters, format characters" in run.err, run
    assert cacher("list").out == ""


@pytest.mark.parametrize("prefix", ["proj/_scopes/main", "_paths/abc", "proj/_Scopes", "_PATHS"])
def test_a_prefix_may_not_name_a_reserved_namespace(cacher, tmp_path: Path, prefix: str) -> None:
    """Red-team pass of issue 25: CACHER_PREFIX=proj/_scopes/main wrote into main's scope."""
    f = tmp_path / "f"
    f.write_text("evil")
    run = cacher("upload", "tool", str(f), extra_env={"CACHER_PREFIX": prefix})
    assert run.code == 2 and "is reserved" in run.err and run.err.count("\n") == 1, run
    assert cacher("list").out == ""
