"""Kill-and-race tests of content-addressed trees on SeaweedFS: real ``cacher`` processes, each
stopped by a proxy hold (tests/cas_harness.py, `tests.fault_proxy.Hold`) at a chosen request,
then killed there or let go while another process runs. Uploads killed before their manifest or
between their packs, two uploads of overlapping trees interleaved, a prune beside an upload in
flight (and beside a restore), a restore and a prune killed mid-way, a restore in flight while a
prune repacks its tree, a prune killed before its repacked manifest: each says what exit codes
and objects are left, and that every tree a manifest names still restores exactly. A condemned
pack an upload stores again while a prune is deleting stays (all but the one whose DELETE is
already on its way: without conditional DELETEs, that one request is the window)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cas_harness import (
    Running,
    answered,
    assert_missing,
    build_tree,
    cas_env,
    data_files,
    is_manifest_put,
    is_pack_delete,
    is_pack_put,
    is_pack_read,
    is_pack_write,
    manifest_there,
    packs_in,
    prune,
    restores,
    run,
    wait_answered,
    wait_stored,
)
from tests.fault_proxy import FaultProxy, leftovers
from tests.trees import snapshot

pytestmark = pytest.mark.s3

KILLED = -signal.SIGKILL


@pytest.fixture
def proxy(seaweed_s3: Any) -> Iterator[FaultProxy]:
    with FaultProxy(seaweed_s3.endpoint) as p:
        yield p


@pytest.fixture
def direct(env: dict[str, str], seaweed_s3: Any, s3_bucket: str) -> dict[str, str]:
    """The environment of a process that talks to SeaweedFS without the proxy."""
    return {**env, **cas_env(seaweed_s3, s3_bucket)}


@pytest.fixture
def via(env: dict[str, str], seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy) -> dict[str, str]:
    """The environment of a process whose requests go through ``proxy``."""
    return {**env, **cas_env(seaweed_s3, s3_bucket, proxy)}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start ``cacher`` in the background; a process a failed test left running is killed."""
    started: list[Running] = []

    def begin(env: dict[str, str], *args: str) -> Running:
        started.append(Running(list(args), env, tmp_path))
        return started[-1]

    yield begin
    for proc in started:
        if proc.proc.poll() is None:
            proc.kill()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A tree of every entry type and ~23 MiB of random data: two packs."""
    return build_tree(tmp_path / "tree", data_files())


def test_an_upload_killed_at_its_manifest_leaves_packs_the_next_upload_reuses(
    seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy, via: dict[str, str], direct: dict[str, str],
    start: Callable[..., Running], tree: Path, tmp_path: Path,
) -> None:
    held = proxy.hold(is_manifest_put)
    upload = start(via, "dir", "upload", "k", str(tree))
    held.wait()
    stored = packs_in(seaweed_s3, s3_bucket)  # the manifest is written once every pack is stored
    assert len(stored) >= 2 and len(answered(proxy, is_pack_put)) == len(stored)
    assert upload.kill().code == KILLED
    held.drop()
    assert not manifest_there(seaweed_s3, s3_bucket, "k")
    assert_missing(direct, tmp_path, "k")

    proxy.reset()
    again = run(via, tmp_path, "dir", "upload", "k", str(tree))
    assert again.code == 0, again
    assert [r for r in proxy.requests if is_pack_write(r)] == []  # every pack was there: none sent
    assert packs_in(seaweed_s3, s3_bucket) == stored
    restores(direct, tmp_path, "k", tree)


@pytest.mark.parametrize(
    ("prune_first", "part_size_mb"),
    [(False, 32), (True, 32), (False, 5)],
    ids=["reused", "condemned", "multipart"],
)
def test_an_upload_killed_after_its_first_pack_then_a_prune_keeps_what_trees_need(
    env: dict[str, str], seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy, direct: dict[str, str],
    start: Callable[..., Running], tree: Path, tmp_path: Path, prune_first: bool, part_size_mb: int,
) -> None:
    via = {**env, **cas_env(seaweed_s3, s3_bucket, proxy, part_size_mb)}  # 5 MiB: every pack sent in parts
    held = proxy.hold(is_pack_put, nth=2, count=None)  # every pack after the first
    upload = start(via, "dir", "upload", "k", str(tree))
    held.wait()
    wait_answered(proxy, is_pack_put, 1)
    assert upload.kill().code == KILLED
    held.drop()
    first = packs_in(seaweed_s3, s3_bucket)
    assert len(first) == 1 and not manifest_there(seaweed_s3, s3_bucket, "k")
    # A pack sent in parts leaves its unfinished multipart upload (a prune clears it a day on).
    assert bool(seaweed_s3.multipart_uploads(s3_bucket)) == (part_size_mb < 7)
    assert_missing(direct, tmp_path, "k")
    if prune_first:  # the orphan is condemned: the next upload must store it again, not name it
        doc = prune(direct, tmp_path, "--pack-grace", "0s")
        assert doc["packs"]["condemned"] == 1 and doc["packs"]["deleted"] == [], doc

    proxy.reset()
    again = run(via, tmp_path, "dir", "upload", "k", str(tree))
    assert again.code == 0, again
    stored = packs_in(seaweed_s3, s3_bucket)
    assert first < stored and len(stored) >= 2
    sent = {r.path.rpartition("/")[2] for r in proxy.requests if is_pack_put(r)}
    assert sent == {p.rpartition("/")[2] for p in (stored if prune_first else stored - first)}
    for _ in range(2):  # condemn, then delete what no manifest names: nothing here
        doc = prune(direct, tmp_path, "--pack-grace", "0s")
        assert doc["packs"]["deleted"] == [] and doc["packs"]["live"] == len(stored), doc
    assert packs_in(seaweed_s3, s3_bucket) == stored
    restores(direct, tmp_path, "k", tree)


def test_two_uploads_of_overlapping_trees_interleaved_both_restore(
    env: dict[str, str], seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy, via: dict[str, str],
    direct: dict[str, str], start: Callable[..., Running], tmp_path: Path,
) -> None:
    a = build_tree(tmp_path / "a", data_files("a", share=0.8))
    b = build_tree(tmp_path / "b", data_files("b", share=0.8))
    with FaultProxy(seaweed_s3.endpoint) as other:
        via_b = {**env, **cas_env(seaweed_s3, s3_bucket, other)}
        holds_a = [proxy.hold(is_pack_put, nth=n) for n in (1, 2)]
        holds_b = [other.hold(is_pack_put, nth=n) for n in (1, 2)]
        up_a = start(via, "dir", "upload", "a", str(a))
        up_b = start(via_b, "dir", "upload", "b", str(b))
        # A's first two packs and B's wait in turn: B1, A1, B2, A2 reach the store in that order.
        for hold_a, hold_b in zip(holds_a, holds_b, strict=True):
            pack_a, pack_b = hold_a.wait(), hold_b.wait()
            hold_b.release()
            wait_stored(pack_b)
            hold_a.release()
            wait_stored(pack_a)
        done_a, done_b = up_a.finish(), up_b.finish()
    assert (done_a.code, done_b.code) == (0, 0), (done_a, done_b)
    assert manifest_there(seaweed_s3, s3_bucket, "a") and manifest_there(seaweed_s3, s3_bucket, "b")
    restores(direct, tmp_path, "a", a)
    restores(direct, tmp_path, "b", b)


def test_a_prune_beside_an_upload_between_its_packs_and_its_manifest_spares_its_packs(
    seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy, via: dict[str, str], direct: dict[str, str],
    start: Callable[..., Running], tree: Path, tmp_path: Path,
) -> None:
    held = proxy.hold(is_manifest_put)
    upload = start(via, "dir", "upload", "k", str(tree))
    held.wait()
    stored = packs_in(seaweed_s3, s3_bucket)
    for _ in range(2):  # the default grace period: packs younger than it are never condemned
        doc = prune(direct, tmp_path)
        assert doc["packs"]["deleted"] == [] and doc["packs"]["condemned"] == 0, doc
        assert doc["packs"]["young"] == len(stored), doc
    held.release()
    done = upload.finish()
    assert done.code == 0, done
    assert packs_in(seaweed_s3, s3_bucket) == stored
    restores(direct, tmp_path, "k", tree)


def test_an_upload_a_restore_and_a_prune_at_once(
    seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy, via: dict[str, str], direct: dict[str, str],
    start: Callable[..., Running], tree: Path, tmp_path: Path,
) -> None:
    stored = run(direct, tmp_path, "dir", "upload", "old", str(tree))
    assert stored.code == 0, stored
    old_packs = packs_in(seaweed_s3, s3_bucket)
    new = build_tree(tmp_path / "new", data_files("new", share=0.5))
    uploaded, reading = proxy.hold(is_manifest_put), proxy.hold(is_pack_read, nth=2)
    upload = start(via, "dir", "upload", "new", str(new), "--restore-key", "ol")
    restore = start(via, "dir", "download", "old", str(tmp_path / "dest"))
    uploaded.wait()
    reading.wait()
    new_packs = packs_in(seaweed_s3, s3_bucket) - old_packs
    assert new_packs
    # Even at a grace period of 0s one prune only condemns the packs of the upload in flight.
    doc = prune(direct, tmp_path, "--pack-grace", "0s")
    assert doc["packs"]["deleted"] == [] and doc["packs"]["condemned"] == len(new_packs), doc
    uploaded.release()
    reading.release()
    done_upload, done_restore = upload.finish(), restore.finish()
    assert (done_upload.code, done_restore.code) == (0, 0), (done_upload, done_restore)
    assert snapshot(tmp_path / "dest") == snapshot(tree)
    doc = prune(direct, tmp_path, "--pack-grace", "0s")  # named now: out of the record
    assert doc["packs"]["deleted"] == [] and doc["packs"]["condemned"] == 0, doc
    assert packs_in(seaweed_s3, s3_bucket) == old_packs | new_packs
    restores(direct, tmp_path, "new", new)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_restore_killed_mid_way_leaves_the_destination_as_it_was(
    seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy, via: dict[str, str], direct: dict[str, str],
    start: Callable[..., Running], tree: Path, tmp_path: Path, sig: int,
) -> None:
    stored = run(direct, tmp_path, "dir", "upload", "k", str(tree))
    assert stored.code == 0, stored
    parent = tmp_path / "work"
    dest = build_tree(parent / "dest", {"old.txt": b"the previous tree\n"})
    before = snapshot(dest)
    held = proxy.hold(is_pack_read, nth=3)
    restore = start(via, "dir", "download", "k", str(dest))
    held.wait()
    wait_answered(proxy, is_pack_read, 2)
    killed = restore.kill(sig)
    held.drop()
    assert killed.code == (KILLED if sig == signal.SIGKILL else 128 + sig), killed
    assert snapshot(dest) == before
    left = leftovers(parent)
    if sig == signal.SIGKILL:  # no cleanup possible: at most its staging directory, the next restore removes it
        assert len(left) <= 1 and all(".cacher-staging-" in name for name in left), left
    else:
        assert left == []

    proxy.reset()
    again = run(via, tmp_path, "dir", "download", "k", str(dest))
    assert again.code == 0, again
    assert snapshot(dest) == snapshot(tree)
    assert leftovers(parent) == []


def test_a_prune_killed_mid_way_through_its_deletions_is_finished_by_the_next(
    seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy, via: dict[str, str], direct: dict[str, str],
    start: Callable[..., Running], tmp_path: Path,
) -> None:
    # "gone" has three packs, the first one the same as the first of "b" and "c" (smaller trees).
    shapes = {"gone": (0.5, 8), "b": (1.0, 4), "c": (1.0, 5)}
    trees = {key: build_tree(tmp_path / key, data_files(key, *shape)) for key, shape in shapes.items()}
    for key, root in trees.items():
        done = run(direct, tmp_path, "dir", "upload", key, str(root))
        assert done.code == 0, done
    deleted = run(direct, tmp_path, "delete", "gone")
    assert deleted.code == 0, deleted
    doc = prune(direct, tmp_path, "--pack-grace", "0s")  # condemns the packs only "gone" named
    dead = doc["packs"]["condemned"]
    assert dead >= 2 and doc["packs"]["deleted"] == [], doc
    before = packs_in(seaweed_s3, s3_bucket)

    held = proxy.hold(is_pack_delete, nth=2)
    pruning = start(via, "--json", "prune", "--all-projects", "--older-than", "3650d", "--pack-grace", "0s")
    held.wait()
    wait_answered(proxy, is_pack_delete, 1)
    assert pruning.kill().code == KILLED
    held.drop()
    assert len(packs_in(seaweed_s3, s3_bucket)) == len(before) - 1

    last = prune(direct, tmp_path, "--pack-grace", "0s")
    assert len(last["packs"]["deleted"]) == dead - 1, last
    after = packs_in(seaweed_s3, s3_bucket)
    assert len(after) == len(before) - dead
    assert prune(direct, tmp_path, "--pack-grace", "0s")["packs"]["deleted"] == []
    for key in ("b", "c"):
        restores(direct, tmp_path, key, trees[key])
    assert_missing(direct, tmp_path, "gone")


def test_a_condemned_pack_an_upload_stores_again_while_a_prune_deletes_stays(
    seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy, via: dict[str, str], direct: dict[str, str],
    start: Callable[..., Running], tree: Path, tmp_path: Path,
) -> None:
    first = run(direct, tmp_path, "dir", "upload", "old", str(tree))
    assert first.code == 0, first
    assert run(direct, tmp_path, "delete", "old").code == 0
    doc = prune(direct, tmp_path, "--pack-grace", "0s")  # every pack of "old" condemned
    stored = packs_in(seaweed_s3, s3_bucket)
    assert doc["packs"]["condemned"] == len(stored) >= 2, doc

    # A prune that will delete them is held at its first DELETE; meanwhile an upload of the same
    # tree stores the condemned packs again (same ids, as a condemned pack is never reused by
    # name) and publishes a manifest naming them.
    held = proxy.hold(is_pack_delete)
    pruning = start(via, "--json", "prune", "--all-projects", "--older-than", "3650d", "--pack-grace", "0s")
    held.wait()
    again = run(direct, tmp_path, "dir", "upload", "new", str(tree))
    assert again.code == 0, again
    held.release()
    done = pruning.finish()
    assert done.code == 0, done
    # "deletes it if it is still unreferenced and unchanged" (docs/cli.md): every pack was stored
    # again before the prune went on. Without conditional DELETEs, the one pack whose DELETE was
    # already on its way (checked, then held) cannot be saved; the others must stay.
    lost = stored - packs_in(seaweed_s3, s3_bucket)
    assert len(lost) <= 1, json.loads(done.out)["packs"]


def mostly_dead(direct: dict[str, str], server: Any, bucket: str, tmp_path: Path) -> tuple[Path, set[str]]:
    """Tree "b" stored on the base "a", which is deleted then: of a's packs, b uses one file of
    the first and the small files of the last (both mostly dead: a prune repacks them), none of
    the second. (b's tree, a's packs)"""
    files = data_files()
    a = build_tree(tmp_path / "a", files)
    b = build_tree(tmp_path / "b", {n: d for n, d in files.items() if not n.startswith("data/big/") or n.endswith("/f000")})
    stored = run(direct, tmp_path, "dir", "upload", "a", str(a))
    assert stored.code == 0, stored
    packs_a = packs_in(server, bucket)
    stored = run(direct, tmp_path, "dir", "upload", "b", str(b), "--base", "a")
    assert stored.code == 0, stored
    assert run(direct, tmp_path, "delete", "a").code == 0
    return b, packs_a


def test_a_restore_in_flight_while_a_prune_repacks_its_tree_completes(
    seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy, via: dict[str, str], direct: dict[str, str],
    start: Callable[..., Running], tmp_path: Path,
) -> None:
    b, packs_a = mostly_dead(direct, seaweed_s3, s3_bucket, tmp_path)
    held = proxy.hold(lambda r: is_pack_read(r) and r.path.lstrip("/").partition("/")[2] in packs_a)
    restore = start(via, "dir", "download", "b", str(tmp_path / "dest"))
    held.wait()  # the restore read b's manifest, naming a's packs, and reads them
    doc = prune(direct, tmp_path, "--pack-grace", "0s")
    assert doc["packs"]["rewritten"] == 1 and doc["packs"]["repacked"] >= 1, doc
    assert doc["packs"]["deleted"] == [], doc  # condemned: a restore in flight may still read them
    held.release()
    done = restore.finish()
    assert done.code == 0, done
    assert snapshot(tmp_path / "dest") == snapshot(b)

    last = prune(direct, tmp_path, "--pack-grace", "0s")  # a grace period on (0s): they go
    assert not packs_a & packs_in(seaweed_s3, s3_bucket), last
    restores(direct, tmp_path, "b", b)


def test_a_prune_killed_before_its_repacked_manifest_leaves_the_tree_as_it_was(
    seaweed_s3: Any, s3_bucket: str, proxy: FaultProxy, via: dict[str, str], direct: dict[str, str],
    start: Callable[..., Running], tmp_path: Path,
) -> None:
    b, packs_a = mostly_dead(direct, seaweed_s3, s3_bucket, tmp_path)
    held = proxy.hold(is_manifest_put)
    pruning = start(via, "--json", "prune", "--all-projects", "--older-than", "3650d", "--pack-grace", "0s")
    held.wait()  # the new packs stored, b's manifest about to be replaced
    assert pruning.kill().code == KILLED
    held.drop()
    assert packs_a <= packs_in(seaweed_s3, s3_bucket)
    restores(direct, tmp_path, "b", b)  # the old manifest, the old packs

    doc = prune(direct, tmp_path, "--pack-grace", "0s")  # repacks again; the orphans are young
    assert doc["packs"]["rewritten"] == 1, doc
    prune(direct, tmp_path, "--pack-grace", "0s")
    prune(direct, tmp_path, "--pack-grace", "0s")
    assert not packs_a & packs_in(seaweed_s3, s3_bucket)
    restores(direct, tmp_path, "b", b)
