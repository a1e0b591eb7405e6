"""What a runner knows about the files of a tree it restored or saved, so a save reads only
the files that changed since.

The record is git's index idea: for each file, its size, mtime and ctime in nanoseconds, inode
and device as they were when its chunks were known, and the chunks. A later save trusts the
record for a file only when all five are unchanged and the file's ctime is older than the
moment its stat was taken by more than the clock's step (`FINE`; `COARSE` on a filesystem
that keeps whole seconds): the kernel sets ctime on every write and no user can set it back,
so a tool that restores old mtimes (npm gives every file of a package the same one) is still
seen, and a write in the same clock step as the stat (which would leave ctime as recorded) is
ruled out. A file the record does not vouch for is read.

One record per directory (by its resolved path), kept in a directory only the user can
change, read only when it is the user's own file (`cacher.fs.ownership`): it is a runner's
own memory, never shared. A record that cannot be read is no record: everything is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from cacher.cas.model import Chunk, Entry
from cacher.fs.atomicfile import atomic_write
from cacher.fs.ownership import Untrusted, private_dir, read_trusted

FORMAT = "cacher-files"
VERSION = 1
#: A file whose ctime is this close to the moment its stat was taken (or after it) is read
#: again: a second write within the clock's step would have left ctime unchanged. Inode times
#: come from a coarse clock (a scheduler tick, 1-10 ms); a ctime of whole seconds means a
#: filesystem that keeps no more.
FINE = 100_000_000
COARSE = 2_000_000_000

Stat = tuple[int, int, int, int, int]


def stat_of(st: os.stat_result) -> Stat:
    """The five fields a record compares: size, mtime and ctime (ns), inode, device."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


class FileRecord:
    """The record of one directory's files: `load`, `chunks_of` while saving, `write` after."""

    def __init__(self, home: Path, root: Path) -> None:
        resolved = os.path.realpath(root)
        name = hashlib.sha256(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        self.path = home / f"{name}.json"
        self.root = resolved
        #: When the recorded stats began to be taken (ns): the racy rule's reference.
        self.written = 0
        self.files: dict[str, tuple[Stat, tuple[Chunk, ...]]] = {}

    def load(self) -> FileRecord:
        """Read the record, if there is a trusted one for this directory; else it stays empty."""
        try:
            doc = json.loads(read_trusted(self.path))
            if doc.get("format") != FORMAT or doc.get("version") != VERSION or doc.get("root") != self.root:
                return self
            self.written = int(doc["written"])
            self.files = {path: _parse(line) for path, line in doc["files"].items()}
        except (OSError, Untrusted, ValueError, KeyError, TypeError, AttributeError):
            self.files, self.written = {}, 0
        return self

    def chunks_of(self, path: str, st: os.stat_result) -> tuple[Chunk, ...] | None:
        """The chunks of the file at ``path`` (relative) when the record vouches for it."""
        known = self.files.get(path)
        step = COARSE if st.st_ctime_ns % 1_000_000_000 == 0 else FINE
        if known is None or known[0] != stat_of(st) or st.st_ctime_ns > self.written - step:
            return None
        return known[1]

    def write(self, files: Mapping[str, tuple[Stat, tuple[Chunk, ...]]], since: int) -> None:
        """Replace the record with ``files``, whose stats were taken from ``since`` on (ns,
        `time.time_ns`, read before the first). Best effort: a record that cannot be written
        only means the next save reads everything."""
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "root": self.root,
            "written": since,
            "files": {path: _line(st, chunks) for path, (st, chunks) in files.items()},
        }
        try:
            private_dir(self.path.parent)
            with atomic_write(self.path, fsync=False) as out:
                out.write(json.dumps(doc, separators=(",", ":")).encode())
        except (OSError, Untrusted):
            pass


def _line(st: Stat, chunks: tuple[Chunk, ...]) -> str:
    """One file's record as a line: ``size mtime ctime inode device digest:size...`` (a flat
    string reads and writes several times faster than nested lists)."""
    return " ".join([*map(str, st), *(f"{c.digest}:{c.size}" for c in chunks)])


def _parse(line: str) -> tuple[Stat, tuple[Chunk, ...]]:
    fields = line.split(" ")
    size, mtime, ctime, ino, dev = map(int, fields[:5])
    chunks = []
    for item in fields[5:]:
        digest, _, length = item.partition(":")
        chunks.append(Chunk(digest, int(length)))
    return (size, mtime, ctime, ino, dev), tuple(chunks)


def record_tree(record: FileRecord, root: Path, entries: Iterable[Entry]) -> None:
    """Record the files of a tree just restored at ``root`` from ``entries`` (each file's
    chunks as the manifest gave them, checked on the way in): one lstat each."""
    files: dict[str, tuple[Stat, tuple[Chunk, ...]]] = {}
    since = time.time_ns()
    base = os.fspath(root) + os.sep  # joined as strings: a Path per file cost more than its lstat
    for entry in entries:
        if entry.type != "file":
            continue
        try:
            st = os.lstat(base + entry.path)
        except OSError:
            continue
        if st.st_size == entry.size:
            files[entry.path] = (stat_of(st), entry.chunks)
    record.write(files, since)


def records_home(cache_dir: Path) -> Path:
    """Where the records live: beside the default cache (``.../ci-cacher/files``)."""
    return cache_dir.parent / "ci-cacher" / "files"
