"""Where the time goes: pieces of cacher's pipeline alone (stages.py) next to the same pieces of the
shell pipeline, and what-ifs that change one thing from outside."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from cacherbench.bench import Bench, Contender, Measurement, remove
from cacherbench.common import ZSTD, check_tree, tar_zstd, untimed
from cacherbench.inputs import Inputs
from cacherbench.proc import shell


def _local_archive(bench: Bench, inputs: Inputs) -> tuple[Path, str]:
    archive = bench.scratch("tree.tar.zst")
    if not archive.exists():
        with open(archive, "wb") as out:
            subprocess.run(shell(tar_zstd(bench, inputs.tree)), stdout=out, check=True)
    key = "parts/tree.tar.zst"
    untimed(bench, bench.s5("cp", str(archive), bench.url(key)), bench.peer_env())
    bench.facts["local_archive_bytes"] = archive.stat().st_size
    return archive, key


def upload_parts(bench: Bench, inputs: Inputs) -> list[Measurement]:
    archive, _ = _local_archive(bench, inputs)
    tree, a = bench.q(inputs.tree), bench.q(archive)
    ce, pe = bench.cacher_env(), bench.peer_env()
    contenders = [
        Contender(
            "GNU tar",
            "tar -C DIR -cf - . | cat > /dev/null",
            pe,
            lambda label: shell(f"tar -C {tree} -cf - . | cat > /dev/null"),
        ),
        Contender(
            "GNU tar | zstd",
            f"tar -C DIR -cf - . | {ZSTD} > /dev/null",
            pe,
            lambda label: shell(f"tar -C {tree} -cf - . | {ZSTD} > /dev/null"),
        ),
        Contender(
            "s5cmd pipe (archive from disk)",
            "s5cmd pipe s3://B/KEY < tree.tar.zst",
            pe,
            lambda label: shell(f"{bench.q(bench.s5('pipe', bench.url('parts/up-s5')))} < {a}"),
        ),
        Contender(
            "aws s3 cp - (archive from disk)",
            "aws s3 cp - s3://B/KEY < tree.tar.zst",
            pe,
            lambda label: shell(f"{bench.q(bench.aws('s3', 'cp', '-', bench.url('parts/up-aws')))} < {a}"),
        ),
        Contender(
            "cacher write_tree", "stages.py tar DIR", ce, lambda label: bench.stage("tar", str(inputs.tree))
        ),
        Contender(
            "cacher write_tree + zstd",
            "stages.py tar-zstd DIR",
            ce,
            lambda label: bench.stage("tar-zstd", str(inputs.tree)),
        ),
        Contender(
            "cacher S3 writer (archive from disk)",
            "stages.py put tree.tar.zst KEY",
            ce,
            lambda label: bench.stage("put", str(archive), "parts/up-cacher"),
        ),
        # What-ifs: how much a change would save (see stages.py).
        Contender(
            "what-if: cacher write_tree + zstd level 1",
            "stages.py tar-zstd1 DIR",
            ce,
            lambda label: bench.stage("tar-zstd1", str(inputs.tree)),
        ),
        Contender(
            "what-if: GNU tar | zstd level 1",
            "tar -C DIR -cf - . | zstd -T0 -1 > /dev/null",
            pe,
            lambda label: shell(f"tar -C {tree} -cf - . | zstd -T0 -1 > /dev/null"),
        ),
    ]
    return bench.compare(
        "dir upload parts", contenders, warmup=bench.warmup_parts, runs=min(bench.runs, bench.parts_runs)
    )


def download_parts(bench: Bench, inputs: Inputs) -> list[Measurement]:
    archive, key = _local_archive(bench, inputs)
    a = bench.q(archive)
    ce, pe = bench.cacher_env(), bench.peer_env()

    def dest(tool: str) -> Path:
        return bench.scratch(f"parts-{tool.split()[0]}")

    def fresh(tool: str):  # type: ignore[no-untyped-def]
        def run(label: str) -> None:
            remove(dest(tool))
            dest(tool).mkdir()

        return run

    def check(tool: str):  # type: ignore[no-untyped-def]
        def run(label: str) -> None:
            check_tree(dest(tool), inputs.tree_stats)
            shutil.rmtree(dest(tool))

        return run

    contenders = [
        Contender(
            "s5cmd cat",
            "s5cmd cat s3://B/KEY > /dev/null",
            pe,
            lambda label: shell(f"{bench.q(bench.s5('cat', bench.url(key)))} > /dev/null"),
        ),
        Contender(
            "aws s3 cp to stdout",
            "aws s3 cp s3://B/KEY - > /dev/null",
            pe,
            lambda label: shell(f"{bench.q(bench.aws('s3', 'cp', bench.url(key), '-'))} > /dev/null"),
        ),
        Contender(
            "zstd -d",
            "zstd -d < tree.tar.zst > /dev/null",
            pe,
            lambda label: shell(f"zstd -d < {a} > /dev/null"),
        ),
        Contender(
            "zstd -d | tar -x",
            "zstd -d < tree.tar.zst | tar -C DEST -xf -",
            pe,
            lambda label: shell(f"zstd -d < {a} | tar -C {bench.q(dest('zstd'))} -xf -"),
            setup=fresh("zstd"),
            check=check("zstd"),
        ),
        Contender("cacher S3 reader", "stages.py get KEY", ce, lambda label: bench.stage("get", key)),
        Contender(
            "cacher zstd decoder",
            "stages.py unzstd tree.tar.zst",
            ce,
            lambda label: bench.stage("unzstd", str(archive)),
        ),
        Contender(
            "cacher decoder + extract_tree",
            "stages.py untar tree.tar.zst DEST",
            ce,
            lambda label: bench.stage("untar", str(archive), str(dest("cacher"))),
            setup=fresh("cacher"),
            check=check("cacher"),
        ),
    ]
    return bench.compare(
        "dir download parts", contenders, warmup=bench.warmup_parts, runs=min(bench.runs, bench.parts_runs)
    )
