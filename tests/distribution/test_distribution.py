"""The distribution: the single-file executable, wheel installs (uv tool, pipx), the version.

The single file is built once per session by packaging/build-single-file.sh (PyInstaller),
or taken from ``CACHER_SINGLE_FILE`` when an earlier step of the same run built it. Every
built or installed `cacher` runs with an empty environment, as ``env -i`` gives it: no PATH,
no virtual environment, only HOME and the XDG directories, pointed at temporary directories.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import cacher
from cacher.cli import KEY_DEPENDENCIES
from tests.conftest import assert_one_error_line, tree_files, unavailable

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "packaging" / "build-single-file.sh"
LOCK = ROOT / "requirements.lock"
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
VENV_BIN = Path(sys.executable).parent
# The build takes about a minute on two cores; the default per-test timeout is 300 s.
BUILD_TIMEOUT = 900


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class Bare:
    """Runs one executable the way ``env -i HOME=… XDG_…=… EXE ARGS`` would."""

    def __init__(self, exe: Path, home: Path) -> None:
        self.exe = exe
        self.home = home
        for sub in (".cache", ".config"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        self.env = {
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_CONFIG_HOME": str(home / ".config"),
        }

    def __call__(self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        proc = subprocess.run(
            [str(self.exe), *args],
            env={**self.env, **(extra_env or {})},
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


def installer_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment (proxies, CA bundles, index settings) with a fresh HOME.

    Package caches stay the real ones, so a rerun does not download everything again.
    """
    real_home = Path.home()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CACHER_", "XDG_", "VIRTUAL_ENV", "UV_TOOL", "PIPX_"))
        and k not in ("HOME", "PYTHONHOME", "PYTHONPATH")
    }
    env.update(
        HOME=str(home),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        UV_CACHE_DIR=os.environ.get("UV_CACHE_DIR", str(real_home / ".cache" / "uv")),
        PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(real_home / ".cache" / "pip")),
        UV_PYTHON_DOWNLOADS="never",
    )
    env.update(extra)
    return env


def expected_version_text() -> tuple[str, list[str]]:
    """First line of ``cacher --version`` and the ``NAME VERSION`` parts of the second."""
    deps = [f"{dist} {metadata.version(dist)}" for dist in KEY_DEPENDENCIES]
    return f"cacher {cacher.__version__}", deps


def check_version(run: Result) -> None:
    assert run.code == 0, run
    first, deps = expected_version_text()
    lines = run.out.splitlines()
    assert len(lines) == 2, run
    assert lines[0] == first, run
    parts = lines[1].split(", ")
    assert parts[:-1] == deps, run
    assert parts[-1].startswith("python 3.11."), run
    assert run.err == "", run


def check_key(run_cacher: Any, work: Path) -> None:
    """`cacher key` digests equal `sha256sum FILE | cut -c1-16`, with and without a template."""
    lock = work / "go.sum"
    lock.write_text("example.com/mod v1.2.3 h1:abcdef=\n")
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    coreutils = subprocess.run(["sha256sum", str(lock)], capture_output=True, text=True, check=True)
    assert coreutils.stdout[:16] == digest
    run = run_cacher("key", "go-mod/{hash}.tar.zst", "--hash-from", str(lock))
    assert (run.code, run.out) == (0, f"go-mod/{digest}.tar.zst\n"), run
    run = run_cacher("key", "img/build.tar.zst", "--hash-from", str(lock))
    assert (run.code, run.out) == (0, f"img/build-{digest}.tar.zst\n"), run


# --- the single file ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def single_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-file `cacher`: CACHER_SINGLE_FILE if set, else built once for the session."""
    given = os.environ.get("CACHER_SINGLE_FILE")
    if given:
        path = Path(given).resolve()
        assert path.is_file() and os.access(path, os.X_OK), f"CACHER_SINGLE_FILE={given} is not an executable"
        return path
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        unavailable("PyInstaller is not installed in this environment (it is in the dev extra)")
    if shutil.which("strip") is None or shutil.which("objdump") is None:
        unavailable("binutils (strip, objdump) are missing; PyInstaller needs them")
    out = tmp_path_factory.mktemp("single-file")
    env = {**os.environ, "CACHER_BUILD_PYTHON": sys.executable, "CACHER_BUILD_DIR": str(out / "work")}
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(out / "dist")],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT - 60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"build failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}"
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path == out / "dist" / "cacher", proc.stdout
    assert path.is_file() and os.access(path, os.X_OK)
    assert "cacher 0" in proc.stderr and "sha256 " in proc.stderr, proc.stderr
    return path


