"""The GitHub Action's install, timed: its main step (``dist/main.js`` under node, as
tests/action/test_github_action.py runs it) restoring a small tree on a cache hit, on a fresh runner.

A fresh runner has an empty tool cache, an empty HOME and no cacher on PATH; the rows differ in
how the Action gets cacher (issue 26):

- from the Action's checkout with pip (PATH: python3, node, git: what a hosted runner has);
- from the checkout with uv (the same, and uv);
- from the one-directory bundle by URL (``cacher-url`` + ``cacher-sha256``, served over
  loopback HTTP; PATH: node, tar, gzip, no Python);
- on a runner whose tool cache already holds the install (the checkout's, and the bundle's);

and beside them ``cacher paths download`` alone, run by the same installed cacher with the
environment the Action gives it: the same hit, the reference for what the Action adds. The
checkout is ``git archive HEAD`` of the project (as ``uses: OWNER/REPO/integrations/github@REF``
checks it out); the bundle is bundle.py's, built from the measured cacher. Package downloads of
the cold pip and uv installs go to the package index from an empty cache, every run.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cacherbench.bench import BUCKET, REGION, SYSTEM_PATH, Bench, Contender, Measurement, Skipped, remove
from cacherbench.bundle import ensure_bundle
from cacherbench.common import check_tree, untimed
from cacherbench.inputs import Inputs, TreeStats, tree_stats

WORKLOAD = "action install"
KEY = "action-install-v1"
PATH_INPUT = "deps"
REF, DEFAULT_BRANCH = "bench/action", "main"
TREE_FILES, TREE_BYTES = 400, 4 << 20
INSTALLING = "cacher is not on PATH: installing"
REPO = Path(__file__).resolve().parents[2]
ENV = shutil.which("env", path=SYSTEM_PATH) or "/usr/bin/env"  # by path: PATH is the runner's
#: Certificates for the package index: the registry mirror here answers with its own CA.
PASSED_ON = ("SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")

PIP, UV = "action, pip from the checkout (cold)", "action, uv from the checkout (cold)"
BUNDLE = "action, bundle by URL (cold)"
WARM, WARM_BUNDLE = "action, warm tool cache (checkout install)", "action, warm tool cache (bundle)"
REF_CHECKOUT, REF_BUNDLE = "cacher paths download (checkout install)", "cacher paths download (bundle)"


@dataclass
class Runner:
    """One variant's runner: its tool cache, HOME, workspace, temp dir and the step's files."""

    root: Path
    bin_dir: Path
    inputs: dict[str, str]

    @property
    def tools(self) -> Path:
        return self.root / "toolcache"

    @property
    def workspace(self) -> Path:
        return self.root / "work" / "repo"

    def fresh(self, *, tool_cache: bool) -> None:
        """Empty HOME, temp dir, step files and workspace (and tool cache, for a cold run)."""
        for name in ("home", "temp", "work", *(("toolcache",) if tool_cache else ())):
            remove(self.root / name)
        for d in (self.root / "home", self.root / "temp" / "step", self.workspace, self.tools):
            d.mkdir(parents=True, exist_ok=True)
        for name in ("output", "state", "env"):
            (self.root / "temp" / "step" / name).touch()
        event = {"repository": {"default_branch": DEFAULT_BRANCH}}
        (self.root / "temp" / "step" / "event.json").write_text(json.dumps(event))

    def env(self, action: Path) -> dict[str, str]:
        """The runner's contract for a JavaScript action's step, with the action's inputs."""
        step = self.root / "temp" / "step"
        env = {
            "PATH": str(self.bin_dir),
            "HOME": str(self.root / "home"),
            "LANG": "C.UTF-8",
            **{name: os.environ[name] for name in PASSED_ON if name in os.environ},
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_REF_NAME": REF,
            "GITHUB_REF_TYPE": "branch",
            "GITHUB_EVENT_PATH": str(step / "event.json"),
            "GITHUB_OUTPUT": str(step / "output"),
            "GITHUB_STATE": str(step / "state"),
            "GITHUB_ENV": str(step / "env"),
            "GITHUB_ACTION_PATH": str(action),
            "RUNNER_TEMP": str(self.root / "temp"),
            "RUNNER_TOOL_CACHE": str(self.tools),
        }
        for name, value in {**action_defaults(action), **self.inputs}.items():
            env[f"INPUT_{name.upper()}"] = value
        return env

    def cacher_env(self, bench: Bench) -> dict[str, str]:
        """What the Action gives cacher on this runner (common.js's cacherEnv)."""
        return {
            "PATH": str(self.bin_dir),
            "HOME": str(self.root / "home"),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.root / "temp"),
            "CACHER_ENDPOINT": bench.endpoint,
            "CACHER_BUCKET": BUCKET,
            "CACHER_REGION": REGION,
            "CACHER_S3_KEY_ID": bench.key_id,
            "CACHER_S3_SECRET": bench.secret,
            "CACHER_SCOPE": REF,
            "CACHER_FALLBACK_SCOPES": DEFAULT_BRANCH,
            "CACHER_SOFT_FAIL": "1",
        }

    def installed(self) -> Path | None:
        """The cacher program of the one install in the tool cache, if there is one."""
        found = [*self.tools.glob("cacher/*/bin/cacher"), *self.tools.glob("cacher/*/cacher/cacher")]
        return found[0] if len(found) == 1 else None


