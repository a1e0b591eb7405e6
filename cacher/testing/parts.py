"""Errors of the real parts the kit starts (SeaweedFS)."""

from __future__ import annotations

__all__ = ["PartStartError", "PartUnavailable"]


class PartUnavailable(Exception):
    """A real part cannot run on this machine (program not installed, not root, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PartStartError(RuntimeError):
    """A real part is installed but did not come up; the message carries its log tail."""
