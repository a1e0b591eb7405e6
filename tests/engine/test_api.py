"""The Python API (`cacher.api`): outcomes, errors, settings, and the same objects as the CLI.

Every test runs the API in-process against a real store (the default local file store, or
SeaweedFS) in an isolated environment, and drives the installed ``cacher`` beside it: an object
the API stores is restored by the command line and the other way round, and the API's result
documents are the command line's ``--json`` documents.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cacher import api
from cacher.errors import CacherError, ConfigError, StorageError, UsageError
from tests.conftest import Run, s3_store_env, tree_files

Cli = Callable[..., Run]


@pytest.fixture
def isolated(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process's environment as the CLI's (no CACHER_*, AWS_* or XDG_* of the caller; HOME
    in tmp), in tmp_path; returns tmp_path."""
    for name in list(os.environ):
        if name.startswith(("CACHER_", "AWS_", "XDG_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The file store, then SeaweedFS, for the API (this process) and the CLI (``extra_env``)."""
    variables: dict[str, str] = {}
    if request.param == "s3":
        variables = s3_store_env(request.getfixturevalue("seaweed_s3"), request.getfixturevalue("s3_bucket"))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


def make_tree(root: Path, text: str = "one") -> Path:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "a.txt").write_text(f"{text}\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 8)
    return root


def cli_json(run: Run) -> dict[str, Any]:
    document = json.loads(run.out)
    assert document.pop("schema") == 1
    return without_seconds(document)


def without_seconds(document: dict[str, Any]) -> dict[str, Any]:
    """A document with its timings removed (the one field two runs never share)."""
    out = {k: v for k, v in document.items() if k != "seconds"}
    for nested in ("restore", "upload"):
        if isinstance(out.get(nested), dict):
            out[nested] = without_seconds(out[nested])
    return out


# --- the same objects as the CLI -------------------------------------------------------------


def test_the_api_stores_what_the_cli_restores_and_back(store: dict[str, str], cacher: Cli) -> None:
    tree = make_tree(Path("tree"))
    up = api.upload("api/deps.tar.zst", tree)
    assert (up.outcome, up.match, up.codec) == ("uploaded", None, "zstd")
    run = cacher("dir", "download", "api/deps.tar.zst", "from-cli", extra_env=store)
    assert run.code == 0, run
    assert tree_files(Path("from-cli")) == tree_files(tree)

    run = cacher("dir", "upload", "cli/deps.tar.zst", "tree", extra_env=store)
    assert run.code == 0, run
    down = api.download("cli/deps.tar.zst", "from-api")
    assert (down.outcome, down.match, down.hit, down.matched_key) == ("hit", "exact", True, "cli/deps.tar.zst")
    assert tree_files(Path("from-api")) == tree_files(tree)
    assert down.verified and down.raw_bytes > 0


def test_a_file_and_exists_agree_with_the_cli(store: dict[str, str], cacher: Cli) -> None:
    Path("tool").write_bytes(b"#!/bin/sh\necho hi\n")
    assert api.upload("bin/tool", "tool", kind="file").outcome == "uploaded"
    assert cacher("exists", "bin/tool", extra_env=store).code == 0
    assert cacher("download", "bin/tool", "tool-cli", extra_env=store).code == 0
    assert Path("tool-cli").read_bytes() == Path("tool").read_bytes()
    found, missing = api.exists("bin/tool"), api.exists("bin/none")
    assert (bool(found), found.key, bool(missing)) == (True, "bin/tool", False)
    assert cacher("exists", "bin/none", extra_env=store).code == 1


def test_several_paths_under_one_key_as_the_cli_has_them(isolated: Path, cacher: Cli) -> None:
    make_tree(Path("one"))
    make_tree(Path("two"), "two")
    expected = {name: tree_files(Path(name)) for name in ("one", "two")}
    assert api.upload("pp.tar.zst", ["one", Path("two")], kind="paths").outcome == "uploaded"
    for name in ("one", "two"):
        for path in sorted(Path(name).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    run = cacher("paths", "download", "pp.tar.zst", "one", "two")
    assert run.code == 0, run
    assert {name: tree_files(Path(name)) for name in ("one", "two")} == expected
    assert api.download("pp.tar.zst", ["one"], kind="paths").outcome == "miss"  # the path list is in the key


def test_documents_are_the_cli_json_documents(isolated: Path, cacher: Cli) -> None:
    """Each API result's document() equals the CLI's --json document for the same step (the
    upload's key apart: the CLI's would be skipped under the same key)."""
    make_tree(Path("tree"))
    steps: list[tuple[Callable[[], Any], list[str], int]] = [
        (lambda: api.download("d/k.tar.zst", "out"), ["dir", "download", "d/k.tar.zst", "out2"], 3),
        (lambda: api.upload("d/k.tar.zst", "tree"), ["dir", "upload", "d/cli.tar.zst", "tree"], 0),
        (lambda: api.upload("d/k.tar.zst", "tree"), ["dir", "upload", "d/cli.tar.zst", "tree"], 0),
        (lambda: api.download("d/k.tar.zst", "out"), ["dir", "download", "d/k.tar.zst", "out2"], 0),
        (lambda: api.exists("d/k.tar.zst"), ["exists", "d/k.tar.zst"], 0),
        (lambda: api.exists("d/none"), ["exists", "d/none"], 1),
    ]
    for call, argv, code in steps:
        mine = without_seconds(call().document())
        run = cacher(*argv, "--json")
        assert run.code == code, run
        assert {**cli_json(run), "key": mine["key"]} == mine, argv


def test_restore_keys_partial_and_miss_outcomes(isolated: Path, cacher: Cli) -> None:
    make_tree(Path("tree"))
    api.upload("deps/old.tar.zst", "tree")
    target = make_tree(Path("target"), "mine")
    before = tree_files(target)
    missed = api.download("deps/new.tar.zst", target, restore_keys=["nothing/"])
    assert (missed.outcome, missed.match, missed.looked_up, missed.restore_keys) == (
        "miss", "miss", True, ("nothing/",)
    )
    assert tree_files(target) == before  # a miss leaves the target as it was
    partial = api.download("deps/new.tar.zst", target, restore_keys=["deps/"])
    assert (partial.outcome, partial.match, partial.matched_key, partial.hit) == (
        "partial", "partial", "deps/old.tar.zst", False
    )
    assert tree_files(target) == tree_files(Path("tree"))
    run = cacher("dir", "download", "deps/new.tar.zst", "cli", "--restore-key", "deps/", "--json")
    assert run.code == 0 and cli_json(run) == without_seconds(partial.document()), run


def test_scopes_as_the_cli_has_them(store: dict[str, str], cacher: Cli) -> None:
    make_tree(Path("tree"))
    assert api.upload("s/deps.tar.zst", "tree", scope="main").outcome == "uploaded"
    assert cacher("dir", "download", "s/deps.tar.zst", "x", extra_env=store).code == 3
    assert cacher("dir", "download", "s/deps.tar.zst", "y", "--scope", "main", extra_env=store).code == 0
    down = api.download("s/deps.tar.zst", "z", scope="feature/x", fallback_scopes="main")
    assert (down.outcome, down.scope) == ("partial", "main")


# --- settings ----------------------------------------------------------------------------------


def test_keywords_over_env_over_config_file(isolated: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(Path("tree"))
    conf = home / ".config" / "cacher" / "config.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text('prefix = "from-file"\n')
    root = home / ".cache" / "cacher"
    api.upload("k.tar.zst", "tree")
    assert (root / "from-file" / "k.tar.zst").is_file()
    monkeypatch.setenv("CACHER_PREFIX", "from-env")
    api.upload("k.tar.zst", "tree")
    assert (root / "from-env" / "k.tar.zst").is_file()
    api.upload("k.tar.zst", "tree", prefix="from-keyword")
    assert (root / "from-keyword" / "k.tar.zst").is_file()
    other = isolated / "other.toml"
    other.write_text('prefix = "named"\n')
    monkeypatch.delenv("CACHER_PREFIX")
    assert api.upload("k.tar.zst", "tree", config=other).outcome == "uploaded"
    assert (root / "named" / "k.tar.zst").is_file()


@pytest.mark.parametrize(
    ("settings", "needle"),
    [({"colour": "blue"}, "unknown setting 'colour'"), ({"prefix": 3}, "prefix must be str"),
     ({"max_attempts": "3"}, "max_attempts must be int"), ({"soft_fail": 1}, "soft_fail must be bool"),
     ({"read_timeout": -1.0}, "read_timeout")],
)
def test_bad_settings_raise_before_any_io(isolated: Path, home: Path, settings: dict[str, Any], needle: str) -> None:
    make_tree(Path("tree"))
    with pytest.raises(UsageError) as raised:
        api.upload("k.tar.zst", "tree", **settings)
    assert needle in raised.value.message
    assert not (home / ".cache" / "cacher").exists() or not any((home / ".cache" / "cacher").rglob("k.tar.zst"))


def test_read_only_is_honoured(isolated: Path, home: Path, cacher: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(Path("tree"))
    assert api.upload("ro.tar.zst", "tree", read_only=True).outcome == "read-only"
    monkeypatch.setenv("CACHER_READ_ONLY", "1")
    assert api.upload("ro.tar.zst", "tree").outcome == "read-only"
    built = api.ensure("ro.tar.zst", "made", lambda: make_tree(Path("made")))
    assert (built.outcome, built.build_status, built.upload and built.upload.outcome) == ("read-only", 0, "read-only")
    assert cacher("exists", "ro.tar.zst").code == 1  # nothing was written
    assert not any((home / ".cache" / "cacher").rglob("ro.tar.zst"))


# --- errors ------------------------------------------------------------------------------------


def test_errors_raise_and_nothing_is_printed(
    isolated: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    target = make_tree(Path("target"))
    before = tree_files(target)
    with pytest.raises(UsageError, match=r"'\.\.' path segment"):
        api.download("../k.tar.zst", target)
    with pytest.raises(UsageError, match="no such directory"):
        api.upload("k.tar.zst", "absent")
    with pytest.raises(UsageError, match="takes no option 'url'"):
        api.upload("k.tar.zst", "target", options={"url": "http://example.invalid/"})
    with pytest.raises(ConfigError):
        api.exists("k", backend="s3", endpoint="http://127.0.0.1:9", bucket="b")  # no credentials
    assert tree_files(target) == before
    assert api.download("k.tar.zst", target).outcome == "miss"
    assert capfd.readouterr() == ("", "")


@pytest.mark.s3
def test_a_missing_bucket_is_a_storage_error_unless_soft(seaweed_s3: Any, isolated: Path) -> None:
    s3 = {"endpoint": seaweed_s3.endpoint, "bucket": "no-such-bucket-api"}
    os.environ.update(CACHER_S3_KEY_ID=seaweed_s3.key_id, CACHER_S3_SECRET=seaweed_s3.secret)
    with pytest.raises(StorageError):
        api.exists("k", **s3)
    soft = api.exists("k", soft_fail=True, **s3)
    assert not soft and soft.failure
    down = api.download("k.tar.zst", "out", soft_fail=True, **s3)
    assert down.outcome == "miss" and down.notes and not Path("out").exists()


def test_soft_failure_without_credentials(isolated: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_tree(Path("tree"))
    s3: dict[str, Any] = {"backend": "s3", "endpoint": "http://127.0.0.1:9", "bucket": "b", "soft_fail": True}
    up = api.upload("k.tar.zst", "tree", **s3)
    assert up.outcome == "failed" and "no S3 credentials" in up.notes[0]
    assert up.document() == {"command": "upload", "key": "k.tar.zst", "kind": "dir", "outcome": "failed", "notes": list(up.notes)}
    with caplog.at_level(logging.WARNING, logger="cacher"):
        assert not api.exists("k.tar.zst", **s3)
    assert any("soft failure" in r.getMessage() for r in caplog.records)


def test_warnings_go_to_the_logger(isolated: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    secret = isolated / "secret"
    secret.write_text("s3cr3t\n")
    secret.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    key_id = isolated / "key-id"
    key_id.write_text("id\n")
    s3 = {"endpoint": "http://127.0.0.1:9", "bucket": "b", "key_file": key_id, "secret_file": secret,
          "soft_fail": True, "connect_timeout": 0.2, "max_attempts": 1}
    with caplog.at_level(logging.WARNING, logger="cacher"):
        api.exists("k", **s3)
    assert any("secret" in r.getMessage() for r in caplog.records), caplog.records
    assert capfd.readouterr() == ("", "")


# --- ensure ------------------------------------------------------------------------------------


def test_ensure_builds_once_then_hits(isolated: Path, cacher: Cli) -> None:
    calls: list[int] = []

    def build() -> None:
        calls.append(1)
        make_tree(Path("gen"))

    made = api.ensure("gen.tar.zst", "gen", build)
    assert (made.outcome, made.failed, made.build_status, made.match) == ("built", None, 0, "miss")
    assert made.upload is not None and made.upload.outcome == "uploaded"
    kept = api.ensure("gen.tar.zst", "gen", build)
    assert (kept.outcome, kept.build_status, kept.upload, calls) == ("hit", None, None, [1])
    run = cacher("dir", "ensure", "gen.tar.zst", "gen-cli", "--json", "--", "false")
    assert run.code == 0, run
    assert cli_json(run) == {**without_seconds(kept.document()), "restore": cli_json(run)["restore"]}


def test_ensure_failed_builds(isolated: Path, cacher: Cli) -> None:
    failed = api.ensure("b.tar.zst", "out", ["sh", "-c", "exit 5"])
    assert (failed.outcome, failed.failed, failed.build_status, failed.upload) == ("build-failed", "build", 5, None)
    run = cacher("dir", "ensure", "b.tar.zst", "out", "--json", "--", "sh", "-c", "exit 5")
    assert run.code == 5 and cli_json(run) == without_seconds(failed.document()), run
    assert api.ensure("b.tar.zst", "out", ["no-such-command-xyz"]).build_status == 127
    assert api.ensure("b.tar.zst", "out", ["sh", "-c", "kill -TERM $$"]).build_status == 143
    with pytest.raises(UsageError, match="list of words"):
        api.ensure("b.tar.zst", "out", "make deps")  # a str is a Sequence[str]: refused
    assert not Path("out").exists()

    def broken() -> None:
        make_tree(Path("out"))
        raise RuntimeError("the build broke")

    with pytest.raises(RuntimeError, match="the build broke"):
        api.ensure("b.tar.zst", "out", broken)
    assert not api.exists("b.tar.zst")  # nothing stored
    assert cacher("exists", "b.tar.zst").code == 1


def test_key_is_the_cli_key(isolated: Path, cacher: Cli) -> None:
    Path("go.sum").write_text("example.com/m v1.0.0 h1:abc=\n")
    for template, extra in (("go-mod/{hash}.tar.zst", []), ("go-mod.tar.zst", ["--hash-length", "8"])):
        length = 8 if extra else 16
        run = cacher("key", template, "--hash-from", "go.sum", *extra)
        assert run.code == 0, run
        assert api.key(template, hash_from="go.sum", hash_length=length) == run.out.strip()
    with pytest.raises(UsageError, match="empty path"):
        api.key("k-{hash}", hash_from=[""])
    with pytest.raises(CacherError):
        api.key("../{hash}", hash_from="go.sum")
