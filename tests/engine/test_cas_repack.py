"""Repacking mostly-dead packs in prune's sweep (cacher.engine.cas_repack), on the file store
and SeaweedFS, with trees stored and restored by the real ``cacher`` command: a key deleted
leaves its pack mostly dead, a prune saves the other key again off it (which still restores
byte-identical) and the stored bytes go down once the grace periods pass; a manifest an
upload replaced between the repack's read and its write is left as the upload wrote it; a dry
run and a read-only job write nothing; another scope's manifest is never rewritten. Days pass
through the sweep's clock parameter, without sleeping."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cacher.cas import names
from cacher.engine import cas_repack
from cacher.engine.cas_gc import census, sweep
from cacher.engine.cas_layout import CasLayout, read_manifest
from cacher.job import Job
from cacher.registry import Registry
from cacher.testing import CliRun
from tests.trees import make_tree, snapshot

Cacher = Callable[..., CliRun]
DAY = 86400.0


def job(env: dict[str, str], store_env: dict[str, str], registry: Registry, **extra: str) -> Job:
    return Job({}, registry, environ={**env, **store_env, **extra})


def upload(cacher: Cacher, store_env: dict[str, str], key: str, root: Path, *args: str, **extra: str) -> None:
    run = cacher("dir", "upload", key, str(root), "--tree-format", "cas", *args, extra_env={**store_env, **extra})
    assert run.code == 0, run


def two_trees(tmp_path: Path) -> tuple[Path, Path]:
    """``a``: ten random files; ``b``: a tree of every entry type holding one of ``a``'s files,
    so that once ``a`` is gone, a tenth of ``a``'s content pack is still used."""
    a = tmp_path / "a"
    a.mkdir()
    for i in range(10):
        (a / f"f{i}").write_bytes(os.urandom(100 << 10))
    b = make_tree(tmp_path / "b")
    shutil.copy2(a / "f0", b / "f0")
    return a, b


def store_two_trees(cacher: Cacher, store_env: dict[str, str], tmp_path: Path, **extra: str) -> Path:
    """``tree-a``, then ``tree-b`` sent against it, then ``tree-a`` deleted: ``b``'s root."""
    a, b = two_trees(tmp_path)
    upload(cacher, store_env, "tree-a", a, **extra)
    upload(cacher, store_env, "tree-b", b, "--base", "tree-a", **extra)
    run = cacher("delete", "tree-a", extra_env={**store_env, **extra})
    assert run.code == 0, run
    return b


def everything(layout: CasLayout) -> dict[str, bytes]:
    """Every object under the configured prefix and its bytes."""
    out = {}
    for obj in layout.root.iter_list(""):
        with layout.root.open_read(obj.key) as stream:
            out[obj.key] = stream.read()
    return out


def stored_bytes(layout: CasLayout) -> int:
    return sum(obj.size for obj in census(layout.root).packs.values())


def restored(cacher: Cacher, store_env: dict[str, str], key: str, dest: Path, **extra: str) -> dict[str, object]:
    run = cacher("dir", "download", key, str(dest), "--tree-format", "cas", extra_env={**store_env, **extra})
    assert run.code == 0, run
    return snapshot(dest)


def refs(j: Job, key: str) -> set[str]:
    found = read_manifest(j.store, key, j.cas_layout)
    assert found is not None
    return {ref for ref, _ in found.stored.known().values()}


def test_a_mostly_dead_pack_is_repacked_and_goes_after_the_grace_periods(
    cacher: Cacher, env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, tmp_path: Path
) -> None:
    b = store_two_trees(cacher, store_env, tmp_path)
    j = job(env, store_env, cacher_registry)
    layout = j.cas_layout
    old_refs = refs(j, "tree-b")
    before = stored_bytes(layout)
    t = time.time()

    first = sweep(layout, now=t + 2 * DAY)
    assert first.repacked is not None
    dead = set(first.repacked.packs)
    assert len(dead) == 1 and dead <= old_refs  # tree-a's content pack: a tenth of it is used
    assert first.repacked.manifests == (names.manifest_name("tree-b"),) and first.repacked.skipped == ()
    assert first.repacked.freed > 90 * 1024 and 0 < first.repacked.written < first.repacked.freed
    new_refs = refs(j, "tree-b")
    assert not new_refs & dead and new_refs - old_refs
    assert dead <= set(first.condemned)  # unreferenced now: the sweep's two phases from here
    assert restored(cacher, store_env, "tree-b", tmp_path / "r1") == snapshot(b)

    second = sweep(layout, now=t + 4 * DAY)
    assert dead <= {o.key for o in second.deleted}
    assert second.repacked is not None and second.repacked.packs == ()  # nothing mostly dead now
    assert stored_bytes(layout) < before - 500 * 1024
    assert set(census(layout.root).packs) == new_refs
    assert restored(cacher, store_env, "tree-b", tmp_path / "r2") == snapshot(b)


