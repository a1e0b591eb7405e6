"""The ``file`` kind: one file's bytes; its verbs are also the top-level commands."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from cacher.plugin import (
    ArtifactError,
    Kind,
    Option,
    Target,
    UsageError,
    Writable,
    atomic_write,
    check_restore_file,
    check_sha256,
    stream_url,
)

CHUNK = 1 << 20


class FileKind(Kind):
    """Single files: fetch-or-download with ``--url`` and ``--sha256``."""

    summary = "Single files (the top-level upload, download and exists)."
    upload_target = Target("PATH", "The file to upload.")
    download_target = Target("DEST", "Where to write the file (replaced atomically).")
    digest_is_the_file = True  # pack copies the file that digest hashed
    options = (
        Option("url", "On a miss, fetch this URL (any fsspec URL), store it and write DEST."),
        Option(
            "sha256", "Expected sha256 of the file: checked before DEST is written or anything is uploaded."
        ),
    )

    def check_upload(self, targets: Sequence[str], options: Mapping[str, Any]) -> None:
        path = Path(targets[0])
        if not path.exists():
            raise UsageError(f"cannot upload {path}: no such file")
        if not path.is_file():
            raise UsageError(f"cannot upload {path}: not a regular file")

    def check_download(self, target: str | None, options: Mapping[str, Any]) -> None:
        check_sha256(options.get("sha256"))
        check_restore_file(target or "")  # an empty DEST (an unset variable) is named as such
        dest = Path(target or "")
        if not dest.parent.is_dir():
            raise UsageError(f"cannot write {dest}: the directory {dest.parent} does not exist")
        if dest.is_dir():
            raise UsageError(f"cannot write {dest}: it is a directory")
        if dest.exists() and not dest.is_file():  # a device, a FIFO, a socket (through links too)
            raise UsageError(
                f"cannot write {dest}: it is not a regular file, and a download replaces DEST",
                hint="name a file path (a download writes a new file and renames it over DEST)",
            )
        check_restore_file(dest)  # not in the store's or the tier's directory; atomic_write checks again

    def pack(self, targets: Sequence[str], sink: Writable, options: Mapping[str, Any]) -> None:
        path = targets[0]
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                shutil.copyfileobj(f, sink, CHUNK)
                if f.tell() != size:
                    raise ArtifactError(f"{path} changed size while it was uploaded")
        except OSError as exc:
            raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None

    def unpack(self, source: BinaryIO, target: str | None, options: Mapping[str, Any]) -> None:
        dest = Path(target or "")
        try:
            with atomic_write(dest) as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
        except OSError as exc:
            raise ArtifactError(f"cannot write {dest}: {exc.strerror or exc}") from None

    def digest(self, targets: Sequence[str], options: Mapping[str, Any]) -> str | None:
        """The file is local: hash it before the upload (the engine hashes it again as it goes)."""
        path = targets[0]
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None
        return h.hexdigest()

    def restores(self, stored_kind: str) -> bool:
        """``file`` and ``url`` objects (and a subclass's own) are all a file's bytes."""
        return stored_kind in ("file", "url", self.name)

    def fallback_requested(self, options: Mapping[str, Any]) -> bool:
        return bool(options.get("url"))

    def produce(self, target: str | None, options: Mapping[str, Any]) -> Sequence[str] | None:
        url = options.get("url")
        if not url:
            return None
        dest = Path(target or "")
        try:
            with atomic_write(dest) as out:
                stream_url(url, out, check_sha256(options.get("sha256")))
        except OSError as exc:
            raise ArtifactError(f"cannot write {dest}: {exc.strerror or exc}") from None
        return [str(dest)]

    def sha256(self, options: Mapping[str, Any]) -> str | None:
        return check_sha256(options.get("sha256"))
