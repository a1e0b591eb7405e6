"""The transfer workloads: directory trees (the size's tree and the medium one; restores onto
tmpfs and onto disk) and one large file up and down, and `cacher key` of a tree."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cacherbench.bench import BUCKET, Bench, Contender, Measurement, remove
from cacherbench.common import ZSTD, check_tree, sha256, tar_zstd, untimed
from cacherbench.inputs import Inputs, TreeStats, build_medium_inputs
from cacherbench.proc import shell

# -- directories ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    """A directory tree to move; ``suffix`` ends its workloads' names ("" or " medium")."""

    path: Path
    stats: TreeStats
    suffix: str = ""

    @property
    def slug(self) -> str:
        return self.suffix.strip().replace(" ", "-")

    def key(self, base: str) -> str:
        return f"{base}-{self.slug}" if self.slug else base


def main_tree(bench: Bench, inputs: Inputs) -> Tree:
    return Tree(inputs.tree, inputs.tree_stats)


def medium_tree(bench: Bench, inputs: Inputs) -> Tree:
    """The medium tree of this size, built on first use (a stand-in below ``full``, see inputs.py)."""
    medium = build_medium_inputs(inputs, bench.peers)
    bench.facts["medium_tree"] = {
        "stats": asdict(medium.tree_stats),
        "requested": medium.requested,
        "packages": medium.packages,
        "stand_in": medium.stand_in,
    }
    return Tree(medium.tree, medium.tree_stats, " medium")


def _dir_upload(bench: Bench, tree: Tree) -> list[Measurement]:
    def key(tool: str, label: str) -> str:
        return f"{tree.key('dir-up')}/{tool}/{label}.tar.zst"

    pipe = tar_zstd(bench, tree.path)
    contenders = [
        Contender(
            "cacher",
            "cacher dir upload KEY DIR",
            bench.cacher_env(),
            lambda label: bench.cacher("dir", "upload", key("cacher", label), str(tree.path)),
        ),
        Contender(
            "s5cmd",
            f"tar -C DIR -cf - . | {ZSTD} | s5cmd pipe s3://B/KEY",
            bench.peer_env(),
            lambda label: shell(f"{pipe} | {bench.q(bench.s5('pipe', bench.url(key('s5cmd', label))))}"),
        ),
        Contender(
            "aws",
            f"tar -C DIR -cf - . | {ZSTD} | aws s3 cp - s3://B/KEY",
            bench.peer_env(),
            lambda label: shell(
                f"{pipe} | {bench.q(bench.aws('s3', 'cp', '-', bench.url(key('aws', label))))}"
            ),
        ),
    ]
    results = bench.compare(f"dir upload{tree.suffix}", contenders)
    bench.facts[f"dir_stored_bytes{tree.suffix.replace(' ', '_')}"] = {
        tool: bench.object_size(key(tool, str(bench.runs))) for tool in ("cacher", "s5cmd", "aws")
    }
    return results


def _exists(bench: Bench, key: str) -> bool:
    try:
        bench.client.head_object(Bucket=BUCKET, Key=key)
    except Exception:
        return False
    return True


def _dir_objects(bench: Bench, tree: Tree) -> tuple[str, str]:
    """The tree stored by cacher and by the shell pipeline (once per run: later workloads reuse them)."""
    ours, theirs = f"{tree.key('dir-down')}/cacher.tar.zst", f"{tree.key('dir-down')}/peer.tar.zst"
    if not _exists(bench, ours):
        untimed(bench, bench.cacher("dir", "upload", "--force", ours, str(tree.path)), bench.cacher_env())
    if not _exists(bench, theirs):
        pipe = f"{tar_zstd(bench, tree.path)} | {bench.q(bench.s5('pipe', bench.url(theirs)))}"
        untimed(bench, shell(pipe), bench.peer_env())
    return ours, theirs


