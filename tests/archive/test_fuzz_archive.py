"""A fuzzing pass over the archive reader and extractor (cacher/tar/) with mutated archives.

Valid tar archives (GNU and PAX, with directories, files, symlinks, hardlinks and a long
name) are mutated: bit flips (half of them inside header blocks), truncations, and header
fields rewritten with hostile values and a recomputed checksum, so that tarfile parses them
and the extractor's own checks are what stands in the way. For every case: no write outside
the target, the target either replaced whole or left as it was, and no exception but cacher's
own (which the CLI prints as one line and exit 2). A restored tree holds exactly what the
archive says: each symlink restored as a link with the archive's target (absolute and outward
targets included: links are data), and nothing written through one (every path in the tree is a
member of the archive or a parent of one, of the member's type). A sample of cases also runs
through `cacher dir download`.

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
from cacher.fs.staging import force_rmtree, staged_directory
from cacher.tar.extract import _clean_name, extract_tree
from cacher.tar.stream import TarStream
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


def archive_view(data: bytes) -> dict[str, tuple[str, str]]:
    """What a restore of ``data`` must leave, by the archive's own (last-member-wins) listing:
    relative path -> ("link", target), ("file", "") or ("dir", "")."""
    view: dict[str, tuple[str, str]] = {}
    for info in TarStream(io.BytesIO(data)):
        rel = _clean_name(info.name)
        if rel is None:
            continue
        parent = rel.rpartition("/")[0]
        while parent and parent not in view:
            view[parent] = ("dir", "")
            parent = parent.rpartition("/")[0]
        if info.issym():
            view[rel] = ("link", info.linkname)
        elif info.isdir():
            view[rel] = ("dir", "")
        else:
            view[rel] = ("file", "")
    return view


def restored_as_archived(target: Path, data: bytes) -> int:
    """The restored tree is the archive's: links restored as links with their targets, nothing
    created through one. Returns how many links point out of ``target``."""
    expected = archive_view(data)
    found: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(target):  # never follows a link
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(target))
            if p.is_symlink():
                found[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                found[rel] = ("dir", "")
            else:
                found[rel] = ("file", "")
    assert found == expected
    top = os.path.realpath(target)
    reals = [os.path.realpath(target / rel) for rel, (kind, _) in found.items() if kind == "link"]
    return sum(1 for real in reals if real != top and not real.startswith(top + os.sep))


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
    outcomes = {"restored": 0, "refused": 0, "links out restored": 0}
    passwd = Path("/etc/passwd").read_bytes()
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
            try:
                outcomes["links out restored"] += restored_as_archived(target, data)
            except AssertionError as exc:
                raise AssertionError(f"case {name}: the restored tree is not the archive's: {exc}") from exc
        assert everything(sandbox / "outside") == before_outside, name
        assert Path("/etc/passwd").read_bytes() == passwd, name
        assert sorted(p.name for p in sandbox.iterdir()) == ["outside", "target"], name
        assert not Path("/tmp/cacher-fuzz-abs").exists(), name
        assert not (tmp_path / "evil").exists(), name
        force_rmtree(sandbox)
    # Both outcomes happen: the pass exercises the checks and the happy path, and links that
    # lead out (absolute, "..", through another link) are among what is restored.
    assert outcomes["refused"] > CASES // 4 and outcomes["restored"] > CASES // 20, outcomes
    assert outcomes["links out restored"] > 0, outcomes


def _tar(members: list[tuple[str, bytes, str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, type_, link, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = type_, link, 0o755
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def test_symlink_through_a_symlink_is_restored_as_links(cacher, tmp_path: Path, local_root: Path) -> None:
    """Each link target alone stays inside; together ("s -> x/y/.." with "x/y -> ..") they lead
    out. Both are data: restored as links, and nothing is written through them."""
    data = _tar(
        [
            ("x", tarfile.DIRTYPE, "", b""),
            ("x/y", tarfile.SYMTYPE, "..", b""),
            ("s", tarfile.SYMTYPE, "x/y/..", b""),
        ]
    )
    local_root.mkdir(parents=True)
    (local_root / "chain.tar").write_bytes(data)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    run = cacher("dir", "download", "chain.tar", str(dest))
    assert run.code == 0, run
    assert sorted(p.name for p in dest.iterdir()) == ["s", "x"]
    assert os.readlink(dest / "x" / "y") == ".." and os.readlink(dest / "s") == "x/y/.."
    assert restored_as_archived(dest, data) == 1  # s resolves to dest's parent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "home"]
    assert leftovers(tmp_path) == []


def test_writing_through_a_symlink_chain_is_refused(cacher, tmp_path: Path, local_root: Path) -> None:
    """The same chain, then a member under it: it would land in DEST's parent. Refused, DEST kept."""
    data = _tar(
        [
            ("x", tarfile.DIRTYPE, "", b""),
            ("x/y", tarfile.SYMTYPE, "..", b""),
            ("s", tarfile.SYMTYPE, "x/y/..", b""),
            ("s/pwned", tarfile.REGTYPE, "", b"evil"),
        ]
    )
    local_root.mkdir(parents=True)
    (local_root / "chain.tar").write_bytes(data)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("keep")
    run = cacher("dir", "download", "chain.tar", str(dest))
    assert_clean_failure(run, "refusing", "'s/pwned'", "symlink 's'")
    assert sorted(p.name for p in dest.iterdir()) == ["keep"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "home"]
    assert leftovers(tmp_path) == []


