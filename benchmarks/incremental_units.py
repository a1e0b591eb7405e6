"""Which unit should the content-addressed tree format store: whole files, content-defined
chunks, or fixed blocks of large files? Measured on real trees, each saved once and then again
after a lockfile bump (issue 30).

Give pairs of directories ``OLD NEW`` (a venv's site-packages before and after a few packages
were replaced, a node_modules before and after ``npm install`` of a few newer versions). For
each unit choice the script reports what the second save sends (blobs the first did not
store, compressed), the stored size of both versions, the number of blobs and of 16 MiB packs,
and the CPU time of splitting and hashing; then the hash functions (sha256, blake3) and the
chunkers (pyfastcdc, fastcdc) side by side, and the plain tar.zst of each tree as the baseline.

    python benchmarks/incremental_units.py OLD NEW [OLD NEW ...] [--json out.json]

The last rows ("cacher.cas") save OLD, then NEW against OLD's manifest, with the format as
cacher.cas writes it (packs, trailers, manifest parts and root counted). docs/format.md has
the numbers of one run, on trees made this way:

    python -m venv v1 && v1/bin/pip install numpy==2.1.3 pandas==2.2.3 matplotlib==3.9.2 \
        django==5.1.3 boto3==1.35.60 requests==2.31.0 urllib3==2.2.2 idna==3.7 certifi==2024.7.4 \
        charset-normalizer==3.3.2 sqlalchemy==2.0.36 pydantic==2.9.2 pyparsing==3.1.4 \
        packaging==24.1 six==1.16.0 python-dateutil==2.9.0
    cp -a v1 v2 && v2/bin/pip install requests==2.32.3 urllib3==2.2.3 idna==3.10 \
        certifi==2024.8.30 charset-normalizer==3.4.0 pyparsing==3.2.0 packaging==24.2 six==1.17.0
    (npm install --ignore-scripts in n1 of react@18.2.0 react-dom@18.2.0 lodash@4.17.20
     typescript@5.4.5 eslint@8.57.0 webpack@5.91.0 @babel/core@7.24.0 axios@1.6.8
     express@4.19.2 moment@2.29.4 chalk@4.1.2 commander@11.1.0 uuid@9.0.1 semver@7.6.0;
     cp -a n1 n2; in n2: npm install lodash@4.17.21 axios@1.7.2 uuid@9.0.0 commander@12.0.0
     semver@7.6.2 chalk@4.1.1)
    python benchmarks/incremental_units.py v1/lib/python3.11/site-packages \
        v2/lib/python3.11/site-packages n1/node_modules n2/node_modules

blake3, pyfastcdc and fastcdc are optional: a choice whose library is missing is skipped with a
note. Every blob is compressed alone (one zstd frame, level 3), as the packs store it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cacher.cas import names
from cacher.cas.model import BlobLocation
from cacher.cas.pack import Packer, PackInfo
from cacher.cas.root import decode_root
from cacher.cas.save import save_tree
from cacher.tar.write import write_tree

PACK_TARGET = 16 << 20
LEVEL = 3

Splitter = Callable[[bytes], Iterator[bytes]]


def _whole(data: bytes) -> Iterator[bytes]:
    yield data


def _fixed(block: int) -> Splitter:
    def split(data: bytes) -> Iterator[bytes]:
        if not data:
            yield data
        for start in range(0, len(data), block):
            yield data[start : start + block]

    return split


def _pyfastcdc(avg: int, low: int, high: int) -> Splitter | None:
    try:
        import pyfastcdc  # type: ignore[import-not-found]
    except ImportError:
        return None
    chunker = pyfastcdc.FastCDC(avg - low, min_size=low, max_size=high)  # its avg is avg_size + min_size

    def split(data: bytes) -> Iterator[bytes]:
        if len(data) <= low:
            yield data
            return
        view = memoryview(data)
        for chunk in chunker.cut_buf(view):
            yield bytes(view[chunk.offset : chunk.offset + chunk.length])

    return split


def _fastcdc(avg: int, low: int, high: int) -> Splitter | None:
    try:
        from fastcdc.fastcdc_cy import fastcdc_cy  # type: ignore[import-not-found]
    except ImportError:
        return None

    def split(data: bytes) -> Iterator[bytes]:
        if len(data) <= low:
            yield data
            return
        for chunk in fastcdc_cy(data, min_size=low, avg_size=avg, max_size=high, fat=True):
            yield bytes(chunk.data)

    return split


def _hashes() -> dict[str, Callable[[bytes], str]]:
    out: dict[str, Callable[[bytes], str]] = {"sha256": lambda b: hashlib.sha256(b).hexdigest()}
    try:
        import blake3  # type: ignore[import-not-found]

        out["blake3"] = lambda b: blake3.blake3(b).hexdigest()
    except ImportError:
        pass
    return out


def files(root: Path) -> Iterator[tuple[str, bytes]]:
    """Every regular file under root, in sorted order, with its bytes."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                with open(path, "rb") as f:
                    yield os.path.relpath(path, root), f.read()


