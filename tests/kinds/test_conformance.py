"""The built-in kinds pass the conformance kit that third-party kinds run."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cacher.testing import KindContract


class TestFileKind(KindContract):
    kind_name = "file"
    key = "conformance/tool.bin"
    codec_name = "none"

    def make_artifact(self, tmp_path: Path) -> list[str]:
        path = tmp_path / "tool.bin"
        path.write_bytes(os.urandom(200_000))
        return [str(path)]

    def restore_target(self, tmp_path: Path, targets: Sequence[str]) -> str:
        return str(tmp_path / "restored.bin")

    def options(self, targets: Sequence[str]) -> Mapping[str, Any]:
        # Raw objects are verified against a sha256 when one is known (DESIGN.md).
        return {"sha256": hashlib.sha256(Path(targets[0]).read_bytes()).hexdigest()}


class TestFileKindZstd(TestFileKind):
    key = "conformance/tool.bin.zst"
    codec_name = "zstd"

    def options(self, targets: Sequence[str]) -> Mapping[str, Any]:
        return {}


class TestUrlKind(TestFileKind):
    kind_name = "url"

    def make_artifact(self, tmp_path: Path) -> list[str]:
        path = tmp_path / "download.bin"
        path.write_bytes(os.urandom(150_000))
        return [path.as_uri()]

    def snapshot(self, target: str | None) -> object:
        if target and target.startswith("file://"):
            target = target[len("file://") :]
        return super().snapshot(target)

    def options(self, targets: Sequence[str]) -> Mapping[str, Any]:
        data = Path(targets[0][len("file://") :]).read_bytes()
        return {"sha256": hashlib.sha256(data).hexdigest(), "url": targets[0]}

    def prepare_existing_target(self, target: str | None, targets: Sequence[str]) -> None:
        if target is not None:
            Path(target).write_text("keep me")


class TestDirKind(KindContract):
    kind_name = "dir"

    def make_artifact(self, tmp_path: Path) -> list[str]:
        root = tmp_path / "tree"
        (root / "a" / "b").mkdir(parents=True)
        (root / "a" / "b" / "data").write_bytes(os.urandom(300_000))
        (root / "a" / "x.txt").write_text("x" * 5000)
        (root / "a" / "link").symlink_to("b/data")
        (root / "ro").mkdir()
        (root / "ro" / "f").write_text("read only")
        (root / "ro" / "f").chmod(0o444)
        (root / "ro").chmod(0o555)
        return [str(root)]
