"""Restore keys, ensure, prune and stats, soft failure, JSON, GitHub output, progress, completion.

Each runs through the real `cacher` on the local file store and on SeaweedFS.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CACHER, assert_one_error_line
from tests.trees import snapshot


def make_dir(root: Path, content: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "f").write_text(content)
    return root


def doc(run: Any) -> dict[str, Any]:
    lines = run.out.strip().splitlines()
    assert len(lines) == 1, run
    data: dict[str, Any] = json.loads(lines[0])
    assert data["schema"] == 1
    return data


def test_restore_keys_pick_the_newest_under_each_prefix(cacher, store_env, tmp_path: Path) -> None:
    for name in ("deps-main-1", "deps-main-2", "deps-feature-1"):
        run = cacher("dir", "upload", f"{name}.tar.zst", str(make_dir(tmp_path / name, name)), extra_env=store_env)
        assert run.code == 0, run
        time.sleep(1.1)  # object times have a resolution of one second on S3
    dest = tmp_path / "dest"
    run = cacher("dir", "download", "deps-feature-9.tar.zst", str(dest), "--restore-key", "deps-nope-",
                 "--restore-key", "deps-main-", "--json", extra_env=store_env)
    assert run.code == 0, run
    d = doc(run)
    assert (d["match"], d["matched_key"], d["outcome"]) == ("partial", "deps-main-2.tar.zst", "partial")
    assert (dest / "f").read_text() == "deps-main-2"
    assert "partial hit, restored deps-main-2.tar.zst" in run.err
    run = cacher("dir", "download", "deps-main-1.tar.zst", str(dest), "--restore-key", "deps-", "--json",
                 extra_env=store_env)
    assert run.code == 0 and doc(run)["match"] == "exact"
    assert (dest / "f").read_text() == "deps-main-1"
    run = cacher("dir", "download", "other.tar.zst", str(dest), "--restore-key", "nothing-", "--json", extra_env=store_env)
    assert run.code == 3, run
    assert doc(run)["match"] == "miss"
    assert (dest / "f").read_text() == "deps-main-1"


def test_ensure_restores_or_builds(cacher, store_env, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build = ["sh", "-c", f"mkdir -p {out} && echo built >> {out}/f"]
    run = cacher("dir", "ensure", "e.tar.zst", str(out), "--json", "--", *build, extra_env=store_env)
    assert run.code == 0, run
    d = doc(run)
    assert (d["match"], d["build_status"], d["upload"]["outcome"]) == ("miss", 0, "uploaded")
    assert (out / "f").read_text() == "built\n"
    run = cacher("dir", "ensure", "e.tar.zst", str(out), "--json", "--", "false", extra_env=store_env)
    assert run.code == 0, run
    assert (doc(run)["match"], doc(run)["build_status"]) == ("exact", None)
    assert (out / "f").read_text() == "built\n"


def test_ensure_failing_build_uploads_nothing_and_passes_its_status(cacher, store_env, tmp_path: Path) -> None:
    run = cacher("dir", "ensure", "fail.tar.zst", str(tmp_path / "o"), "--", "sh", "-c", "exit 7", extra_env=store_env)
    assert run.code == 7, run
    assert cacher("dir", "exists", "fail.tar.zst", extra_env=store_env).code == 1


def test_ensure_after_partial_hit_builds_on_the_restored_tree(cacher, store_env, tmp_path: Path) -> None:
    assert cacher("dir", "upload", "p-1.tar.zst", str(make_dir(tmp_path / "v1", "v1\n")), extra_env=store_env).code == 0
    out = tmp_path / "out"
    run = cacher("dir", "ensure", "p-2.tar.zst", str(out), "--restore-key", "p-", "--",
                 "sh", "-c", f"echo v2 >> {out}/f", extra_env=store_env)
    assert run.code == 0, run
    assert (out / "f").read_text() == "v1\nv2\n"
    check = tmp_path / "check"
    assert cacher("dir", "download", "p-2.tar.zst", str(check), extra_env=store_env).code == 0
    assert snapshot(check) == snapshot(out)


def test_ensure_needs_a_command(cacher, tmp_path: Path) -> None:
    run = cacher("dir", "ensure", "k.tar.zst", str(tmp_path / "o"))
    assert run.code == 2
    assert_one_error_line(run, "build command")


def test_stats_list_long_and_prune(cacher, store_env, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 1000)
    for key in ("go/a", "go/b", "node/c"):
        assert cacher("upload", key, str(f), extra_env=store_env).code == 0
        time.sleep(1.1)
    run = cacher("stats", "--json", extra_env=store_env)
    assert run.code == 0, run
    d = doc(run)
    assert (d["objects"], d["bytes"]) == (3, 3000)
    assert d["by_segment"] == {"go": {"objects": 2, "bytes": 2000}, "node": {"objects": 1, "bytes": 1000}}
    assert d["oldest"] < d["newest"]
    run = cacher("list", "--long", extra_env=store_env)
    assert run.code == 0 and "1000" in run.out and "go/a" in run.out
    run = cacher("prune", "go/", "--older-than", "1s", "--keep-last", "1", "--dry-run", "--json", extra_env=store_env)
    assert run.code == 0, run
    assert [o["key"] for o in doc(run)["deleted"]] == ["go/a"]
    assert cacher("list", extra_env=store_env).out.split() == ["go/a", "go/b", "node/c"]
    run = cacher("prune", "--older-than", "1s", extra_env=store_env)  # no prefix at all: refused
    assert run.code == 2, run
    assert_one_error_line(run, "--all-projects")
    assert cacher("list", extra_env=store_env).out.split() == ["go/a", "go/b", "node/c"]
    run = cacher("prune", "--older-than", "1s", "--all-projects", extra_env=store_env)
    assert run.code == 0, run
    assert cacher("list", extra_env=store_env).out.split() == []
    run = cacher("prune", "--older-than", "soon", extra_env=store_env)
    assert run.code == 2
    assert_one_error_line(run, "invalid duration")


def test_json_for_key_exists_upload_download(cacher, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    assert doc(cacher("key", "k/{hash}", "--hash-from", str(f), "--json"))["key"].startswith("k/")
    d = doc(cacher("upload", "k", str(f), "--json"))
    assert (d["command"], d["outcome"], d["raw_bytes"]) == ("upload", "uploaded", 4)
    run = cacher("exists", "k", "--json")
    assert (run.code, doc(run)["exists"]) == (0, True)
    run = cacher("exists", "nope", "--json")
    assert (run.code, doc(run)["exists"]) == (1, False)
    d = doc(cacher("download", "k", str(tmp_path / "d"), "--json"))
    assert (d["outcome"], d["match"]) == ("hit", "exact")


def test_github_output(cacher, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    out = tmp_path / "gh-output"
    env = {"GITHUB_OUTPUT": str(out)}
    assert cacher("upload", "k", str(f)).code == 0
    assert cacher("download", "k", str(tmp_path / "d"), extra_env=env).code == 0
    assert cacher("download", "nope", str(tmp_path / "d2"), extra_env=env).code == 3
    assert out.read_text() == "cache-hit=true\nmatched-key=k\ncache-hit=false\nmatched-key=\n"


def test_soft_fail_turns_storage_errors_into_misses(cacher, tmp_path: Path, http) -> None:
    from tests.realparts.ports import free_port

    dead = {"CACHER_ENDPOINT": f"http://127.0.0.1:{free_port()}", "CACHER_BUCKET": "b",
            "CACHER_S3_KEY_ID": "id", "CACHER_S3_SECRET": "secret", "CACHER_CONNECT_TIMEOUT": "1",
            "CACHER_MAX_ATTEMPTS": "1"}
    f = tmp_path / "f"
    f.write_text("data")
    strict = cacher("upload", "k", str(f), extra_env=dead)
    assert strict.code == 2
    soft = {**dead, "CACHER_SOFT_FAIL": "1"}
    run = cacher("upload", "k", str(f), extra_env=soft)
    assert run.code == 0, run
    assert "warning: soft failure" in run.err and "Traceback" not in run.err
    run = cacher("download", "k", str(tmp_path / "d"), extra_env=soft)
    assert run.code == 3, run
    assert not (tmp_path / "d").exists()
    # Nothing was looked up: the miss line says so, and never "does not exist".
    lines = run.err.splitlines()
    assert lines[0].startswith("cacher: warning: soft failure, treated as a miss: "), run
    assert lines[1] == "cacher: file miss, k not looked up: the store s3://b failed (soft failure)", run
    assert len(lines) == 2 and "does not exist" not in run.err and "error" not in run.err, run
    assert cacher("exists", "k", "--soft-fail", extra_env=dead).code == 1
    url = http.put("tool", b"tool bytes")
    run = cacher("download", "k", str(tmp_path / "tool"), "--url", url, "--soft-fail", "--json", extra_env=dead)
    assert run.code == 0, run
    assert (tmp_path / "tool").read_bytes() == b"tool bytes"
    # Honest: fetched, not stored, with the bytes that were fetched (not "stored k: 0 B").
    document = json.loads(run.out)
    assert (document["outcome"], document["raw_bytes"], document["stored_bytes"]) == ("fetched-not-stored", 10, 0)
    assert "made but not stored k: 10 B raw" in run.err, run
    bad_input = cacher("download", "/abs", str(tmp_path / "x"), extra_env=soft)
    assert bad_input.code == 2


def test_quiet_prints_nothing_but_errors(cacher, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    run = cacher("upload", "k", str(f), "--quiet")
    assert (run.code, run.out, run.err) == (0, "", "")
    run = cacher("download", "nope", str(tmp_path / "d"), "-q")
    assert (run.code, run.out, run.err) == (3, "", "")  # a miss is a result: -q silences it
    run = cacher("download", "/abs", str(tmp_path / "d"), "-q")
    assert_one_error_line(run, "invalid key '/abs'")  # -q never silences an error


def test_a_miss_is_a_result_line_saying_what_was_looked_up(cacher, tmp_path: Path, home: Path) -> None:
    run = cacher("dir", "download", "deps-v2.tar.zst", str(tmp_path / "d"), "--restore-key", "deps-",
                 "--restore-key", "dev-")
    assert run.code == 3, run
    assert run.err.splitlines()[-1] == (
        f"cacher: dir miss, nothing under deps-v2.tar.zst in file://{home}/.cache/cacher; "
        "restore keys searched: deps-, dev-"
    ), run
    assert "error" not in run.err and run.out == "", run
    assert not (tmp_path / "d").exists()


def test_progress_in_logs_is_rate_limited_and_summary_always_printed(env: dict[str, str], tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom(64 << 20))
    proc = subprocess.run([CACHER, "upload", "big", str(big)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0
    lines = [line for line in proc.stderr.splitlines() if "uploading big" in line]
    assert len(lines) <= 3  # one line every few seconds at most, without a terminal
    assert "file uploaded big: 64.0 MiB raw" in proc.stderr


def _run_on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with a real pseudo-terminal as stdin, stdout and stderr."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(argv[0], argv, env)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


@pytest.mark.s3
def test_progress_on_a_terminal(env: dict[str, str], tmp_path: Path, seaweed_s3: Any, s3_bucket: str) -> None:
    """A real pseudo-terminal: the live line is drawn with carriage returns, then cleared.

    Time is controlled, not raced: the restore reads through a proxy that trickles every
    response body at 512 KiB/s, so a 2 MiB object takes about 4 s on any machine, however fast.
    """
    from tests.fault_proxy import FaultProxy, s3_env

    data = os.urandom(2 << 20)
    (tmp_path / "big").write_bytes(data)
    stored = subprocess.run(
        [CACHER, "upload", "big", str(tmp_path / "big")],
        env={**env, **s3_env(seaweed_s3, s3_bucket)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stored.returncode == 0, stored.stderr
    dest = tmp_path / "restored"
    with FaultProxy(seaweed_s3.endpoint) as proxy:
        proxy.set_extra("trickle", rate=512 << 10)
        run_env = {**env, **s3_env(seaweed_s3, s3_bucket, proxy.endpoint, CACHER_READ_TIMEOUT="30")}
        started = time.monotonic()
        code, text = _run_on_a_terminal([CACHER, "download", "big", str(dest)], run_env)
        took = time.monotonic() - started
    assert code == 0, text
    assert took > 2.0, f"the proxy did not slow the restore ({took:.2f} s): nothing was tested\n{text}"
    assert dest.read_bytes() == data
    assert "\r\x1b[2Kcacher: downloading big: 1.0 MiB / 2.0 MiB (50%)" in text, text
    assert "file hit, restored big" in text
    assert text.rstrip().endswith("MiB/s"), text  # the live line was cleared before the summary


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(cacher, shell: str) -> None:
    run = cacher("completion", shell)
    assert run.code == 0
    assert "cacher" in run.out and "download" in run.out
