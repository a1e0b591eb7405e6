"""A stored tree as a plain tar stream: what ``cacher dir export`` will write, and a way to
restore through the ``dir`` kind's hardened extractor.

Members come in the manifest's order with the headers the ``dir`` kind's writer makes (POSIX
pax, owners 0/0, whole-second times); a hardlink member carries its target's mode and time.
File bytes come from ``blob(digest)``, which must return checked bytes (`cacher.cas.packread`
checks every blob against its digest); a blob of the wrong size still fails here.
"""

from __future__ import annotations

from collections.abc import Callable

from cacher.cas.model import Manifest
from cacher.errors import IntegrityError
from cacher.streams import Writable
from cacher.tar import header as tarheader

_TYPES = {"dir": tarheader.DIRTYPE, "file": tarheader.REGTYPE, "symlink": tarheader.SYMTYPE}


def export_tar(manifest: Manifest, blob: Callable[[str], bytes], sink: Writable) -> int:
    """Write the tree of ``manifest`` to ``sink`` as a tar stream; return the member count."""
    offset = 0
    files: dict[str, tuple[int, int]] = {}

    def put(data: bytes) -> None:
        nonlocal offset
        sink.write(data)
        offset += len(data)

    for entry in manifest.entries:
        if entry.type == "hardlink":
            mode, mtime = files[entry.target]
            put(tarheader.pax_header(entry.path, tarheader.LNKTYPE, mode, 0, mtime, entry.target))
            continue
        name = f"{entry.path}/" if entry.type == "dir" else entry.path
        put(tarheader.pax_header(name, _TYPES[entry.type], entry.mode, entry.size, entry.mtime, entry.target))
        if entry.type == "file":
            files[entry.path] = (entry.mode, entry.mtime)
            for chunk in entry.chunks:
                data = blob(chunk.digest)
                if len(data) != chunk.size:
                    raise IntegrityError(f"blob {chunk.digest} of {entry.path!r} has the wrong size")
                put(data)
            put(tarheader.padding(entry.size))
    put(tarheader.end_of_archive(offset))
    return len(manifest.entries)
