"""The entry-point index (`cacher.entrypoint_index`): its key notices every change to the
installed entry points (exact times and sizes), its answer is importlib.metadata's, and only an
index file of the user's own is believed (docs/security.md, "Files cacher trusts")."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from cacher import registry as registry_module
from cacher.entrypoint_index import EntryPointIndex, index_dir, path_key
from cacher.registry import NAMESPACES
from tests.plugins.test_plugins import fake_distribution

ZEN = "Beautiful is better than ugly"


def _index_files(home: Path) -> list[Path]:
    return sorted((home / ".cache" / "ci-cacher" / "entry-points").glob("*.json"))


def _plant_this(index_file: Path) -> None:
    """Point the ``file`` kind at ``this:nothing``: importing it prints the Zen of Python."""
    document = json.loads(index_file.read_text())
    document["entries"] = [
        ["cacher.kinds", "file", "this:nothing"] if e[:2] == ["cacher.kinds", "file"] else e
        for e in document["entries"]
    ]
    index_file.write_text(json.dumps(document))


def test_index_directory_is_private(cacher, home: Path) -> None:
    """Made 0700; one an earlier cacher made 0755 is made 0700 too."""
    old = home / ".cache" / "ci-cacher" / "entry-points"
    old.mkdir(parents=True, mode=0o755)
    old.chmod(0o755)
    run = cacher("exists", "base")
    assert run.code == 1, run
    directory = home / ".cache" / "ci-cacher" / "entry-points"
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    [index_file] = _index_files(home)
    assert stat.S_IMODE(os.stat(index_file).st_mode) & 0o077 == 0


@pytest.mark.parametrize("how", ["group-writable", "other-writable", "foreign-owned", "symlink"])
def test_an_index_file_that_is_not_the_users_own_is_not_imported_and_is_replaced(
    cacher, home: Path, tmp_path: Path, how: str
) -> None:
    first = cacher("exists", "base")
    assert first.code == 1, first
    [index_file] = _index_files(home)
    good = index_file.read_text()
    _plant_this(index_file)
    if how == "group-writable":
        index_file.chmod(0o620)
    elif how == "other-writable":
        index_file.chmod(0o666)
    elif how == "foreign-owned":
        if os.getuid() != 0:
            pytest.skip("chown to another user needs root")
        os.chown(index_file, 12345, 12345)
    else:
        planted = tmp_path / "planted.json"
        os.replace(index_file, planted)
        index_file.symlink_to(planted)
    run = cacher("exists", "base")
    assert run.code == 1, run
    assert ZEN not in run.out + run.err
    # The untrusted index was replaced by a true one of the user's own.
    assert not index_file.is_symlink()
    assert json.loads(index_file.read_text()) == json.loads(good)
    st = os.stat(index_file)
    assert st.st_uid == os.getuid() and not st.st_mode & 0o022


def test_an_index_in_a_directory_of_another_user_is_not_used(cacher, home: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("chown to another user needs root")
    first = cacher("exists", "base")
    assert first.code == 1, first
    [index_file] = _index_files(home)
    _plant_this(index_file)
    directory = index_file.parent
    os.chown(index_file, 12345, 12345)
    os.chown(directory, 12345, 12345)
    run = cacher("exists", "base")
    assert run.code == 1, run
    assert ZEN not in run.out + run.err
    assert os.stat(index_file).st_uid == 12345, "another user's directory is not written in"


def test_entry_points_rewritten_within_the_same_second_are_noticed(cacher, tmp_path: Path) -> None:
    """A float32 time (128-second steps) missed this; exact nanoseconds and the size do not."""
    module = "from cacher.plugin import Kind\n\nclass Late(Kind):\n    summary = 'late'\n"
    site = fake_distribution(
        tmp_path / "site", "cacher-samesec", "[cacher.kinds]\nlateone = cacher_samesec:Late\n", module=module
    )
    env = {"PYTHONPATH": str(site)}
    first = cacher("plugins", extra_env=env)
    assert first.code == 0, first
    assert "lateone" in first.out and "latetwo" not in first.out
    ep_file = site / "cacher-samesec-0.1.dist-info" / "entry_points.txt"
    before = os.stat(ep_file)
    ep_file.write_text("[cacher.kinds]\nlateone = cacher_samesec:Late\nlatetwo = cacher_samesec:Late\n")
    os.utime(ep_file, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    second = cacher("plugins", extra_env=env)
    assert second.code == 0, second
    assert any(line.split()[:2] == ["kind", "latetwo"] for line in second.out.splitlines()), second.out


def test_a_miss_never_reads_or_writes_stevedores_cache(cacher, home: Path) -> None:
    """stevedore's own cache (no owner check, the float32 key) is never consulted or written:
    the registry gives it an empty directory of its own."""
    planted = home / ".cache" / "python-entrypoints"
    planted.mkdir(parents=True)
    (planted / "marker").write_text("x")
    run = cacher("plugins")
    assert run.code == 0, run
    assert sorted(p.name for p in planted.iterdir()) == ["marker"]
    assert _index_files(home)


def test_key_changes_when_a_distribution_is_installed_or_its_entry_points_change(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    before = path_key((str(site),))
    fake_distribution(site, "cacher-late", "[cacher.kinds]\nlate = x:Y\n")
    installed = path_key((str(site),))
    assert installed != before
    ep_file = site / "cacher-late-0.1.dist-info" / "entry_points.txt"
    ep_file.write_text("[cacher.kinds]\nlate = x:Z\n")
    os.utime(ep_file, (1, 1))
    assert path_key((str(site),)) != installed


def test_entries_are_importlib_metadatas_and_are_read_back(tmp_path: Path) -> None:
    from importlib import metadata

    listed = registry_module._from_stevedore()
    # stevedore, told to keep no cache, lists exactly what the installed distributions declare.
    assert sorted(listed) == sorted(
        (ns, ep.name, ep.value) for ns in NAMESPACES.values() for ep in metadata.entry_points(group=ns)
    )
    assert {("cacher.kinds", "dir"), ("cacher.kinds", "file"), ("cacher.codecs", "zstd")} <= {
        (ns, name) for ns, name, _ in listed
    }
    index = EntryPointIndex(tmp_path / "index", NAMESPACES.values())
    assert index.read() is None
    index.write(listed)
    assert index.read() == listed
    # Another set of groups (a later cacher with a new plugin group) does not reuse it.
    assert EntryPointIndex(tmp_path / "index", ["cacher.kinds"]).read() is None


@pytest.mark.parametrize("content", ["", "{", "[]", '{"groups": [], "entries": 3}', '{"entries": [[1, 2, 3]]}'])
def test_a_damaged_index_is_a_miss(tmp_path: Path, content: str) -> None:
    index = EntryPointIndex(tmp_path, NAMESPACES.values())
    assert index.file is not None
    index.file.write_text(content)
    index.file.chmod(0o600)
    assert index.read() is None


def test_no_index_without_an_absolute_home() -> None:
    assert index_dir({"HOME": ""}) is None
    assert index_dir({"HOME": "relative"}) is None
    assert index_dir({"XDG_CACHE_HOME": "rel", "HOME": ""}) is None
    assert index_dir({"HOME": "/h"}) == Path("/h/.cache/ci-cacher/entry-points")
    assert index_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/ci-cacher/entry-points")


def test_a_plugin_installed_after_the_index_was_written_is_found(cacher, tmp_path: Path, home: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    env = {"PYTHONPATH": str(site)}
    first = cacher("plugins", extra_env=env)
    assert first.code == 0, first
    assert "latekind" not in first.out
    assert list((home / ".cache" / "ci-cacher/entry-points").glob("*.json")), "no index was written"
    fake_distribution(
        site,
        "cacher-latekind",
        "[cacher.kinds]\nlatekind = cacher_latekind:Late\n",
        module="from cacher.plugin import Kind\n\nclass Late(Kind):\n    summary = 'late'\n",
    )
    second = cacher("plugins", extra_env=env)
    assert second.code == 0, second
    assert any(line.split()[:2] == ["kind", "latekind"] for line in second.out.splitlines()), second.out


def test_an_unwritable_cache_is_no_error(cacher, home: Path, tmp_path: Path) -> None:
    cache = home / ".cache"
    (cache / "ci-cacher").mkdir(parents=True, exist_ok=True)
    (cache / "ci-cacher/entry-points").write_text("a file where the directory would be")
    (tmp_path / "f").write_text("x")
    run = cacher("key", "k/{hash}", "--hash-from", str(tmp_path / "f"))
    assert run.code == 0, run
    assert run.out.startswith("k/")
    assert (cache / "ci-cacher/entry-points").read_text() == "a file where the directory would be"


def test_no_index_in_a_build_unpacked_per_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A one-file build's sys.path is a new temporary directory every run: no index for it;
    the one-directory bundle (its files beside the executable) keeps one. PyInstaller's
    attributes are set by hand here: the built bundles are run in test_distribution."""
    exe_dir = tmp_path / "bundle"
    (exe_dir / "_internal").mkdir(parents=True)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe_dir / "cacher"))
    monkeypatch.setattr(sys, "_MEIPASS", str(exe_dir / "_internal"), raising=False)
    assert index_dir({"HOME": "/h"}) == Path("/h/.cache/ci-cacher/entry-points")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "_MEI12345"))
    assert index_dir({"HOME": "/h"}) is None
