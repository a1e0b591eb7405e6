"""What the engine's transfers return: `Result`, one upload or download, and its outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
    #: A restore of a content-addressed tree (docs/format.md): the blobs fetched from the
    #: store and those already on this runner, in that order. None for a plain archive.
    cas_blobs: tuple[int, int] | None = None

    @property
    def blobs(self) -> dict[str, int] | None:
        """A content-addressed restore's contents as the ``--json`` document gives them."""
        if self.cas_blobs is None:
            return None
        return {"fetched": self.cas_blobs[0], "local": self.cas_blobs[1]}

    @property
    def match(self) -> Literal["exact", "partial", "miss"]:
        """How the cache answered a download: the exact key, a restore key, or nothing."""
        if self.local_match is not None:
            return self.local_match
        if self.outcome == "hit":
            return "exact"
        return "partial" if self.outcome == "partial" else "miss"
