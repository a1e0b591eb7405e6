"""Content digests for cache keys, reproducible with standard shell tools.

- One file: ``sha256sum FILE``.
- One directory: the digest of ``sha256sum``'s listing of its regular files in byte order,
  ``(cd DIR && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum``.
  Symlinks, empty directories, modes and times do not count.
- Several inputs: the digest of their digests, one per line in the order given,
  ``{ sha256sum < a | cut -d' ' -f1; ...; } | sha256sum``.
- A glob (an argument naming nothing that exists): the files it matches, sorted by their
  bytes, each one input as if named in that place; directories it matches are skipped.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cacher.errors import UsageError
from cacher.fs.globs import expand, has_magic

_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 hex digest of one file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _regular_files(root: Path) -> Iterator[bytes]:
    """``./``-relative byte paths of the regular files under root, like ``find . -type f``."""
    stack = [b"."]
    root_b = os.fsencode(root)
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root_b, rel)) as entries:
            for entry in entries:
                name = rel + b"/" + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append(name)
                elif entry.is_file(follow_symlinks=False):
                    yield name


def _listing_line(digest: str, name: bytes) -> bytes:
    """One line of ``sha256sum`` output, with its escaping of ``\\`` and newlines."""
    if b"\\" in name or b"\n" in name:
        escaped = name.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
        return b"\\" + digest.encode() + b"  " + escaped + b"\n"
    return digest.encode() + b"  " + name + b"\n"


def directory_digest(root: Path) -> str:
    """sha256 of the ``sha256sum`` listing of root's regular files, sorted by byte path."""
    names = sorted(_regular_files(root))
    root_b = os.fsencode(root)
    paths = [Path(os.fsdecode(os.path.join(root_b, n))) for n in names]
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashlib releases the GIL on big reads
        digests = list(pool.map(file_digest, paths))
    listing = hashlib.sha256()
    for digest, name in zip(digests, names, strict=True):
        listing.update(_listing_line(digest, name))
    return listing.hexdigest()


def input_digest(path: Path) -> str:
    if path.is_dir():
        return directory_digest(path)
    if path.is_file():
        return file_digest(path)
    if not path.exists():
        raise UsageError(f"--hash-from {path}: no such file or directory")
    raise UsageError(f"--hash-from {path}: not a regular file or directory")


def hash_inputs(arguments: Iterable[str]) -> list[Path]:
    """The ``--hash-from`` arguments as inputs: one that exists is itself (a file named
    ``[id].js`` stays a path, so no existing key changes); otherwise a glob stands for the
    files it matches, in byte order."""
    inputs: list[Path] = []
    for argument in arguments:
        if os.path.lexists(argument) or not has_magic(argument):
            inputs.append(Path(argument))
            continue
        files = [hit for hit in expand(argument) if os.path.isfile(hit)]
        if not files:
            raise UsageError(f"--hash-from {argument}: the glob matches no file")
        inputs.extend(Path(hit) for hit in files)
    return inputs


def digest(paths: Iterable[Path]) -> str:
    """The full hex digest of the inputs, by the rules in this module's docstring."""
    parts = [input_digest(p) for p in paths]
    if not parts:
        raise UsageError("nothing to hash: give --hash-from PATH")
    if len(parts) == 1:
        return parts[0]
    return hashlib.sha256("".join(p + "\n" for p in parts).encode()).hexdigest()
