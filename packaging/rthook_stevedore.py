"""PyInstaller runtime hook: keep stevedore from writing a cache file on every run.

A one-file build unpacks itself into a new ``/tmp/_MEIxxxxxx`` directory each time it starts.
stevedore keys its entry-point cache (``$XDG_CACHE_HOME/python-entrypoints``) on ``sys.path``,
so every run would miss that cache and leave one more file behind. The bundle's entry points
never change, so the cache buys nothing: turn it off when stevedore's cache module is
imported. The hook only adds an import hook and imports nothing itself, so commands that
never load stevedore (``--version``) do not pay for it.
"""

import importlib.abc
import importlib.util
import sys

_TARGET = "stevedore._cache"


class _Loader(importlib.abc.Loader):
    def __init__(self, inner):  # type: ignore[no-untyped-def]
        self.inner = inner

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return self.inner.create_module(spec)

    def exec_module(self, module):  # type: ignore[no-untyped-def]
        self.inner.exec_module(module)
        module._c._disable_caching = True


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


sys.meta_path.insert(0, _Finder())
