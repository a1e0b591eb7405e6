"""The content-addressed tree format (cacher.cas, docs/format.md): real trees round-trip
through manifest and packs, a changed tree sends only its changes, manifests that break the
dir kind's hostile-archive rules are refused, damaged blobs are refused, the same tree gives
the same bytes, and an older reader that meets a manifest refuses it instead of calling it
corrupt."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from cacher.cas import frames, names
from cacher.cas.export import export_tar
from cacher.cas.model import Manifest
from cacher.cas.pack import FOOTER, GROUP, PACK_TARGET, Packer, PackInfo, PackWriter
from cacher.cas.packread import read_blobs, read_index
from cacher.cas.plan import to_fetch, to_send
from cacher.cas.root import PART_ENTRIES, Root, Stored, encode_root, load
from cacher.cas.save import Known, Saved, save_stream, save_tree
from cacher.cas.units import BLOCK, pieces
from cacher.codecs.none import NoneCodec
from cacher.codecs.zstd import ZstdCodec
from cacher.errors import ArtifactError, IntegrityError, ObjectRefused
from cacher.kinds.dir import DirKind
from cacher.tar.extract import extract_tree
from cacher.tar.write import write_tree

# -- a store of packs in memory: what the wiring will do through a Store ----------------------


class Packs:
    """Packs by reference, as a job's prefix holds them."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def packer(self, pool: Executor | None = None, target: int = PACK_TARGET) -> Packer:
        def done(sink: object, info: PackInfo) -> None:
            assert isinstance(sink, io.BytesIO)
            self.objects[names.pack_ref(info.pack_id)] = sink.getvalue()

        return Packer(io.BytesIO, done, target, pool)

    def save(self, root: Path, known: Known | None = None, **packing: Any) -> Saved:
        return save_tree(root, self.packer(**packing), known or {}, names.pack_ref)

    def read(self, ref: str, start: int, end: int) -> bytes:
        return self.objects[ref][start:end]

    def load(self, stored: bytes) -> Stored:
        return load(stored, self.read)

    def blobs(self, stored: Manifest, have: dict[str, bytes] | None = None) -> dict[str, bytes]:
        """Every blob of the manifest: those in ``have``, the rest fetched and checked."""
        out = dict(have or {})
        for read in to_fetch(stored, out):
            data = self.objects[read.ref]
            out.update(read_blobs(window(data[read.start : read.end], read.start), read.blobs))
        return out


def window(part: bytes, base: int) -> Callable[[int, int], bytes]:
    """A ranged reader over the bytes one coalesced read fetched (``part``, from ``base``)."""
    return lambda start, end: part[start - base : end - base]


def restore(packs: Packs, stored: bytes, into: Path) -> Manifest:
    """Load the manifest, export its tree as tar and extract it with the dir kind's extractor."""
    tree = packs.load(stored).manifest
    blobs = packs.blobs(tree)
    tar = io.BytesIO()
    export_tar(tree, blobs.__getitem__, tar)
    tar.seek(0)
    into.mkdir()
    extract_tree(tar, into)
    return tree


def snapshot(root: Path) -> dict[str, tuple[str, int, int, bytes | str]]:
    """Every entry under root: type, permission bits, mtime, and contents or link target."""
    out: dict[str, tuple[str, int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st_ = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", 0, 0, os.readlink(path))
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st_.st_mode), int(st_.st_mtime), "")
            else:
                out[rel] = ("file", stat.S_IMODE(st_.st_mode), int(st_.st_mtime), path.read_bytes())
    return out


