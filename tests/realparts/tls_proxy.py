"""Real TLS and proxies on loopback: a CA made with openssl, nginx as a TLS reverse proxy, and
tinyproxy as a forward proxy (all from Debian: ``openssl``, ``nginx``, ``tinyproxy``).

- `make_ca(dir)`: a private CA and a server certificate for ``IP:127.0.0.1``, as a company's
  internal CA would sign a self-hosted Garage or MinIO;
- `Nginx(upstream, ca)`: TLS on 127.0.0.1:port in front of ``upstream`` (SeaweedFS). It
  forwards ``Host`` as the client sent it, or, with ``host_without_port=True``, as ``$host``
  (no port), which is what trips a signer that signs ``host:443``;
- `Tinyproxy()`: an HTTP forward proxy (absolute URIs and ``CONNECT``) that logs each request.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cacher.testing.parts import PartStartError, ProcessPart
from cacher.testing.ports import LOOPBACK, free_port, port_open
from cacher.testing.tools import find_tool

__all__ = ["CA", "Nginx", "Tinyproxy", "make_ca"]


@dataclass(frozen=True)
class CA:
    cert: Path  # the CA certificate: what ca_bundle names
    server_cert: Path
    server_key: Path


def make_ca(directory: Path) -> CA:
    """A CA and a certificate it signed for 127.0.0.1 (SAN IP), with openssl."""
    openssl = find_tool("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert),
        "-days", "2", "-subj", "/CN=cacher test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return CA(ca_cert, cert, key)


def _wait(part: ProcessPart, port: int, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert part.proc is not None
        if part.proc.poll() is not None:
            raise PartStartError(f"{what} exited with code {part.proc.returncode}:\n{part.log_tail()}")
        if port_open(LOOPBACK, port):
            return
        time.sleep(0.05)
    raise PartStartError(f"{what} did not listen on {LOOPBACK}:{port}:\n{part.log_tail()}")


class Nginx(ProcessPart):
    """nginx terminating TLS on 127.0.0.1:``port`` and proxying to ``upstream`` (http)."""

    grace = 2.0

    def __init__(self, upstream: str, ca: CA, *, port: int | None = None, host_without_port: bool = False) -> None:
        self.nginx = find_tool("nginx")
        self._adopt(Path(tempfile.mkdtemp(prefix="cacher-nginx-")), own_dir=True)
        self.log_path = self.root / "error.log"
        self.port = port or free_port()
        self.endpoint = f"https://{LOOPBACK}:{self.port}"
        self.upstream, self.ca = upstream.rstrip("/"), ca
        self.host_header = "$host" if host_without_port else "$http_host"

    def config(self) -> str:
        r = self.root
        return f"""
daemon off;
master_process off;
worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {r}/access.log;
    client_body_temp_path {r}/body;
    proxy_temp_path {r}/proxy;
    fastcgi_temp_path {r}/fastcgi;
    uwsgi_temp_path {r}/uwsgi;
    scgi_temp_path {r}/scgi;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    server {{
        listen {LOOPBACK}:{self.port} ssl;
        ssl_certificate {self.ca.server_cert};
        ssl_certificate_key {self.ca.server_key};
        location / {{
            proxy_pass {self.upstream};
            proxy_http_version 1.1;
            proxy_set_header Host {self.host_header};
            proxy_set_header Connection "";
            proxy_read_timeout 120s;
        }}
    }}
}}
"""

    def start(self) -> Nginx:
        conf = self.root / "nginx.conf"
        conf.write_text(self.config())
        with open(self.root / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(
                [self.nginx, "-p", str(self.root), "-e", str(self.log_path), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(self, self.port, "nginx")
        return self

    def access_log(self) -> str:
        try:
            return (self.root / "access.log").read_text()
        except FileNotFoundError:
            return ""


class Tinyproxy(ProcessPart):
    """tinyproxy on 127.0.0.1:port; `requests` reads what it relayed from its log."""

    grace = 2.0

    def __init__(self, *, basic_auth: tuple[str, str] | None = None) -> None:
        """``basic_auth``: (user, password) the proxy demands (407 without them)."""
        self.basic_auth = basic_auth
        self.tinyproxy = find_tool("tinyproxy")
        self._adopt(Path(tempfile.mkdtemp(prefix="cacher-tinyproxy-")), own_dir=True)
        self.log_path = self.root / "tinyproxy.log"
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Tinyproxy:
        conf = self.root / "tinyproxy.conf"
        conf.write_text(
            f"Port {self.port}\nListen {LOOPBACK}\nTimeout 300\nMaxClients 64\n"
            f'LogFile "{self.log_path}"\nLogLevel Connect\nPidFile "{self.root / "tinyproxy.pid"}"\n'
            f"Allow {LOOPBACK}\nDisableViaHeader Yes\n"
            + (f"BasicAuth {self.basic_auth[0]} {self.basic_auth[1]}\n" if self.basic_auth else "")
        )
        os.chmod(self.root, 0o755)
        with open(self.root / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(
                [self.tinyproxy, "-d", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(self, self.port, "tinyproxy")
        return self

    def requests(self) -> list[str]:
        """The request lines tinyproxy relayed (``CONNECT host:port``, ``GET http://…``)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line.split(": ", 2)[-1] for line in text.splitlines() if "Request (file descriptor" in line]
