"""A second, independent S3 implementation on loopback: moto's server (PyPI ``moto[server]``).

moto serves S3 and STS from one port. It does **not** check signatures (a wrong secret is
accepted), so signature tests stay on SeaweedFS; it does evaluate ``If-Match`` (412), ranges,
multipart uploads, metadata and listings, which makes it a conformance peer, and its STS
answers ``AssumeRoleWithWebIdentity``, which makes a real test of web-identity credentials.

Usage::

    with MotoS3() as s3:
        s3.make_bucket("b")
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from cacher.testing.parts import PartStartError, S3Part
from cacher.testing.ports import LOOPBACK, free_port
from cacher.testing.seaweed import s3_client
from cacher.testing.tools import find_tool

__all__ = ["MotoS3"]


class MotoS3(S3Part):
    """``moto_server`` on 127.0.0.1 and a free port; a context manager."""

    grace = 2.0

    def __init__(
        self, base_dir: str | os.PathLike[str] | None = None, *, start_timeout: float = 60.0
    ) -> None:
        self.moto = find_tool("moto_server")
        self._adopt(Path(base_dir or tempfile.mkdtemp(prefix="cacher-moto-")), own_dir=base_dir is None)
        self.log_path = self.root / "moto.log"
        self.port = free_port()
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        self.key_id = "AK" + secrets.token_hex(8).upper()
        self.secret = secrets.token_urlsafe(30)
        self.start_timeout = start_timeout
        self._client: Any = None

    def start(self) -> MotoS3:
        if self.running:
            raise RuntimeError("MotoS3 is already running")
        self.root.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["HOME"] = str(self.root)
        proc = self._spawn([self.moto, "-H", LOOPBACK, "-p", str(self.port)], env)
        deadline = time.monotonic() + self.start_timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise PartStartError(
                    f"moto_server exited with code {proc.returncode};"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    return self
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        self.stop(0)
        raise PartStartError(f"moto_server at {self.endpoint} not ready (last: {last}):\n{self.log_tail()}")

    def client(self, service: str = "s3") -> Any:
        """A botocore client for this server (S3 path style, or ``sts``)."""
        if service == "s3":
            return s3_client(self.endpoint, self.key_id, self.secret)
        import botocore.session

        return botocore.session.get_session().create_client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def _shared_client(self) -> Any:
        if self._client is None:
            self._client = self.client()
        return self._client
