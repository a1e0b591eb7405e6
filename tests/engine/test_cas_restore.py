"""Restoring content-addressed trees (issue 30): a stored manifest restores into the dir
kind's staging directory, written straight from its entries (the tree comes back equal, and
equal to what its export extracts to), a runner whose local tier holds the blobs fetches
almost nothing, a damaged blob on disk is fetched again, a damaged pack or a hostile manifest
is refused with the destination untouched and the key not poisoned, and a key stored in both
formats restores the newer. On the file store and on SeaweedFS, through the engine as a job
runs it (`cacher.job.Job`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cacher import engine
from cacher.cas import names
from cacher.cas.manifest import blob_document, canonical, entry_document
from cacher.cas.model import Chunk, Entry, Manifest, PackBlobs
from cacher.cas.pack import Packer, PackInfo
from cacher.cas.root import Root, encode_root
from cacher.cas.save import save_tree
from cacher.engine.cas_fetch import TIER_BLOBS
from cacher.engine.cas_restoring import stream_tree
from cacher.errors import CacheMiss, IntegrityError, ObjectRefused
from cacher.job import Job
from cacher.registry import Registry
from tests.trees import make_tree, snapshot

MiB = 1 << 20


# -- storing trees the way the upload side does (manifest written last) ------------------------


def job_for(env: dict[str, str], **extra: str) -> Job:
    """A job as the command line makes one, in the test's environment."""
    return Job({}, Registry.from_entry_points(), environ={**env, **extra})


def _packer(job: Job) -> Packer:
    def done(sink: Any, info: PackInfo) -> None:
        sink.seek(0)
        job.cas_layout.put_pack(info.pack_id, sink, info.size)

    return Packer(io.BytesIO, done)


def _write_manifest(job: Job, key: str, root: bytes, tree_kind: str = "dir") -> None:
    metadata = {**names.MANIFEST_METADATA, "tree-kind": tree_kind}
    with job.store.writer(names.manifest_name(key), metadata) as out:
        out.write(root)


def store_tree(job: Job, key: str, tree: Path) -> Manifest:
    """Store ``tree`` under ``key`` as a manifest and packs; the manifest stored."""
    saved = save_tree(tree, _packer(job), {}, job.cas_layout.pack_ref)
    _write_manifest(job, key, saved.root)
    return saved.manifest


def store_entries(job: Job, key: str, entries: list[Entry], blobs: dict[str, bytes], tree_kind: str = "dir") -> None:
    """Store a manifest of hand-made ``entries`` (contents in ``blobs``): what a hostile or
    buggy writer could put there, since `save_tree` only writes what a real tree holds."""
    packer = _packer(job)
    for digest, data in blobs.items():
        packer.add(digest, data)
    content = list(packer.finish())
    places = {b.digest: (job.cas_layout.pack_ref(p.pack_id), b) for p in content for b in p.blobs}
    by_pack: dict[str, list[Any]] = {}
    for ref, blob in places.values():
        by_pack.setdefault(ref, []).append(blob)
    manifest = canonical(Manifest(tuple(entries), tuple(PackBlobs(r, tuple(b)) for r, b in by_pack.items())))
    part = {
        "format": "cacher-tree-part",
        "version": 1,
        "entries": [entry_document(e) for e in manifest.entries],
        "packs": [{"ref": p.ref, "blobs": [blob_document(b) for b in p.blobs]} for p in manifest.packs],
    }
    data = json.dumps(part, sort_keys=True, separators=(",", ":")).encode()  # unchecked, as written
    digests = [hashlib.sha256(data).hexdigest()]
    packer.add(digests[0], data)
    packs = list(packer.finish())[len(content) :]
    parts = {b.digest: (job.cas_layout.pack_ref(p.pack_id), b) for p in packs for b in p.blobs}
    _write_manifest(job, key, encode_root(Root(tuple(parts[d] for d in digests), len(entries))), tree_kind)


def restore(job: Job, key: str, dest: Path, **policy: Any) -> engine.Result:
    """`cacher dir download KEY DEST`, in process."""
    kind = job.registry.kind("dir")
    request = engine.DownloadRequest(kind, job.registry.codec("zstd"), key, str(dest), {}, **policy)
    return engine.download(job.store, job.for_download(request))


