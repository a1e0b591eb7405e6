"""Shared fixtures: an isolated environment, the real `cacher` command, and the real parts."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cacher.testing import CACHER as CACHER
from cacher.testing import CliRun
from cacher.testing import assert_one_error_line as assert_one_error_line

# The kit's fixtures (cacher_store, seaweed_s3, s3_bucket, ...): a plugin that loads only when
# asked for, as every plugin's suite asks for it.
pytest_plugins = ["cacher.testing.fixtures"]

VENV_BIN = Path(sys.executable).parent
# In-process stores and any child that inherits this environment: no instance-metadata lookups
# (169.254.169.254) when a test has no credentials; tests talk to loopback only.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
REQUIRE_PARTS = os.environ.get("CACHER_TEST_REQUIRE_PARTS") == "1"


def unavailable(reason: str) -> None:
    """Skip for a missing real part, or fail when CI requires every part."""
    if REQUIRE_PARTS:
        pytest.fail(f"required real part unavailable: {reason}")
    pytest.skip(reason)


#: One run of the installed ``cacher`` (the kit's `CliRun`).
Run = CliRun


@pytest.fixture
def home(cacher_home: Path) -> Path:
    return cacher_home


@pytest.fixture
def env(cacher_env: dict[str, str]) -> dict[str, str]:
    """A clean environment: no CACHER_* or AWS_* variables, HOME and XDG dirs in tmp."""
    return cacher_env


@pytest.fixture
def cacher(cacher_cli: Callable[..., CliRun]) -> Callable[..., CliRun]:
    """Run the installed `cacher` command; returns a Run with exit code and output."""
    return cacher_cli


def s3_store_env(server: Any, bucket: str) -> dict[str, str]:
    """The CACHER_* variables of an S3 store on ``server`` (a SeaweedFS or moto part)."""
    return {
        "CACHER_ENDPOINT": server.endpoint,
        "CACHER_BUCKET": bucket,
        "CACHER_S3_KEY_ID": server.key_id,
        "CACHER_S3_SECRET": server.secret,
    }


@pytest.fixture(params=["file", "s3"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The variables of each store in turn: the default file store ({}), then SeaweedFS."""
    if request.param == "file":
        return {}
    return s3_store_env(request.getfixturevalue("seaweed_s3"), request.getfixturevalue("s3_bucket"))


@pytest.fixture
def local_root(home: Path) -> Path:
    """Where the default file backend keeps objects for the isolated HOME."""
    return home / ".cache" / "cacher"


def tree_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def http(tmp_path: Path) -> Iterator[Any]:
    """A real HTTP server on loopback serving files from a temp dir, counting requests."""
    from tests.realparts.http_server import FileServer

    with FileServer(tmp_path / "www") as server:
        yield server