def wheel(where: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A pure-Python wheel, built by hand (no network, no build backend): ``files`` under
    the package ``name``, with the dist-info pip needs."""
    info = f"{name}-{version}.dist-info"
    members = {f"{name}/{path}": data for path, data in files.items()}
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    members[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    members[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    out = where / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, data in members.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return out


def pip_install(venv_root: Path, *wheels: Path) -> None:
    run = subprocess.run(
        [str(venv_root / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--no-deps", *map(str, wheels)],
        capture_output=True, text=True, timeout=240, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two packages, and a new version of one of them: a lockfile bump, made by pip."""
    where = tmp_path_factory.mktemp("wheels")
    steady = {f"mod{i}.py": f"VALUE = {i}\n".encode() * 40 for i in range(30)}
    return {
        "steady": wheel(where, "steady", "1.0", {"__init__.py": b"", **steady}),
        "bumped-1": wheel(where, "bumped", "1.0", {"__init__.py": b"VERSION = '1.0'\n" * 50}),
        "bumped-2": wheel(
            where, "bumped", "2.0", {"__init__.py": b"VERSION = '2.0'\n" * 50, "data.bin": os.urandom(GROUP + 12345)}
        ),
    }


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path]) -> Path:
    """A real venv: python -m venv (pip in it from ensurepip), then two packages installed by pip."""
    root = tmp_path_factory.mktemp("venv") / "v1"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True, timeout=240)
    pip_install(root, wheels["steady"], wheels["bumped-1"])
    return root


# -- round trips -------------------------------------------------------------------------------


def test_a_venv_round_trips_through_manifest_and_packs(venv: Path, tmp_path: Path) -> None:
    packs = Packs()
    saved = packs.save(venv)
    restored = restore(packs, saved.root, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(venv)
    assert saved.reused == 0 and len(packs.objects) == len(saved.packs) >= 2  # contents, then parts
    assert restored == saved.manifest
    assert restored.logical_size == sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink())
    # Small files share frames: far fewer frames than files.
    frames_ = {(r, b.frame_offset) for r, p in zip(packs.objects, saved.packs, strict=True) for b in p.blobs}
    assert len(frames_) < sum(1 for e in restored.entries if e.type == "file") / 5
    parts = packs.load(saved.root).root.parts
    assert 1 < len(parts) < len(restored.entries) / 50