def _restore(
    bench: Bench,
    tree: Tree,
    workload: str,
    tools: tuple[str, ...],
    dest_dir: Path,
    sync: bool,
    runs: int | None = None,
    clear: Callable[[Path], None] = remove,
) -> list[Measurement]:
    """Restore the tree into dest_dir/TOOL: cacher against ``s5cmd cat`` or ``aws s3 cp -``, each
    piped into ``zstd -d | tar -x``. The restored tree is checked and cleared (``clear``) after
    each run, and with ``sync`` written back to disk before the next one starts (all untimed)."""
    ours, theirs = _dir_objects(bench, tree)

    def dest(tool: str) -> Path:
        return dest_dir / f"{workload.replace(' ', '-')}-{tool}"

    def setup(tool: str) -> Callable[[str], None]:
        def run(label: str) -> None:
            clear(dest(tool))
            if tool != "cacher":
                dest(tool).mkdir(parents=True)
            if sync:
                os.sync()

        return run

    def check(tool: str) -> Callable[[str], None]:
        def run(label: str) -> None:
            check_tree(dest(tool), tree.stats)
            clear(dest(tool))

        return run

    untar = "zstd -d | tar -C {} -xf -"
    fetch = {
        "s5cmd": ("s5cmd cat s3://B/KEY", bench.s5("cat", bench.url(theirs))),
        "aws": ("aws s3 cp s3://B/KEY -", bench.aws("s3", "cp", bench.url(theirs), "-")),
    }
    contenders = [
        Contender(
            "cacher",
            "cacher dir download KEY DEST",
            bench.cacher_env(),
            lambda label: bench.cacher("dir", "download", ours, str(dest("cacher"))),
            setup=setup("cacher"),
            check=check("cacher"),
        ),
        *(
            Contender(
                tool,
                f"{fetch[tool][0]} | zstd -d | tar -C DEST -xf -",
                bench.peer_env(),
                lambda label, tool=tool: shell(
                    f"{bench.q(fetch[tool][1])} | {untar.format(bench.q(dest(tool)))}"
                ),
                setup=setup(tool),
                check=check(tool),
            )
            for tool in tools
        ),
    ]
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        return bench.compare(workload, contenders, runs=runs)
    finally:  # a failed run leaves no tree behind
        for tool in ("cacher", *tools):
            clear(dest(tool))


def _dir_download(bench: Bench, tree: Tree) -> list[Measurement]:
    workload = f"dir download{tree.suffix}"
    return _restore(bench, tree, workload, ("s5cmd", "aws"), bench.scratch_root, sync=False)


def disk_dir(work: Path) -> Path:
    """Where the ``restore-disk*`` rows restore to; run.py removes it at the end of the run."""
    return work / "disk"


def _restore_disk(bench: Bench, tree: Tree) -> list[Measurement]:
    """The same restore with DEST on the disk under benchmarks/.work (not tmpfs).

    A restored tree is moved aside into disk/trash, not deleted, until the end of the run
    (run.py): on the ext4 here (mounted with ``discard``), restores right after deleting the
    previous tree were several times slower in a trial, even after a ``sync``, which would time
    the deletion rather than the restore; a CI runner restores onto a disk with no deletion of
    ours pending. (Restores onto this shared disk still vary a lot from run to run.)
    """
    disk = disk_dir(bench.work)
    trash = disk / "trash"
    trash.mkdir(parents=True, exist_ok=True)

    def aside(path: Path) -> None:
        if path.exists():
            path.rename(trash / f"{path.name}-{len(list(trash.iterdir()))}")

    probe = ["findmnt", "-n", "-o", "FSTYPE,OPTIONS", "--target", str(disk)]
    fstype, options = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.split()
    bench.facts["restore_disk"] = {"dir": str(disk), "fstype": fstype, "options": options}
    runs = min(bench.runs, bench.parts_runs)  # a disk restore of the full tree is slow
    workload = f"restore disk{tree.suffix}"
    return _restore(bench, tree, workload, ("s5cmd",), disk, sync=True, runs=runs, clear=aside)


def dir_upload(bench: Bench, inputs: Inputs) -> list[Measurement]:
    return _dir_upload(bench, main_tree(bench, inputs))


def dir_download(bench: Bench, inputs: Inputs) -> list[Measurement]:
    return _dir_download(bench, main_tree(bench, inputs))


def dir_upload_medium(bench: Bench, inputs: Inputs) -> list[Measurement]:
    return _dir_upload(bench, medium_tree(bench, inputs))


