"""A small on-disk index of cacher's entry points, so a command starts without importing
``importlib.metadata``.

Importing ``importlib.metadata`` (email, zipfile, csv...) costs every command about 35 ms of
start-up here, more than a HEAD request takes. The registry reads the entry points once and
keeps the answer here, keyed on the interpreter, the prefix, and every ``sys.path`` entry and
installed ``entry_points.txt`` with its exact status (nanosecond times, size, inode): installing,
upgrading, removing or rewriting any distribution changes the key, so the next command lists
them again through stevedore (never from stevedore's own cache, whose float32 times miss a
rewrite within two minutes and which has no owner check).

The index names modules cacher imports, so it is believed only when it is the user's own
(`cacher.fs.ownership`): its directory is private (0700), and a file that is a link, another
user's, or writable by group or others is ignored and replaced.
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

from cacher.fs.ownership import Untrusted, private_dir, read_trusted

Entry = tuple[str, str, str]  # (group, name, value)

_STATUS = struct.Struct("<qqqqq")
_MISSING = _STATUS.pack(-1, -1, -1, -1, -1)


def _status(name: str) -> bytes:
    """The exact status of ``name``: any rewrite changes one of these, even within a second."""
    try:
        st = os.stat(name)
    except OSError:
        return _MISSING
    return _STATUS.pack(st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev)


def path_key(path: Sequence[str]) -> str:
    """The key of this interpreter, ``path`` and every entry-point file on it."""
    digest = hashlib.sha256()
    digest.update(b"cacher-entry-points-2\0")
    digest.update(sys.executable.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(sys.prefix.encode("utf-8", "surrogateescape") + b"\0")
    for entry in path:
        digest.update(entry.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(_status(entry))
        for suffix in ("*.dist-info", "*.egg-info"):
            for ep_file in sorted(glob.iglob(os.path.join(glob.escape(entry), suffix, "entry_points.txt"))):
                digest.update(ep_file.encode("utf-8", "surrogateescape") + b"\0")
                digest.update(_status(ep_file))
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
    """The entry points of some groups, as ``importlib.metadata`` listed them for the current
    ``sys.path``."""

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
            private_dir(self.file.parent, create=False)
            document = json.loads(read_trusted(self.file).decode("utf-8"))
        except (OSError, ValueError, Untrusted):
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
        """Record ``entries`` (mode 0600, in the private directory), replacing whatever was
        there; a cache that cannot be written, or a directory that is not the user's own, is no
        error (the next run reads the entry points again)."""
        if self.file is None:
            return
        document = {"groups": self.groups, "entries": [list(e) for e in entries]}
        try:
            private_dir(self.file.parent)
        except (OSError, Untrusted):
            return
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
            with os.fdopen(os.open(tmp, flags, 0o600), "w", encoding="utf-8") as f:
                f.write(json.dumps(document))
            os.replace(tmp, self.file)
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass
