"""The dir kind's tar writer against Python's tarfile: the same members give the same bytes.

`cacher.tar.header` formats pax headers itself for speed; tarfile's PAX writer, fed the
same normalised members, is the oracle. The tree holds the cases where the formats diverge
if a rule is wrong: long names and link targets, non-ASCII and undecodable names, a name of
exactly 100 bytes, hardlinks, empty files, sizes that need padding or none.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from cacher.tar.write import _ordered, write_tree


def oracle(root: Path) -> bytes:
    """What tarfile writes for the normalised members (owners 0/0, no names, whole seconds)."""
    out = io.BytesIO()
    inodes: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in _ordered(root):
            path = root / rel
            st = os.lstat(path)
            info = tarfile.TarInfo(rel)
            info.mode, info.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if stat.S_ISREG(st.st_mode):
                first = inodes.get((st.st_dev, st.st_ino))
                if first is not None:
                    info.type, info.linkname = tarfile.LNKTYPE, first
                    tar.addfile(info)
                    continue
                inodes[(st.st_dev, st.st_ino)] = rel
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(info)
    return out.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "t"
    (root / "d" / "e").mkdir(parents=True)
    (root / "empty.txt").write_bytes(b"")
    (root / "block.bin").write_bytes(b"b" * 512)
    (root / "odd.bin").write_bytes(os.urandom(1234))
    (root / ("x" * 100)).write_text("exactly 100")
    (root / ("y" * 150)).write_text("long name")
    deep = root / "/".join(["z" * 60] * 3)
    deep.mkdir(parents=True)
    (deep / "f").write_text("deep")
    (root / "ünïcødé.txt").write_text("unicode")
    (root / os.fsdecode(b"bad-\xff-name")).write_text("not utf-8")
    os.link(root / "odd.bin", root / "d" / "hard.bin")
    (root / "d" / "short-link").symlink_to("../odd.bin")
    (root / "d" / "long-link").symlink_to("../" + "y" * 150)
    (root / "d" / "uni-link").symlink_to("../ünïcødé.txt")
    (root / "d" / "e" / "ro.txt").write_text("read only")
    (root / "d" / "e" / "ro.txt").chmod(0o444)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    os.utime(root / "odd.bin", (1_600_000_000.7, 1_600_000_000.7))
    return root


def test_same_bytes_as_tarfile(tree: Path) -> None:
    ours = io.BytesIO()
    count = write_tree(tree, ours)
    assert ours.getvalue() == oracle(tree)
    assert count == len(_ordered(tree))


def test_gnu_tar_lists_every_member(tree: Path) -> None:
    import subprocess

    ours = io.BytesIO()
    write_tree(tree, ours)
    listing = subprocess.run(["tar", "-tvf", "-"], input=ours.getvalue(), capture_output=True, check=True)
    names = listing.stdout.decode("utf-8", "surrogateescape")
    assert "y" * 150 in names and "ünïcødé.txt" in names
    assert len(listing.stdout.splitlines()) == len(_ordered(tree))
