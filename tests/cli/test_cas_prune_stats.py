"""``cacher list``, ``stats`` and ``prune`` over content-addressed trees stored by ``cacher dir
upload --tree-format cas``, on the file store and SeaweedFS: a tree is listed (and deleted) as
its KEY, never as its packs; stats gives the deduplication ratio; prune deletes an old tree's manifest by age,
condemns its dead packs and deletes them only in a later run, a grace period on; a dry run, a
read-only job and an unreadable manifest delete no pack; the packs of an upload killed with
SIGKILL go the same way, while a prune run as an upload runs breaks neither it nor its restore."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cacher.cas import names
from cacher.engine.cas_gc import census
from cacher.engine.cas_layout import read_manifest
from cacher.job import Job
from cacher.registry import Registry
from cacher.testing import CACHER, CliRun

Cacher = Callable[..., CliRun]


def doc(run: CliRun) -> dict[str, Any]:
    lines = run.out.strip().splitlines()
    assert len(lines) == 1, run
    data: dict[str, Any] = json.loads(lines[0])
    return data


def upload_two_trees(cacher: Cacher, store_env: dict[str, str], tmp_path: Path) -> None:
    """``tree-a``, then ``tree-b`` (one file replaced, one added) sent against it, a second apart."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    for i in range(8):
        (a / f"f{i}").write_bytes(os.urandom(64 << 10))
    run = cacher("dir", "upload", "tree-a", str(a), "--tree-format", "cas", extra_env=store_env)
    assert run.code == 0, run
    time.sleep(1.1)
    b.mkdir()
    for i in range(8):
        (b / f"f{i}").write_bytes((a / f"f{i}").read_bytes())
    (b / "f7").write_bytes(os.urandom(64 << 10))
    (b / "g").write_bytes(os.urandom(64 << 10))
    run = cacher("dir", "upload", "tree-b", str(b), "--tree-format", "cas", "--base", "tree-a", extra_env=store_env)
    assert run.code == 0, run


def refs_of(j: Job, key: str) -> set[str]:
    found = read_manifest(j.store, key, j.cas_layout)
    assert found is not None
    return {ref for ref, _ in found.stored.known().values()}


def packs(j: Job) -> dict[str, int]:
    return {ref: obj.size for ref, obj in census(j.cas_layout.root).packs.items()}


def test_list_shows_trees_as_keys_and_stats_the_dedup_ratio(
    cacher: Cacher, env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, tmp_path: Path
) -> None:
    upload_two_trees(cacher, store_env, tmp_path)
    j = Job({}, cacher_registry, environ={**env, **store_env})
    run = cacher("list", extra_env=store_env)
    assert run.code == 0, run
    assert run.out.splitlines() == ["tree-a  [cas]", "tree-b  [cas]"]
    run = cacher("list", "tree-b", "--long", extra_env=store_env)  # reached under _cas/manifests/
    assert run.code == 0, run
    assert len(run.out.splitlines()) == 1 and run.out.rstrip().endswith("tree-b  [cas]")
    run = cacher("list", "--json", extra_env=store_env)
    assert run.code == 0, run
    listed = doc(run)["objects"]
    assert [(o["key"], o["format"]) for o in listed] == [("tree-a", "cas"), ("tree-b", "cas")]

    run = cacher("stats", "--json", extra_env=store_env)
    assert run.code == 0, run
    cas = doc(run)["cas"]
    referenced = refs_of(j, "tree-a") | refs_of(j, "tree-b")
    stored = sum(size for ref, size in packs(j).items() if ref in referenced)
    assert (cas["trees"], cas["logical_bytes"], cas["stored_bytes"]) == (2, 17 * (64 << 10), stored)
    assert cas["dedup_ratio"] == round(17 * (64 << 10) / stored, 3) and cas["dedup_ratio"] > 1.5
    run = cacher("stats", "tree-b", "--json", extra_env=store_env)  # a PREFIX the listing of keys misses
    assert run.code == 0, run
    assert (doc(run)["cas"]["trees"], doc(run)["objects"]) == (1, 0)
    run = cacher("stats", extra_env=store_env)
    assert run.code == 0, run
    assert "content-addressed trees: 2" in run.out and f"deduplication {cas['dedup_ratio']:.2f}x" in run.out

    run = cacher("delete", "tree-a", extra_env=store_env)  # its manifest: the packs wait for prune
    assert run.code == 0, run
    assert cacher("list", extra_env=store_env).out.splitlines() == ["tree-b  [cas]"]
    assert set(packs(j)) == referenced
    run = cacher("delete", "tree-a", extra_env=store_env)
    assert run.code == 1, run


