"""What a ``docker save`` archive holds, learnt from its stream before ``docker load`` acts on it.

`ArchiveWatch` follows the tar headers of the bytes on their way to ``docker load`` (skipping
layer data, keeping only ``manifest.json`` and ``index.json``, which are small). ``docker save``
writes ``manifest.json`` near the end, so the images are known only then; ``docker load`` acts
only once the archive has ended, and the kind feeds it each chunk after the watch has seen it.
A request for an image the manifest does not list is therefore refused, and ``docker load``
killed, before it could load anything: no tag in the engine is created or replaced.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from cacher.kinds.docker_refs import is_id_prefix, names_of, normalized
from cacher.plugin import ObjectRefused

__all__ = ["ArchiveWatch"]

BLOCK = 512
KEPT_MAX = 16 << 20  # manifest.json / index.json / a PAX header larger than this is refused
KEPT = ("manifest.json", "index.json")
HEADER_ONLY = frozenset(b"123456")  # links, devices, directories, fifos: no data (as Go's tar)
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
#: Members that may be an image config, named by its digest (docker's own layout, then OCI's).
_CONFIG_NAME = re.compile(r"([0-9a-f]{64})\.json|blobs/sha256/([0-9a-f]{64})", re.ASCII)
_NAME_ANNOTATION = "io.containerd.image.name"


@dataclass
class _Member:
    """The member whose data is passing: bytes left (with padding), and what to keep of them."""

    name: str = ""
    typeflag: int = 0
    left: int = 0
    padding: int = 0
    kept: bytearray | None = None
    hashed: Any = None  # a sha256 of the data, for a member that may be a config


@dataclass
class ArchiveWatch:
    """Watch a ``docker save`` stream for ``target`` (None: watch nothing, check nothing).

    `feed` each chunk before it goes to ``docker load``; it raises `ObjectRefused` as soon as
    the archive is known not to hold ``target``: its manifest does not list it, or the archive
    ends (or the stream stops) without a readable manifest. `image_ids` then gives the IDs the
    loaded image may have.
    """

    target: str | None
    _header: bytearray = field(default_factory=bytearray)
    _member: _Member = field(default_factory=_Member)
    _next: dict[str, str] = field(default_factory=dict)  # PAX / GNU long-name overrides
    _ended: bool = False
    _config_ids: set[str] = field(default_factory=set)
    _configs: dict[str, str] = field(default_factory=dict)  # the target's config member -> its ID
    _digests_ok: dict[str, bool] = field(default_factory=dict)  # config-like member -> digest matches
    _index: bytes | None = None
    _held: bool = False
    _wanted: set[str] | None = None

    def feed(self, data: bytes) -> None:
        """Follow ``data``; raise `ObjectRefused` once the archive cannot hold the target."""
        if self.target is None or self._ended:
            return
        view, at = memoryview(data), 0
        while at < len(view) and not self._ended:
            member = self._member
            if member.left or member.padding:
                at = self._data(view, at)
                continue
            take = min(BLOCK - len(self._header), len(view) - at)
            self._header += view[at : at + take]
            at += take
            if len(self._header) == BLOCK:
                self._begin(bytes(self._header))
                self._header.clear()
        if self._ended:
            self._check_end()

    def finish(self) -> None:
        """The stream ended: refuse a target that no complete manifest listed."""
        if self.target is None:
            return
        if self._held and (self._header or self._member.left or self._member.padding):
            raise self._refused("is cut short in the middle of a member")
        self._check_end()

    def _check_end(self) -> None:
        """At the archive's end: the manifest listed the target, and its config was there with
        the digest its name claims (the ID docker will give the image)."""
        if not self._held:
            raise self._refused("holds no manifest.json that lists it")
        for name in self._configs:
            if not self._digests_ok.get(name):
                raise self._refused(f"has no config {name} whose sha256 is the one its name says")

    def image_ids(self) -> set[str]:
        """The IDs (hex) the target may have once loaded: its config's digest (docker's image
        store), or a manifest digest ``index.json`` records under its name (containerd's)."""
        ids = set(self._config_ids)
        try:
            index = json.loads(self._index) if self._index is not None else {}
            for entry in index.get("manifests") or []:
                named = (entry.get("annotations") or {}).get(_NAME_ANNOTATION)
                digest = str(entry.get("digest", ""))
                if named and self._names_target(str(named)) and digest.startswith("sha256:"):
                    ids.add(digest[len("sha256:") :])
        except (ValueError, AttributeError, TypeError):
            pass  # an index docker wrote is valid; a bad one only adds no ID
        return ids

    # -- the tar stream -------------------------------------------------------------------

    def _data(self, view: memoryview, at: int) -> int:
        member = self._member
        if member.left:
            take = min(member.left, len(view) - at)
            if member.kept is not None:
                member.kept += view[at : at + take]
            if member.hashed is not None:
                member.hashed.update(view[at : at + take])
            member.left -= take
            at += take
            if not member.left:
                self._end_of_data()
            return at
        take = min(member.padding, len(view) - at)
        member.padding -= take
        return at + take

    def _begin(self, header: bytes) -> None:
        if not any(header):
            self._ended = True
            return
        if _checksum(header) != _octal(header[148:156]):
            raise self._refused("is not a tar archive (a header's checksum is wrong)")
        typeflag = header[156]
        name = self._next.pop("path", None) or _name(header)
        size_text = self._next.pop("size", None)
        size = int(size_text) if size_text and size_text.isdigit() else _size(header)
        self._next.clear()
        if typeflag in HEADER_ONLY:
            size = 0
        name = posixpath.normpath("/" + name).lstrip("/")
        keep = typeflag in b"xL" or name in KEPT
        if keep and size > KEPT_MAX:
            raise self._refused(f"has a {name or 'header'} of {size} bytes")
        self._member = _Member(name, typeflag, size, -size % BLOCK, bytearray() if keep else None)
        if _CONFIG_NAME.fullmatch(name):  # hashed when a file, else it replaces one: not a config
            self._digests_ok[name] = False
            if typeflag in b"0\x007" and size <= KEPT_MAX:
                self._member.hashed = hashlib.sha256()
        if name == "manifest.json" and typeflag not in b"0\x007":
            raise self._refused("has a manifest.json that is not a file")
        if not size:
            self._end_of_data()

    def _end_of_data(self) -> None:
        member = self._member
        kept = bytes(member.kept) if member.kept is not None else b""
        if member.hashed is not None:
            found = _CONFIG_NAME.fullmatch(member.name)
            assert found is not None
            self._digests_ok[member.name] = member.hashed.hexdigest() == (found[1] or found[2])
        if member.typeflag == ord("x"):
            self._next.update(_pax(kept))
        elif member.typeflag == ord("L"):
            self._next["path"] = kept.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif member.name == "index.json":
            self._index = kept
        elif member.name == "manifest.json":
            self._check_manifest(kept)

    def _check_manifest(self, raw: bytes) -> None:
        try:
            entries = json.loads(raw)
            images = [(str(e["Config"]), [str(t) for t in e.get("RepoTags") or []]) for e in entries]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise self._refused("has a manifest.json that cannot be read") from None
        self._config_ids, self._configs = set(), {}
        for config, tags in images:
            found = _HEX64.search(config)
            if any(self._names_target(tag) for tag in tags) or (
                found and is_id_prefix(str(self.target), found[0])
            ):
                if not found:
                    raise self._refused(f"names its config {config!r}, which is not an image ID")
                self._config_ids.add(found[0])
                self._configs[posixpath.normpath("/" + config).lstrip("/")] = found[0]
        if not self._config_ids:
            held = [tag for config, tags in images for tag in tags or [_untagged(config)]]
            listed = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
            raise self._refused(f"holds {listed or 'no image'}")
        self._held = True

    def _names_target(self, tag: str) -> bool:
        if self._wanted is None:
            self._wanted = names_of(str(self.target))
        return normalized(tag) in self._wanted

    def _refused(self, why: str) -> ObjectRefused:
        return ObjectRefused(
            f"the stored archive does not hold {self.target}" + (f": it {why}" if why else "")
        )


def _untagged(config: str) -> str:
    """How an image the manifest lists without a tag is named in a message."""
    found = _HEX64.search(config)
    return f"untagged sha256:{found[0][:12]}" if found else f"untagged {config!r}"


def _octal(field: bytes) -> int:
    text = field.split(b"\0", 1)[0].strip(b" \0")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        return -1


def _size(header: bytes) -> int:
    field = header[124:136]
    if field[0] & 0x80:  # base-256, as Go and GNU tar write sizes of 8 GiB and more
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    return max(_octal(field), 0)


def _checksum(header: bytes) -> int:
    return sum(header[:148]) + 8 * 32 + sum(header[156:])


def _name(header: bytes) -> str:
    name = header[:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0":  # POSIX ustar: a prefix field holds the start of long names
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "replace")


def _pax(data: bytes) -> dict[str, str]:
    """The ``path`` and ``size`` records of a PAX extended header (``LEN key=value\\n``...)."""
    found: dict[str, str] = {}
    at = 0
    while at < len(data):
        length_text, _, _ = data[at : at + 24].partition(b" ")
        if not length_text.isdigit() or int(length_text) <= 0:
            break
        record = data[at : at + int(length_text)]
        at += int(length_text)
        key, _, value = record.partition(b" ")[2].rstrip(b"\n").partition(b"=")
        if key in (b"path", b"size"):
            found[key.decode()] = value.decode("utf-8", "replace")
    return found
