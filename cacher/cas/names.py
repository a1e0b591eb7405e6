"""Where the content-addressed format's objects live, relative to a store's prefix.

A job writes under its own prefix ``P`` (the configured prefix, or its scope's
``<prefix>/_scopes/<segment>``): the manifest of KEY at ``P/_cas/manifests/KEY``, packs at
``P/_cas/packs/<2 hex>/<64 hex>.pack``. The plain format keeps ``P/KEY``, so an older reader
(cacher 0.2.0, the Go tool) asked for KEY finds no object there: a miss, never a manifest.

A manifest names its packs by *reference*: the pack's name relative to the configured prefix,
so a manifest may use packs of a fallback scope (``_scopes/main/_cas/packs/...``). A reference
is checked against one fixed shape before anything is read through it.
"""

from __future__ import annotations

import re

from cacher.errors import ObjectRefused
from cacher.keying.keyrules import validate_key

#: The first key segment of the format's objects under a job's prefix.
NAMESPACE = "_cas"
MANIFESTS = f"{NAMESPACE}/manifests"
PACKS = f"{NAMESPACE}/packs"

#: Object metadata of a manifest: ``kind`` names no kind, so any kind of an older cacher that
#: meets the object (through a restore-key listing) refuses it before reading a byte.
MANIFEST_KIND = "cas-manifest"
MANIFEST_METADATA = {"kind": MANIFEST_KIND, "codec": "zstd", "format": "cacher-tree/1"}
PACK_METADATA = {"kind": "cas-pack", "codec": "none", "format": "cacher-pack/1"}

_HEX64 = re.compile(r"[0-9a-f]{64}")
#: A scope segment as cacher.keying.scopes makes it: a clean slug, or a slug, ``--`` and 16 hex.
_SEGMENT = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PACK_REF = re.compile(rf"(?:_scopes/({_SEGMENT})/)?{PACKS}/([0-9a-f]{{2}})/([0-9a-f]{{64}})\.pack")


def manifest_name(key: str) -> str:
    """The manifest object of ``key`` under the job's prefix."""
    return f"{MANIFESTS}/{validate_key(key)}"


def pack_name(pack_id: str) -> str:
    """The pack object named by the sha256 of its bytes, under the job's prefix."""
    if not _HEX64.fullmatch(pack_id):
        raise ValueError(f"not a pack id: {pack_id!r}")
    return f"{PACKS}/{pack_id[:2]}/{pack_id}.pack"


def pack_ref(pack_id: str, scope_segment: str | None = None) -> str:
    """A pack's reference, as a manifest records it: its name relative to the configured prefix."""
    name = pack_name(pack_id)
    return f"_scopes/{scope_segment}/{name}" if scope_segment else name


def parse_pack_ref(ref: object) -> tuple[str | None, str]:
    """The scope segment (None: unscoped) and pack id of a reference; `ObjectRefused` for any
    other string (a path that could leave the format's namespace is never read)."""
    match = _PACK_REF.fullmatch(ref) if isinstance(ref, str) else None
    if match is None or match.group(2) != match.group(3)[:2]:
        raise ObjectRefused(f"the manifest names a pack {ref!r} that is not a pack reference")
    return match.group(1), match.group(3)
