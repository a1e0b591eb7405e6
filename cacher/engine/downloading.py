"""Download (store -> codec -> kind): the exact key, restore keys, fallback scopes, the kind's
fallback; retried when the object is replaced mid-read; refused objects never poison a key.

With a content-addressed layout in the request, a key may be stored as a manifest
(``_cas/manifests/KEY``) as well as an archive: both are looked up, and the newer wins
(`cacher.engine.cas_restoring` restores a manifest)."""

from __future__ import annotations

import dataclasses
import heapq
import os
import random
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from cacher.cas import names
from cacher.codec import Codec
from cacher.engine.cas_lookup import is_manifest, look_up_exact, plain_key
from cacher.engine.listing import CANDIDATES, newest_first
from cacher.engine.requests import DownloadRequest, UploadRequest, bound_store
from cacher.engine.results import Outcome, Result
from cacher.errors import CacheMiss, IntegrityError, ObjectChanged, ObjectRefused, StorageError, UsageError
from cacher.stores.base import ObjectInfo, Store
from cacher.streams import ProgressReader, VerifyingReader

#: How often a download starts again when the object is replaced while it is read, and the
#: first pause before it does (doubled each time, jittered): jobs that store one key often
#: finish together, so a reader that starts again at once can be overtaken every time.
REPLACED_RETRIES = 5
REPLACED_PAUSE = 0.1


def download(store: Store, request: DownloadRequest) -> Result:
    """Restore the request's key into its target: the exact key, else the newest object under
    each restore-key prefix in turn (those ``fits(key, prefix)`` accepts), else the kind's
    fallback (``--url``, ``--pull``), else `CacheMiss`.

    A stored object that is refused (`IntegrityError`, `ObjectRefused`: damaged, stored by
    another kind, holding what a restore refuses) never poisons its key: with a fallback, or
    with ``refused_is_miss`` (``ensure``, which then builds), it is a miss and gets replaced;
    a restore-key candidate is skipped for the next one; otherwise the error says how to
    replace it. Under soft failure, a storage error is also a miss, and a failed upload after
    the fallback only a note. After the job's own store, each of ``fallback_stores`` (other
    scopes, read only) is tried the same way, exact key before restore keys; what the fallback
    makes is stored in the job's own store only, and never when it is not ``writable``.
    """
    if any(not prefix for prefix in request.restore_keys):
        raise UsageError("a restore key must not be empty: it would match every key in the store")
    kind, options = request.kind, request.options
    kind.check_download(request.target, options)
    bound = [request.target] if request.target is not None else []
    run = _Download(bound_store(store, kind, bound, options), request)
    fallback_stores = [
        (scope, bound_store(other, kind, bound, options)) for scope, other in request.fallback_stores
    ]
    found = run.look_up()
    if found is not None:
        return run.restore(found, "hit") or run.fallback()
    result = run.restore_keys(request.restore_keys)
    for scope, other in fallback_stores:
        if result is not None or not run.store_ok:
            break
        result = run.from_scope(scope, other, request.restore_keys)
    return result or run.fallback()


