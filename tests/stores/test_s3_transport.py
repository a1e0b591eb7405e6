"""One S3 transport: credentials from every source, pinned reads, one error table, bounded
failure, through the installed ``cacher`` against real servers (moto's S3 and STS, SeaweedFS)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_one_error_line
from tests.realparts.recording_proxy import RecordingProxy

DATA = os.urandom(7 << 20)


@pytest.fixture
def moto_bucket(moto_s3: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    moto_s3.make_bucket(name)
    return name


@pytest.fixture
def motoenv(moto_s3: Any, moto_bucket: str) -> dict[str, str]:
    return {
        "CACHER_ENDPOINT": moto_s3.endpoint,
        "CACHER_BUCKET": moto_bucket,
        "CACHER_S3_KEY_ID": moto_s3.key_id,
        "CACHER_S3_SECRET": moto_s3.secret,
        "CACHER_PART_SIZE_MB": "5",
    }


def _every_path(cacher: Any, env: dict[str, str], tmp_path: Path, key: str = "t/a.bin") -> None:
    """upload (HEAD + multipart), exists, download (HEAD + ranged GETs), list, delete."""
    src = tmp_path / "src.bin"
    src.write_bytes(DATA)
    out = tmp_path / "out.bin"
    for args, code in (
        (["upload", key, str(src)], 0),
        (["exists", key], 0),
        (["download", key, str(out)], 0),
        (["list", "t/"], 0),
        (["delete", key], 0),
        (["exists", key], 1),
    ):
        run = cacher(*args, extra_env=env)
        assert run.code == code, (args, run)
    assert out.read_bytes() == DATA


# -- credentials ------------------------------------------------------------------------------


def test_session_token_is_sent_on_every_path(cacher, motoenv, moto_s3, tmp_path: Path) -> None:
    token = "FwoGZXIvYXdzEXAMPLE+token/" + "x" * 40
    with RecordingProxy(moto_s3.endpoint) as proxy:
        env = {**motoenv, "CACHER_ENDPOINT": proxy.endpoint, "CACHER_SESSION_TOKEN": token}
        _every_path(cacher, env, tmp_path)
        requests = list(proxy.requests)
    methods = {r.method for r in requests}
    assert {"HEAD", "GET", "PUT", "POST", "DELETE"} <= methods
    for r in requests:
        assert r.header("x-amz-security-token") == token, r.target
        assert "x-amz-security-token" in (r.header("Authorization") or ""), r.target  # signed


def test_session_token_without_keys_is_an_error(cacher, motoenv, tmp_path: Path) -> None:
    env = {k: v for k, v in motoenv.items() if not k.startswith("CACHER_S3_")}
    run = cacher("exists", "k", extra_env={**env, "CACHER_SESSION_TOKEN": "secret-token-value"})
    assert_one_error_line(run, "session token")
    assert "secret-token-value" not in run.out + run.err


def test_web_identity_credentials_from_moto_sts(cacher, motoenv, moto_s3, tmp_path: Path) -> None:
    """No cacher credentials: the AWS chain assumes a role with a web identity token (GitHub
    Actions OIDC, EKS IRSA) from moto's STS, and every request signs with what STS gave."""
    token_file = tmp_path / "oidc-token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmNhY2hlciJ9.c2lnbmF0dXJl")
    env = {k: v for k, v in motoenv.items() if not k.startswith("CACHER_S3_")}
    env.update(
        AWS_ROLE_ARN="arn:aws:iam::123456789012:role/ci-cache",
        AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file),
        AWS_ROLE_SESSION_NAME="cacher-test",
        AWS_ENDPOINT_URL_STS=moto_s3.endpoint,
        AWS_REGION="us-east-1",
    )
    with RecordingProxy(moto_s3.endpoint) as proxy:
        _every_path(cacher, {**env, "CACHER_ENDPOINT": proxy.endpoint}, tmp_path)
        requests = list(proxy.requests)
    assert requests
    for r in requests:
        auth = r.header("Authorization") or ""
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=ASIA"), (r.target, auth[:60])  # STS keys
        assert r.header("x-amz-security-token"), r.target
    doctor = cacher("doctor", extra_env=env)
    assert doctor.code == 0, doctor
    assert "assume-role-with-web-identity" in doctor.out + doctor.err


