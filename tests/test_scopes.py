"""Cache poisoning: read-only jobs and branch scopes, on SeaweedFS through the installed cacher.

- With ``read_only`` no write request reaches the store (a recording proxy sees every request),
  every command exits as a successful run and says what it did not do; restores work.
- With credentials that may only read (a SeaweedFS identity with Read and List), a write exits 2
  naming the permission, or warns under ``--soft-fail``.
- A scope's objects are invisible to another scope's exact key and restore keys; a fallback
  scope's object is restored as a partial hit naming its scope; ``_scopes`` is reserved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_one_error_line, tree_files
from tests.realparts.recording_proxy import RecordingProxy

pytestmark = pytest.mark.s3

WRITES = {"PUT", "POST", "DELETE"}


def s3(server: Any, bucket: str, endpoint: str | None = None, **extra: str) -> dict[str, str]:
    return {
        "CACHER_ENDPOINT": endpoint or server.endpoint,
        "CACHER_BUCKET": bucket,
        "CACHER_S3_KEY_ID": server.key_id,
        "CACHER_S3_SECRET": server.secret,
        "CACHER_PREFIX": "proj",
        **extra,
    }


def tree(root: Path, content: str) -> Path:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "sub" / "f.txt").write_text(content)
    return root


def test_read_only_sends_no_write_and_restores_as_usual(cacher, seaweed_s3, s3_bucket, tmp_path: Path, http) -> None:
    rw = s3(seaweed_s3, s3_bucket)
    assert cacher("dir", "upload", "deps.tar.zst", str(tree(tmp_path / "t", "v1")), extra_env=rw).code == 0
    f = tmp_path / "f.bin"
    f.write_bytes(b"data")
    assert cacher("upload", "old.bin", str(f), extra_env=rw).code == 0
    url = http.put("tool", b"tool bytes")
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        ro = s3(seaweed_s3, s3_bucket, proxy.endpoint, CACHER_READ_ONLY="1")
        runs = {
            "upload": cacher("upload", "new.bin", str(f), "--json", extra_env=ro),
            "dir upload": cacher("dir", "upload", "x.tar.zst", str(tmp_path / "t"), extra_env=ro),
            "delete": cacher("delete", "old.bin", extra_env=ro),
            "prune": cacher("prune", "--older-than", "0s", extra_env=ro),
            "fetch": cacher("download", "k.bin", str(tmp_path / "tool"), "--url", url, "--json", extra_env=ro),
            "ensure": cacher(
                "dir", "ensure", "built.tar.zst", str(tmp_path / "built"), "--",
                "sh", "-c", f"mkdir -p {tmp_path}/built && echo b > {tmp_path}/built/b", extra_env=ro,
            ),
            "doctor": cacher("doctor", extra_env=ro),
            "restore": cacher("dir", "download", "deps.tar.zst", str(tmp_path / "restored"), extra_env=ro),
        }
        methods = {r.method for r in proxy.requests}
    for name, run in runs.items():
        assert run.code == 0, f"{name}: {run}"
    assert not methods & WRITES, f"write requests reached the store: {methods}"
    assert json.loads(runs["upload"].out)["outcome"] == "read-only"
    assert "read-only: new.bin not stored" in runs["upload"].err
    assert "read-only: old.bin not deleted" in runs["delete"].err
    assert "read-only: nothing deleted" in runs["prune"].err
    fetched = json.loads(runs["fetch"].out)
    assert (fetched["outcome"], fetched["raw_bytes"]) == ("fetched-not-stored", 10)
    assert (tmp_path / "tool").read_bytes() == b"tool bytes"
    assert "no canary written" in runs["doctor"].err
    assert tree_files(tmp_path / "restored") == {"sub/f.txt": b"v1"}
    # Nothing changed in the store.
    keys = cacher("list", extra_env=rw)
    assert keys.code == 0 and sorted(keys.out.split()) == ["deps.tar.zst", "old.bin"], keys


def test_read_only_credentials_make_a_write_fail_naming_the_permission(
    cacher, seaweed_s3, s3_bucket, tmp_path: Path
) -> None:
    reader = {
        **s3(seaweed_s3, s3_bucket),
        "CACHER_S3_KEY_ID": seaweed_s3.read_key_id,
        "CACHER_S3_SECRET": seaweed_s3.read_secret,
    }
    f = tmp_path / "f.bin"
    f.write_bytes(b"data")
    run = cacher("upload", "k.bin", str(f), extra_env=reader)
    assert_one_error_line(run, "access denied")
    soft = cacher("upload", "k.bin", str(f), "--soft-fail", extra_env=reader)
    assert soft.code == 0 and "warning: soft failure" in soft.err and "access denied" in soft.err, soft
    assert cacher("exists", "k.bin", extra_env=s3(seaweed_s3, s3_bucket)).code == 1


def test_a_scope_sees_its_own_objects_and_its_fallbacks_only(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    main = s3(seaweed_s3, s3_bucket, CACHER_SCOPE="main")
    feature = s3(seaweed_s3, s3_bucket, CACHER_SCOPE="Feature/X")
    other = s3(seaweed_s3, s3_bucket, CACHER_SCOPE="123/merge")
    assert cacher("dir", "upload", "deps-1.tar.zst", str(tree(tmp_path / "m", "main")), extra_env=main).code == 0
    up = cacher("dir", "upload", "deps-2.tar.zst", str(tree(tmp_path / "f", "feature")), extra_env=feature)
    assert up.code == 0, up
    # Another scope sees neither, by exact key or restore key.
    dest = tmp_path / "dest"
    assert cacher("dir", "download", "deps-2.tar.zst", str(dest), extra_env=other).code == 3
    assert cacher("dir", "download", "deps-3.tar.zst", str(dest), "--restore-key", "deps-", extra_env=other).code == 3
    assert not dest.exists()
    # The feature branch falls back to main: a partial hit, named with its scope.
    with_fallback = {**feature, "CACHER_FALLBACK_SCOPES": "main"}
    run = cacher("dir", "download", "deps-1.tar.zst", str(dest), "--json", extra_env=with_fallback)
    assert run.code == 0, run
    document = json.loads(run.out)
    assert (document["outcome"], document["scope"], document["matched_key"]) == ("partial", "main", "deps-1.tar.zst")
    assert "of scope main" in run.err
    assert tree_files(dest) == {"sub/f.txt": b"main"}
    # Its own scope comes first: its own deps-2 before main's deps-1 through the restore key.
    run = cacher("dir", "download", "deps-9.tar.zst", str(dest), "--restore-key", "deps-", "--json", extra_env=with_fallback)
    assert run.code == 0 and json.loads(run.out)["matched_key"] == "deps-2.tar.zst", run
    # The layout: <prefix>/_scopes/<slug>/<key>, slugged the GitLab way.
    listed = cacher("list", extra_env=s3(seaweed_s3, s3_bucket))
    assert sorted(listed.out.split()) == ["_scopes/feature-x/deps-2.tar.zst", "_scopes/main/deps-1.tar.zst"], listed


def test_scoped_names_are_reserved_and_empty_scopes_refused(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"data")
    plain = s3(seaweed_s3, s3_bucket)
    run = cacher("upload", "_scopes/main/k.bin", str(f), extra_env=plain)
    assert_one_error_line(run, "which is reserved (scopes: use --scope)")
    run = cacher("upload", "k.bin", str(f), extra_env={**plain, "CACHER_SCOPE": "///"})
    assert_one_error_line(run, "names no scope")
    assert cacher("list", extra_env=plain).out == ""
    # An empty variable is unset: the unscoped layout.
    assert cacher("upload", "k.bin", str(f), extra_env={**plain, "CACHER_SCOPE": ""}).code == 0
    assert cacher("list", extra_env=plain).out.split() == ["k.bin"]


def test_a_job_without_credentials_finds_the_store_unavailable(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    """A fork's pull request gets no secrets: read-only or soft-failing, it misses with a
    warning and skips writes; otherwise the missing credentials are an error (exit 2)."""
    rw = s3(seaweed_s3, s3_bucket)
    assert cacher("dir", "upload", "deps.tar.zst", str(tree(tmp_path / "t", "v1")), extra_env=rw).code == 0
    bare = {k: v for k, v in rw.items() if not k.startswith("CACHER_S3_")}
    dest = tmp_path / "dest"
    strict = cacher("dir", "download", "deps.tar.zst", str(dest), extra_env=bare)
    assert_one_error_line(strict, "no S3 credentials")
    for flag in ("CACHER_READ_ONLY", "CACHER_SOFT_FAIL"):
        env = {**bare, flag: "1"}
        run = cacher("dir", "download", "deps.tar.zst", str(dest), "--json", extra_env=env)
        assert run.code == 3, run
        assert json.loads(run.out)["outcome"] == "miss"
        assert "no S3 credentials" in run.err and "error:" not in run.err, run
        assert not dest.exists()
        up = cacher("dir", "upload", "new.tar.zst", str(tmp_path / "t"), extra_env=env)
        assert up.code == 0 and "error:" not in up.err, up
    assert cacher("exists", "new.tar.zst", extra_env=rw).code == 1  # nothing was written
