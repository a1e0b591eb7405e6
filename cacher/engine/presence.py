"""``exists``: whether a key is stored, and `Presence`, its answer.

Apart from the transfers so that ``cacher exists`` imports no more of the engine than this.
"""

from __future__ import annotations

from dataclasses import dataclass

from cacher.cas.names import MANIFESTS
from cacher.errors import StorageError
from cacher.stores.base import Store
from cacher.stores.softfail import HARD, SoftFailure


@dataclass(frozen=True)
class Presence:
    """What ``exists`` found: ``failure`` is the store's error when a soft failure hid it."""

    found: bool
    failure: str | None = None


def exists(store: Store, key: str, *, soft_failure: SoftFailure = HARD) -> Presence:
    """Whether ``key`` is stored: an object under it, or a content-addressed tree's manifest
    (looked up only when there is no object: a miss costs a second HEAD); a missing bucket is
    an error, not a miss. Under soft failure, a store that fails answers "not found" and says why."""
    try:
        if store.exists(key) or store.exists(f"{MANIFESTS}/{key}"):
            return Presence(True)
        store.check_bucket()
    except StorageError as exc:
        return Presence(False, soft_failure.absorb(exc))
    return Presence(False)