@dataclass
class Units:
    """The blobs of one tree under one unit choice: digest -> (raw size, compressed size)."""

    blobs: dict[str, tuple[int, int]] = field(default_factory=dict)
    split_seconds: float = 0.0
    hash_seconds: float = 0.0
    compress_seconds: float = 0.0
    pieces: int = 0


def units_of(root: Path, split: Splitter, cache: dict[str, int]) -> Units:
    """Split and hash every file; compress each new blob once (``cache``: digest -> compressed)."""
    out = Units()
    cctx = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True)
    for _, data in files(root):
        t0 = time.process_time()
        pieces = list(split(data))
        t1 = time.process_time()
        digests = [hashlib.sha256(p).hexdigest() for p in pieces]
        t2 = time.process_time()
        out.split_seconds += t1 - t0
        out.hash_seconds += t2 - t1
        out.pieces += len(pieces)
        for piece, digest in zip(pieces, digests, strict=True):
            if digest not in cache:
                t3 = time.process_time()
                cache[digest] = len(cctx.compress(piece))
                out.compress_seconds += time.process_time() - t3
            out.blobs[digest] = (len(piece), cache[digest])
    return out


def grouped(root: Path, split: Splitter, skip: set[str], group: int) -> tuple[int, int, set[str]]:
    """Compressed bytes and frame count when blobs below ``group`` share frames of up to
    ``group`` raw bytes (consecutive in tree order) and larger ones are framed alone; blobs
    in ``skip`` (already stored) are left out. Also the digests seen."""
    cctx = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True)
    total = frames = 0
    seen: set[str] = set()
    buf: list[bytes] = []
    filled = 0

    def flush() -> None:
        nonlocal total, frames, buf, filled
        if buf:
            total += len(cctx.compress(b"".join(buf)))
            frames += 1
            buf, filled = [], 0

    for _, data in files(root):
        for piece in split(data):
            digest = hashlib.sha256(piece).hexdigest()
            if digest in seen or digest in skip:
                continue
            seen.add(digest)
            if len(piece) >= group:
                total += len(cctx.compress(piece))
                frames += 1
                continue
            buf.append(piece)
            filled += len(piece)
            if filled >= group:
                flush()
    flush()
    return total, frames, seen


class _Discard:
    """A pack sink that keeps nothing: the benchmark needs the packs' sizes only."""

    def write(self, data: bytes) -> int:
        return len(data)


def chosen(old: Path, new: Path, new_tar: int) -> dict[str, object]:
    """The format as cacher.cas writes it: a full save of OLD, then NEW against OLD's manifest."""
    rows: dict[str, object] = {}
    known: dict[str, tuple[str, BlobLocation]] = {}
    for label, root in (("first", old), ("second", new)):
        packs: list[PackInfo] = []

        def done(_sink: object, info: PackInfo, packs: list[PackInfo] = packs) -> None:
            packs.append(info)

        t0 = time.process_time()
        saved = save_tree(root, Packer(_Discard, done), known, names.pack_ref)
        cpu = time.process_time() - t0
        sent = sum(p.size for p in packs) + len(saved.root)
        rows[label] = {
            "sent_bytes": sent,
            "sent_vs_tar": round(sent / new_tar, 4),
            "packs": len(packs),
            "blobs_sent": sum(len(p.blobs) for p in packs),
            "blobs_reused": saved.reused,
            "manifest_root_bytes": len(saved.root),
            "manifest_parts": len(decode_root(saved.root).parts),
            "save_cpu_s": round(cpu, 2),
        }
        parts = {loc.digest: (ref, loc) for ref, loc in decode_root(saved.root).parts}
        known = {**saved.manifest.locations(), **parts}
    return rows


def packs_for(sizes: list[int]) -> int:
    """How many packs of PACK_TARGET bytes these compressed blobs fill, in order."""
    count, filled = 0, 0
    for size in sizes:
        if filled == 0 or filled + size > PACK_TARGET:
            count, filled = count + 1, 0
        filled += size
    return count


def tar_zst_size(root: Path) -> tuple[int, float]:
    """The plain format's stored size (cacher's own tar writer, zstd level 3) and its CPU time."""
    t0 = time.process_time()
    sink = io.BytesIO()
    cctx = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True)
    with cctx.stream_writer(sink, closefd=False) as writer:
        write_tree(root, writer)
    return sink.tell(), time.process_time() - t0


def tree_stats(root: Path) -> tuple[int, int]:
    count = size = 0
    for _, data in files(root):
        count, size = count + 1, size + len(data)
    return count, size


def changed(old: Path, new: Path) -> tuple[int, int]:
    """Files of NEW whose path is new or whose bytes differ from OLD's: count and bytes."""
    before = {path: hashlib.sha256(data).digest() for path, data in files(old)}
    count = size = 0
    for path, data in files(new):
        if before.get(path) != hashlib.sha256(data).digest():
            count, size = count + 1, size + len(data)
    return count, size


