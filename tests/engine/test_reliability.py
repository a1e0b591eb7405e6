"""Interrupts, corrupt objects and the --url fallback against a real S3 server (SeaweedFS).

- SIGINT / SIGTERM in the middle of an S3 upload or download: exit 130 / 143, the multipart
  upload aborted, nothing under the key, the destination as it was, no staging left.
- A flipped byte or a truncation of the stored object, for each kind and codec: detected,
  exit 2, the destination as it was. With --url, a corrupt object is a miss: fetched again,
  verified, and replaced.
- A verified --url fetch whose cache upload fails: DEST is complete, exit 2, nothing stored.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cacher import config, engine
from cacher.registry import Registry
from cacher.stores import open_store
from tests.conftest import CACHER
from tests.fault_proxy import (
    FaultProxy,
    assert_clean_failure,
    assert_nothing_published,
    is_get,
    is_part,
    leftovers,
    random_file,
    s3_env,
)
from tests.trees import file_contents

pytestmark = pytest.mark.s3


@pytest.fixture
def proxy(seaweed_s3: Any) -> Iterator[FaultProxy]:
    with FaultProxy(seaweed_s3.endpoint) as p:
        yield p


@pytest.fixture
def penv(seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy) -> dict[str, str]:
    return s3_env(seaweed_s3, s3_bucket, proxy.endpoint, CACHER_READ_TIMEOUT="60")


def make_tree(root: Path, blobs: int = 3) -> Path:
    (root / "sub").mkdir(parents=True)
    for i in range(blobs):
        (root / "sub" / f"blob{i}").write_bytes(os.urandom(4 << 20))
    (root / "a.txt").write_text("alpha\n")
    (root / "link").symlink_to("a.txt")
    return root


def store_for(server: Any, bucket: str) -> Any:
    settings = config.load(
        {},
        {"backend": "s3", "endpoint": server.endpoint, "bucket": bucket, "part_size_mb": 5},
        config_flag=os.devnull,
    )
    return open_store(settings, {"CACHER_S3_KEY_ID": server.key_id, "CACHER_S3_SECRET": server.secret})


# -- interrupts -----------------------------------------------------------------------------------


def _wait_for(proxy: FaultProxy, what: str, timeout: float = 60) -> None:
    """Until the proxy is holding a stalled request (the transfer is mid-way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.fault == "stall" for r in proxy.requests):
            time.sleep(0.3)  # let the other requests in flight arrive
            return
        time.sleep(0.01)
    raise AssertionError(f"the {what} never reached the stalled request")


