"""The entry-point index (`cacher.entrypoint_index`) against stevedore, whose answer it keeps:
the same key, the same entries, and a plugin installed after the index was written is seen."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from stevedore import _cache as stevedore_cache

from cacher import registry as registry_module
from cacher.entrypoint_index import EntryPointIndex, index_dir, path_key
from cacher.registry import NAMESPACES
from tests.test_plugins import fake_distribution


def test_key_is_stevedores_key(tmp_path: Path) -> None:
    site = fake_distribution(tmp_path / "site", "cacher-keyed", "[cacher.kinds]\nkeyed = x:Y\n")
    path = (*sys.path, str(site), str(tmp_path / "missing"))
    assert path_key(path) == stevedore_cache._hash_settings_for_path(path)[0]


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


def test_entries_are_stevedores_and_are_read_back(tmp_path: Path) -> None:
    listed = registry_module._from_stevedore()
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
