"""Benchmark inputs, built from the package registries (no data is committed).

- ``tree``: a real dependency tree, ``uv pip install --target`` of pinned packages.
- ``large.tar``: several real wheels (``pip download --no-deps``) in one uncompressed tar.
- ``keytree``: the first N files of ``tree`` (by sorted path), hardlinked, for ``cacher key``.
- ``onefile``: one small file, for the start-up commands.
- ``medium/``: a medium tree (``full`` only; the smaller sizes use ``tree``), built on first use
  (`build_medium_inputs`).
- ``rss/``: the large artifacts of the ``rss`` workload, made from the above on first use
  (`build_big_inputs`): ``large.tar`` concatenated, and copies of ``tree``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from cacherbench.peers import Peers, uv_path

# The awscli dependencies: already in uv's cache once the peers venv exists.
TINY_PACKAGES = (
    "six==1.17.0",
    "jmespath==1.1.0",
    "python-dateutil==2.9.0.post0",
    "docutils==0.19",
    "pyasn1==0.6.5",
    "rsa==4.7.2",
    "colorama==0.4.6",
    "pyyaml==6.0.4",
    "urllib3==2.8.0",
)
SMALL_PACKAGES = ("numpy==2.4.6", "botocore==1.44.8", "sympy==1.14.0")
FULL_PACKAGES = (
    "numpy==2.4.6",
    "pandas==3.1.1",
    "scipy==1.17.1",
    "sympy==1.14.0",
    "botocore==1.44.8",
    "pyarrow==26.0.1",
    "matplotlib==3.11.2",
    "scikit-learn==1.9.1",
    "plotly==7.1.0",
    "jupyterlab==4.6.6",
    "mypy==2.4.1",
    "babel==2.19.0",
)
FULL_WHEELS = (
    "jaxlib==0.10.2",
    "llvmlite==0.50.0",
    "opencv-python-headless==5.0.0.93",
    "pyarrow==26.0.1",
    "scipy==1.17.1",
    "numpy==2.4.6",
    "pandas==3.1.1",
)


@dataclass(frozen=True)
class SizeSpec:
    """What one ``--size`` builds, and how many timed runs it makes by default."""

    name: str
    packages: tuple[str, ...]
    compile_bytecode: bool
    wheels: tuple[str, ...]
    key_files: int
    runs: int


SIZES = {
    "tiny": SizeSpec(
        "tiny", TINY_PACKAGES, False, ("six==1.17.0", "jmespath==1.1.0", "docutils==0.19"), 3000, 1
    ),
    "small": SizeSpec("small", SMALL_PACKAGES, True, ("numpy==2.4.6", "pandas==3.1.1"), 30000, 5),
    "full": SizeSpec("full", FULL_PACKAGES, True, FULL_WHEELS, 30000, 5),
}

# The medium tree of the ``*-medium`` workloads ("small caches are the common case"), with
# bytecode: ~324 MB in ~13,600 files. Built on first use into inputs/full/medium; the smaller
# sizes use their own tree as its stand-in.
MEDIUM_PACKAGES = {"full": ("pandas==3.1.1", "sympy==1.14.0", "botocore==1.44.8", "plotly==7.1.0")}

# Artifact size of the ``rss`` workload: the 2 GiB of the requirement at full size, scaled down
# for the smoke runs.
RSS_TARGET_BYTES = {"tiny": 20 << 20, "small": 200 << 20, "full": 2 << 30}


@dataclass(frozen=True)
class TreeStats:
    files: int
    dirs: int
    symlinks: int
    bytes: int


@dataclass(frozen=True)
class Inputs:
    size: str
    tree: Path
    tree_stats: TreeStats
    large: Path
    large_bytes: int
    wheels: list[str]
    keytree: Path
    keytree_stats: TreeStats
    onefile: Path
    packages: list[str]


def tree_stats(root: Path) -> TreeStats:
    """Regular files, directories, symlinks and the bytes of the regular files under root."""
    files = dirs = links = size = 0
    for top, dirnames, filenames in os.walk(root):
        dirs += len(dirnames)
        for name in filenames:
            st = os.lstat(os.path.join(top, name))
            if os.path.islink(os.path.join(top, name)):
                links += 1
            else:
                files += 1
                size += st.st_size
    return TreeStats(files, dirs, links, size)


def _install_tree(packages: tuple[str, ...], compile_bytecode: bool, peers: Peers, dest: Path) -> None:
    uv = uv_path()
    flags = ["--compile-bytecode"] if compile_bytecode else []
    if uv:
        cmd = [uv, "pip", "install", "-q", "--python", str(peers.python), *flags, "--target", str(dest)]
    else:
        cmd = [str(peers.python), "-m", "pip", "install", "-q", "--target", str(dest)]
        cmd += [] if compile_bytecode else ["--no-compile"]
    subprocess.run([*cmd, *packages], check=True)


def _download_wheels(spec: SizeSpec, peers: Peers, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(peers.python),
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(dest),
        *spec.wheels,
    ]
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)


def _tar_wheels(wheels: Path, out: Path) -> None:
    """One deterministic, uncompressed tar of the wheels (they are zip files: already compressed)."""
    cmd = [
        "tar",
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--mtime=@0",
        "-cf",
        str(out),
        "-C",
        str(wheels),
        ".",
    ]
    subprocess.run(cmd, check=True)


def _sorted_files(root: Path) -> list[str]:
    out = []
    for top, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(top, name)
            if not os.path.islink(path):
                out.append(os.path.relpath(path, root))
    return out


def _make_keytree(tree: Path, dest: Path, count: int) -> None:
    """Hardlink ``count`` files of tree into dest, replicating the tree if it has fewer."""
    files = _sorted_files(tree)
    copy = 0
    made = 0
    while made < count:
        for rel in files[: count - made]:
            target = dest / f"copy{copy}" / rel if copy else dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(tree / rel, target)
        made += min(len(files), count - made)
        copy += 1


def _installed(tree: Path) -> list[str]:
    names = sorted(p.name[: -len(".dist-info")] for p in tree.glob("*.dist-info"))
    return [n.replace("-", "==", 1) for n in names]


def build_inputs(spec: SizeSpec, peers: Peers, work: Path) -> Inputs:
    """Build (or reuse, when the spec is unchanged) the inputs of one size under work/inputs."""
    base = work / "inputs" / spec.name
    stamp = base / "spec.json"
    wanted = json.dumps(asdict(spec), sort_keys=True)
    if not (stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        print(f"bench: building the {spec.name} inputs in {base}", flush=True)
        _install_tree(spec.packages, spec.compile_bytecode, peers, base / "tree")
        _download_wheels(spec, peers, base / "wheels")
        _tar_wheels(base / "wheels", base / "large.tar")
        _make_keytree(base / "tree", base / "keytree", spec.key_files)
        (base / "onefile.txt").write_text("one small input file for cacher key\n")
        stamp.write_text(wanted)
    large = base / "large.tar"
    return Inputs(
        size=spec.name,
        tree=base / "tree",
        tree_stats=tree_stats(base / "tree"),
        large=large,
        large_bytes=large.stat().st_size,
        wheels=sorted(p.name for p in (base / "wheels").iterdir()),
        keytree=base / "keytree",
        keytree_stats=tree_stats(base / "keytree"),
        onefile=base / "onefile.txt",
        packages=_installed(base / "tree"),
    )


@dataclass(frozen=True)
class BigInputs:
    """The ``rss`` workload's artifacts, each of at least ``target_bytes``."""

    target_bytes: int
    file: Path
    file_bytes: int
    file_copies: int
    tree: Path
    tree_stats: TreeStats
    tree_copies: float