def test_a_link_already_in_the_root_is_not_written_through(tmp_path: Path) -> None:
    """The extractor never follows a link, not only the ones it made: one put in its way is refused too."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "pre").symlink_to(outside)
    (root / "pref").symlink_to(outside / "secret")
    for members in (
        [("pre/pwned", tarfile.REGTYPE, "", b"evil")],
        [("pre/sub", tarfile.DIRTYPE, "", b"")],
        [("pre", tarfile.DIRTYPE, "", b"")],
        [("pref", tarfile.REGTYPE, "", b"evil")],
        [("f", tarfile.REGTYPE, "", b"data"), ("pre/h", tarfile.LNKTYPE, "f", b"")],
    ):
        with pytest.raises(CacherError):
            extract_tree(io.BytesIO(_tar(members)), root)
    assert everything(outside) == {"secret": (everything(outside)["secret"][0], b"secret")}
    assert os.readlink(root / "pre") == str(outside) and os.readlink(root / "pref") == str(outside / "secret")


def test_many_directories_out_of_order(tmp_path: Path) -> None:
    """More directories than descriptors kept open, visited in a shuffled order, nested deeper
    than the cache, with hardlinks across them: the descriptor cache never mixes them up."""
    rng = random.Random(7)
    members: list[tuple[str, bytes, str, bytes]] = []
    names = [f"d{i // 20}/e{i % 20}/f{j}" for i in range(400) for j in range(3)]
    rng.shuffle(names)
    for n in names:
        members.append((n, tarfile.REGTYPE, "", n.encode()))
    deep = "/".join(["z"] * 300)
    members.append((f"{deep}/leaf", tarfile.REGTYPE, "", b"deep"))
    for n in rng.sample(names, 50):
        members.append((f"{n}.h", tarfile.LNKTYPE, n, b""))
    members.append(("d0/ro", tarfile.DIRTYPE, "", b""))
    root = tmp_path / "root"
    root.mkdir()
    extract_tree(io.BytesIO(_tar(members)), root)
    for n, type_, link, data in members:
        p = root / n
        if type_ == tarfile.REGTYPE:
            assert p.read_bytes() == data, n
        elif type_ == tarfile.LNKTYPE:
            assert p.stat().st_ino == (root / link).stat().st_ino, n
    assert len(list(root.rglob("*"))) == len(members) + 20 + 400 + 300


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
        restored_as_archived(dest, data)
    assert everything(outside) == {"s": (everything(outside)["s"][0], b"secret")}, name
    assert leftovers(tmp_path) == [], name