def test_aws_environment_credentials_when_cacher_has_none(cacher, motoenv, moto_s3, tmp_path: Path) -> None:
    env = {k: v for k, v in motoenv.items() if not k.startswith("CACHER_S3_")}
    env.update(AWS_ACCESS_KEY_ID="AKIAFROMENVIRONMENT", AWS_SECRET_ACCESS_KEY="s3cr3t-from-env")
    with RecordingProxy(moto_s3.endpoint) as proxy:
        _every_path(cacher, {**env, "CACHER_ENDPOINT": proxy.endpoint}, tmp_path)
        assert all(
            (r.header("Authorization") or "").startswith("AWS4-HMAC-SHA256 Credential=AKIAFROMENVIRONMENT/")
            for r in proxy.requests
        )


def test_cacher_credentials_come_before_the_aws_chain(cacher, motoenv, moto_s3, tmp_path: Path) -> None:
    env = {**motoenv, "AWS_ACCESS_KEY_ID": "AKIANOTTHISONE", "AWS_SECRET_ACCESS_KEY": "x"}
    with RecordingProxy(moto_s3.endpoint) as proxy:
        assert cacher("exists", "k", extra_env={**env, "CACHER_ENDPOINT": proxy.endpoint}).code == 1
        assert all(moto_s3.key_id in (r.header("Authorization") or "") for r in proxy.requests)


# -- reads pinned on every store ----------------------------------------------------------------


def test_a_store_ignoring_if_match_cannot_mix_two_objects(cacher, motoenv, moto_s3, moto_bucket, tmp_path: Path) -> None:
    """Garage before 1.1 and s3rver ignore If-Match: the object is replaced between the HEAD
    and the first ranged GET; the ETag of the answer no longer matches the HEAD, the read
    starts again on the new object, and the destination holds it whole."""
    first, second = os.urandom(12 << 20), os.urandom(11 << 20)
    client = moto_s3.client()
    client.put_object(Bucket=moto_bucket, Key="pin/a.bin", Body=first)
    replaced: list[str] = []
    lock = threading.Lock()

    def replace_before_first_get(req: Any) -> None:
        with lock:  # the ranged GETs arrive together: one replacement, before any is answered
            if req.method == "GET" and not replaced and "pin/a.bin" in req.target:
                client.put_object(Bucket=moto_bucket, Key="pin/a.bin", Body=second)
                replaced.append(req.target)

    out = tmp_path / "out.bin"
    with RecordingProxy(moto_s3.endpoint) as proxy:
        proxy.drop_request_headers = {"if-match"}
        proxy.on_request = replace_before_first_get
        run = cacher("download", "pin/a.bin", str(out), extra_env={**motoenv, "CACHER_ENDPOINT": proxy.endpoint})
        heads = [r for r in proxy.requests if r.method == "HEAD"]
    assert run.code == 0, run
    assert replaced
    assert out.read_bytes() == second
    assert len(heads) >= 2  # the read started again from a fresh HEAD
    assert not list(tmp_path.glob(".out.bin*"))  # no temporary left beside it


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 301])
def test_a_400_or_301_on_head_names_the_region(cacher, motoenv, moto_s3, status: int) -> None:
    with RecordingProxy(moto_s3.endpoint) as proxy:
        proxy.set_fault(f"status:{status}")
        run = cacher("exists", "k", extra_env={**motoenv, "CACHER_ENDPOINT": proxy.endpoint, "CACHER_REGION": "eu-bad-1"})
    assert_one_error_line(run, f"HTTP {status}", "region", "eu-bad-1")


def test_403_reads_the_same_on_every_path(cacher, motoenv, moto_s3, tmp_path: Path) -> None:
    """One table: the HEAD, the ranged GET and s3fs's list all say "access denied" + one hint."""
    src = tmp_path / "s.bin"
    src.write_bytes(b"x" * 1000)
    assert cacher("upload", "d/a.bin", str(src), extra_env=motoenv).code == 0
    messages = []
    with RecordingProxy(moto_s3.endpoint) as proxy:
        env = {**motoenv, "CACHER_ENDPOINT": proxy.endpoint, "CACHER_MAX_ATTEMPTS": "1"}
        for method, args in (
            ("HEAD", ["exists", "d/a.bin"]),
            ("GET", ["download", "d/a.bin", str(tmp_path / "o")]),
            ("GET", ["list", "d/"]),
        ):
            proxy.reset()
            proxy.set_fault("status:403")
            proxy.fault_match = lambda r, m=method: r.method == m
            run = cacher(*args, extra_env=env)
            assert_one_error_line(run, "access denied", "check the credentials")
            messages.append(run.err)
    assert not (tmp_path / "o").exists()


