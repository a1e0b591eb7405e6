"""Conformance kit for kinds, shipped so that plugin authors run the same suite as built-ins.

In a plugin's ``conftest.py``::

    pytest_plugins = ["cacher.testing.fixtures"]

and in a test module, subclass `cacher.testing.contracts.KindContract`. Every test then runs
against the memory, file and s3 stores (s3 on a real SeaweedFS started on loopback).
"""

from cacher.testing.contracts import KindContract, path_snapshot

__all__ = ["KindContract", "path_snapshot"]
