"""The fast path (`cacher.cli.fastpath`): the lines it takes behave exactly as through the full
command line, the lines it does not take go there, and it never imports cyclopts, stevedore or
s3fs for a plain ``exists``/``download``/``list``/``stats``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cacher.cli.fastpath import fast_transfer
from cacher.errors import CacherError
from cacher.registry import Registry
from cacher.testing.cli import CliRun, clean_env
from tests.conftest import s3_store_env
from tests.trees import file_contents


@pytest.fixture
def registry() -> Registry:
    return Registry.from_entry_points()


@pytest.fixture
def inprocess(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """This process's environment as the CLI tests give the installed cacher (file store under home)."""
    for name in list(os.environ):
        if name.startswith(("CACHER_", "AWS_", "XDG_")):
            monkeypatch.delenv(name)
    for name, value in clean_env(home).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    # A temp dir of its own: stats counts the scratch of killed restores in $TMPDIR, and other
    # processes on this machine may leave or clear some between the two runs of a line.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    yield tmp_path


def _full(args: list[str], registry: Registry) -> int:
    from cacher.cli.app import build_app

    app = build_app(registry, args[0])
    result = app(args, exit_on_error=False, print_error=False, result_action="return_value")
    return int(result) if isinstance(result, int) else 0


def _outcome(run: Callable[[], int | None], capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    try:
        code: Any = run()
    except CacherError as exc:
        code = (type(exc).__name__, exc.message)
    out, err = capsys.readouterr()
    # Durations and rates differ from run to run; the words around them must not.
    return code, _steady(out), _steady(err)


def _steady(text: str) -> str:
    import re

    text = re.sub(r'"(seconds|elapsed|duration_s|rate_bps|mib_per_s)": [0-9.e+-]+', r'"\1": 0', text)
    text = re.sub(r"Z +[0-9]+[smhd]  ", "Z AGE  ", text)  # list --long: an age, counted at each run
    return re.sub(r"in [0-9.]+ s, [0-9.]+ [KMG]?i?B/s", "in S", text)


def test_accepted_lines_behave_as_through_the_full_parser(
    inprocess: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    work = inprocess
    (work / "f.bin").write_bytes(b"payload " * 1000)
    tree = work / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("a")
    (tree / "b.txt").write_text("b")
    digest = hashlib.sha256((work / "f.bin").read_bytes()).hexdigest()
    lines = [
        ["exists", "k/{side}"],  # a miss
        ["upload", "k/{side}", "f.bin"],
        ["upload", "k/{side}", "f.bin", "-q"],  # skipped: exists
        ["upload", "k/{side}", "f.bin", "--force", "--json"],
        ["exists", "k/{side}", "--json"],
        ["download", "k/{side}", "out-{side}.bin", "--sha256", digest],
        ["download", "none/{side}", "miss-{side}.bin", "--restore-key", "k/{side}", "--restore-key=x/"],
        ["download", "gone/{side}", "gone-{side}.bin"],  # a miss: 3
        ["dir", "upload", "d/{side}.tar.zst", "tree", "--exclude", "b.txt"],
        ["dir", "download", "d/{side}.tar.zst", "back-{side}", "--json"],
        ["dir", "exists", "d/{side}.tar.zst"],
        ["exists", "Bad Key//{side}"],  # a usage error, the same either way
        ["download", "k/{side}", "bad-{side}.bin", "--sha256", "00"],
        ["upload", "r/{side}", "f.bin", "--read-only"],
        # every boolean setting is a switch here, read from the one declaration
        ["exists", "k/{side}", "--arch-suffix", "--soft-fail"],
        ["exists", "k/{side}", "--offline"],  # no local tier: the same config error either way
        ["list", "k/{side}"],
        ["list", "-q", "k/{side}", "--long"],
        ["list", "d/{side}", "--json"],
        ["list", "nothing/{side}", "--json"],  # an empty listing
        ["list", "nothing/{side}", "--read-only"],
        ["stats", "k/{side}"],
        ["stats", "d/{side}", "--json"],
        ["stats", "nothing/{side}", "-q"],
    ]
    for template in lines:
        results = {}
        for side, run in (("fast", fast_transfer), ("full", _full)):
            args = [a.replace("{side}", side) for a in template]
            code, out, err = _outcome(lambda args=args, run=run: run(args, registry), capsys)
            results[side] = (
                json.dumps(code).replace(side, "SIDE"),
                out.replace(side, "SIDE"),
                err.replace(side, "SIDE"),
            )
        assert results["fast"][0] != "null", f"the fast path did not take {template}"
        assert results["fast"] == results["full"], template
    assert (
        (work / "out-fast.bin").read_bytes()
        == (work / "out-full.bin").read_bytes()
        == (work / "f.bin").read_bytes()
    )
    assert file_contents(work / "back-fast") == file_contents(work / "back-full") == {"sub/a.txt": b"a"}
    assert not (work / "gone-fast.bin").exists() and not (work / "bad-fast.bin").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["exists", "k", "--help"],
        ["exists"],
        ["exists", "k", "extra"],
        ["exists", ""],
        ["download", "k"],
        ["download", "k", "dest", "--bucket", "b"],
        ["download", "k", "dest", "--url"],
        ["download", "k", "dest", "--url="],
        ["download", "k", "dest", "--sha256", "--json"],
        ["upload", "k", "f", "--force", "--force"],
        ["exists", "k", "-q", "--quiet"],
        ["exists", "k", "--json", "--json"],
        ["upload", "k", "f", "--restore-key", "x"],
        ["upload", "k", ""],
        ["exists", "k", "--force"],
        ["download", "k", "d", "--no-soft-fail"],
        ["exists", "k", "--part-size-mb", "16"],  # a store flag with a value
        ["ensure", "k", "d", "--", "true"],
        ["dir", "ensure", "k", "d", "--", "true"],
        ["list", "a", "b"],
        ["list", ""],
        ["list", "k", "--long", "--long"],
        ["list", "k", "--local"],  # stats and prune have it, list has not: the full parser says so
        ["list", "k", "--config", "c.toml"],
        ["list", "--help"],
        ["stats", "k", "--local"],  # the runner's tier: the full parser takes it
        ["stats", "k", "--long"],  # list's flag, not stats': the full parser says so
        ["stats", "a", "b"],
        ["prune", "k", "--older-than", "1d", "--dry-run"],
        ["nosuchkind", "exists", "k"],
        ["docker", "download", "k", "img", "--no-pull"],
        ["download", "k", "-"],
    ],
)
def test_other_lines_go_to_the_full_parser(inprocess: Path, registry: Registry, args: list[str]) -> None:
    assert fast_transfer(args, registry) is None