class _Download:
    """One download: look-up, restore with retry, fallback. Its policy is the request's; a
    storage error goes through `_soft` (the request's `SoftFailure`), once: it is either
    raised or becomes a note and a store marked down."""

    def __init__(self, store: Store, request: DownloadRequest) -> None:
        self.store, self.request = store, request
        self.kind, self.key, self.options = request.kind, request.key, request.options
        self.started = time.monotonic()
        self.notes: list[str] = []
        self.store_ok = True
        #: Whether the store answered for the exact key, the restore keys and the scopes searched.
        self.looked_up = self.refused = False
        self.restore_keys_tried: list[str] = []
        self.scopes_tried: list[str] = []

    def _soft(self, exc: StorageError, what: str) -> None:
        reason = self.request.soft_failure.absorb(exc)
        self.notes.append(f"soft failure, {what}: {reason}")
        self.store_ok = False

    def look_up(self) -> ObjectInfo | None:
        """The exact key's object, or None (missing, or the store is down under soft failure)."""
        try:
            info = self._exact()
            if info is None:
                self.store.check_bucket()
            self.looked_up = True
            return info
        except StorageError as exc:
            self._soft(exc, "treated as a miss")
            return None

    def _exact(self) -> ObjectInfo | None:
        """The exact key's archive or, with a layout, its manifest (`look_up_exact`)."""
        if self.request.cas is None:
            return self.store.head(self.key)
        return look_up_exact(self.store, self.key, self.request.tree_format)

    def _newest(self, prefix: str, older_than: tuple[datetime, str] | None) -> list[ObjectInfo]:
        """The newest candidates under a restore-key prefix (`newest_first`): archives and, with
        a layout, manifests (``_cas/manifests/<prefix>...``, judged by the key they stand for),
        which compete by recency; a manifest keeps its object name, to be told apart."""
        fits = self.request.fits
        plain = newest_first(self.store.iter_list(prefix), prefix, fits, older_than=older_than)
        if self.request.cas is None:
            return plain
        stored = self.store.iter_list(f"{names.MANIFESTS}/{prefix}")
        listed = (dataclasses.replace(o, key=plain_key(o)) for o in stored)
        found = newest_first(listed, prefix, fits, older_than=older_than)
        manifests = [dataclasses.replace(o, key=f"{names.MANIFESTS}/{o.key}") for o in found]
        return heapq.nlargest(CANDIDATES, plain + manifests, key=_recency)

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
        answers; a refused candidate is skipped for the next newest. The listing streams: the
        `CANDIDATES` newest are held, and listed again for the next few if all are refused."""
        for prefix in prefixes:
            older_than: tuple[datetime, str] | None = None
            while self.store_ok:
                try:
                    batch = self._newest(prefix, older_than)
                except StorageError as exc:
                    self._soft(exc, "treated as a miss")
                    return None
                if older_than is None:
                    self.restore_keys_tried.append(prefix)
                result = self._first_restored(batch)
                if result is not None or not self.store_ok:
                    return result
                if len(batch) < CANDIDATES:
                    break  # every candidate under this prefix was tried
                older_than = _recency(batch[-1])
            if not self.store_ok:
                return None
        return None

    def _first_restored(self, candidates: Sequence[ObjectInfo]) -> Result | None:
        """The first candidate that restores (a partial hit); None when none does or the store
        went down on the way."""
        for match in candidates:
            try:
                # A listing has no metadata or ETag: one HEAD gives the kind and codec, and pins the read.
                full = self.store.head(match.key)
            except StorageError as exc:
                self._soft(exc, "treated as a miss")
                return None
            if full is None:
                continue  # deleted since the listing
            result = self.restore(full, "partial")
            if result is not None or not self.store_ok:
                return result
        return None

    def restore(self, info: ObjectInfo, outcome: Outcome) -> Result | None:
        """Restore one candidate; None when it is to be treated as a miss."""
        try:
            raw, codec, info, stored, blobs = self._restore_latest(info)
        except (IntegrityError, ObjectRefused) as exc:
            self._refused(exc, info, outcome)
            return None
        except StorageError as exc:
            self._soft(exc, "treated as a miss")
            return None
        seconds = time.monotonic() - self.started
        checked = bool(self.kind.sha256(self.options) or info.metadata.get("sha256")) or codec != "none"
        local_match: Literal["exact", "partial"] | None = None
        reason = self.store.offline_reason
        if reason is not None:  # from the runner-local tier alone: the store was not asked
            local_match, outcome = ("exact" if outcome == "hit" else "partial"), "local"
            if reason != "offline":
                self.notes.append(f"soft failure, restored from the local tier: {reason}")
        return Result(
            self.key, outcome, self.kind.name, codec, raw, stored, seconds, plain_key(info),
            tuple(self.notes), verified=checked, local_match=local_match,
            from_local_tier=self.store.read_locally(info.key), cas_blobs=blobs,
        )

    def _refused(self, exc: IntegrityError | ObjectRefused, info: ObjectInfo, outcome: Outcome) -> None:
        """A refused candidate: a restore key's is passed over; the exact key's is a miss to be
        made again (``refused_is_miss``, a fallback) or an error saying how to replace it."""
        if outcome == "partial":
            self.notes.append(f"skipped {info.key}: {exc.message}")
            return
        if not (self.request.refused_is_miss or self.kind.fallback_requested(self.options)):
            error_class = IntegrityError if isinstance(exc, IntegrityError) else ObjectRefused
            hint = f"replace it: cacher {self.kind.name} upload --force {self.key} ..."
            raise error_class(exc.message, hint=hint) from None
        self.refused = True
        what = "failed verification" if isinstance(exc, IntegrityError) else "was refused"
        self.notes.append(f"the stored object {what} ({exc.message}); made again")

    def _restore_latest(self, info: ObjectInfo) -> tuple[int, str, ObjectInfo, int, tuple[int, int] | None]:
        """Restore ``info``'s object (raw bytes, codec, object, stored bytes read, a manifest's
        blob counts); if another job replaces it mid-read (reads are pinned to its ETag), start
        again on the new object: the destination is untouched, restores are staged."""
        stored_kind = info.metadata.get("kind")
        if stored_kind and not is_manifest(info) and not self.kind.restores(stored_kind):
            raise ObjectRefused(f"{info.key} was stored by {stored_kind!r}, not {self.kind.name!r}")
        if not is_manifest(info):
            self.kind.check_stored(info.metadata, self.request.target, self.options)
        for again in range(REPLACED_RETRIES + 1):
            try:
                if is_manifest(info):
                    assert self.request.cas is not None  # manifests are looked up only with a layout
                    # Imported only for a tree: a download of a file never pays for them.
                    from cacher.engine.cas_restoring import restore_manifest
                    from cacher.engine.cas_saving import CODEC as CAS_CODEC

                    done = restore_manifest(
                        self.store, info, self.request.cas, self.kind, self.request.target, self.options
                    )
                    blobs = (done.counts.fetched, done.counts.local)
                    return done.raw_bytes, CAS_CODEC, done.info, done.stored_bytes, blobs
                chosen = self._codec_of(info)
                expected = self.kind.sha256(self.options) or info.metadata.get("sha256")
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
            return raw, chosen.name, info, info.size, None
        raise AssertionError("unreachable")  # pragma: no cover

    def _codec_of(self, info: ObjectInfo) -> Codec:
        """The codec the object records (resolved by the request's ``codecs``), else the request's."""
        recorded = info.metadata.get("codec")
        if recorded and self.request.codecs is not None and recorded != self.request.codec.name:
            return self.request.codecs(recorded)
        return self.request.codec

    def _read_into_target(self, codec: Codec, info: ObjectInfo, sha256: str | None) -> int:
        """Stream ``info``'s object through ``codec`` into the kind's unpack; the plain bytes."""
        with self.store.open_read(info.key, info) as stored:
            plain = codec.decoder(ProgressReader(stored, self.request.progress, info.size))  # type: ignore[arg-type]
            counted = VerifyingReader(plain, sha256)
            self.kind.unpack(counted, self.request.target, self.options)  # type: ignore[arg-type]
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

        with reporting(self.request.progress):
            produced = self.kind.produce(self.request.target, self.options)
        if produced is None:
            raise self.miss()
        raw_bytes = stored_bytes = 0
        outcome: Outcome = "fetched"
        if not self.store.writable:
            self.notes.append("read-only: what was made is not stored")
            self.store_ok = False
        if self.store_ok:
            raw_bytes, stored_bytes = self._store_produced(produced)
        if not self.store_ok:  # made, but the store is down: say so, with what was made
            outcome = "fetched-not-stored"
            raw_bytes = sum(os.path.getsize(p) for p in produced if os.path.isfile(p))
        seconds = time.monotonic() - self.started
        return Result(
            self.key, outcome, self.kind.name, self.request.codec.name, raw_bytes, stored_bytes, seconds,
            None, tuple(self.notes),
        )

    def _store_produced(self, produced: Sequence[str]) -> tuple[int, int]:
        """Store what the fallback made under the key (raw and stored bytes); a store that
        fails (soft) or keeps it offline marks the store down with a note."""
        from cacher.engine.uploading import store_upload  # a fallback's save only

        try:
            self.kind.check_upload(produced, self.options)
            up = store_upload(
                self.store,
                UploadRequest(
                    self.kind, self.request.codec, self.key, produced, self.options,
                    force=True, progress=self.request.progress,
                ),
            )
        except StorageError as exc:
            self._soft(exc, "not stored")
            return 0, 0
        if up.outcome == "local":
            self.notes.append("offline: kept in the local tier only, not shared")
            self.store_ok = False
        return up.raw_bytes, up.stored_bytes


def _recency(obj: ObjectInfo) -> tuple[datetime, str]:
    """`recency` by the key an object stands for (a manifest's, without its namespace)."""
    assert obj.modified is not None  # filtered out by newest_first
    return obj.modified, plain_key(obj)
