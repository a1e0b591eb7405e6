"""What a caller asks of the engine: one frozen request per transfer, and the store it binds.

`UploadRequest` and `DownloadRequest` carry everything a transfer needs besides the store
(kind, codec, key, targets, options, the soft-failure policy, progress, and for a download its
restore keys, fallback scopes and refusal policy), so `cacher.engine.upload` and
`cacher.engine.download` take ``(store, request)``: the CLI and the Python API build the same
requests. A request is never changed once built; `dataclasses.replace` derives another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cacher.codec import Codec
from cacher.keying.keyrules import validate_key
from cacher.kind import Kind
from cacher.stores.base import Store
from cacher.stores.softfail import HARD, SoftFailure
from cacher.streams import Progress

if TYPE_CHECKING:  # a layout is made only for trees: every download imports this module
    from cacher.engine.cas_layout import CasLayout


@dataclass(frozen=True)
class UploadRequest:
    """Pack ``targets`` with ``kind`` through ``codec`` under ``key``.

    ``force`` replaces an object already stored (else the upload is ``skipped``);
    ``soft_failure`` decides whether a failing store is an error or outcome ``failed``;
    ``progress`` is called with the bytes packed so far. ``tree_format`` ``cas`` stores an
    archive kind's tree content-addressed in ``cas`` (docs/format.md), sending only what the
    manifest of ``base`` (or of the newest key under a ``restore_keys`` prefix) does not hold.
    """

    kind: Kind
    codec: Codec
    key: str
    targets: Sequence[str]
    options: Mapping[str, Any] = field(default_factory=dict)
    force: bool = False
    soft_failure: SoftFailure = HARD
    progress: Progress | None = None
    tree_format: str = "tar"
    cas: CasLayout | None = None
    base: str | None = None
    restore_keys: Sequence[str] = ()


@dataclass(frozen=True)
class DownloadRequest:
    """Restore ``key`` with ``kind`` into ``target`` (None: the kind's own place, e.g. docker).

    - ``codec``: the codec to decode with when the object does not record its own; ``codecs``
      resolves a recorded codec name (None: ``codec`` is used for every object).
    - ``restore_keys``: prefixes tried in turn on a miss (the newest object under each);
      ``fits(key, prefix)`` filters their candidates (the arch suffix's rule), None takes all.
    - ``fallback_stores``: (scope, store) pairs searched after the job's own store, read only.
    - ``refused_is_miss``: a stored object the kind refuses (damaged, another kind's) is a miss
      to be replaced (``ensure``), not an error.
    - ``soft_failure``: whether a failing store is a miss with a note or an error.
    - ``progress``: called with the bytes read so far and the object's size.
    - ``tree_format``: the format looked up first when a key is stored in both (``tar``: the
      archive ``KEY``; ``cas``: the manifest ``_cas/manifests/KEY``); ``cas`` the job's layout
      (None: manifests are not looked up).
    """

    kind: Kind
    codec: Codec
    key: str
    target: str | None
    options: Mapping[str, Any] = field(default_factory=dict)
    restore_keys: Sequence[str] = ()
    fallback_stores: Sequence[tuple[str, Store]] = ()
    fits: Callable[[str, str], bool] | None = None
    refused_is_miss: bool = False
    codecs: Callable[[str], Codec] | None = None
    soft_failure: SoftFailure = HARD
    progress: Progress | None = None
    tree_format: str = "tar"
    cas: CasLayout | None = None


def bound_store(store: Store, kind: Kind, targets: Sequence[str], options: Mapping[str, Any]) -> Store:
    """The store as the kind's objects for these targets see it (`Kind.key_namespace`): the
    same store under ``<prefix>/<namespace>`` when the kind binds its targets into the key."""
    namespace = kind.key_namespace(targets, options)
    if not namespace:
        return store
    validate_key(namespace)
    return store.with_prefix("/".join(p for p in (store.prefix, namespace) if p))
