"""Helpers the workloads share: the peers' compressor, tree checks, untimed set-up commands."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from cacherbench.bench import Bench
from cacherbench.inputs import TreeStats, tree_stats

ZSTD = "zstd -T0 -3"


def tar_zstd(bench: Bench, tree: Path) -> str:
    return f"tar -C {bench.q(tree)} -cf - . | {ZSTD}"


def check_tree(dest: Path, want: TreeStats) -> None:
    got = tree_stats(dest)
    if (got.files, got.bytes, got.symlinks) != (want.files, want.bytes, want.symlinks):
        raise AssertionError(f"restored tree {dest} differs from the input: {got} != {want}")


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def untimed(bench: Bench, argv: list[str], env: dict[str, str]) -> None:
    with open(bench.log("setup"), "ab") as log:
        subprocess.run(argv, env=env, check=True, stdout=log, stderr=log)