def dir_download_medium(bench: Bench, inputs: Inputs) -> list[Measurement]:
    return _dir_download(bench, medium_tree(bench, inputs))


def restore_disk(bench: Bench, inputs: Inputs) -> list[Measurement]:
    return _restore_disk(bench, main_tree(bench, inputs))


def restore_disk_medium(bench: Bench, inputs: Inputs) -> list[Measurement]:
    return _restore_disk(bench, medium_tree(bench, inputs))


# -- one large file ---------------------------------------------------------------------------


def file_upload(bench: Bench, inputs: Inputs) -> list[Measurement]:
    def key(tool: str, label: str) -> str:
        return f"file-up/{tool}/{label}"

    big = str(inputs.large)
    contenders = [
        Contender(
            "cacher",
            "cacher upload KEY FILE",
            bench.cacher_env(),
            lambda label: bench.cacher("upload", key("cacher", label), big),
        ),
        Contender(
            "s5cmd",
            "s5cmd cp FILE s3://B/KEY",
            bench.peer_env(),
            lambda label: bench.s5("cp", big, bench.url(key("s5cmd", label))),
        ),
        Contender(
            "aws",
            "aws s3 cp FILE s3://B/KEY",
            bench.peer_env(),
            lambda label: bench.aws("s3", "cp", "--only-show-errors", big, bench.url(key("aws", label))),
        ),
    ]
    return bench.compare("file upload", contenders)


def file_download(bench: Bench, inputs: Inputs) -> list[Measurement]:
    ours, theirs = "file-down/cacher", "file-down/peer"
    untimed(bench, bench.cacher("upload", "--force", ours, str(inputs.large)), bench.cacher_env())
    untimed(bench, bench.s5("cp", str(inputs.large), bench.url(theirs)), bench.peer_env())
    want_sha = sha256(inputs.large)

    def dest(tool: str) -> Path:
        return bench.scratch(f"file-down-{tool}.bin")

    def check(tool: str):  # type: ignore[no-untyped-def]
        def run(label: str) -> None:
            path = dest(tool)
            if path.stat().st_size != inputs.large_bytes:
                raise AssertionError(f"{tool} wrote {path.stat().st_size} bytes, not {inputs.large_bytes}")
            if label == "warmup" and sha256(path) != want_sha:
                raise AssertionError(f"{tool} wrote different bytes")
            path.unlink()

        return run

    contenders = [
        Contender(
            "cacher",
            "cacher download KEY DEST",
            bench.cacher_env(),
            lambda label: bench.cacher("download", ours, str(dest("cacher"))),
            check=check("cacher"),
        ),
        Contender(
            "s5cmd",
            "s5cmd cp s3://B/KEY DEST",
            bench.peer_env(),
            lambda label: bench.s5("cp", bench.url(theirs), str(dest("s5cmd"))),
            check=check("s5cmd"),
        ),
        Contender(
            "aws",
            "aws s3 cp s3://B/KEY DEST",
            bench.peer_env(),
            lambda label: bench.aws("s3", "cp", "--only-show-errors", bench.url(theirs), str(dest("aws"))),
            check=check("aws"),
        ),
    ]
    return bench.compare("file download", contenders)


# -- keys and start-up ------------------------------------------------------------------------


def key_tree(bench: Bench, inputs: Inputs) -> list[Measurement]:
    tree = inputs.keytree
    script = (
        f"cd {bench.q(tree)} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum"
    )
    contenders = [
        Contender(
            "cacher",
            "cacher key 'k/{hash}' --hash-from TREE",
            bench.cacher_env(),
            lambda label: bench.cacher("key", "k/{hash}", "--hash-from", str(tree)),
        ),
        Contender(
            "shell",
            "cd TREE && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum",
            bench.peer_env(),
            lambda label: shell(script),
        ),
    ]
    results = bench.compare("key", contenders)
    ours = bench.out("key", "cacher").read_text().strip()
    theirs = bench.out("key", "shell").read_text().split()[0]
    bench.facts["key_digest_matches_shell"] = ours == f"k/{theirs[:16]}"
    if ours != f"k/{theirs[:16]}":
        raise AssertionError(f"cacher key printed {ours}, the shell digest is {theirs}")
    return results
