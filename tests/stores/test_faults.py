"""Network faults between cacher and a real S3 server (SeaweedFS), injected by a loopback proxy.

Every case runs the installed `cacher` and checks the two outcomes a CI job can live with:
the transfer completes after retries (the object or the destination is whole), or it exits 2
with one clear error line, the destination untouched, nothing under the key and no multipart
upload left behind. Timing cases check that a stalled or trickling store ends within a bound.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests.fault_proxy import (
    FaultProxy,
    assert_clean_failure,
    assert_nothing_published,
    is_complete,
    is_get,
    is_part,
    leftovers,
    random_file,
    s3_env,
)
from tests.realparts.recording_proxy import RecordedRequest
from tests.trees import file_contents

pytestmark = pytest.mark.s3

SIZE = 12 << 20  # three 5 MiB parts, three ranged GETs


@pytest.fixture
def proxy(seaweed_s3: Any) -> Iterator[FaultProxy]:
    with FaultProxy(seaweed_s3.endpoint) as p:
        yield p


@pytest.fixture
def penv(seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy) -> dict[str, str]:
    return s3_env(seaweed_s3, s3_bucket, proxy.endpoint)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return random_file(tmp_path / "artifact.bin", SIZE)


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    for i in range(3):
        (root / "sub" / f"blob{i}").write_bytes(os.urandom(4 << 20))  # incompressible: several parts
    (root / "a.txt").write_text("alpha\n")
    (root / "link").symlink_to("a.txt")
    return root


def seed_file(server: Any, bucket: str, key: str, data: bytes) -> None:
    server.client().put_object(Bucket=bucket, Key=key, Body=data)


def seed_tree(server: Any, bucket: str, key: str, root: Path) -> None:
    """Store ``root`` as a .tar.zst the way cacher would (written here, without a process)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(root, arcname=".")
    body = zstandard.ZstdCompressor(write_checksum=True).compress(buf.getvalue())
    server.client().put_object(
        Bucket=bucket, Key=key, Body=body, Metadata={"cacher-kind": "dir", "cacher-codec": "zstd"}
    )


def faulted(proxy: FaultProxy, match: Callable[[RecordedRequest], bool]) -> list[RecordedRequest]:
    return [r for r in proxy.requests if match(r)]


# -- retry counts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "status"),
    [("exists", 503), ("upload-single", 503), ("upload-part", 500), ("download", 503)],
)
def test_a_request_that_always_fails_is_sent_max_attempts_times(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, tmp_path: Path, op: str, status: int
) -> None:
    """Retries do not multiply across layers (botocore, s3fs, our own): one request, N attempts."""
    attempts = 2  # not the default (3): the setting is what counts; a multiplying layer shows as 4+
    penv = {**penv, "CACHER_MAX_ATTEMPTS": str(attempts)}
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"old")
    if op == "exists":
        match = lambda r: r.method == "HEAD"  # noqa: E731
        args = ["exists", "k"]
    elif op == "upload-single":
        small = random_file(tmp_path / "small", 1 << 20)
        match = is_part
        args = ["upload", "k", str(small)]
    elif op == "upload-part":
        match = lambda r: is_part(r) and r.query_params.get("partNumber") == ["2"]  # noqa: E731
        args = ["upload", "k", str(random_file(tmp_path / "big", SIZE))]
    else:
        seed_file(seaweed_s3, s3_bucket, "k", os.urandom(1 << 20))  # one ranged GET
        match = is_get
        args = ["download", "k", str(dest)]
    proxy.set_fault(f"status:{status}", match=match)
    run = cacher(*args, extra_env=penv)
    assert_clean_failure(run)
    assert len(faulted(proxy, match)) == attempts, [(r.method, r.target) for r in proxy.requests]
    assert dest.read_bytes() == b"old"
    assert leftovers(tmp_path) == []
    if op.startswith("upload"):
        assert_nothing_published(seaweed_s3, s3_bucket, "k")


@pytest.mark.parametrize(("status", "needle"), [(403, "access denied"), (416, "refused a ranged read")])
def test_a_refused_range_is_not_retried(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, tmp_path: Path, status: int, needle: str
) -> None:
    """A 4xx answer to a ranged GET cannot change on another try: sent once, exit 2, DEST kept."""
    seed_file(seaweed_s3, s3_bucket, "k", os.urandom(1 << 20))  # one ranged GET
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"old")
    proxy.set_fault(f"status:{status}", match=is_get)
    run = cacher("download", "k", str(dest), extra_env={**penv, "CACHER_MAX_ATTEMPTS": "3"})
    assert_clean_failure(run, needle)
    assert len(faulted(proxy, is_get)) == 1, [(r.method, r.target) for r in proxy.requests]
    assert dest.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


