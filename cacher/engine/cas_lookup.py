"""Which stored object a key stands for, in either tree format: light enough for every
download to import (the content-addressed machinery is imported only when a manifest is
found: `cacher.engine.cas_restoring`)."""

from __future__ import annotations

from cacher.cas import names
from cacher.stores.base import ObjectInfo, Store


def is_manifest(info: ObjectInfo) -> bool:
    """Whether a looked-up object is a manifest (named ``_cas/manifests/KEY``)."""
    return info.key.startswith(names.MANIFESTS + "/")


def plain_key(info: ObjectInfo) -> str:
    """The key an object stands for: a manifest's key without its namespace."""
    return info.key[len(names.MANIFESTS) + 1 :] if is_manifest(info) else info.key


def look_up_exact(store: Store, key: str, tree_format: str) -> ObjectInfo | None:
    """The object of ``key``: the one of ``tree_format`` (its archive, or its manifest), else
    the other, so a key stored in one format costs one HEAD. A key is stored in one format at
    a time: an upload removes the other's object (`cacher.engine.cas_saving.settle_formats`)."""
    wanted = [key, names.manifest_name(key)]
    if tree_format == "cas":
        wanted.reverse()
    for name in wanted:
        info = store.head(name)
        if info is not None:
            return info
    return None
