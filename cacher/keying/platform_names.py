"""This machine's OS and CPU in Go's names (``linux``, ``amd64``), as the Go tool spelled them."""

from __future__ import annotations

import os
import sys

_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
_OS = {"linux": "linux", "darwin": "darwin", "win32": "windows", "cygwin": "windows"}


def go_os() -> str:
    for prefix, name in _OS.items():
        if sys.platform.startswith(prefix):
            return name
    return sys.platform.rstrip("0123456789")


def go_arch() -> str:
    if hasattr(os, "uname"):
        machine = os.uname().machine  # what platform.machine() returns, without importing it
    else:
        import platform

        machine = platform.machine()
    return _ARCH.get(machine.lower(), machine.lower())
