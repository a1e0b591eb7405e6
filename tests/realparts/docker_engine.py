"""A private docker engine and a private registry, both on loopback only.

Usage::

    with DockerEngine() as engine, Registry() as registry:
        image_id = build_scratch_image(engine, "t/app:1", {"hello.txt": b"hi"})
        ref = f"{registry.address}/t/app:1"
        engine.docker("tag", image_id, ref)
        engine.docker("push", ref)

:class:`DockerEngine` runs ``dockerd`` with the vfs storage driver and no networking of its own
(``--iptables=false --ip6tables=false --bridge=none``); its socket, data, exec root and pidfile
live in a short temp dir under /tmp (unix socket paths are limited to 108 bytes). Pass
:attr:`DockerEngine.env` to subprocesses (it sets ``DOCKER_HOST`` and a private
``DOCKER_CONFIG``). The engine pushes to and pulls from ``127.0.0.1:PORT`` over plain HTTP
(docker treats 127.0.0.0/8 as an insecure registry by default).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

from cacher.testing.parts import ProcessPart
from cacher.testing.tools import find_tool

from . import PartStartError, PartUnavailable
from .ports import LOOPBACK, free_port

__all__ = ["DockerEngine", "Registry", "build_scratch_image", "find_docker_cli"]


def _find(program: str, package: str) -> str:
    try:
        return find_tool(program)
    except PartUnavailable:
        raise PartUnavailable(f"'{program}' not found (install the Debian package {package})") from None


def find_docker_cli() -> str:
    """The ``docker`` CLI on PATH (raises :class:`PartUnavailable` if missing)."""
    return _find("docker", "docker.io")


class DockerEngine(ProcessPart):
    """A private ``dockerd`` (vfs, no bridge, no iptables) on a unix socket in a temp dir.

    Stopping sends SIGTERM (dockerd shuts its containerd down too) and waits up to 10 s."""

    grace = 10.0

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        start_timeout: float = 60.0,
        docker_cli: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.dockerd = _find("dockerd", "docker.io")
        self.docker_cli = docker_cli or find_docker_cli()
        self._adopt(Path(base_dir or tempfile.mkdtemp(prefix="cde-", dir="/tmp")), own_dir=base_dir is None)
        self.socket_path = self.root / "docker.sock"
        if len(str(self.socket_path)) > 100:
            raise ValueError(f"socket path too long for a unix socket: {self.socket_path}")
        self.host = f"unix://{self.socket_path}"
        self.log_path = self.root / "dockerd.log"
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args or [])
        self.ready_seconds: float | None = None
        env = dict(os.environ)
        env.pop("DOCKER_CONTEXT", None)
        env.pop("DOCKER_TLS_VERIFY", None)
        env.pop("DOCKER_CERT_PATH", None)
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.root / "cli-config")  # no user creds/helpers
        self.env: dict[str, str] = env

    def command(self) -> list[str]:
        r = self.root
        return [
            self.dockerd,
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            f"--data-root={r / 'root'}",
            f"--exec-root={r / 'exec'}",
            f"--pidfile={r / 'docker.pid'}",
            f"--config-file={r / 'daemon.json'}",
            f"-H=unix://{self.socket_path}",
            *self.extra_args,
        ]

    def start(self) -> DockerEngine:
        if self.running:
            raise RuntimeError("DockerEngine is already running")
        if os.geteuid() != 0:
            raise PartUnavailable("dockerd needs root here (rootless docker is not set up)")
        (self.root / "cli-config").mkdir(parents=True, exist_ok=True)
        (self.root / "cli-config" / "config.json").write_text("{}")
        (self.root / "daemon.json").write_text("{}")
        self._spawn(self.command())
        started = time.monotonic()
        deadline = started + self.start_timeout
        last = ""
        try:
            while True:
                if self.proc.poll() is not None:
                    raise PartStartError(
                        f"dockerd exited with code {self.proc.returncode};"
                        f" log {self.log_path}:\n{self.log_tail()}"
                    )
                if self.socket_path.exists():
                    res = self.docker("version", check=False, timeout=10)
                    if res.returncode == 0:
                        break
                    last = res.stderr.decode(errors="replace").strip()
                if time.monotonic() > deadline:
                    raise PartStartError(
                        f"dockerd not ready after {self.start_timeout:.0f} s ({last});"
                        f" log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(0.1)
        except BaseException:
            self.stop(grace=0)
            raise
        self.ready_seconds = time.monotonic() - started
        return self

    def docker(
        self,
        *args: str,
        check: bool = True,
        input: bytes | None = None,
        timeout: float = 120.0,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the docker CLI against this engine; raises with stderr if ``check`` fails."""
        full_env = {**self.env, **(env or {})}
        res = subprocess.run(
            [self.docker_cli, *args],
            env=full_env,
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and res.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} failed ({res.returncode}):\n{res.stderr.decode(errors='replace')}"
            )
        return res

    def image_id(self, ref: str) -> str | None:
        """The ID (``sha256:...``) of a local image, or None if there is none."""
        res = self.docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        return res.stdout.decode().strip() if res.returncode == 0 else None

    def image_ids(self) -> list[str]:
        """IDs of all local images."""
        out = self.docker("images", "-q", "--no-trunc").stdout.decode()
        return sorted({line.strip() for line in out.splitlines() if line.strip()})


