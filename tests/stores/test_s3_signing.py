"""The hand-signed HEAD/GET path held byte for byte to botocore's own signer.

cacher signs HEADs and ranged GETs itself (importing ``botocore.auth`` and urllib3 would cost
about 0.07 s of every start; docs/architecture.md has the numbers). These tests keep that
signer honest: for the same request, botocore's ``S3SigV4Auth`` must produce the same
canonical request and the same ``Authorization`` header, and a real botocore client must quote
every key into the same path: keys with every special character, default and explicit ports,
an endpoint with a base path, with and without a session token.
"""

from __future__ import annotations

import calendar
import datetime
import os
import string
from typing import Any

import pytest

from cacher import config
from cacher.stores.s3 import transport as s3_transport
from cacher.stores.s3.rest import S3Http, canonical_request

WHEN = datetime.datetime(2026, 11, 30, 12, 34, 56)
KEYS = [
    "plain/key.tar.zst",
    string.punctuation.replace("/", "") + "/x",  # every ASCII special character
    "spaces and+plus/%41 literal percent",
    "ünïcødé/ключ/空 格.bin",
    "tilde~under_score-dash.dot/..../a",
    "a//double/slash",
    "trailing/",
]
ENDPOINTS = [
    "http://127.0.0.1:80",  # default port: signed without it
    "https://s3.example.com:443",
    "https://s3.example.com",
    "http://127.0.0.1:8333",  # explicit port: signed with it
    "https://[::1]:9443",
    "https://gateway.example.com/base/path",  # a base path in front of the bucket
]
TOKENS = [None, "FwoGZXIvYXdzE//token+with/special=chars=="]


class _Raw:
    def stream(self) -> list[bytes]:
        return []


def _http(endpoint: str, token: str | None) -> S3Http:
    flags: dict[str, Any] = {"backend": "s3", "endpoint": endpoint, "bucket": "b", "region": "eu-west-3"}
    if token:
        flags["session_token"] = token
    settings = config.load({}, flags, config_flag=os.devnull)
    environ = {"CACHER_S3_KEY_ID": "AKIDEXAMPLE", "CACHER_S3_SECRET": "wJalr/XUtnFEMI+K7MDENG=bPxRfiCY"}
    return S3Http(s3_transport.resolve(settings, environ))


def _botocore_signed(url: str, method: str, token: str | None, monkeypatch: pytest.MonkeyPatch) -> Any:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: WHEN)
    creds = botocore.credentials.Credentials("AKIDEXAMPLE", "wJalr/XUtnFEMI+K7MDENG=bPxRfiCY", token)
    request = botocore.awsrequest.AWSRequest(method=method, url=url, headers={})
    signer = botocore.auth.S3SigV4Auth(creds, "s3", "eu-west-3")
    signer.add_auth(request)
    return signer, request


@pytest.mark.parametrize("token", TOKENS, ids=["keys", "session-token"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_signature_matches_botocore(endpoint: str, token: str | None, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _http(endpoint, token)
    now = datetime.datetime.fromtimestamp(calendar.timegm(WHEN.timetuple()), datetime.UTC).timetuple()
    for key in KEYS:
        path = client.object_path("bucket", key)
        ours = client.sign(method, path, now=now)
        signer, theirs = _botocore_signed(f"{client.scheme}://{client.netloc}{path}", method, token, monkeypatch)
        mine = canonical_request(method, path, {k: v for k, v in ours.items() if k != "Authorization"})
        authorization = theirs.headers["Authorization"]
        del theirs.headers["Authorization"]  # as it was when botocore signed it
        assert mine == signer.canonical_request(theirs), key
        assert ours["Authorization"] == authorization, key
        assert ours["host"] == signer.headers_to_sign(theirs)["host"], key
        if token:
            assert ours["x-amz-security-token"] == token


def test_host_is_signed_without_the_default_port() -> None:
    assert _http("https://s3.example.com:443", None).sign("HEAD", "/b")["host"] == "s3.example.com"
    assert _http("http://127.0.0.1:80", None).sign("HEAD", "/b")["host"] == "127.0.0.1"
    assert _http("http://127.0.0.1:8333", None).sign("HEAD", "/b")["host"] == "127.0.0.1:8333"
    assert _http("https://h:80", None).sign("HEAD", "/b")["host"] == "h:80"  # 80 is not https's


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8333", "https://gateway.example.com/base/path"])
def test_keys_are_quoted_as_a_botocore_client_quotes_them(endpoint: str) -> None:
    """A real botocore client (path style) serializes HeadObject; its path is ours."""
    import botocore.awsrequest
    import botocore.config
    import botocore.session

    seen: list[str] = []

    def capture(request: Any, **_: Any) -> Any:
        seen.append(request.url)
        return botocore.awsrequest.AWSResponse(request.url, 200, {}, _Raw())

    s3 = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-3",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )
    s3.meta.events.register("before-send.s3.HeadObject", capture)
    client = _http(endpoint, None)
    import urllib.parse

    for key in KEYS:
        s3.head_object(Bucket="bucket", Key=key)
        assert urllib.parse.urlsplit(seen[-1]).path == client.object_path("bucket", key), key
