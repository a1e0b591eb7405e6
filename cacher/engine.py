"""The pure pipeline: kind -> codec -> store on upload, store -> codec -> kind on download.

The engine knows nothing of the command line and never prints; it returns results and raises
`cacher.errors.CacherError` subclasses. Progress goes to an optional callback.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cacher import __version__
from cacher.codec import Codec
from cacher.errors import (
    ArtifactError,
    CacheMiss,
    IntegrityError,
    ObjectChanged,
    ObjectRefused,
    StorageError,
    UsageError,
)
from cacher.keying.keyrules import validate_key
from cacher.keying.scopes import in_reserved_namespace
from cacher.kind import Kind
from cacher.stores.base import ObjectInfo, Store
from cacher.streams import CountingWriter, Progress, ProgressReader, VerifyingReader

#: How often a download starts again when the object is replaced while it is read, and the
#: first pause before it does (doubled each time, jittered): jobs that store one key often
#: finish together, so a reader that starts again at once can be overtaken every time.
REPLACED_RETRIES = 5
REPLACED_PAUSE = 0.1

Outcome = Literal[
    "uploaded", "skipped", "read-only", "hit", "partial", "fetched", "fetched-not-stored", "failed", "local"
]


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
    #: Why the outcome is ``failed`` (a soft failure's error message).
    reason: str | None = None
    #: False for a restore that nothing checked: a raw object stored without a digest (older
    #: versions); archives are checked by their codec, raw objects by their recorded sha256.
    verified: bool = True
    #: The fallback scope a partial hit came from (None: the job's own scope, or no scopes).
    scope: str | None = None
    #: Outcome ``local`` of a restore from the runner-local tier alone (offline, or the store
    #: down under soft failure): how it matched. None for an upload kept locally.
    local_match: Literal["exact", "partial"] | None = None
    #: A restore that read the runner-local tier's copy of the object instead of the store.
    from_local_tier: bool = False

    @property
    def match(self) -> Literal["exact", "partial", "miss"]:
        """How the cache answered a download: the exact key, a restore key, or nothing."""
        if self.local_match is not None:
            return self.local_match
        if self.outcome == "hit":
            return "exact"
        return "partial" if self.outcome == "partial" else "miss"


@dataclass(frozen=True)
class Presence:
    """What ``exists`` found: ``failure`` is the store's error when a soft failure hid it."""

    found: bool
    failure: str | None = None


def exists(store: Store, key: str, *, soft_fail: bool = False) -> Presence:
    """Whether an object is stored under ``key``; a missing bucket is an error, not a miss.
    With ``soft_fail``, a store that fails answers "not found" and says why."""
    try:
        if store.exists(key):
            return Presence(True)
        store.check_bucket()
    except StorageError as exc:
        if not soft_fail:
            raise
        return Presence(False, exc.message)
    return Presence(False)


def upload(
    store: Store,
    kind: Kind,
    codec: Codec,
    key: str,
    targets: Sequence[str],
    options: Mapping[str, Any],
    *,
    force: bool = False,
    soft_fail: bool = False,
    progress: Progress | None = None,
) -> Result:
    """Pack ``targets`` under ``key``; skip when the key exists unless ``force``. With
    ``soft_fail``, a store that fails gives outcome ``failed`` and the reason, not an error.
    A store that is not ``writable`` (the read-only gate) gets nothing: the outcome is
    ``read-only``, decided before the kind packs anything."""
    kind.check_upload(targets, options)
    return _upload(
        bound_store(store, kind, targets, options), kind, codec, key, targets, options,
        force=force, soft_fail=soft_fail, progress=progress,
    )


