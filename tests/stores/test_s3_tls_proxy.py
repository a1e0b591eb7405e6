"""TLS with a private CA, the Host rule, and forward proxies, on every request path, through the
installed ``cacher``: nginx (TLS reverse proxy) in front of SeaweedFS with a CA made by the
test (openssl), tinyproxy as the forward proxy. SeaweedFS checks every signature, so a request
that signed the wrong ``Host`` fails here as it fails behind a real gateway."""

from __future__ import annotations

import fcntl
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cacher.testing.fixtures import require_part
from cacher.testing.parts import PartUnavailable
from tests.conftest import assert_one_error_line

DATA = os.urandom(6 << 20) + b"tls"  # above one 5 MiB part: a real multipart upload
SYSTEM_BUNDLE = next(
    (p for p in ("/etc/ssl/certs/ca-certificates.crt", ssl.get_default_verify_paths().openssl_cafile) if os.path.isfile(p)),
    "",
)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.realparts.tls_proxy import make_ca

    try:
        return make_ca(tmp_path_factory.mktemp("ca"))
    except PartUnavailable as exc:
        require_part(str(exc))


@pytest.fixture(scope="module")
def nginx(seaweed_s3: Any, ca: Any) -> Iterator[Any]:
    from tests.realparts.tls_proxy import Nginx

    try:
        part = Nginx(seaweed_s3.endpoint, ca)
    except PartUnavailable as exc:
        require_part(str(exc))
    with part:
        yield part


@pytest.fixture
def tinyproxy() -> Iterator[Any]:
    from tests.realparts.tls_proxy import Tinyproxy

    try:
        part = Tinyproxy()
    except PartUnavailable as exc:
        require_part(str(exc))
    with part:
        yield part


@pytest.fixture
def base(seaweed_s3: Any, s3_bucket: str) -> dict[str, str]:
    """Credentials and bucket; the machine's CA variables replaced by the system store."""
    return {
        "CACHER_BUCKET": s3_bucket,
        "CACHER_S3_KEY_ID": seaweed_s3.key_id,
        "CACHER_S3_SECRET": seaweed_s3.secret,
        "CACHER_PART_SIZE_MB": "5",
        "CACHER_MAX_ATTEMPTS": "1",
        "SSL_CERT_FILE": SYSTEM_BUNDLE,
    }