def action_defaults(action: Path) -> dict[str, str]:
    """Every input with a default in action.yml, as the runner sets them."""
    import yaml  # type: ignore[import-untyped]  # the dev extra's (mkdocs)

    spec = yaml.safe_load((action / "action.yml").read_text())
    return {name: str(s["default"]) for name, s in (spec.get("inputs") or {}).items() if s and "default" in s}


def output(runner: Runner, name: str) -> str | None:
    """One output of the step's GITHUB_OUTPUT file (``name<<DELIM`` records, as core writes them)."""
    text = (runner.root / "temp" / "step" / "output").read_text()
    found = re.search(rf"^{re.escape(name)}<<(\S+)\n(.*?)\n\1$", text, re.M | re.S)
    return found.group(2) if found else None


def small_tree(inputs: Inputs, dest: Path) -> TreeStats:
    """The first files of the input tree (by sorted path), copied: at most TREE_FILES files and
    TREE_BYTES bytes, the same kind of files at every size."""
    remove(dest)
    files = sorted(p for p in inputs.tree.rglob("*") if p.is_file() and not p.is_symlink())
    total = 0
    for n, src in enumerate(files):
        size = src.stat().st_size
        if n >= TREE_FILES or total + size > TREE_BYTES:
            break
        total += size
        target = dest / src.relative_to(inputs.tree)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return tree_stats(dest)


def checkout(dest: Path) -> Path:
    """The repository at HEAD as the runner checks it out for the Action: the Action's directory."""
    remove(dest)
    dest.mkdir(parents=True)
    names = ["pyproject.toml", "README.md", "requirements-runtime.lock", "cacher", "integrations/github"]
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "HEAD", *names], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "integrations" / "github"