def _upload(
    store: Store, kind: Kind, codec: Codec, key: str, targets: Sequence[str], options: Mapping[str, Any],
    *, force: bool = False, soft_fail: bool = False, progress: Progress | None = None,
) -> Result:
    """`upload` into ``store`` as it is (already bound to the kind's namespace, if any)."""
    started = time.monotonic()
    if not store.writable:
        return Result(key, "read-only", kind.name, codec.name, seconds=time.monotonic() - started)
    try:
        if not force and store.exists(key):
            return Result(key, "skipped", kind.name, codec.name, seconds=time.monotonic() - started)
        store.prepare_writer()  # S3: s3fs is built while the file's digest is taken
        metadata = {**kind.metadata(targets, options), "kind": kind.name, "codec": codec.name}
        metadata["version"] = __version__
        sha = kind.digest(targets, options) or kind.sha256(options)
        if sha:
            metadata["sha256"] = sha.lower()
        with store.writer(key, metadata) as stored:
            counted_store = CountingWriter(stored)
            with codec.encoder(counted_store) as encoded:
                counted_raw = CountingWriter(encoded, progress, hashing=bool(sha))
                kind.pack(targets, counted_raw, options)
            if counted_raw.hash is not None and counted_raw.hash.hexdigest() != metadata["sha256"]:
                raise ArtifactError(
                    f"{' '.join(targets)} changed while it was uploaded (its sha256 differs from "
                    "the one taken before); nothing stored"
                )
    except StorageError as exc:
        if not soft_fail:
            raise
        seconds = time.monotonic() - started
        return Result(key, "failed", kind.name, codec.name, seconds=seconds, reason=exc.message)
    seconds = time.monotonic() - started
    # Offline, the object went to the runner-local tier only: not shared with other runners.
    outcome: Outcome = "local" if store.offline_reason else "uploaded"
    return Result(key, outcome, kind.name, codec.name, counted_raw.count, counted_store.count, seconds)


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
    refused_is_miss: bool = False,
    fits: Callable[[str, str], bool] | None = None,
    fallback_stores: Sequence[tuple[str, Store]] = (),
) -> Result:
    """Restore ``key`` into ``target``: the exact key, else the newest object under each
    restore-key prefix in turn (those ``fits(key, prefix)`` accepts), else the kind's fallback
    (``--url``, ``--pull``), else `CacheMiss`.

    A stored object that is refused (`IntegrityError`, `ObjectRefused`: damaged, stored by
    another kind, holding what a restore refuses) never poisons its key: with a fallback, or
    with ``refused_is_miss`` (``ensure``, which then builds), it is a miss and gets replaced;
    a restore-key candidate is skipped for the next one; otherwise the error says how to
    replace it. With ``soft_fail``, a storage error is also a miss, and a failed upload after
    the fallback only a note. After the job's own store, each of ``fallback_stores`` (other
    scopes, read only) is tried the same way, exact key before restore keys; what the fallback
    makes is stored in the job's own store only, and never when it is not ``writable``.
    """
    if any(not prefix for prefix in restore_keys):
        raise UsageError("a restore key must not be empty: it would match every key in the store")
    kind.check_download(target, options)
    bound = [target] if target is not None else []
    store = bound_store(store, kind, bound, options)
    fallback_stores = [(scope, bound_store(other, kind, bound, options)) for scope, other in fallback_stores]
    run = _Download(store, kind, codec, key, target, options)
    run.codecs, run.soft_fail, run.progress = codecs, soft_fail, progress
    run.refused_is_miss, run.fits = refused_is_miss, fits
    found = run.look_up()
    if found is not None:
        return run.restore(found, "hit") or run.fallback()
    result = run.restore_keys(restore_keys)
    for scope, other in fallback_stores:
        if result is not None or not run.store_ok:
            break
        result = run.from_scope(scope, other, restore_keys)
    return result or run.fallback()


def bound_store(store: Store, kind: Kind, targets: Sequence[str], options: Mapping[str, Any]) -> Store:
    """The store as the kind's objects for these targets see it (`Kind.key_namespace`): the
    same store under ``<prefix>/<namespace>`` when the kind binds its targets into the key."""
    namespace = kind.key_namespace(targets, options)
    if not namespace:
        return store
    validate_key(namespace)
    return store.with_prefix("/".join(p for p in (store.prefix, namespace) if p))


