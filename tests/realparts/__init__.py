"""Real servers on loopback for the test suite.

Every part binds to 127.0.0.1 only and picks free ports, so two test runs cannot collide.

Parts:

- :class:`tests.realparts.seaweed.SeaweedS3`: a SeaweedFS ``weed server`` with S3 and SigV4.
- :class:`tests.realparts.http_server.FileServer`: a static file server that counts requests.
- :class:`tests.realparts.recording_proxy.RecordingProxy`: an HTTP reverse proxy that records
  requests and injects faults.
- :class:`tests.realparts.docker_engine.DockerEngine` and
  :class:`tests.realparts.docker_engine.Registry`: a private dockerd and a docker registry.

A part whose program is not installed raises :class:`PartUnavailable` from ``start()``; a part
that is installed but fails to come up raises :class:`PartStartError` (with the log tail).
A test suite skips on the first and fails on the second; with ``CACHER_TEST_REQUIRE_PARTS=1``
it fails on both (see :func:`parts_required`).
"""

from __future__ import annotations

import os

__all__ = ["REQUIRE_PARTS_ENV", "PartStartError", "PartUnavailable", "parts_required"]

REQUIRE_PARTS_ENV = "CACHER_TEST_REQUIRE_PARTS"


class PartUnavailable(Exception):
    """A real part cannot run on this machine (program not installed, not root, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PartStartError(RuntimeError):
    """A real part is installed but did not come up; the message carries its log tail."""


def parts_required() -> bool:
    """True when ``CACHER_TEST_REQUIRE_PARTS=1``: a missing part must fail, not skip."""
    return os.environ.get(REQUIRE_PARTS_ENV, "").strip() == "1"
