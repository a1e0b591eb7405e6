"""The transfer workloads: directories and one large file up and down, and `cacher key` of a tree."""

from __future__ import annotations

from pathlib import Path

from cacherbench.bench import Bench, Contender, Measurement, remove
from cacherbench.common import ZSTD, check_tree, sha256, tar_zstd, untimed
from cacherbench.inputs import Inputs
from cacherbench.proc import shell

# -- directories ------------------------------------------------------------------------------


def dir_upload(bench: Bench, inputs: Inputs) -> list[Measurement]:
    def key(tool: str, label: str) -> str:
        return f"dir-up/{tool}/{label}.tar.zst"

    pipe = tar_zstd(bench, inputs.tree)
    contenders = [
        Contender(
            "cacher",
            "cacher dir upload KEY DIR",
            bench.cacher_env(),
            lambda label: bench.cacher("dir", "upload", key("cacher", label), str(inputs.tree)),
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
    results = bench.compare("dir upload", contenders)
    bench.facts["dir_stored_bytes"] = {
        tool: bench.object_size(key(tool, str(bench.runs))) for tool in ("cacher", "s5cmd", "aws")
    }
    return results


def _prepare_dir_objects(bench: Bench, inputs: Inputs) -> tuple[str, str]:
    ours, theirs = "dir-down/cacher.tar.zst", "dir-down/peer.tar.zst"
    untimed(bench, bench.cacher("dir", "upload", "--force", ours, str(inputs.tree)), bench.cacher_env())
    pipe = tar_zstd(bench, inputs.tree)
    untimed(bench, shell(f"{pipe} | {bench.q(bench.s5('pipe', bench.url(theirs)))}"), bench.peer_env())
    return ours, theirs


def dir_download(bench: Bench, inputs: Inputs) -> list[Measurement]:
    ours, theirs = _prepare_dir_objects(bench, inputs)

    def dest(tool: str) -> Path:
        return bench.scratch(f"dir-down-{tool}")

    def check(tool: str):  # type: ignore[no-untyped-def]
        def run(label: str) -> None:
            check_tree(dest(tool), inputs.tree_stats)
            remove(dest(tool))

        return run

    def mkdir(tool: str):  # type: ignore[no-untyped-def]
        return lambda label: dest(tool).mkdir()

    untar = "zstd -d | tar -C {} -xf -"
    contenders = [
        Contender(
            "cacher",
            "cacher dir download KEY DEST",
            bench.cacher_env(),
            lambda label: bench.cacher("dir", "download", ours, str(dest("cacher"))),
            check=check("cacher"),
        ),
        Contender(
            "s5cmd",
            "s5cmd cat s3://B/KEY | zstd -d | tar -C DEST -xf -",
            bench.peer_env(),
            lambda label: shell(
                f"{bench.q(bench.s5('cat', bench.url(theirs)))} | " + untar.format(bench.q(dest("s5cmd")))
            ),
            setup=mkdir("s5cmd"),
            check=check("s5cmd"),
        ),
        Contender(
            "aws",
            "aws s3 cp s3://B/KEY - | zstd -d | tar -C DEST -xf -",
            bench.peer_env(),
            lambda label: shell(
                f"{bench.q(bench.aws('s3', 'cp', bench.url(theirs), '-'))} | "
                + untar.format(bench.q(dest("aws")))
            ),
            setup=mkdir("aws"),
            check=check("aws"),
        ),
    ]
    for tool in ("cacher", "s5cmd", "aws"):
        remove(dest(tool))
    return bench.compare("dir download", contenders)


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
