"""The pure pipeline: kind -> codec -> store on upload, store -> codec -> kind on download.

The engine knows nothing of the command line and never prints; it returns results and raises
`cacher.errors.CacherError` subclasses.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from cacher import __version__
from cacher.codec import Codec
from cacher.errors import CacheMiss, IntegrityError
from cacher.kind import Kind
from cacher.store import Store

Outcome = Literal["uploaded", "skipped", "hit", "fetched", "miss"]


@dataclass(frozen=True)
class Result:
    """What one transfer did."""

    key: str
    outcome: Outcome
    kind: str
    codec: str
    raw_bytes: int = 0
    stored_bytes: int = 0
    seconds: float = 0.0
    note: str = ""


def exists(store: Store, key: str) -> bool:
    """True when an object is stored under ``key``; a missing bucket is an error, not a miss."""
    if store.exists(key):
        return True
    store.check_bucket()
    return False


def upload(
    store: Store,
    kind: Kind,
    codec: Codec,
    key: str,
    targets: Sequence[str],
    options: Mapping[str, Any],
    *,
    force: bool = False,
) -> Result:
    """Pack ``targets`` under ``key``; skip when the key exists unless ``force``."""
    started = time.monotonic()
    kind.check_upload(targets, options)
    if not force and store.exists(key):
        return Result(key, "skipped", kind.name, codec.name, seconds=time.monotonic() - started)
    metadata = {"kind": kind.name, "codec": codec.name, "version": __version__}
    sha = kind.sha256(options)
    if sha and codec.name == "none":
        metadata["sha256"] = sha
    with store.writer(key, metadata) as stored:
        counted_store = _Counter(stored)
        with codec.encoder(counted_store) as encoded:
            counted_raw = _Counter(encoded)
            kind.pack(targets, counted_raw, options)
    return Result(
        key,
        "uploaded",
        kind.name,
        codec.name,
        counted_raw.count,
        counted_store.count,
        time.monotonic() - started,
    )


def download(
    store: Store,
    kind: Kind,
    codec: Codec,
    key: str,
    target: str | None,
    options: Mapping[str, Any],
    *,
    codecs: Callable[[str], Codec] | None = None,
) -> Result:
    """Restore ``key`` into ``target``; on a miss use the kind's fallback, or raise `CacheMiss`.

    With a fallback (``--url``, ``--pull``), a stored object that fails verification is
    treated as a miss: the artifact is made again, verified, and replaces the bad object.
    """
    started = time.monotonic()
    kind.check_download(target, options)
    info = store.head(key)
    note = ""
    if info is not None:
        if info.metadata.get("codec") and codecs is not None and info.metadata["codec"] != codec.name:
            codec = codecs(info.metadata["codec"])
        expected = kind.sha256(options) or (info.metadata.get("sha256") if codec.name == "none" else None)
        try:
            raw = _restore(store, kind, codec, key, target, options, expected)
        except IntegrityError as exc:
            if not kind.fallback_requested(options):
                raise
            note = f"the stored object failed verification ({exc.message}); fetched again"
        else:
            return Result(key, "hit", kind.name, codec.name, raw, info.size, time.monotonic() - started)
    else:
        store.check_bucket()
    produced = kind.produce(target, options)
    if produced is None:
        raise CacheMiss(f"cache miss: {store.url(key)} does not exist")
    up = upload(store, kind, codec, key, produced, options, force=True)
    return Result(
        key,
        "fetched",
        kind.name,
        codec.name,
        up.raw_bytes,
        up.stored_bytes,
        time.monotonic() - started,
        note,
    )


def _restore(
    store: Store,
    kind: Kind,
    codec: Codec,
    key: str,
    target: str | None,
    options: Mapping[str, Any],
    sha256: str | None,
) -> int:
    with store.open_read(key) as stored:
        plain = codec.decoder(stored)
        counted = _CountingReader(plain, sha256)
        kind.unpack(counted, target, options)  # type: ignore[arg-type]
        return counted.count


class _Counter:
    """Counts the bytes written through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.count = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.inner.write(data)
        n = len(data)
        self.count += n
        return n

    def flush(self) -> None:
        """Nothing to flush: the store commits at the end."""


class _CountingReader:
    """Counts the bytes read and, when a sha256 is expected, checks it at the end."""

    def __init__(self, inner: BinaryIO, sha256: str | None) -> None:
        self.inner = inner
        self.count = 0
        self.expected = sha256.lower() if sha256 else None
        self.hash = hashlib.sha256() if sha256 else None

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.count += len(data)
        if self.hash is not None:
            if data:
                self.hash.update(data)
            elif size != 0 and self.hash.hexdigest() != self.expected:
                actual = self.hash.hexdigest()
                self.hash = None
                raise IntegrityError(
                    f"sha256 mismatch: expected {self.expected}, the stored object has {actual}"
                )
        return data

    def readable(self) -> bool:
        return True
