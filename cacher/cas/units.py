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
from collections.abc import Iterator

from cacher.errors import ArtifactError

BLOCK = 4 << 20


def pieces(path: str, size: int) -> Iterator[tuple[str, bytes]]:
    """The sha256 (hex) and bytes of each unit of the file at ``path``, which ``size`` bytes
    long (from its lstat); a file that changes size while read fails with `ArtifactError`."""
    try:
        with open(path, "rb", buffering=0) as f:
            left = size
            while left:
                data = f.read(min(left, BLOCK))
                if not data:
                    raise ArtifactError(f"{path} shrank while the tree was read")
                while len(data) < min(left, BLOCK):  # a short read: fill the block
                    more = f.read(min(left, BLOCK) - len(data))
                    if not more:
                        raise ArtifactError(f"{path} shrank while the tree was read")
                    data += more
                left -= len(data)
                yield hashlib.sha256(data).hexdigest(), data
            if f.read(1):
                raise ArtifactError(f"{path} grew while the tree was read")
    except FileNotFoundError:
        raise ArtifactError(f"{path} vanished while the tree was read") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