@pytest.fixture(autouse=True)
def _no_machine_proxies(env: dict[str, str]) -> None:
    """An empty lower-case variable unsets its upper-case one: the machine's go, not blanked."""
    for name in [n for n in env if n.lower() in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")]:
        del env[name]


PATHS = ("upload", "exists", "download", "list", "delete", "exists-miss")


def every_path(cacher: Any, env: dict[str, str], tmp_path: Path, after: Any = None) -> None:
    """Each request path once, each must succeed; ``after(name)`` runs after each command.

    These paths are about routing, not retries: a proxy may close a kept-alive connection just
    as the client reuses it (tinyproxy did, under load, about one upload in ten with one
    attempt), which cacher's default attempts retry. So the paths run with three attempts, as
    a job would; the refusal and TLS tests keep ``base``'s single attempt."""
    env = {**env, "CACHER_MAX_ATTEMPTS": "3"}
    src, out = tmp_path / "src.bin", tmp_path / "out.bin"
    src.write_bytes(DATA)
    key = f"tls/{tmp_path.name}.bin"
    commands = {
        "upload": (["upload", key, str(src)], 0),
        "exists": (["exists", key], 0),
        "download": (["download", key, str(out)], 0),
        "list": (["list", "tls/"], 0),
        "delete": (["delete", key], 0),
        "exists-miss": (["exists", key], 1),
    }
    for name in PATHS:
        args, code = commands[name]
        run = cacher(*args, extra_env=env)
        assert run.code == code, (name, run)
        if after is not None:
            after(name)
    assert out.read_bytes() == DATA


def every_path_fails(cacher: Any, env: dict[str, str], tmp_path: Path, *needles: str) -> None:
    src, out = tmp_path / "src.bin", tmp_path / "out.bin"
    src.write_bytes(DATA)
    for args in (["upload", "tls/f.bin", str(src)], ["exists", "k"], ["download", "k", str(out)], ["list"], ["delete", "k"]):
        run = cacher(*args, extra_env=env)
        assert_one_error_line(run, *needles)
    assert not out.exists()


# -- CA bundle --------------------------------------------------------------------------------


def test_ca_bundle_setting_on_every_path(cacher, base, nginx, ca, tmp_path: Path) -> None:
    env = {**base, "CACHER_ENDPOINT": nginx.endpoint, "CACHER_CA_BUNDLE": str(ca.cert)}
    every_path(cacher, env, tmp_path)


def test_ca_bundle_flag(cacher, base, nginx, ca, tmp_path: Path) -> None:
    env = {**base, "CACHER_ENDPOINT": nginx.endpoint}
    assert cacher("exists", "nope", "--ca-bundle", str(ca.cert), extra_env=env).code == 1
    run = cacher("exists", "nope", "--ca-bundle", str(tmp_path / "missing.pem"), extra_env=env)
    assert_one_error_line(run, "missing.pem", "--ca-bundle")


@pytest.mark.parametrize("variable", ["AWS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_either_standard_variable_works_on_every_path(cacher, base, nginx, ca, variable: str, tmp_path: Path) -> None:
    """botocore reads AWS_CA_BUNDLE, Python's ssl SSL_CERT_FILE: either one now serves both."""
    env = {**base, "CACHER_ENDPOINT": nginx.endpoint, variable: str(ca.cert)}
    every_path(cacher, env, tmp_path)


def test_unknown_ca_fails_every_path_with_one_line(cacher, base, nginx, tmp_path: Path) -> None:
    env = {**base, "CACHER_ENDPOINT": nginx.endpoint}
    every_path_fails(cacher, env, tmp_path, "CERTIFICATE_VERIFY_FAILED", "ca_bundle")


# -- the Host rule ------------------------------------------------------------------------------


@pytest.fixture
def nginx_on_443(seaweed_s3: Any, ca: Any) -> Iterator[Any]:
    """nginx on 127.0.0.1:443 forwarding ``Host`` without the port ($host), as gateways do.

    The default port is the point of the test, so the port is fixed: a lock file serialises
    test runs on one machine, and a port held by something else fails the test."""
    from tests.realparts.tls_proxy import Nginx

    if os.geteuid() != 0:
        require_part("binding 127.0.0.1:443 needs root")
    with open("/tmp/cacher-test-port-443.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            part = Nginx(seaweed_s3.endpoint, ca, port=443, host_without_port=True)
        except PartUnavailable as exc:
            require_part(str(exc))
        with part:
            yield part


def test_host_is_signed_without_the_default_port_on_every_path(cacher, base, nginx_on_443, ca, tmp_path: Path) -> None:
    """Behind a gateway that forwards ``Host: 127.0.0.1`` (no port), a signature over
    ``host:127.0.0.1:443`` fails; botocore drops the default port and so does cacher now."""
    env = {**base, "CACHER_ENDPOINT": "https://127.0.0.1:443", "CACHER_CA_BUNDLE": str(ca.cert)}
    every_path(cacher, env, tmp_path)


# -- proxies ------------------------------------------------------------------------------------


def _grows(proxy: Any, what: str) -> Any:
    seen = [len(proxy.requests())]

    def check(name: str) -> None:
        time.sleep(0.05)  # tinyproxy writes its log line as it relays
        now = len(proxy.requests())
        assert now > seen[0], f"{name} did not go through the {what}"
        seen[0] = now

    return check


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_https_proxy_on_every_path(cacher, base, nginx, ca, tinyproxy, variable: str, tmp_path: Path) -> None:
    env = {**base, "CACHER_ENDPOINT": nginx.endpoint, "CACHER_CA_BUNDLE": str(ca.cert), variable: tinyproxy.url}
    every_path(cacher, env, tmp_path, after=_grows(tinyproxy, "HTTPS proxy"))
    assert all(r.startswith(f"CONNECT 127.0.0.1:{nginx.port} ") for r in tinyproxy.requests())


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
def test_http_proxy_on_every_path(cacher, base, seaweed_s3, tinyproxy, variable: str, tmp_path: Path) -> None:
    env = {**base, "CACHER_ENDPOINT": seaweed_s3.endpoint, variable: tinyproxy.url}
    every_path(cacher, env, tmp_path, after=_grows(tinyproxy, "HTTP proxy"))
    assert all(r.split()[1].startswith(f"{seaweed_s3.endpoint}/") for r in tinyproxy.requests())


def test_no_proxy_bypasses_the_proxy_on_every_path(cacher, base, nginx, ca, tinyproxy, tmp_path: Path) -> None:
    env = {
        **base,
        "CACHER_ENDPOINT": nginx.endpoint,
        "CACHER_CA_BUNDLE": str(ca.cert),
        "HTTPS_PROXY": tinyproxy.url,
        "HTTP_PROXY": tinyproxy.url,
        "NO_PROXY": "example.com,127.0.0.1",
    }
    every_path(cacher, env, tmp_path)
    assert tinyproxy.requests() == []


def test_a_dead_proxy_fails_every_path_with_one_line(cacher, base, nginx, ca, tmp_path: Path) -> None:
    from cacher.testing.ports import free_port

    env = {
        **base,
        "CACHER_ENDPOINT": nginx.endpoint,
        "CACHER_CA_BUNDLE": str(ca.cert),
        "HTTPS_PROXY": f"http://user:proxy-password-123@127.0.0.1:{free_port()}",
    }
    every_path_fails(cacher, env, tmp_path)
    run = cacher("exists", "k", extra_env=env)
    assert "proxy-password-123" not in run.out + run.err


@pytest.fixture
def locked_proxy() -> Iterator[Any]:
    """tinyproxy demanding Basic credentials: 407 to anyone without them."""
    from tests.realparts.tls_proxy import Tinyproxy

    try:
        part = Tinyproxy(basic_auth=("ci", "right-password"))
    except PartUnavailable as exc:
        require_part(str(exc))
    with part:
        yield part


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_proxy_refusal_names_the_proxy_not_the_store(
    cacher, base, nginx, ca, seaweed_s3, locked_proxy, scheme: str, tmp_path: Path
) -> None:
    """Issue 27 item 3: a proxy's 407 read 'the store answered HTTP 407' (tinyproxy sends 401)."""
    url = locked_proxy.url.replace("http://", "http://ci:wrong-password-456@")
    if scheme == "https":
        env = {**base, "CACHER_ENDPOINT": nginx.endpoint, "CACHER_CA_BUNDLE": str(ca.cert), "HTTPS_PROXY": url}
    else:
        env = {**base, "CACHER_ENDPOINT": seaweed_s3.endpoint, "HTTP_PROXY": url}
    every_path_fails(cacher, env, tmp_path, f"the proxy 127.0.0.1:{locked_proxy.port} refused", "hint: check the proxy's credentials")
    run = cacher("exists", "k", extra_env=env)
    assert "store answered" not in run.err and "wrong-password-456" not in run.out + run.err, run
    # With the right credentials every path works through it.
    env = {k: v.replace("wrong-password-456", "right-password") for k, v in env.items()}
    every_path(cacher, env, tmp_path)
