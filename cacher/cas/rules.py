"""What a manifest's tree may hold: the ``dir`` kind's hostile-archive rules, for entries.

A manifest comes from a scope the job trusts, but its bytes are data: every path is relative
and clean (no ``..``, no absolute path, no empty or ``.`` segment, no control character),
entries come in the canonical order (each directory before what it holds, siblings sorted by
their UTF-8 bytes), so no path appears twice, and every entry's parent is a directory entry
already seen: a file under a symlink or under a file is refused before anything is written.
A hardlink names an earlier file entry. The first rule broken is reported as `ObjectRefused`.
"""

from __future__ import annotations

import re

from cacher.cas.model import MAX_BLOB, Entry, Manifest
from cacher.errors import ObjectRefused

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_PATH = 4096


def refuse(why: str) -> ObjectRefused:
    return ObjectRefused(f"the stored manifest is refused: {why}")


def order_key(path: str) -> tuple[bytes, ...]:
    """The canonical order: a depth-first walk with siblings sorted by name is exactly the
    order of the paths' segment tuples (a directory's tuple is a prefix of its contents')."""
    return tuple(segment.encode("utf-8", "surrogateescape") for segment in path.split("/"))


def check_path(path: str) -> None:
    """A path a restore may create under its root."""
    if not path or len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise refuse(f"entry path {path[:80]!r} is empty or longer than {MAX_PATH} bytes")
    if path.startswith("/"):
        raise refuse(f"entry {path!r} has an absolute path")
    if _CONTROL.search(path):
        raise refuse(f"entry {path!r} has a control character in its path")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse(f"entry {path!r} is not valid UTF-8") from None
    for segment in path.split("/"):
        if segment == "..":
            raise refuse(f"entry {path!r} has '..' in its path")
        if segment in ("", "."):
            raise refuse(f"entry {path!r} has an empty or '.' segment")


def check_entry(entry: Entry) -> None:
    """The fields of one entry, for its type."""
    if not 0 <= entry.mode <= 0o7777:
        raise refuse(f"entry {entry.path!r} has mode {entry.mode}, not permission bits")
    if entry.type == "file":
        if entry.size != sum(chunk.size for chunk in entry.chunks):
            raise refuse(f"file {entry.path!r} says {entry.size} bytes but its chunks hold another number")
        for chunk in entry.chunks:
            if not 0 < chunk.size <= MAX_BLOB:
                raise refuse(f"file {entry.path!r} has a chunk of {chunk.size} bytes")
    elif entry.type in ("symlink", "hardlink") and (
        not entry.target or "\x00" in entry.target or len(entry.target) > MAX_PATH
    ):
        raise refuse(f"{entry.type} {entry.path!r} has no usable target")


def check_tree(entries: tuple[Entry, ...]) -> None:
    """Paths, order, parents and hardlink targets of the whole entry list."""
    dirs: set[str] = set()
    others: set[str] = set()
    files: set[str] = set()
    previous: tuple[bytes, ...] | None = None
    for entry in entries:
        check_path(entry.path)
        key = order_key(entry.path)
        if previous is not None and key <= previous:
            what = "appears twice" if key == previous else "is out of order"
            raise refuse(f"entry {entry.path!r} {what}")
        previous = key
        _check_parents(entry.path, dirs, others)
        check_entry(entry)
        if entry.type == "dir":
            dirs.add(entry.path)
        else:
            others.add(entry.path)
        if entry.type == "file":
            files.add(entry.path)
        elif entry.type == "hardlink" and entry.target not in files:
            raise refuse(f"hardlink {entry.path!r} does not name an earlier file ({entry.target!r})")


def _check_parents(path: str, dirs: set[str], others: set[str]) -> None:
    """Every directory above ``path`` is a directory entry, or listed not at all (implied, as a
    tar stream may leave parents out: the ``paths`` kind does); one listed as anything else (a
    symlink, a file) is refused, so nothing is ever written through a link. Entries come in
    order, so an implied parent can no longer be listed: it is remembered as a directory."""
    implied = []
    parent = path.rpartition("/")[0]
    while parent and parent not in dirs:
        if parent in others:
            raise refuse(f"entry {path!r} is under {parent!r}, which is not a directory")
        implied.append(parent)
        parent = parent.rpartition("/")[0]
    dirs.update(implied)


def check_blobs(manifest: Manifest) -> None:
    """Every content the entries name is located once, with its size, and nothing more."""
    located: dict[str, int] = {}
    refs: set[str] = set()
    for pack in manifest.packs:
        if pack.ref in refs or not pack.blobs:
            raise refuse(f"pack {pack.ref!r} is listed twice or with no blobs")
        refs.add(pack.ref)
        for blob in pack.blobs:
            if blob.digest in located:
                raise refuse(f"blob {blob.digest} is located twice")
            impossible = min(blob.frame_offset, blob.offset) < 0 or blob.frame_length <= 0
            if impossible or not 0 < blob.size <= MAX_BLOB:
                raise refuse(f"blob {blob.digest} has an impossible place in its pack")
            located[blob.digest] = blob.size
    named = manifest.digests()
    for digest, size in named.items():
        if located.get(digest) != size:
            raise refuse(f"content {digest} ({size} bytes) is in no pack the manifest lists")
    if len(located) != len(named):
        raise refuse("the manifest lists blobs no entry uses")