def build_scratch_image(
    engine: DockerEngine,
    tag: str,
    files: dict[str, bytes],
    *,
    method: Literal["build", "import"] = "build",
    labels: dict[str, str] | None = None,
) -> str:
    """Make a ``FROM scratch`` image holding ``files`` (path -> bytes); return its ID.

    ``build``: ``DOCKER_BUILDKIT=0 docker build`` of a temp context (one layer, labels
    allowed); ``import``: ``docker import`` of a tar made here (faster, no image config).
    """
    if method == "import":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in sorted(files.items()):
                info = tarfile.TarInfo(name.lstrip("/"))
                info.size = len(data)
                info.mode = 0o644
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
        res = engine.docker("import", "-", tag, input=buf.getvalue())
        return res.stdout.decode().strip()
    with tempfile.TemporaryDirectory(prefix="cdb-") as ctx:
        rootfs = Path(ctx) / "rootfs"
        rootfs.mkdir()
        for name, data in files.items():
            target = rootfs / name.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        lines = ["FROM scratch", "COPY rootfs/ /"]
        for key, value in sorted((labels or {}).items()):
            lines.append(f"LABEL {json.dumps(key)}={json.dumps(value)}")
        (Path(ctx) / "Dockerfile").write_text("\n".join(lines) + "\n")
        engine.docker("build", "-q", "-t", tag, ctx, env={"DOCKER_BUILDKIT": "0"})
    image_id = engine.image_id(tag)
    if image_id is None:
        raise RuntimeError(f"docker build did not produce {tag}")
    return image_id


class Registry(ProcessPart):
    """``docker-registry serve`` with filesystem storage on 127.0.0.1:``port``."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        start_timeout: float = 30.0,
    ) -> None:
        self.binary = _find("docker-registry", "docker-registry")
        self._adopt(Path(base_dir or tempfile.mkdtemp(prefix="cacher-registry-")), own_dir=base_dir is None)
        self.storage_dir = self.root / "storage"
        self.config_path = self.root / "config.yml"
        self.log_path = self.root / "registry.log"
        self.port = port or free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        self.url = f"http://{self.address}"
        self.start_timeout = start_timeout
        self.ready_seconds: float | None = None

    def _config(self) -> str:
        # JSON is YAML: no YAML writer needed.
        return json.dumps(
            {
                "version": 0.1,
                "log": {"level": "info", "accesslog": {"disabled": False}},
                "storage": {
                    "filesystem": {"rootdirectory": str(self.storage_dir)},
                    "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}},
                },
                "http": {"addr": self.address, "secret": "realparts-not-secret"},
            },
            indent=2,
        )

    def start(self) -> Registry:
        if self.running:
            raise RuntimeError("Registry is already running")
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config())
        env = dict(os.environ)
        # The Debian package reads REGISTRY_* env vars as config overrides: keep ours.
        for key in [k for k in env if k.startswith("REGISTRY_")]:
            del env[key]
        self._spawn([self.binary, "serve", str(self.config_path)], env)
        started = time.monotonic()
        deadline = started + self.start_timeout
        try:
            while not self._answers():
                if self.proc.poll() is not None:
                    raise PartStartError(
                        f"docker-registry exited with code {self.proc.returncode};"
                        f" log {self.log_path}:\n{self.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise PartStartError(
                        f"docker-registry not ready at {self.url} after"
                        f" {self.start_timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(0.05)
        except BaseException:
            self.stop(grace=0)
            raise
        self.ready_seconds = time.monotonic() - started
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as resp:
                return int(resp.status) == 200
        except (OSError, urllib.error.URLError):
            return False

    def catalog(self) -> list[str]:
        """Repository names the registry holds."""
        with urllib.request.urlopen(f"{self.url}/v2/_catalog", timeout=10) as resp:
            repos: list[str] = json.loads(resp.read()).get("repositories") or []
        return repos

    def tags(self, name: str) -> list[str]:
        """Tags of repository ``name`` ([] if it does not exist)."""
        try:
            with urllib.request.urlopen(f"{self.url}/v2/{name}/tags/list", timeout=10) as resp:
                tags: list[str] = json.loads(resp.read()).get("tags") or []
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise
        return tags