class _Download:
    """One download: look-up, restore with retry, fallback. The soft-failure policy lives in
    `_soft`, once: a storage error is either raised or becomes a note and a store marked down.
    The policy flags (class defaults below) are set by `download`."""

    codecs: Callable[[str], Codec] | None = None
    soft_fail = False
    progress: Progress | None = None
    refused_is_miss = False
    fits: Callable[[str, str], bool] | None = None

    def __init__(
        self, store: Store, kind: Kind, codec: Codec, key: str, target: str | None, options: Mapping[str, Any]
    ) -> None:
        self.store, self.kind, self.codec, self.key = store, kind, codec, key
        self.target, self.options = target, options
        self.started = time.monotonic()
        self.notes: list[str] = []
        self.store_ok = True
        #: Whether the store answered for the exact key, the restore keys and the scopes searched.
        self.looked_up = self.refused = False
        self.restore_keys_tried: list[str] = []
        self.scopes_tried: list[str] = []

    def _soft(self, exc: StorageError, what: str) -> None:
        if not self.soft_fail:
            raise exc
        self.notes.append(f"soft failure, {what}: {exc.message}")
        self.store_ok = False

    def look_up(self) -> ObjectInfo | None:
        """The exact key's object, or None (missing, or the store is down under soft failure)."""
        try:
            info = self.store.head(self.key)
            if info is None:
                self.store.check_bucket()
            self.looked_up = True
            return info
        except StorageError as exc:
            self._soft(exc, "treated as a miss")
            return None

    def from_scope(self, scope: str, store: Store, prefixes: Sequence[str]) -> Result | None:
        """The exact key, then the restore keys, in another scope's store; a partial hit."""
        own, self.store = self.store, store
        self.scopes_tried.append(scope)
        try:
            found = self.look_up()
            result = self.restore(found, "partial") if found is not None else None
            if result is None and self.store_ok:
                result = self.restore_keys(prefixes)
        finally:
            self.store = own
        return dataclasses.replace(result, scope=scope) if result is not None else None

    def restore_keys(self, prefixes: Sequence[str]) -> Result | None:
        """Under each prefix in turn, the newest object that fits and restores, while the store
        answers; a refused candidate is skipped for the next newest."""
        for prefix in prefixes:
            if not self.store_ok:
                return None
            try:
                listed = self.store.list(prefix)
            except StorageError as exc:
                self._soft(exc, "treated as a miss")
                return None
            self.restore_keys_tried.append(prefix)
            # Other namespaces (scopes, bound path lists) are never reached through a prefix.
            candidates = [o for o in listed if o.modified is not None and not in_reserved_namespace(o.key)]
            if self.fits is not None:
                candidates = [o for o in candidates if self.fits(o.key, prefix)]
            for match in sorted(candidates, key=lambda o: (o.modified, o.key), reverse=True):
                try:
                    # A listing has no metadata or ETag: one HEAD gives the kind and codec, and pins the read.
                    full = self.store.head(match.key)
                except StorageError as exc:
                    self._soft(exc, "treated as a miss")
                    return None
                if full is None:
                    continue  # deleted since the listing
                result = self.restore(full, "partial")
                if result is not None:
                    return result
                if not self.store_ok:
                    return None
        return None

    def restore(self, info: ObjectInfo, outcome: Outcome) -> Result | None:
        """Restore one candidate; None when it is to be treated as a miss."""
        try:
            raw, chosen, info = self._restore_latest(info)
        except (IntegrityError, ObjectRefused) as exc:
            if outcome == "partial":
                self.notes.append(f"skipped {info.key}: {exc.message}")
                return None
            if not (self.refused_is_miss or self.kind.fallback_requested(self.options)):
                error_class = IntegrityError if isinstance(exc, IntegrityError) else ObjectRefused
                hint = f"replace it: cacher {self.kind.name} upload --force {self.key} ..."
                raise error_class(exc.message, hint=hint) from None
            self.refused = True
            what = "failed verification" if isinstance(exc, IntegrityError) else "was refused"
            self.notes.append(f"the stored object {what} ({exc.message}); made again")
            return None
        except StorageError as exc:
            self._soft(exc, "treated as a miss")
            return None
        seconds = time.monotonic() - self.started
        checked = bool(self.kind.sha256(self.options) or info.metadata.get("sha256")) or chosen.name != "none"
        local_match: Literal["exact", "partial"] | None = None
        reason = self.store.offline_reason
        if reason is not None:  # from the runner-local tier alone: the store was not asked
            local_match, outcome = ("exact" if outcome == "hit" else "partial"), "local"
            if reason != "offline":
                self.notes.append(f"soft failure, restored from the local tier: {reason}")
        return Result(
            self.key, outcome, self.kind.name, chosen.name, raw, info.size, seconds, info.key,
            tuple(self.notes), verified=checked, local_match=local_match,
            from_local_tier=self.store.read_locally(info.key),
        )

    def _restore_latest(self, info: ObjectInfo) -> tuple[int, Codec, ObjectInfo]:
        """Restore ``info``'s object; if another job replaces it mid-read (reads are pinned to
        its ETag), start again on the new object: the destination is untouched, restores are staged."""
        stored_kind = info.metadata.get("kind")
        if stored_kind and not self.kind.restores(stored_kind):
            raise ObjectRefused(f"{info.key} was stored by {stored_kind!r}, not {self.kind.name!r}")
        self.kind.check_stored(info.metadata, self.target, self.options)
        for again in range(REPLACED_RETRIES + 1):
            chosen = self.codec
            recorded = info.metadata.get("codec")
            if recorded and self.codecs is not None and recorded != chosen.name:
                chosen = self.codecs(recorded)
            expected = self.kind.sha256(self.options) or info.metadata.get("sha256")
            try:
                raw = self._read_into_target(chosen, info, expected)
            except ObjectChanged:
                if again == REPLACED_RETRIES:
                    raise
                time.sleep(REPLACED_PAUSE * (2**again) * random.uniform(0.5, 1.0))
                fresh = self.store.head(info.key)
                if fresh is None:
                    raise
                info = fresh
                continue
            return raw, chosen, info
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_into_target(self, codec: Codec, info: ObjectInfo, sha256: str | None) -> int:
        """Stream ``info``'s object through ``codec`` into the kind's unpack; the plain bytes."""
        with self.store.open_read(info.key, info) as stored:
            plain = codec.decoder(ProgressReader(stored, self.progress, info.size))  # type: ignore[arg-type]
            counted = VerifyingReader(plain, sha256)
            self.kind.unpack(counted, self.target, self.options)  # type: ignore[arg-type]
            return counted.count

    def miss(self) -> CacheMiss:
        """The miss, saying what was looked up: the exact key, the restore keys, the store."""
        url = where = self.store.url()
        if self.store.offline_reason == "offline":
            where = f"the local tier (offline: {url} not asked)"
        elif self.store.offline_reason:  # the store failed under soft failure: the tier answered
            where = f"the local tier (soft failure: the store {url} failed: {self.store.offline_reason})"
        if not self.looked_up:
            message = f"miss, {self.key} not looked up: the store {where} failed (soft failure)"
        elif not self.store_ok:
            message = f"miss, {self.key} not restored: the store {where} failed (soft failure)"
        elif self.refused:
            message = f"miss, the object under {self.key} in {where} was refused"
        else:
            message = f"miss, nothing under {self.key} in {where}"
        searched = list(dict.fromkeys(self.restore_keys_tried))
        if searched:
            message += f"; restore keys searched: {', '.join(searched)}"
        if self.scopes_tried:
            message += f"; fallback scopes searched: {', '.join(self.scopes_tried)}"
        return CacheMiss(
            message,
            notes=tuple(self.notes),
            key=self.key,
            store=url,
            restore_keys=tuple(searched),
            looked_up=self.looked_up,
        )

    def fallback(self) -> Result:
        """The kind's fallback (``--url``, ``--pull``), stored when the store is up; else a miss."""
        from cacher.fetch import reporting  # a fetch inside produce counts on this transfer's line

        with reporting(self.progress):
            produced = self.kind.produce(self.target, self.options)
        if produced is None:
            raise self.miss()
        raw_bytes = stored_bytes = 0
        outcome: Outcome = "fetched"
        if not self.store.writable:
            self.notes.append("read-only: what was made is not stored")
            self.store_ok = False
        if self.store_ok:
            try:
                self.kind.check_upload(produced, self.options)
                up = _upload(
                    self.store, self.kind, self.codec, self.key, produced, self.options,
                    force=True, progress=self.progress,
                )
                raw_bytes, stored_bytes = up.raw_bytes, up.stored_bytes
                if up.outcome == "local":
                    self.notes.append("offline: kept in the local tier only, not shared")
                    self.store_ok = False
            except StorageError as exc:
                self._soft(exc, "not stored")
        if not self.store_ok:  # made, but the store is down: say so, with what was made
            outcome = "fetched-not-stored"
            raw_bytes = sum(os.path.getsize(p) for p in produced if os.path.isfile(p))
        seconds = time.monotonic() - self.started
        return Result(
            self.key, outcome, self.kind.name, self.codec.name, raw_bytes, stored_bytes, seconds, None,
            tuple(self.notes),
        )
