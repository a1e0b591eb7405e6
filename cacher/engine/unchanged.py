"""Whether the file an upload packs stayed the same from its digest to its last byte, by stat.

The file kind's digest reads the whole file before the upload, and the upload reads it again;
a second sha256 over the bytes as they stream proved they were the same, at a fifth of a
second per GiB. Where a filesystem records every change in the inode, a stat before the
digest and another after packing prove it too: a write changes ``ctime`` (which no one can
set back), and a replacement changes the inode. This module says where that holds — a
regular file, on a local filesystem known to keep inode times, last changed more than
`RACY_NS` before the first stat — and the engine keeps the second hash everywhere else
(docs/reliability.md, "No pass over the bytes that buys nothing").
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence

from cacher.kind import Kind

#: A file changed this recently may change again within the same timestamp tick (two seconds:
#: FAT's granularity, above ext3's one and the kernel's coarse clock): a stat cannot see that
#: second change, so such a file is hashed, as git rehashes its "racily clean" entries.
RACY_NS = 2_000_000_000

#: Local filesystems whose inode times change with every write (network filesystems cache
#: attributes, so another host's write may not show; FUSE times are whatever the daemon says).
LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "f2fs", "zfs", "overlay", "bcachefs"}
)

_State = tuple[int, int, int, int, int]


class Watch:
    """A regular file's identity and times when the upload began; `holds` compares them again."""

    def __init__(self, path: str, state: _State) -> None:
        self.path, self.state = path, state

    def holds(self) -> bool:
        """Whether the file is still the one first seen, unchanged (False if it is gone)."""
        try:
            return _state(os.stat(self.path)) == self.state
        except OSError:
            return False


def watch(kind: Kind, targets: Sequence[str]) -> Watch | None:
    """A `Watch` of the file a kind uploads, taken before its digest, when a stat can stand for
    the second hash; None when the engine must hash (a kind without `Kind.digest_is_the_file`,
    a subclass that digests or packs otherwise, a file not regular, remote, or changed lately)."""
    if len(targets) != 1 or not _declared(type(kind)):
        return None
    path = targets[0]
    try:
        st = os.stat(path)
    except OSError:
        return None  # the digest reports it
    if not stat.S_ISREG(st.st_mode) or time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
        return None
    if filesystem(path) not in LOCAL_FILESYSTEMS:
        return None
    return Watch(path, _state(st))


def _declared(cls: type[Kind]) -> bool:
    """Whether the class that sets ``digest_is_the_file`` to True also defines the ``digest``
    and ``pack`` this kind runs (a subclass overriding either is hashed)."""
    owner = next((c for c in cls.__mro__ if "digest_is_the_file" in vars(c)), None)
    if owner is None or not vars(owner)["digest_is_the_file"]:
        return False
    return all(getattr(cls, name) is vars(owner).get(name) for name in ("digest", "pack"))


def filesystem(path: str) -> str | None:
    """The type of the filesystem holding ``path`` (Linux's mount table); None where unknown."""
    real = os.path.realpath(path)
    best, kind = "", None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
            for line in table:
                fields, _, rest = line.partition(" - ")
                point = fields.split(" ")[4].replace("\\040", " ")
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best) and rest:
                    best, kind = point, rest.split(" ")[0]
    except (OSError, IndexError):
        return None
    return kind


def _state(st: os.stat_result) -> _State:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