def choices() -> dict[str, Splitter | None]:
    return {
        "whole files": _whole,
        "fixed 4 MiB blocks of files > 4 MiB": _fixed(4 << 20),
        "CDC 512K/1M/8M (restic), pyfastcdc": _pyfastcdc(1 << 20, 512 << 10, 8 << 20),
        "CDC 16K/64K/256K, pyfastcdc": _pyfastcdc(64 << 10, 16 << 10, 256 << 10),
    }


def measure_pair(old: Path, new: Path) -> dict[str, object]:
    report: dict[str, object] = {"old": str(old), "new": str(new)}
    n_files, n_bytes = tree_stats(new)
    c_files, c_bytes = changed(old, new)
    report["tree"] = {"files": n_files, "bytes": n_bytes, "changed_files": c_files, "changed_bytes": c_bytes}
    old_tar, _ = tar_zst_size(old)
    new_tar, new_tar_cpu = tar_zst_size(new)
    report["tar.zst"] = {
        "old": old_tar, "new": new_tar, "both": old_tar + new_tar, "cpu_s": round(new_tar_cpu, 2),
    }
    rows: dict[str, object] = {}
    for name, split in choices().items():
        if split is None:
            rows[name] = "skipped: library not installed"
            continue
        cache: dict[str, int] = {}
        first = units_of(old, split, cache)
        second = units_of(new, split, cache)
        fresh = [c for d, (_, c) in second.blobs.items() if d not in first.blobs]
        union = {**first.blobs, **second.blobs}
        rows[name] = {
            "blobs_old": len(first.blobs),
            "blobs_new": len(second.blobs),
            "sent_blobs": len(fresh),
            "sent_bytes": sum(fresh),
            "sent_vs_tar": round(sum(fresh) / new_tar, 4),
            "stored_one": sum(c for _, c in first.blobs.values()),
            "stored_both": sum(c for _, c in union.values()),
            "stored_one_vs_tar": round(sum(c for _, c in first.blobs.values()) / old_tar, 3),
            "packs_old": packs_for([c for _, c in first.blobs.values()]),
            "packs_sent": packs_for(fresh),
            "split_cpu_s": round(second.split_seconds, 2),
            "sha256_cpu_s": round(second.hash_seconds, 2),
            "compress_cpu_s": round(first.compress_seconds, 2),
        }
    for group in (256 << 10, 1 << 20):
        name = f"whole files, blobs < {group >> 10} KiB share frames of {group >> 10} KiB"
        t0 = time.process_time()
        stored_one, frames_one, first_seen = grouped(old, _whole, set(), group)
        cpu = time.process_time() - t0
        sent, frames_sent, _ = grouped(new, _whole, first_seen, group)
        rows[name] = {
            "frames_old": frames_one,
            "frames_sent": frames_sent,
            "sent_bytes": sent,
            "sent_vs_tar": round(sent / new_tar, 4),
            "stored_one": stored_one,
            "stored_both": stored_one + sent,
            "stored_one_vs_tar": round(stored_one / old_tar, 3),
            "hash_and_compress_cpu_s": round(cpu, 2),
        }
    report["units"] = rows
    report["cacher.cas"] = chosen(old, new, new_tar)
    report["hashes"] = hash_speeds(new)
    report["chunkers"] = chunker_speeds(new)
    return report


def hash_speeds(root: Path) -> dict[str, float]:
    """CPU seconds to hash every file of the tree, whole, with each hash function."""
    data = [d for _, d in files(root)]
    out: dict[str, float] = {}
    for name, fn in _hashes().items():
        t0 = time.process_time()
        for d in data:
            fn(d)
        out[name] = round(time.process_time() - t0, 2)
    return out


def chunker_speeds(root: Path) -> dict[str, object]:
    """MB/s of each CDC library (1 MiB average) over the tree's files above 512 KiB."""
    big = [d for _, d in files(root) if len(d) > 512 << 10]
    total = sum(len(d) for d in big)
    out: dict[str, object] = {"bytes": total}
    for name, split in (
        ("pyfastcdc", _pyfastcdc(1 << 20, 512 << 10, 8 << 20)),
        ("fastcdc", _fastcdc(1 << 20, 512 << 10, 8 << 20)),
    ):
        if split is None or not total:
            out[name] = "skipped"
            continue
        t0 = time.process_time()
        for d in big:
            for _ in split(d):
                pass
        seconds = time.process_time() - t0
        out[name] = round(total / max(seconds, 1e-9) / 1e6, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", type=Path, help="OLD NEW pairs")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if len(args.trees) % 2:
        parser.error("give the trees in OLD NEW pairs")
    reports = [measure_pair(args.trees[i], args.trees[i + 1]) for i in range(0, len(args.trees), 2)]
    text = json.dumps(reports, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