def _imports_after(env: dict[str, str], args: list[str], cwd: Path) -> tuple[int, set[str]]:
    code = (
        "import sys\n"
        "from cacher.cli import main\n"
        f"status = main({args!r})\n"
        "sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n')\n"
        "raise SystemExit(status)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    modules = run.stderr.rsplit("MODULES ", 1)[-1].split()
    return run.returncode, set(modules)


def test_exists_download_list_and_stats_import_neither_the_parser_nor_the_upload_stack(
    seaweed_s3: Any, s3_bucket: str, env: dict[str, str], cacher: Callable[..., CliRun], tmp_path: Path
) -> None:
    store = s3_store_env(seaweed_s3, s3_bucket)
    (tmp_path / "f.bin").write_bytes(b"x" * 4096)
    up = cacher("upload", "k", str(tmp_path / "f.bin"), extra_env=store)
    assert up.code == 0, up
    full_env = {**env, **store}
    # The first run fills the entry-point index of this interpreter and sys.path.
    assert _imports_after(full_env, ["exists", "k"], tmp_path)[0] == 0
    heavy = {"cyclopts", "stevedore", "importlib.metadata", "s3fs", "fsspec", "asyncio", "botocore"}
    code, modules = _imports_after(full_env, ["exists", "k"], tmp_path)
    assert code == 0
    assert not heavy & modules, heavy & modules
    # One HEAD, on a socket of its own (stores/s3/head.py), over http: none of these (issue 29).
    head_only = {"http.client", "email", "email.parser", "ssl", "logging", "concurrent.futures"}
    assert not head_only & modules, head_only & modules
    code, modules = _imports_after(full_env, ["download", "k", str(tmp_path / "back.bin")], tmp_path)
    assert code == 0
    assert (tmp_path / "back.bin").read_bytes() == b"x" * 4096
    assert not heavy & modules, heavy & modules
    for listing in (["list", "k"], ["stats", "k"]):
        code, modules = _imports_after(full_env, listing, tmp_path)
        assert code == 0, listing
        assert not heavy & modules, (listing, heavy & modules)
    # The long way still works and does import the parser.
    code, modules = _imports_after(full_env, ["exists", "k", "--no-read-only"], tmp_path)
    assert code == 0 and "cyclopts" in modules
