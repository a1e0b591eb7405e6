"""Hostile content-addressed trees through the installed `cacher` (issue 30, red team).

Manifests and packs are planted in a file store by hand (as anyone who can write the job's
scope could), then restored with `cacher dir download`: every refusal is exit 2 with one error
line, the destination is byte for byte as it was, and nothing appears outside it. The local
tier's blob directory is tampered with between restores; a read-only job stores nothing; the
files a real tree holds at the edges of the format (empty, exactly one block, one byte more, a
socket, a FIFO, a name that is not UTF-8) round-trip or fail before anything is published.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cacher.cas import frames
from cacher.cas.names import pack_ref
from cacher.cas.pack import PackWriter
from cacher.stores.base import META_PREFIX
from cacher.testing.cli import CliRun
from tests.conftest import assert_one_error_line
from tests.trees import snapshot

MANIFEST_META = {"kind": "cas-manifest", "codec": "zstd", "format": "cacher-tree/1", "tree-kind": "dir"}
PACK_META = {"kind": "cas-pack", "codec": "none", "format": "cacher-pack/1"}
BLOCK = 4 << 20

Run = Callable[..., CliRun]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def put(store: Path, name: str, data: bytes, metadata: dict[str, str]) -> None:
    """An object of the file backend, with its metadata as that backend keeps it (xattrs)."""
    path = store / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        for field, value in metadata.items():
            os.setxattr(f.fileno(), f"user.{META_PREFIX}{field}", value.encode())


def pack(store: Path, blobs: list[tuple[str, bytes]], tamper: Callable[[bytes], bytes] | None = None) -> dict[str, Any]:
    """Store a pack of ``blobs`` (digest, bytes: the digest need not be theirs); its part entry."""
    buf = io.BytesIO()
    writer = PackWriter(buf)
    for digest, data in blobs:
        writer.add(digest, data)
    info = writer.finish()
    data = buf.getvalue()
    ref = pack_ref(info.pack_id)
    put(store, ref, tamper(data) if tamper else data, PACK_META)
    return {"ref": ref, "blobs": [[b.digest, b.frame_offset, b.frame_length, b.offset, b.size] for b in info.blobs]}


def plant(
    store: Path,
    key: str,
    entries: list[dict[str, Any]],
    blobs: list[tuple[str, bytes]] | None = None,
    *,
    ref: str | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """A manifest of one part at ``_cas/manifests/KEY``, written as docs/format.md says but with
    whatever entries and blobs the test wants; a file entry with ``data`` gets its chunk."""
    entries = [dict(e) for e in entries]
    blobs = list(blobs or [])
    for entry in entries:
        if entry["type"] != "hardlink":
            entry.setdefault("mode", 0o644)
            entry.setdefault("mtime", 1_700_000_000)
        if "data" in entry:
            data = entry.pop("data")
            entry.setdefault("size", len(data))
            entry.setdefault("chunks", [[sha(data), len(data)]] if data else [])
            if data and sha(data) not in {d for d, _ in blobs}:
                blobs.append((sha(data), data))
    packs = [pack(store, blobs)] if blobs else []
    if ref is not None:
        for item in packs:
            item["ref"] = ref
    part = canonical({"format": "cacher-tree-part", "version": 1, "entries": entries, "packs": packs})
    placed = pack(store, [(sha(part), part)])
    root: dict[str, Any] = {
        "format": "cacher-tree",
        "version": 1,
        "digest": "sha256",
        "entries": len(entries),
        "parts": [[placed["ref"], *placed["blobs"][0]]],
    }
    root["pad"] = hashlib.shake_256(canonical(root)).hexdigest(512)
    put(store, f"_cas/manifests/{key}", frames.compress(canonical(root)), metadata or MANIFEST_META)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def run(cacher: Run, store: Path) -> Run:
    """`cacher` on the file store at ``store``, trees in the content-addressed format."""

    def go(*args: str, **env: str) -> CliRun:
        extra = {"CACHER_BACKEND": "file", "CACHER_BUCKET": str(store), "CACHER_TREE_FORMAT": "cas", **env}
        return cacher(*args, extra_env=extra)

    return go


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """A destination that already holds a tree, which a refused restore must leave alone."""
    path = tmp_path / "work" / "dest"
    (path / "keep").mkdir(parents=True)
    (path / "keep" / "file").write_bytes(b"previous tree\n")
    return path


def D(path: str) -> dict[str, Any]:
    return {"path": path, "type": "dir", "mode": 0o755}


def F(path: str, data: bytes = b"x\n") -> dict[str, Any]:
    return {"path": path, "type": "file", "data": data}


def L(path: str, target: str) -> dict[str, Any]:
    return {"path": path, "type": "symlink", "target": target, "mode": 0o777}


def H(path: str, target: str) -> dict[str, Any]:
    return {"path": path, "type": "hardlink", "target": target}


HOSTILE: dict[str, tuple[list[dict[str, Any]], str]] = {
    "dotdot": ([F("../escaped")], "'..'"),
    "dotdot-inside": ([D("a"), F("a/../../escaped")], "'..'"),
    "absolute": ([F("/tmp/cacher-cas-hostile-escaped")], "absolute"),
    "link-then-file": ([L("a", "{outside}"), F("a/escaped")], "not a directory"),
    "link-then-dir": ([L("a", "{outside}"), D("a/b")], "not a directory"),
    "link-deep-implied": ([D("a"), L("a/l", "{outside}"), F("a/l/x/escaped")], "not a directory"),
    "under-a-file": ([F("a"), F("a/b/c")], "not a directory"),
    "hardlink-to-later": ([H("a", "b"), F("b")], "earlier file"),
    "hardlink-outside": ([H("a", "/etc/passwd")], "earlier file"),
    "hardlink-to-dir": ([D("d"), H("h", "d")], "earlier file"),
    "twice": ([F("a"), F("a")], "twice"),
    "file-then-dir": ([F("a"), D("a")], "twice"),
    "control-char": ([F("a\nb")], "control character"),
    "empty-link": ([L("l", "")], "no usable target"),
    "size-not-chunks": ([{**F("f", b"abc"), "size": 4}], "another number"),
    "mode-not-permissions": ([{**F("f"), "mode": 0o170644}], "permission bits"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_manifest_in_the_store_is_refused_and_the_destination_kept(
    case: str, run: Run, store: Path, dest: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    entries, why = HOSTILE[case]
    entries = [{k: v.format(outside=outside) if k == "target" else v for k, v in e.items()} for e in entries]
    plant(store, "hostile", entries)
    before, around = snapshot(dest), snapshot(tmp_path / "work")

    result = run("dir", "download", "hostile", str(dest))

    assert_one_error_line(result, why)
    assert snapshot(dest) == before
    assert snapshot(tmp_path / "work") == around
    assert list(outside.iterdir()) == []
    assert not Path("/tmp/cacher-cas-hostile-escaped").exists()


def test_a_blob_that_is_not_its_digest_fails_before_the_destination_is_touched(
    run: Run, store: Path, dest: Path
) -> None:
    digest = sha(b"what the manifest names\n")
    entry = {"path": "f", "type": "file", "size": 24, "chunks": [[digest, 24]]}
    plant(store, "swapped", [entry], [(digest, b"what the pack holds!!!\n\n")])
    before = snapshot(dest)

    result = run("dir", "download", "swapped", str(dest))

    assert_one_error_line(result, "does not match its digest")
    assert snapshot(dest) == before


def test_a_corrupt_frame_fails_before_the_destination_is_touched(run: Run, store: Path, dest: Path) -> None:
    data = b"compressible " * 500
    plant(store, "flipped", [F("f", data)])
    # Damage the content pack's first frame: the content pack is the first one planted, the
    # part's pack the second (its frame would fail as the manifest is read, not as a blob is).
    content = min(store.glob("_cas/packs/*/*.pack"), key=lambda p: p.stat().st_mtime_ns)
    raw = bytearray(content.read_bytes())
    raw[10] ^= 1
    content.write_bytes(bytes(raw))
    before = snapshot(dest)

    result = run("dir", "download", "flipped", str(dest))

    assert result.code == 2, str(result)
    assert "Traceback" not in result.err
    assert snapshot(dest) == before


@pytest.mark.parametrize(
    "ref",
    [
        "_cas/packs/aa/../../../../etc/passwd",
        "../outside/_cas/packs/ab/" + "ab" * 32 + ".pack",
        "_scopes/Main/_cas/packs/ab/" + "ab" * 32 + ".pack",
        "_cas/manifests/other",
        "/_cas/packs/ab/" + "ab" * 32 + ".pack",
    ],
)
def test_a_pack_reference_outside_the_format_is_refused_unread(
    ref: str, run: Run, store: Path, dest: Path
) -> None:
    plant(store, "elsewhere", [F("f")], ref=ref)
    before = snapshot(dest)

    result = run("dir", "download", "elsewhere", str(dest))

    assert_one_error_line(result, "not a pack reference")
    assert snapshot(dest) == before


@pytest.mark.parametrize(("keep_metadata", "why"), [(True, "not as a tree manifest"), (False, "not a cacher-tree root")])
def test_a_tar_zst_at_the_manifest_name_is_refused_not_restored(
    keep_metadata: bool, why: str, run: Run, store: Path, dest: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "planted").write_text("from a tar.zst\n")
    assert run("dir", "upload", "plain", str(src), CACHER_TREE_FORMAT="tar").code == 0
    (store / "_cas" / "manifests").mkdir(parents=True)
    planted = store / "_cas" / "manifests" / "tarzst"
    (store / "plain").rename(planted)
    if not keep_metadata:  # a store that keeps no metadata: the object's bytes decide
        for attr in os.listxattr(planted):
            os.removexattr(planted, attr)
    before = snapshot(dest)

    result = run("dir", "download", "tarzst", str(dest))

    assert_one_error_line(result, why)
    assert snapshot(dest) == before


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ({**MANIFEST_META, "tree-kind": "paths"}, "stored by 'paths'"),
        ({"kind": "dir", "codec": "zstd"}, "not as a tree manifest"),
        ({"kind": "file", "codec": "none"}, "not as a tree manifest"),
    ],
)
def test_a_manifest_object_of_another_kind_is_refused_before_it_is_read(
    metadata: dict[str, str], why: str, run: Run, store: Path, dest: Path
) -> None:
    plant(store, "otherkind", [F("f")], metadata=metadata)
    before = snapshot(dest)

    result = run("dir", "download", "otherkind", str(dest))

    assert_one_error_line(result, why)
    assert snapshot(dest) == before


def edge_tree(root: Path) -> dict[str, bytes]:
    """Files at the format's edges: empty, one block, one block and a byte, 300 small ones."""
    files = {
        "empty": b"",
        "block": os.urandom(BLOCK),
        "block-plus-one": os.urandom(BLOCK + 1),
        "same-as-block": b"",
    }
    files["same-as-block"] = files["block"]
    for i in range(300):
        files[f"small/{i:03d}.txt"] = f"small file {i}\n".encode() * (i % 7)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_files_at_the_edges_of_the_format_round_trip(run: Run, store: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = edge_tree(src)
    os.link(src / "block", src / "hardlinked")
    os.symlink("block", src / "linked")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(src / "sock"))

        upload = run("dir", "upload", "edges", str(src))

    assert upload.code == 0, str(upload)
    assert (store / "_cas" / "manifests" / "edges").is_file()
    assert not (store / "edges").exists()
    out = tmp_path / "out"
    download = run("dir", "download", "edges", str(out))
    assert download.code == 0, str(download)
    for name, data in files.items():
        assert (out / name).read_bytes() == data, name
    assert (out / "hardlinked").stat().st_ino == (out / "block").stat().st_ino
    assert os.readlink(out / "linked") == "block"
    assert not (out / "sock").exists()  # sockets are left out, as the dir kind leaves them


