"""Facts the pages state that the code could make false: quickstart's stored size, the
single file's size (stated nowhere as a number), migration.md's doubled arch suffix
(issue 27, item 10)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from cacher.keying.platform_names import go_arch, go_os

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20}
_UPLOADED = re.compile(
    r"dir uploaded \S+: ([0-9.]+) (B|KiB|MiB) raw, ([0-9.]+) (B|KiB|MiB) stored \(zstd, x([0-9.]+)\)"
)


def test_quickstart_shows_the_stored_size_cacher_prints(cacher, tmp_path: Path) -> None:
    """The page's build script (without its sleep), uploaded as the page does: the stored size
    and ratio the page shows are the ones cacher prints now (within tar's mtime noise)."""
    page = (DOCS / "quickstart.md").read_text()
    script = re.search(r"cat > build-deps.sh <<'EOF'\n(.*?)\nEOF\n", page, re.S)
    assert script, "the quickstart's build script moved"
    (tmp_path / "deps.lock").write_text("left-pad==1.3.0\nis-even==1.0.0\n")
    subprocess.run(
        ["sh", "-c", script[1].replace("sleep 3", "true")], cwd=tmp_path, check=True, capture_output=True
    )
    run = cacher("dir", "upload", "deps/x.tar.zst", "deps", cwd=tmp_path)
    assert run.code == 0, run
    now = _UPLOADED.search(run.err)
    assert now, run
    shown = _UPLOADED.findall(page)
    assert len(shown) == 2, shown
    for raw, raw_unit, stored, stored_unit, ratio in shown:
        assert f"{raw} {raw_unit}" == f"{now[1]} {now[2]}"
        # Within 20%: the same tree is stored as 119.9 KiB (x65.04) or 141.8 KiB (x55.00) from one
        # run to the next on this machine (seen 2026-12-07 on 3.11 and 3.13, cause not found yet:
        # not the thread count, not the tree); a change of format or level moves it more.
        shown_bytes, now_bytes = float(stored) * _UNITS[stored_unit], float(now[3]) * _UNITS[now[4]]
        assert abs(shown_bytes - now_bytes) <= 0.2 * now_bytes, (stored, now[0])
        assert abs(float(ratio) - float(now[5])) <= 0.2 * float(now[5]), (ratio, now[0])


def test_no_page_types_the_single_files_size() -> None:
    """It grows with every release: the pages say "one file", not a number (install.md's
    comparison table is dated as the sizes of the builds compared when the choice was made)."""
    for page in ("install.md", "migration.md"):
        for line in (DOCS / page).read_text().splitlines():
            if "single file" in line or "one file" in line:
                assert not re.search(r"\d+(\.\d+)? ?(MB|MiB)\b", line), (page, line)


def test_arch_suffix_setting_and_flag_add_up_as_migration_md_warns(cacher, tmp_path: Path) -> None:
    (tmp_path / "tool").write_text("bin\n")
    store = tmp_path / "store"
    store.mkdir()
    env = {"CACHER_BACKEND": "file", "CACHER_BUCKET": str(store), "CACHER_ARCH_SUFFIX": "1"}
    key = cacher("key", "bin/tool", "--arch-suffix", extra_env=env)
    assert key.code == 0, key
    up = cacher("upload", key.out.strip(), "tool", extra_env=env, cwd=tmp_path)
    assert up.code == 0, up
    listed = cacher("list", extra_env=env)
    assert listed.code == 0, listed
    suffix = f"-{go_os()}-{go_arch()}"
    assert listed.out.split() == [f"bin/tool{suffix}{suffix}"]
    page = " ".join((DOCS / "migration.md").read_text().split())
    assert '`KEY=$(cacher key bin/tool --arch-suffix); cacher upload "$KEY" tool` stores' in page
    assert "`bin/tool-linux-amd64-linux-amd64`" in page
