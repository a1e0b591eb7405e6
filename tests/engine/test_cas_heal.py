"""A damaged content-addressed tree heals the way a damaged archive does (red team findings 1-3):
the restore fails verification, `ensure` or `upload --force` stores the tree again, and the
next restore works; nothing the upload reuses is a pack that is damaged, gone, cut short or
condemned by a prune."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from cacher.cas import names
from tests.conftest import assert_one_error_line
from tests.trees import make_tree, snapshot

CAS = {"CACHER_TREE_FORMAT": "cas"}


def packs(local_root: Path) -> list[Path]:
    return sorted((local_root / names.PACKS).rglob("*.pack"), key=lambda p: p.stat().st_size)


def damage(local_root: Path, how: str) -> None:
    """Damage the largest pack (the contents): a flipped byte, cut short, or gone."""
    pack = packs(local_root)[-1]
    if how == "flipped":
        data = bytearray(pack.read_bytes())
        data[100] ^= 0xFF
        pack.write_bytes(bytes(data))
    elif how == "short":
        os.truncate(pack, 1000)
    else:
        pack.unlink()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "src")
    (root / "blob.bin").write_bytes(os.urandom(300_000))
    return root


@pytest.mark.parametrize("how", ["flipped", "short", "gone"])
def test_ensure_heals_a_damaged_tree(cacher, local_root: Path, tree: Path, tmp_path: Path, how: str) -> None:
    assert cacher("dir", "upload", "k", str(tree), extra_env=CAS).code == 0
    damage(local_root, how)
    run = cacher("dir", "download", "k", str(tmp_path / "d0"), extra_env=CAS)
    assert_one_error_line(run, "upload --force")  # damaged, not a store that failed
    assert not (tmp_path / "d0").exists()
    for attempt in (1, 2):
        dest = tmp_path / f"e{attempt}"
        run = cacher("--json", "dir", "ensure", "k", str(dest), "--", "cp", "-a", str(tree), str(dest), extra_env=CAS)
        assert run.code == 0, run
        outcome = json.loads(run.out)["outcome"]
        assert outcome == ("built" if attempt == 1 else "hit"), run  # healed: the second restores
    dest = tmp_path / "d1"
    assert cacher("dir", "download", "k", str(dest), extra_env=CAS).code == 0
    assert snapshot(dest) == snapshot(tree)


@pytest.mark.parametrize("how", ["flipped", "short"])
def test_upload_force_heals_a_damaged_tree(cacher, local_root: Path, tree: Path, tmp_path: Path, how: str) -> None:
    """The error's own hint: `upload --force` must not name the damaged pack again (it is
    made again with the same id: stored again)."""
    assert cacher("dir", "upload", "k", str(tree), extra_env=CAS).code == 0
    damage(local_root, how)
    assert cacher("dir", "upload", "k", str(tree), "--force", extra_env=CAS).code == 0
    dest = tmp_path / "d"
    run = cacher("dir", "download", "k", str(dest), extra_env=CAS)
    assert run.code == 0, run
    assert snapshot(dest) == snapshot(tree)


def test_a_base_whose_pack_is_gone_sends_the_blobs_again(cacher, local_root: Path, tree: Path, tmp_path: Path) -> None:
    assert cacher("dir", "upload", "v1", str(tree), extra_env=CAS).code == 0
    damage(local_root, "gone")
    (tree / "new.txt").write_text("changed\n")
    run = cacher("--json", "dir", "upload", "v2", str(tree), "--base", "v1", extra_env=CAS)
    assert run.code == 0, run
    assert json.loads(run.out)["stored_bytes"] > 250_000  # the gone pack's blobs, sent again
    dest = tmp_path / "d"
    assert cacher("dir", "download", "v2", str(dest), extra_env=CAS).code == 0
    assert snapshot(dest) == snapshot(tree)


def test_a_pack_condemned_by_a_prune_is_stored_again_and_spared(
    cacher, local_root: Path, tree: Path, tmp_path: Path
) -> None:
    """Red team finding 3: a prune with a short grace condemned the packs of a deleted tree;
    an upload that made them again reused them by name, and the next prune deleted them
    under its manifest."""
    assert cacher("dir", "upload", "v1", str(tree), extra_env=CAS).code == 0
    assert cacher("delete", "v1").code == 0
    time.sleep(1.1)
    run = cacher("prune", "--all-projects", "--older-than", "30d", "--pack-grace", "1s")
    assert run.code == 0, run
    assert (local_root / "_cas" / "gc" / "condemned").exists()
    condemned = {p: p.stat().st_mtime_ns for p in packs(local_root)}
    assert cacher("dir", "upload", "v2", str(tree), extra_env=CAS).code == 0  # the same packs
    # Stored again, not reused by name: a prune running meanwhile spares a pack stored since
    # it was condemned, so the upload's manifest never names a deleted pack.
    assert {p: p.stat().st_mtime_ns for p in packs(local_root)}.keys() == condemned.keys()
    assert all(p.stat().st_mtime_ns > when for p, when in condemned.items())
    time.sleep(1.1)
    assert cacher("prune", "--all-projects", "--older-than", "30d", "--pack-grace", "1s").code == 0
    dest = tmp_path / "d"
    run = cacher("dir", "download", "v2", str(dest), extra_env=CAS)
    assert run.code == 0, run
    assert snapshot(dest) == snapshot(tree)
