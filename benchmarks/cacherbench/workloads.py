"""The workloads: cacher and its peers on the same inputs, in the same loop."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cacherbench.bench import Bench, Contender, Measurement, remove
from cacherbench.inputs import Inputs, TreeStats, build_big_inputs, tree_stats
from cacherbench.proc import measure_peaks, shell

ZSTD = "zstd -T0 -3"


def _tar_zstd(bench: Bench, tree: Path) -> str:
    return f"tar -C {bench.q(tree)} -cf - . | {ZSTD}"


def _check_tree(dest: Path, inputs: Inputs) -> None:
    got, want = tree_stats(dest), inputs.tree_stats
    if (got.files, got.bytes, got.symlinks) != (want.files, want.bytes, want.symlinks):
        raise AssertionError(f"restored tree {dest} differs from the input: {got} != {want}")


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _untimed(bench: Bench, argv: list[str], env: dict[str, str]) -> None:
    with open(bench.log("setup"), "ab") as log:
        subprocess.run(argv, env=env, check=True, stdout=log, stderr=log)


# -- directories ------------------------------------------------------------------------------


def dir_upload(bench: Bench, inputs: Inputs) -> list[Measurement]:
    def key(tool: str, label: str) -> str:
        return f"dir-up/{tool}/{label}.tar.zst"

    pipe = _tar_zstd(bench, inputs.tree)
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
    _untimed(bench, bench.cacher("dir", "upload", "--force", ours, str(inputs.tree)), bench.cacher_env())
    pipe = _tar_zstd(bench, inputs.tree)
    _untimed(bench, shell(f"{pipe} | {bench.q(bench.s5('pipe', bench.url(theirs)))}"), bench.peer_env())
    return ours, theirs


def dir_download(bench: Bench, inputs: Inputs) -> list[Measurement]:
    ours, theirs = _prepare_dir_objects(bench, inputs)

    def dest(tool: str) -> Path:
        return bench.scratch(f"dir-down-{tool}")

    def check(tool: str):  # type: ignore[no-untyped-def]
        def run(label: str) -> None:
            _check_tree(dest(tool), inputs)
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
    _untimed(bench, bench.cacher("upload", "--force", ours, str(inputs.large)), bench.cacher_env())
    _untimed(bench, bench.s5("cp", str(inputs.large), bench.url(theirs)), bench.peer_env())
    want_sha = _sha256(inputs.large)

    def dest(tool: str) -> Path:
        return bench.scratch(f"file-down-{tool}.bin")

    def check(tool: str):  # type: ignore[no-untyped-def]
        def run(label: str) -> None:
            path = dest(tool)
            if path.stat().st_size != inputs.large_bytes:
                raise AssertionError(f"{tool} wrote {path.stat().st_size} bytes, not {inputs.large_bytes}")
            if label == "warmup" and _sha256(path) != want_sha:
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


def startup(bench: Bench, inputs: Inputs) -> list[Measurement]:
    hit = "startup/hit"
    _untimed(bench, bench.cacher("upload", "--force", hit, str(inputs.onefile)), bench.cacher_env())
    one = str(inputs.onefile)
    cold = bench.scratch("cold-cache")

    def fresh_cache(label: str) -> None:
        remove(cold)
        cold.mkdir()

    cacher_env, peer_env = bench.cacher_env(), bench.peer_env()
    contenders = [
        Contender(
            "cacher --version", "cacher --version", cacher_env, lambda label: bench.cacher("--version")
        ),
        Contender(
            "cacher key",
            "cacher key x --hash-from FILE",
            cacher_env,
            lambda label: bench.cacher("key", "x", "--hash-from", one),
        ),
        Contender(
            "cacher key (cold entry-point cache)",
            "XDG_CACHE_HOME=<empty> cacher key x --hash-from FILE",
            cacher_env,
            lambda label: ["env", f"XDG_CACHE_HOME={cold}", *bench.cacher("key", "x", "--hash-from", one)],
            setup=fresh_cache,
        ),
        Contender(
            "cacher exists",
            "cacher exists KEY (a hit)",
            cacher_env,
            lambda label: bench.cacher("exists", hit),
        ),
        Contender("aws --version", "aws --version", peer_env, lambda label: bench.aws("--version")[:2]),
        Contender(
            "aws s3api head-object",
            "aws s3api head-object --bucket B --key KEY",
            peer_env,
            lambda label: bench.aws("s3api", "head-object", "--bucket", "bench", "--key", hit),
        ),
        Contender("s5cmd ls", "s5cmd ls s3://B/KEY", peer_env, lambda label: bench.s5("ls", bench.url(hit))),
    ]
    return bench.compare("startup", contenders)


# -- where the time goes ----------------------------------------------------------------------


def _local_archive(bench: Bench, inputs: Inputs) -> tuple[Path, str]:
    archive = bench.scratch("tree.tar.zst")
    if not archive.exists():
        with open(archive, "wb") as out:
            subprocess.run(shell(_tar_zstd(bench, inputs.tree)), stdout=out, check=True)
    key = "parts/tree.tar.zst"
    _untimed(bench, bench.s5("cp", str(archive), bench.url(key)), bench.peer_env())
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
            _check_tree(dest(tool), inputs)
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


# -- docker -----------------------------------------------------------------------------------


def docker_engine() -> str | None:
    """Why docker is skipped, or None when an engine answers."""
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return "skipped: no engine (neither DOCKER_HOST nor /var/run/docker.sock)"
    if not shutil.which("docker"):
        return "skipped: no docker CLI"
    probe = subprocess.run(["docker", "version"], capture_output=True, check=False)
    return None if probe.returncode == 0 else "skipped: the engine did not answer 'docker version'"


def docker(bench: Bench, inputs: Inputs) -> list[Measurement]:
    image = "cacher-bench:latest"
    env_extra = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
    ce, pe = {**bench.cacher_env(), **env_extra}, {**bench.peer_env(), **env_extra}
    importer = shell(f"tar -C {bench.q(inputs.tree)} -cf - . | docker import - {image}")
    _untimed(bench, importer, pe)

    def key(tool: str, label: str) -> str:
        return f"docker-up/{tool}/{label}.tar.zst"

    up = bench.compare(
        "docker upload",
        [
            Contender(
                "cacher",
                "cacher docker upload KEY IMAGE",
                ce,
                lambda label: bench.cacher("docker", "upload", key("cacher", label), image),
            ),
            Contender(
                "s5cmd",
                f"docker save IMAGE | {ZSTD} | s5cmd pipe s3://B/KEY",
                pe,
                lambda label: shell(
                    f"docker save {image} | {ZSTD} | "
                    f"{bench.q(bench.s5('pipe', bench.url(key('s5cmd', label))))}"
                ),
            ),
        ],
    )

    def drop_image(label: str) -> None:
        subprocess.run(["docker", "rmi", "-f", image], env=pe, capture_output=True, check=False)

    last = str(bench.runs)
    down = bench.compare(
        "docker download",
        [
            Contender(
                "cacher",
                "cacher docker download KEY IMAGE",
                ce,
                lambda label: bench.cacher("docker", "download", key("cacher", last), image),
                setup=drop_image,
            ),
            Contender(
                "s5cmd",
                "s5cmd cat s3://B/KEY | zstd -d | docker load",
                pe,
                lambda label: shell(
                    f"{bench.q(bench.s5('cat', bench.url(key('s5cmd', last))))} | zstd -d | docker load"
                ),
                setup=drop_image,
            ),
        ],
    )
    return up + down


# -- peak memory of a large artifact ----------------------------------------------------------


def _mib_label(n: int) -> str:
    return f"{n >> 30}g" if n >= 1 << 30 else f"{n >> 20}m"


class _RssRun:
    """One cacher command per kind and direction, each measured alone by VmHWM (proc.measure_peaks)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.measurements: list[Measurement] = []
        self.rows: list[dict[str, Any]] = []

    def run(self, kind: str, direction: str, display: str, argv: list[str], env: dict[str, str]) -> None:
        workload = f"rss {kind} {direction}"
        out = self.bench.out("rss", f"{kind}-{direction}")
        out.parent.mkdir(parents=True, exist_ok=True)
        peak = measure_peaks(argv, env, log=self.bench.log("rss"), stdout=out)
        doc = json.loads(out.read_text())
        sample = peak.sample
        self.measurements.append(Measurement(workload, "cacher", display, samples=[sample]))
        self.rows.append(
            {
                "kind": kind,
                "direction": direction,
                "command": display,
                "artifact_bytes": doc["raw_bytes"],
                "stored_bytes": doc["stored_bytes"],
                "codec": doc["codec"],
                "outcome": doc["outcome"],
                "peak_rss_mib": sample.max_rss_kib / 1024,
                "seconds": sample.seconds,
                "cpu_seconds": sample.cpu_seconds,
                "descendants": [asdict(p) for p in peak.descendants],
            }
        )
        print(
            f"bench: rss {kind} {direction}: {doc['raw_bytes'] / (1 << 20):.0f} MiB, "
            f"peak RSS {sample.max_rss_kib / 1024:.0f} MiB, {sample.seconds:.1f}s",
            flush=True,
        )


