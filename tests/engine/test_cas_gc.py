"""Garbage collection of content-addressed packs (cacher.engine.cas_gc), on the file store and
SeaweedFS: packs two trees share outlive one tree's manifest, its dead packs are condemned by
one prune and deleted only by a prune a grace period later, a pack of an upload in flight
survives, a damaged manifest stops every deletion, and a scope's sweep never touches another
scope's packs. The clock of a sweep is a parameter: days pass without sleeping."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from cacher.cas import names
from cacher.cas.pack import Packer, PackInfo
from cacher.cas.root import Stored
from cacher.cas.save import save_tree
from cacher.engine.cas_gc import RECORD, census, sweep
from cacher.engine.cas_layout import CasLayout, read_manifest
from cacher.job import Job
from cacher.registry import Registry

DAY = 86400.0
#: Small packs, so that each file of the trees below gets a pack of its own.
TARGET = 32 << 10


def job(env: dict[str, str], store_env: dict[str, str], registry: Registry, **extra: str) -> Job:
    """A job configured as the CLI in ``env`` with ``store_env`` would be."""
    return Job({}, registry, environ={**env, **store_env, **extra})


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def save(j: Job, key: str, root: Path, base: Stored | None = None) -> Stored:
    """Store ``root`` under ``key`` as an upload does: packs first, the manifest last."""
    layout = j.cas_layout

    def done(sink: object, info: PackInfo) -> None:
        assert isinstance(sink, io.BytesIO)
        sink.seek(0)
        layout.put_pack(info.pack_id, sink, info.size)

    known = {d: p for d, p in base.known().items() if layout.may_reuse(p[0])} if base is not None else {}
    saved = save_tree(root, Packer(io.BytesIO, done, TARGET), known, layout.pack_ref)
    with j.store.writer(names.manifest_name(key), {**names.MANIFEST_METADATA, "tree-kind": "dir"}) as out:
        out.write(saved.root)
    found = read_manifest(j.store, key, layout)
    assert found is not None
    return found.stored


def refs(stored: Stored) -> set[str]:
    return {ref for ref, _ in stored.known().values()}


def stored_packs(layout: CasLayout) -> set[str]:
    return set(census(layout.root).packs)


def in_flight_pack(layout: CasLayout) -> str:
    """A pack stored by an upload whose manifest is not written yet."""
    made: list[str] = []

    def done(sink: object, info: PackInfo) -> None:
        assert isinstance(sink, io.BytesIO)
        sink.seek(0)
        layout.put_pack(info.pack_id, sink, info.size)
        made.append(layout.pack_ref(info.pack_id))

    packer = Packer(io.BytesIO, done)
    packer.add("0" * 64, os.urandom(1000))
    packer.finish()
    return made[0]


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    """Two trees sharing most contents: ``b`` is ``a`` with one file replaced and one added."""
    common = {f"f{i}": os.urandom(40 << 10) for i in range(6)}
    a = make_tree(tmp_path / "a", common)
    b = make_tree(tmp_path / "b", {**common, "f5": os.urandom(40 << 10), "g": os.urandom(40 << 10)})
    return a, b


def test_shared_packs_stay_and_dead_ones_go_a_grace_period_after_they_were_condemned(
    env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, trees: tuple[Path, Path]
) -> None:
    j = job(env, store_env, cacher_registry)
    layout = j.cas_layout
    a = save(j, "tree-a", trees[0])
    b = save(j, "tree-b", trees[1], base=a)
    shared, dead = refs(a) & refs(b), refs(a) - refs(b)
    assert shared and dead  # the replaced file's pack and a's manifest parts
    assert stored_packs(layout) == refs(a) | refs(b)

    t = time.time()
    kept = sweep(layout, now=t + 2 * DAY)  # every manifest there: nothing is unreferenced
    assert (kept.deleted, kept.condemned, kept.live) == ((), (), len(refs(a) | refs(b)))
    assert j.store.delete(names.manifest_name("tree-a"))

    first = sweep(layout, now=t + 2 * DAY)
    assert set(first.condemned) == dead and first.deleted == ()
    assert stored_packs(layout) == refs(a) | refs(b)
    assert j.store.exists(RECORD)
    second = sweep(layout, now=t + 2 * DAY + 3600)  # condemned an hour ago: not yet
    assert (second.deleted, second.condemned, second.waiting) == ((), (), len(dead))
    dry = sweep(layout, now=t + 3 * DAY + 60, dry_run=True)
    assert {o.key for o in dry.deleted} == dead
    assert stored_packs(layout) == refs(a) | refs(b)

    third = sweep(layout, now=t + 3 * DAY + 60)
    assert {o.key for o in third.deleted} == dead
    assert stored_packs(layout) == refs(b)
    again = read_manifest(j.store, "tree-b", layout)  # every part read and checked
    assert again is not None and all(j.cas_layout.root.exists(ref) for ref in refs(again.stored))
    assert sweep(layout, now=t + 9 * DAY).deleted == ()


def test_a_pack_of_an_upload_in_flight_survives(
    env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry
) -> None:
    layout = job(env, store_env, cacher_registry).cas_layout
    pack = in_flight_pack(layout)
    for _ in range(2):  # younger than the grace period: never condemned, whatever runs
        swept = sweep(layout)
        assert (swept.deleted, swept.condemned, swept.young) == ((), (), 1)
    assert stored_packs(layout) == {pack}
    # Its upload runs long: once older than the grace period it is condemned, and still only a
    # later prune, a grace period on, may delete it (by then its manifest is written).
    t = time.time()
    condemned = sweep(layout, now=t + 2 * DAY)
    assert condemned.condemned == (pack,) and condemned.deleted == ()
    assert stored_packs(layout) == {pack}


def test_a_damaged_manifest_stops_every_deletion(
    env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, trees: tuple[Path, Path]
) -> None:
    j = job(env, store_env, cacher_registry)
    layout = j.cas_layout
    a = save(j, "tree-a", trees[0])
    b = save(j, "tree-b", trees[1], base=a)
    j.store.delete(names.manifest_name("tree-a"))
    t = time.time()
    assert set(sweep(layout, now=t + 2 * DAY).condemned) == refs(a) - refs(b)
    name = names.manifest_name("tree-b")
    with j.store.open_read(name) as stream:
        damaged = bytearray(stream.read())
    damaged[len(damaged) // 2] ^= 0xFF
    with j.store.writer(name, dict(names.MANIFEST_METADATA)) as out:
        out.write(bytes(damaged))

    held = sweep(layout, now=t + 4 * DAY)
    assert held.held and held.unreadable == (name,) and held.deleted == ()
    assert stored_packs(layout) == refs(a) | refs(b)


def test_a_scope_sweeps_its_own_packs_only(
    env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, trees: tuple[Path, Path], tmp_path: Path
) -> None:
    main = job(env, store_env, cacher_registry, CACHER_SCOPE="main")
    feature = job(env, store_env, cacher_registry, CACHER_SCOPE="feature", CACHER_FALLBACK_SCOPES="main")
    unscoped = job(env, store_env, cacher_registry)
    a = save(main, "tree-a", trees[0])
    b = save(feature, "tree-b", trees[1], base=a)  # reuses main's packs
    c = save(feature, "tree-c", make_tree(tmp_path / "c", {"h": os.urandom(40 << 10)}))
    assert any(ref.startswith("_scopes/main/") for ref in refs(b))
    assert all(ref.startswith("_scopes/feature/") for ref in refs(c))
    main.store.delete(names.manifest_name("tree-a"))
    feature.store.delete(names.manifest_name("tree-c"))
    everything = refs(a) | refs(b) | refs(c)
    t = time.time()
    for later in (2 * DAY, 4 * DAY):  # an unscoped prune sweeps the unscoped packs: there are none
        assert sweep(unscoped.cas_layout, now=t + later).deleted == ()
    assert stored_packs(main.cas_layout) == everything

    for later in (2 * DAY, 4 * DAY):
        swept = sweep(main.cas_layout, now=t + later)
    # main's packs that feature's tree names stay; feature's dead packs are not main's to delete
    assert {o.key for o in swept.deleted} == refs(a) - refs(b)
    assert stored_packs(main.cas_layout) == refs(b) | refs(c)
    assert main.cas_layout.root.exists(f"_scopes/main/{RECORD}")

    for later in (2 * DAY, 4 * DAY):
        swept = sweep(feature.cas_layout, now=t + later)
    assert {o.key for o in swept.deleted} == refs(c)
    assert stored_packs(main.cas_layout) == refs(b)
    assert read_manifest(feature.store, "tree-b", feature.cas_layout) is not None


def test_a_condemned_pack_stored_again_is_not_deleted(
    env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, trees: tuple[Path, Path]
) -> None:
    j = job(env, store_env, cacher_registry)
    layout = j.cas_layout
    a = save(j, "tree-a", trees[0])
    b = save(j, "tree-b", trees[1], base=a)
    dead = sorted(refs(a) - refs(b))
    j.store.delete(names.manifest_name("tree-a"))
    time.sleep(1.1)
    assert set(sweep(layout, grace=1.0).condemned) == set(dead)
    time.sleep(1.1)  # S3 times are whole seconds: the store again lands after the condemnation
    with layout.root.open_read(dead[0]) as stream:
        same = stream.read()
    with layout.root.writer(dead[0], dict(names.PACK_METADATA)) as out:  # an upload stores it again
        out.write(same)
    time.sleep(1.1)
    swept = sweep(layout, grace=1.0)
    assert {o.key for o in swept.deleted} == set(dead[1:])
    assert stored_packs(layout) == refs(b) | {dead[0]}
