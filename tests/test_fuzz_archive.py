"""A fuzzing pass over the archive reader (cacher/kinds/tarread.py) with mutated archives.

Valid tar archives (GNU and PAX, with directories, files, symlinks, hardlinks and a long
name) are mutated: bit flips (half of them inside header blocks), truncations, and header
fields rewritten with hostile values and a recomputed checksum, so that tarfile parses them
and the extractor's own checks are what stands in the way. For every case: no write outside
the target, no symlink in the restored tree that resolves outside it, the target either
replaced whole or left as it was, and no exception but cacher's own (which the CLI prints as
one line and exit 2). A sample of cases also runs through `cacher dir download`.

The cases are generated from a fixed seed, so a failure reproduces; their number is bounded
so the pass takes seconds.
"""

from __future__ import annotations

import io
import os
import random
import tarfile
from pathlib import Path

import pytest

from cacher.errors import CacherError
from cacher.staging import force_rmtree, staged_directory
from cacher.tar.extract import extract_tree
from tests.fault_proxy import assert_clean_failure, leftovers

SEED = 20260612
CASES = 700
CLI_CASES = 8

HOSTILE_NAMES = [
    "../evil",
    "/tmp/cacher-fuzz-abs",
    "d/l/evil",
    "d/../../evil",
    "..",
    "./../evil",
    "d/ll/x",
    "a\x00b",
    "x" * 99,
    "d",
    "g",
    "h",
    "d/f1",
    "./",
    "//evil",
    "C:evil",
    "d/\nx",
]
HOSTILE_LINKS = [
    "../../..",
    "/etc/passwd",
    "d",
    "h",
    "g",
    "f1/../..",
    "..",
    "d/..",
    "d/l/../..",
    "../outside/s",
    "",
    "/",
    "d/f1",
    "x" * 99,
]
TYPES = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"K", b"L", b"x", b"g", b"S", b"\0", b"Z"]


def octal(value: int, width: int) -> bytes:
    return (b"%0*o" % (width - 1, value))[: width - 1] + b"\0"


def base_archives() -> list[bytes]:
    out = []
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:

            def add(name: str, type_: bytes, data: bytes = b"", link: str = "", mode: int = 0o644) -> None:
                info = tarfile.TarInfo(name)
                info.type, info.linkname, info.mode, info.mtime = type_, link, mode, 1_600_000_000
                info.size = len(data) if type_ == tarfile.REGTYPE else 0
                tar.addfile(info, io.BytesIO(data) if data else None)

            add("d", tarfile.DIRTYPE, mode=0o755)
            add("d/f1", tarfile.REGTYPE, b"first file\n" * 60)
            add("g", tarfile.REGTYPE, os.urandom(700))
            add("d/l", tarfile.SYMTYPE, link="f1")
            add("d/ll", tarfile.SYMTYPE, link="..")
            add("h", tarfile.LNKTYPE, link="g")
            add("long-" + "n" * 150, tarfile.REGTYPE, b"long name")
            add("e", tarfile.DIRTYPE, mode=0o555)
            add("e/ro", tarfile.REGTYPE, b"read only", mode=0o444)
        out.append(buf.getvalue())
    return out


def header_offsets(data: bytes) -> list[int]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.offset for m in tar.getmembers()] + [m.offset_data - 512 for m in tar.getmembers()]


def set_field(block: bytearray, start: int, width: int, value: bytes) -> None:
    block[start : start + width] = value[:width].ljust(width, b"\0")


def mutate(rng: random.Random, data: bytes, headers: list[int]) -> tuple[str, bytes]:
    buf = bytearray(data)
    kind = rng.choice(["flip", "flip", "truncate", "field", "field", "field"])
    if kind == "truncate":
        return kind, bytes(buf[: rng.randrange(len(buf))])
    headers = [h for h in headers if h + 512 <= len(buf)]
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            pos = rng.choice(headers) + rng.randrange(512) if rng.random() < 0.5 else rng.randrange(len(buf))
            buf[pos] ^= 1 << rng.randrange(8)
        return kind, bytes(buf)
    at = rng.choice(headers)
    block = bytearray(buf[at : at + 512])
    field = rng.choice(["name", "name", "link", "link", "type", "size", "mode", "mtime", "uid"])
    if field == "name":
        set_field(block, 0, 100, rng.choice(HOSTILE_NAMES).encode())
    elif field == "link":
        set_field(block, 157, 100, rng.choice(HOSTILE_LINKS).encode())
    elif field == "type":
        block[156:157] = rng.choice(TYPES)
    elif field == "size":
        set_field(block, 124, 12, octal(rng.choice([0, 1, 511, 513, 10**6, 8**11 - 1]), 12))
    elif field == "mode":
        set_field(block, 100, 8, octal(rng.choice([0, 0o7777, 0o4755, 0o1777, 0o000]), 8))
    elif field == "mtime":
        huge = b"\x80" + (2**70).to_bytes(11, "big")  # base-256: far beyond any time_t
        set_field(block, 136, 12, rng.choice([octal(0, 12), octal(8**11 - 1, 12), huge, b"garbage!!!!\0"]))
    else:
        set_field(block, 108, 8, b"\xff" * 8)
    unsigned, _ = tarfile.calc_chksums(bytes(block))
    block[148:156] = b"%06o\0 " % unsigned
    buf[at : at + 512] = block
    return f"{kind}:{field}", bytes(buf)