def test_gnu_tar_reads_the_exported_tree(venv: Path, tmp_path: Path) -> None:
    if shutil.which("tar") is None:
        pytest.skip("no tar on PATH")
    packs = Packs()
    tree = packs.load(packs.save(venv).root).manifest
    tar = tmp_path / "tree.tar"
    with tar.open("wb") as sink:
        export_tar(tree, packs.blobs(tree).__getitem__, sink)
    (tmp_path / "gnu").mkdir()
    run = subprocess.run(["tar", "-xf", str(tar), "-C", str(tmp_path / "gnu")], capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert snapshot(tmp_path / "gnu") == snapshot(venv)


def test_a_lockfile_bump_sends_only_its_changes(venv: Path, wheels: dict[str, Path], tmp_path: Path) -> None:
    packs = Packs()
    first = packs.save(venv)
    v1 = packs.load(first.root)
    v2 = tmp_path / "v2"
    shutil.copytree(venv, v2, symlinks=True)
    pip_install(v2, wheels["bumped-2"])  # pip removes bumped 1.0 and installs 2.0
    site = next(v2.glob("lib/python*/site-packages"))
    assert (site / "bumped" / "data.bin").stat().st_size == GROUP + 12345  # a frame of its own
    assert not (site / "bumped-1.0.dist-info").exists()
    before = len(packs.objects)
    second = packs.save(v2, v1.known())
    sent = sum(len(packs.objects[r]) for r in list(packs.objects)[before:]) + len(second.root)
    assert second.reused > 0
    # The random file (incompressible), bumped's other files, the changed parts, trailers, the root.
    assert GROUP + 12345 < sent < GROUP + 12345 + (64 << 10)
    # Parts resent: under half. How many parts a venv makes depends on the interpreter: 3.11's
    # venv holds pip and setuptools (the floor's whole-suite run, where this holds), 3.13's pip
    # alone, two parts that the bump both touches.
    if sys.version_info < (3, 12):
        assert len(v1.root.parts) > 4 and len(second.packs[-1].blobs) < len(v1.root.parts) / 2
    content = {b.digest for p in second.packs[:-1] for b in p.blobs}
    assert set(to_send(second.manifest.digests(), v1.known())) == content
    restore(packs, second.root, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(v2)
    # A runner holding v1's contents fetches only the new blobs.
    have = packs.blobs(v1.manifest)
    reads = to_fetch(packs.load(second.root).manifest, have)
    assert {b.digest for r in reads for b in r.blobs} == content


def test_the_same_tree_gives_the_same_bytes(venv: Path) -> None:
    one, two = Packs(), Packs()
    assert one.save(venv).root == two.save(venv).root
    assert one.objects == two.objects


def test_the_walk_and_the_dir_kinds_tar_stream_give_the_same_tree(venv: Path) -> None:
    """A dir upload walks the tree itself (to skip unchanged files); any other archive kind's
    tar stream is read: for the same tree both give the same manifest and packs."""
    walked, streamed = Packs(), Packs()
    tar = io.BytesIO()
    write_tree(venv, tar)
    tar.seek(0)
    from_stream = save_stream(tar, streamed.packer(), {}, names.pack_ref)
    assert walked.save(venv).root == from_stream.root
    assert walked.objects == streamed.objects


def test_frames_compressed_on_threads_give_the_same_packs(venv: Path) -> None:
    """The upload compresses frames on a pool; where packs close must not depend on timing
    (small packs: many closes, each decided while frames are still compressing)."""
    alone, threaded = Packs(), Packs()
    with ThreadPoolExecutor(4) as pool:
        saved = threaded.save(venv, pool=pool, target=1 << 20)
    assert alone.save(venv, target=1 << 20).root == saved.root
    assert alone.objects == threaded.objects and len(alone.objects) > 10


def test_a_large_file_is_split_in_blocks_and_a_hardlink_stays_one(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    big = os.urandom(9 << 20)
    (root / "d" / "big").write_bytes(big)
    os.link(root / "d" / "big", root / "d" / "link")
    os.symlink("/etc/passwd", root / "abs")  # a link out of the tree is data, as in the dir kind
    (root / "empty").write_bytes(b"")
    packs = Packs()
    saved = packs.save(root)
    entries = {e.path: e for e in saved.manifest.entries}
    assert [c.size for c in entries["d/big"].chunks] == [4 << 20, 4 << 20, 1 << 20]
    assert entries["d/link"].type == "hardlink" and entries["d/link"].target == "d/big"
    restore(packs, saved.root, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "big").read_bytes() == big
    assert os.stat(tmp_path / "out" / "d" / "link").st_ino == os.stat(tmp_path / "out" / "d" / "big").st_ino
    assert os.readlink(tmp_path / "out" / "abs") == "/etc/passwd"


@pytest.mark.parametrize("size", [0, 5, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK])
def test_a_file_is_read_in_blocks_and_one_that_changed_size_is_refused(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    got = list(pieces(str(path), size))
    assert b"".join(d for _, d in got) == data
    assert [len(d) for _, d in got] == [min(BLOCK, size - i) for i in range(0, size, BLOCK)]
    assert all(digest == hashlib.sha256(d).hexdigest() for digest, d in got)
    with pytest.raises(ArtifactError, match="shrank"):  # the lstat said more than is there
        list(pieces(str(path), size + 1))
    path.write_bytes(data + b"x")
    with pytest.raises(ArtifactError, match="grew"):
        list(pieces(str(path), size))


def test_a_fifo_is_refused_at_save(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ArtifactError, match="FIFOs"):
        Packs().save(tmp_path)


# -- hostile manifests -------------------------------------------------------------------------

DIGEST = "ab" * 32
REF = names.pack_ref("cd" * 32)


def document(entries: list[dict[str, object]], blobs: list[list[object]] | None = None) -> dict[str, object]:
    """A manifest part as a hostile writer could store it."""
    packs = [{"ref": REF, "blobs": blobs}] if blobs else []
    return {"format": "cacher-tree-part", "version": 1, "entries": entries, "packs": packs}


def stored(*parts: object, entries: int | None = None) -> tuple[bytes, Packs]:
    """The parts in a real pack and a root naming them: what a restore would be handed."""
    packs = Packs()
    sink = io.BytesIO()
    writer = PackWriter(sink)
    digests = []
    for part in parts:
        data = json.dumps(part).encode()
        digests.append(hashlib.sha256(data).hexdigest())
        writer.add(digests[-1], data)
    info = writer.finish()
    ref = names.pack_ref(info.pack_id)
    packs.objects[ref] = sink.getvalue()
    where = {b.digest: b for b in info.blobs}
    count = sum(len(p["entries"]) for p in parts if isinstance(p, dict) and isinstance(p.get("entries"), list))
    root = Root(tuple((ref, where[d]) for d in digests), count if entries is None else entries)
    return encode_root(root), packs


def raw(doc: object) -> bytes:
    return frames.compress(json.dumps(doc).encode())


def refused(*parts: object, entries: int | None = None) -> None:
    data, packs = stored(*parts, entries=entries)
    with pytest.raises(ObjectRefused, match="manifest is refused"):
        packs.load(data)


D = {"type": "dir", "mode": 0o755, "mtime": 0}
F = {"type": "file", "mode": 0o644, "mtime": 0, "size": 0, "chunks": []}
L = {"type": "symlink", "mode": 0o777, "mtime": 0, "target": "/tmp"}

HOSTILE = {
    "dot-dot": document([{"path": "../x", **F}]),
    "dot-dot inside": document([{"path": "a", **D}, {"path": "a/../../x", **F}]),
    "absolute": document([{"path": "/etc/x", **F}]),
    "dot segment": document([{"path": "a", **D}, {"path": "a/./b", **F}]),
    "empty segment": document([{"path": "a", **D}, {"path": "a//b", **F}]),
    "control character": document([{"path": "a\nb", **F}]),
    "a link then a file under it": document([{"path": "a", **L}, {"path": "a/x", **F}]),
    "a file then a file under it": document([{"path": "a", **F}, {"path": "a/x", **F}]),
    "a link then a file deeper under it": document([{"path": "a", **L}, {"path": "a/b/x", **F}]),
    "a file then a dir under it": document([{"path": "a", **F}, {"path": "a/b", **D}, {"path": "a/b/x", **F}]),
    "duplicate": document([{"path": "a", **F}, {"path": "a", **F}]),
    "duplicate dir then file": document([{"path": "a", **D}, {"path": "a", **F}]),
    "out of order": document([{"path": "b", **F}, {"path": "a", **F}]),
    "unknown type": document([{"path": "a", "type": "fifo", "mode": 0, "mtime": 0}]),
    "device": document([{"path": "a", "type": "chardev", "mode": 0, "mtime": 0}]),
    "unknown field": document([{"path": "a", **F, "uid": 0}]),
    "missing field": document([{"path": "a", "type": "file", "mode": 0o644, "mtime": 0}]),
    "mode beyond permission bits": document([{"path": "a", **{**F, "mode": 0o170000}}]),
    "bool as a number": document([{"path": "a", **{**F, "mode": True}}]),
    "hardlink to nothing": document([{"path": "a", "type": "hardlink", "target": "b"}]),
    "hardlink to a dir": document([{"path": "a", **D}, {"path": "b", "type": "hardlink", "target": "a"}]),
    "size not its chunks": document(
        [{"path": "a", **{**F, "size": 5, "chunks": [[DIGEST, 4]]}}], [[DIGEST, 0, 10, 0, 4]]
    ),
    "chunk in no pack": document([{"path": "a", **{**F, "size": 4, "chunks": [[DIGEST, 4]]}}]),
    "blob of another size": document(
        [{"path": "a", **{**F, "size": 4, "chunks": [[DIGEST, 4]]}}], [[DIGEST, 0, 10, 0, 5]]
    ),
    "unused blob": document(
        [{"path": "a", **{**F, "size": 4, "chunks": [[DIGEST, 4]]}}],
        [[DIGEST, 0, 10, 0, 4], ["ef" * 32, 10, 10, 0, 4]],
    ),
    "uppercase digest": document(
        [{"path": "a", **{**F, "size": 4, "chunks": [[DIGEST.upper(), 4]]}}], [[DIGEST.upper(), 0, 10, 0, 4]]
    ),
    "unknown version": {**document([]), "version": 2},
    "unknown format": {**document([]), "format": "cacher-tree"},
    "extra field": {**document([]), "note": "x"},
    "not an object": [],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_manifest_is_refused(case: str) -> None:
    refused(HOSTILE[case])


def test_parents_a_tar_stream_leaves_out_are_implied() -> None:
    """The paths kind's archive names ``workspace/a/f`` with no ``workspace`` entry: such a
    tree is stored, and its parents come back as the kind's extractor makes them."""
    data, packs = stored(document([{"path": "w/a/f", **F}, {"path": "w/b", **D}, {"path": "w/b/g", **F}]))
    assert [e.path for e in packs.load(data).manifest.entries] == ["w/a/f", "w/b", "w/b/g"]


def test_the_rules_hold_across_parts() -> None:
    """Each part alone is fine; together they put a file under a symlink, or repeat a path."""
    refused(document([{"path": "a", **L}]), document([{"path": "a/x", **F}]))
    refused(document([{"path": "a", **F}]), document([{"path": "a", **F}]))
    refused(document([{"path": "b", **F}]), document([{"path": "a", **F}]))
    refused(document([{"path": "b", "type": "hardlink", "target": "a"}]), document([{"path": "a", **F}]))
    data, packs = stored(document([{"path": "a", **D}]), document([{"path": "a/x", **F}]))
    assert [e.path for e in packs.load(data).manifest.entries] == ["a", "a/x"]


def test_a_root_that_miscounts_or_repeats_parts_is_refused() -> None:
    refused(document([{"path": "a", **F}]), entries=2)
    refused(document([{"path": "a", **F}]), document([{"path": "a", **F}]))  # the same part twice
    data, packs = stored(document([{"path": "a", **F}]))
    doc = json.loads(frames.decompress(data, 1 << 20, "root"))
    for bad in ({**doc, "extra": 1}, {**doc, "version": 2}, {**doc, "entries": True}, {**doc, "parts": {}}):
        with pytest.raises(ObjectRefused, match="manifest is refused"):
            packs.load(raw(bad))
    doc["parts"][0][0] = "../../x.pack"
    with pytest.raises(ObjectRefused, match="not a pack reference"):
        packs.load(raw(doc))


def test_a_part_that_is_not_its_digest_is_an_integrity_error() -> None:
    data, packs = stored(document([{"path": "a", **F}]))
    ref = next(iter(packs.objects))
    damaged = bytearray(packs.objects[ref])
    damaged[5] ^= 0x01
    packs.objects[ref] = bytes(damaged)
    with pytest.raises(IntegrityError):
        packs.load(data)


def test_parts_are_cut_by_path_and_size() -> None:
    entries = [{"path": f"f{i:05d}", **F} for i in range(3 * PART_ENTRIES)]
    data, packs = stored(*[document(entries[i : i + PART_ENTRIES]) for i in range(0, len(entries), PART_ENTRIES)])
    assert len(packs.load(data).manifest.entries) == 3 * PART_ENTRIES


@pytest.mark.parametrize(
    "ref",
    [
        "../../etc/x.pack",
        "_cas/packs/cd/" + "cd" * 32,  # no .pack
        "_cas/packs/ab/" + "cd" * 32 + ".pack",  # the wrong shard
        "_scopes/../_cas/packs/cd/" + "cd" * 32 + ".pack",
        "_scopes/Main/_cas/packs/cd/" + "cd" * 32 + ".pack",
        "other/_cas/packs/cd/" + "cd" * 32 + ".pack",
    ],
)
def test_a_pack_reference_outside_the_format_is_refused(ref: str) -> None:
    doc = document([{"path": "a", **{**F, "size": 4, "chunks": [[DIGEST, 4]]}}], [[DIGEST, 0, 10, 0, 4]])
    doc["packs"] = [{"ref": ref, "blobs": [[DIGEST, 0, 10, 0, 4]]}]
    data, packs = stored(doc)
    with pytest.raises(ObjectRefused, match="not a pack reference"):
        packs.load(data)


def test_a_scoped_pack_reference_is_read() -> None:
    ref = names.pack_ref("cd" * 32, "release-1-0")
    doc = document([{"path": "a", **{**F, "size": 4, "chunks": [[DIGEST, 4]]}}])
    doc["packs"] = [{"ref": ref, "blobs": [[DIGEST, 0, 10, 0, 4]]}]
    data, packs = stored(doc)
    assert packs.load(data).manifest.locations()[DIGEST][0] == ref
    assert names.parse_pack_ref(ref) == ("release-1-0", "cd" * 32)


def test_a_damaged_manifest_frame_is_an_integrity_error(venv: Path) -> None:
    packs = Packs()
    root = bytearray(packs.save(venv).root)
    root[len(root) // 2] ^= 0x40
    with pytest.raises((IntegrityError, ObjectRefused)):
        packs.load(bytes(root))
    with pytest.raises(IntegrityError):
        packs.load(bytes(root[:-1]))
    with pytest.raises(ObjectRefused, match="not a cacher-tree root"):  # a frame that hides its size
        packs.load(zstandard.ZstdCompressor(write_content_size=False).compress(b"{}"))


def test_a_tar_zst_at_the_manifest_name_is_refused_not_read(venv: Path) -> None:
    """What an older cacher would store at ``_cas/manifests/KEY`` if asked to: its zstd codec's
    stream is not this format's frame, so the manifest reader refuses it (a miss), unread."""
    sink = io.BytesIO()
    with ZstdCodec().encoder(sink) as encoder:
        write_tree(venv, encoder)
    with pytest.raises(ObjectRefused, match="not a cacher-tree root"):
        Packs().load(sink.getvalue())


# -- damaged packs -----------------------------------------------------------------------------


def one_pack(blobs: list[bytes]) -> tuple[bytes, PackInfo]:
    sink = io.BytesIO()
    writer = PackWriter(sink)
    for data in blobs:
        writer.add(hashlib.sha256(data).hexdigest(), data)
    info = writer.finish()
    return sink.getvalue(), info


def test_a_damaged_blob_is_refused_and_nothing_of_it_is_returned() -> None:
    data, info = one_pack([b"a" * 100, b"b" * 200, os.urandom(GROUP)])
    for blob in info.blobs:
        damaged = bytearray(data)
        damaged[blob.frame_offset + blob.frame_length // 2] ^= 0x01
        got: list[str] = []
        with pytest.raises(IntegrityError):
            for digest, _ in read_blobs(window(bytes(damaged), 0), [blob]):
                got.append(digest)
        assert got == []


def test_a_blob_that_is_not_its_digest_is_refused() -> None:
    data, info = one_pack([b"a" * 100])
    blob = info.blobs[0]
    lying = type(blob)("ff" * 32, blob.frame_offset, blob.frame_length, blob.offset, blob.size)
    with pytest.raises(IntegrityError, match="does not match its digest"):
        list(read_blobs(lambda a, b: data[a:b], [lying]))


def test_the_trailer_index_is_read_from_the_end_and_checked() -> None:
    data, info = one_pack([b"x" * 10, b"y" * 20, os.urandom(GROUP + 1)])
    assert read_index(lambda a, b: data[a:b], len(data)) == info.blobs
    with pytest.raises(ObjectRefused, match="footer"):
        read_index(lambda a, b: data[a:b], len(data) - 1)
    forged = data[: -FOOTER.size] + FOOTER.pack(5, b"CACHERP2")
    with pytest.raises(ObjectRefused, match="footer"):
        read_index(lambda a, b: forged[a:b], len(forged))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=3000), max_size=30), st.integers(0, 3))
def test_any_blobs_come_back_from_a_pack_as_they_went_in(blobs: list[bytes], big: int) -> None:
    blobs = blobs + [bytes([i]) * (GROUP + i) for i in range(big)]
    data, info = one_pack(blobs)
    index = read_index(lambda a, b: data[a:b], len(data))
    assert index == info.blobs
    back = dict(read_blobs(lambda a, b: data[a:b], index))
    assert sorted(back.values()) == sorted(set(blobs))


def test_reads_are_coalesced_across_near_frames(venv: Path) -> None:
    packs = Packs()
    tree = packs.load(packs.save(venv).root).manifest
    reads = to_fetch(tree, set())
    frames_ = {(p.ref, b.frame_offset) for p in tree.packs for b in p.blobs}
    assert len(reads) <= len(tree.packs) * 2 < len(frames_)
    assert len(to_fetch(tree, set(tree.digests()))) == 0


# -- older readers ------------------------------------------------------------------------------


def test_an_older_reader_never_meets_a_manifest_at_its_key() -> None:
    for key in ("deps/abc.tar.zst", "venv-linux-amd64", "_paths/0123/k"):
        assert names.manifest_name(key) == f"_cas/manifests/{key}" != key
    assert names.MANIFEST_METADATA["kind"] == names.MANIFEST_KIND


def test_an_older_reader_that_meets_a_manifest_refuses_it_not_calls_it_corrupt(venv: Path, tmp_path: Path) -> None:
    """Through a restore-key listing, 0.2.0's dir kind sees the manifest's recorded kind and
    refuses it; with the metadata lost it reads a valid zstd frame that is no tar stream."""
    assert not DirKind("dir").restores(names.MANIFEST_KIND)
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "f").write_bytes(b"x")
    for tree in (venv, tiny):
        # Padded: longer than a tar header either way, so never "truncated inside a header".
        root = Packs().save(tree).root
        assert len(root) > 512 and len(frames.decompress(root, 1 << 20, "root")) > 512
        refused_by_old_readers(root, tmp_path / tree.name)


def refused_by_old_readers(root: bytes, where: Path) -> None:
    for codec in (ZstdCodec(), NoneCodec()):  # the codec named by a `.tar.zst` key, or none
        out = where / codec.name
        out.mkdir(parents=True)
        with pytest.raises(ObjectRefused) as caught:
            extract_tree(codec.decoder(io.BytesIO(root)), out)
        assert not isinstance(caught.value, IntegrityError)
        assert list(out.iterdir()) == []


def test_a_name_that_is_not_utf8_is_refused_at_save(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    fd = os.open(os.fsencode(root) + b"/caf\xe9", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    packs = Packs()
    with pytest.raises(ArtifactError, match="not UTF-8"):
        packs.save(root)
    assert packs.objects == {}


_NAMES = st.text(alphabet="abé_.-", min_size=1, max_size=5).filter(lambda n: n not in (".", ".."))
_TREES = st.recursive(
    st.binary(max_size=3000), lambda children: st.dictionaries(_NAMES, children, max_size=4), max_leaves=12
)


def _make(root: Path, tree: dict[str, object]) -> None:
    for name, value in tree.items():
        if isinstance(value, bytes):
            (root / name).write_bytes(value)
        else:
            (root / name).mkdir()
            _make(root / name, value)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(_NAMES, _TREES, max_size=5))
def test_any_tree_round_trips_and_saves_to_the_same_bytes(tree: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "tree")
        root.mkdir()
        _make(root, tree)
        packs = Packs()
        saved = packs.save(root)
        assert Packs().save(root).root == saved.root
        restore(packs, saved.root, Path(tmp, "out"))
        assert snapshot(Path(tmp, "out")) == snapshot(root)


def test_the_format_library_stands_alone() -> None:
    """cacher.cas works on bytes and streams: it imports neither the engine nor the CLI (nor
    a store), and each module keeps to one job (under 400 lines)."""
    import ast

    package = Path(__file__).resolve().parents[2] / "cacher" / "cas"
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not [m for m in imported if m.startswith(("cacher.engine", "cacher.cli", "cacher.stores"))], module
        assert len(module.read_text().splitlines()) < 400, module
