"""A small on-disk index of cacher's entry points, so a command starts without importing stevedore.

Importing stevedore imports ``importlib.metadata`` (email, zipfile, csv...): about 35 ms of
every command's start-up here, more than a HEAD request takes. The registry asks stevedore
once and keeps the answer here, keyed the way stevedore keys its own cache
(``stevedore._cache._hash_settings_for_path``): the interpreter, the prefix, and every
``sys.path`` entry and installed ``entry_points.txt`` with its modification time. Installing,
upgrading or removing any distribution changes the key, so the next command asks stevedore
again. `tests/test_entrypoint_index.py` holds the key to stevedore's and the answer to its.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import struct
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

Entry = tuple[str, str, str]  # (group, name, value)


def _mtime(name: str) -> float:
    try:
        return os.stat(name).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return -1.0


def path_key(path: Sequence[str]) -> str:
    """The hash stevedore gives this interpreter and ``path``."""
    digest = hashlib.sha256()
    digest.update(sys.executable.encode("utf-8"))
    digest.update(sys.prefix.encode("utf-8"))
    pack = struct.Struct("f").pack
    for entry in path:
        digest.update(entry.encode("utf-8"))
        digest.update(pack(_mtime(entry)))
        for suffix in ("*.dist-info", "*.egg-info"):
            for ep_file in glob.iglob(os.path.join(entry, suffix, "entry_points.txt")):
                digest.update(ep_file.encode("utf-8"))
                digest.update(pack(_mtime(ep_file)))
    return digest.hexdigest()


def _unpacked_per_run() -> bool:
    """A one-file build unpacks into a new temporary directory on every start, so ``sys.path``
    (and the key) differs each time: an index would only leave a file behind per run. The
    one-directory bundle lives beside its executable and keeps one index."""
    bundle = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or bundle is None:
        return False
    home = os.path.realpath(os.path.dirname(sys.executable))
    return os.path.commonpath([home, os.path.realpath(bundle)]) != home


def index_dir(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path | None:
    """``$XDG_CACHE_HOME/ci-cacher/entry-points`` (default ``~/.cache``); None without an absolute
    home for it (an empty HOME must not put files in the current directory) and in a one-file
    build."""
    if _unpacked_per_run():
        return None
    base = environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        home = environ.get("HOME") or ""
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "ci-cacher" / "entry-points"


class EntryPointIndex:
    """The entry points of some groups, as stevedore listed them for the current ``sys.path``."""

    def __init__(self, directory: Path | None, groups: Iterable[str]) -> None:
        self.groups = sorted(groups)
        self.file: Path | None = None
        if directory is not None:
            self.file = directory / f"{path_key(tuple(sys.path))[:40]}.json"

    def read(self) -> list[Entry] | None:
        """The recorded entries, or None when there are none for this key (or they are unreadable)."""
        if self.file is None:
            return None
        try:
            document = json.loads(self.file.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict) or document.get("groups") != self.groups:
            return None
        entries = document.get("entries")
        if not isinstance(entries, list) or not all(
            isinstance(e, list) and len(e) == 3 and all(isinstance(x, str) for x in e) for e in entries
        ):
            return None
        return [(g, n, v) for g, n, v in entries]

    def write(self, entries: Sequence[Entry]) -> None:
        """Record ``entries``; a cache that cannot be written is no error (the next run asks again)."""
        if self.file is None:
            return
        document = {"groups": self.groups, "entries": [list(e) for e in entries]}
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(document), "utf-8")
            os.replace(tmp, self.file)
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass
