"""Trees that real toolchains make round-trip through the installed `cacher`, byte for byte.

Each tree is made here by the real tool, uploaded, deleted, restored to the same path (venv
scripts and links name their own path) and then used: a Python venv made by ``python -m venv``
with wheels installed by its own pip, whose python and console script run after the restore; a
node project installed by npm and a pnpm workspace, whose restored ``node_modules`` hold links
that lead out of the cached directory, required from with ``node -e``; and a Go module cache
(0555 directories, 0444 files). Every tree is compared before and after: contents, modes,
modification times, link targets, hardlinks and empty directories. Each runs on the local file
store and on SeaweedFS.

npm and pnpm fetch from the npm registry: those tests have generous timeouts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cacher.fs.staging import force_rmtree
from cacher.testing.fixtures import require_part
from cacher.testing.parts import PartUnavailable
from cacher.testing.tools import find_tool
from tests.fault_proxy import leftovers
from tests.trees import snapshot

NETWORK_TIMEOUT = 600  # npm registry round trips, on a shared 2-core machine
PNPM = "pnpm@12"


def round_trip(cacher: Any, store_env: dict[str, str], key: str, tree: Path) -> dict[str, tuple[Any, ...]]:
    """Upload ``tree``, delete it, restore it to the same path; the restored tree must equal
    the original. Returns the snapshot."""
    before = snapshot(tree)
    run = cacher("dir", "upload", key, str(tree), extra_env=store_env)
    assert run.code == 0, run
    force_rmtree(tree)
    assert not tree.exists()
    run = cacher("dir", "download", key, str(tree), extra_env=store_env)
    assert run.code == 0, run
    assert "hit, restored" in run.err, run
    assert snapshot(tree) == before
    assert leftovers(tree.parent) == []
    return before


def run_tool(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> str:
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def tool(name: str) -> str:
    try:
        return find_tool(name)
    except PartUnavailable as exc:
        require_part(exc.reason)
        raise  # not reached: require_part skips or fails


# -- Python: a venv with wheels installed by its own pip ----------------------------------------


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(
    out: Path,
    name: str,
    files: dict[str, str],
    requires: tuple[str, ...] = (),
    scripts: dict[str, str] | None = None,
) -> Path:
    """A pure-Python wheel, written by hand (the format is a zip with a dist-info directory)."""
    dist = f"{name}-1.0.dist-info"
    contents = dict(files)
    contents[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    contents[f"{dist}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: cacher-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if scripts:
        contents[f"{dist}/entry_points.txt"] = "[console_scripts]\n" + "".join(
            f"{k} = {v}\n" for k, v in scripts.items()
        )
    record = "".join(
        f"{path},{_record_hash(text.encode())},{len(text.encode())}\n" for path, text in contents.items()
    )
    contents[f"{dist}/RECORD"] = record + f"{dist}/RECORD,,\n"
    wheel = out / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in contents.items():
            zf.writestr(path, text)
    return wheel


def test_python_venv_round_trips_and_runs(
    cacher: Any, env: dict[str, str], store_env: dict[str, str], tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, "tinydep", {"tinydep/__init__.py": "VALUE = 'from tinydep'\n"})
    build_wheel(
        wheels,
        "tinyhello",
        {
            "tinyhello/__init__.py": "import tinydep\n\ndef main():\n    print('hello', tinydep.VALUE)\n",
            "tinyhello/sub/__init__.py": "",
            "tinyhello/sub/data.txt": "package data\n",
        },
        requires=("tinydep",),
        scripts={"tinyhello": "tinyhello:main"},
    )
    venv = tmp_path / "project" / "venv"
    run_tool([sys.executable, "-m", "venv", str(venv)], env, tmp_path, timeout=300)
    py = venv / "bin" / "python"
    run_tool(
        [str(py), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels), "tinyhello"],
        env,
        tmp_path,
        timeout=300,
    )
    assert run_tool([str(venv / "bin" / "tinyhello")], env, tmp_path) == "hello from tinydep\n"
    # Every venv has links out of itself: the interpreter, by an absolute path.
    links = {p.name: os.readlink(p) for p in (venv / "bin").iterdir() if p.is_symlink()}
    assert any(os.path.isabs(t) for t in links.values()), links

    before = round_trip(cacher, store_env, "venv.tar.zst", venv)

    assert before["bin/python"][0] == "link"
    assert all(os.readlink(venv / "bin" / name) == target for name, target in links.items())
    prefix = run_tool([str(py), "-c", "import sys, tinyhello.sub; print(sys.prefix)"], env, tmp_path)
    assert prefix.strip() == str(venv)
    assert run_tool([str(venv / "bin" / "tinyhello")], env, tmp_path) == "hello from tinydep\n"
    assert (venv / "lib").is_dir() and run_tool([str(py), "-m", "pip", "--version"], env, tmp_path)


# -- node: npm and pnpm -----------------------------------------------------------------------


def node_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with node on PATH (npm's ``.bin`` shims start with ``#!/usr/bin/env node``)."""
    node_dir = os.path.dirname(tool("node"))
    return {**env, "PATH": f"{node_dir}{os.pathsep}{env['PATH']}", "npm_config_update_notifier": "false"}


