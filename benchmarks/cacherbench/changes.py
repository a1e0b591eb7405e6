"""A tree changed the way a lockfile bump changes it, deterministically (issue 30's rows).

`bumped` copies a tree (hardlinks: one filesystem, no bytes copied) and replaces about a
``fraction`` of its files and of its bytes, clustered like packages: the top-level entries
(``numpy``, ``numpy-2.4.6.dist-info``, ...) in an order fixed by their names' sha256, their
files in sorted order, a file skipped when it would take the bytes past the budget or is too
small to keep pace with it (a second pass takes any that fit), until the file budget is spent.
Of the files picked, four in five keep their path with new bytes and one in five is removed
and added under a new name (a renamed module, a new ``dist-info``). New bytes are the old
ones with every byte XORed with 0x5A: nothing of the file is left for deduplication to find,
and it compresses as well as before (a byte permutation), as a new version of a package would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

_FLIP = bytes(b ^ 0x5A for b in range(256))


@dataclass(frozen=True)
class Bump:
    """What `bumped` changed: files and bytes of the tree, and of them replaced, removed, added."""

    files: int
    bytes: int
    modified: int
    removed: int
    added: int
    changed_bytes: int
    written: tuple[str, ...] = field(default=(), repr=False)  # paths given new bytes (or added)
    gone: tuple[str, ...] = field(default=(), repr=False)  # paths removed

    @property
    def changed_files(self) -> int:
        return self.modified + self.added

    def to_json(self) -> dict[str, float]:
        facts = {k: v for k, v in asdict(self).items() if k not in ("written", "gone")}
        return {
            **facts,
            "changed_files": self.changed_files,
            "changed_files_pct": round(100 * self.changed_files / max(self.files, 1), 2),
            "changed_bytes_pct": round(100 * self.changed_bytes / max(self.bytes, 1), 2),
        }


def _files(root: Path) -> list[tuple[str, int]]:
    """Every regular file under root: its path relative to root and its size, sorted."""
    out = []
    for top, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(top, name)
            st = os.lstat(path)
            if not os.path.islink(path) and os.path.isfile(path):
                out.append((os.path.relpath(path, root), st.st_size))
    return out


def _package(rel: str) -> str:
    return rel.split(os.sep, 1)[0]


def pick(files: list[tuple[str, int]], fraction: float) -> list[tuple[str, int]]:
    """The files a bump of ``fraction`` replaces (see the module's text)."""
    total = sum(size for _, size in files)
    want_files = max(1, round(fraction * len(files)))
    want_bytes = max(1, fraction * total)
    order = sorted(files, key=lambda f: (hashlib.sha256(_package(f[0]).encode()).digest(), f[0]))
    chosen: list[tuple[str, int]] = []
    taken: set[str] = set()
    spent = 0
    for sizable in (True, False):  # first the files that keep pace with the bytes, then any
        for rel, size in order:
            if len(chosen) >= want_files:
                break
            pace = (want_bytes - spent) / (want_files - len(chosen)) / 4
            if spent + size > want_bytes or (sizable and size < pace) or rel in taken:
                continue
            chosen.append((rel, size))
            taken.add(rel)
            spent += size
    return chosen


def bumped(source: Path, dest: Path, fraction: float) -> Bump:
    """``dest``: a copy of ``source`` (made again from scratch) with a bump of ``fraction``."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest, symlinks=True, copy_function=os.link)
    files = _files(source)
    modified = removed = changed_bytes = 0
    written: list[str] = []
    gone: list[str] = []
    for i, (rel, size) in enumerate(pick(files, fraction)):
        path = dest / rel
        data = path.read_bytes().translate(_FLIP)
        mode = path.stat().st_mode
        path.unlink()  # a hardlink: never write through it into the source tree
        if i % 5 == 1:
            removed += 1
            gone.append(rel)
            path = path.with_name(f"{path.stem}_bumped{path.suffix}")
        else:
            modified += 1
        path.write_bytes(data)
        path.chmod(mode & 0o7777)
        written.append(str(path.relative_to(dest)))
        changed_bytes += size
    return Bump(len(files), sum(s for _, s in files), modified, removed, removed, changed_bytes,
                tuple(written), tuple(gone))


def bump_again(tree: Path, changed: Path, bump: Bump) -> None:
    """Make ``tree`` (``bump``'s source, or ``changed`` itself) equal ``changed`` the way a
    package manager would: every file the bump wrote is written again (a new inode, a new
    ctime), every file it removed is gone. Run again, it rewrites the same files."""
    for rel in bump.gone:
        (tree / rel).unlink(missing_ok=True)
    for rel in bump.written:
        path = tree / rel
        path.unlink(missing_ok=True)
        shutil.copy2(changed / rel, path)
