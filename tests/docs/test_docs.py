"""The documentation: the generated CLI reference is current, the site builds with --strict,
the quickstart works as written, and every CI recipe is valid YAML around the cache idiom."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cacher.testing.parts import PartUnavailable
from cacher.testing.tools import find_tool
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference" / "cli.md"
GENERATOR = ROOT / "scripts" / "gen_cli_reference.py"
VENV_BIN = Path(sys.executable).parent


def _yaml():  # type: ignore[no-untyped-def]
    try:
        import yaml
    except ImportError:
        unavailable("PyYAML is not installed (mkdocs in the dev extra brings it)")
    return yaml


# --- the generated CLI reference --------------------------------------------------------------


def test_cli_reference_is_current(tmp_path: Path) -> None:
    """Regenerate into a temp file, in a hostile terminal environment, and compare."""
    fresh = tmp_path / "cli.md"
    env = {**os.environ, "COLUMNS": "37", "LINES": "10", "TERM": "xterm-256color", "FORCE_COLOR": "1"}
    env.pop("NO_COLOR", None)
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--output", str(fresh)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {fresh}\n"
    committed = REFERENCE.read_text()
    new = fresh.read_text()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(True), new.splitlines(True), "docs/reference/cli.md", "regenerated"
        )
    )
    assert new == committed, (
        "docs/reference/cli.md is stale; run `.venv/bin/python scripts/gen_cli_reference.py`\n" + diff[:6000]
    )


def test_cli_reference_check_mode_reports_staleness(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(REFERENCE.read_text().replace("Usage: cacher key", "Usage: cacher kee", 1))
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--output", str(stale)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc
    assert "-Usage: cacher kee" in proc.stdout and "+Usage: cacher key" in proc.stdout
    assert "is stale" in proc.stderr
    stale.write_text(REFERENCE.read_text())
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--output", str(stale)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout) == (0, f"{stale} is up to date\n"), proc


def test_cli_reference_covers_the_command_tree() -> None:
    """Every command of the app has a section with its help; no installed third-party plugin leaks in."""
    from cacher.cli.app import build_app

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_cli_reference as gen
    finally:
        sys.path.pop(0)
    app = build_app(gen.core_registry())
    expected = ["cacher"] + [" ".join(("cacher", *p)) for p in gen.commands(app)]
    text = REFERENCE.read_text()
    titles = re.findall(r"^#{2,4} `(cacher[^`]*)`$", text, flags=re.M)
    assert titles == expected
    for must in (
        "cacher key",
        "cacher init",
        "cacher doctor",
        "cacher list",
        "cacher dir upload",
        "cacher dir download",
        "cacher docker download",
        "cacher file exists",
        "cacher url upload",
    ):
        assert must in titles
    assert "cacher git" not in titles
    blocks = re.findall(r"```text\n(.*?)\n```", text, flags=re.S)
    assert len(blocks) == len(titles)
    for title, block in zip(titles, blocks, strict=True):
        assert block.startswith(f"Usage: {title}"), (title, block[:80])
        assert "\x1b[" not in block
        assert max(len(line) for line in block.splitlines()) <= 100


# --- the site ----------------------------------------------------------------------------------


def test_mkdocs_nav_covers_the_required_pages() -> None:
    config = _yaml().safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["theme"]["name"] == "material"
    assert config["strict"] is True

    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [p for v in node.values() for p in pages(v)]
        if isinstance(node, list):
            return [p for v in node for p in pages(v)]
        return []

    nav = pages(config["nav"])
    for page in (
        "index.md",
        "quickstart.md",
        "concepts.md",
        "install.md",
        "recipes.md",
        "migration.md",
        "reference/cli.md",
        "configuration.md",
        "backends.md",
        "plugins.md",
        "reliability.md",
        "benchmarks.md",
    ):
        assert page in nav, page
    assert len(nav) == len(set(nav))


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    mkdocs = VENV_BIN / "mkdocs"
    if not mkdocs.exists():
        unavailable("mkdocs is not installed (it is in the dev extra)")
    site = tmp_path / "site"
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for page in (
        "index.html",
        "quickstart.html",
        "recipes.html",
        "reference/cli.html",
        "search/search_index.json",
    ):
        assert (site / page).is_file(), page
    html = (site / "reference" / "cli.html").read_text()
    assert "cacher dir upload" in html and "fonts.googleapis.com" not in html


# --- the quickstart, followed as written ---------------------------------------------------------


def quickstart_script() -> str:
    text = (DOCS / "quickstart.md").read_text()
    start = text.index("<!-- tests/docs/test_docs.py runs every sh block")
    end = text.index("<!-- tests/docs/test_docs.py: stop -->")
    blocks = re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.S)
    assert len(blocks) >= 6
    return "set -e\n" + "\n".join(blocks)


def test_quickstart_works_as_written(tmp_path: Path) -> None:
    for tool in ("zstd", "tar", "seq", "sha256sum"):
        try:
            find_tool(tool)
        except PartUnavailable as exc:
            unavailable(f"the quickstart uses {tool}: {exc.reason}")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }
    proc = subprocess.run(
        ["bash", "-c", quickstart_script()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    out, err = proc.stdout, proc.stderr
    first, second = "deps/f8e195dd491240ae.tar.zst", "deps/d667a74f9ec5b76a.tar.zst"
    # The outputs the page shows.
    assert out.splitlines()[0] == first, out
    assert f"cacher: dir miss, nothing under {first} in file://{home}/.cache/cacher\n" in err
    assert f"cacher: dir uploaded {first}: 7.6 MiB raw" in err
    assert f"cacher: dir hit, restored {first}: 7.6 MiB raw" in err
    assert f"cacher: dir partial hit, restored {first} for {second}" in err
    assert "cacher: running: ./build-deps.sh" in err
    assert f"cacher: dir uploaded {second}" in err
    assert "canary written, read back and deleted" in err
    assert out.count("installing dependencies into deps/ (slow)...") == 2, out
    assert "is-even.txt\nleft-pad.txt\n" in out
    assert first in out and second in out  # list --long
    assert "objects: 2" in out  # stats
    assert (home / ".cache" / "cacher" / first).is_file()
    assert (home / ".cache" / "cacher" / second).is_file()
    assert sorted(p.name for p in (home / "cacher-demo" / "deps").iterdir()) == [
        "is-even.txt",
        "left-pad.txt",
    ]
    text = (DOCS / "quickstart.md").read_text()
    for shown in (first, second, "7.6 MiB raw", "is-even.txt  left-pad.txt"):
        assert shown in text


# --- the CI recipes ---------------------------------------------------------------------------

RECIPES = {
    "GitHub Actions": "actions/checkout",
    "GitLab CI": "before_script",
    "builds.sr.ht": "tasks",
    "Woodpecker and Drone": "from_secret",
    "Buildkite": "steps",
}
IDIOM = re.compile(
    r"cacher dir download \"\$\$?KEY\" (?P<dir>\S+) \|\| \{ .+ && (?:\S*/)?cacher dir upload \"\$\$?KEY\" (?P=dir); \}"
)


def recipe_sections() -> dict[str, str]:
    text = (DOCS / "recipes.md").read_text()
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.split("\n", 1)[0].strip(): p for p in parts[1:]}


@pytest.mark.parametrize("system", sorted(set(RECIPES) - {"GitHub Actions"}))  # it uses the action
def test_recipe_is_valid_yaml_around_the_idiom(system: str, tmp_path: Path) -> None:
    yaml = _yaml()
    section = recipe_sections()[system]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, system
    doc = yaml.safe_load(blocks[0])
    assert isinstance(doc, dict) and RECIPES[system] in blocks[0]
    # Every line that runs in the job's shell, in order.
    lines: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            lines.extend(node.splitlines())
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    joined = "\n".join(lines)
    assert re.search(r"cacher key \"[^\"]*\{hash\}[^\"]*\" --hash-from \S+\.(sum|json|lock)", joined), system
    idioms = [m for line in lines if (m := IDIOM.search(line))]
    assert idioms, f"{system}: no `cacher dir download KEY DIR || {{ build && cacher dir upload KEY DIR; }}`"
    # The shell lines parse (after the CI system's own $$ escaping is undone).
    script = tmp_path / "job.sh"
    unescaped = joined.replace("$$", "$") if system in ("Woodpecker and Drone", "Buildkite") else joined
    script.write_text(unescaped + "\n")
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, f"{system}: {proc.stderr}\n{unescaped}"


def test_recipes_cover_the_five_systems() -> None:
    assert set(RECIPES) <= set(recipe_sections())


def test_recipe_idiom_runs_miss_then_hit(tmp_path: Path) -> None:
    """The idiom as the recipes write it: a miss builds and uploads, the next run restores."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "go.sum").write_text("example.com/m v1.0.0 h1:x=\n")
    script = (
        'KEY=$(cacher key "go-mod/{hash}.tar.zst" --hash-from go.sum)\n'
        "DIR=mod\n"
        "build() { echo built >&2; mkdir -p mod/example.com && echo code > mod/example.com/m.go; }\n"
        'cacher dir download "$KEY" "$DIR" || { build && cacher dir upload "$KEY" "$DIR"; }\n'
        "rm -rf mod\n"
        'cacher dir download "$KEY" "$DIR" || { build && cacher dir upload "$KEY" "$DIR"; }\n'
        "cat mod/example.com/m.go\n"
    )
    env = {
        "HOME": str(home),
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin",
        "CACHER_BACKEND": "file",
        "CACHER_BUCKET": str(tmp_path / "bucket"),
    }
    proc = subprocess.run(
        ["bash", "-ec", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "code\n"
    assert proc.stderr.count("built\n") == 1, proc.stderr
    assert "dir hit, restored go-mod/" in proc.stderr


# --- what the pages say is what the CLI does (issue 16) ------------------------------------------


def test_reliability_names_the_timeout_flags_that_exist(cacher) -> None:
    page = (DOCS / "reliability.md").read_text()
    assert "not there yet" not in page
    for flag in ("--connect-timeout", "--read-timeout", "--request-timeout", "--max-attempts"):
        assert f"`{flag}`" in page, flag
        assert flag in cacher("download", "--help").out, flag


def test_cli_page_names_plugin_kinds(cacher) -> None:
    page = (DOCS / "cli.md").read_text()
    assert "`git`" in page and "cacher git upload|download|exists|ensure" in page
    assert "plugins.md" in page


def test_no_page_says_upload_takes_sha256(cacher) -> None:
    for page in [*DOCS.rglob("*.md"), ROOT / "README.md"]:
        assert "a `--sha256` upload" not in page.read_text(), page
    assert "--sha256" not in cacher("upload", "--help").out  # the page is right: upload has none
    assert "--sha256" in cacher("url", "upload", "--help").out
    assert "`upload`\nitself takes no `--sha256`" in (DOCS / "cli.md").read_text()


def test_help_has_no_empty_list_flags(cacher) -> None:
    assert "--empty-" not in REFERENCE.read_text()
    for args in (["dir", "download", "--help"], ["dir", "ensure", "--help"], ["key", "--help"]):
        run = cacher(*args)
        assert run.code == 0 and "--empty-" not in run.out, run
    run = cacher("dir", "download", "k.tar.zst", "d", "--empty-restore-key")
    assert run.code == 2 and "Unknown option: --empty-restore-key" in run.err, run