def npm_run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """An npm/pnpm command that needs the registry: a failure to reach it is a missing part."""
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=NETWORK_TIMEOUT)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        if any(
            word in text for word in ("ENOTFOUND", "ECONNREFUSED", "ETIMEDOUT", "EAI_AGAIN", "ECONNRESET")
        ):
            require_part(f"the npm registry is not reachable: {text.strip().splitlines()[-1]}")
        raise AssertionError(f"{args}: exit {proc.returncode}\n{text}")
    return proc.stdout


def write_package(directory: Path, manifest: str, files: dict[str, str]) -> None:
    directory.mkdir(parents=True)
    (directory / "package.json").write_text(manifest)
    for name, text in files.items():
        (directory / name).write_text(text)
        if text.startswith("#!"):
            (directory / name).chmod(0o755)


def test_npm_project_round_trips_and_requires(
    cacher: Any, env: dict[str, str], store_env: dict[str, str], tmp_path: Path
) -> None:
    """``node_modules`` as npm makes it: a registry package, and a local package whose link
    (``node_modules/localpkg -> ../../localpkg``) and bin link lead out of the cached directory."""
    nenv = node_env(env)
    write_package(
        tmp_path / "localpkg",
        '{"name": "localpkg", "version": "1.0.0", "main": "index.js", "bin": {"localcli": "cli.js"}}',
        {
            "index.js": 'module.exports = "local here";\n',
            "cli.js": '#!/usr/bin/env node\nconsole.log("localcli ran");\n',
        },
    )
    project = tmp_path / "proj"
    write_package(project, '{"name": "proj", "version": "1.0.0", "private": true}', {})
    npm_run(
        [tool("npm"), "install", "--no-audit", "--no-fund", "is-number@7.0.0", "../localpkg"], nenv, project
    )
    modules = project / "node_modules"
    assert os.readlink(modules / "localpkg") == "../../localpkg"

    before = round_trip(cacher, store_env, "npm/node_modules.tar.zst", modules)

    assert before["localpkg"] == ("link", "../../localpkg") and before[".bin/localcli"][0] == "link"
    out = run_tool(
        [
            tool("node"),
            "-e",
            "console.log(require('is-number')(5), require('is-number')('x'), require('localpkg'))",
        ],
        nenv,
        project,
    )
    assert out == "true false local here\n"
    assert run_tool([str(modules / ".bin" / "localcli")], nenv, project) == "localcli ran\n"


@pytest.fixture(scope="session")
def pnpm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """pnpm, installed by npm into a temporary prefix (once per session)."""
    prefix = tmp_path_factory.mktemp("pnpm")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHER_", "AWS_", "XDG_"))}
    env.update(
        HOME=str(prefix / "home"), PATH=f"{os.path.dirname(tool('node'))}{os.pathsep}{env.get('PATH', '')}"
    )
    npm_run([tool("npm"), "install", "--no-audit", "--no-fund", "--prefix", str(prefix), PNPM], env, prefix)
    path = prefix / "node_modules" / ".bin" / "pnpm"
    assert path.exists(), list((prefix / "node_modules" / ".bin").iterdir())
    return str(path)


