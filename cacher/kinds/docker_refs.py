"""Docker image references: the grammar docker accepts, and the one full form two names share.

The grammar is distribution's ``reference`` package (the one docker parses names with):
``[host[:port]/]path[:tag][@digest]``, lowercase path components, a tag of at most 128 word
characters, dots and dashes, a name of at most 255 characters. A restore compares what it was
asked for with the tags a ``docker save`` archive records, so both go through `normalized`:
``ubuntu`` and ``docker.io/library/ubuntu:latest`` are one image to docker, and so to cacher.
"""

from __future__ import annotations

import re

__all__ = ["covers", "is_id_prefix", "names_of", "normalized", "valid_reference"]

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII)
_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})", re.ASCII)
NAME_MAX = 255
DEFAULT_DOMAIN = "docker.io"


def valid_reference(image: str) -> bool:
    """Whether docker would parse ``image`` as an image reference (or an image ID)."""
    found = _REFERENCE.fullmatch(image)
    return found is not None and len(found["name"]) <= NAME_MAX


def normalized(image: str) -> str | None:
    """The full form of a valid reference (``docker.io/library/x:latest`` for ``x``), else None.

    As docker's ``ParseNormalizedNamed``: the first path component is a registry host when it
    holds a dot or a colon, is ``localhost`` or is not lowercase; otherwise the host is Docker
    Hub, where one-component names live under ``library/``. No tag and no digest means ``latest``.
    """
    found = _REFERENCE.fullmatch(image)
    if found is None:
        return None
    name, tag, digest = found["name"], found["tag"], found["digest"]
    first, slash, rest = name.partition("/")
    if slash and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain in ("index.docker.io", DEFAULT_DOMAIN):
        domain = DEFAULT_DOMAIN
        if "/" not in path:
            path = f"library/{path}"
    if tag is None and digest is None:
        tag = "latest"
    return f"{domain}/{path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def is_id_prefix(image: str, image_id: str) -> bool:
    """Whether ``image`` names ``image_id`` (hex, no algorithm) as docker resolves IDs: the
    whole ID, with or without ``sha256:``, or a prefix of it."""
    found = _ID_PREFIX.fullmatch(image)
    return found is not None and image_id.startswith(found[1])


def names_of(image: str) -> set[str]:
    """The full forms ``image`` may name: its own, and for a name without a registry host also
    ``localhost/NAME``, where podman records the images it built."""
    found = {normalized(image)}
    if normalized(image) == normalized(f"{DEFAULT_DOMAIN}/{image}"):  # no registry host named
        found.add(normalized(f"localhost/{image}"))
    return {name for name in found if name is not None}


def covers(saved: str, image: str) -> bool:
    """Whether ``docker save SAVED`` may write ``image`` into its archive: the same name, or
    SAVED names a repository without a tag (docker then saves every tag of it)."""
    found = _REFERENCE.fullmatch(saved)
    if found is None:
        return False
    if names_of(saved) & names_of(image):
        return True
    if found["tag"] is None and found["digest"] is None:
        repos = {name.removesuffix(":latest") for name in names_of(saved)}
        return any(name.rpartition(":")[0] in repos for name in names_of(image) if "@" not in name)
    return False