# -- transient faults: the transfer completes ------------------------------------------------------

UPLOAD_TRANSIENT = {
    "503-on-parts": lambda p: p.set_fault("status:503", count=2, match=is_part),
    "500-on-create": lambda p: p.set_fault(
        "status:500", count=1, match=lambda r: r.method == "POST" and "uploads" in r.query
    ),
    "reset-mid-part": lambda p: p.set_extra("request_reset", count=2, match=is_part, after=1 << 20),
    "stalled-part": lambda p: p.set_fault("stall", count=1, match=is_part),
}


@pytest.mark.parametrize("fault", sorted(UPLOAD_TRANSIENT))
def test_upload_survives_transient_faults(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, data_file: Path, fault: str
) -> None:
    UPLOAD_TRANSIENT[fault](proxy)
    started = time.monotonic()
    run = cacher("upload", "k", str(data_file), extra_env=penv, timeout=60)
    assert run.code == 0, run
    assert time.monotonic() - started < 30
    assert proxy.faults_applied >= 1
    assert seaweed_s3.get_bytes(s3_bucket, "k") == data_file.read_bytes()
    assert seaweed_s3.multipart_uploads(s3_bucket) == []


DOWNLOAD_TRANSIENT = {
    "reset-mid-body": lambda p: p.set_fault("reset_after_bytes:100000", count=2, match=is_get),
    "503": lambda p: p.set_fault("status:503", count=2, match=is_get),
    "stalled-get": lambda p: p.set_fault("stall", count=1, match=is_get),
    "503-on-head": lambda p: p.set_fault("status:503", count=2, match=lambda r: r.method == "HEAD"),
}


@pytest.mark.parametrize("fault", sorted(DOWNLOAD_TRANSIENT))
def test_download_survives_transient_faults(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, tmp_path: Path, fault: str
) -> None:
    data = os.urandom(SIZE)
    seed_file(seaweed_s3, s3_bucket, "k", data)
    DOWNLOAD_TRANSIENT[fault](proxy)
    dest = tmp_path / "dest.bin"
    run = cacher("download", "k", str(dest), extra_env=penv, timeout=60)
    assert run.code == 0, run
    assert proxy.faults_applied >= 1
    assert dest.read_bytes() == data
    assert leftovers(tmp_path) == []


def test_dir_round_trip_survives_resets(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "src")
    proxy.set_extra("request_reset", count=2, match=is_part, after=1 << 20)
    run = cacher("dir", "upload", "t.tar.zst", str(tree), extra_env=penv, timeout=60)
    assert run.code == 0, run
    assert proxy.faults_applied == 2
    assert seaweed_s3.multipart_uploads(s3_bucket) == []
    proxy.reset()
    proxy.set_fault("reset_after_bytes:100000", count=2, match=is_get)
    dest = tmp_path / "dest"
    run = cacher("dir", "download", "t.tar.zst", str(dest), extra_env=penv, timeout=60)
    assert run.code == 0, run
    assert proxy.faults_applied == 2
    assert file_contents(dest) == file_contents(tree)
    assert os.readlink(dest / "link") == "a.txt"


# -- persistent faults: exit 2, nothing left behind ------------------------------------------------

UPLOAD_PERSISTENT = {
    "reset-mid-part": lambda p: p.set_extra("request_reset", match=is_part, after=1 << 20),
    "503-on-complete": lambda p: p.set_fault("status:503", match=is_complete),
}


@pytest.mark.parametrize("kind", ["file", "dir"])
@pytest.mark.parametrize("fault", sorted(UPLOAD_PERSISTENT))
def test_upload_that_cannot_succeed_publishes_nothing(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, tmp_path: Path, kind: str, fault: str
) -> None:
    UPLOAD_PERSISTENT[fault](proxy)
    if kind == "file":
        run = cacher("upload", "k", str(random_file(tmp_path / "f", SIZE)), extra_env=penv, timeout=60)
        key = "k"
    else:
        key = "t.tar.zst"
        run = cacher("dir", "upload", key, str(make_tree(tmp_path / "src")), extra_env=penv, timeout=60)
    assert_clean_failure(run, "cannot write")
    assert_nothing_published(seaweed_s3, s3_bucket, key)


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_download_that_cannot_succeed_leaves_the_destination(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, tmp_path: Path, kind: str
) -> None:
    proxy.set_fault("reset_after_bytes:100000", match=is_get)
    if kind == "file":
        seed_file(seaweed_s3, s3_bucket, "k", os.urandom(SIZE))
        dest = tmp_path / "dest.bin"
        dest.write_bytes(b"old")
        run = cacher("download", "k", str(dest), extra_env=penv, timeout=60)
        assert dest.read_bytes() == b"old"
    else:
        seed_tree(seaweed_s3, s3_bucket, "t.tar.zst", make_tree(tmp_path / "src"))
        dest = tmp_path / "dest"
        dest.mkdir()
        (dest / "keep").write_text("keep")
        run = cacher("dir", "download", "t.tar.zst", str(dest), extra_env=penv, timeout=60)
        assert file_contents(dest) == {"keep": b"keep"}
    assert_clean_failure(run, "cannot read")
    assert leftovers(tmp_path) == []


