"""The runner's record of the files it saved (cacher.cas.statcache): a save skips reading only
files whose size, times and inode are those recorded, never a file that changed under an old
mtime (npm gives every file of a package the same one), and the installed `cacher` stores
the right bytes after such a change."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

from cacher.cas import names
from cacher.cas.model import BlobLocation, Chunk
from cacher.cas.pack import Packer, PackInfo
from cacher.cas.root import load
from cacher.cas.save import save_tree
from cacher.cas.statcache import COARSE, FINE, FileRecord, records_home, stat_of
from cacher.testing import file_store
from tests.conftest import Run

CAS = {"CACHER_TREE_FORMAT": "cas"}


def packer() -> Packer:
    def done(sink: object, info: PackInfo) -> None:
        pass

    return Packer(io.BytesIO, done)


def aged(path: Path) -> None:
    """Wait until the file's ctime is older than any racy window."""
    while os.lstat(path).st_ctime_ns > time.time_ns() - COARSE - 10_000_000:
        time.sleep(0.1)


def test_a_vouched_file_is_not_read_and_a_changed_one_is(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.txt").write_bytes(b"stored before")
    aged(root / "a.txt")
    record = FileRecord(tmp_path / "records", root)
    recorded = Chunk("ab" * 32, len(b"stored before"))
    record.write({"a.txt": (stat_of(os.lstat(root / "a.txt")), (recorded,))}, time.time_ns())
    place = BlobLocation(recorded.digest, 0, 64, 0, recorded.size)
    known = {recorded.digest: (names.pack_ref("ef" * 32), place)}
    saved = save_tree(root, packer(), known, names.pack_ref, record=FileRecord(tmp_path / "records", root).load())
    # The record vouched for the file: its chunks come from the record, the file was not read.
    assert saved.manifest.entries[0].chunks == (recorded,)
    # The same file rewritten with the same size and its old mtime put back: ctime moved.
    st = os.lstat(root / "a.txt")
    (root / "a.txt").write_bytes(b"STORED BEFORE")
    os.utime(root / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    again = save_tree(root, packer(), known, names.pack_ref, record=FileRecord(tmp_path / "records", root).load())
    assert again.manifest.entries[0].chunks != (recorded,)


def test_a_recent_file_is_read_even_when_its_stat_matches(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.txt").write_bytes(b"new")
    record = FileRecord(tmp_path / "records", root)
    fake = Chunk("cd" * 32, 3)
    since = time.time_ns()
    record.write({"a.txt": (stat_of(os.lstat(root / "a.txt")), (fake,))}, since)
    loaded = FileRecord(tmp_path / "records", root).load()
    assert loaded.files  # read back, but within the racy window: not trusted
    assert loaded.chunks_of("a.txt", os.lstat(root / "a.txt")) is None


def test_a_damaged_or_foreign_record_is_no_record(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    record = FileRecord(tmp_path / "records", root)
    record.write({}, time.time_ns())
    record.path.write_text("{not json")
    assert FileRecord(tmp_path / "records", root).load().files == {}
    record.path.write_text(json.dumps({"format": "cacher-files", "version": 1, "root": "/elsewhere",
                                       "written": 0, "files": {"a": "1 2 3 4 5"}}))
    assert FileRecord(tmp_path / "records", root).load().files == {}
    record.path.unlink()
    os.symlink(tmp_path / "elsewhere.json", record.path)
    assert FileRecord(tmp_path / "records", root).load().files == {}


def test_a_rewrite_under_an_old_mtime_is_stored(cacher, local_root: Path, tmp_path: Path, env: dict[str, str]) -> None:
    """Through the installed cacher: save, rewrite a file with the same size and its old mtime
    (as npm's fixed package mtimes do), save again: the new bytes are stored."""
    tree = tmp_path / "node_modules" / "pkg"
    tree.mkdir(parents=True)
    (tree / "package.json").write_text('{"version": "4.17.20"}')
    os.utime(tree / "package.json", (499162500, 499162500))  # 1985-10-26, npm's
    aged(tree / "package.json")
    run: Run = cacher("dir", "upload", "deps/v1", str(tree.parent), extra_env=CAS)
    assert run.code == 0, run
    (tree / "package.json").write_text('{"version": "4.17.21"}')
    os.utime(tree / "package.json", (499162500, 499162500))
    aged(tree / "package.json")
    run = cacher("dir", "upload", "deps/v2", str(tree.parent), "--base", "deps/v1", extra_env=CAS)
    assert run.code == 0, run
    store = file_store(local_root)
    with store.open_read(names.manifest_name("deps/v2")) as stream:
        stored = load(stream.read(), store.read_range)
    (entry,) = [e for e in stored.manifest.entries if e.path == "pkg/package.json"]
    dest = tmp_path / "restored"
    run = cacher("dir", "download", "deps/v2", str(dest), extra_env=CAS)
    assert run.code == 0, run
    assert (dest / "pkg" / "package.json").read_text() == '{"version": "4.17.21"}'
    assert entry.size == len('{"version": "4.17.21"}')


def test_a_restore_records_its_files_for_the_next_save(cacher, home: Path, tmp_path: Path) -> None:
    """Restore, change one file, save: the restore recorded every file it wrote (so the save
    reads only the changed one), and the save stores the change."""
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    for i in range(20):
        (src / "pkg" / f"m{i}.py").write_text(f"value = {i}\n" * 50)
    assert cacher("dir", "upload", "deps/v1", str(src), extra_env=CAS).code == 0
    dest = tmp_path / "dest"
    run = cacher("dir", "download", "deps/v1", str(dest), extra_env=CAS)
    assert run.code == 0, run
    record = FileRecord(records_home(home / ".cache" / "cacher"), dest).load()
    assert set(record.files) == {f"pkg/m{i}.py" for i in range(20)}
    for path in record.files:  # vouched for, unless written within the clock's step of the record
        st = os.lstat(dest / path)
        assert record.files[path][0] == stat_of(st)
        racy = st.st_ctime_ns > record.written - FINE
        assert (record.chunks_of(path, st) is None) == racy
    (dest / "pkg" / "m3.py").write_text("value = 'changed'\n")
    assert record.chunks_of("pkg/m3.py", os.lstat(dest / "pkg" / "m3.py")) is None
    run = cacher("--json", "dir", "upload", "deps/v2", str(dest), "--base", "deps/v1", extra_env=CAS)
    assert run.code == 0, run
    again = tmp_path / "again"
    assert cacher("dir", "download", "deps/v2", str(again), extra_env=CAS).code == 0
    assert (again / "pkg" / "m3.py").read_text() == "value = 'changed'\n"
    assert (again / "pkg" / "m4.py").read_text() == "value = 4\n" * 50