def bin_dir(dest: Path, names: list[str]) -> Path:
    """A PATH directory holding only ``names`` (symlinks to where this machine has them);
    python3 is the interpreter under cacher's venv, as a runner's setup-python gives one."""
    remove(dest)
    dest.mkdir(parents=True)
    for name in names:
        found = shutil.which(name, path=f"{Path(sys.executable).parent}:{SYSTEM_PATH}")
        if name == "python3":
            found = str(Path(sys.executable).resolve())  # the base interpreter, not the venv's
        if found is None:
            raise Skipped(f"not measured: no {name} on this machine")
        (dest / name).symlink_to(found)
    return dest


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """A loopback HTTP server for the files in ``directory``; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """No request log on stderr."""

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="action-install-http")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def action_install(bench: Bench, inputs: Inputs) -> list[Measurement]:
    if not bench.build_bundle:
        raise Skipped(
            "not measured at this size: each cold install takes pip tens of seconds "
            "(name `action-install` in --only)"
        )
    tarball = ensure_bundle(bench)
    root = bench.work / "action-install"
    remove(root)
    try:
        return _measure(bench, inputs, tarball, root)
    finally:
        remove(root)


def _measure(bench: Bench, inputs: Inputs, tarball: Path, root: Path) -> list[Measurement]:
    action = checkout(root / "checkout")
    tree = root / "tree"
    stats = small_tree(inputs, tree / PATH_INPUT)
    www = root / "www"
    www.mkdir()
    shutil.copy(tarball, www / tarball.name)
    sha = hashlib.sha256((www / tarball.name).read_bytes()).hexdigest()
    node = shutil.which("node", path=SYSTEM_PATH)
    if node is None:
        raise Skipped("not measured: node is not installed (the Debian package nodejs)")
    hosted = bin_dir(root / "bin-hosted", ["python3", "node", "git"])
    with_uv = bin_dir(root / "bin-uv", ["python3", "node", "git", "uv"])
    no_python = bin_dir(root / "bin-bundle", ["node", "tar", "gzip"])
    store = {
        "path": PATH_INPUT,
        "key": KEY,
        "endpoint": bench.endpoint,
        "bucket": BUCKET,
        "region": REGION,
        "access-key-id": bench.key_id,
        "secret-access-key": bench.secret,
    }
    with serve(www) as base:
        by_url = {**store, "cacher-url": f"{base}/{tarball.name}", "cacher-sha256": sha}
        runners = {
            PIP: Runner(root / "pip", hosted, store),
            UV: Runner(root / "uv", with_uv, store),
            BUNDLE: Runner(root / "bundle", no_python, by_url),
            WARM: Runner(root / "warm", hosted, store),
            WARM_BUNDLE: Runner(root / "warm-bundle", no_python, by_url),
        }
        # The entry to hit, stored as the Action's post step stores it (same scope, same paths).
        seed = runners[WARM]
        seed.fresh(tool_cache=True)
        shutil.copytree(tree / PATH_INPUT, seed.workspace / PATH_INPUT)
        upload = [ENV, "-C", str(seed.workspace),
                  *bench.cacher("paths", "upload", "--force", "--", KEY, PATH_INPUT)]
        untimed(bench, upload, {**seed.cacher_env(bench), "PATH": SYSTEM_PATH})
        contenders = [
            _action(bench, PIP, runners[PIP], action, node, stats, cold=True),
            _action(bench, UV, runners[UV], action, node, stats, cold=True),
            _action(bench, BUNDLE, runners[BUNDLE], action, node, stats, cold=True),
            _action(bench, WARM, runners[WARM], action, node, stats, cold=False, fill_from=runners[PIP]),
            _reference(bench, REF_CHECKOUT, runners[WARM], stats),
            _action(bench, WARM_BUNDLE, runners[WARM_BUNDLE], action, node, stats, cold=False,
                    fill_from=runners[BUNDLE]),
            _reference(bench, REF_BUNDLE, runners[WARM_BUNDLE], stats),
        ]
        measured = bench.compare(WORKLOAD, contenders)
    bench.facts["action_install"] = {
        "tree": {"files": stats.files, "bytes": stats.bytes, "dirs": stats.dirs},
        "bundle": {"name": tarball.name, "bytes": tarball.stat().st_size},
        "node": subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip(),
        "checkout": "git archive HEAD",
        "disk": str(root),
    }
    return measured


def _action(
    bench: Bench,
    tool: str,
    runner: Runner,
    action: Path,
    node: str,
    stats: TreeStats,
    *,
    cold: bool,
    fill_from: Runner | None = None,
) -> Contender:
    """The Action's main step on ``runner``: a cold install each run, or the install kept."""

    def setup(label: str) -> None:
        runner.fresh(tool_cache=cold)
        if fill_from is not None and runner.installed() is None:
            # The install a cold run just made, renamed into this runner's tool cache, as the
            # Action renames each build into place.
            remove(runner.tools / "cacher")
            shutil.move(fill_from.tools / "cacher", runner.tools / "cacher")

    def check(label: str) -> None:
        log = bench.out(WORKLOAD, tool).read_text()
        hit = output(runner, "cache-hit")
        if hit != "true":
            raise AssertionError(f"{tool}: cache-hit is {hit!r}, not 'true':\n{log[-2000:]}")
        if (INSTALLING in log) != cold:
            raise AssertionError(f"{tool}: expected {'an' if cold else 'no'} install:\n{log[-2000:]}")
        if runner.installed() is None:
            raise AssertionError(f"{tool}: no single install in {runner.tools}")
        check_tree(runner.workspace / PATH_INPUT, stats)

    argv = [ENV, "-C", str(runner.workspace), node, str(action / "dist" / "main.js")]
    shown = "node dist/main.js " + ("(empty tool cache)" if cold else "(the tool cache holds the install)")
    return Contender(tool, shown, runner.env(action), lambda label: argv, setup=setup, check=check)


def _reference(bench: Bench, tool: str, runner: Runner, stats: TreeStats) -> Contender:
    """``cacher paths download`` alone on ``runner``, by the cacher its tool cache holds."""

    def argv(label: str) -> list[str]:
        cacher = runner.installed()
        if cacher is None:
            raise AssertionError(f"{tool}: no install in {runner.tools}")
        download = ["paths", "download", "--json", "--", KEY, PATH_INPUT]  # as the Action runs it
        return [ENV, "-C", str(runner.workspace), str(cacher), *download]

    check: Callable[[str], None] = lambda label: check_tree(runner.workspace / PATH_INPUT, stats)  # noqa: E731
    return Contender(
        tool,
        "cacher paths download --json -- KEY deps (the Action's environment, its installed cacher)",
        runner.cacher_env(bench),
        argv,
        setup=lambda label: runner.fresh(tool_cache=False),
        check=check,
    )
