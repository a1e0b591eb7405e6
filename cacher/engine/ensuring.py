"""``ensure``: restore a key, else run the caller's build and store what it made.

The decisions live here (an exact hit ends it; a partial hit or a miss builds; a failed build
stores nothing; a store that fails after the build is a soft failure or an error saying the build
succeeded); the caller gives the build and may wrap each transfer (`EnsureSteps`) to report it
as it happens, as the CLI does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from cacher.engine.downloading import download
from cacher.engine.requests import DownloadRequest, UploadRequest
from cacher.engine.results import Result
from cacher.engine.uploading import upload
from cacher.errors import CacheMiss, CacherError, UsageError
from cacher.stores.base import Store

EnsureOutcome = Literal["hit", "local", "built", "read-only", "failed", "build-failed"]


@dataclass(frozen=True)
class Ensured:
    """What ``ensure`` did.

    ``outcome``: ``hit`` (the exact key restored), ``local`` (the exact key from the local tier
    alone), ``built`` (built and stored), ``read-only`` (built, not stored: the store is read
    only), ``failed`` (built; the store failed under soft failure, ``reason`` says how) or
    ``build-failed`` (the build exited ``build_status``; nothing stored). ``restored`` is the
    download's result (None on a miss; a partial hit is restored, then built over);
    ``uploaded`` the upload's (None when nothing was uploaded).
    """

    key: str
    kind: str
    outcome: EnsureOutcome
    restored: Result | None = None
    build_status: int | None = None
    uploaded: Result | None = None
    reason: str | None = None

    @property
    def match(self) -> Literal["exact", "partial", "miss"]:
        """How the cache answered the restore."""
        return self.restored.match if self.restored is not None else "miss"

    @property
    def failed(self) -> Literal["build", "cacher"] | None:
        """Which side failed: the build command, or cacher's store (a soft failure)."""
        return {"build-failed": "build", "failed": "cacher"}.get(self.outcome)  # type: ignore[return-value]


class EnsureSteps:
    """How ``ensure`` runs its parts: ``build`` runs the build command (its exit status); the
    transfers run the engine's. A caller that reports each step subclasses it."""

    def __init__(self, build: Callable[[], int]) -> None:
        self._build = build

    def download(self, store: Store, request: DownloadRequest) -> Result | None:
        """The restore; None on a miss."""
        try:
            return download(store, request)
        except CacheMiss:
            return None

    def build(self) -> int:
        """Run the build; its exit status."""
        return self._build()

    def upload(self, store: Store, request: UploadRequest) -> Result:
        """Store what the build made."""
        return upload(store, request)


def ensure(store: Store, request: DownloadRequest, steps: EnsureSteps) -> Ensured:
    """Restore ``request``'s key into its target (a stored object the kind refuses is a miss,
    to be replaced); on an exact hit that is all. Otherwise run the build and, when it
    succeeds, upload the target under the key (replacing what is there) under the request's
    soft-failure policy. A `CacherError` from that upload says the build succeeded."""
    target = request.target
    if target is None:
        raise UsageError(f"cacher {request.kind.name} ensure needs a target")
    request = replace(request, refused_is_miss=True)
    restored = steps.download(store, request)
    kind, key = request.kind.name, request.key
    if restored is not None and restored.match == "exact":
        return Ensured(key, kind, "local" if restored.outcome == "local" else "hit", restored)
    status = steps.build()
    if status != 0:
        return Ensured(key, kind, "build-failed", restored, status)
    made = UploadRequest(
        request.kind, request.codec, key, [target], request.options,
        force=True, soft_failure=request.soft_failure,
        # Content-addressed: what the restore brought (a restore key's match) need not be sent.
        tree_format=request.tree_format, cas=request.cas, restore_keys=request.restore_keys,
        base=restored.matched_key if restored is not None else None,
    )
    try:
        uploaded = steps.upload(store, made)
    except CacherError as exc:  # cacher's side failed after the build: say so
        exc.message += " (the build command succeeded; its result was not stored)"
        raise
    if uploaded.outcome == "failed":
        return Ensured(key, kind, "failed", restored, 0, uploaded, uploaded.reason)
    outcome: EnsureOutcome = "read-only" if uploaded.outcome == "read-only" else "built"
    return Ensured(key, kind, outcome, restored, 0, uploaded)
