"""The artifact-kind contract: how one kind of CI artifact becomes a byte stream and back.

Kinds register under the ``cacher.kinds`` entry-point namespace; the entry-point name is the
command users type (``cacher dir upload``). The built-in ``file``, ``url``, ``dir`` and
``docker`` kinds load through that same door. A kind:

- never prints: it returns, or raises a `cacher.errors.CacherError` subclass whose message the
  user reads (most often `ArtifactError`, or `UsageError` for bad input);
- never closes the streams it is given: the engine commits or discards them;
- in `unpack`, reads ``source`` to its end before putting anything in place, so that the
  codec's end-of-stream check runs first, and leaves the target as it was on any failure.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from cacher.streams import Writable

VERBS = ("upload", "download", "exists")


@dataclass(frozen=True)
class Target:
    """The positional argument a verb takes after KEY (``PATH``, ``DIR``, ``IMAGE``...).

    ``many``: the verb takes several. Upload targets reach the kind as a sequence; several
    download targets reach ``check_download`` and ``unpack`` as one string, one per line
    (``ensure`` takes that string as one argument).
    """

    metavar: str
    help: str
    many: bool = False
    required: bool = True


@dataclass(frozen=True)
class Option:
    """An extra ``--flag`` a kind adds to some of its verbs.

    ``type`` is ``str`` or ``bool``; the value reaches the kind in ``options[name]``.
    """

    name: str
    help: str
    type: type = str
    verbs: tuple[str, ...] = ("download",)


class Kind(abc.ABC):
    """One kind of artifact. Subclass it and register the class as an entry point."""

    #: One line for ``cacher --help``.
    summary: ClassVar[str] = ""
    #: True for kinds whose stream is an archive: the codec then follows the key's suffix
    #: (``.tar.zst`` zstd, ``.tar.gz`` gzip, ``.tar`` none) and defaults to zstd. False stores
    #: raw bytes unless ``--codec`` says otherwise.
    archive: ClassVar[bool] = False
    #: True when `digest` hashes the one target file and `pack` writes exactly its bytes: the
    #: engine may then see the file unchanged by stat instead of hashing it again (honoured
    #: only while ``digest`` and ``pack`` are those of the class that sets it; see
    #: `cacher.engine.unchanged`).
    digest_is_the_file: ClassVar[bool] = False
    #: True for archive kinds whose archive is a tree of files (``dir``, ``paths``): the
    #: ``tree_format`` setting applies to them, and ``cas`` stores them content-addressed
    #: (docs/format.md). Other kinds always store one archive per key.
    trees: ClassVar[bool] = False
    upload_target: ClassVar[Target] = Target("PATH", "What to upload.")
    download_target: ClassVar[Target] = Target("DEST", "Where to restore it.")
    options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, name: str) -> None:
        self.name = name

    def check_upload(self, targets: Sequence[str], options: Mapping[str, Any]) -> None:
        """Fail fast, before anything is sent, when the targets cannot be packed."""

    def check_download(self, target: str | None, options: Mapping[str, Any]) -> None:
        """Fail fast, before anything is fetched, when the target cannot be written."""

    @abc.abstractmethod
    def pack(self, targets: Sequence[str], sink: Writable, options: Mapping[str, Any]) -> None:
        """Write the artifact to ``sink`` as one stream; raise if it could not be read whole.

        Equal inputs should give equal bytes, so repeated uploads are idempotent.
        """

    @abc.abstractmethod
    def unpack(self, source: BinaryIO, target: str | None, options: Mapping[str, Any]) -> None:
        """Recreate the artifact at ``target`` from a stream that `pack` wrote.

        Read ``source`` to the end (``read()`` returning ``b""``) before committing.
        """

    def produce(self, target: str | None, options: Mapping[str, Any]) -> Sequence[str] | None:
        """On a download miss, make the artifact some other way (fetch a URL, pull an image).

        Return the upload targets that now hold it, so the engine uploads them under the key
        and the next run hits; return None when no fallback was asked for (a miss, exit 3).
        """
        return None

    def fallback_requested(self, options: Mapping[str, Any]) -> bool:
        """Whether `produce` has something to do with these options."""
        return False

    def sha256(self, options: Mapping[str, Any]) -> str | None:
        """A sha256 the stored bytes must match, when the user gave one (``--sha256``)."""
        return None

    def digest(self, targets: Sequence[str], options: Mapping[str, Any]) -> str | None:
        """The sha256 of the bytes `pack` will write, when it can be known before packing (a
        local file). It is recorded with the object, checked against the bytes as they are
        packed (a mismatch publishes nothing), and checked again on every restore. None for
        kinds whose codec verifies the stream (archives) or that cannot know it in advance."""
        return None

    def metadata(self, targets: Sequence[str], options: Mapping[str, Any]) -> Mapping[str, str]:
        """Fields the kind records with the object, known before packing (a store may take an
        object's metadata when its upload starts). The engine's own fields (``kind``, ``codec``,
        ``version``, ``sha256``) win over these. Keep them short: S3 allows 2 KB in all."""
        return {}

    def check_stored(
        self, metadata: Mapping[str, str], target: str | None, options: Mapping[str, Any]
    ) -> None:
        """Raise `cacher.errors.ObjectRefused` when what `metadata` recorded shows that the object
        cannot restore ``target``, before a byte of it is read. Objects stored without the
        record (older versions) pass; `unpack` still checks what it reads."""

    def key_namespace(self, targets: Sequence[str], options: Mapping[str, Any]) -> str | None:
        """Key segments binding what the targets name into the stored key, or None.

        When given, the engine keeps this artifact's objects under ``<namespace>/<key>`` in
        every store it reads or writes (scopes included), so a KEY restores only what was
        uploaded for equal targets: the ``paths`` kind binds its path list this way, as
        actions/cache binds ``path:`` into its cache version. ``targets`` are the upload targets,
        or the download target alone. Keys and restore keys are shown without it.
        """
        return None

    def tree(
        self, targets: Sequence[str], options: Mapping[str, Any]
    ) -> AbstractContextManager[tuple[Path, Callable[[str, bool], bool] | None]] | None:
        """For a kind whose `pack` is one directory's tree as ``write_tree`` writes it: that
        directory and what it leaves out (``skip(relative path, is_dir)``), held while the block
        runs as `pack` holds it. The content-addressed format then walks the tree itself and
        reads only the files that changed since this runner last restored or saved them. None
        (the default): it reads the tar stream `pack` writes."""
        return None

    def staging(self, target: str | None, options: Mapping[str, Any]) -> AbstractContextManager[Path] | None:
        """For a kind whose tree is one directory (it gives `tree`): an empty directory to write
        a stored tree into, held as a block that puts it in place at ``target`` when the block
        ends without error and leaves ``target`` as it was otherwise (``staged_directory``).
        A content-addressed restore then writes the files there itself, straight from their
        checked contents, the way ``extract_tree`` extracts a tar stream. None (the default):
        the tree reaches `unpack` as a tar stream."""
        return None

    def restores(self, stored_kind: str) -> bool:
        """Whether an object recorded as stored by ``stored_kind`` is one this kind restores.

        Objects record the kind that stored them; restoring another kind's object (a raw file
        read as a tar stream) would fail half-way, so the engine refuses it first, and a
        restore key skips it. Override when kinds share a format (``url`` stores files).
        """
        return stored_kind == self.name
