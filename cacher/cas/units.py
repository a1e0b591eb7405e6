"""The unit of content: a whole file, or fixed 4 MiB blocks of a larger file.

Chosen by measurement (benchmarks/incremental_units.py, docs/format.md): on a venv and a
node_modules changed by a lockfile bump, whole files send as little as content-defined chunks
(pyfastcdc, 1 MiB or 64 KiB average) and store less; large files are cut in fixed blocks only
so that no blob exceeds 4 MiB and memory stays bounded. The manifest lists each file's chunks
with their sizes, so a later splitter (content-defined chunks of large files) needs no new
format: readers never split anything.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from cacher.errors import ArtifactError

BLOCK = 4 << 20


def pieces(path: str, size: int) -> Iterator[tuple[str, bytes]]:
    """The sha256 (hex) and bytes of each unit of the file at ``path``, which ``size`` bytes
    long (from its lstat); a file that changes size while read fails with `ArtifactError`.
    The last read asks for one byte more than is left, so a file that grew shows there
    without a read of its own (one read for most files: on a 42k-file tree, a second read
    each cost a tenth of the walk's reading)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            left = size
            while True:
                want, last = min(left, BLOCK), left <= BLOCK
                ask = want + 1 if last else want
                data = os.read(fd, ask)
                while len(data) < want:  # a short read: fill the block
                    more = os.read(fd, ask - len(data))
                    if not more:
                        raise ArtifactError(f"{path} shrank while the tree was read")
                    data += more
                if len(data) > want:
                    raise ArtifactError(f"{path} grew while the tree was read")
                left -= want
                if want:
                    yield hashlib.sha256(data).hexdigest(), data
                if last:
                    return
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise ArtifactError(f"{path} vanished while the tree was read") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