def test_a_fifo_or_a_name_that_is_not_utf8_fails_the_upload_and_publishes_nothing(
    run: Run, store: Path, tmp_path: Path
) -> None:
    fifo_tree = tmp_path / "fifo"
    fifo_tree.mkdir()
    (fifo_tree / "a").write_text("a\n")
    os.mkfifo(fifo_tree / "pipe")
    bad_name = tmp_path / "badname"
    bad_name.mkdir()
    (bad_name / "a").write_text("a\n")
    open(os.path.join(os.fsencode(bad_name), b"bad\xff\xfe"), "wb").close()

    fifo = run("dir", "upload", "fifo", str(fifo_tree))
    name = run("dir", "upload", "badname", str(bad_name))

    assert_one_error_line(fifo, "FIFO")
    assert_one_error_line(name, "not UTF-8")
    assert not (store / "_cas" / "manifests").exists() or list((store / "_cas" / "manifests").iterdir()) == []
    assert run("dir", "download", "fifo", str(tmp_path / "o1")).code == 3
    assert run("dir", "download", "badname", str(tmp_path / "o2")).code == 3


def test_a_read_only_job_stores_nothing_and_writes_no_tier(run: Run, store: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(5000))
    assert run("dir", "upload", "seed", str(src)).code == 0
    stored = snapshot(store)
    tier = tmp_path / "tier"
    tier.mkdir(mode=0o700)

    upload = run("dir", "upload", "ro", str(src), CACHER_READ_ONLY="1")
    download = run("dir", "download", "seed", str(tmp_path / "out"), "--local-tier", str(tier), CACHER_READ_ONLY="1")

    assert upload.code == 0, str(upload)
    assert "read-only" in upload.err
    assert download.code == 0, str(download)
    assert (tmp_path / "out" / "f").read_bytes() == (src / "f").read_bytes()
    assert snapshot(store) == stored
    assert snapshot(tier) == {}


