"""The one HEAD of ``cacher exists`` (cacher/stores/s3/head.py): sent without http.client,
answered by a real server, and what the command then does not import (issue 29)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cacher.config import Settings
from cacher.stores.s3.head import LIMIT, BadAnswer
from cacher.stores.s3.rest import S3Http, http_date
from cacher.stores.s3.transport import resolve

#: What the plain path of ``cacher exists`` must not import (each costs milliseconds); ssl
#: too, for an http:// endpoint (SeaweedFS here).
NOT_ON_THE_PLAIN_PATH = ("http.client", "email", "ssl", "logging", "concurrent.futures", "s3fs", "botocore")


class OneAnswer:
    """A loopback server that reads one request head and answers with fixed bytes, then closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.heads: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head and (piece := conn.recv(4096)):
                    head += piece
                self.heads.append(head)
                conn.sendall(self.answer)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[OneAnswer] = []

    def start(answer: bytes) -> tuple[OneAnswer, S3Http]:
        server = OneAnswer(answer)
        servers.append(server)
        environ = {"CACHER_S3_KEY_ID": "id", "CACHER_S3_SECRET": "secret"}
        settings = Settings(
            backend="s3", bucket="b", endpoint=f"http://127.0.0.1:{server.port}", max_attempts=1,
            metadata_timeout=5.0,
        )
        return server, S3Http(resolve(settings, environ))

    yield start
    for server in servers:
        server.close()


def test_a_hit_reads_status_size_date_etag_and_metadata(serve: Any) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nLast-Modified: Mon, 07 Dec 2026 17:22:22 GMT\r\n"
        b'ETag: "abc"\r\nx-amz-meta-cacher-kind: file\r\nX-Amz-Meta-Cacher-Codec: none\r\n\r\n'
    )
    server, http = serve(answer)
    head = http.head("b", "some key")
    assert (head.status, head.size, head.etag) == (200, 42, '"abc"')
    assert head.modified == datetime(2026, 12, 7, 17, 22, 22, tzinfo=UTC)
    assert head.metadata == {"cacher-kind": "file", "cacher-codec": "none"}
    sent = server.heads[0].decode()
    assert sent.startswith("HEAD /b/some%20key HTTP/1.1\r\n")
    assert "Authorization: AWS4-HMAC-SHA256 " in sent and f"host: 127.0.0.1:{server.port}" in sent


def test_a_miss_is_a_404_answer(serve: Any) -> None:
    _, http = serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert http.head("b", "k").status == 404


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"", "without an answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "in the middle of an answer"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\n" + b"x-amz-meta-a: b\r\n" * (LIMIT // 10), f"past {LIMIT} bytes"),
    ],
)
def test_an_answer_that_is_not_one_fails_as_the_transport(serve: Any, answer: bytes, words: str) -> None:
    """A garbled answer is an OSError (BadAnswer), which the store's table words as a failed
    request: what http.client's BadStatusLine or RemoteDisconnected were."""
    _, http = serve(answer)
    with pytest.raises(OSError, match=words) as caught:
        http.head("b", "k")
    assert isinstance(caught.value, OSError)
    assert issubclass(BadAnswer, ConnectionError)


def test_http_dates() -> None:
    assert http_date("Mon, 07 Dec 2026 17:22:22 GMT") == datetime(2026, 12, 7, 17, 22, 22, tzinfo=UTC)
    assert http_date("Monday, 07-Dec-26 17:22:22 GMT") == datetime(2026, 12, 7, 17, 22, 22, tzinfo=UTC)
    assert http_date("no date at all") is None


@pytest.mark.s3
def test_exists_imports_nothing_it_does_not_need(
    s3_bucket: str, seaweed_s3: Any, env: dict[str, str], tmp_path: Path
) -> None:
    """The plain path of ``cacher exists`` (hit and miss) goes without http.client, the email
    package, ssl (over http), logging and concurrent.futures: a HEAD reads a status line and a
    few headers."""
    s3env = {
        "CACHER_ENDPOINT": seaweed_s3.endpoint,
        "CACHER_BUCKET": s3_bucket,
        "CACHER_S3_KEY_ID": seaweed_s3.key_id,
        "CACHER_S3_SECRET": seaweed_s3.secret,
    }
    seaweed_s3.client().put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    code = (
        "import sys\n"
        "from cacher.cli import main\n"
        "hit, miss = main(['exists', 'k']), main(['exists', 'nope'])\n"
        f"print('LOADED', [m for m in {NOT_ON_THE_PLAIN_PATH!r} if m in sys.modules], hit, miss)\n"
    )
    # The first command of a fresh HOME builds the entry-point index (importlib.metadata and
    # stevedore import email and logging); every later one reads it.
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], env={**env, **s3env}, capture_output=True,
                              text=True, check=False, cwd=tmp_path)
        assert proc.returncode == 0, proc
    assert "LOADED [] 0 1" in proc.stdout, proc


class _Answered:
    """The bytes of an answer as http.client's socket: what `HTTPResponse` reads from."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> Any:
        import io

        return io.BytesIO(self.data)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nETag: \"e1\"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length:   7   \r\nETAG:\t\"e2\"\r\nX-AMZ-META-Cacher-Kind:  dir \r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nLast-Modified: Tue, 01 Dec 2026 01:02:03 GMT\r\n\r\n",
        b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 412 Precondition Failed\r\nx-amz-meta-a: one: two\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-amz-meta-sha256: ABC\r\nx-amz-meta-empty:\r\n\r\n",
    ],
)
def test_the_hand_read_head_agrees_with_http_client(serve: Any, answer: bytes) -> None:
    """head.py reads what http.client reads from the same bytes: status, size, ETag, date and
    the x-amz-meta-* headers (the library's behaviour is the reference for the hand-written one).
    One deliberate difference: a value's trailing whitespace is not part of it (RFC 9110 5.5),
    which http.client keeps."""
    import http.client

    reference = http.client.HTTPResponse(_Answered(answer), method="HEAD")  # type: ignore[arg-type]
    reference.begin()
    _, http_ = serve(answer)
    ours = http_.head("b", "k")
    assert ours.status == reference.status
    if reference.status != 200:
        return
    assert ours.size == int(reference.getheader("content-length") or 0)
    assert ours.etag == reference.getheader("etag")
    modified = reference.getheader("last-modified")
    assert (ours.modified is None) == (modified is None)
    if modified is not None:
        import email.utils

        assert ours.modified == email.utils.parsedate_to_datetime(modified)
    expected = {
        name.lower()[len("x-amz-meta-"):]: value.strip()
        for name, value in reference.getheaders()
        if name.lower().startswith("x-amz-meta-")
    }
    assert ours.metadata == expected
