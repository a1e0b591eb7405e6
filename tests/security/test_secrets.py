"""No secret in any output: stdout, stderr, --debug tracebacks, library logs, exception text.

The secrets are known strings: the S3 secret in CACHER_S3_SECRET and in a secret file, a
wrong secret (which travels the same paths), and a password in a --url. Every command is run
on its success path and on failure paths (wrong secret, unknown key id: access denied,
unreachable endpoint, missing bucket, init with bad credentials), most with --debug, and
everything it printed or logged is searched.
"""

from __future__ import annotations

import io
import logging
import os
import traceback
from pathlib import Path
from typing import Any

import pytest

from cacher import config
from cacher.errors import CacherError
from cacher.stores import open_store
from tests.fault_proxy import s3_env

pytestmark = pytest.mark.s3

WRONG = "Wr0ng-S3cret-d0-not-print-9f8e7d6c5b4a"
URL_PASSWORD = "url-passw0rd-never-shown"


@pytest.fixture
def secrets(seaweed_s3: Any) -> list[str]:
    return [seaweed_s3.secret, WRONG, URL_PASSWORD]


def assert_no_secret(secrets: list[str], *texts: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into:\n{text}"
            assert secret[:12] not in text, f"part of a secret leaked into:\n{text}"


def files_with(tmp_path: Path, key_id: str, secret: str, tag: str) -> tuple[Path, Path]:
    key_file, secret_file = tmp_path / f"{tag}.key", tmp_path / f"{tag}.secret"
    key_file.write_text(key_id + "\n")
    secret_file.write_text(secret + "\n")
    return key_file, secret_file


def test_commands_never_print_a_secret(
    cacher, seaweed_s3, s3_bucket, secrets, home: Path, tmp_path: Path, http
) -> None:
    good_key, good_secret = files_with(tmp_path, seaweed_s3.key_id, seaweed_s3.secret, "good")
    bad_key, bad_secret = files_with(tmp_path, seaweed_s3.key_id, WRONG, "bad")
    env = s3_env(seaweed_s3, s3_bucket)
    wrong = {**env, "CACHER_S3_SECRET": WRONG}
    unknown_id = {**env, "CACHER_S3_KEY_ID": "AKNOSUCHKEY0000", "CACHER_S3_SECRET": WRONG}
    from tests.realparts.ports import free_port

    unreachable = {
        **env,
        "CACHER_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "CACHER_CONNECT_TIMEOUT": "1",
        "CACHER_MAX_ATTEMPTS": "1",
    }
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(os.urandom(6 << 20))
    dest = tmp_path / "out.bin"
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_text("f")
    url = http.put("tool.bin", b"tool").replace("http://", f"http://user:{URL_PASSWORD}@")
    http.put("broken.bin", b"broken")
    http.set_status("broken.bin", 500)  # an error message that names the URL
    runs: list[tuple[list[str], dict[str, str], set[int]]] = [
        # init and doctor with key files, right and wrong
        (
            [
                "init",
                "--bucket",
                s3_bucket,
                "--endpoint",
                seaweed_s3.endpoint,
                "--key-file",
                str(bad_key),
                "--secret-file",
                str(bad_secret),
                "--debug",
            ],
            {},
            {2},
        ),
        (
            [
                "init",
                "--bucket",
                s3_bucket,
                "--endpoint",
                seaweed_s3.endpoint,
                "--key-file",
                str(good_key),
                "--secret-file",
                str(good_secret),
            ],
            {},
            {0},
        ),
        (["doctor", "--debug"], {}, {0}),
        (["doctor", "--debug", "--secret-file", str(bad_secret)], {}, {2}),
        # the transfers, from the environment
        (["upload", "k", str(artifact), "--debug"], env, {0}),
        (["exists", "k", "--debug"], env, {0}),
        (["download", "k", str(dest), "--debug", "--json"], env, {0}),
        (["dir", "upload", "t.tar.zst", str(tree), "--debug"], {**env, "S3FS_LOGGING_LEVEL": "DEBUG"}, {0}),
        (["list", "--debug"], env, {0}),
        (["delete", "k", "--debug"], env, {0}),
        # failure paths
        (["upload", "k2", str(artifact), "--debug"], wrong, {2}),
        (["download", "t.tar.zst", str(dest), "--debug"], wrong, {2}),
        (["dir", "download", "t.tar.zst", str(tmp_path / "t"), "--debug"], unknown_id, {2}),
        (["exists", "k", "--debug"], unreachable, {2}),
        (["doctor", "--debug"], {**wrong, "CACHER_BUCKET": "no-such-bucket-x"}, {2}),
        (
            [
                "download",
                "nope.bin",
                str(tmp_path / "n"),
                "--url",
                url.replace("tool.bin", "missing.bin"),
                "--debug",
            ],
            env,
            {2},
        ),
        (
            ["download", "tool.bin", str(tmp_path / "n"), "--url", url, "--sha256", "0" * 64, "--debug"],
            env,
            {2},
        ),
        (
            ["download", "b.bin", str(tmp_path / "n"), "--url", url.replace("tool.bin", "broken.bin")],
            env,
            {2},
        ),
    ]
    for args, extra, codes in runs:
        run = cacher(*args, extra_env=extra)
        assert run.code in codes, (args, str(run))
        assert_no_secret(secrets, run.out, run.err)
        if run.code == 2:
            assert "cacher: error: " in run.err, (args, str(run))
    config_text = (home / ".config" / "cacher" / "config.toml").read_text()
    assert_no_secret(secrets, config_text)
    doctor = cacher("doctor")
    assert f"secret: {len(seaweed_s3.secret)} characters" in doctor.err, str(doctor)


def test_library_logs_and_exceptions_never_hold_a_secret(
    seaweed_s3, s3_bucket, secrets, tmp_path: Path
) -> None:
    """In-process, with every library logger (botocore, aiobotocore, s3fs, urllib3) at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    texts: list[str] = []
    try:
        for secret, ok in ((seaweed_s3.secret, True), (WRONG, False)):
            settings = config.load(
                {},
                {"backend": "s3", "endpoint": seaweed_s3.endpoint, "bucket": s3_bucket, "part_size_mb": 5},
                config_flag=os.devnull,
            )
            store = open_store(settings, {"CACHER_S3_KEY_ID": seaweed_s3.key_id, "CACHER_S3_SECRET": secret})
            texts += [repr(store), str(vars(store).get("_head"))]
            try:
                with store.writer("k.bin") as w:
                    w.write(os.urandom(6 << 20))
                with store.open_read("k.bin") as r:
                    r.read()
                assert store.head("k.bin") is not None
                store.list("")
                store.delete("k.bin")
                assert ok
            except CacherError as exc:
                assert not ok, exc
                texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    logged = stream.getvalue()
    assert "Signature=" in logged and "CALL: create_multipart_upload" in logged, (
        "the libraries logged nothing useful"
    )
    assert_no_secret(secrets, logged, *texts)
