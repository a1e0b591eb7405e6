"""A runner-local tier: local copies of a store's objects, trusted only when the store agrees.

`TieredStore` wraps any `Store`. A download still sends its one HEAD; when the tier holds a
copy of the same object (same ETag, or the same write id cacher recorded when it uploaded it,
or the same size and modification time where a store has neither) the bytes come from local
disk and no GET is sent. Otherwise the object streams from the store while a copy is written
beside it, published (an atomic rename) only when the read reached the object's end and the
restore above it verified what it read (the `open_read` block ended normally).

Every local copy carries the sha256 the tier computed when it wrote it and is checked against
it as it is read; a damaged copy is dropped and the read starts again from the store
(`ObjectChanged`, which the engine already answers with a fresh HEAD).

Shared by concurrent processes without a daemon:

- a copy is written to a temporary file (flock held from birth) and renamed into place;
- a reader holds a shared flock on the copy while it reads it; eviction takes an exclusive
  flock without waiting and passes over a copy it cannot lock, so a copy being read is never
  removed;
- publishing and eviction run under one tier-wide lock, so the tier stays under its bound
  (entries only: a copy being written counts once published).

Least recently used goes first: a copy's file modification time is the time it was last used.

Not fsspec's ``filecache::``/``simplecache::``: they are not safe across processes (fsspec
issue #1126), have no size bound, and would put fsspec back on the S3 read path.
"""

from cacher.config.sizes import parse_size
from cacher.stores.tier.disk import DEFAULT_MAX, WRITE_ID, Entry, LocalTier
from cacher.stores.tier.store import TieredStore, location_of, open_tiered, tier_of, tiered

__all__ = [
    "DEFAULT_MAX",
    "WRITE_ID",
    "Entry",
    "LocalTier",
    "TieredStore",
    "location_of",
    "open_tiered",
    "parse_size",
    "tier_of",
    "tiered",
]