@pytest.fixture
def bare(single_file: Path, tmp_path: Path) -> Bare:
    return Bare(single_file, tmp_path / "home")


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_single_file_is_one_self_contained_executable(single_file: Path) -> None:
    head = single_file.read_bytes()[:4]
    assert head == b"\x7fELF", "not an ELF executable"
    size = single_file.stat().st_size
    # Measured 16.6 MiB (docs/install.md); the untrimmed build was 50 MiB.
    assert 8 << 20 < size < 30 << 20, size
    # Nothing outside the file: no sibling directory of libraries (one-dir builds have _internal/).
    assert not (single_file.parent / "_internal").exists()


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_single_file_version(bare: Bare) -> None:
    check_version(bare("--version"))
    assert bare("-V").out == bare("--version").out


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_single_file_key(bare: Bare, tmp_path: Path) -> None:
    check_key(bare, tmp_path)


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_single_file_round_trip_on_the_file_backend(bare: Bare, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    store = ["--backend", "file", "--bucket", str(bucket)]
    artifact = tmp_path / "artifact.bin"
    data = os.urandom(3 << 20) + b"tail"
    artifact.write_bytes(data)

    run = bare("upload", "tools/a.bin", str(artifact), *store)
    assert run.code == 0, run
    assert (bucket / "tools" / "a.bin").read_bytes() == data
    assert bare("exists", "tools/a.bin", *store).code == 0
    assert bare("exists", "tools/missing", *store).code == 1
    dest = tmp_path / "out" / "a.bin"
    dest.parent.mkdir()
    run = bare("download", "tools/a.bin", str(dest), *store)
    assert run.code == 0, run
    assert dest.read_bytes() == data
    run = bare("download", "tools/missing", str(tmp_path / "out" / "x"), *store)
    assert run.code == 3, run
    assert not (tmp_path / "out" / "x").exists()

    # A directory through zstd: the compiled zstandard extension works inside the bundle.
    tree = tmp_path / "deps"
    (tree / "pkg" / "sub").mkdir(parents=True)
    (tree / "pkg" / "a.txt").write_text("alpha\n")
    (tree / "pkg" / "sub" / "blob.bin").write_bytes(os.urandom(1 << 20))
    key = "deps/abc.tar.zst"
    run = bare("dir", "download", key, str(tmp_path / "restored"), *store)
    assert run.code == 3, run
    run = bare("dir", "upload", key, str(tree), *store)
    assert run.code == 0, run
    assert (bucket / "deps" / "abc.tar.zst").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # zstd magic
    run = bare("dir", "download", key, str(tmp_path / "restored"), *store)
    assert run.code == 0, run
    assert tree_files(tmp_path / "restored") == tree_files(tree)

    run = bare("list", *store)
    assert (run.code, run.out.split()) == (0, ["deps/abc.tar.zst", "tools/a.bin"]), run


# --- the one-directory bundle (the CI install) -------------------------------------------------


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The executable of the one-directory bundle, built once and extracted from its tarball."""
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        unavailable("PyInstaller is not installed in this environment (it is in the dev extra)")
    out = tmp_path_factory.mktemp("bundle")
    env = {**os.environ, "CACHER_BUILD_PYTHON": sys.executable, "CACHER_BUILD_DIR": str(out / "work")}
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--onedir", str(out / "dist")],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT - 60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"build failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}"
    tarball = Path(proc.stdout.strip().splitlines()[-1])
    assert tarball.name == f"cacher-{cacher.__version__}-linux-x86_64.tar.gz", tarball
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        assert {"cacher/cacher", "cacher/_internal"} <= set(names), names[:20]
        assert all(n == "cacher" or n.startswith("cacher/") for n in names)
        assert {m.mtime for m in tar.getmembers()} == {0}, "the tarball is not reproducible"
    # GNU tar, not tarfile.extractall(filter=...): the filters need Python 3.11.4, the floor is 3.11.2.
    (out / "installed").mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(out / "installed")], check=True)
    return out / "installed" / "cacher" / "cacher"


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_bundle_runs_from_its_directory_with_nothing_else(bundle: Path, tmp_path: Path) -> None:
    """The CI install: extracted once, started with no Python and no unpacking into $TMPDIR."""
    bare = Bare(bundle, tmp_path / "home")
    check_version(bare("--version"))
    check_key(bare, tmp_path)
    bucket = tmp_path / "bucket"
    tree = tmp_path / "deps"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "a.txt").write_text("alpha\n")
    store = ["--backend", "file", "--bucket", str(bucket)]
    assert bare("dir", "upload", "deps.tar.zst", str(tree), *store).code == 0
    run = bare("dir", "download", "deps.tar.zst", str(tmp_path / "restored"), *store)
    assert run.code == 0, run
    assert tree_files(tmp_path / "restored") == tree_files(tree)


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_single_file_default_store_and_usage_errors(bare: Bare, tmp_path: Path) -> None:
    """No configuration: the local cache under XDG_CACHE_HOME; a typo is exit 2, not a miss."""
    artifact = tmp_path / "a.txt"
    artifact.write_text("x")
    run = bare("upload", "k", str(artifact))
    assert run.code == 0, run
    assert "no configuration, using the local cache" in run.err
    assert (bare.home / ".cache" / "cacher" / "k").read_text() == "x"
    run = bare("no-such-command")
    assert run.code == 2, run
    assert_one_error_line(run)
    run = bare("--help")
    assert run.code == 0 and "Usage: cacher" in run.out, run


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_single_file_plugins_and_no_entry_point_cache_litter(single_file: Path, tmp_path: Path) -> None:
    """Built-in plugins come from the bundled entry points; stevedore writes no cache file.

    stevedore skips its cache for executables under /tmp, so the copy runs from outside it.
    """
    outside = ROOT / "build" / f"test-single-file-{uuid.uuid4().hex[:8]}"
    outside.mkdir(parents=True)
    try:
        exe = outside / "cacher"
        shutil.copy2(single_file, exe)
        bare = Bare(exe, tmp_path / "home")
        run = bare("plugins")
        assert run.code == 0, run
        rows = {tuple(line.split()[:2]) for line in run.out.splitlines()}
        for row in (
            [("kind", k) for k in ("dir", "docker", "file", "url")]
            + [("codec", c) for c in ("gzip", "none", "zstd")]
            + [("key", k) for k in ("arch", "env", "hash", "os")]
        ):
            assert row in rows, run
        assert "ci-cacher" in run.out and "BROKEN" not in run.out, run
        run = bare("key", "a/{os}-{arch}")
        assert (run.code, run.out) == (0, "a/linux-amd64\n"), run
        cache = bare.home / ".cache" / "python-entrypoints"
        assert not cache.exists() or list(cache.iterdir()) == [], sorted(cache.iterdir())
    finally:
        shutil.rmtree(outside)


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_single_file_url_fallback(bare: Bare, http: Any, tmp_path: Path) -> None:
    """A miss with --url fetches over HTTP (aiohttp inside the bundle) and stores the file."""
    data = os.urandom(1 << 20)
    url = http.put("go.tar.gz", data)
    store = ["--backend", "file", "--bucket", str(tmp_path / "bucket")]
    dest = tmp_path / "go.tar.gz"
    sha = hashlib.sha256(data).hexdigest()
    run = bare("download", "go.tar.gz", str(dest), "--url", url, "--sha256", sha, *store)
    assert run.code == 0, run
    assert dest.read_bytes() == data
    assert bare("exists", "go.tar.gz", *store).code == 0


@pytest.mark.timeout(BUILD_TIMEOUT)
@pytest.mark.s3
def test_single_file_s3_round_trip(bare: Bare, seaweed_s3: Any, s3_bucket: str, tmp_path: Path) -> None:
    """botocore's S3 data survived the trimming: multipart upload, HEAD, GET, list, delete."""
    env = {
        "CACHER_ENDPOINT": seaweed_s3.endpoint,
        "CACHER_BUCKET": s3_bucket,
        "CACHER_S3_KEY_ID": seaweed_s3.key_id,
        "CACHER_S3_SECRET": seaweed_s3.secret,
        "CACHER_PREFIX": "single",
    }
    data = os.urandom(6 << 20) + b"end"
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(data)
    run = bare("upload", "a.bin", str(artifact), extra_env={**env, "CACHER_PART_SIZE_MB": "5"})
    assert run.code == 0, run
    assert seaweed_s3.get_bytes(s3_bucket, "single/a.bin") == data
    assert bare("exists", "a.bin", extra_env=env).code == 0
    assert bare("exists", "nope", extra_env=env).code == 1
    dest = tmp_path / "back.bin"
    run = bare("download", "a.bin", str(dest), extra_env=env)
    assert run.code == 0, run
    assert dest.read_bytes() == data
    run = bare("list", extra_env=env)
    assert (run.code, run.out.split()) == (0, ["a.bin"]), run
    assert bare("delete", "a.bin", extra_env=env).code == 0
    run = bare("doctor", extra_env=env)
    assert run.code == 0 and "canary written, read back and deleted" in run.err, run


# --- wheel installs ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from this tree by `uv build` with the dev environment's hatchling."""
    uv = VENV_BIN / "uv"
    if not uv.exists():
        unavailable("uv is not installed in this environment (it is in the dev extra)")
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            str(uv),
            "build",
            "--wheel",
            "--no-build-isolation",
            "--python",
            sys.executable,
            "--out-dir",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    wheels = sorted(out.glob("*.whl"))
    assert [w.name for w in wheels] == [f"ci_cacher-{cacher.__version__}-py3-none-any.whl"], proc.stderr
    return wheels[0]


def test_wheel_metadata_version_and_entry_points(wheel: Path) -> None:
    """The version has one home (cacher/__init__.py); the wheel registers the command and plugins."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"]
    assert "version" not in pyproject["project"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "cacher/__init__.py"
    with zipfile.ZipFile(wheel) as zf:
        info = f"ci_cacher-{cacher.__version__}.dist-info"
        meta = zf.read(f"{info}/METADATA").decode()
        eps = zf.read(f"{info}/entry_points.txt").decode()
        names = zf.namelist()
    assert f"\nVersion: {cacher.__version__}\n" in meta
    assert "cacher = cacher.cli:main" in eps
    for group in ("[cacher.kinds]", "[cacher.keys]", "[cacher.codecs]"):
        assert group in eps
    assert "cacher/py.typed" in names
    assert not any(n.startswith(("tests/", "plugins/", "docs/", "packaging/")) for n in names)


@pytest.fixture(scope="session")
def uv_tool_cacher(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`uv tool install WHEEL` into temporary UV_TOOL_DIR/UV_TOOL_BIN_DIR, pinned by the lock."""
    base = tmp_path_factory.mktemp("uv-tool")
    tools, bin_dir = base / "tools", base / "bin"
    env = installer_env(base / "home", UV_TOOL_DIR=str(tools), UV_TOOL_BIN_DIR=str(bin_dir))
    uv = str(VENV_BIN / "uv")
    proc = subprocess.run(
        [uv, "tool", "install", "--python", str(BASE_PYTHON), "--constraints", str(LOCK), str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0 and "error sending request" in proc.stderr:
        unavailable(f"uv tool install cannot reach the package index: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr
    assert "Installed 1 executable: cacher" in proc.stderr, proc.stderr
    listed = subprocess.run([uv, "tool", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and f"ci-cacher v{cacher.__version__}" in listed.stdout, listed
    yield bin_dir / "cacher"
    proc = subprocess.run([uv, "tool", "uninstall", "ci-cacher"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not (bin_dir / "cacher").exists()


def test_uv_tool_install(uv_tool_cacher: Path, tmp_path: Path) -> None:
    bare = Bare(uv_tool_cacher, tmp_path / "home")
    check_version(bare("--version"))
    check_key(bare, tmp_path)
    # The tool's environment is its own, not the one running the tests.
    assert not str(uv_tool_cacher.resolve()).startswith(str(VENV_BIN.parent))
    artifact = tmp_path / "a.txt"
    artifact.write_text("via uv tool")
    store = ["--backend", "file", "--bucket", str(tmp_path / "bucket")]
    assert bare("upload", "k", str(artifact), *store).code == 0
    run = bare("download", "k", str(tmp_path / "back.txt"), *store)
    assert run.code == 0, run
    assert (tmp_path / "back.txt").read_text() == "via uv tool"


@pytest.mark.timeout(900)
def test_pipx_install(wheel: Path, tmp_path: Path) -> None:
    """`pipx install WHEEL` into temporary PIPX_HOME/PIPX_BIN_DIR, pinned by the lock."""
    try:
        import pipx  # noqa: F401
    except ImportError:
        unavailable("pipx is not installed in this environment (it is in the dev extra)")
    base = tmp_path / "pipx"
    bin_dir = base / "bin"
    env = installer_env(
        tmp_path / "installer-home",
        PIPX_HOME=str(base / "home"),
        PIPX_BIN_DIR=str(bin_dir),
        PIPX_MAN_DIR=str(base / "man"),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipx",
            "install",
            "--python",
            str(BASE_PYTHON),
            f"--pip-args=-c {LOCK}",
            str(wheel),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert f"installed package ci-cacher {cacher.__version__}" in proc.stdout, proc.stdout
    bare = Bare(bin_dir / "cacher", tmp_path / "home")
    check_version(bare("--version"))
    check_key(bare, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pipx", "uninstall", "ci-cacher"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (bin_dir / "cacher").exists()


# --- release hygiene ---------------------------------------------------------------------------


def test_dev_cacher_version_names_key_dependencies(cacher: Any) -> None:
    """The installed console script: `cacher --version` is the version and its key libraries."""
    run = cacher("--version")
    check_version(Result(run.code, run.out, run.err))


def test_changelog_has_a_section_for_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com" in text
    assert f"## [{cacher.__version__}]" in text
    section = text.split(f"## [{cacher.__version__}]", 1)[1].split("\n## [", 1)[0]
    assert "### Added" in section and section.count("\n- ") >= 10