def test_a_manifest_an_upload_replaced_meanwhile_is_not_overwritten(
    cacher: Cacher,
    env: dict[str, str],
    store_env: dict[str, str],
    cacher_registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store_two_trees(cacher, store_env, tmp_path)
    j = job(env, store_env, cacher_registry)
    layout = j.cas_layout
    other = tmp_path / "other"
    other.mkdir()
    (other / "new.txt").write_text("written by the upload that raced the prune\n")
    reads: list[str] = []
    real_read = cas_repack._read

    def read_racing(store: object, key: str) -> object:
        reads.append(key)
        if len(reads) == 2:  # the read right before the write: an upload lands first
            upload(cacher, store_env, "tree-b", other, "--force")
        return real_read(store, key)  # type: ignore[arg-type]

    monkeypatch.setattr(cas_repack, "_read", read_racing)
    swept = sweep(layout, now=time.time() + 2 * DAY)
    assert reads == ["tree-b", "tree-b"]
    assert swept.repacked is not None
    assert swept.repacked.skipped == (names.manifest_name("tree-b"),)
    assert swept.repacked.manifests == () and swept.repacked.packs == ()
    assert restored(cacher, store_env, "tree-b", tmp_path / "r") == snapshot(other)


def test_a_dry_run_and_a_read_only_job_write_nothing(
    cacher: Cacher, env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, tmp_path: Path
) -> None:
    store_two_trees(cacher, store_env, tmp_path)
    j = job(env, store_env, cacher_registry)
    was = everything(j.cas_layout)
    later = time.time() + 2 * DAY
    dry = sweep(j.cas_layout, now=later, dry_run=True)
    assert dry.repacked is not None and dry.repacked.dry_run
    assert len(dry.repacked.packs) == 1 and dry.repacked.manifests == (names.manifest_name("tree-b"),)
    assert dry.repacked.written == 0
    assert everything(j.cas_layout) == was

    reader = job(env, store_env, cacher_registry, CACHER_READ_ONLY="1")
    gated = sweep(reader.cas_layout, now=later)
    assert gated.dry_run and gated.repacked is not None and gated.repacked.manifests
    assert everything(j.cas_layout) == was
    time.sleep(1.1)  # older than a grace period of a second, on the real clock
    prune = ("prune", "--all-projects", "--older-than", "30d", "--pack-grace", "1s")
    for args, more in (((*prune, "--dry-run"), {}), (prune, {"CACHER_READ_ONLY": "1"})):
        run = cacher(*args, "--json", extra_env={**store_env, **more})
        assert run.code == 0, run
        packs = json.loads(run.out)["packs"]
        counts = (packs["repacked"], packs["rewritten"], packs["written_bytes"], packs["repack_skipped"])
        assert counts == (1, 1, 0, 0), packs
        assert packs["repacked_bytes"] == dry.repacked.freed
        assert everything(j.cas_layout) == was
    run = cacher(*prune, "--dry-run", extra_env=store_env)
    assert run.code == 0, run
    assert "packs: would repack 1 mostly dead" in run.err
    assert everything(j.cas_layout) == was


def test_another_scopes_manifest_is_never_rewritten(
    cacher: Cacher, env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, tmp_path: Path
) -> None:
    a, b = two_trees(tmp_path)
    c = tmp_path / "c"
    c.mkdir()
    shutil.copy2(a / "f0", c / "f0")
    (c / "own.txt").write_text("feature's own file\n")
    main, feature = {"CACHER_SCOPE": "main"}, {"CACHER_SCOPE": "feature", "CACHER_FALLBACK_SCOPES": "main"}
    upload(cacher, store_env, "tree-a", a, **main)
    upload(cacher, store_env, "tree-b", b, "--base", "tree-a", **main)
    upload(cacher, store_env, "tree-c", c, "--base", "tree-a", **feature)  # names main's pack
    run = cacher("delete", "tree-a", extra_env={**store_env, **main})
    assert run.code == 0, run
    m, f = job(env, store_env, cacher_registry, **main), job(env, store_env, cacher_registry, **feature)
    assert any(ref.startswith("_scopes/main/") for ref in refs(f, "tree-c"))
    was = everything(m.cas_layout)
    later = time.time() + 2 * DAY
    for layout in (m.cas_layout, f.cas_layout):  # main's pack is named by feature: kept whole
        swept = sweep(layout, now=later)
        assert swept.repacked is not None and swept.repacked.manifests == ()
    now = everything(m.cas_layout)
    manifests = [k for k in was if names.MANIFESTS in k]
    assert manifests and all(now[k] == was[k] for k in manifests)
    assert restored(cacher, store_env, "tree-c", tmp_path / "r", **feature) == snapshot(c)


def test_a_tree_is_saved_again_only_when_restore_keys_still_see_the_same_newest(
    cacher: Cacher, env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, tmp_path: Path
) -> None:
    a, b = two_trees(tmp_path)
    c = tmp_path / "c"
    c.mkdir()
    (c / "new.txt").write_text("the newest deps, none of a's files\n")
    upload(cacher, store_env, "deps/a", a)
    upload(cacher, store_env, "deps/b", b, "--base", "deps/a")
    time.sleep(1.1)  # S3 keeps whole seconds
    upload(cacher, store_env, "deps/c", c)
    run = cacher("delete", "deps/a", extra_env=store_env)
    assert run.code == 0, run
    j = job(env, store_env, cacher_registry)
    was = everything(j.cas_layout)
    later = time.time() + 2 * DAY
    # deps/b names a's mostly-dead pack, but saved again it would be newer than deps/c, which a
    # restore key deps/ takes now: it is left as it is, and the pack waits for deps/b to go.
    swept = sweep(j.cas_layout, now=later)
    assert swept.repacked is not None and swept.repacked.manifests == () and swept.repacked.packs == ()
    assert all(everything(j.cas_layout)[k] == v for k, v in was.items() if names.MANIFESTS in k)

    time.sleep(1.1)
    upload(cacher, store_env, "other/x", c)  # newer, in another directory: no restore key sees both
    run = cacher("delete", "deps/c", extra_env=store_env)
    assert run.code == 0, run
    swept = sweep(j.cas_layout, now=later)
    assert swept.repacked is not None and swept.repacked.manifests == (names.manifest_name("deps/b"),)
    assert restored(cacher, store_env, "deps/b", tmp_path / "r") == snapshot(b)


def test_trees_sharing_a_mostly_dead_pack_share_its_new_copy(
    cacher: Cacher, env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, tmp_path: Path
) -> None:
    a, b = two_trees(tmp_path)
    c = tmp_path / "c"
    shutil.copytree(b, c, symlinks=True)
    (c / "pkg" / "a.txt").write_text("changed in c\n")
    upload(cacher, store_env, "tree-a", a)
    upload(cacher, store_env, "tree-b", b, "--base", "tree-a")
    upload(cacher, store_env, "tree-c", c, "--base", "tree-b")
    run = cacher("delete", "tree-a", extra_env=store_env)
    assert run.code == 0, run
    j = job(env, store_env, cacher_registry)
    swept = sweep(j.cas_layout, now=time.time() + 2 * DAY)
    assert swept.repacked is not None and len(swept.repacked.packs) == 1
    assert set(swept.repacked.manifests) == {names.manifest_name("tree-b"), names.manifest_name("tree-c")}
    where = []
    for key in ("tree-b", "tree-c"):
        found = read_manifest(j.store, key, j.cas_layout)
        assert found is not None
        places = found.stored.manifest.locations()
        f0 = next(e for e in found.stored.manifest.entries if e.path == "f0").chunks[0].digest
        where.append(places[f0])
    assert where[0] == where[1] and where[0][0] not in swept.repacked.packs  # one new copy, named by both
    assert restored(cacher, store_env, "tree-b", tmp_path / "rb") == snapshot(b)
    assert restored(cacher, store_env, "tree-c", tmp_path / "rc") == snapshot(c)


def test_a_tree_saved_within_the_grace_period_is_not_repacked(
    cacher: Cacher, env: dict[str, str], cacher_registry: Registry, local_root: Path, tmp_path: Path
) -> None:
    """docs/format.md: only trees saved more than the grace period ago are saved again (an
    upload or delete of the key in the repack's last moment would be undone). The manifest of
    tree-b is made young by its time on the file store; its packs stay old."""
    store_two_trees(cacher, {}, tmp_path)
    j = job(env, {}, cacher_registry)
    t = time.time()
    manifest = local_root / names.manifest_name("tree-b")
    os.utime(manifest, (t + 1.5 * DAY, t + 1.5 * DAY))
    before = refs(j, "tree-b")

    swept = sweep(j.cas_layout, now=t + 2 * DAY)

    assert swept.repacked is None or swept.repacked.manifests == ()
    assert refs(j, "tree-b") == before
    assert manifest.stat().st_mtime == pytest.approx(t + 1.5 * DAY)
