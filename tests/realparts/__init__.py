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
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = [
    "REQUIRE_PARTS_ENV",
    "PartStartError",
    "PartUnavailable",
    "parts_required",
    "start_or_skip",
]

REQUIRE_PARTS_ENV = "CACHER_TEST_REQUIRE_PARTS"


from cacher.testing.parts import PartStartError, PartUnavailable  # noqa: E402


def parts_required() -> bool:
    """True when ``CACHER_TEST_REQUIRE_PARTS=1``: a missing part must fail, not skip."""
    return os.environ.get(REQUIRE_PARTS_ENV, "").strip() == "1"


class _Startable(Protocol):
    def start(self) -> object: ...


P = TypeVar("P", bound=_Startable)


def start_or_skip(factory: Callable[[], P]) -> P:
    """Build a part and start it; on :class:`PartUnavailable` skip the test (pytest.skip),
    or fail it (pytest.fail) when ``CACHER_TEST_REQUIRE_PARTS=1``.

    For session fixtures::

        @pytest.fixture(scope="session")
        def seaweed():
            s3 = start_or_skip(SeaweedS3)
            yield s3
            s3.cleanup()

    pytest is imported here only, lazily: the rest of the package does not need it.
    """
    import pytest

    try:
        part = factory()
        part.start()
    except PartUnavailable as exc:
        if parts_required():
            pytest.fail(f"real part unavailable ({REQUIRE_PARTS_ENV}=1): {exc.reason}")
        pytest.skip(exc.reason)
    return part