def test_pnpm_workspace_round_trips_and_requires(
    cacher: Any, env: dict[str, str], store_env: dict[str, str], tmp_path: Path, pnpm: str
) -> None:
    """A pnpm workspace: the root ``node_modules/.pnpm`` (files hardlinked from pnpm's store
    outside it) and a package's ``node_modules``, whose every entry is a link out of it
    (``is-number -> ../../../node_modules/.pnpm/...``, ``b -> ../../b``)."""
    nenv = node_env(env)
    ws = tmp_path / "ws"
    write_package(
        ws,
        '{"name": "ws", "version": "1.0.0", "private": true}',
        {"pnpm-workspace.yaml": "packages:\n  - 'packages/*'\n"},
    )
    write_package(
        ws / "packages" / "b",
        '{"name": "b", "version": "1.0.0", "main": "index.js", "bin": {"bcli": "cli.js"}}',
        {
            "index.js": 'module.exports = "b here";\n',
            "cli.js": '#!/usr/bin/env node\nconsole.log("bcli ran");\n',
        },
    )
    a = ws / "packages" / "a"
    write_package(
        a, '{"name": "a", "version": "1.0.0", "dependencies": {"b": "workspace:*", "is-number": "7.0.0"}}', {}
    )
    npm_run([pnpm, "install"], nenv, ws)
    assert os.readlink(a / "node_modules" / "b") == "../../b"
    assert os.readlink(a / "node_modules" / "is-number").startswith("../../../node_modules/.pnpm/")

    root_modules = round_trip(cacher, store_env, "pnpm/root.tar.zst", ws / "node_modules")
    a_modules = round_trip(cacher, store_env, "pnpm/a.tar.zst", a / "node_modules")

    assert any(rel.startswith(".pnpm/is-number@7.0.0/") for rel in root_modules)
    assert {a_modules["b"], a_modules["is-number"]} == {
        ("link", "../../b"),
        ("link", os.readlink(a / "node_modules" / "is-number")),
    }
    out = run_tool([tool("node"), "-e", "console.log(require('is-number')(7), require('b'))"], nenv, a)
    assert out == "true b here\n"
    assert run_tool([str(a / "node_modules" / ".bin" / "bcli")], nenv, a) == "bcli ran\n"


# -- Go: a module cache, read-only ------------------------------------------------------------


def make_go_modcache(mod: Path) -> None:
    """``$GOMODCACHE`` as ``go mod download`` leaves it: the download cache (writable) and each
    extracted module read-only, 0555 directories and 0444 files, empty directories included."""
    dl = mod / "cache" / "download" / "golang.org" / "x" / "text" / "@v"
    dl.mkdir(parents=True)
    for name, data in {
        "list": b"v0.14.0\n",
        "v0.14.0.info": b'{"Version":"v0.14.0","Time":"2023-10-11T17:56:43Z"}',
        "v0.14.0.mod": b"module golang.org/x/text\n\ngo 1.18\n",
        "v0.14.0.zip": os.urandom(20_000),
        "v0.14.0.ziphash": b"h1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=",
        "v0.14.0.lock": b"",
    }.items():
        (dl / name).write_bytes(data)
    (mod / "cache" / "download" / "sumdb" / "sum.golang.org" / "lookup").mkdir(parents=True)
    module = mod / "golang.org" / "x" / "text@v0.14.0"
    for rel, data in {
        "go.mod": b"module golang.org/x/text\n",
        "LICENSE": b"BSD\n",
        "unicode/norm/normalize.go": b"package norm\n" * 200,
        "unicode/norm/tables.go": os.urandom(50_000),
        "cmd/gotext/main.go": b"package main\nfunc main() {}\n",
        "internal/testtext/gen.sh": b"#!/bin/sh\necho gen\n",
    }.items():
        (module / rel).parent.mkdir(parents=True, exist_ok=True)
        (module / rel).write_bytes(data)
    (module / "testdata" / "empty").mkdir(parents=True)
    for dirpath, _dirnames, filenames in os.walk(module, topdown=False):
        for name in filenames:
            p = Path(dirpath) / name
            p.chmod(0o555 if name.endswith(".sh") else 0o444)
        Path(dirpath).chmod(0o555)
    for d in (module.parent, module.parent.parent):
        d.chmod(0o555)


def test_go_module_cache_round_trips_read_only(
    cacher: Any, store_env: dict[str, str], tmp_path: Path
) -> None:
    mod = tmp_path / "go" / "pkg" / "mod"
    make_go_modcache(mod)
    before = round_trip(cacher, store_env, "go-mod.tar.zst", mod)
    assert before["golang.org/x/text@v0.14.0/testdata/empty"][:2] == ("dir", 0o555)
    assert before["golang.org/x/text@v0.14.0/go.mod"][:2] == ("file", 0o444)
    # Again, over the read-only tree it restored.
    run = cacher("dir", "download", "go-mod.tar.zst", str(mod), extra_env=store_env)
    assert run.code == 0, run
    assert snapshot(mod) == before
    assert leftovers(mod.parent) == []
