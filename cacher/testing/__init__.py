"""Conformance kit for kinds, shipped so that plugin authors run the same suite as built-ins.

Installing cacher registers its fixtures as a pytest plugin (the ``pytest11`` entry point
``cacher``), so a plugin's tests need no set-up: in a test module, subclass
`cacher.testing.contracts.KindContract`. Every test then runs
against the memory, file and s3 stores (s3 on a real SeaweedFS started on loopback).
Codecs subclass `CodecContract` and key functions `KeyFunctionContract`, the way every
built-in does.
"""

from cacher.testing.codec_contract import CodecContract
from cacher.testing.contracts import KindContract, path_snapshot
from cacher.testing.key_contract import KeyFunctionContract

__all__ = ["CodecContract", "KeyFunctionContract", "KindContract", "path_snapshot"]
