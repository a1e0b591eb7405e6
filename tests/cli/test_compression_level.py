"""``compression_level`` is checked once, the same for every command, before any I/O; the
range the docs' table states is the one the code enforces (issue 27, item 5)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cacher import config
from cacher.codecs.gzip import GzipCodec
from cacher.codecs.zstd import ZstdCodec
from tests.conftest import assert_one_error_line

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        ["upload", "k", "f.txt"],
        ["dir", "upload", "k.tar.zst", "d"],
        ["url", "upload", "k", "URL"],
        ["upload", "k.tar.zst", "f.txt"],
    ],
    ids=["upload", "dir-upload", "url-upload", "upload-zst-key"],
)
def test_an_out_of_range_level_is_exit_2_for_every_command(
    cacher, tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "f.txt").write_text("hello\n")
    (tmp_path / "d").mkdir()
    store = tmp_path / "store"
    store.mkdir()
    args = [a.replace("URL", (tmp_path / "f.txt").as_uri()) for a in command]
    env = {"CACHER_BACKEND": "file", "CACHER_BUCKET": str(store), "CACHER_COMPRESSION_LEVEL": "30"}
    run = cacher(*args, extra_env=env, cwd=tmp_path)
    assert run.code == 2, run
    assert_one_error_line(run, "compression_level 30", "CACHER_COMPRESSION_LEVEL", "-131072", "22")
    assert list(store.rglob("*")) == []  # nothing stored
    ok = cacher(*args, extra_env={**env, "CACHER_COMPRESSION_LEVEL": "19"}, cwd=tmp_path)
    assert ok.code == 0, ok


def test_the_table_states_the_ranges_the_code_enforces() -> None:
    spec = config.FIELD_BY_NAME["compression_level"]
    assert (spec.low, spec.high) == ZstdCodec.levels
    row = next(
        line
        for line in (ROOT / "docs" / "configuration.md").read_text().splitlines()
        if line.startswith("| `compression_level` |")
    )
    zstd = re.search(r"zstd (-?\d+) to (-?\d+)", row)
    gzip = re.search(r"gzip (-?\d+) to (-?\d+)", row)
    assert zstd and gzip, row
    assert (int(zstd[1]), int(zstd[2])) == ZstdCodec.levels
    assert (int(gzip[1]), int(gzip[2])) == GzipCodec.levels
