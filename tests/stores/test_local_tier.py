"""The runner-local tier, through the installed cacher on SeaweedFS behind a recording proxy.

- A restore whose object is unchanged (same ETag; the upload that made a copy records the ETag
  the store answered) reads the local copy: one HEAD, no GET.
- A replaced object is never served stale; a damaged local copy is dropped and read again from
  the store, never a failed job.
- A tier writable by group or others is refused; read-only jobs never write it.
- Least-recently-used eviction keeps the tier under ``local_tier_max``; four concurrent jobs
  sharing one tier each restore a complete, verified tree.
- ``--offline`` (or ``--soft-fail`` with the store unreachable) restores from the tier alone,
  outcome ``local``; an offline upload stays local.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cacher.testing.cli import CACHER
from tests.conftest import assert_one_error_line, tree_files
from tests.realparts.recording_proxy import RecordingProxy

pytestmark = pytest.mark.s3


def s3(server: Any, bucket: str, endpoint: str, tier: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        "CACHER_ENDPOINT": endpoint,
        "CACHER_BUCKET": bucket,
        "CACHER_S3_KEY_ID": server.key_id,
        "CACHER_S3_SECRET": server.secret,
        "CACHER_PREFIX": "proj",
        "CACHER_MAX_ATTEMPTS": "1",
        "CACHER_CONNECT_TIMEOUT": "2",
        **extra,
    }
    if tier is not None:
        env["CACHER_LOCAL_TIER"] = str(tier)
    return env


def tree(root: Path, content: str, size: int = 0) -> Path:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "sub" / "f.txt").write_text(content)
    if size:
        (root / "blob.bin").write_bytes(os.urandom(size))
    return root


def methods(proxy: RecordingProxy) -> list[str]:
    return [r.method for r in proxy.requests]


def copies(tier: Path) -> list[Path]:
    return sorted(p for p in (tier / "entries").glob("*/*") if p.is_file())


def tier_bytes(tier: Path) -> int:
    return sum(p.stat().st_size for p in copies(tier))


def test_a_second_restore_sends_no_get(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    src = tree(tmp_path / "src", "v1", 300_000)
    tier = tmp_path / "tier"
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        plain = s3(seaweed_s3, s3_bucket, proxy.endpoint)
        tiered = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier)
        assert cacher("dir", "upload", "deps.tar.zst", str(src), extra_env=plain).code == 0
        proxy.clear()
        first = cacher("dir", "download", "deps.tar.zst", str(tmp_path / "a"), "--json", extra_env=tiered)
        assert first.code == 0, first
        assert "GET" in methods(proxy)
        assert len(copies(tier)) == 1
        proxy.clear()
        second = cacher("dir", "download", "deps.tar.zst", str(tmp_path / "b"), "--json", extra_env=tiered)
        assert second.code == 0, second
        assert methods(proxy) == ["HEAD"], methods(proxy)
    document = json.loads(second.out)
    assert (document["outcome"], document["match"], document["verified"]) == ("hit", "exact", True)
    assert (json.loads(first.out)["local_tier"], document["local_tier"]) == (False, True)
    assert "from the local tier" in second.err and "from the local tier" not in first.err
    assert tree_files(tmp_path / "b") == tree_files(src) == tree_files(tmp_path / "a")


def test_an_upload_fills_the_tier_and_its_write_id_names_the_object(
    cacher, seaweed_s3, s3_bucket, tmp_path: Path
) -> None:
    src = tree(tmp_path / "src", "up")
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(100_000))
    tier = tmp_path / "tier"
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        tiered = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier)
        assert cacher("dir", "upload", "deps.tar.zst", str(src), extra_env=tiered).code == 0
        assert cacher("upload", "f.bin", str(f), extra_env=tiered).code == 0
        assert len(copies(tier)) == 2
        proxy.clear()
        run = cacher("dir", "download", "deps.tar.zst", str(tmp_path / "d"), extra_env=tiered)
        raw = cacher("download", "f.bin", str(tmp_path / "g.bin"), extra_env=tiered)
        assert run.code == 0 and raw.code == 0, (run, raw)
        assert methods(proxy) == ["HEAD", "HEAD"], methods(proxy)
    assert tree_files(tmp_path / "d") == {"sub/f.txt": b"up"}
    assert (tmp_path / "g.bin").read_bytes() == f.read_bytes()


def test_a_replaced_object_is_never_served_stale(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        plain = s3(seaweed_s3, s3_bucket, proxy.endpoint)
        tiered = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier)
        assert cacher("dir", "upload", "deps.tar.zst", str(tree(tmp_path / "v1", "one")), extra_env=tiered).code == 0
        # Another runner (no tier) replaces the object with one of the same size.
        again = cacher("dir", "upload", "deps.tar.zst", str(tree(tmp_path / "v2", "two")), "--force", extra_env=plain)
        assert again.code == 0, again
        proxy.clear()
        run = cacher("dir", "download", "deps.tar.zst", str(tmp_path / "d"), extra_env=tiered)
        assert run.code == 0, run
        assert "GET" in methods(proxy)
        assert tree_files(tmp_path / "d") == {"sub/f.txt": b"two"}
        # The copy now holds the new object: the next restore reads it.
        proxy.clear()
        assert cacher("dir", "download", "deps.tar.zst", str(tmp_path / "e"), extra_env=tiered).code == 0
        assert methods(proxy) == ["HEAD"]
    assert tree_files(tmp_path / "e") == {"sub/f.txt": b"two"}
    assert len(copies(tier)) == 1



def test_a_replacement_carrying_the_old_write_id_is_not_served_stale(
    cacher, seaweed_s3, s3_bucket, tmp_path: Path
) -> None:
    """Issue 25 item 8: the write id is metadata, and a copy of another object can carry it
    (S3 CopyObject with the metadata given): only the ETag the upload answered names the copy."""
    tier = tmp_path / "tier"
    tiered = s3(seaweed_s3, s3_bucket, seaweed_s3.endpoint, tier)
    plain = s3(seaweed_s3, s3_bucket, seaweed_s3.endpoint)
    one, two = tmp_path / "one.bin", tmp_path / "two.bin"
    one.write_bytes(os.urandom(50_000))
    two.write_bytes(os.urandom(50_000))  # random: both compress to the same size
    assert cacher("upload", "deps.bin", str(one), extra_env=tiered).code == 0
    assert cacher("upload", "other.bin", str(two), extra_env=plain).code == 0
    client = seaweed_s3.client()
    old = client.head_object(Bucket=s3_bucket, Key="proj/deps.bin")
    new = client.head_object(Bucket=s3_bucket, Key="proj/other.bin")
    assert old["ContentLength"] == new["ContentLength"]
    client.copy_object(
        Bucket=s3_bucket, Key="proj/deps.bin",
        CopySource={"Bucket": s3_bucket, "Key": "proj/other.bin"},
        Metadata={**new["Metadata"], "cacher-write-id": old["Metadata"]["cacher-write-id"]},
        MetadataDirective="REPLACE",
    )
    run = cacher("download", "deps.bin", str(tmp_path / "d.bin"), extra_env=tiered)
    assert run.code == 0, run
    assert (tmp_path / "d.bin").read_bytes() == two.read_bytes()

@pytest.mark.parametrize("where", ["data", "end"])
def test_a_damaged_local_copy_is_healed(cacher, seaweed_s3, s3_bucket, tmp_path: Path, where: str) -> None:
    src = tree(tmp_path / "src", "good", 200_000)
    tier = tmp_path / "tier"
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        tiered = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier)
        assert cacher("dir", "upload", "deps.tar.zst", str(src), extra_env=tiered).code == 0
        [copy] = copies(tier)
        data = bytearray(copy.read_bytes())
        index = 100 if where == "data" else len(data) - 200  # a byte of the zstd stream / of its trailer
        data[index] ^= 0xFF
        copy.write_bytes(bytes(data))
        proxy.clear()
        run = cacher("dir", "download", "deps.tar.zst", str(tmp_path / "d"), "--json", extra_env=tiered)
        assert run.code == 0, run
        assert "GET" in methods(proxy)
        assert tree_files(tmp_path / "d") == tree_files(src)
        # Healed: a good copy again, read with no GET.
        proxy.clear()
        assert cacher("dir", "download", "deps.tar.zst", str(tmp_path / "e"), extra_env=tiered).code == 0
        assert methods(proxy) == ["HEAD"]
    assert tree_files(tmp_path / "e") == tree_files(src)


def test_a_damaged_raw_copy_is_healed(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(50_000))
    tier = tmp_path / "tier"
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        tiered = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier)
        assert cacher("upload", "f.bin", str(f), extra_env=tiered).code == 0
        [copy] = copies(tier)
        data = bytearray(copy.read_bytes())
        data[10] ^= 0x01
        copy.write_bytes(bytes(data))
        proxy.clear()
        run = cacher("download", "f.bin", str(tmp_path / "g.bin"), extra_env=tiered)
        assert run.code == 0, run
        assert "GET" in methods(proxy)
    assert (tmp_path / "g.bin").read_bytes() == f.read_bytes()


def test_a_read_only_job_passes_over_a_damaged_copy_and_leaves_it(
    cacher, seaweed_s3, s3_bucket, tmp_path: Path
) -> None:
    src = tree(tmp_path / "src", "good", 100_000)
    tier = tmp_path / "tier"
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        tiered = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier)
        assert cacher("dir", "upload", "deps.tar.zst", str(src), extra_env=tiered).code == 0
        [copy] = copies(tier)
        data = bytearray(copy.read_bytes())
        data[100] ^= 0xFF
        copy.write_bytes(bytes(data))
        proxy.clear()
        ro = {**tiered, "CACHER_READ_ONLY": "1"}
        run = cacher("dir", "download", "deps.tar.zst", str(tmp_path / "d"), extra_env=ro)
        assert run.code == 0, run
        assert "GET" in methods(proxy)
    assert tree_files(tmp_path / "d") == tree_files(src)
    assert copies(tier) == [copy] and copy.read_bytes() == bytes(data)  # a read-only job writes nothing


def test_a_tier_writable_by_others_is_refused(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    tier.mkdir()
    tier.chmod(0o777)
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        env = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier)
        run = cacher("dir", "download", "deps.tar.zst", str(tmp_path / "d"), extra_env=env)
        assert_one_error_line(run, "writable by group or others", str(tier))
        tier.chmod(0o770)
        assert_one_error_line(cacher("exists", "k", extra_env=env), "writable by group or others")
        assert proxy.requests == []
    assert not (tmp_path / "d").exists() and list(tier.iterdir()) == []
    bad = cacher("exists", "k", extra_env={**s3(seaweed_s3, s3_bucket, seaweed_s3.endpoint, tier), "CACHER_LOCAL_TIER_MAX": "lots"})
    assert_one_error_line(bad, "local_tier_max 'lots' is not a size")


def test_read_only_jobs_never_write_the_tier(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        plain = s3(seaweed_s3, s3_bucket, proxy.endpoint)
        assert cacher("dir", "upload", "deps.tar.zst", str(tree(tmp_path / "s", "x")), extra_env=plain).code == 0
        assert cacher("dir", "upload", "other.tar.zst", str(tree(tmp_path / "o", "y")), extra_env=plain).code == 0
        ro = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier, CACHER_READ_ONLY="1")
        # No tier yet: a read-only job does not create one.
        for dest in ("a", "b"):
            run = cacher("dir", "download", "deps.tar.zst", str(tmp_path / dest), extra_env=ro)
            assert run.code == 0, run
        assert methods(proxy).count("GET") >= 2
        assert not tier.exists()
        # A tier a trusted job filled: read, and left exactly as it was (its times included).
        rw = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier)
        assert cacher("dir", "download", "deps.tar.zst", str(tmp_path / "c"), extra_env=rw).code == 0
        before = {p: p.stat().st_mtime_ns for p in tier.rglob("*")}
        proxy.clear()
        assert cacher("dir", "download", "deps.tar.zst", str(tmp_path / "d"), extra_env=ro).code == 0
        assert methods(proxy) == ["HEAD"]
        assert cacher("dir", "download", "other.tar.zst", str(tmp_path / "e"), extra_env=ro).code == 0
        assert {p: p.stat().st_mtime_ns for p in tier.rglob("*")} == before
    assert tree_files(tmp_path / "d") == {"sub/f.txt": b"x"}
    assert tree_files(tmp_path / "e") == {"sub/f.txt": b"y"}


def test_eviction_keeps_the_tier_under_its_bound(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    bound = 350_000
    files = []
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        env = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier, CACHER_LOCAL_TIER_MAX=str(bound))
        for i in range(6):
            f = tmp_path / f"f{i}.bin"
            f.write_bytes(os.urandom(100_000))
            files.append(f)
            assert cacher("upload", f"f{i}.bin", str(f), extra_env=env).code == 0
            assert tier_bytes(tier) <= bound
        assert len(copies(tier)) == 3
        # The newest three are local; using f3 makes it the most recent, so f4 goes next.
        proxy.clear()
        assert cacher("download", "f3.bin", str(tmp_path / "o3"), extra_env=env).code == 0
        assert methods(proxy) == ["HEAD"]
        proxy.clear()
        assert cacher("download", "f0.bin", str(tmp_path / "o0"), extra_env=env).code == 0
        assert "GET" in methods(proxy)
        assert tier_bytes(tier) <= bound
        proxy.clear()
        for name in ("f3", "f5", "f0"):
            assert cacher("download", f"{name}.bin", str(tmp_path / f"p{name}"), extra_env=env).code == 0
        assert "GET" not in methods(proxy), methods(proxy)
        # Too big for the bound at all: restored, never kept.
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(400_000))
        assert cacher("upload", "big.bin", str(big), extra_env=env).code == 0
        assert cacher("download", "big.bin", str(tmp_path / "obig"), extra_env=env).code == 0
        assert tier_bytes(tier) <= bound
    assert (tmp_path / "o0").read_bytes() == files[0].read_bytes()
    assert (tmp_path / "obig").read_bytes() == big.read_bytes()
    assert list((tier / "tmp").iterdir()) == []


def test_eviction_passes_over_a_copy_being_read(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    env = s3(seaweed_s3, s3_bucket, seaweed_s3.endpoint, tier, CACHER_LOCAL_TIER_MAX="250000")
    for name in ("a", "b"):
        f = tmp_path / f"{name}.bin"
        f.write_bytes(os.urandom(100_000))
        assert cacher("upload", f"{name}.bin", str(f), extra_env=env).code == 0
        time.sleep(0.05)  # distinct use times
    oldest, newer = copies(tier)[0], copies(tier)[1]
    if oldest.stat().st_mtime > newer.stat().st_mtime:
        oldest, newer = newer, oldest
    c = tmp_path / "c.bin"
    c.write_bytes(os.urandom(100_000))
    with open(oldest, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_SH)  # as a restore reading it does
        assert cacher("upload", "c.bin", str(c), extra_env=env).code == 0
        assert oldest.exists() and not newer.exists()
        assert len(copies(tier)) == 2 and tier_bytes(tier) <= 250_000
        # Nothing else can be evicted: a copy that does not fit is not kept, the bound holds.
        d = tmp_path / "d.bin"
        d.write_bytes(os.urandom(200_000))
        assert cacher("upload", "d.bin", str(d), extra_env=env).code == 0
        assert oldest.exists() and tier_bytes(tier) <= 250_000
    assert list((tier / "tmp").iterdir()) == []


def _parallel(env: dict[str, str], key: str, dests: list[Path]) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(
            [CACHER, "dir", "download", key, str(d), "--json"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )
        for d in dests
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def test_four_concurrent_jobs_share_one_tier(cacher, cacher_env, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    src = tree(tmp_path / "src", "shared", 2_000_000)
    for i in range(30):
        (src / "many" / f"{i:02}").mkdir(parents=True, exist_ok=True)
        (src / "many" / f"{i:02}" / "f").write_bytes(os.urandom(20_000))
    tier = tmp_path / "tier"
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        plain = s3(seaweed_s3, s3_bucket, proxy.endpoint)
        assert cacher("dir", "upload", "deps.tar.zst", str(src), extra_env=plain).code == 0
        env = {**cacher_env, **s3(seaweed_s3, s3_bucket, proxy.endpoint, tier)}
        expected = tree_files(src)
        for round_ in ("cold", "warm"):
            proxy.clear()
            dests = [tmp_path / f"{round_}{i}" for i in range(4)]
            runs = _parallel(env, "deps.tar.zst", dests)
            for run, dest in zip(runs, dests, strict=True):
                assert run.returncode == 0, run
                document = json.loads(run.stdout)
                assert (document["outcome"], document["verified"]) == ("hit", True)
                assert tree_files(dest) == expected
            if round_ == "warm":
                assert "GET" not in methods(proxy)
            assert len(copies(tier)) == 1
    assert list((tier / "tmp").iterdir()) == []


def test_concurrent_jobs_evicting_each_other_restore_complete_trees(
    cacher, cacher_env, seaweed_s3, s3_bucket, tmp_path: Path
) -> None:
    tier = tmp_path / "tier"
    trees = {}
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        plain = s3(seaweed_s3, s3_bucket, proxy.endpoint)
        for i in range(4):
            src = tree(tmp_path / f"src{i}", f"tree {i}", 400_000)
            trees[f"k{i}.tar.zst"] = tree_files(src)
            assert cacher("dir", "upload", f"k{i}.tar.zst", str(src), extra_env=plain).code == 0
        # Room for about two copies: every round evicts while other jobs read.
        env = {**cacher_env, **s3(seaweed_s3, s3_bucket, proxy.endpoint, tier, CACHER_LOCAL_TIER_MAX="900000")}
        for round_ in range(3):
            procs = [
                subprocess.Popen(
                    [CACHER, "dir", "download", key, str(tmp_path / f"r{round_}-{key}"), "--json"], env=env,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                )
                for key in trees
            ]
            for p, key in zip(procs, trees, strict=True):
                stdout, stderr = p.communicate(timeout=120)
                assert p.returncode == 0, (stdout, stderr)
                assert json.loads(stdout)["outcome"] == "hit"
                assert tree_files(tmp_path / f"r{round_}-{key}") == trees[key]
            assert tier_bytes(tier) <= 900_000
    assert list((tier / "tmp").iterdir()) == []


def test_offline_restores_from_the_tier_alone(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    src = tree(tmp_path / "src", "kept")
    tier = tmp_path / "tier"
    f = tmp_path / "f.bin"
    f.write_bytes(b"made offline")
    proxy = RecordingProxy(seaweed_s3.endpoint).start()
    env = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier)
    try:
        assert cacher("dir", "upload", "deps-1.tar.zst", str(src), extra_env=env).code == 0
    finally:
        proxy.stop()  # the store is now unreachable at this endpoint
    offline = {**env, "CACHER_OFFLINE": "1"}
    run = cacher("dir", "download", "deps-1.tar.zst", str(tmp_path / "a"), "--json", extra_env=offline)
    assert run.code == 0, run
    document = json.loads(run.out)
    assert (document["outcome"], document["match"], document["local_tier"]) == ("local", "exact", True)
    assert "restored from the local tier" in run.err
    assert tree_files(tmp_path / "a") == {"sub/f.txt": b"kept"}
    # Restore keys work offline, on the tier's own copies.
    run = cacher("dir", "download", "deps-2.tar.zst", str(tmp_path / "b"), "--restore-key", "deps-", "--json", extra_env=offline)
    assert run.code == 0, run
    assert (json.loads(run.out)["outcome"], json.loads(run.out)["match"]) == ("local", "partial")
    # A miss is a miss.
    assert cacher("dir", "download", "other.tar.zst", str(tmp_path / "c"), extra_env=offline).code == 3
    assert not (tmp_path / "c").exists()
    # Without --offline, --soft-fail falls back on the tier when the store cannot be reached.
    soft = cacher("dir", "download", "deps-1.tar.zst", str(tmp_path / "s"), "--soft-fail", "--json", extra_env=env)
    assert soft.code == 0, soft
    assert json.loads(soft.out)["outcome"] == "local"
    assert "warning: soft failure, restored from the local tier" in soft.err
    assert tree_files(tmp_path / "s") == {"sub/f.txt": b"kept"}
    hard = cacher("dir", "download", "deps-1.tar.zst", str(tmp_path / "h"), extra_env=env)
    assert hard.code == 2 and not (tmp_path / "h").exists(), hard
    # Restore keys too, on the tier's copies, as with --offline (issue 27 item 6); the line
    # names the key restored.
    for flags in (["--soft-fail"], ["--offline"]):
        dest = tmp_path / f"rk{flags[0]}"
        run = cacher("dir", "download", "deps-2.tar.zst", str(dest), "--restore-key", "deps-", "--json", *flags, extra_env=env)
        assert run.code == 0, (flags, run)
        document = json.loads(run.out)
        assert (document["outcome"], document["match"], document["matched_key"]) == ("local", "partial", "deps-1.tar.zst")
        assert "deps-1.tar.zst" in run.err, run.err
        assert tree_files(dest) == {"sub/f.txt": b"kept"}
    # An offline upload stays local and says so; the store never sees it.
    up = cacher("upload", "f.bin", str(f), "--json", extra_env=offline)
    assert up.code == 0, up
    assert json.loads(up.out)["outcome"] == "local"
    assert "not shared" in up.err
    back = cacher("download", "f.bin", str(tmp_path / "g.bin"), extra_env=offline)
    assert back.code == 0 and (tmp_path / "g.bin").read_bytes() == b"made offline", back
    assert cacher("exists", "f.bin", extra_env=s3(seaweed_s3, s3_bucket, seaweed_s3.endpoint)).code == 1
    # Offline, a runner that holds no credentials at all still restores from its tier.
    bare = {k: v for k, v in offline.items() if not k.startswith("CACHER_S3_")}
    run = cacher("dir", "download", "deps-1.tar.zst", str(tmp_path / "n"), "--json", extra_env=bare)
    assert run.code == 0 and json.loads(run.out)["outcome"] == "local", run
    assert_one_error_line(cacher("exists", "deps-1.tar.zst", extra_env={**bare, "CACHER_OFFLINE": "0"}), "credentials")
    # ensure offline: an exact local hit runs nothing; a miss builds and keeps the result locally.
    run = cacher("dir", "ensure", "deps-1.tar.zst", str(tmp_path / "en"), "--json", "--", "false", extra_env=offline)
    assert run.code == 0 and json.loads(run.out)["outcome"] == "local", run
    build = f"mkdir -p {tmp_path}/built && echo b > {tmp_path}/built/b"
    run = cacher("dir", "ensure", "built.tar.zst", str(tmp_path / "built"), "--json", "--", "sh", "-c", build, extra_env=offline)
    assert run.code == 0, run
    document = json.loads(run.out)
    assert (document["outcome"], document["upload"]["outcome"]) == ("built", "local")
    assert cacher("dir", "exists", "built.tar.zst", extra_env=offline).code == 0
    # --offline without a tier is a configuration error.
    no_tier = {k: v for k, v in offline.items() if k != "CACHER_LOCAL_TIER"}
    assert_one_error_line(cacher("exists", "f.bin", extra_env=no_tier), "--offline needs a local tier")


def test_the_tier_is_keyed_by_scope(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        main = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier, CACHER_SCOPE="main")
        feature = s3(seaweed_s3, s3_bucket, proxy.endpoint, tier, CACHER_SCOPE="feature")
        assert cacher("dir", "upload", "d.tar.zst", str(tree(tmp_path / "m", "main")), extra_env=main).code == 0
        assert cacher("dir", "upload", "d.tar.zst", str(tree(tmp_path / "f", "feat")), extra_env=feature).code == 0
        assert len(copies(tier)) == 2
        proxy.clear()
        assert cacher("dir", "download", "d.tar.zst", str(tmp_path / "a"), extra_env=main).code == 0
        assert cacher("dir", "download", "d.tar.zst", str(tmp_path / "b"), extra_env=feature).code == 0
        assert methods(proxy) == ["HEAD", "HEAD"]
    assert tree_files(tmp_path / "a") == {"sub/f.txt": b"main"}
    assert tree_files(tmp_path / "b") == {"sub/f.txt": b"feat"}


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="flock semantics checked on Linux only")


def test_stats_and_prune_local(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    env = s3(seaweed_s3, s3_bucket, seaweed_s3.endpoint, tier, CACHER_LOCAL_TIER_MAX="10MiB")
    for i in range(3):
        f = tmp_path / f"f{i}.bin"
        f.write_bytes(os.urandom(10_000))
        assert cacher("upload", f"dl/f{i}.bin", str(f), extra_env=env).code == 0
        time.sleep(0.05)
    killed = tier / "tmp" / ".entry.cacher-tmp-deadbeef"
    killed.write_bytes(b"half a copy")
    run = cacher("stats", "--local", "--json", extra_env=env)
    assert run.code == 0, run
    stats = json.loads(run.out)
    assert (stats["copies"], stats["bytes"], stats["max_bytes"]) == (3, 30_000, 10 << 20)
    assert stats["bytes_on_disk"] == tier_bytes(tier) and stats["by_segment"] == {"dl": {"copies": 3, "bytes": 30_000}}
    assert stats["unfinished_copies"] == {"count": 1, "bytes": 11}
    human = cacher("stats", "--local", extra_env=env)
    assert human.code == 0 and "copies:  3" in human.out and str(tier) in human.out, human
    # Read-only and --dry-run only say what they would remove.
    ro = cacher("prune", "--local", "--older-than", "0s", extra_env={**env, "CACHER_READ_ONLY": "1"})
    assert ro.code == 0 and "read-only: nothing removed" in ro.err, ro
    dry = cacher("prune", "--local", "--older-than", "0s", "--keep-last", "1", "--dry-run", "--json", extra_env=env)
    assert dry.code == 0 and len(json.loads(dry.out)["deleted"]) == 2, dry
    assert len(copies(tier)) == 3 and killed.exists()
    # The most recently used copy stays; the killed job's temporary goes.
    run = cacher("prune", "--local", "--older-than", "0s", "--keep-last", "1", "--json", extra_env=env)
    assert run.code == 0, run
    document = json.loads(run.out)
    assert sorted(d["key"] for d in document["deleted"]) == ["dl/f0.bin", "dl/f1.bin"]
    assert document["unfinished_copies"] == {"count": 1, "bytes": 11}
    assert len(copies(tier)) == 1 and not killed.exists()
    # The store was not touched.
    assert cacher("exists", "dl/f0.bin", extra_env=env).code == 0
    # Without a tier: one line, exit 2.
    no_tier = {k: v for k, v in env.items() if k != "CACHER_LOCAL_TIER"}
    assert_one_error_line(cacher("stats", "--local", extra_env=no_tier), "no local tier is set")
    assert_one_error_line(cacher("prune", "--local", "--older-than", "1d", extra_env=no_tier), "no local tier is set")


@pytest.mark.parametrize("held", ["tier", "copy"])
def test_a_held_tier_lock_is_a_bounded_told_wait(cacher, tmp_path: Path, held: str) -> None:
    """Red-team pass of issue 25: the tier's own locks (the tier-wide one, a copy's shared one)
    were waited on without a bound or a word, CACHER_LOCK_TIMEOUT ignored."""
    tier = tmp_path / "tier"
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 1000)
    env = {"CACHER_LOCAL_TIER": str(tier), "CACHER_LOCK_TIMEOUT": "3"}
    assert cacher("upload", "k.bin", str(f), extra_env=env).code == 0
    target = tier / "lock" if held == "tier" else copies(tier)[0]
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import fcntl,os,time; fd=os.open({str(target)!r}, os.O_RDONLY); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        if held == "tier":
            run = cacher("upload", "k.bin", str(f), "--force", extra_env=env, timeout=60)
        else:
            run = cacher("download", "k.bin", str(tmp_path / "out.bin"), extra_env=env, timeout=60)
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert run.code == 2, run
    assert took < 20, took
    assert "waiting for the lock of" in run.err and "the local tier" in run.err, run.err
    assert run.err.strip().splitlines()[-1].startswith("cacher: error: gave up after 3 s"), run.err
    assert not (tmp_path / "out.bin").exists()
