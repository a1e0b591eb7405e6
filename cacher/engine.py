"""The pure pipeline: kind -> codec -> store on upload, store -> codec -> kind on download.

The engine knows nothing of the command line and never prints; it returns results and raises
`cacher.errors.CacherError` subclasses. Progress goes to an optional callback.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from cacher import __version__
from cacher.codec import Codec
from cacher.errors import CacheMiss, IntegrityError, ObjectChanged, StorageError
from cacher.kind import Kind
from cacher.stores.base import ObjectInfo, Store

#: How often a download starts again when the object is replaced while it is read.
REPLACED_RETRIES = 3

Outcome = Literal["uploaded", "skipped", "hit", "partial", "fetched", "failed"]
#: Called as transfers move: (bytes so far, total bytes or None when unknown).
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Result:
    """What one transfer did. ``matched_key`` is the key restored (a restore key's match)."""

    key: str
    outcome: Outcome
    kind: str
    codec: str
    raw_bytes: int = 0
    stored_bytes: int = 0
    seconds: float = 0.0
    matched_key: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def match(self) -> Literal["exact", "partial", "miss"]:
        """How the cache answered a download: the exact key, a restore key, or nothing."""
        if self.outcome == "hit":
            return "exact"
        return "partial" if self.outcome == "partial" else "miss"


def exists(store: Store, key: str) -> bool:
    """True when an object is stored under ``key``; a missing bucket is an error, not a miss."""
    if store.exists(key):
        return True
    store.check_bucket()
    return False


def newest(store: Store, prefix: str) -> ObjectInfo | None:
    """The most recently written object whose key starts with ``prefix``."""
    found = [o for o in store.list(prefix) if o.modified is not None]
    return max(found, key=lambda o: (o.modified, o.key)) if found else None


def upload(
    store: Store,
    kind: Kind,
    codec: Codec,
    key: str,
    targets: Sequence[str],
    options: Mapping[str, Any],
    *,
    force: bool = False,
    progress: Progress | None = None,
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
            counted_raw = _Counter(encoded, progress)
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
    restore_keys: Sequence[str] = (),
    soft_fail: bool = False,
    progress: Progress | None = None,
) -> Result:
    """Restore ``key`` into ``target``: the exact key, else the newest object under each
    restore-key prefix in turn, else the kind's fallback (``--url``, ``--pull``), else
    `CacheMiss`.

    With a fallback, a stored object that fails verification is treated as a miss: the
    artifact is made again, verified, and replaces the bad object. With ``soft_fail``, a
    storage error is also a miss, and a failed upload after the fallback only a note.
    """
    started = time.monotonic()
    kind.check_download(target, options)
    notes: list[str] = []
    store_ok = True

    def attempt(candidate: str, info: ObjectInfo, outcome: Outcome) -> Result | None:
        nonlocal store_ok
        try:
            raw, chosen, info = _restore_latest(candidate, info)
        except IntegrityError as exc:
            if not kind.fallback_requested(options):
                raise
            notes.append(f"the stored object failed verification ({exc.message}); made again")
            return None
        except StorageError as exc:
            if not soft_fail:
                raise
            notes.append(f"soft failure, treated as a miss: {exc.message}")
            store_ok = False
            return None
        seconds = time.monotonic() - started
        return Result(key, outcome, kind.name, chosen.name, raw, info.size, seconds, candidate, tuple(notes))

    def _restore_latest(candidate: str, info: ObjectInfo) -> tuple[int, Codec, ObjectInfo]:
        """Restore ``candidate``; if another job replaces it mid-read (reads are pinned to its
        ETag), start again on the new object: the destination is untouched, restores are staged."""
        for again in range(REPLACED_RETRIES + 1):
            chosen = codec
            recorded = info.metadata.get("codec")
            if recorded and codecs is not None and recorded != codec.name:
                chosen = codecs(recorded)
            recorded_sha = info.metadata.get("sha256") if chosen.name == "none" else None
            expected = kind.sha256(options) or recorded_sha
            try:
                raw = _restore(store, kind, chosen, candidate, target, options, expected, info, progress)
            except ObjectChanged:
                fresh = store.head(candidate) if again < REPLACED_RETRIES else None
                if fresh is None:
                    raise
                info = fresh
                continue
            return raw, chosen, info
        raise AssertionError("unreachable")  # pragma: no cover

    try:
        info = store.head(key)
        if info is None:
            store.check_bucket()
    except StorageError as exc:
        if not soft_fail:
            raise
        notes.append(f"soft failure, treated as a miss: {exc.message}")
        info, store_ok = None, False
    if info is not None:
        result = attempt(key, info, "hit")
        if result is not None:
            return result
    elif store_ok:
        for prefix in restore_keys:
            try:
                match = newest(store, prefix)
                # A listing has no metadata or ETag: one HEAD gives the codec and pins the read.
                full = store.head(match.key) if match is not None else None
            except StorageError as exc:
                if not soft_fail:
                    raise
                notes.append(f"soft failure, treated as a miss: {exc.message}")
                store_ok = False
                break
            if match is not None:
                result = attempt(match.key, full or match, "partial")
                if result is not None:
                    return result
    produced = kind.produce(target, options)
    if produced is None:
        extra = f" ({'; '.join(notes)})" if notes else ""
        raise CacheMiss(f"cache miss: {store.url(key)} does not exist{extra}")
    raw_bytes = stored_bytes = 0
    if store_ok:
        try:
            up = upload(store, kind, codec, key, produced, options, force=True, progress=progress)
            raw_bytes, stored_bytes = up.raw_bytes, up.stored_bytes
        except StorageError as exc:
            if not soft_fail:
                raise
            notes.append(f"soft failure, not stored: {exc.message}")
    seconds = time.monotonic() - started
    return Result(key, "fetched", kind.name, codec.name, raw_bytes, stored_bytes, seconds, None, tuple(notes))


def _restore(
    store: Store,
    kind: Kind,
    codec: Codec,
    key: str,
    target: str | None,
    options: Mapping[str, Any],
    sha256: str | None,
    info: ObjectInfo,
    progress: Progress | None,
) -> int:
    with store.open_read(key, info) as stored:
        plain = codec.decoder(_ProgressReader(stored, progress, info.size))  # type: ignore[arg-type]
        counted = _VerifyingReader(plain, sha256)
        kind.unpack(counted, target, options)  # type: ignore[arg-type]
        return counted.count


class _Counter:
    """Counts the bytes written through it, reporting progress when asked."""

    def __init__(self, inner: Any, progress: Progress | None = None) -> None:
        self.inner = inner
        self.count = 0
        self.progress = progress

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.inner.write(data)
        n = len(data)
        self.count += n
        if self.progress is not None:
            self.progress(self.count, None)
        return n

    def flush(self) -> None:
        """Nothing to flush: the store commits at the end."""


class _ProgressReader:
    """Reports how much of the stored object has been read."""

    def __init__(self, inner: BinaryIO, progress: Progress | None, total: int) -> None:
        self.inner, self.progress, self.total, self.count = inner, progress, total, 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.count += len(data)
        if self.progress is not None:
            self.progress(self.count, self.total)
        return data

    def readable(self) -> bool:
        return True


class _VerifyingReader:
    """Counts the plain bytes read and, when a sha256 is expected, checks it at the end."""

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
