"""docker images up and down: cacher against `docker save | zstd | s5cmd pipe` and back."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cacherbench.bench import Bench, Contender, Measurement
from cacherbench.common import ZSTD, untimed
from cacherbench.inputs import Inputs
from cacherbench.proc import shell


def docker_engine() -> str | None:
    """Why docker is skipped, or None when an engine answers."""
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return "skipped: no engine (neither DOCKER_HOST nor /var/run/docker.sock)"
    if not shutil.which("docker"):
        return "skipped: no docker CLI"
    probe = subprocess.run(["docker", "version"], capture_output=True, check=False)
    return None if probe.returncode == 0 else "skipped: the engine did not answer 'docker version'"


def docker(bench: Bench, inputs: Inputs) -> list[Measurement]:
    image = "cacher-bench:latest"
    env_extra = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
    ce, pe = {**bench.cacher_env(), **env_extra}, {**bench.peer_env(), **env_extra}
    importer = shell(f"tar -C {bench.q(inputs.tree)} -cf - . | docker import - {image}")
    untimed(bench, importer, pe)

    def key(tool: str, label: str) -> str:
        return f"docker-up/{tool}/{label}.tar.zst"

    up = bench.compare(
        "docker upload",
        [
            Contender(
                "cacher",
                "cacher docker upload KEY IMAGE",
                ce,
                lambda label: bench.cacher("docker", "upload", key("cacher", label), image),
            ),
            Contender(
                "s5cmd",
                f"docker save IMAGE | {ZSTD} | s5cmd pipe s3://B/KEY",
                pe,
                lambda label: shell(
                    f"docker save {image} | {ZSTD} | "
                    f"{bench.q(bench.s5('pipe', bench.url(key('s5cmd', label))))}"
                ),
            ),
        ],
    )

    def drop_image(label: str) -> None:
        subprocess.run(["docker", "rmi", "-f", image], env=pe, capture_output=True, check=False)

    last = str(bench.runs)
    down = bench.compare(
        "docker download",
        [
            Contender(
                "cacher",
                "cacher docker download KEY IMAGE",
                ce,
                lambda label: bench.cacher("docker", "download", key("cacher", last), image),
                setup=drop_image,
            ),
            Contender(
                "s5cmd",
                "s5cmd cat s3://B/KEY | zstd -d | docker load",
                pe,
                lambda label: shell(
                    f"{bench.q(bench.s5('cat', bench.url(key('s5cmd', last))))} | zstd -d | docker load"
                ),
                setup=drop_image,
            ),
        ],
    )
    return up + down