def _concatenate(src: Path, out: Path, target: int) -> int:
    """Write src again and again into out until it holds at least target bytes; the copies."""
    copies = 0
    with open(out, "wb") as dst:
        while dst.tell() < target:
            with open(src, "rb") as f:
                shutil.copyfileobj(f, dst, 1 << 20)
            copies += 1
    return copies


def _copy_tree(src: Path, dest: Path, src_bytes: int, target: int) -> None:
    """Whole copies of src (real copies, no hardlinks) under dest, then as many of its files
    (sorted) as it takes to reach at least target bytes of file data."""
    dest.mkdir(parents=True)
    done = copy = 0
    while done + src_bytes <= target:
        shutil.copytree(src, dest / f"copy{copy}", symlinks=True)
        done += src_bytes
        copy += 1
    files = iter(_sorted_files(src))
    while done < target:
        rel = next(files)
        target_path = dest / f"copy{copy}" / rel
        target_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target_path)
        done += target_path.stat().st_size


def build_big_inputs(inputs: Inputs) -> BigInputs:
    """Build (or reuse) the ``rss`` artifacts of the inputs' size under work/inputs/SIZE/rss."""
    target = RSS_TARGET_BYTES[inputs.size]
    base = inputs.tree.parent / "rss"
    stamp = base / "spec.json"
    wanted = json.dumps(
        {"target": target, "large_bytes": inputs.large_bytes, "tree": asdict(inputs.tree_stats)},
        sort_keys=True,
    )
    if not (stamp.exists() and json.loads(stamp.read_text()).get("spec") == wanted):
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        print(f"bench: building the rss inputs ({target >> 20} MiB each) in {base}", flush=True)
        copies = _concatenate(inputs.large, base / "large.tar", target)
        _copy_tree(inputs.tree, base / "tree", inputs.tree_stats.bytes, target)
        stamp.write_text(json.dumps({"spec": wanted, "file_copies": copies}))
    made = json.loads(stamp.read_text())
    stats = tree_stats(base / "tree")
    return BigInputs(
        target_bytes=target,
        file=base / "large.tar",
        file_bytes=(base / "large.tar").stat().st_size,
        file_copies=made["file_copies"],
        tree=base / "tree",
        tree_stats=stats,
        tree_copies=round(stats.bytes / inputs.tree_stats.bytes, 2),
    )


@dataclass(frozen=True)
class MediumInputs:
    """The medium tree: its own install at ``full``, else a stand-in (the size's own tree)."""

    tree: Path
    tree_stats: TreeStats
    requested: list[str]
    packages: list[str]
    stand_in: bool


def build_medium_inputs(inputs: Inputs, peers: Peers) -> MediumInputs:
    """Build (or reuse) the medium tree of the inputs' size under work/inputs/SIZE/medium."""
    requested = MEDIUM_PACKAGES.get(inputs.size)
    if not requested:
        return MediumInputs(inputs.tree, inputs.tree_stats, [], inputs.packages, True)
    base = inputs.tree.parent / "medium"
    stamp = base / "spec.json"
    wanted = json.dumps({"packages": requested, "compile_bytecode": True})
    if not (stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        print(f"bench: building the medium tree in {base}", flush=True)
        _install_tree(requested, True, peers, base / "tree")
        stamp.write_text(wanted)
    tree = base / "tree"
    return MediumInputs(tree, tree_stats(tree), list(requested), _installed(tree), False)