def _check_big_tree(dest: Path, want: TreeStats) -> None:
    got = tree_stats(dest)
    if (got.files, got.bytes, got.symlinks) != (want.files, want.bytes, want.symlinks):
        raise AssertionError(f"restored tree {dest} differs from the input: {got} != {want}")


def rss(bench: Bench, inputs: Inputs) -> list[Measurement]:
    """Peak RSS of cacher's own process moving one large artifact of each kind, up and down.

    One run each (memory, not time); downloads go to the scratch dir and are removed at once.
    """
    big = build_big_inputs(inputs)
    label = _mib_label(big.target_bytes)
    runs = _RssRun(bench)
    ce = bench.cacher_env()
    skipped: dict[str, str] = {}
    bench.facts["rss"] = {
        "target_bytes": big.target_bytes,
        "inputs": {
            "file_bytes": big.file_bytes,
            "file_copies": big.file_copies,
            "tree": asdict(big.tree_stats),
            "tree_copies": big.tree_copies,
        },
        "rows": runs.rows,
        "skipped": skipped,
    }

    # One file: the codec runs only when asked (a key's suffix picks one for archive kinds only).
    key = f"rss/file-{label}.zst"
    runs.run(
        "file",
        "upload",
        "cacher upload --codec zstd KEY.zst FILE",
        bench.cacher("upload", "--json", "--codec", "zstd", key, str(big.file)),
        ce,
    )
    dest = bench.scratch("rss-file.bin")
    try:
        runs.run(
            "file",
            "download",
            "cacher download KEY.zst DEST",
            bench.cacher("download", "--json", key, str(dest)),
            ce,
        )
        if dest.stat().st_size != big.file_bytes:
            raise AssertionError(f"cacher wrote {dest.stat().st_size} bytes, not {big.file_bytes}")
    finally:
        remove(dest)

    # A directory tree.
    key = f"rss/dir-{label}.tar.zst"
    runs.run(
        "dir",
        "upload",
        "cacher dir upload KEY.tar.zst DIR",
        bench.cacher("dir", "upload", "--json", key, str(big.tree)),
        ce,
    )
    dest = bench.scratch("rss-dir")
    remove(dest)
    try:
        runs.run(
            "dir",
            "download",
            "cacher dir download KEY.tar.zst DEST",
            bench.cacher("dir", "download", "--json", key, str(dest)),
            ce,
        )
        _check_big_tree(dest, big.tree_stats)
    finally:
        remove(dest)

    # A docker image of the tree, when an engine answers.
    why = docker_engine()
    if why:
        skipped["docker"] = why
        print(f"bench: rss docker {why}", flush=True)
        return runs.measurements
    image = f"cacherbench/rss:{label}"
    env_extra = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
    de = {**ce, **env_extra}

    def drop_image() -> None:
        subprocess.run(["docker", "rmi", "-f", image], env=de, capture_output=True, check=False)

    drop_image()
    _untimed(bench, shell(f"tar -C {bench.q(big.tree)} -cf - . | docker import - {image}"), de)
    key = f"rss/docker-{label}.tar.zst"
    try:
        runs.run(
            "docker",
            "upload",
            "cacher docker upload KEY.tar.zst IMAGE",
            bench.cacher("docker", "upload", "--json", key, image),
            de,
        )
        drop_image()
        runs.run(
            "docker",
            "download",
            "cacher docker download KEY.tar.zst IMAGE",
            bench.cacher("docker", "download", "--json", key, image),
            de,
        )
        subprocess.run(["docker", "image", "inspect", image], env=de, capture_output=True, check=True)
    finally:
        drop_image()
    return runs.measurements
