"""The CLI against a real S3 server (SeaweedFS on loopback), and the Garage rules on the wire."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_one_error_line, s3_store_env
from tests.trees import make_tree, snapshot

DATA = os.urandom(12 << 20) + b"end"  # above the 5 MiB multipart threshold


@pytest.fixture
def s3env(seaweed_s3: Any, s3_bucket: str) -> dict[str, str]:
    return {**s3_store_env(seaweed_s3, s3_bucket), "CACHER_PREFIX": "proj"}


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    f = tmp_path / "artifact.bin"
    f.write_bytes(DATA)
    return f


def test_upload_is_a_plain_object(cacher, s3env, seaweed_s3, s3_bucket, artifact: Path, tmp_path: Path) -> None:
    run = cacher("upload", "tools/a.bin", str(artifact), extra_env=s3env)
    assert run.code == 0, run
    assert seaweed_s3.get_bytes(s3_bucket, "proj/tools/a.bin") == DATA
    assert seaweed_s3.multipart_uploads(s3_bucket) == []
    assert cacher("exists", "tools/a.bin", extra_env=s3env).code == 0
    assert cacher("exists", "tools/missing", extra_env=s3env).code == 1
    dest = tmp_path / "out.bin"
    run = cacher("download", "tools/a.bin", str(dest), extra_env=s3env)
    assert run.code == 0, run
    assert dest.read_bytes() == DATA
    run = cacher("download", "tools/missing", str(tmp_path / "x"), extra_env=s3env)
    assert run.code == 3, run
    assert not (tmp_path / "x").exists()


def test_list_delete_and_skip(cacher, s3env, artifact: Path) -> None:
    small = artifact.with_name("small")
    small.write_bytes(b"small")
    for key in ("a/1", "a/2", "b/3"):
        assert cacher("upload", key, str(small), extra_env=s3env).code == 0
    run = cacher("upload", "a/1", str(artifact), extra_env=s3env)
    assert run.code == 0 and "skipped" in run.err
    run = cacher("list", "a/", extra_env=s3env)
    assert (run.code, run.out.split()) == (0, ["a/1", "a/2"])
    assert cacher("delete", "a/1", extra_env=s3env).code == 0
    assert cacher("delete", "a/1", extra_env=s3env).code == 1
    assert cacher("list", extra_env=s3env).out.split() == ["a/2", "b/3"]


def test_empty_file_round_trip(cacher, s3env, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert cacher("upload", "empty", str(empty), extra_env=s3env).code == 0
    dest = tmp_path / "dest"
    run = cacher("download", "empty", str(dest), extra_env=s3env)
    assert run.code == 0, run
    assert dest.read_bytes() == b""


def test_url_fallback_stores_on_s3(cacher, s3env, http, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    url = http.put("go.tar.gz", DATA)
    dest = tmp_path / "go.tar.gz"
    sha = hashlib.sha256(DATA).hexdigest()
    run = cacher("download", "go.tar.gz", str(dest), "--url", url, "--sha256", sha, extra_env=s3env)
    assert run.code == 0, run
    assert dest.read_bytes() == DATA
    assert seaweed_s3.get_bytes(s3_bucket, "proj/go.tar.gz") == DATA
    bad = cacher("download", "bad.tar.gz", str(tmp_path / "bad"), "--url", url, "--sha256", "0" * 64, extra_env=s3env)
    assert bad.code == 2
    assert "proj/bad.tar.gz" not in seaweed_s3.list_keys(s3_bucket)
    assert seaweed_s3.multipart_uploads(s3_bucket) == []


def test_dir_round_trip_on_s3(cacher, s3env, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    assert cacher("dir", "upload", "deps.tar.zst", str(tree), extra_env=s3env).code == 0
    dest = tmp_path / "dest"
    run = cacher("dir", "download", "deps.tar.zst", str(dest), extra_env=s3env)
    assert run.code == 0, run
    assert snapshot(dest) == snapshot(tree)


def test_failed_dir_upload_leaves_no_object_and_no_multipart(cacher, s3env, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    tree = tmp_path / "src"
    tree.mkdir()
    for i in range(8):
        (tree / f"f{i}").write_bytes(os.urandom(2 << 20))
    os.mkfifo(tree / "zz-fifo")  # archived last: the upload fails after several parts went up
    run = cacher("dir", "upload", "t.tar", str(tree), extra_env=s3env)
    assert run.code == 2, run
    assert seaweed_s3.list_keys(s3_bucket) == []
    assert seaweed_s3.multipart_uploads(s3_bucket) == []


def test_doctor_and_init(cacher, s3env, seaweed_s3, s3_bucket, home: Path, tmp_path: Path) -> None:
    key_file, secret_file = tmp_path / "key", tmp_path / "secret"
    key_file.write_text(seaweed_s3.key_id + "\n")
    secret_file.write_text(seaweed_s3.secret + "\n")
    run = cacher("init", "--endpoint", seaweed_s3.endpoint, "--bucket", s3_bucket, "--prefix", "p",
                 "--key-file", str(key_file), "--secret-file", str(secret_file))
    assert run.code == 0, run
    assert seaweed_s3.secret not in run.out + run.err
    doctor = cacher("doctor")
    assert doctor.code == 0, doctor
    assert f"secret: {len(seaweed_s3.secret)} characters" in doctor.err
    assert seaweed_s3.secret not in doctor.out + doctor.err
    assert [k for k in seaweed_s3.list_keys(s3_bucket) if "doctor" in k] == []


# -- failures ---------------------------------------------------------------------------------


def test_wrong_secret_names_the_credential_problem(cacher, s3env, artifact: Path) -> None:
    bad = {**s3env, "CACHER_S3_SECRET": "wrong-secret-value-123456"}
    for args in (["upload", "k", str(artifact)], ["exists", "k"], ["download", "k", str(artifact.with_name("d"))]):
        run = cacher(*args, extra_env=bad)
        assert run.code == 2, run
        assert_one_error_line(run)
        assert "access denied" in run.err or "Signature" in run.err
        assert "wrong-secret-value-123456" not in run.out + run.err
    assert not artifact.with_name("d").exists()


def test_missing_bucket_is_an_error_not_a_miss(cacher, s3env, tmp_path: Path) -> None:
    env = {**s3env, "CACHER_BUCKET": "no-such-bucket-cacher"}
    for args, in [(["exists", "k"],), (["download", "k", str(tmp_path / "d")],)]:
        run = cacher(*args, extra_env=env)
        assert run.code == 2, run
        assert_one_error_line(run, "does not exist")


def test_unreachable_endpoint_fails_fast(cacher, s3env, artifact: Path) -> None:
    from tests.realparts.ports import free_port

    env = {**s3env, "CACHER_ENDPOINT": f"http://127.0.0.1:{free_port()}", "CACHER_CONNECT_TIMEOUT": "1"}
    started = time.monotonic()
    run = cacher("upload", "k", str(artifact), extra_env=env)
    assert run.code == 2, run
    assert_one_error_line(run)
    assert time.monotonic() - started < 30


def test_no_credentials(cacher, s3env, artifact: Path) -> None:
    env = {k: v for k, v in s3env.items() if not k.startswith("CACHER_S3_")}
    run = cacher("upload", "k", str(artifact), extra_env=env)
    assert run.code == 2
    assert_one_error_line(run, "no S3 credentials")


# -- the wire ---------------------------------------------------------------------------------


def test_garage_rules_on_the_wire(cacher, s3env, seaweed_s3, artifact: Path, tmp_path: Path) -> None:
    from tests.realparts.recording_proxy import RecordingProxy

    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        env = {**s3env, "CACHER_ENDPOINT": proxy.endpoint, "CACHER_PART_SIZE_MB": "5"}
        assert cacher("upload", "wire/a.bin", str(artifact), extra_env=env).code == 0
        assert cacher("exists", "wire/a.bin", extra_env=env).code == 0
        assert cacher("download", "wire/a.bin", str(tmp_path / "o"), extra_env=env).code == 0
        assert cacher("list", "wire/", extra_env=env).code == 0
        assert cacher("delete", "wire/a.bin", extra_env=env).code == 0
        requests = list(proxy.requests)
    bucket = s3env["CACHER_BUCKET"]
    assert len(requests) >= 6
    methods = {r.method for r in requests}
    assert {"PUT", "POST", "GET", "HEAD", "DELETE"} <= methods  # multipart upload happened
    for r in requests:
        assert r.path.startswith(f"/{bucket}"), r.target  # path-style
        assert (r.header("Authorization") or "").startswith("AWS4-HMAC-SHA256 "), r.target
        names = {n.lower() for n in r.header_names()}
        assert not any(n.startswith("x-amz-checksum-") for n in names), (r.target, names)
        assert "x-amz-sdk-checksum-algorithm" not in names, r.target
        assert "aws-chunked" not in (r.header("Content-Encoding") or ""), r.target
        # botocore's requests (uploads, DELETE) go unsigned, deliberately (docs/reliability.md,
        # "No pass over the bytes that buys nothing"); the hand-signed HEAD and GETs carry the
        # empty body's hash; never STREAMING-*.
        payload = r.header("x-amz-content-sha256")
        if r.method in ("PUT", "POST", "DELETE"):
            assert payload == "UNSIGNED-PAYLOAD", (r.target, payload)
        else:
            assert payload == hashlib.sha256(b"").hexdigest(), (r.target, payload)


def test_exists_does_not_import_s3fs(s3env, env: dict[str, str]) -> None:
    """A HEAD is signed and sent without s3fs: `cacher exists` starts in a fraction of the time."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cacher.cli import main\n"
        "hit, miss = main(['exists', 'k']), main(['exists', 'nope'])\n"
        "print('HEAVY', [m for m in ('s3fs', 'aiobotocore', 'botocore', 'aiohttp') if m in sys.modules], miss)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**env, **s3env}, capture_output=True, text=True)
    assert "HEAVY [] 1" in proc.stdout, proc


