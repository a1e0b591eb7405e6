"""The ``url`` kind: a file that comes from a URL, stored straight from the network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cacher.kinds.file import FileKind
from cacher.plugin import Option, Target, UsageError, Writable, check_sha256, stream_url


class UrlKind(FileKind):
    """``upload KEY URL`` streams a URL into the cache; ``download`` needs ``--url``."""

    summary = "Files fetched from a URL: warm the cache from the network, or fetch-or-download."
    upload_target = Target("URL", "The URL to fetch and store (any fsspec URL).")
    options = (
        Option("url", "The URL to fetch on a miss (required).", verbs=("download",)),
        Option(
            "sha256",
            "Expected sha256: checked before anything is stored or written.",
            verbs=("upload", "download"),
        ),
    )

    def check_upload(self, targets: Sequence[str], options: Mapping[str, Any]) -> None:
        check_sha256(options.get("sha256"))

    def check_download(self, target: str | None, options: Mapping[str, Any]) -> None:
        if not options.get("url"):
            raise UsageError("cacher url download needs --url URL")
        super().check_download(target, options)

    def digest(self, targets: Sequence[str], options: Mapping[str, Any]) -> str | None:
        """A URL cannot be hashed before it is fetched: only a given ``--sha256`` is known."""
        return self.sha256(options)

    def pack(self, targets: Sequence[str], sink: Writable, options: Mapping[str, Any]) -> None:
        stream_url(targets[0], sink, check_sha256(options.get("sha256")))