def cases() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    bases = [(b, sorted(set(header_offsets(b)))) for b in base_archives()]
    out = []
    for i in range(CASES):
        data, headers = rng.choice(bases)
        how, data = mutate(rng, data, headers)
        if rng.random() < 0.25 and len(data) > 1024:  # a second mutation on top
            how2, data = mutate(rng, data, headers)
            how = f"{how}+{how2}"
        out.append((f"{i}:{how}", data))
    return out


def everything(root: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every path under ``root`` (not following links): type and content or link target."""
    out: dict[str, tuple[int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                out[str(p.relative_to(root))] = (st.st_mode, os.readlink(p))
            elif p.is_file():
                out[str(p.relative_to(root))] = (st.st_mode, p.read_bytes())
            else:
                out[str(p.relative_to(root))] = (st.st_mode, None)
    return out


def links_stay_inside(target: Path) -> None:
    top = os.path.realpath(target)
    for dirpath, dirnames, filenames in os.walk(target):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                real = os.path.realpath(p)
                assert real == top or real.startswith(top + os.sep), (p, os.readlink(p), real)


def test_base_archives_restore(tmp_path: Path) -> None:
    """The unmutated archives are valid, so a refusal in the fuzz pass is about the mutation."""
    for i, data in enumerate(base_archives()):
        target = tmp_path / f"t{i}"
        with staged_directory(target) as staging:
            extract_tree(io.BytesIO(data), staging)
        assert (target / "d" / "f1").read_bytes() == b"first file\n" * 60
        assert os.readlink(target / "d" / "l") == "f1"
        assert (target / "h").stat().st_ino == (target / "g").stat().st_ino


def test_mutated_archives_never_escape(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    outcomes = {"restored": 0, "refused": 0}
    for name, data in cases():
        sandbox.mkdir()
        (sandbox / "outside").mkdir()
        (sandbox / "outside" / "s").write_text("secret")
        target = sandbox / "target"
        target.mkdir()
        (target / "keep").write_text("keep")
        before_outside = everything(sandbox / "outside")
        before_target = everything(target)
        try:
            with staged_directory(target) as staging:
                extract_tree(io.BytesIO(data), staging)
        except CacherError:
            outcomes["refused"] += 1
            assert everything(target) == before_target, name
        except Exception as exc:  # pragma: no cover - the bug this test is for
            raise AssertionError(f"case {name}: {type(exc).__name__} escaped: {exc}") from exc
        else:
            outcomes["restored"] += 1
            links_stay_inside(target)
        assert everything(sandbox / "outside") == before_outside, name
        assert sorted(p.name for p in sandbox.iterdir()) == ["outside", "target"], name
        assert not Path("/tmp/cacher-fuzz-abs").exists(), name
        assert not (tmp_path / "evil").exists(), name
        force_rmtree(sandbox)
    # Both outcomes happen: the pass exercises the checks and the happy path.
    assert outcomes["refused"] > CASES // 4 and outcomes["restored"] > CASES // 20, outcomes


def test_symlink_through_a_symlink_is_refused(cacher, tmp_path: Path, local_root: Path) -> None:
    """Each link target alone stays inside; together ("s -> x/y/.." with "x/y -> ..") they lead out."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, type_, link in [
            ("x", tarfile.DIRTYPE, ""),
            ("x/y", tarfile.SYMTYPE, ".."),
            ("s", tarfile.SYMTYPE, "x/y/.."),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = type_, link, 0o755
            tar.addfile(info)
    local_root.mkdir(parents=True)
    (local_root / "evil.tar").write_bytes(buf.getvalue())
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    run = cacher("dir", "download", "evil.tar", str(dest))
    assert_clean_failure(run, "refusing", "'s'")
    assert sorted(p.name for p in dest.iterdir()) == ["keep"]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("index", range(CLI_CASES))
def test_mutated_archive_through_the_cli(cacher, tmp_path: Path, local_root: Path, index: int) -> None:
    """Through the real command: exit 0 or 2, never a traceback, never a write outside."""
    all_cases = cases()
    name, data = all_cases[(index * 97) % len(all_cases)]
    local_root.mkdir(parents=True)
    (local_root / "fuzz.tar").write_bytes(data)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "s").write_text("secret")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    run = cacher("dir", "download", "fuzz.tar", str(dest))
    assert run.code in (0, 2), (name, str(run))
    assert "Traceback" not in run.err and "unexpected" not in run.err, (name, str(run))
    if run.code == 2:
        assert_clean_failure(run)
        assert sorted(p.name for p in dest.iterdir()) == ["keep"], name
    else:
        links_stay_inside(dest)
    assert everything(outside) == {"s": (everything(outside)["s"][0], b"secret")}, name
    assert leftovers(tmp_path) == [], name