def test_part_size_doubles_every_thousand_parts() -> None:
    """Pure arithmetic, no store: 10,000 parts from 8 MiB hold objects up to 7.8 TiB."""
    from cacher.stores.s3.multipart import PARTS_PER_STEP, ParallelUpload

    upload = ParallelUpload(lambda: None, "b", "k", part_size=8 << 20, inflight=3, metadata={})
    sizes = []
    for _ in range(10_000):
        sizes.append(upload.next_part_size)
        upload.parts.append({})
    assert sizes[0] == sizes[PARTS_PER_STEP - 1] == 8 << 20
    assert sizes[PARTS_PER_STEP] == 16 << 20
    assert sum(sizes) >= 7.8 * (1 << 40)
    assert all(5 << 20 <= s <= 8 << 29 for s in sizes)


def test_fixed_upload_size_keeps_parts_equal(tmp_path: Path) -> None:
    """R2 wants equal parts: the `fixed_upload_size` option (config [options]) stops the doubling."""
    import os

    from cacher import config
    from cacher.stores import open_store
    from cacher.stores.s3.multipart import PARTS_PER_STEP, ParallelUpload

    cfg = tmp_path / "config.toml"
    cfg.write_text('backend = "s3"\nbucket = "b"\n[options]\nfixed_upload_size = true\n')
    creds = {"CACHER_S3_KEY_ID": "id", "CACHER_S3_SECRET": "secret"}
    settings = config.load({**creds, "XDG_CONFIG_HOME": os.devnull}, {}, config_flag=str(cfg))
    store = open_store(settings, creds)
    assert store.grow_parts is False  # type: ignore[attr-defined]
    upload = ParallelUpload(lambda: None, "b", "k", part_size=8 << 20, inflight=3, metadata={}, grow=False)
    upload.parts.extend({} for _ in range(3 * PARTS_PER_STEP))
    assert upload.next_part_size == 8 << 20