# -- bounded failure ----------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "needle"), [(["exists", "k"], "no answer within 7.5 s"), (["list"], "timeout")])
def test_a_silent_store_fails_within_30_s(cacher, motoenv, moto_s3, args: list[str], needle: str) -> None:
    """The store accepts connections and never answers: with the defaults, exit 2 in <= 30 s
    (it was about 180 s: 60 s read timeout x 3 attempts), on the hand-signed HEAD and on s3fs's
    LIST alike (metadata_timeout)."""
    with RecordingProxy(moto_s3.endpoint) as proxy:
        proxy.set_fault("stall")
        started = time.monotonic()
        run = cacher(*args, extra_env={**motoenv, "CACHER_ENDPOINT": proxy.endpoint}, timeout=200)
        took = time.monotonic() - started
        asked = len(proxy.requests)
    assert_one_error_line(run, needle)
    assert took <= 30, took
    assert asked == 3  # max_attempts
    print(f"silent store: {args[0]} failed after {took:.1f} s")


def test_soft_fail_remembers_a_dead_store_for_the_job(cacher, motoenv, moto_s3, tmp_path: Path) -> None:
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    with RecordingProxy(moto_s3.endpoint) as proxy:
        proxy.set_fault("stall")
        env = {
            **motoenv,
            "CACHER_ENDPOINT": proxy.endpoint,
            "CACHER_METADATA_TIMEOUT": "1",
            "CACHER_MAX_ATTEMPTS": "2",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_JOB": "build",
            "RUNNER_TEMP": str(runner_temp),
        }
        started = time.monotonic()
        first = cacher("exists", "k", "--soft-fail", extra_env=env)
        first_took = time.monotonic() - started
        assert first.code == 1, first  # soft-fail: a failed store is a miss
        assert first_took >= 2, first_took  # it did wait for the store
        (state,) = runner_temp.glob("cacher-store-down-*.json")
        assert json.loads(state.read_text())["endpoint"] == proxy.endpoint
        asked = len(proxy.requests)

        started = time.monotonic()
        second = cacher("download", "k", str(tmp_path / "d"), "--soft-fail", extra_env=env)
        assert second.code == 3, second  # a miss at once
        assert time.monotonic() - started < 2
        assert len(proxy.requests) == asked  # the store was not asked again
        assert "earlier in this job" in second.err
        assert not (tmp_path / "d").exists()

        other_job = cacher("exists", "k", "--soft-fail", extra_env={**env, "GITHUB_RUN_ID": "4243"})
        assert other_job.code == 1, other_job
        assert len(proxy.requests) > asked  # another job tries the store itself

        without = cacher("exists", "k", extra_env=env)  # no --soft-fail: nothing remembered is used
        assert without.code == 2, without
        assert "earlier in this job" not in without.err


# -- --url s3:// of the store's own bucket ------------------------------------------------------


def test_url_in_the_stores_own_bucket_uses_the_stores_settings(cacher, seaweed_s3, s3_bucket, tmp_path: Path) -> None:
    """`--url s3://<the store's bucket>/…` is read with the store's endpoint and credentials
    (it used to go to AWS with an unconfigured s3fs); nothing in the AWS_* environment."""
    import hashlib

    body = os.urandom(3 << 20)
    seaweed_s3.client().put_object(Bucket=s3_bucket, Key="incoming/tool.bin", Body=body)
    env = {
        "CACHER_ENDPOINT": seaweed_s3.endpoint,
        "CACHER_BUCKET": s3_bucket,
        "CACHER_S3_KEY_ID": seaweed_s3.key_id,
        "CACHER_S3_SECRET": seaweed_s3.secret,
        "CACHER_PREFIX": "proj",
    }
    url = f"s3://{s3_bucket}/incoming/tool.bin"
    dest = tmp_path / "tool.bin"
    run = cacher("download", "tools/t.bin", str(dest), "--url", url, "--sha256", hashlib.sha256(body).hexdigest(), extra_env=env)
    assert run.code == 0, run
    assert dest.read_bytes() == body
    assert seaweed_s3.get_bytes(s3_bucket, "proj/tools/t.bin") == body  # and stored under the key
    run = cacher("url", "upload", "tools/u.bin", url, extra_env=env)
    assert run.code == 0, run
    assert seaweed_s3.get_bytes(s3_bucket, "proj/tools/u.bin") == body
    missing = cacher("download", "tools/m.bin", str(tmp_path / "m"), "--url", f"s3://{s3_bucket}/incoming/none", extra_env=env)
    assert_one_error_line(missing, "not found")
    assert not (tmp_path / "m").exists()


