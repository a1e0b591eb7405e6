"""Trees for tests: one way to build a tree that exercises every entry type, and one way to
compare trees, so every test means the same thing by "the restore kept the tree"."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything under ``root`` a restore must keep, without following a link: type, mode,
    mtime (whole seconds, as archived), content, link target, and which files are one inode."""
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            mode, mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, mtime, not any(p.iterdir()))
            else:
                first = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 else rel
                out[rel] = ("file", mode, mtime, p.read_bytes(), first)
    return out


def file_contents(root: Path) -> dict[str, bytes]:
    """The regular files under ``root`` and their bytes: what a restore's contents must be."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_tree(root: Path) -> Path:
    """A tree with every entry a restore must keep: modes, an old mtime, a hard link, links
    (one dangling), empty directories, Unicode and long names, a deep path, a 2 MiB file."""
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "empty" / "deeper").mkdir(parents=True)
    (root / "pkg" / "a.txt").write_text("alpha\n")
    (root / "pkg" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "pkg" / "run.sh").chmod(0o755)
    (root / "pkg" / "sub" / "big.bin").write_bytes(os.urandom(2 << 20))
    os.link(root / "pkg" / "a.txt", root / "pkg" / "hard.txt")
    (root / "pkg" / "link").symlink_to("sub/big.bin")
    (root / "pkg" / "dangling").symlink_to("nowhere")
    (root / "ünïcødé-ファイル.txt").write_text("unicode")
    (root / ("long-" + "x" * 200)).write_text("long name")
    deep = root / "/".join(["d" * 50] * 6)
    deep.mkdir(parents=True)
    (deep / "f").write_text("deep")
    os.utime(root / "pkg" / "a.txt", (1_600_000_000, 1_600_000_000))
    return root
