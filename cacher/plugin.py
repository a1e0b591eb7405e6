"""Everything a plugin needs, in one import: ``from cacher.plugin import Kind, Option, ...``.

A plugin (a kind, a key function or a codec, registered under the ``cacher.kinds``,
``cacher.keys`` or ``cacher.codecs`` entry points) imports from here and from
`cacher.testing`, and from nothing else in cacher: what is named here is kept stable; the
modules behind it may move. The built-ins load through the same door and use the same names
(tests/plugins/test_architecture.py holds both to it); docs/plugins.md lists the names by purpose.

Each name is imported on first use (PEP 562): ``cacher exists`` loads the ``file`` kind, and a
plugin's import must not pull in the tar code or ``subprocess`` for a command that never uses
them. Type checkers read the imports under ``TYPE_CHECKING``, the interpreter reads `_HOMES`;
a test keeps the two and ``__all__`` in step.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cacher.codec import Codec, DecodingReader
    from cacher.errors import (
        ArtifactError,
        CacheMiss,
        CacherError,
        ConfigError,
        IntegrityError,
        ObjectRefused,
        PluginError,
        StorageError,
        UsageError,
    )
    from cacher.fetch import check_sha256, stream_url
    from cacher.fs.atomicfile import atomic_write
    from cacher.fs.globs import expand as expand_glob
    from cacher.fs.globs import glob_regex, has_magic
    from cacher.fs.scratch import scratch_directory
    from cacher.fs.staging import (
        check_restore_file,
        check_restore_target,
        check_upload_tree,
        restore_lock,
        staged_directory,
    )
    from cacher.keying.hashing import digest as content_digest
    from cacher.keying.keyfunc import KeyContext, KeyFunction
    from cacher.keying.platform_names import go_arch, go_os
    from cacher.kind import Kind, Option, Target
    from cacher.piped import PipedProcess
    from cacher.streams import Readable, ReaderBase, Writable
    from cacher.tar.extract import extract_tree
    from cacher.tar.write import TarWriter, write_tree

__all__ = [
    "ArtifactError",
    "CacheMiss",
    "CacherError",
    "Codec",
    "ConfigError",
    "DecodingReader",
    "IntegrityError",
    "KeyContext",
    "KeyFunction",
    "Kind",
    "ObjectRefused",
    "Option",
    "PipedProcess",
    "PluginError",
    "Readable",
    "ReaderBase",
    "StorageError",
    "TarWriter",
    "Target",
    "UsageError",
    "Writable",
    "atomic_write",
    "check_restore_file",
    "check_restore_target",
    "check_sha256",
    "check_upload_tree",
    "content_digest",
    "expand_glob",
    "extract_tree",
    "glob_regex",
    "go_arch",
    "go_os",
    "has_magic",
    "restore_lock",
    "scratch_directory",
    "staged_directory",
    "stream_url",
    "write_tree",
]

#: Each public name and where it lives: ``module`` or ``module:attribute`` when the public
#: name differs from the one inside cacher.
_HOMES: dict[str, str] = {
    # The contracts.
    "Kind": "cacher.kind",
    "Option": "cacher.kind",
    "Target": "cacher.kind",
    "KeyFunction": "cacher.keying.keyfunc",
    "KeyContext": "cacher.keying.keyfunc",
    "Codec": "cacher.codec",
    "DecodingReader": "cacher.codec",
    # The errors a plugin raises or catches.
    "CacherError": "cacher.errors",
    "ArtifactError": "cacher.errors",
    "ObjectRefused": "cacher.errors",
    "UsageError": "cacher.errors",
    "ConfigError": "cacher.errors",
    "IntegrityError": "cacher.errors",
    "StorageError": "cacher.errors",
    "PluginError": "cacher.errors",
    "CacheMiss": "cacher.errors",
    # Streams: the protocols, a reader base, a CLI streamed through, a URL fetched.
    "Readable": "cacher.streams",
    "Writable": "cacher.streams",
    "ReaderBase": "cacher.streams",
    "PipedProcess": "cacher.piped",
    "stream_url": "cacher.fetch",
    "check_sha256": "cacher.fetch",
    # Where a restore may write, and writing there whole or not at all.
    "check_restore_target": "cacher.fs.staging",
    "check_upload_tree": "cacher.fs.staging",
    "check_restore_file": "cacher.fs.staging",
    "restore_lock": "cacher.fs.staging",
    "staged_directory": "cacher.fs.staging",
    "atomic_write": "cacher.fs.atomicfile",
    "scratch_directory": "cacher.fs.scratch",
    # Tar archives.
    "extract_tree": "cacher.tar.extract",
    "write_tree": "cacher.tar.write",
    "TarWriter": "cacher.tar.write",
    # Glob patterns as the paths kind and dir --exclude read them.
    "glob_regex": "cacher.fs.globs",
    "has_magic": "cacher.fs.globs",
    "expand_glob": "cacher.fs.globs:expand",
    # What the built-in key functions compute.
    "content_digest": "cacher.keying.hashing:digest",
    "go_os": "cacher.keying.platform_names",
    "go_arch": "cacher.keying.platform_names",
}


if not TYPE_CHECKING:  # a type checker sees the imports above, and no catch-all attribute

    def __getattr__(name: str) -> object:
        """Import the module ``name`` lives in and keep the value here for the next look-up."""
        try:
            module, _, attribute = _HOMES[name].partition(":")
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        __import__(module)
        value = getattr(sys.modules[module], attribute or name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
