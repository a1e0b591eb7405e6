"""The test kit shipped for plugin authors: contracts, the CLI harness and real parts.

Everything a plugin's test suite uses is exported here; import it from ``cacher.testing``
alone (the submodules may move). Contracts: subclass `KindContract` for a kind, `CodecContract`
for a codec, `KeyFunctionContract` for a key function and `StoreContract` for a store, the way
every built-in does. `KindContract` runs against the memory, file and S3 stores (S3 on a real
SeaweedFS and a moto server started on loopback).

The kit's pytest fixtures (``cacher_store``, ``cacher_registry``, ``cacher_cli``,
``seaweed_s3``, ...) are a pytest plugin that loads only when asked for: installing cacher
changes nobody's test session. Opt in from the ``conftest.py`` at the top of your tests::

    pytest_plugins = ["cacher.testing.fixtures"]

or on the command line with ``-p cacher.testing.fixtures``.
"""

import pkgutil

import pytest

# The submodules by name, before they are imported: their asserts then explain themselves in a
# failing test (this package itself is being imported, so naming it would only warn).
pytest.register_assert_rewrite(*(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)))

from cacher.testing.cli import CACHER, CliRun, assert_one_error_line, clean_env, make_runner  # noqa: E402
from cacher.testing.codec_contract import CodecContract  # noqa: E402
from cacher.testing.contracts import KindContract, path_snapshot  # noqa: E402
from cacher.testing.fixtures import (  # noqa: E402
    file_store,
    memory_store,
    new_bucket,
    require_part,
    s3_store,
)
from cacher.testing.key_contract import KeyFunctionContract  # noqa: E402
from cacher.testing.moto import MotoS3  # noqa: E402
from cacher.testing.parts import Part, PartStartError, PartUnavailable, ProcessPart, S3Part  # noqa: E402
from cacher.testing.seaweed import SeaweedS3  # noqa: E402
from cacher.testing.store_contract import StoreContract  # noqa: E402
from cacher.testing.tools import find_tool  # noqa: E402

__all__ = [
    "CACHER",
    "CliRun",
    "CodecContract",
    "KeyFunctionContract",
    "KindContract",
    "MotoS3",
    "Part",
    "PartStartError",
    "PartUnavailable",
    "ProcessPart",
    "S3Part",
    "SeaweedS3",
    "StoreContract",
    "assert_one_error_line",
    "clean_env",
    "file_store",
    "find_tool",
    "make_runner",
    "memory_store",
    "new_bucket",
    "path_snapshot",
    "require_part",
    "s3_store",
]