def test_session_token_and_proxy_password_are_never_printed(cacher, motoenv, tmp_path: Path) -> None:
    from cacher.testing.ports import free_port

    token = "IQoJb3JpZ2luX2VjEXAMPLEsessiontoken" + "Z" * 30
    env = {**motoenv, "CACHER_SESSION_TOKEN": token}
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(6 << 20))
    dead_proxy = {**env, "HTTP_PROXY": f"http://u:proxy-pass-4242@127.0.0.1:{free_port()}", "CACHER_MAX_ATTEMPTS": "1"}
    runs = [
        (["upload", "k", str(src), "--debug"], {**env, "S3FS_LOGGING_LEVEL": "DEBUG"}, 0),
        (["exists", "k", "--debug"], env, 0),
        (["download", "k", str(tmp_path / "o"), "--debug", "--json"], env, 0),
        (["list", "--debug"], env, 0),
        (["delete", "k", "--debug"], env, 0),
        (["doctor", "--debug"], env, 0),
        (["exists", "k", "--debug"], dead_proxy, 2),
        (["upload", "k", str(src), "--debug"], dead_proxy, 2),
    ]
    for args, extra, code in runs:
        run = cacher(*args, extra_env=extra)
        assert run.code == code, (args, run)
        for text in (run.out, run.err):
            assert token[:12] not in text and token[-20:] not in text, (args, run)
            assert "proxy-pass-4242" not in text, (args, run)
        if args[0] == "doctor":
            assert f"session token: {len(token)} characters" in run.err, run


def test_soft_fail_remembers_a_store_answering_503(cacher, motoenv, moto_s3, tmp_path: Path) -> None:
    runner_temp = tmp_path / "rt"
    runner_temp.mkdir()
    with RecordingProxy(moto_s3.endpoint) as proxy:
        proxy.set_fault("status:503")
        env = {**motoenv, "CACHER_ENDPOINT": proxy.endpoint, "CI_JOB_ID": "77", "RUNNER_TEMP": str(runner_temp)}
        first = cacher("exists", "k", "--soft-fail", extra_env=env)
        assert first.code == 1, first
        assert "HTTP 503" in first.err
        asked = len(proxy.requests)
        assert asked == 3  # max_attempts
        second = cacher("exists", "k", "--soft-fail", extra_env=env)
        assert second.code == 1, second
        assert "earlier in this job" in second.err
        assert len(proxy.requests) == asked
        assert len(list(runner_temp.glob("cacher-store-down-*.json"))) == 1


def test_a_planted_store_down_memory_is_not_believed(cacher, motoenv, moto_s3, tmp_path: Path) -> None:
    """Issue 25 (files cacher trusts): another user who can write the soft-fail memory's
    directory must not turn a job's cache off; a group/other-writable memory file is ignored."""
    import hashlib

    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir(mode=0o755)
    env = {**motoenv, "CI_JOB_ID": "77", "RUNNER_TEMP": str(runner_temp)}
    digest = hashlib.sha256(f"{motoenv['CACHER_ENDPOINT']}\0CI_JOB_ID=77".encode()).hexdigest()[:20]
    planted = runner_temp / f"cacher-store-down-{digest}.json"
    planted.write_text(json.dumps({"at": time.time(), "endpoint": "x", "reason": "PLANTED"}))
    planted.chmod(0o666)
    run = cacher("exists", "k", "--soft-fail", extra_env=env)
    assert run.code == 1, run
    assert "PLANTED" not in run.err and "earlier in this job" not in run.err, run.err
