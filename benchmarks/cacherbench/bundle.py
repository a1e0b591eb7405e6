"""The CI install: cacher's one-directory bundle (``packaging/build-single-file.sh --onedir``,
docs/install.md), unpacked and run as a CI job would.

The bundle is built once per source state of the cacher being measured (a digest of what goes
into it at the commit, and of uncommitted changes to it) into ``benchmarks/.work/bundle/KEY/``, and
reused. Rows, all under the workload ``bundle``:

- ``tar -xzf``: unpacking the tarball into a fresh directory (on the disk under .work);
- ``cacher --version, first run``: the first run from that directory, with an empty HOME (no
  entry-point cache). Its files are still in the page cache from the unpacking: a fresh
  machine that unpacked them a moment before is in the same state;
- ``cacher --version`` and ``cacher key``: from a bundle unpacked once, warm.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

from cacherbench.bench import Bench, Contender, Measurement, Skipped, remove
from cacherbench.inputs import Inputs

WORKLOAD = "bundle"
BUILT_FROM = ("cacher", "packaging", "pyproject.toml", "requirements.lock")


def _cacher_repo(bench: Bench) -> Path:
    code = "import cacher, pathlib; print(pathlib.Path(cacher.__file__).resolve().parent.parent)"
    out = subprocess.run(
        [str(bench.cacher_python), "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )  # not from the current directory: python -c would import a checkout there first
    return Path(out.stdout.strip())


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout


def source_key(repo: Path) -> str:
    """A digest of what the bundle is built from: its files at the commit (so commits that
    change none of them share a build), and any uncommitted changes to them."""
    state = _git(repo, "ls-tree", "HEAD", "--", *BUILT_FROM)
    state += _git(repo, "diff", "HEAD", "--", *BUILT_FROM)
    state += _git(repo, "ls-files", "--others", "--exclude-standard", "--", *BUILT_FROM)
    return hashlib.sha256(state).hexdigest()[:16]


def ensure_bundle(bench: Bench) -> Path:
    """The bundle's tarball for the measured cacher: cached, or built now (when allowed)."""
    repo = _cacher_repo(bench)
    key = source_key(repo)
    base = bench.work / "bundle" / key
    found = sorted(base.glob("cacher-*-linux-x86_64.tar.gz"))
    if found:
        bench.facts.setdefault("bundle", {}).update({"source": key, "built_now": False})
        return found[0]
    if not bench.build_bundle:
        raise Skipped(
            f"not measured at this size: no bundle built yet for {key}, and building one takes "
            "PyInstaller about a minute (name `bundle` in --only to build it)"
        )
    probe = [str(bench.cacher_python), "-c", "import PyInstaller"]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        raise Skipped(f"not measured: no PyInstaller in {bench.cacher_python}'s environment")
    script = repo / "packaging" / "build-single-file.sh"
    env = {
        **os.environ,
        "CACHER_BUILD_PYTHON": str(bench.cacher_python),
        "CACHER_BUILD_DIR": str(bench.work / "bundle" / "build"),
    }
    print(f"bench: building the one-directory bundle of {key} ({script})", flush=True)
    started = time.monotonic()
    with open(bench.log("bundle-build"), "ab") as log:
        out = subprocess.run(
            [str(script), "--onedir", str(base)], env=env, stdout=subprocess.PIPE, stderr=log, check=True
        )
    tarball = Path(out.stdout.decode().strip().splitlines()[-1])
    bench.facts.setdefault("bundle", {}).update(
        {"source": key, "built_now": True, "build_s": round(time.monotonic() - started, 1)}
    )
    return tarball


def bundle(bench: Bench, inputs: Inputs) -> list[Measurement]:
    tarball = ensure_bundle(bench)
    bench.facts["bundle"].update({"tarball": tarball.name, "bytes": tarball.stat().st_size})
    root = bench.work / "bundle-run"
    fresh, warm, fresh_home = root / "fresh", root / "warm", root / "fresh-home"
    remove(warm)
    warm.mkdir(parents=True)
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(warm)], check=True)
    env = bench.cacher_env()
    first_env = {
        **env,
        "HOME": str(fresh_home),
        "XDG_CONFIG_HOME": str(fresh_home / ".config"),
        "XDG_CACHE_HOME": str(fresh_home / ".cache"),
        "XDG_DATA_HOME": str(fresh_home / ".local/share"),
    }

    def unpack_into_fresh(label: str) -> None:
        remove(fresh)
        remove(fresh_home)
        fresh.mkdir(parents=True)
        fresh_home.mkdir()

    def says_version(tool: str):  # type: ignore[no-untyped-def]
        def run(label: str) -> None:
            text = bench.out(WORKLOAD, tool).read_text()
            if not text.startswith("cacher "):
                raise AssertionError(f"{tool} printed {text[:80]!r}")

        return run

    one = str(inputs.onefile)
    contenders = [
        Contender(
            "tar -xzf",
            f"tar -xzf {tarball.name} -C DIR",
            env,
            lambda label: ["tar", "-xzf", str(tarball), "-C", str(fresh)],
            setup=unpack_into_fresh,
        ),
        Contender(
            "cacher --version, first run",
            "DIR/cacher/cacher --version (first run after unpacking, empty HOME)",
            first_env,
            lambda label: [str(fresh / "cacher" / "cacher"), "--version"],
            check=says_version("cacher --version, first run"),
        ),
        Contender(
            "cacher --version",
            "DIR/cacher/cacher --version",
            env,
            lambda label: [str(warm / "cacher" / "cacher"), "--version"],
            check=says_version("cacher --version"),
        ),
        Contender(
            "cacher key",
            "DIR/cacher/cacher key x --hash-from FILE",
            env,
            lambda label: [str(warm / "cacher" / "cacher"), "key", "x", "--hash-from", one],
        ),
    ]
    try:
        return bench.compare(WORKLOAD, contenders)
    finally:
        remove(root)