def test_download_does_not_import_s3fs(s3env, env: dict[str, str], tmp_path: Path) -> None:
    """Downloads are ranged GETs signed by hand (cacher/s3ranges.py): no s3fs, no event loop."""
    import subprocess
    import sys

    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    code = (
        "import sys\n"
        "from cacher.cli import main\n"
        f"assert main(['upload', 'dl/a.bin', {str(src)!r}]) == 0\n"
        "for m in [m for m in sys.modules if m.split('.')[0] in ('s3fs', 'aiobotocore', 'botocore', 'aiohttp')]:\n"
        "    del sys.modules[m]\n"
        f"code = main(['download', 'dl/a.bin', {str(tmp_path / 'out.bin')!r}])\n"
        "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & {'s3fs', 'aiobotocore', 'botocore', 'aiohttp'}), code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**env, **s3env}, capture_output=True, text=True)
    assert "HEAVY [] 0" in proc.stdout, proc
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()


def test_s3fs_is_built_on_a_thread_while_the_upload_starts(
    s3env: dict[str, str], seaweed_s3: Any, s3_bucket: str, tmp_path: Path
) -> None:
    """`prepare_writer` builds s3fs on a thread: the writer takes data before it is ready (the
    first part waits for it), and an error of the build reaches the first request as a
    StorageError, with nothing published."""
    import threading

    from cacher import config
    from cacher.errors import StorageError
    from cacher.stores import open_store

    settings = config.load({**s3env, "XDG_CONFIG_HOME": str(tmp_path / "no-config")}, {})
    store = open_store(settings, s3env)
    real = store._factory  # type: ignore[attr-defined]
    release = threading.Event()

    def slow() -> Any:
        assert release.wait(30)
        return real()

    store._factory = slow  # type: ignore[attr-defined]
    store.prepare_writer()
    with store.writer("thread/ok.bin") as out:
        out.write(b"a" * 1000)  # not a whole part: s3fs is not needed yet
        assert store._fs is None  # type: ignore[attr-defined]
        release.set()
        out.write(b"b" * (9 << 20))
    assert seaweed_s3.get_bytes(s3_bucket, "proj/thread/ok.bin") == b"a" * 1000 + b"b" * (9 << 20)

    broken = open_store(settings, s3env)

    def fails() -> Any:
        raise RuntimeError("no s3fs today")

    broken._factory = fails  # type: ignore[attr-defined]
    broken.prepare_writer()
    with pytest.raises(StorageError, match="no s3fs today"), broken.writer("thread/bad.bin") as out:
        out.write(b"c" * (9 << 20))
    assert "proj/thread/bad.bin" not in seaweed_s3.list_keys(s3_bucket)
