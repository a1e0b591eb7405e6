"""Honest output (issue 16): `--json` answers every time, `ensure` passes the build's status
through, global flags before the command, progress in logs, and the small wording fixes.

Every test runs the installed `cacher` and asserts the exit code and what was left behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_one_error_line


def _dead_store() -> dict[str, str]:
    """An S3 store nobody listens on: every request fails at once (connection refused)."""
    from tests.realparts.ports import free_port

    return {
        "CACHER_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "CACHER_BUCKET": "b",
        "CACHER_S3_KEY_ID": "id",
        "CACHER_S3_SECRET": "secret",
        "CACHER_CONNECT_TIMEOUT": "1",
        "CACHER_MAX_ATTEMPTS": "1",
    }


def one_document(run: Any) -> dict[str, Any]:
    """stdout is exactly one JSON document, whatever the outcome."""
    assert run.out.count("\n") == 1, run
    data: dict[str, Any] = json.loads(run.out)
    assert data["schema"] == 1, run
    return data


# (name, argv after the set-up below, extra env: None or "dead" or "soft-dead", exit code,
#  outcome or (command-specific field, value))
CASES: list[tuple[str, list[str], str | None, int, dict[str, Any]]] = [
    ("upload uploaded", ["upload", "new", "{f}"], None, 0, {"outcome": "uploaded"}),
    ("upload skipped", ["upload", "k", "{f}"], None, 0, {"outcome": "skipped"}),
    ("upload failed", ["upload", "k", "{f}", "--soft-fail"], "dead", 0, {"outcome": "failed"}),
    ("upload error", ["upload", "k", "{f}"], "dead", 2, {"outcome": "error", "error.kind": "storage"}),
    ("upload usage", ["upload", "/k", "{f}"], None, 2, {"outcome": "error", "error.kind": "usage"}),
    ("upload parse", ["upload", "k", "{f}", "--nope"], None, 2, {"outcome": "error", "error.kind": "usage"}),
    ("download hit", ["download", "k", "{t}/d"], None, 0, {"outcome": "hit", "match": "exact"}),
    ("download miss", ["download", "nope", "{t}/d"], None, 3, {"outcome": "miss", "looked_up": True}),
    ("download soft miss", ["download", "k", "{t}/d", "--soft-fail"], "dead", 3,
     {"outcome": "miss", "looked_up": False}),
    ("download fetched", ["download", "nope", "{t}/d", "--url", "file://{f}"], None, 0, {"outcome": "fetched"}),
    ("download error", ["download", "k", "{t}/d"], "dead", 2, {"outcome": "error", "error.kind": "storage"}),
    ("download refused", ["dir", "download", "k", "{t}/d"], None, 2, {"outcome": "error", "error.kind": "refused"}),
    ("dir download partial", ["dir", "download", "deps-2.tar.zst", "{t}/d", "--restore-key", "deps-"], None, 0,
     {"outcome": "partial", "match": "partial"}),
    ("dir download miss", ["dir", "download", "x.tar.zst", "{t}/d", "--restore-key", "nothing-"], None, 3,
     {"outcome": "miss", "restore_keys": ["nothing-"]}),
    ("dir upload parse", ["dir", "upload"], None, 2, {"outcome": "error", "kind": "dir"}),
    ("exists yes", ["exists", "k"], None, 0, {"exists": True}),
    ("exists no", ["exists", "nope"], None, 1, {"exists": False}),
    ("exists error", ["exists", "k"], "dead", 2, {"outcome": "error", "error.kind": "storage"}),
    ("ensure hit", ["dir", "ensure", "deps-1.tar.zst", "{t}/d", "--", "false"], None, 0,
     {"outcome": "hit", "failed": None}),
    ("ensure built", ["dir", "ensure", "e.tar.zst", "{d}", "--", "mkdir", "-p", "{d}"], None, 0,
     {"outcome": "built", "build_status": 0, "failed": None}),
    ("ensure build failed", ["dir", "ensure", "e.tar.zst", "{d}", "--", "sh", "-c", "exit 3"], None, 3,
     {"outcome": "build-failed", "build_status": 3, "failed": "build"}),
    ("ensure not stored", ["dir", "ensure", "e.tar.zst", "{d}", "--soft-fail", "--", "mkdir", "-p", "{d}"], "dead", 0,
     {"outcome": "failed", "build_status": 0}),
    ("ensure error", ["dir", "ensure", "e.tar.zst", "{d}", "--", "mkdir", "-p", "{d}"], "dead", 2,
     {"outcome": "error", "failed": "cacher"}),
    ("upload read-only", ["upload", "new", "{f}", "--read-only"], None, 0, {"outcome": "read-only"}),
    ("download fetched-not-stored", ["download", "nope", "{t}/d", "--url", "file://{f}", "--read-only"], None, 0,
     {"outcome": "fetched-not-stored"}),
    ("ensure read-only", ["dir", "ensure", "e.tar.zst", "{d}", "--read-only", "--", "mkdir", "-p", "{d}"], None, 0,
     {"outcome": "read-only", "build_status": 0, "failed": None}),
    ("delete read-only", ["delete", "k", "--read-only"], None, 0, {"outcome": "read-only", "deleted": False}),
    ("key", ["key", "k-{{hash}}", "--hash-from", "{f}"], None, 0, {"command": "key"}),
    ("key error", ["key", "/k"], None, 2, {"outcome": "error", "error.kind": "usage"}),
    ("list", ["list"], None, 0, {"command": "list"}),
    ("list error", ["list"], "dead", 2, {"outcome": "error", "command": "list"}),
    ("stats", ["stats"], None, 0, {"command": "stats"}),
    ("prune", ["prune", "zz/", "--older-than", "1d"], None, 0, {"command": "prune"}),
    ("prune usage", ["prune", "--older-than", "1d"], None, 2, {"outcome": "error", "error.kind": "usage"}),
    ("delete", ["delete", "k"], None, 0, {"deleted": True}),
    ("delete missing", ["delete", "nope"], None, 1, {"deleted": False}),
    ("unknown command", ["frobnicate"], None, 2, {"outcome": "error", "command": "frobnicate"}),
    ("no command", [], None, 2, {"outcome": "error", "command": None}),
]


@pytest.mark.parametrize(("argv", "store", "code", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_json_answers_every_verb_and_outcome(
    cacher, tmp_path: Path, argv: list[str], store: str | None, code: int, expected: dict[str, Any]
) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "x").write_text("x")
    assert cacher("upload", "k", str(f)).code == 0
    assert cacher("dir", "upload", "deps-1.tar.zst", str(tmp_path / "tree")).code == 0
    extra = _dead_store() if store == "dead" else None
    args = [a.format(f=f, t=tmp_path, d=tmp_path / "built") for a in argv]
    at = args.index("--") if "--" in args else len(args)  # ensure's build command comes last
    run = cacher(*args[:at], "--json", *args[at:], extra_env=extra)
    assert run.code == code, run
    document = one_document(run)
    for name, value in expected.items():
        got = document
        for part in name.split("."):
            got = got[part]
        assert got == value, (name, run)
    if document.get("outcome") == "error":
        assert document["error"]["message"] in run.err, run
        assert document["exit_code"] == code
        assert "Traceback" not in run.err


@pytest.mark.parametrize(
    ("build", "status", "line"),
    [
        (["sh", "-c", "exit 1"], 1, "the build command failed with exit 1 (passed through)"),
        (["sh", "-c", "exit 2"], 2, "the build command failed with exit 2 (passed through)"),
        (["sh", "-c", "exit 3"], 3, "the build command failed with exit 3 (passed through)"),
        (["sh", "-c", "kill -KILL $$"], 137, "the build command failed: killed by SIGKILL (exit 137)"),
        (["sh", "-c", "kill -TERM $$"], 143, "the build command failed: killed by SIGTERM (exit 143)"),
        (["no-such-build-command-xyz"], 127, "build command not found: no-such-build-command-xyz (exit 127"),
    ],
    ids=["exit1", "exit2", "exit3", "sigkill", "sigterm", "missing"],
)
def test_ensure_passes_the_build_status_through_and_says_the_build_failed(
    cacher, tmp_path: Path, build: list[str], status: int, line: str
) -> None:
    out = tmp_path / "out"
    run = cacher("dir", "ensure", "e.tar.zst", str(out), "--json", "--", *build)
    assert run.code == status, run
    document = one_document(run)
    assert (document["outcome"], document["failed"], document["build_status"]) == ("build-failed", "build", status)
    assert document["upload"] is None
    assert line in run.err, run
    assert "nothing stored" in run.err, run
    assert cacher("dir", "exists", "e.tar.zst").code == 1  # nothing published
    assert not out.exists()


def test_ensure_says_cacher_failed_after_a_successful_build(cacher, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = cacher("dir", "ensure", "e.tar.zst", str(out), "--json", "--", "sh", "-c", f"echo built > {out}")
    assert run.code == 2, run  # cacher's own code: OUT is a file, not a directory
    document = one_document(run)
    assert (document["outcome"], document["failed"], document["build_status"]) == ("error", "cacher", 0)
    errors = [line for line in run.err.splitlines() if line.startswith("cacher: error:")]
    assert errors == [
        f"cacher: error: cannot upload {out}: not a directory "
        "(the build command succeeded; its result was not stored)"
    ], run
    assert "Traceback" not in run.err
    assert cacher("dir", "exists", "e.tar.zst").code == 1


def test_output_flags_before_the_command(cacher, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    run = cacher("-q", "upload", "k", str(f))
    assert (run.code, run.out, run.err) == (0, "", ""), run
    run = cacher("-q", "dir", "download", "nope.tar.zst", str(tmp_path / "d"))
    assert (run.code, run.out, run.err) == (3, "", ""), run
    run = cacher("--json", "-q", "download", "k", str(tmp_path / "got"))
    assert run.code == 0 and run.err == "", run
    assert one_document(run)["outcome"] == "hit"
    assert (tmp_path / "got").read_text() == "data"
    run = cacher("--quiet", "--json", "key", "k-{hash}", "--hash-from", str(f))  # key's fast path
    assert run.code == 0 and one_document(run)["key"].startswith("k-"), run
    run = cacher("-q", "key", "k-{hash}", "--hash-from", str(f))
    assert run.code == 0 and run.out.startswith("k-") and run.err == "", run
    # --soft-fail before the command: the store is down, the miss says nothing was looked up.
    run = cacher("--soft-fail", "download", "k", str(tmp_path / "d2"), extra_env=_dead_store())
    assert run.code == 3, run
    assert "cacher: file miss, k not looked up" in run.err, run
    # --debug before the command: the traceback comes with the error line.
    run = cacher("--debug", "download", "/abs", str(tmp_path / "d3"))
    assert run.code == 2 and "Traceback" in run.err and "cacher: error: invalid key '/abs'" in run.err, run
    # ensure: flags before the command are cacher's; those after '--' stay the build's.
    out = tmp_path / "out"
    run = cacher("-q", "--json", "dir", "ensure", "e.tar.zst", str(out), "--",
                 "sh", "-c", f'mkdir -p {out} && echo "$@" > {out}/args', "sh", "-q", "--json")
    assert run.code == 0, run
    assert one_document(run)["outcome"] == "built"
    assert (out / "args").read_text() == "-q --json\n"
    # Given after the command, as before, they still work.
    run = cacher("dir", "download", "e.tar.zst", str(tmp_path / "again"), "-q", "--json")
    assert run.code == 0 and run.err == "" and one_document(run)["outcome"] == "hit", run


@pytest.mark.s3
def test_progress_in_a_log_2_s_in_then_every_5_s(env: dict[str, str], tmp_path: Path, seaweed_s3: Any,
                                                 s3_bucket: str) -> None:
    """Without a terminal: the first progress line 2 s into the transfer, then one at least
    every 5 s until the summary.

    Time is controlled, not raced: the restore reads through a proxy that trickles the body at
    256 KiB/s, so a 2 MiB object takes about 8 s on any machine, however fast; the proxy
    notes when the transfer's GET was answered, and each stderr line is stamped as it arrives.
    """
    import os
    import subprocess
    import time

    from tests.conftest import CACHER
    from tests.fault_proxy import FaultProxy, s3_env

    data = os.urandom(2 << 20)
    (tmp_path / "big").write_bytes(data)
    stored = subprocess.run([CACHER, "upload", "big", str(tmp_path / "big")],
                            env={**env, **s3_env(seaweed_s3, s3_bucket)}, capture_output=True, text=True, timeout=60)
    assert stored.returncode == 0, stored.stderr
    dest = tmp_path / "restored"
    answered: list[float] = []

    def transfer_get(req: Any) -> bool:
        if req.method == "GET" and not answered:
            answered.append(time.monotonic())
        return bool(req.method == "GET")

    stamped: list[tuple[float, str]] = []
    with FaultProxy(seaweed_s3.endpoint) as proxy:
        proxy.set_extra("trickle", rate=256 << 10, match=transfer_get)
        run_env = {**env, **s3_env(seaweed_s3, s3_bucket, proxy.endpoint, CACHER_READ_TIMEOUT="30")}
        proc = subprocess.Popen([CACHER, "download", "big", str(dest)], env=run_env, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            stamped.append((time.monotonic(), line.rstrip("\n")))
        assert proc.wait(timeout=60) == 0, stamped
    assert dest.read_bytes() == data
    assert answered, "the proxy saw no GET: nothing was tested"
    progress = [t for t, line in stamped if line.startswith("cacher: downloading big: ")]
    summary = [t for t, line in stamped if line.startswith("cacher: file hit, restored big: ")]
    assert len(summary) == 1, stamped
    took = summary[0] - answered[0]
    assert took > 6.0, f"the proxy did not slow the restore ({took:.2f} s): nothing was tested"
    assert len(progress) >= 2, stamped
    # The first line about 2 s in (the ticker starts just before the look-up, so a little
    # earlier than the GET is answered); never the old 5 s.
    assert progress[0] - answered[0] < 3.5, (progress[0] - answered[0], stamped)
    gaps = [b - a for a, b in zip(progress, [*progress[1:], summary[0]], strict=True)]
    assert max(gaps) < 5.5, (gaps, stamped)
    assert all(line.endswith("/s") or "ETA" in line for _, line in stamped if "downloading big" in line)


def test_a_bare_init_writes_nothing_and_exits_2(cacher, home: Path) -> None:
    for args in (["init"], ["init", "--no-check"]):
        run = cacher(*args)
        assert run.code == 2, run
        lines = run.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("cacher: error: cacher init needs the settings to write"), run
        assert "hint: e.g. cacher init --endpoint URL --bucket NAME" in lines[0], run
        assert not (home / ".config" / "cacher").exists()
    run = cacher("init", "--backend", "file", "--bucket", str(home / "store"))  # given settings: written
    assert run.code == 0, run
    assert (home / ".config" / "cacher" / "config.toml").exists()


@pytest.mark.parametrize(
    ("key", "segment"),
    [("a/./b", "'.'"), ("./b", "'.'"), ("a/.", "'.'"), ("a/../b", "'..'")],
)
def test_a_dot_segment_is_named_as_a_segment(cacher, tmp_path: Path, key: str, segment: str) -> None:
    run = cacher("download", key, str(tmp_path / "d"))
    assert_one_error_line(run, f"invalid key {key!r}: a key must not contain a {segment} path segment",
                          "a dot inside a name, as in 'v1.2', is fine")
    assert not (tmp_path / "d").exists()
    assert cacher("upload", "v1.2/x.tar", __file__).code == 0  # dots inside names stay fine


@pytest.mark.parametrize("args", [["--older-than", "-1d"], ["--older-than=-1d"], ["--older-than", "-30m"]])
def test_a_negative_duration_must_be_positive(cacher, tmp_path: Path, args: list[str]) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    assert cacher("upload", "p/k", str(f)).code == 0
    run = cacher("prune", "p/", *args)
    assert_one_error_line(run, "a duration must be positive")
    assert "requires an argument" not in run.err
    assert cacher("exists", "p/k").code == 0  # nothing pruned
    run = cacher("prune", "p/", "--older-than", "--dry-run")
    assert_one_error_line(run, "--older-than needs a duration", "'--dry-run'")


def test_url_network_errors_say_what_happened(cacher, tmp_path: Path) -> None:
    from tests.realparts.ports import free_port

    port = free_port()
    dest = tmp_path / "tool"
    run = cacher("download", "tool", str(dest), "--url", f"http://127.0.0.1:{port}/tool")
    assert_one_error_line(run, f"cannot fetch http://127.0.0.1:{port}/tool: connection refused by 127.0.0.1:{port}")
    assert "404" not in run.err and "not found" not in run.err
    run = cacher("download", "tool", str(dest), "--url", "http://no-such-host.invalid/tool")
    assert_one_error_line(run, "cannot fetch http://no-such-host.invalid/tool: unknown host 'no-such-host.invalid'")
    assert "404" not in run.err and "not found" not in run.err
    assert not dest.exists()
    assert cacher("exists", "tool").code == 1


def test_url_404_still_says_not_found(cacher, tmp_path: Path, http: Any) -> None:
    http.put("other", b"x")
    run = cacher("download", "tool", str(tmp_path / "tool"), "--url", http.url("missing"))
    assert_one_error_line(run, "not found (404)")


@pytest.mark.s3
def test_a_scoped_miss_names_the_scopes_searched(cacher, seaweed_s3: Any, s3_bucket: str, tmp_path: Path) -> None:
    from tests.keys.test_scopes import s3

    feature = s3(seaweed_s3, s3_bucket, CACHER_SCOPE="feature", CACHER_FALLBACK_SCOPES="main,dev")
    run = cacher("dir", "download", "deps-9.tar.zst", str(tmp_path / "d"), "--restore-key", "deps-", "--json",
                 extra_env=feature)
    assert run.code == 3, run
    assert run.err.splitlines()[-1] == (
        f"cacher: dir miss, nothing under deps-9.tar.zst in s3://{s3_bucket}/proj/_scopes/feature; "
        "restore keys searched: deps-; fallback scopes searched: main, dev"
    ), run
    document = one_document(run)
    assert (document["outcome"], document["looked_up"], document["restore_keys"]) == ("miss", True, ["deps-"])
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("argv", [["--json"], ["-q"], ["-q", "--json"], ["--soft-fail"]])
def test_a_global_flag_alone_asks_for_a_command(cacher, argv: list[str]) -> None:
    """Issue 25 item 14: was 'Unknown command "--json"'."""
    run = cacher(*argv)
    assert_one_error_line(run, "needs a command after it", "cacher --help")
    if "--json" in argv:
        assert one_document(run)["error"]["kind"] == "usage"


def test_an_argument_after_double_dash_is_one_too_many(cacher, tmp_path: Path) -> None:
    """Issue 25 item 14: was 'Unknown option: --prefix. Did you mean --prefix?'."""
    f = tmp_path / "f"
    f.write_text("x")
    run = cacher("upload", "k", str(f), "--", "--prefix")
    assert_one_error_line(run, "unexpected argument --prefix")
    assert "Did you mean" not in run.err
    assert cacher("exists", "k").code == 1  # nothing uploaded


def test_an_offline_miss_names_the_tier_not_the_store(cacher, tmp_path: Path) -> None:
    """Issue 25 item 14: an --offline miss said 'nothing under K in <store>', a store it never asked."""
    tier = tmp_path / "tier"
    tier.mkdir(mode=0o700)
    run = cacher("download", "nokey", str(tmp_path / "out"), "--offline", "--local-tier", str(tier), "--json")
    assert run.code == 3, run
    assert "in the local tier (offline:" in run.err and "not asked" in run.err, run
    assert one_document(run)["outcome"] == "miss"
    assert not (tmp_path / "out").exists()


def test_an_empty_file_destination_is_named_as_such(cacher, tmp_path: Path) -> None:
    """Issue 25 item 14: `download KEY ""` said "cannot write .: it is a directory"."""
    f = tmp_path / "f"
    f.write_text("x")
    assert cacher("upload", "k", str(f)).code == 0
    assert_one_error_line(cacher("download", "k", ""), "empty path", "variable naming the file unset")


def test_a_paths_upload_of_the_current_directory_speaks_of_storing(cacher, tmp_path: Path) -> None:
    """Issue 25 item 14: `paths upload k '**'` said "refusing to restore"."""
    (tmp_path / "a").write_text("x")
    for pattern in ("**", "."):
        run = cacher("paths", "upload", "k.tar.zst", pattern, cwd=tmp_path)
        assert_one_error_line(run, f"cannot store {tmp_path}", "a restore of it would be refused")
    assert cacher("list").out == ""  # nothing stored


def test_debug_alone_names_itself(cacher) -> None:
    assert_one_error_line(cacher("--debug"), "--debug needs a command after it")
