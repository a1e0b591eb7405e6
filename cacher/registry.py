"""Plugin discovery: the one module that reads entry points.

Every kind, key function and codec, built-in or third-party, is found here by its
entry-point name, from ``importlib.metadata`` (through the index of
`cacher.entrypoint_index`, so a command usually does not import it). A plugin that fails to
load is remembered with its error, so it breaks only the commands that use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from cacher.codec import Codec
from cacher.entrypoint_index import Entry, EntryPointIndex, index_dir
from cacher.errors import PluginError
from cacher.keying.keyfunc import KeyFunction
from cacher.kind import Kind

Group = Literal["kinds", "keys", "codecs"]
NAMESPACES: dict[Group, str] = {
    "kinds": "cacher.kinds",
    "keys": "cacher.keys",
    "codecs": "cacher.codecs",
}
_BASES: dict[Group, type] = {"kinds": Kind, "keys": KeyFunction, "codecs": Codec}
_NOUN: dict[Group, str] = {"kinds": "kind", "keys": "key function", "codecs": "codec"}

T = TypeVar("T")


@dataclass
class PluginInfo:
    """One installed plugin, loaded or not."""

    group: Group
    name: str
    target: str
    distribution: str
    version: str
    plugin: type | None = None
    error: str | None = None


class Registry:
    """Installed plugins by group and name, loaded on first use."""

    def __init__(self, plugins: Iterable[PluginInfo]) -> None:
        self._plugins: dict[tuple[Group, str], PluginInfo] = {}
        for info in plugins:
            key = (info.group, info.name)
            if key in self._plugins:
                other = self._plugins[key]
                if other.target == info.target:
                    continue
                distributions([other, info])
                message = (
                    f"{_NOUN[info.group]} {info.name!r} is registered twice: by "
                    f"{other.distribution} ({other.target}) and by "
                    f"{info.distribution} ({info.target})"
                )
                other.plugin, other.error = None, message
                continue
            self._plugins[key] = info

    @classmethod
    def from_entry_points(cls) -> Registry:
        """Everything installed in this environment, found through its entry points."""
        return cls(_discover())

    @classmethod
    def from_mapping(cls, mapping: dict[Group, dict[str, type]]) -> Registry:
        """A registry of given classes, for tests and embedding."""
        infos = [
            PluginInfo(
                group, name, f"{plugin.__module__}:{plugin.__qualname__}", "(given)", "", plugin=plugin
            )
            for group, plugins in mapping.items()
            for name, plugin in plugins.items()
        ]
        return cls(infos)

    def names(self, group: Group) -> list[str]:
        return sorted(name for g, name in self._plugins if g == group)

    def infos(self, group: Group) -> list[PluginInfo]:
        """Every plugin of the group, each loaded (or with its load error)."""
        out = []
        for name in self.names(group):
            info = self._plugins[(group, name)]
            self._load(info)
            out.append(info)
        return out

    def get(self, group: Group, name: str) -> type:
        """The plugin class, or `PluginError` naming what is wrong and what exists."""
        info = self._plugins.get((group, name))
        if info is None:
            available = ", ".join(self.names(group)) or "none"
            raise PluginError(
                f"unknown {_NOUN[group]} {name!r} (installed: {available})",
            )
        self._load(info)
        if info.plugin is None:
            raise PluginError(f"{_NOUN[group]} {name!r} cannot be used: {info.error}")
        return info.plugin

    def kind(self, name: str) -> Kind:
        kind: Kind = self.get("kinds", name)(name)
        return kind

    def key_function(self, name: str) -> KeyFunction:
        func: KeyFunction = self.get("keys", name)()
        return func

    def codec(self, name: str, **options: Any) -> Codec:
        codec: Codec = self.get("codecs", name)(**options)
        return codec

    def _load(self, info: PluginInfo) -> None:
        if info.plugin is not None or info.error is not None:
            return
        try:
            loaded = _load_target(info.target)
        except Exception as exc:  # noqa: BLE001 - a plugin's import may raise anything
            info.error = f"{info.target} failed to load: {type(exc).__name__}: {exc}"
            return
        base = _BASES[info.group]
        if not (isinstance(loaded, type) and issubclass(loaded, base)):
            info.error = f"{info.target} is not a subclass of {base.__module__}.{base.__name__}"
            return
        info.plugin = loaded


def _load_target(target: str) -> Any:
    """What ``module:attr.attr`` names, as `importlib.metadata.EntryPoint.load` finds it
    (without importing importlib.metadata: that costs a command ~15 ms of start-up)."""
    module, _, attrs = target.partition(":")
    loaded: Any = importlib.import_module(module.strip())
    for attr in filter(None, attrs.strip().split(".")):
        loaded = getattr(loaded, attr)
    return loaded


def _discover() -> list[PluginInfo]:
    index = EntryPointIndex(index_dir(), NAMESPACES.values())
    entries = index.read()
    if entries is None:
        entries = _from_stevedore()
        index.write(entries)
    group_of = {namespace: group for group, namespace in NAMESPACES.items()}
    return [PluginInfo(group_of[ns], name, value, "", "") for ns, name, value in entries if ns in group_of]


def _from_stevedore() -> list[Entry]:
    """Every entry point of cacher's groups as stevedore lists them, from the installed
    distributions themselves. stevedore's on-disk cache (``~/.cache/python-entrypoints``) is
    neither read nor written: it has no owner check, and its key (float32 times) misses an
    ``entry_points.txt`` rewritten within two minutes, so stevedore gets an empty directory of
    its own and is told not to write (`cacher.entrypoint_index` keeps cacher's index instead).
    Nothing is imported."""
    import tempfile

    from stevedore import _cache

    with tempfile.TemporaryDirectory(prefix="cacher-entry-points-") as empty:
        listing = _cache.Cache(cache_dir=empty)
        listing._disable_caching = True
        return [(ns, ep.name, ep.value) for ns in NAMESPACES.values() for ep in listing.get_group_all(ns)]


def distributions(infos: Iterable[PluginInfo]) -> None:
    """Fill in which distribution (and version) registered each plugin."""
    from importlib import metadata

    owners: dict[tuple[str, str, str], tuple[str, str]] = {}
    for group, namespace in NAMESPACES.items():
        for ep in metadata.entry_points(group=namespace):
            if ep.dist is not None:
                owners[(group, ep.name, ep.value)] = (ep.dist.name, ep.dist.version)
    for info in infos:
        info.distribution, info.version = owners.get(
            (info.group, info.name, info.target), (info.distribution or "unknown", info.version)
        )