def test_prune_deletes_an_old_tree_then_its_dead_packs_a_grace_period_later(
    cacher: Cacher, env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, tmp_path: Path
) -> None:
    upload_two_trees(cacher, store_env, tmp_path)
    j = Job({}, cacher_registry, environ={**env, **store_env})
    a, b = refs_of(j, "tree-a"), refs_of(j, "tree-b")
    dead = a - b
    assert dead and a & b
    time.sleep(1.1)
    prune = ["prune", "--all-projects", "--older-than", "1s", "--keep-last", "1", "--pack-grace", "1s"]

    run = cacher(*prune, "--dry-run", "--json", extra_env=store_env)
    assert run.code == 0, run
    d = doc(run)
    assert [(o["key"], o.get("format")) for o in d["deleted"]] == [("tree-a", "cas")]
    assert d["packs"]["deleted"] == [] and d["packs"]["condemned"] == len(dead)
    assert set(packs(j)) == a | b and j.store.exists(names.manifest_name("tree-a"))

    run = cacher(*prune, extra_env=store_env)  # tree-a goes; its dead packs are condemned
    assert run.code == 0, run
    assert "deleted tree-a  [cas]" in run.err and f"condemned {len(dead)}" in run.err
    assert not j.store.exists(names.manifest_name("tree-a"))
    assert set(packs(j)) == a | b
    time.sleep(1.1)

    run = cacher(*prune, extra_env={**store_env, "CACHER_READ_ONLY": "1"})
    assert run.code == 0, run
    assert "read-only" in run.err and f"would delete {len(dead)}" in run.err
    assert set(packs(j)) == a | b

    run = cacher(*prune, "--json", extra_env=store_env)
    assert run.code == 0, run
    assert set(doc(run)["packs"]["deleted"]) == dead
    assert set(packs(j)) == b
    out = tmp_path / "restored"
    run = cacher("dir", "download", "tree-b", str(out), extra_env=store_env)
    assert run.code == 0, run
    assert (out / "g").read_bytes() == (tmp_path / "b" / "g").read_bytes()


def test_an_unreadable_manifest_keeps_every_pack(
    cacher: Cacher, env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, tmp_path: Path
) -> None:
    upload_two_trees(cacher, store_env, tmp_path)
    j = Job({}, cacher_registry, environ={**env, **store_env})
    before = set(packs(j))
    with j.store.writer(names.manifest_name("tree-b"), dict(names.MANIFEST_METADATA)) as out:
        out.write(b"not a manifest at all")
    assert j.store.delete(names.manifest_name("tree-a"))
    time.sleep(1.1)
    prune = ["prune", "--all-projects", "--older-than", "30d", "--pack-grace", "1s"]
    for _ in range(2):
        run = cacher(*prune, extra_env=store_env)
        assert run.code == 0, run
        assert "none deleted" in run.err and "_cas/manifests/tree-b" in run.err
        time.sleep(1.1)
    assert set(packs(j)) == before


def test_a_killed_upload_leaves_packs_that_prune_removes_and_a_prune_meanwhile_breaks_no_upload(
    cacher: Cacher, env: dict[str, str], store_env: dict[str, str], cacher_registry: Registry, tmp_path: Path
) -> None:
    upload_two_trees(cacher, store_env, tmp_path)
    j = Job({}, cacher_registry, environ={**env, **store_env})
    live = refs_of(j, "tree-a") | refs_of(j, "tree-b")
    big = tmp_path / "big"
    big.mkdir()
    for i in range(12):  # several packs of 16 MiB
        (big / f"f{i}").write_bytes(os.urandom(8 << 20))
    killed = subprocess.Popen(
        [CACHER, "dir", "upload", "tree-big", str(big), "--tree-format", "cas"],
        env={**env, **store_env}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not set(packs(j)) - live and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.kill()  # SIGKILL: packs stored, no manifest
    killed.wait()
    left = set(packs(j)) - live
    assert left and not j.store.exists(names.manifest_name("tree-big"))

    # a prune with the default grace, as an upload runs: the upload and its restore hold
    c = tmp_path / "c"
    c.mkdir()
    (c / "x").write_bytes(os.urandom(1 << 20))
    running = subprocess.Popen(
        [CACHER, "dir", "upload", "tree-c", str(c), "--tree-format", "cas"],
        env={**env, **store_env}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    run = cacher("prune", "--all-projects", "--older-than", "30d", extra_env=store_env)
    assert run.code == 0, run
    _, err = running.communicate(timeout=120)
    assert running.returncode == 0, err
    assert set(packs(j)) >= live | left
    run = cacher("dir", "download", "tree-c", str(tmp_path / "c-restored"), extra_env=store_env)
    assert run.code == 0, run
    assert (tmp_path / "c-restored" / "x").read_bytes() == (c / "x").read_bytes()

    # the killed upload's packs: condemned by one prune, deleted by the next, a grace period on
    live |= refs_of(j, "tree-c")
    time.sleep(1.1)
    prune = ["prune", "--all-projects", "--older-than", "30d", "--pack-grace", "1s"]
    run = cacher(*prune, extra_env=store_env)
    assert run.code == 0, run
    assert set(packs(j)) == live | left
    time.sleep(1.1)
    run = cacher(*prune, extra_env=store_env)
    assert run.code == 0, run
    assert set(packs(j)) == live
    for key in ("tree-a", "tree-b", "tree-c"):
        run = cacher("dir", "download", key, str(tmp_path / f"{key}-restored"), extra_env=store_env)
        assert run.code == 0, run
