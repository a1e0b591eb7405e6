"""`KindContract`: the behaviour every artifact kind owes its users, as a reusable test class."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cacher import engine
from cacher.codec import Codec
from cacher.errors import CacherError
from cacher.kind import Kind
from cacher.registry import Registry
from cacher.stores.base import Store
from cacher.streams import Writable


def path_snapshot(path: str | Path | None) -> object:
    """A comparable picture of a file or tree: types, modes, contents, link targets."""
    if path is None:
        return None
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        return "absent"
    if root.is_file():
        return ("file", root.read_bytes())
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(p.read_bytes()).hexdigest())
    return out


class _Guarded:
    """A stream wrapper that records whether the kind tried to close it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.close_called = False

    def write(self, data: bytes) -> int:
        return int(self.inner.write(data))

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.inner.read(size)
        return data

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Nothing buffered here."""

    def close(self) -> None:
        self.close_called = True


class _Boom(Exception):
    pass


class _FailingSink:
    """A sink that accepts ``limit`` bytes, then fails like a dying producer would."""

    def __init__(self, inner: Writable, limit: int) -> None:
        self.inner, self.left = inner, limit

    def write(self, data: bytes) -> int:
        if len(data) > self.left:
            self.inner.write(bytes(data[: self.left]))
            raise _Boom("the producer died mid-stream")
        self.left -= len(data)
        return self.inner.write(data)

    def flush(self) -> None:
        """Nothing buffered here."""


class KindContract:
    """Subclass, set `kind_name`, and implement `make_artifact`; the tests come for free.

    Override `snapshot` for kinds whose target is not a path (docker images, say), and
    `restore_target` when the download target is not a fresh path under ``tmp_path``.
    """

    kind_name: ClassVar[str] = ""
    key: ClassVar[str] = "conformance/artifact.tar.zst"
    codec_name: ClassVar[str] = "zstd"

    # -- what a subclass provides ---------------------------------------------------------

    def make_artifact(self, tmp_path: Path) -> list[str]:
        """Create an artifact to upload and return the upload targets."""
        raise NotImplementedError

    def restore_target(self, tmp_path: Path, targets: Sequence[str]) -> str | None:
        return str(tmp_path / "restored")

    def options(self, targets: Sequence[str]) -> Mapping[str, Any]:
        return {}

    def snapshot(self, target: str | None) -> object:
        return path_snapshot(target)

    def deterministic_targets(self, targets: Sequence[str]) -> Sequence[str]:
        """The targets whose `pack` must give equal bytes twice; narrow it when a tool's isn't."""
        return targets

    def prepare_existing_target(self, target: str | None, targets: Sequence[str]) -> None:
        """Put something at the target that a failed restore must leave alone."""
        if target is None or Path(target).exists():
            return
        if Path(targets[0]).is_file():
            Path(target).write_text("keep me")
        else:
            Path(target).mkdir(parents=True)
            (Path(target) / "precious").write_text("keep me")

    # -- helpers ---------------------------------------------------------------------------

    def _kind(self, registry: Registry) -> Kind:
        return registry.kind(self.kind_name)

    def _codec(self, registry: Registry) -> Codec:
        return registry.codec(self.codec_name)

    def _upload(self, store: Store, registry: Registry, targets: Sequence[str]) -> engine.Result:
        return engine.upload(
            store,
            engine.UploadRequest(
                self._kind(registry), self._codec(registry), self.key, targets, self.options(targets)
            ),
        )

    def _download(
        self, store: Store, registry: Registry, target: str | None, targets: Sequence[str]
    ) -> engine.Result:
        return engine.download(
            store,
            engine.DownloadRequest(
                self._kind(registry), self._codec(registry), self.key, target, self.options(targets)
            ),
        )

    def _stored(self, store: Store, registry: Registry, targets: Sequence[str]) -> Store:
        """Where the kind keeps this artifact's objects (its `Kind.key_namespace`, if any)."""
        return engine.bound_store(store, self._kind(registry), targets, self.options(targets))

    def _damage(self, store: Store, how: str) -> None:
        with store.open_read(self.key) as f:
            data = bytearray()
            while chunk := f.read(1 << 20):
                data += chunk
        if how == "truncate":
            data = data[: len(data) // 2]
        else:
            data[len(data) // 2] ^= 0x55
        with store.writer(self.key) as w:
            w.write(bytes(data))

    # -- the contract ------------------------------------------------------------------------

    def test_round_trip(self, cacher_store: Store, cacher_registry: Registry, tmp_path: Path) -> None:
        targets = self.make_artifact(tmp_path)
        before = self.snapshot(targets[0])
        assert self._upload(cacher_store, cacher_registry, targets).outcome == "uploaded"
        assert engine.exists(self._stored(cacher_store, cacher_registry, targets), self.key).found
        target = self.restore_target(tmp_path, targets)
        assert self._download(cacher_store, cacher_registry, target, targets).outcome == "hit"
        assert self.snapshot(target) == before

    def test_existing_key_is_skipped(
        self, cacher_store: Store, cacher_registry: Registry, tmp_path: Path
    ) -> None:
        targets = self.make_artifact(tmp_path)
        self._upload(cacher_store, cacher_registry, targets)
        assert self._upload(cacher_store, cacher_registry, targets).outcome == "skipped"

    def test_pack_is_deterministic(self, cacher_registry: Registry, tmp_path: Path) -> None:
        targets = self.deterministic_targets(self.make_artifact(tmp_path))
        kind = self._kind(cacher_registry)
        first, second = io.BytesIO(), io.BytesIO()
        kind.pack(targets, first, self.options(targets))
        kind.pack(targets, second, self.options(targets))
        assert first.getvalue() == second.getvalue()
        assert first.getvalue()

    def test_failing_producer_publishes_nothing(
        self, cacher_store: Store, cacher_registry: Registry, tmp_path: Path
    ) -> None:
        targets = self.make_artifact(tmp_path)
        kind = self._kind(cacher_registry)
        real_pack = kind.pack

        def dying_pack(targets: Sequence[str], sink: Writable, options: Mapping[str, Any]) -> None:
            real_pack(targets, _FailingSink(sink, 1000), options)

        kind.pack = dying_pack  # type: ignore[method-assign]
        with pytest.raises((_Boom, CacherError)):
            engine.upload(
                cacher_store,
                engine.UploadRequest(
                    kind, self._codec(cacher_registry), self.key, targets, self.options(targets)
                ),
            )
        assert not engine.exists(self._stored(cacher_store, cacher_registry, targets), self.key).found

    @pytest.mark.parametrize("damage", ["truncate", "flip"])
    def test_damaged_object_restores_nothing(
        self, cacher_store: Store, cacher_registry: Registry, tmp_path: Path, damage: str
    ) -> None:
        targets = self.make_artifact(tmp_path)
        self._upload(cacher_store, cacher_registry, targets)
        self._damage(self._stored(cacher_store, cacher_registry, targets), damage)
        target = self.restore_target(tmp_path, targets)
        self.prepare_existing_target(target, targets)
        before = self.snapshot(target)
        if self._kind(cacher_registry).fallback_requested(self.options(targets)):
            # With a fallback, a damaged object is a miss: made again, verified, replaced.
            result = self._download(cacher_store, cacher_registry, target, targets)
            assert result.outcome == "fetched"
            assert self.snapshot(target) == self.snapshot(targets[0])
            return
        with pytest.raises(CacherError):
            self._download(cacher_store, cacher_registry, target, targets)
        assert self.snapshot(target) == before

    def test_streams_are_not_closed(self, cacher_registry: Registry, tmp_path: Path) -> None:
        targets = self.make_artifact(tmp_path)
        kind = self._kind(cacher_registry)
        sink = _Guarded(io.BytesIO())
        kind.pack(targets, sink, self.options(targets))
        assert not sink.close_called, "pack closed the sink it was given"
        source = _Guarded(io.BytesIO(sink.inner.getvalue()))
        kind.unpack(source, self.restore_target(tmp_path, targets), self.options(targets))  # type: ignore[arg-type]
        assert not source.close_called, "unpack closed the source it was given"
        assert source.inner.read() == b"", "unpack did not read its source to the end"

    # -- trees: the content-addressed format (kinds that say `Kind.trees`) -------------------

    def test_a_tree_round_trips_content_addressed(
        self, cacher_store: Store, cacher_registry: Registry, tmp_path: Path
    ) -> None:
        """A kind that says it stores trees restores the same artifact from a manifest and packs
        as from its archive (docs/format.md)."""
        kind = self._kind(cacher_registry)
        if not kind.trees:
            pytest.skip(f"the {self.kind_name} kind stores no trees")
        from cacher.engine.cas_layout import CasLayout

        targets = self.make_artifact(tmp_path)
        before = self.snapshot(targets[0])
        layout, codec, options = CasLayout(cacher_store), self._codec(cacher_registry), self.options(targets)
        up = engine.UploadRequest(kind, codec, self.key, targets, options, tree_format="cas", cas=layout)
        result = engine.upload(cacher_store, up)
        assert (result.outcome, result.codec) == ("uploaded", "cas")
        target = self.restore_target(tmp_path, targets)
        down = engine.DownloadRequest(kind, codec, self.key, target, options, tree_format="cas", cas=layout)
        restored = engine.download(cacher_store, down)
        assert (restored.outcome, restored.codec) == ("hit", "cas")
        assert self.snapshot(target) == before

    def test_its_tree_is_what_pack_writes(self, cacher_registry: Registry, tmp_path: Path) -> None:
        """A kind that hands the format its directory (`Kind.tree`) gives the tree its `pack`
        archives: walked or read from the tar stream, the same manifest."""
        kind = self._kind(cacher_registry)
        targets = self.make_artifact(tmp_path)
        options = self.options(targets)
        held = kind.tree(targets, options)
        if held is None:
            pytest.skip(f"the {self.kind_name} kind is read from its tar stream")
        from cacher.cas import names
        from cacher.cas.pack import Packer
        from cacher.cas.save import save_stream, save_tree

        def packer() -> Packer:
            return Packer(io.BytesIO, lambda sink, info: None)

        with held as (root, skip):
            walked = save_tree(root, packer(), {}, names.pack_ref, skip)
        archive = io.BytesIO()
        kind.pack(targets, archive, options)
        archive.seek(0)
        assert save_stream(archive, packer(), {}, names.pack_ref).root == walked.root