def test_lost_answer_to_complete_never_reports_a_broken_object(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, data_file: Path
) -> None:
    """The server completes the upload but its answer is cut: the object is whole or absent."""
    proxy.set_fault("reset_after_bytes:10", count=1, match=is_complete)
    run = cacher("upload", "k", str(data_file), extra_env=penv, timeout=60)
    assert proxy.faults_applied == 1
    assert run.code in (0, 2), run
    keys = seaweed_s3.list_keys(s3_bucket)
    if run.code == 0:
        assert seaweed_s3.get_bytes(s3_bucket, "k") == data_file.read_bytes()
    else:
        assert_clean_failure(run)
        assert keys == [] or seaweed_s3.get_bytes(s3_bucket, "k") == data_file.read_bytes()
    assert seaweed_s3.multipart_uploads(s3_bucket) == []


# -- bounded time: a stalled or trickling store never hangs a job --------------------------------

# The bound of one failing request: attempts x (timeout) plus botocore's backoff (< 1 s, then
# < 2 s with jitter) plus the process start; the abort of a failed upload adds the same again.


def test_stalled_upload_ends_within_the_bound(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, data_file: Path
) -> None:
    """Every part upload stalls (the server never answers, not even "100 Continue")."""
    proxy.set_fault("stall", match=is_part)
    started = time.monotonic()
    run = cacher("upload", "k", str(data_file), extra_env={**penv, "CACHER_MAX_ATTEMPTS": "2"}, timeout=120)
    elapsed = time.monotonic() - started
    assert_clean_failure(run, "cannot write")
    assert elapsed < 2 * 2 + 3 + 10, elapsed
    assert_nothing_published(seaweed_s3, s3_bucket, "k")


def test_stalled_download_ends_within_the_bound(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    seed_file(seaweed_s3, s3_bucket, "k", os.urandom(SIZE))
    proxy.set_fault("stall", match=is_get)
    dest = tmp_path / "dest.bin"
    started = time.monotonic()
    run = cacher("download", "k", str(dest), extra_env={**penv, "CACHER_MAX_ATTEMPTS": "2"}, timeout=120)
    elapsed = time.monotonic() - started
    assert_clean_failure(run, "cannot read")
    assert elapsed < 2 * 2 + 3 + 10, elapsed
    assert not dest.exists() and leftovers(tmp_path) == []


def test_trickling_download_is_cut_by_the_request_timeout(
    cacher, penv, seaweed_s3, s3_bucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Bytes keep arriving (no read timeout fires) but far too slowly: the total timeout ends it."""
    seed_file(seaweed_s3, s3_bucket, "k", os.urandom(SIZE))
    proxy.set_extra("trickle", match=is_get, rate=2000)
    dest = tmp_path / "dest.bin"
    penv = {**penv, "CACHER_MAX_ATTEMPTS": "2", "CACHER_READ_TIMEOUT": "5", "CACHER_REQUEST_TIMEOUT": "3"}
    started = time.monotonic()
    run = cacher("download", "k", str(dest), extra_env=penv, timeout=120)
    elapsed = time.monotonic() - started
    assert_clean_failure(run, "cannot read")
    assert elapsed < 2 * 3 + 3 + 10, elapsed
    assert not dest.exists() and leftovers(tmp_path) == []


def test_unreachable_store_fails_within_the_bound(cacher, penv, tmp_path: Path) -> None:
    from tests.realparts.ports import free_port

    penv = {**penv, "CACHER_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    dest = tmp_path / "d"
    started = time.monotonic()
    run = cacher("download", "k", str(dest), extra_env=penv)
    assert_clean_failure(run)
    assert time.monotonic() - started < 15
    assert not dest.exists()
