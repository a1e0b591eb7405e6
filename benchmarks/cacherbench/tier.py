"""The runner-local tier: a restore from a warm tier against a plain S3 restore and `tar -x`.

Three ways to put the same tree in place on a runner that restored it before:

- ``cacher, S3``: ``cacher dir download KEY DEST``, no tier: HEAD and ranged GETs;
- ``cacher, warm tier``: the same with ``CACHER_LOCAL_TIER``, whose copy the warm-up run made:
  one HEAD, then the local copy (checked against its recorded sha256 as it is read);
- ``zstd -d | tar -x, local file``: GNU tar from the archive on local disk, no store at all:
  the floor a local tier can approach.

The tier lives in the scratch directory (tmpfs, like the destinations), so the rows compare
the software, not the disk.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cacherbench.bench import Bench, Contender, Measurement, remove
from cacherbench.common import check_tree, tar_zstd, untimed
from cacherbench.inputs import Inputs
from cacherbench.proc import shell

WORKLOAD = "tier download"


def tier_download(bench: Bench, inputs: Inputs) -> list[Measurement]:
    key = "tier/tree.tar.zst"
    bench.log("setup").parent.mkdir(parents=True, exist_ok=True)  # when this workload runs first
    untimed(bench, bench.cacher("dir", "upload", "--force", key, str(inputs.tree)), bench.cacher_env())
    archive = bench.scratch("tier-tree.tar.zst")
    if not archive.exists():
        with open(archive, "wb") as out:
            subprocess.run(shell(tar_zstd(bench, inputs.tree)), stdout=out, check=True)
    tier = bench.scratch("tier")
    remove(tier)
    tier.mkdir(mode=0o700)
    os.chmod(tier, 0o700)
    tiered = {**bench.cacher_env(), "CACHER_LOCAL_TIER": str(tier)}

    s3, warm, local = "cacher, S3", "cacher, warm tier", "zstd -d | tar -x, local file"
    short = {s3: "s3", warm: "tier", local: "tar"}

    def dest(tool: str) -> Path:
        return bench.scratch(f"tier-down-{short[tool]}")

    def fresh(tool: str):  # type: ignore[no-untyped-def]
        def run(label: str) -> None:
            remove(dest(tool))
            dest(tool).mkdir()

        return run

    def clear(tool: str):  # type: ignore[no-untyped-def]
        return lambda label: remove(dest(tool))

    def check(tool: str):  # type: ignore[no-untyped-def]
        def run(label: str) -> None:
            check_tree(dest(tool), inputs.tree_stats)
            remove(dest(tool))

        return run

    contenders = [
        Contender(
            s3,
            "cacher dir download KEY DEST",
            bench.cacher_env(),
            lambda label: bench.cacher("dir", "download", key, str(dest(s3))),
            setup=clear(s3),
            check=check(s3),
        ),
        Contender(
            warm,
            "CACHER_LOCAL_TIER=TIER cacher dir download KEY DEST",
            tiered,
            lambda label: bench.cacher("dir", "download", key, str(dest(warm))),
            setup=clear(warm),
            check=check(warm),
        ),
        Contender(
            local,
            "zstd -d < tree.tar.zst | tar -C DEST -xf -",
            bench.peer_env(),
            lambda label: shell(f"zstd -d < {bench.q(archive)} | tar -C {bench.q(dest(local))} -xf -"),
            setup=fresh(local),
            check=check(local),
        ),
    ]
    results = bench.compare(WORKLOAD, contenders)  # the warm-up run fills the tier
    bench.facts["tier_bytes"] = sum(p.stat().st_size for p in tier.rglob("*") if p.is_file())
    remove(tier)
    return results