@pytest.mark.parametrize("tamper", ["truncate", "swap", "symlink", "empty"])
def test_a_tampered_tier_blob_is_never_restored(
    tamper: str, run: Run, store: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(os.urandom(3000 + i))
    decoy = tmp_path / "decoy"
    decoy.write_bytes(b"not the blob\n")
    tier = tmp_path / "tier"
    assert run("dir", "upload", "tiered", str(src)).code == 0
    first = run("dir", "download", "tiered", str(tmp_path / "o1"), "--local-tier", str(tier))
    assert first.code == 0, str(first)
    blobs = sorted(p for p in (tier / "cas-blobs").glob("*/*") if p.is_file())
    assert len(blobs) >= 3
    if tamper == "truncate":
        os.truncate(blobs[0], 10)
    elif tamper == "swap":
        a, b = blobs[0].read_bytes(), blobs[1].read_bytes()
        blobs[0].write_bytes(b)
        blobs[1].write_bytes(a)
    elif tamper == "symlink":
        blobs[0].unlink()
        blobs[0].symlink_to(decoy)
    else:
        blobs[0].write_bytes(b"")

    again = run("dir", "download", "tiered", str(tmp_path / "o2"), "--local-tier", str(tier))

    assert again.code == 0, str(again)
    assert snapshot(tmp_path / "o2") == snapshot(src)
    assert decoy.read_bytes() == b"not the blob\n"


def test_a_destination_that_is_a_symlink_is_restored_through_its_link_as_for_tar(
    run: Run, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("new\n")
    real = tmp_path / "real"
    real.mkdir()
    (real / "old").write_text("old\n")
    link = tmp_path / "link"
    link.symlink_to(real)
    assert run("dir", "upload", "linked", str(src)).code == 0

    result = run("dir", "download", "linked", str(link))

    assert result.code == 0, str(result)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert snapshot(real) == snapshot(src)


@pytest.mark.parametrize("where", [".", "..", "/", ""])
def test_a_dangerous_destination_is_refused_in_the_cas_format(
    where: str, run: Run, cacher: Run, store: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x\n")
    assert run("dir", "upload", "danger", str(src)).code == 0
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "mine").write_text("mine\n")
    before = snapshot(tmp_path / "cwd")

    result = cacher(
        "dir", "download", "danger", where,
        extra_env={"CACHER_BACKEND": "file", "CACHER_BUCKET": str(store), "CACHER_TREE_FORMAT": "cas"},
        cwd=cwd,
    )

    assert_one_error_line(result, "refusing to restore")
    assert snapshot(tmp_path / "cwd") == before


def test_a_planted_link_for_the_tiers_blob_directory_is_refused_and_nothing_outside_touched(
    run: Run, tmp_path: Path
) -> None:
    """Red team finding: a link at ``<tier>/cas-blobs`` had the trim delete files where it
    pointed, and blobs written there. Now the restore refuses it, like an untrusted tier."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(4096))
    assert run("dir", "upload", "k", str(src)).code == 0
    tier, victim = tmp_path / "tier", tmp_path / "victim"
    (victim / "docs").mkdir(parents=True)
    (victim / "docs" / "important").write_text("keep me\n")
    (victim / "ab").mkdir()
    (victim / "ab" / ("ab" * 32)).write_text("not a blob of ours\n")
    before = snapshot(victim)
    tier.mkdir(mode=0o700)
    (tier / "cas-blobs").symlink_to(victim)
    out = tmp_path / "out"
    result = run("dir", "download", "k", str(out), "--local-tier", str(tier), "--local-tier-max", "1KB")
    assert_one_error_line(result, "cas-blobs")
    assert snapshot(victim) == before
    assert not out.exists()


def test_the_trim_removes_only_blobs(run: Run, tmp_path: Path) -> None:
    """Files in the tier's blob directory that are not blobs are left alone by the trim."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(8192))
    assert run("dir", "upload", "k", str(src)).code == 0
    tier = tmp_path / "tier"
    assert run("dir", "download", "k", str(tmp_path / "o1"), "--local-tier", str(tier)).code == 0
    blobs = tier / "cas-blobs"
    shard = next(p for p in blobs.iterdir() if p.is_dir())
    (shard / "notes.txt").write_text("someone's\n")
    result = run("dir", "download", "k", str(tmp_path / "o2"), "--local-tier", str(tier), "--local-tier-max", "1KB")
    assert result.code == 0, result
    assert (shard / "notes.txt").read_text() == "someone's\n"
    assert not [p for p in shard.iterdir() if p.name != "notes.txt"]  # the blobs were trimmed
