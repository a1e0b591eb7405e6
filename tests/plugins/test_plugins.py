"""Plugin discovery through real entry points: listing, broken plugins, duplicate names."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import assert_one_error_line


def fake_distribution(root: Path, name: str, entry_points: str, module: str | None = None) -> Path:
    """A real installed distribution (dist-info on sys.path via PYTHONPATH), as pip would leave it."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    if module:
        (root / f"{name.replace('-', '_')}.py").write_text(module)
    return root


def test_plugins_lists_builtins_with_their_distribution(cacher) -> None:
    run = cacher("plugins")
    assert run.code == 0, run
    for group, name in [("kind", "dir"), ("kind", "file"), ("key", "hash"), ("codec", "zstd")]:
        assert any(line.split()[:3] == [group, name, "ci-cacher"] for line in run.out.splitlines()), run.out


def test_broken_plugin_is_shown_and_breaks_only_itself(cacher, tmp_path: Path) -> None:
    site = fake_distribution(
        tmp_path / "site",
        "cacher-broken",
        "[cacher.kinds]\nbroken = cacher_broken_missing:Kind\nnotakind = cacher_notakind:Thing\n",
    )
    (site / "cacher_notakind.py").write_text("class Thing:\n    pass\n")
    env = {"PYTHONPATH": str(site)}
    run = cacher("plugins", extra_env=env)
    assert run.code == 0, run
    assert "broken" in run.out and "BROKEN" in run.out and "ModuleNotFoundError" in run.out
    assert "notakind" in run.out and "not a subclass of cacher.kind.Kind" in run.out
    f = tmp_path / "f"
    f.write_text("fine")
    assert cacher("upload", "k", str(f), extra_env=env).code == 0  # unrelated commands still work
    run = cacher("broken", "upload", "k", str(f), extra_env=env)
    assert run.code == 2, run
    assert_one_error_line(run, "broken", "cacher_broken_missing")


def test_two_distributions_registering_one_name(cacher, tmp_path: Path) -> None:
    site = fake_distribution(tmp_path / "site", "cacher-rival", "[cacher.kinds]\ndir = cacher_rival:DirKind\n",
                             module="from cacher.kinds.dir import DirKind\n")
    env = {"PYTHONPATH": str(site)}
    run = cacher("plugins", extra_env=env)
    assert run.code == 0, run
    line = next(line for line in run.out.splitlines() if line.split()[:2] == ["kind", "dir"])
    assert "registered twice" in line and "ci-cacher" in line and "cacher-rival" in line
    run = cacher("dir", "upload", "k.tar.zst", str(tmp_path), extra_env=env)
    assert run.code == 2, run
    assert_one_error_line(run, "registered twice", "cacher-rival", "ci-cacher")


def test_third_party_kind_gets_commands_without_core_changes(cacher, tmp_path: Path) -> None:
    module = (
        "from cacher.kinds.file import FileKind\n"
        "class NotesKind(FileKind):\n"
        "    summary = 'Release notes, a third-party kind.'\n"
    )
    site = fake_distribution(tmp_path / "site", "cacher-notes", "[cacher.kinds]\nnotes = cacher_notes:NotesKind\n",
                             module=module)
    env = {"PYTHONPATH": str(site)}
    run = cacher("--help", extra_env=env)
    assert run.code == 0 and "notes" in run.out and "Release notes" in run.out
    assert "notes" not in cacher("--help").out.split()
    f = tmp_path / "NOTES"
    f.write_text("v1")
    assert cacher("notes", "upload", "n", str(f), extra_env=env).code == 0
    assert cacher("notes", "download", "n", str(tmp_path / "out"), extra_env=env).code == 0
    assert (tmp_path / "out").read_text() == "v1"
