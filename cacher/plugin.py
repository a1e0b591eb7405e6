"""Everything a plugin needs, in one import: ``from cacher.plugin import Kind, Option, ...``.

A plugin (a kind, a key function or a codec, registered under the ``cacher.kinds``,
``cacher.keys`` or ``cacher.codecs`` entry points) imports from here and from
`cacher.testing`, and from nothing else in cacher: what is named here is kept stable; the
modules behind it may move. The built-ins load through the same door and use the same names.
"""

from cacher.codec import Codec, DecodingReader
from cacher.errors import (
    ArtifactError,
    CacheMiss,
    CacherError,
    ConfigError,
    IntegrityError,
    PluginError,
    StorageError,
    UsageError,
)
from cacher.fs.atomicfile import atomic_write
from cacher.fs.staging import staged_directory
from cacher.keying.keyfunc import KeyContext, KeyFunction
from cacher.kind import Kind, Option, Target
from cacher.piped import PipedProcess
from cacher.streams import Readable, Writable
from cacher.tar import extract_tree, write_tree

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
    "Option",
    "PipedProcess",
    "PluginError",
    "Readable",
    "StorageError",
    "Target",
    "UsageError",
    "Writable",
    "atomic_write",
    "extract_tree",
    "staged_directory",
    "write_tree",
]