def upload_plain(job: Job, key: str, tree: Path) -> None:
    kind = job.registry.kind("dir")
    request = engine.UploadRequest(kind, job.registry.codec("zstd"), key, [str(tree)], {}, force=True)
    assert engine.upload(job.store, request).outcome == "uploaded"


def full_tree(root: Path) -> Path:
    """Every entry type (tests.trees), plus a file split in blobs, an empty file, a venv."""
    make_tree(root)
    (root / "large.bin").write_bytes(os.urandom(5 * MiB) + b"tail")
    (root / "empty.txt").write_bytes(b"")
    (root / "ro.txt").write_text("read only")
    (root / "ro.txt").chmod(0o444)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    return root


# -- the store under test, and how to damage its objects behind cacher's back -------------------


@pytest.fixture
def store(request: pytest.FixtureRequest, store_env: dict[str, str], env: dict[str, str], local_root: Path) -> dict[str, Any]:
    """The job's environment, and ``damage_pack()``: one byte changed in the largest pack."""
    if not store_env:

        def damage_file() -> None:
            packs = sorted((local_root / names.PACKS).rglob("*.pack"), key=lambda p: p.stat().st_size)
            data = bytearray(packs[-1].read_bytes())
            data[len(data) // 3] ^= 0xFF
            with open(packs[-1], "r+b") as f:  # in place: the recorded metadata stays
                f.write(data)

        return {"env": env, "damage_pack": damage_file}
    server = request.getfixturevalue("seaweed_s3")
    bucket = store_env["CACHER_BUCKET"]

    def damage_s3() -> None:
        client = server.client()
        listed = client.list_objects_v2(Bucket=bucket, Prefix=names.PACKS)["Contents"]
        largest = max(listed, key=lambda o: o["Size"])["Key"]
        got = client.get_object(Bucket=bucket, Key=largest)
        data = bytearray(got["Body"].read())
        data[len(data) // 3] ^= 0xFF
        client.put_object(Bucket=bucket, Key=largest, Body=bytes(data), Metadata=got["Metadata"])

    return {"env": {**env, **store_env}, "damage_pack": damage_s3}


def untouched(dest: Path) -> dict[str, Any]:
    """A destination with something in it, and its snapshot."""
    dest.mkdir()
    (dest / "keep.txt").write_text("the previous restore")
    return snapshot(dest)


# -- round trip and the blob directory ---------------------------------------------------------


def test_round_trip_then_a_warm_tier_fetches_almost_nothing(store: dict[str, Any], tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    job = job_for(store["env"], CACHER_LOCAL_TIER=str(tier))
    tree = full_tree(tmp_path / "tree")
    manifest = store_tree(job, "venv-1", tree)

    cold = restore(job, "venv-1", tmp_path / "one")
    assert (cold.outcome, cold.matched_key, cold.verified) == ("hit", "venv-1", True)
    assert snapshot(tmp_path / "one") == snapshot(tree)
    assert cold.raw_bytes == manifest.logical_size
    assert cold.cas_blobs is not None and cold.cas_blobs[0] == len(manifest.digests()) > 3
    assert cold.stored_bytes > 5 * MiB  # the large file was fetched (random bytes do not compress)

    warm = restore(job_for(store["env"], CACHER_LOCAL_TIER=str(tier)), "venv-1", tmp_path / "two")
    assert snapshot(tmp_path / "two") == snapshot(tree)
    assert warm.cas_blobs == (0, len(manifest.digests()))
    assert warm.stored_bytes <= cold.stored_bytes * 0.05  # the manifest and its parts alone

    blobs = [p for p in (tier / TIER_BLOBS).rglob("*") if p.is_file()]
    assert len(blobs) == len(manifest.digests())
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in blobs)
    assert all(p.stat().st_mode & 0o777 == 0o700 for p in (tier / TIER_BLOBS).rglob("*") if p.is_dir())


def test_the_tiers_blobs_stay_within_its_bound(store: dict[str, Any], tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    job = job_for(store["env"], CACHER_LOCAL_TIER=str(tier), CACHER_LOCAL_TIER_MAX="3MiB")
    tree = full_tree(tmp_path / "tree")
    store_tree(job, "k", tree)
    restore(job, "k", tmp_path / "one")
    assert snapshot(tmp_path / "one") == snapshot(tree)
    kept = sum(p.stat().st_size for p in (tier / TIER_BLOBS).rglob("*") if p.is_file())
    assert 0 < kept <= 3 * MiB  # least recently used first: the rest of the tree stays


def test_a_damaged_blob_in_the_tier_is_dropped_and_fetched_again(store: dict[str, Any], tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    job = job_for(store["env"], CACHER_LOCAL_TIER=str(tier))
    tree = full_tree(tmp_path / "tree")
    store_tree(job, "k", tree)
    restore(job, "k", tmp_path / "one")
    big = max((p for p in (tier / TIER_BLOBS).rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(big.read_bytes())
    data[100] ^= 1
    big.write_bytes(bytes(data))
    truncated = min((p for p in (tier / TIER_BLOBS).rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    truncated.write_bytes(truncated.read_bytes()[:-1])

    again = restore(job_for(store["env"], CACHER_LOCAL_TIER=str(tier)), "k", tmp_path / "two")
    assert snapshot(tmp_path / "two") == snapshot(tree)
    assert again.cas_blobs is not None and again.cas_blobs[0] == 2  # the two bad files, fetched
    assert big.read_bytes() != bytes(data)  # replaced by the checked blob


def test_a_read_only_job_reads_the_tier_and_writes_nothing(store: dict[str, Any], tmp_path: Path) -> None:
    tier = tmp_path / "tier"
    job = job_for(store["env"], CACHER_LOCAL_TIER=str(tier))
    tree = full_tree(tmp_path / "tree")
    manifest = store_tree(job, "k", tree)
    restore(job, "k", tmp_path / "one")
    before = {p: p.stat().st_mtime_ns for p in (tier / TIER_BLOBS).rglob("*")}
    reader = job_for(store["env"], CACHER_LOCAL_TIER=str(tier), CACHER_READ_ONLY="1")
    result = restore(reader, "k", tmp_path / "two")
    assert snapshot(tmp_path / "two") == snapshot(tree)
    assert result.cas_blobs == (0, len(manifest.digests()))
    assert {p: p.stat().st_mtime_ns for p in (tier / TIER_BLOBS).rglob("*")} == before


def test_without_a_tier_blobs_spill_to_scratch_removed_after(store: dict[str, Any], tmp_path: Path) -> None:
    job = job_for(store["env"], TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    tree = full_tree(tmp_path / "tree")
    manifest = store_tree(job, "k", tree)
    old_tmp = os.environ.get("TMPDIR")
    import tempfile

    os.environ["TMPDIR"], tempfile.tempdir = str(tmp_path / "tmp"), None
    try:
        for dest in ("one", "two"):
            result = restore(job, "k", tmp_path / dest)
            assert snapshot(tmp_path / dest) == snapshot(tree)
            assert result.cas_blobs == (len(manifest.digests()), 0)
    finally:
        if old_tmp is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old_tmp
        tempfile.tempdir = None
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith(".cacher-paths-")] == []


def test_the_destinations_previous_tree_supplies_what_it_still_holds(store: dict[str, Any], tmp_path: Path) -> None:
    job = job_for(store["env"])  # no tier: only the destination can spare a fetch
    tree = full_tree(tmp_path / "tree")
    store_tree(job, "v1", tree)
    dest = tmp_path / "dest"
    restore(job, "v1", dest)
    (tree / "pkg" / "a.txt").write_text("alpha, bumped\n")  # changed: another size
    (tree / "pkg" / "run.sh").write_text("#!/bin/sh\necho HI\n")  # changed: the same size
    os.symlink("pkg/sub/big.bin", dest / "empty.txt.tmp")  # stray entries there are ignored
    manifest = store_tree(job, "v2", tree)
    got = restore(job, "v2", dest)
    assert snapshot(dest) == snapshot(tree)
    assert got.cas_blobs is not None
    fetched, local = got.cas_blobs
    assert (fetched, local) == (2, len(manifest.digests()) - 2)  # a.txt, run.sh
    assert got.stored_bytes < 1 * MiB


# -- refused: damaged packs, hostile manifests, other kinds -------------------------------------


def test_a_damaged_pack_is_refused_and_the_destination_untouched(store: dict[str, Any], tmp_path: Path) -> None:
    job = job_for(store["env"])
    store_tree(job, "k", full_tree(tmp_path / "tree"))
    store["damage_pack"]()
    dest = tmp_path / "dest"
    before = untouched(dest)
    with pytest.raises(IntegrityError) as caught:
        restore(job, "k", dest)
    assert "corrupt" in caught.value.message or "damaged" in caught.value.message
    assert snapshot(dest) == before
    with pytest.raises(CacheMiss):  # ensure's policy: a miss, to be made again
        restore(job, "k", dest, refused_is_miss=True)
    assert snapshot(dest) == before


def _file(path: str, data: bytes) -> tuple[Entry, dict[str, bytes]]:
    digest = hashlib.sha256(data).hexdigest()
    return Entry(path, "file", 0o644, 0, len(data), (Chunk(digest, len(data)),)), {digest: data}


HOSTILE: dict[str, Callable[[], tuple[list[Entry], dict[str, bytes]]]] = {
    "dot-dot": lambda: ([_file("../x", b"escaped")[0]], _file("../x", b"escaped")[1]),
    "link-then-file": lambda: (
        [Entry("a", "symlink", 0o777, 0, target="/tmp"), _file("a/f", b"through the link")[0]],
        _file("a/f", b"through the link")[1],
    ),
    "absolute": lambda: ([_file("/etc/x", b"abs")[0]], _file("/etc/x", b"abs")[1]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_manifest_is_refused_and_never_poisons(store: dict[str, Any], tmp_path: Path, case: str) -> None:
    job = job_for(store["env"])
    good = tmp_path / "good"
    good.mkdir()
    (good / "f.txt").write_text("good")
    store_tree(job, "deps-old", good)
    time.sleep(1.1)  # S3 times are whole seconds: the hostile one is the newer
    entries, blobs = HOSTILE[case]()
    store_entries(job, "deps-new", entries, blobs)
    dest = tmp_path / "dest"
    before = untouched(dest)
    with pytest.raises(ObjectRefused):
        restore(job, "deps-new", dest)
    assert snapshot(dest) == before
    assert not (tmp_path / "x").exists() and not Path("/tmp/f").exists()
    partial = restore(job, "deps-miss", dest, restore_keys=["deps-"])  # skipped for the older
    assert (partial.outcome, partial.matched_key) == ("partial", "deps-old")
    assert any("deps-new" in note for note in partial.notes)
    assert (dest / "f.txt").read_text() == "good"


def test_another_kinds_tree_is_refused_before_it_is_read(store: dict[str, Any], tmp_path: Path) -> None:
    job = job_for(store["env"])
    entries, blobs = [_file("f", b"x")[0]], _file("f", b"x")[1]
    store_entries(job, "k", entries, blobs, tree_kind="paths")
    dest = tmp_path / "dest"
    before = untouched(dest)
    with pytest.raises(ObjectRefused, match="'paths'"):
        restore(job, "k", dest)
    assert snapshot(dest) == before


# -- both formats under one key, and restore keys across formats --------------------------------


def test_a_key_is_stored_in_one_format_after_an_upload(store: dict[str, Any], tmp_path: Path) -> None:
    """A --force upload in the other format replaces the key's object: every reader, whatever
    its tree_format, restores what was stored last."""
    tar_job, cas_job = job_for(store["env"]), job_for(store["env"], CACHER_TREE_FORMAT="cas")
    old, new = tmp_path / "old", tmp_path / "new"
    for root, text in ((old, "plain"), (new, "manifest")):
        root.mkdir()
        (root / "f.txt").write_text(text)
    for job, tree, text in ((tar_job, old, "plain"), (cas_job, new, "manifest"), (tar_job, old, "plain")):
        kind = job.registry.kind("dir")
        request = engine.UploadRequest(kind, job.registry.codec("zstd"), "k", [str(tree)], {}, force=True)
        assert engine.upload(job.store, job.for_upload(request)).outcome == "uploaded"
        for reader in (tar_job, cas_job):
            dest = tmp_path / f"out-{text}-{id(reader)}-{time.monotonic_ns()}"
            got = restore(reader, "k", dest)
            assert (dest / "f.txt").read_text() == text
            assert (got.cas_blobs is not None) == (text == "manifest")


@pytest.mark.parametrize(("writer", "tie"), [("tar", False), ("cas", False), ("tar", True), ("cas", True)])
def test_two_jobs_racing_in_two_formats_leave_the_newer(
    store: dict[str, Any], tmp_path: Path, writer: str, tie: bool
) -> None:
    """Two jobs that each saw the key missing store it in two formats: whichever finishes
    settles the key on the newer object (the manifest on a tie), so readers agree."""
    from cacher.engine.cas_saving import settle_formats

    job = job_for(store["env"], CACHER_TREE_FORMAT=writer)
    old, new = tmp_path / "old", tmp_path / "new"
    for root, text in ((old, "plain"), (new, "manifest")):
        root.mkdir()
        (root / "f.txt").write_text(text)
    upload_plain(job, "k", old)
    if not tie:
        time.sleep(1.1)  # S3 times are whole seconds
    store_tree(job, "k", new)
    if tie:  # one time for both: on the file store, set it; S3 gives whole seconds, set by the server
        if "CACHER_ENDPOINT" in store["env"]:
            pytest.skip("S3 sets the times: a tie is made on the file store")
        plain = job.store.head("k")
        assert plain is not None and plain.modified is not None
        stamp = plain.modified.timestamp()
        os.utime(Path(job.store.path(names.manifest_name("k"))), (stamp, stamp))
    kind = job.registry.kind("dir")
    request = job.for_upload(engine.UploadRequest(kind, job.registry.codec("zstd"), "k", [str(new)], {}))
    settle_formats(job.store, request)
    assert job.store.head("k") is None and job.store.head(names.manifest_name("k")) is not None


def test_restore_keys_take_the_newest_of_either_format(store: dict[str, Any], tmp_path: Path) -> None:
    job = job_for(store["env"])
    trees = {}
    for name in ("a", "b", "c"):
        trees[name] = tmp_path / name
        trees[name].mkdir()
        (trees[name] / "f.txt").write_text(name)
    upload_plain(job, "deps-a", trees["a"])
    time.sleep(1.1)
    store_tree(job, "deps-b", trees["b"])
    got = restore(job, "deps-x", tmp_path / "one", restore_keys=["deps-"])
    assert (got.matched_key, got.cas_blobs is not None) == ("deps-b", True), got.notes
    time.sleep(1.1)
    upload_plain(job, "deps-c", trees["c"])
    got = restore(job, "deps-x", tmp_path / "two", restore_keys=["deps-"])
    assert (got.matched_key, got.cas_blobs) == ("deps-c", None)
    assert (tmp_path / "two" / "f.txt").read_text() == "c"


def test_a_fallback_scopes_manifest_restores_with_its_packs(store: dict[str, Any], tmp_path: Path) -> None:
    tree = full_tree(tmp_path / "tree")
    store_tree(job_for(store["env"], CACHER_SCOPE="main"), "deps-1", tree)
    feature = job_for(store["env"], CACHER_SCOPE="feature", CACHER_FALLBACK_SCOPES="main")
    got = restore(feature, "deps-1", tmp_path / "one")
    assert (got.outcome, got.scope, got.matched_key) == ("partial", "main", "deps-1")
    assert snapshot(tmp_path / "one") == snapshot(tree)
    got = restore(feature, "deps-2", tmp_path / "two", restore_keys=["deps-"])
    assert (got.outcome, got.scope, got.matched_key) == ("partial", "main", "deps-1")
    with pytest.raises(CacheMiss):  # a scope without main among its fallbacks finds nothing
        restore(job_for(store["env"], CACHER_SCOPE="other"), "deps-1", tmp_path / "three")


# -- the stream between export and unpack -------------------------------------------------------


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_error_on_either_side_of_the_stream_leaves_no_thread_or_descriptor(tmp_path: Path) -> None:
    entries = [_file(f"f{i}", os.urandom(1 << 16)) for i in range(64)]
    blobs = {d: b for _, more in entries for d, b in more.items()}
    manifest = Manifest(tuple(e for e, _ in entries), ())
    fds = _fds()

    def consumer_fails(stream: Any) -> None:
        stream.read(1000)
        raise ValueError("the kind gave up")

    with pytest.raises(ValueError, match="gave up"):
        stream_tree(manifest, blobs.__getitem__, consumer_fails)

    def bad_blob(digest: str) -> bytes:
        if digest == entries[40][0].chunks[0].digest:
            raise IntegrityError("blob damaged")
        return blobs[digest]

    dest = tmp_path / "dest"
    before = untouched(dest)
    kind = Registry.from_entry_points().kind("dir")
    with pytest.raises(IntegrityError, match="blob damaged"):
        stream_tree(manifest, bad_blob, lambda s: kind.unpack(s, str(dest), {}))
    assert snapshot(dest) == before
    # The stream's own thread is gone (other tests' daemon threads may come and go meanwhile).
    assert not [t for t in threading.enumerate() if t.name == "cacher-cas-export"]
    assert _fds() == fds


def test_reads_come_in_the_order_the_tree_needs_them(store: dict[str, Any], tmp_path: Path) -> None:
    """Packs are listed by id, not as written: planned in that order, a cold restore held or
    spilled to disk most blobs before the tree reached them."""
    from cacher.engine.cas_blobdir import BlobDir
    from cacher.engine.cas_fetch import Blobs

    job = job_for(store["env"])
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(24):
        (tree / f"f{i:02}").write_bytes(os.urandom(300_000))

    def done(sink: Any, info: PackInfo) -> None:
        sink.seek(0)
        job.cas_layout.put_pack(info.pack_id, sink, info.size)

    saved = save_tree(tree, Packer(io.BytesIO, done, 1 << 20), {}, job.cas_layout.pack_ref)
    assert len(saved.packs) > 4
    blobs = Blobs(saved.manifest, job.cas_layout, BlobDir(tmp_path / "spill"))
    blobs.plan()
    first = {digest: i for i, digest in enumerate(saved.manifest.digests())}
    order = [min(first[b.digest] for b in read.blobs) for read in blobs._reads]
    assert order == sorted(order)
    for digest in saved.manifest.digests():  # handed out in tree order, nothing spilled
        blobs.get(digest)
    assert not list((tmp_path / "spill").rglob("*"))


# -- the dir kind's tree written straight from the manifest (Kind.staging) -----------------------


def test_the_written_tree_is_the_one_its_export_extracts_to(store: dict[str, Any], tmp_path: Path) -> None:
    """A dir restore writes the tree itself (no tar stream): it equals what GNU tar extracts
    from `cacher dir export` of the same key, modes, times, links and empty directories."""
    import shutil

    from cacher.engine import cas_export

    if shutil.which("tar") is None or b"GNU tar" not in subprocess.run(
        ["tar", "--version"], capture_output=True, check=False
    ).stdout:
        pytest.skip("GNU tar is not installed")
    job = job_for(store["env"])
    tree = full_tree(tmp_path / "tree")
    (tree / "ro-dir" / "inner").mkdir(parents=True)
    (tree / "ro-dir" / "inner" / "f").write_text("under a read-only directory")
    os.link(tree / "ro-dir" / "inner" / "f", tree / "later-link")  # its first name is read-only
    (tree / "ro-dir" / "inner").chmod(0o555)
    (tree / "ro-dir").chmod(0o555)
    os.utime(tree / "ro-dir", (1_500_000_000, 1_500_000_000))
    try:
        store_tree(job, "k", tree)
        assert restore(job, "k", tmp_path / "written").outcome == "hit"
        archive = tmp_path / "export.tar"
        kind = job.registry.kind("dir")
        request = engine.DownloadRequest(kind, job.registry.codec("zstd"), "k", None, {})
        with open(archive, "wb") as sink:
            cas_export.export(job.store, job.for_download(request), sink)
        (tmp_path / "extracted").mkdir()
        untar = subprocess.run(
            ["tar", "-x", "-p", "-f", str(archive), "-C", str(tmp_path / "extracted")], capture_output=True, check=False
        )
        assert untar.returncode == 0, untar.stderr
        written = snapshot(tmp_path / "written")
        assert written == snapshot(tmp_path / "extracted") == snapshot(tree)
        assert written["ro-dir"][1] == 0o555 and written["ro-dir/inner/f"][4] == written["later-link"][4]
    finally:
        for root in (tree, tmp_path / "written", tmp_path / "extracted"):
            for path in (root / "ro-dir", root / "ro-dir" / "inner"):
                if path.is_dir():
                    path.chmod(0o755)


def test_the_placer_refuses_a_path_through_a_link_and_writes_nothing_outside(tmp_path: Path) -> None:
    """`cacher.cas.place` holds the extractor's rule by itself (not only through check_tree):
    a file under an entry that is a symlink is refused, nothing lands where the link points."""
    from cacher.cas.place import place_tree

    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    entry, blobs = _file("a/f", b"through the link")
    with pytest.raises(ObjectRefused):
        place_tree((Entry("a", "symlink", 0o777, 0, target=str(outside)), entry), blobs.__getitem__, root)
    assert list(outside.iterdir()) == []


def test_a_tier_blob_altered_or_replaced_by_a_link_is_not_placed(store: dict[str, Any], tmp_path: Path) -> None:
    """A tier blob changed on disk with its size and time kept, and one replaced by a link to
    a file of the right bytes, are never placed: both are fetched again, checked, and the link
    (not what it names) replaced."""
    tier = tmp_path / "tier"
    job = job_for(store["env"], CACHER_LOCAL_TIER=str(tier))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "one.txt").write_bytes(b"the first file's bytes\n" * 100)
    (tree / "two.txt").write_bytes(b"the second file's bytes\n" * 100)
    store_tree(job, "k", tree)
    restore(job, "k", tmp_path / "first")
    one_digest = hashlib.sha256((tree / "one.txt").read_bytes()).hexdigest()
    one = tier / TIER_BLOBS / one_digest[:2] / one_digest
    two_digest = hashlib.sha256((tree / "two.txt").read_bytes()).hexdigest()
    two = tier / TIER_BLOBS / two_digest[:2] / two_digest
    stamp = one.stat().st_mtime
    data = bytearray(one.read_bytes())
    data[7] ^= 0x20
    one.write_bytes(bytes(data))
    os.utime(one, (stamp, stamp))
    lure = tmp_path / "lure"
    lure.write_bytes((tree / "two.txt").read_bytes())
    two.unlink()
    two.symlink_to(lure)

    again = restore(job_for(store["env"], CACHER_LOCAL_TIER=str(tier)), "k", tmp_path / "second")
    assert snapshot(tmp_path / "second") == snapshot(tree)
    assert again.cas_blobs == (2, 1)  # both fetched; the altered one was first found by its size
    assert one.read_bytes() == (tree / "one.txt").read_bytes()
    assert not two.is_symlink() and lure.read_bytes() == (tree / "two.txt").read_bytes()


def test_a_tier_that_cannot_keep_a_blob_costs_a_fetch_not_the_restore(store: dict[str, Any], tmp_path: Path) -> None:
    """The tier is a cache: a blob it cannot keep (here a directory planted where the blob
    goes, so the rename fails as it would on a full disk) is fetched when the tree needs it,
    and the restore succeeds (it failed with "cannot keep a blob" before; red team)."""
    tier = tmp_path / "tier"
    job = job_for(store["env"], CACHER_LOCAL_TIER=str(tier))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "one.txt").write_bytes(b"the first file's bytes\n" * 100)
    (tree / "two.txt").write_bytes(b"the second file's bytes\n" * 100)
    store_tree(job, "k", tree)
    digest = hashlib.sha256((tree / "one.txt").read_bytes()).hexdigest()
    blocked = tier / TIER_BLOBS / digest[:2] / digest
    (blocked / "in-the-way").mkdir(parents=True, mode=0o700)
    for parent in (blocked.parent, blocked.parent.parent, tier):
        parent.chmod(0o700)

    restore(job_for(store["env"], CACHER_LOCAL_TIER=str(tier)), "k", tmp_path / "dest")

    assert snapshot(tmp_path / "dest") == snapshot(tree)
    assert blocked.is_dir()
