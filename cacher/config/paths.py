"""Where cacher's files live: the config file, the file backend's cache directory, the lock directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cacher.errors import ConfigError


def config_path(environ: Mapping[str, str], flag: str | None = None) -> Path:
    """The config file: ``--config``, else ``CACHER_CONFIG``, else ``$XDG_CONFIG_HOME/cacher/config.toml``."""
    if flag:
        return Path(flag).expanduser()
    if environ.get("CACHER_CONFIG"):
        return Path(environ["CACHER_CONFIG"]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "cacher" / "config.toml"


def cache_dir(environ: Mapping[str, str]) -> Path:
    """The default root of the file backend: ``$XDG_CACHE_HOME/cacher``; `ConfigError` when
    neither it nor HOME gives an absolute path (the store would land in the checkout)."""
    xdg, home = environ.get("XDG_CACHE_HOME"), environ.get("HOME")
    if xdg:
        root = Path(xdg).expanduser() / "cacher"
    elif home == "":  # set but empty: "~" would become "/" or the current directory
        root = Path(".cache") / "cacher"
    else:
        root = Path(home or os.path.expanduser("~")) / ".cache" / "cacher"
    if not root.is_absolute():
        raise ConfigError(
            f"no place for the local cache: {root} is relative (HOME and XDG_CACHE_HOME are empty)",
            hint="set HOME or XDG_CACHE_HOME, or name the cache directory with --bucket",
        )
    return root


def runtime_dir(environ: Mapping[str, str]) -> Path:
    """Where cacher keeps its lock files: ``$XDG_RUNTIME_DIR/cacher``, else a per-user temp dir.
    Anyone can make a name in the shared temp dir first: when ``cacher-<uid>`` there is not a
    directory of the user's own, the user's cache directory holds it instead
    (``$XDG_CACHE_HOME/ci-cacher/runtime``), so a planted directory never stops a restore."""
    base = environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "cacher"
    import stat
    import tempfile

    shared = Path(tempfile.gettempdir()) / f"cacher-{os.getuid()}"
    try:
        st = os.lstat(shared)
    except OSError:
        return shared  # not there yet: made private by whoever needs it
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022:
        return shared
    try:
        return cache_dir(environ).parent / "ci-cacher" / "runtime"
    except ConfigError:
        return shared  # no cache directory either: the check on use names the problem