def _interrupt(
    args: list[str],
    env: dict[str, str],
    base: dict[str, str],
    proxy: FaultProxy,
    sig: int,
    what: str,
    cwd: Path,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [CACHER, *args],
        env={**base, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(proxy, what)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize(("kind", "sig"), [("file", signal.SIGINT), ("dir", signal.SIGTERM)])
def test_signal_during_upload_aborts_the_multipart_upload(
    env, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, tmp_path: Path, kind: str, sig: int
) -> None:
    # The second part stalls at the proxy: the upload is held mid-way, parts already stored.
    proxy.set_fault(
        "stall", count=1, match=lambda r: is_part(r) and r.query_params.get("partNumber") == ["2"]
    )
    if kind == "file":
        key, args = "big.bin", ["upload", "big.bin", str(random_file(tmp_path / "big.bin", 24 << 20))]
    else:
        key, args = "t.tar.zst", ["dir", "upload", "t.tar.zst", str(make_tree(tmp_path / "src", blobs=6))]
    done = _interrupt(args, penv, env, proxy, sig, "upload", tmp_path)
    assert done.returncode == 128 + sig, done
    assert "Traceback" not in done.stderr
    assert any(r.method == "DELETE" and "uploadId" in r.query for r in proxy.requests), "no abort sent"
    assert_nothing_published(seaweed_s3, s3_bucket, key)


@pytest.mark.parametrize(("kind", "sig"), [("file", signal.SIGTERM), ("dir", signal.SIGINT)])
def test_signal_during_download_leaves_the_destination(
    env, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, tmp_path: Path, kind: str, sig: int
) -> None:
    store = store_for(seaweed_s3, s3_bucket)
    registry = Registry.from_entry_points()
    if kind == "file":
        key = "big.bin"
        src = random_file(tmp_path / "src.bin", 24 << 20)
        engine.upload(store, engine.UploadRequest(registry.kind("file"), registry.codec("none"), key, [str(src)], {}))
        dest = tmp_path / "dest.bin"
        dest.write_bytes(b"old")
    else:
        key = "t.tar"
        src = make_tree(tmp_path / "src", blobs=6)
        engine.upload(store, engine.UploadRequest(registry.kind("dir"), registry.codec("none"), key, [str(src)], {}))
        dest = tmp_path / "dest"
        dest.mkdir()
        (dest / "keep").write_text("keep")
    # The first range arrives and is being written; a later one stalls.
    proxy.set_fault(
        "stall", count=1, match=lambda r: is_get(r) and not (r.header("Range") or "").startswith("bytes=0-")
    )
    args = ["download", key, str(dest)] if kind == "file" else ["dir", "download", key, str(dest)]
    done = _interrupt(args, penv, env, proxy, sig, "download", tmp_path)
    assert done.returncode == 128 + sig, done
    assert "Traceback" not in done.stderr
    if kind == "file":
        assert dest.read_bytes() == b"old"
    else:
        assert file_contents(dest) == {"keep": b"keep"}
    assert leftovers(tmp_path) == []


# -- corruption -----------------------------------------------------------------------------------

CODEC_KEYS = {
    ("file", "zstd"): "f.bin.zst",
    ("file", "gzip"): "f.bin.gz",
    ("file", "none"): "f.bin",
    ("dir", "zstd"): "t.tar.zst",
    ("dir", "gzip"): "t.tar.gz",
}


def _damage(data: bytes, how: str) -> bytes:
    if how == "truncate":
        return data[: len(data) * 2 // 3]
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    return bytes(flipped)


@pytest.fixture(scope="module")
def corrupt_objects(seaweed_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One bucket holding, per kind and codec, a good object and its damaged twins."""
    import uuid

    bucket = f"t-{uuid.uuid4().hex[:16]}"
    seaweed_s3.make_bucket(bucket)
    store = store_for(seaweed_s3, bucket)
    registry = Registry.from_entry_points()
    work = tmp_path_factory.mktemp("corrupt")
    src_file = work / "f.bin"
    src_file.write_bytes(os.urandom(3 << 20) + b"compressible " * 100_000)
    src_tree = make_tree(work / "tree", blobs=1)
    client = seaweed_s3.client()
    for (kind, codec), key in CODEC_KEYS.items():
        target = src_file if kind == "file" else src_tree
        engine.upload(store, engine.UploadRequest(registry.kind(kind), registry.codec(codec), key, [str(target)], {}))
        head = client.head_object(Bucket=bucket, Key=key)
        data = seaweed_s3.get_bytes(bucket, key)
        for how in ("flip", "truncate"):
            client.put_object(
                Bucket=bucket, Key=f"{how}/{key}", Body=_damage(data, how), Metadata=head["Metadata"]
            )
    return {"bucket": bucket, "sha": hashlib.sha256(src_file.read_bytes()).hexdigest(), "file": src_file}


@pytest.mark.parametrize("how", ["flip", "truncate"])
@pytest.mark.parametrize(("kind", "codec"), sorted(CODEC_KEYS))
def test_damaged_object_is_detected(
    cacher, seaweed_s3, corrupt_objects, tmp_path: Path, kind: str, codec: str, how: str
) -> None:
    s3e = s3_env(seaweed_s3, corrupt_objects["bucket"])
    key = f"{how}/{CODEC_KEYS[(kind, codec)]}"
    if kind == "file":
        dest = tmp_path / "dest.bin"
        dest.write_bytes(b"old")
        extra = ["--sha256", corrupt_objects["sha"]] if codec == "none" else []
        run = cacher("download", key, str(dest), *extra, extra_env=s3e)
        assert dest.read_bytes() == b"old"
    else:
        dest = tmp_path / "dest"
        dest.mkdir()
        (dest / "keep").write_text("keep")
        run = cacher("dir", "download", key, str(dest), extra_env=s3e)
        assert file_contents(dest) == {"keep": b"keep"}
    assert_clean_failure(run)
    assert leftovers(tmp_path) == []


def test_truncated_plain_tar_is_detected(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    """A .tar (no codec checksum) cut exactly at a member boundary still reads as a valid tar
    stream, just a shorter one: the missing end-of-archive marker must give it away."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(name.encode() * 1000)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("a", "b", "c"):
            tar.add(src / name, arcname=name)
    data = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        cut = tar.getmember("c").offset  # the header of the last member
    seaweed_s3.client().put_object(Bucket=s3_bucket, Key="t.tar", Body=data[:cut])
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    run = cacher("dir", "download", "t.tar", str(dest), extra_env=s3_env(seaweed_s3, s3_bucket))
    assert_clean_failure(run)
    assert file_contents(dest) == {"keep": b"keep"}
    assert leftovers(tmp_path) == []


# -- the --url fallback on S3 ---------------------------------------------------------------------


def test_corrupt_cached_object_is_fetched_again_and_replaced(
    cacher, seaweed_s3, s3_bucket, http, tmp_path: Path
) -> None:
    data = os.urandom(6 << 20)
    sha = hashlib.sha256(data).hexdigest()
    url = http.put("tool.bin", data)
    s3e = s3_env(seaweed_s3, s3_bucket)
    dest = tmp_path / "tool.bin"
    run = cacher("download", "tool.bin", str(dest), "--url", url, "--sha256", sha, extra_env=s3e)
    assert run.code == 0, run
    head = seaweed_s3.client().head_object(Bucket=s3_bucket, Key="tool.bin")
    seaweed_s3.client().put_object(
        Bucket=s3_bucket, Key="tool.bin", Body=_damage(data, "flip"), Metadata=head["Metadata"]
    )
    dest.write_bytes(b"old")
    run = cacher("download", "tool.bin", str(dest), "--url", url, "--sha256", sha, extra_env=s3e)
    assert run.code == 0, run
    assert "failed verification" in run.err
    assert dest.read_bytes() == data
    assert seaweed_s3.get_bytes(s3_bucket, "tool.bin") == data
    assert http.count("tool.bin", "GET") == 2
    # Without --sha256 the recorded sha256 still protects it: damage it again, no fallback.
    seaweed_s3.client().put_object(
        Bucket=s3_bucket, Key="tool.bin", Body=_damage(data, "truncate"), Metadata=head["Metadata"]
    )
    run = cacher("download", "tool.bin", str(dest), extra_env=s3e)
    assert_clean_failure(run, "sha256")
    assert dest.read_bytes() == data
    assert seaweed_s3.multipart_uploads(s3_bucket) == []


def test_fetch_then_failed_upload_leaves_dest_complete(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, http, tmp_path: Path
) -> None:
    """engine.download writes DEST (verified) before it uploads: an upload failure exits 2 with
    DEST complete and nothing stored under the key."""
    data = os.urandom(7 << 20)
    url = http.put("go.tgz", data)
    proxy.set_fault("status:503", match=is_part)
    dest = tmp_path / "go.tgz"
    sha = hashlib.sha256(data).hexdigest()
    run = cacher(
        "download",
        "go.tgz",
        str(dest),
        "--url",
        url,
        "--sha256",
        sha,
        extra_env={**penv, "CACHER_READ_TIMEOUT": "5"},
    )
    assert_clean_failure(run, "cannot write")
    assert dest.read_bytes() == data
    assert_nothing_published(seaweed_s3, s3_bucket, "go.tgz")
    assert leftovers(tmp_path) == []


def test_every_test_named_in_the_reliability_doc_exists() -> None:
    """docs/reliability.md points each guarantee at its tests: those tests must exist."""
    import re

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(tests/[a-z]+/test_[a-z0-9_]+\.py)::(test_[a-z0-9_]+)`", doc)
    assert len(named) > 30
    for file, name in named:
        assert re.search(rf"^def {name}\(", (root / file).read_text(), re.M), f"{file}::{name}"
