"""The GitHub Action in integrations/github/, run under the runner's contract against SeaweedFS.

Each step runs the committed bundle (``dist/*.js``) with the real node, the way the runner
runs a JavaScript action: inputs as ``INPUT_<NAME>`` variables (every input with a default
in action.yml set to it), outputs and state written to the files named by ``GITHUB_OUTPUT``
and ``GITHUB_STATE``, the post step given the main step's state back as ``STATE_<name>``,
``GITHUB_ENV``, ``RUNNER_TEMP``, ``GITHUB_WORKSPACE`` (the step's working directory), and a
PATH whose first entry is the venv's bin, so the installed ``cacher`` is found.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cacher.kinds.paths import namespace_of
from cacher.testing.fixtures import require_part
from cacher.testing.parts import PartUnavailable
from cacher.testing.tools import find_tool

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "integrations" / "github"


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml comes with the dev environment (mkdocs)
        pytest.skip("pyyaml is not installed")
    return yaml


def action_yml(sub: str = "") -> dict[str, Any]:
    return _yaml().safe_load((ACTION / sub / "action.yml").read_text())


def tool(name: str) -> str:
    try:
        return find_tool(name)
    except PartUnavailable as exc:
        require_part(str(exc))
        raise


def parse_command_file(path: Path) -> dict[str, str]:
    """``name=value`` and ``name<<DELIM`` … ``DELIM`` records, as the runner reads them."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            j = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1 : j])
            i = j + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


@dataclass
class Step:
    code: int
    log: str
    outputs: dict[str, str]
    state: dict[str, str]

    def __str__(self) -> str:
        return f"exit {self.code}\noutputs {self.outputs}\nstate {self.state}\n--- log\n{self.log}"


@dataclass
class Runner:
    """One job's runner: its workspace, HOME, temp dir and environment."""

    env: dict[str, str]
    workspace: Path
    temp: Path
    ref: str = "feature/x"
    ref_type: str = "branch"
    default_branch: str = "main"
    steps: int = 0
    logs: list[str] = field(default_factory=list)
    #: The action's directory, as the runner checked it out (GITHUB_ACTION_PATH is under it).
    action: Path = ACTION

    def run(
        self,
        entry: str,
        inputs: Mapping[str, str],
        *,
        state: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        sub: str = "",
    ) -> Step:
        self.steps += 1
        files = self.temp / f"step{self.steps}"
        files.mkdir(parents=True)
        for name in ("output", "state", "env"):  # the runner creates them, empty, for each step
            (files / name).touch()
        event = files / "event.json"
        event.write_text(json.dumps({"repository": {"default_branch": self.default_branch}}))
        env = {
            **self.env,
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_REF_NAME": self.ref,
            "GITHUB_REF_TYPE": self.ref_type,
            "GITHUB_EVENT_PATH": str(event),
            "RUNNER_TEMP": str(self.temp),
            "GITHUB_OUTPUT": str(files / "output"),
            "GITHUB_STATE": str(files / "state"),
            "GITHUB_ENV": str(files / "env"),
            "GITHUB_ACTION_PATH": str(self.action / sub),
            **(extra_env or {}),
        }
        for name, spec in (action_yml(sub).get("inputs") or {}).items():
            if spec and "default" in spec:
                env[f"INPUT_{name.upper()}"] = str(spec["default"])
        for name, value in inputs.items():
            env[f"INPUT_{name.upper()}"] = value
        for name, value in (state or {}).items():
            env[f"STATE_{name}"] = value
        script = self.action / sub / action_yml(sub)["runs"][entry]
        proc = subprocess.run(
            [tool("node"), str(script.resolve())],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
        log = proc.stdout + proc.stderr
        self.logs.append(log)
        return Step(proc.returncode, log, parse_command_file(files / "output"), parse_command_file(files / "state"))

    def main(self, inputs: Mapping[str, str], **kw: Any) -> Step:
        return self.run("main", inputs, **kw)

    def post(self, inputs: Mapping[str, str], main: Step, **kw: Any) -> Step:
        return self.run("post", inputs, state=main.state, **kw)


@pytest.fixture
def runner(env: dict[str, str], tmp_path: Path) -> Runner:
    workspace = tmp_path / "work" / "repo"
    workspace.mkdir(parents=True)
    (tmp_path / "runner-temp").mkdir()
    return Runner(dict(env), workspace, tmp_path / "runner-temp")


@pytest.fixture
def store(seaweed_s3: Any, s3_bucket: str) -> dict[str, str]:
    """The store as inputs (credentials as inputs too)."""
    return {
        "endpoint": seaweed_s3.endpoint,
        "bucket": s3_bucket,
        "region": "us-east-1",
        "prefix": "proj",
        "access-key-id": seaweed_s3.key_id,
        "secret-access-key": seaweed_s3.secret,
    }


def make_deps(runner: Runner, home: Path, version: str = "1") -> None:
    deps = runner.workspace / "deps"
    (deps / "pkg").mkdir(parents=True, exist_ok=True)
    (deps / "pkg" / "index.js").write_text(f"version {version}\n")
    (home / ".toolcache").mkdir(exist_ok=True)
    (home / ".toolcache" / "blob").write_bytes(b"t" * 10_000 + version.encode())


def wipe(runner: Runner, home: Path) -> None:
    shutil.rmtree(runner.workspace / "deps", ignore_errors=True)
    shutil.rmtree(home / ".toolcache", ignore_errors=True)


PATH_INPUT = "deps\n~/.toolcache\n"
PATTERNS = ["deps", "~/.toolcache"]


def segment(scope: str) -> str:
    """Where a scope's objects live (docs/security.md): a clean slug as it is, any other name
    as its slug, "--" and 16 hex of the sha256 of the exact name."""
    made = re.sub(r"[^a-z0-9]+", "-", scope.lower())[:63].strip("-")
    if made == scope:
        return scope
    return f"{made[:45].rstrip('-')}--{hashlib.sha256(scope.encode()).hexdigest()[:16]}"


def stored_keys(seaweed_s3: Any, bucket: str) -> list[str]:
    return sorted(seaweed_s3.list_keys(bucket))


def error_lines(step: Step) -> int:
    """How many error annotations the step made (lines the runner reads as ``::error::``)."""
    return sum(line.startswith("::error::") for line in step.log.splitlines())


def assert_no_secret(runner: Runner, *secrets: str) -> None:
    """A secret appears only in ``::add-mask::`` commands, which the runner consumes."""
    for log in runner.logs:
        for line in log.splitlines():
            if line.startswith("::add-mask::"):
                continue
            for secret in secrets:
                assert secret not in line, f"secret in the log: {line!r}"


def test_miss_save_then_exact_hit_without_save(runner: Runner, store: dict[str, str], home: Path, seaweed_s3: Any, s3_bucket: str) -> None:
    make_deps(runner, home)
    inputs = {**store, "path": PATH_INPUT, "key": "deps-v1", "restore-keys": "deps-\n"}
    main = runner.main(inputs)
    assert main.code == 0, main
    assert main.outputs["cache-hit"] == "false"
    assert main.outputs["cache-primary-key"] == "deps-v1"
    assert "cache-matched-key" not in main.outputs
    assert "Cache not found for input keys: deps-v1, deps-" in main.log
    assert main.state["CACHE_KEY"] == "deps-v1"
    post = runner.post(inputs, main)
    assert post.code == 0, post
    assert "Cache saved with key: deps-v1" in post.log
    assert stored_keys(seaweed_s3, s3_bucket) == [f"proj/_scopes/{segment('feature/x')}/{namespace_of(PATTERNS)}/deps-v1"]

    wipe(runner, home)  # the next run of the job, on a fresh runner
    main = runner.main(inputs)
    assert main.code == 0, main
    assert (main.outputs["cache-hit"], main.outputs["cache-matched-key"]) == ("true", "deps-v1")
    assert (runner.workspace / "deps" / "pkg" / "index.js").read_text() == "version 1\n"
    assert (home / ".toolcache" / "blob").read_bytes().endswith(b"1")
    # No save after an exact hit: proved by a post step whose store is dead and may not fail.
    dead = {**inputs, "endpoint": f"http://127.0.0.1:{free_port()}", "soft-fail": "false"}
    post = runner.post(dead, main)
    assert post.code == 0, post
    assert "Cache hit occurred on the primary key deps-v1, not saving cache." in post.log
    assert stored_keys(seaweed_s3, s3_bucket) == [f"proj/_scopes/{segment('feature/x')}/{namespace_of(PATTERNS)}/deps-v1"]
    assert_no_secret(runner, store["secret-access-key"])


def test_partial_hit_from_restore_keys_and_the_default_branch(
    runner: Runner, store: dict[str, str], home: Path, seaweed_s3: Any, s3_bucket: str
) -> None:
    make_deps(runner, home, "main")
    runner.ref = "main"
    inputs = {**store, "path": PATH_INPUT, "key": "deps-v1", "restore-keys": "deps-"}
    main = runner.main(inputs)
    assert main.code == 0, main
    assert runner.post(inputs, main).code == 0

    wipe(runner, home)
    runner.ref = "123/merge"  # a pull request: its own scope, falling back to the default branch
    inputs = {**inputs, "key": "deps-v2"}
    main = runner.main(inputs)
    assert main.code == 0, main
    assert (main.outputs["cache-hit"], main.outputs["cache-matched-key"]) == ("false", "deps-v1")
    assert main.outputs["cache-primary-key"] == "deps-v2"
    assert "Cache restored from key: deps-v1" in main.log
    assert (runner.workspace / "deps" / "pkg" / "index.js").read_text() == "version main\n"
    post = runner.post(inputs, main)
    assert post.code == 0, post
    ns = namespace_of(PATTERNS)
    assert stored_keys(seaweed_s3, s3_bucket) == [
        f"proj/_scopes/{segment('123/merge')}/{ns}/deps-v2",
        f"proj/_scopes/main/{ns}/deps-v1",
    ]


def test_a_changed_path_list_is_a_miss(runner: Runner, store: dict[str, str], home: Path) -> None:
    make_deps(runner, home)
    inputs = {**store, "path": PATH_INPUT, "key": "deps-v1", "restore-keys": "deps-"}
    main = runner.main(inputs)
    assert runner.post(inputs, main).code == 0
    main = runner.main({**inputs, "path": "deps\n"})
    assert main.code == 0, main
    assert main.outputs["cache-hit"] == "false" and "cache-matched-key" not in main.outputs


def test_lookup_only_downloads_nothing(runner: Runner, store: dict[str, str], home: Path) -> None:
    make_deps(runner, home)
    inputs = {**store, "path": PATH_INPUT, "key": "deps-v1"}
    assert runner.post(inputs, runner.main(inputs)).code == 0
    wipe(runner, home)

    hit = runner.main({**inputs, "lookup-only": "true"})
    assert hit.code == 0, hit
    assert (hit.outputs["cache-hit"], hit.outputs["cache-matched-key"]) == ("true", "deps-v1")
    assert "Cache found and can be restored from key: deps-v1" in hit.log
    assert not (runner.workspace / "deps").exists()

    partial = runner.main({**inputs, "key": "deps-v9", "restore-keys": "nope-\ndeps-", "lookup-only": "true"})
    assert partial.code == 0, partial
    assert (partial.outputs["cache-hit"], partial.outputs["cache-matched-key"]) == ("false", "deps-v1")
    assert not (runner.workspace / "deps").exists()

    miss = runner.main({**inputs, "key": "other", "lookup-only": "true"})
    assert miss.code == 0, miss
    assert miss.outputs["cache-hit"] == "false" and "cache-matched-key" not in miss.outputs
    # lookup-only in another scope finds the object through the fallback scope
    runner.ref = "other-branch"
    runner.default_branch = "feature/x"
    fallback = runner.main({**inputs, "lookup-only": "true"})
    assert (fallback.outputs["cache-hit"], fallback.outputs["cache-matched-key"]) == ("true", "deps-v1")


def test_fail_on_cache_miss(runner: Runner, store: dict[str, str], home: Path) -> None:
    make_deps(runner, home)
    step = runner.main({**store, "path": PATH_INPUT, "key": "never-stored", "fail-on-cache-miss": "true"})
    assert step.code == 1, step
    assert "::error::Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: never-stored" in step.log
    assert (runner.workspace / "deps" / "pkg" / "index.js").read_text() == "version 1\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dead_store_soft_and_hard(runner: Runner, store: dict[str, str], home: Path) -> None:
    make_deps(runner, home)
    dead = {**store, "endpoint": f"http://127.0.0.1:{free_port()}", "path": PATH_INPUT, "key": "deps-v1"}
    quick = {"CACHER_MAX_ATTEMPTS": "1", "CACHER_CONNECT_TIMEOUT": "2"}
    main = runner.main(dead, extra_env=quick)
    assert main.code == 0, main  # soft failure by default, as actions/cache
    assert "::warning::" in main.log
    assert main.outputs["cache-hit"] == "false"
    post = runner.post(dead, main, extra_env=quick)
    assert post.code == 0, post
    assert "::warning::" in post.log
    assert (runner.workspace / "deps" / "pkg" / "index.js").read_text() == "version 1\n"

    hard = {**dead, "soft-fail": "false"}
    main = runner.main(hard, extra_env=quick)
    assert main.code == 1, main
    assert "::error::" in main.log
    post = runner.post(hard, main, extra_env=quick)
    assert post.code == 1, post
    assert "::error::" in post.log
    assert_no_secret(runner, store["secret-access-key"])


def test_secrets_from_the_environment_are_masked_and_never_logged(runner: Runner, seaweed_s3: Any, s3_bucket: str, home: Path) -> None:
    make_deps(runner, home)
    inputs = {"endpoint": seaweed_s3.endpoint, "bucket": s3_bucket, "path": PATH_INPUT, "key": "k"}
    creds = {"CACHER_S3_KEY_ID": seaweed_s3.key_id, "CACHER_S3_SECRET": seaweed_s3.secret}
    main = runner.main(inputs, extra_env=creds)
    assert main.code == 0, main
    assert f"::add-mask::{seaweed_s3.secret}" in main.log
    assert f"::add-mask::{seaweed_s3.key_id}" in main.log
    assert runner.post(inputs, main, extra_env=creds).code == 0
    # A wrong secret: the store refuses, the error is logged, the secret is not.
    wrong = {**creds, "CACHER_S3_SECRET": "wrong-" + uuid.uuid4().hex}
    step = runner.main({**inputs, "soft-fail": "false"}, extra_env=wrong)
    assert step.code == 1, step
    assert_no_secret(runner, seaweed_s3.secret, wrong["CACHER_S3_SECRET"], seaweed_s3.key_id)


#: What the runner reads as a workflow command right before the injected text: a line that
#: starts (after blanks) with `::name ...::`, or `##[name ...]` anywhere in it.
BARE_COMMAND = re.compile(r"^\s*::[A-Za-z-]+[^:]*::INJECTED|##\[[A-Za-z-]+[^\]]*\]INJECTED")


def test_user_text_never_issues_a_workflow_command(runner: Runner, store: dict[str, str], home: Path) -> None:
    """Keys, restore keys and paths reach the log (the action's lines and cacher's stderr):
    their CR/LF never start a line, and nothing in them is read as `::warning::` or `##[...]`.
    The access key id given as an input is masked as the secret is."""
    make_deps(runner, home)
    inputs = {
        **store,
        "path": "deps\n##[warning]INJECTED-path\n",
        "key": "k1\n::warning::INJECTED-key\r::error::INJECTED-cr",
        "restore-keys": "::warning::INJECTED-restore\n  ::notice::INJECTED-indented",
    }
    # A key with control characters is a usage error (the step fails, naming it escaped).
    bad = runner.main(inputs)
    assert bad.code == 1 and error_lines(bad) == 1, bad
    clean = {**inputs, "key": "k1::warning::INJECTED-clean"}
    main = runner.main(clean)
    assert main.code == 0, main
    assert main.outputs["cache-hit"] == "false"
    post = runner.post(clean, main)
    assert post.code == 0, post
    save = runner.run("main", {**inputs, "key": "k2\n::warning::INJECTED-save"}, sub="save")
    assert save.code == 1, save
    lookup = runner.main({**clean, "lookup-only": "true"})
    assert lookup.code == 0, lookup
    for log in runner.logs:
        assert "INJECTED" in log
        for line in log.replace("\r", "\n").splitlines():
            assert not BARE_COMMAND.search(line), f"a workflow command from user text: {line!r}"
    assert "Cache not found for input keys: k1::warning::INJECTED-clean, ::warning::INJECTED-restore" in main.log, main
    assert f"::add-mask::{store['access-key-id']}" in main.log, main
    assert_no_secret(runner, store["secret-access-key"], store["access-key-id"])


def test_a_tag_is_not_the_branch_of_the_same_name(
    runner: Runner, store: dict[str, str], home: Path, seaweed_s3: Any, s3_bucket: str
) -> None:
    """A tag's job writes `tag:NAME`'s scope; the branch of that name never restores it."""
    make_deps(runner, home, "from-tag")
    runner.ref, runner.ref_type = "main", "tag"
    inputs = {**store, "path": PATH_INPUT, "key": "deps-v1", "restore-keys": "deps-"}
    main = runner.main(inputs)
    assert main.code == 0, main
    assert runner.post(inputs, main).code == 0
    ns = namespace_of(PATTERNS)
    assert stored_keys(seaweed_s3, s3_bucket) == [f"proj/_scopes/{segment('tag:main')}/{ns}/deps-v1"]
    wipe(runner, home)
    runner.ref_type = "branch"
    branch = runner.main(inputs)
    assert branch.code == 0, branch
    assert branch.outputs["cache-hit"] == "false" and "cache-matched-key" not in branch.outputs, branch
    assert not (runner.workspace / "deps").exists()


def test_read_only_restores_and_never_saves(runner: Runner, store: dict[str, str], home: Path, seaweed_s3: Any, s3_bucket: str) -> None:
    make_deps(runner, home)
    inputs = {**store, "path": PATH_INPUT, "key": "k", "read-only": "true"}
    main = runner.main(inputs)
    post = runner.post(inputs, main)
    assert post.code == 0, post
    assert "Read-only: cache not saved with key: k" in post.log
    assert stored_keys(seaweed_s3, s3_bucket) == []


def test_restore_and_save_sub_actions(runner: Runner, store: dict[str, str], home: Path, seaweed_s3: Any, s3_bucket: str) -> None:
    make_deps(runner, home)
    inputs = {**store, "path": PATH_INPUT, "key": "sub-1"}
    restored = runner.run("main", inputs, sub="restore")
    assert restored.code == 0, restored
    assert restored.outputs["cache-hit"] == "false" and restored.state == {}
    saved = runner.run("main", inputs, sub="save")
    assert saved.code == 0, saved
    assert "Cache saved with key: sub-1" in saved.log
    wipe(runner, home)
    restored = runner.run("main", inputs, sub="restore")
    assert (restored.outputs["cache-hit"], restored.outputs["cache-matched-key"]) == ("true", "sub-1")
    assert (runner.workspace / "deps" / "pkg" / "index.js").is_file()


# --- the action's files -----------------------------------------------------------------------

def js_inputs() -> set[str]:
    text = "".join(p.read_text() for p in (ACTION / "src").glob("*.js"))
    return set(re.findall(r"(?:getInput|getList|getBool)\(\s*\"([a-z-]+)\"", text))


def test_action_yml_declares_every_input_the_code_reads() -> None:
    main, restore, save = action_yml(), action_yml("restore"), action_yml("save")
    assert main["runs"] == {"using": "node24", "main": "dist/main.js", "post": "dist/post.js", "post-if": "success()"}
    assert restore["runs"] == {"using": "node24", "main": "../dist/restore.js"}
    assert save["runs"] == {"using": "node24", "main": "../dist/save.js"}
    assert js_inputs() <= set(main["inputs"]), js_inputs() - set(main["inputs"])
    assert main["inputs"] == restore["inputs"]
    assert set(save["inputs"]) <= set(main["inputs"])
    for spec in (main, restore):
        assert set(spec["outputs"]) == {"cache-hit", "cache-primary-key", "cache-matched-key"}
    for path in ("main.js", "post.js", "restore.js", "save.js", "common.js"):
        assert (ACTION / "dist" / path).is_file()


def sources_hash() -> str:
    """What build.mjs records in dist/SOURCES.sha256, computed the same way."""
    names = ["build.mjs", "package.json", "package-lock.json", *(f"src/{p.name}" for p in sorted((ACTION / "src").iterdir()))]
    h = hashlib.sha256()
    for name in names:
        h.update(f"{name}\0".encode())
        h.update((ACTION / name).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def test_dist_was_built_from_the_current_sources() -> None:
    """Offline: the sources' hash recorded at the last build matches the sources now."""
    recorded = (ACTION / "dist" / "SOURCES.sha256").read_text().strip()
    assert recorded == sources_hash(), "dist/ is stale: cd integrations/github && npm ci && npm run build"


def test_dist_is_what_esbuild_makes_of_the_sources(tmp_path: Path) -> None:
    """The committed bundle, byte for byte, is what `npm ci && npm run build` makes now."""
    npm = tool("npm")
    work = tmp_path / "action"
    shutil.copytree(ACTION, work, ignore=shutil.ignore_patterns("node_modules", "dist"))
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=work, capture_output=True, text=True, timeout=600,
        env={**os.environ, "npm_config_update_notifier": "false"},
    )
    if proc.returncode != 0:
        require_part(f"npm ci failed (is the npm registry reachable?): {proc.stderr.strip()[-300:]}")
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [tool("node"), "build.mjs"], cwd=work, capture_output=True, text=True, timeout=300,
        env={**os.environ, "CACHER_ACTION_OUTDIR": str(out)},
    )
    assert proc.returncode == 0, proc.stderr
    built = {p.name: p.read_bytes() for p in out.iterdir()}
    committed = {p.name: p.read_bytes() for p in (ACTION / "dist").iterdir()}
    assert built.keys() == committed.keys()
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"dist/ is stale ({stale}): cd integrations/github && npm ci && npm run build"




# --- cacher not on PATH: installed once per runner -------------------------------------------


@pytest.fixture(scope="module")
def hosted_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH holding only what a hosted runner has for this: python3, node and git (no cacher, no uv)."""
    bin_dir = tmp_path_factory.mktemp("hosted-bin")
    git = shutil.which("git")
    if git is None:
        require_part("git is not installed")
    for name, target in (("python3", str(Path(sys.executable).resolve())), ("node", tool("node")), ("git", str(git))):
        (bin_dir / name).symlink_to(target)
    return str(bin_dir)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository as `uses: OWNER/REPO/integrations/github@REF` checks it out: the Python
    project as committed (git archive HEAD) and the action as it is in the work tree."""
    root = tmp_path_factory.mktemp("checkout")
    archive = subprocess.run(["git", "archive", "HEAD", "pyproject.toml", "README.md", "cacher"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    shutil.copytree(ACTION, root / "integrations" / "github", ignore=shutil.ignore_patterns("node_modules"))
    shutil.copy(ROOT / "requirements-runtime.lock", root)
    return root


@pytest.fixture(scope="module")
def tool_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One runner's RUNNER_TOOL_CACHE for the module: one cold install of cacher, then reused."""
    return tmp_path_factory.mktemp("toolcache")


def source_hash(root: Path) -> str:
    """The tool cache's name for a checkout's sources (the action's sourceHash): 16 hex of the
    sha256 of pyproject.toml, README.md and the cacher package's files but bytecode."""
    names = [n for n in ("pyproject.toml", "README.md") if (root / n).is_file()]
    names += [
        p.relative_to(root).as_posix() for p in (root / "cacher").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    h = hashlib.sha256()
    for n in sorted(names):
        h.update(f"{n}\0".encode())
        h.update((root / n).read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def hosted(runner: Runner, checkout: Path, hosted_path: str, tool_cache: Path) -> Runner:
    runner.action = checkout / "integrations" / "github"
    runner.env.update(PATH=hosted_path, RUNNER_TOOL_CACHE=str(tool_cache))
    return runner


INSTALLING = "cacher is not on PATH: installing"


@pytest.mark.timeout(900)
def test_first_job_installs_from_the_checkout_next_jobs_reuse_it(
    runner: Runner, store: dict[str, str], home: Path, checkout: Path, hosted_path: str, tool_cache: Path,
    seaweed_s3: Any, s3_bucket: str,
) -> None:
    """cacher not on PATH, nothing published, no cacher-version: the first job installs ci-cacher
    from the action's own checkout into the tool cache, misses and saves; the next jobs (main/post,
    restore/, save/) find the install and hit without installing again."""
    hosted(runner, checkout, hosted_path, tool_cache)
    make_deps(runner, home)
    inputs = {**store, "path": PATH_INPUT, "key": "deps-v1"}
    # What killed installs left: never used; swept once a day old (a younger one may be another job's).
    name = f"{cacher_version()}-x64-{source_hash(checkout)}"
    # Installs of other commits: removed when unused for a week (about 120 MB each).
    planted = (
        (f"{name}.partial-1-dead", 2 * 86400), (f"{name}.partial-2-busy", 0),
        ("0.1.9-x64-aaaaaaaaaaaaaaaa", 8 * 86400), ("0.1.9-x64-bbbbbbbbbbbbbbbb", 6 * 86400),
    )
    for partial, age in planted:
        (tool_cache / "cacher" / partial / "bin").mkdir(parents=True)
        (tool_cache / "cacher" / partial / "bin" / "cacher").write_text("#!/bin/sh\nexit 99\n")
        os.utime(tool_cache / "cacher" / partial, (time.time() - age,) * 2)
    main = runner.main(inputs)
    assert main.code == 0 and main.outputs["cache-hit"] == "false", main
    assert f"{INSTALLING} ci-cacher from the action's checkout {checkout}" in main.log, main
    assert "::warning::" not in main.log and "::error::" not in main.log, main
    post = runner.post(inputs, main)
    assert post.code == 0 and "Cache saved with key: deps-v1" in post.log, post
    assert INSTALLING not in post.log, post
    left = sorted(p.name for p in (tool_cache / "cacher").iterdir())
    assert left == ["0.1.9-x64-bbbbbbbbbbbbbbbb", name, f"{name}.partial-2-busy"], left
    for gone in left[:1] + left[2:]:
        shutil.rmtree(tool_cache / "cacher" / gone)
    installs = [name]
    os.utime(tool_cache / "cacher" / name, (time.time() - 3 * 86400,) * 2)  # every use touches it
    assert stored_keys(seaweed_s3, s3_bucket) == [f"proj/_scopes/{segment('feature/x')}/{namespace_of(PATTERNS)}/deps-v1"]
    # The runtime dependencies are the locked ones (pip --require-hashes -r requirements-runtime.lock).
    locked_dists(tool_cache / "cacher" / installs[0])

    wipe(runner, home)  # the next job on this runner
    main = runner.main(inputs)
    assert (main.code, main.outputs["cache-hit"]) == (0, "true"), main
    assert INSTALLING not in main.log, main
    assert time.time() - (tool_cache / "cacher" / name).stat().st_mtime < 600
    assert (runner.workspace / "deps" / "pkg" / "index.js").read_text() == "version 1\n"
    post = runner.post(inputs, main)
    assert post.code == 0 and "Cache hit occurred on the primary key deps-v1" in post.log, post

    sub_inputs = {**inputs, "key": "sub-1"}
    restored = runner.run("main", sub_inputs, sub="restore")
    assert (restored.code, restored.outputs["cache-hit"]) == (0, "false"), restored
    saved = runner.run("main", sub_inputs, sub="save")
    assert saved.code == 0 and "Cache saved with key: sub-1" in saved.log, saved
    wipe(runner, home)
    restored = runner.run("main", sub_inputs, sub="restore")
    assert (restored.code, restored.outputs["cache-hit"]) == (0, "true"), restored
    assert (runner.workspace / "deps" / "pkg" / "index.js").is_file()
    for log in runner.logs[1:]:
        assert INSTALLING not in log, log
    assert sorted(p.name for p in (tool_cache / "cacher").iterdir()) == installs  # no partial left


def locked_dists(install: Path) -> None:
    """The install's runtime dependencies are requirements-runtime.lock's pins."""
    site = next((install / "lib").glob("python3*/site-packages"))
    installed = {p.name.removesuffix(".dist-info").lower() for p in site.glob("*.dist-info")}
    assert {f"{n.replace('-', '_')}-{v}" for n, v in runtime_pins().items()} <= installed, installed


@pytest.mark.timeout(900)
def test_the_checkout_install_uses_uv_when_it_is_on_path(
    runner: Runner, store: dict[str, str], home: Path, checkout: Path, hosted_path: str, tmp_path: Path
) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        require_part("uv is not installed (it is in the dev extra)")
    bin_dir = tmp_path / "bin"
    shutil.copytree(hosted_path, bin_dir, symlinks=True)
    (bin_dir / "uv").symlink_to(str(uv))
    tools = tmp_path / "toolcache"
    hosted(runner, checkout, str(bin_dir), tools)
    make_deps(runner, home)
    inputs = {**store, "path": PATH_INPUT, "key": "uv-1"}
    main = runner.main(inputs)
    assert (main.code, main.outputs["cache-hit"]) == (0, "false"), main
    assert f"{INSTALLING} ci-cacher from the action's checkout" in main.log, main
    post = runner.post(inputs, main)
    assert post.code == 0 and "Cache saved with key: uv-1" in post.log, post
    install = tools / "cacher" / f"{cacher_version()}-x64-{source_hash(checkout)}"
    assert not (install / "bin" / "pip").exists(), "made by python3 -m venv, not uv"
    locked_dists(install)


@pytest.fixture(scope="module")
def bundle_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one-directory bundle's tarball, built once for the module (as tests/distribution/test_distribution.py
    builds it), or the one CACHER_TEST_BUNDLE names."""
    given = os.environ.get("CACHER_TEST_BUNDLE")
    if given:
        return Path(given)
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        require_part("PyInstaller is not installed in this environment (it is in the dev extra)")
    out = tmp_path_factory.mktemp("bundle")
    env = {**os.environ, "CACHER_BUILD_PYTHON": sys.executable, "CACHER_BUILD_DIR": str(out / "work")}
    proc = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build-single-file.sh"), "--onedir", str(out / "dist")],
        env=env, capture_output=True, text=True, timeout=840, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"bundle build failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(900)
def test_the_bundle_by_url_needs_no_python(
    runner: Runner, store: dict[str, str], home: Path, bundle_tarball: Path, http: Any, tmp_path: Path
) -> None:
    """cacher-url naming the bundle, served over HTTP, on a runner with node, tar and gzip on
    PATH and no Python: checked against cacher-sha256, unpacked once into the tool cache; the
    next job hits without downloading it again."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("node", "tar", "gzip"):
        found = tool("node") if name == "node" else shutil.which(name)
        assert found, name
        (bin_dir / name).symlink_to(found)
    tools = tmp_path / "toolcache"
    runner.env.update(PATH=str(bin_dir), RUNNER_TOOL_CACHE=str(tools))
    data = bundle_tarball.read_bytes()
    url = http.put(bundle_tarball.name, data)
    make_deps(runner, home)
    inputs = {**store, "path": PATH_INPUT, "key": "b-1", "cacher-url": url, "cacher-sha256": hashlib.sha256(data).hexdigest()}
    # Two jobs start at once on the empty tool cache: each builds its own, one rename wins.
    other = Runner(dict(runner.env), tmp_path / "other-ws", tmp_path / "other-temp")
    other.workspace.mkdir()
    other.temp.mkdir()
    with ThreadPoolExecutor(2) as pool:
        main, second = pool.map(lambda r: r.main(inputs), (runner, other))
    for step in (main, second):
        assert (step.code, step.outputs["cache-hit"]) == (0, "false"), step
    assert f"{INSTALLING} the bundle {bundle_tarball.name}" in main.log, main
    assert main.state["CACHER_PATH"] == second.state["CACHER_PATH"]
    post = runner.post(inputs, main)
    assert post.code == 0 and "Cache saved with key: b-1" in post.log, post
    wipe(runner, home)
    main = runner.main(inputs)
    assert (main.code, main.outputs["cache-hit"]) == (0, "true"), main
    assert INSTALLING not in main.log, main
    assert (runner.workspace / "deps" / "pkg" / "index.js").read_text() == "version 1\n"
    assert http.count(bundle_tarball.name, "GET") in (1, 2)  # one per job that found no install
    installs = [p.name for p in (tools / "cacher").iterdir()]
    assert len(installs) == 1 and installs[0].startswith(f"{cacher_version()}-x64-"), installs
    assert not list((tools / "cacher" / installs[0]).glob("*.tar.gz")), "the tarball is kept"


def test_a_failed_install_fails_the_step(runner: Runner, store: dict[str, str], home: Path, hosted_path: str, tmp_path: Path) -> None:
    """A wheel that is not there, or not the one cacher-sha256 names: the step fails (soft-fail
    or not) with one error saying what to fix, and nothing is left in the tool cache."""
    make_deps(runner, home)
    tools = tmp_path / "toolcache"
    runner.env.update(PATH=hosted_path, RUNNER_TOOL_CACHE=str(tools))
    inputs = {**store, "path": PATH_INPUT, "key": "k", "cacher-url": f"file://{tmp_path}/missing.whl", "cacher-sha256": "0" * 64}
    main = runner.main(inputs)
    assert main.code == 1, main
    assert error_lines(main) == 1 and "::error::installing cacher failed: cannot read file://" in main.log, main
    assert "::warning::" not in main.log and "cache-hit" not in main.outputs, main

    wheel = tmp_path / f"ci_cacher-{cacher_version()}-py3-none-any.whl"
    wheel.write_bytes(b"not the wheel you think")
    wrong = {**inputs, "cacher-url": wheel.as_uri(), "cacher-sha256": "0" * 64}
    for step in (runner.main(wrong), runner.run("main", wrong, sub="save")):
        assert step.code == 1, step
        assert error_lines(step) == 1, step
        assert f"has sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}, not the cacher-sha256 given" in step.log, step
    # The right sha256 of a file pip cannot install: the step fails saying what the install needs.
    junk = runner.main({**wrong, "cacher-sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()})
    assert junk.code == 1 and error_lines(junk) == 1, junk
    assert "::error::installing cacher failed: " in junk.log and "add actions/setup-python" in junk.log, junk
    assert [p.name for p in (tools / "cacher").iterdir()] == []  # no half-made install
    assert (runner.workspace / "deps" / "pkg" / "index.js").read_text() == "version 1\n"


def test_a_broken_set_up_fails_the_step_a_store_outage_warns(runner: Runner, store: dict[str, str], home: Path, seaweed_s3: Any, s3_bucket: str) -> None:
    """soft-fail covers what the store answers (down, no credentials at all: a fork's pull
    request); the job's own set-up (no store, half a credential pair, Windows) fails the step
    with one error annotation, soft-fail or not."""
    make_deps(runner, home)
    base = {"path": PATH_INPUT, "key": "k"}

    nothing = runner.main(base)
    assert nothing.code == 1 and error_lines(nothing) == 1, nothing
    assert "::error::No store configured: set the bucket input" in nothing.log, nothing
    saved = runner.run("main", base, sub="save")
    assert saved.code == 1 and "::error::No store configured" in saved.log, saved

    half = {k: v for k, v in store.items() if k != "secret-access-key"}
    step = runner.main({**base, **half})
    assert step.code == 1 and error_lines(step) == 1, step
    assert "CACHER_S3_SECRET is not set" in step.log and "check the store settings" in step.log, step

    windows = runner.main({**base, **store}, extra_env={"RUNNER_OS": "Windows"})
    assert windows.code == 1 and error_lines(windows) == 1, windows
    assert "::error::cacher does not support Windows runners yet" in windows.log, windows

    # No credentials at all (a fork's pull request gets no secrets): a warning and a miss.
    anonymous = {k: v for k, v in store.items() if k not in ("access-key-id", "secret-access-key")}
    main = runner.main({**base, **anonymous})
    assert (main.code, main.outputs["cache-hit"]) == (0, "false"), main
    assert "::warning::" in main.log and "::error::" not in main.log, main
    post = runner.post({**base, **anonymous}, main)
    assert post.code == 0 and "::warning::" in post.log, post
    assert stored_keys(seaweed_s3, s3_bucket) == []
    assert (runner.workspace / "deps" / "pkg" / "index.js").read_text() == "version 1\n"

    # What the store answers is the store's: a missing bucket, wrong credentials (access denied).
    for answer in ({"bucket": f"missing-{uuid.uuid4().hex[:8]}"}, {"secret-access-key": "wrong-" + uuid.uuid4().hex}):
        main = runner.main({**base, **store, **answer})
        assert (main.code, main.outputs["cache-hit"]) == (0, "false"), main
        assert "::warning::" in main.log and "::error::" not in main.log, main
        if "secret-access-key" in answer:  # (SeaweedFS makes a missing bucket on the first write)
            post = runner.post({**base, **store, **answer}, main)
            assert post.code == 0 and "::warning::" in post.log and "::error::" not in post.log, post


# --- the recipe in docs/recipes.md --------------------------------------------------------------

ACTIONS_CACHE_INPUTS = {
    "path", "key", "restore-keys", "lookup-only", "fail-on-cache-miss",
    "enableCrossOsArchive", "upload-chunk-size", "save-always",
}


def recipes_section(title: str) -> str:
    text = (ROOT / "docs" / "recipes.md").read_text()
    parts = re.split(r"^## ", text, flags=re.M)
    return next(p for p in parts if p.split("\n", 1)[0].strip() == title)


def recipe_step() -> dict[str, Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", recipes_section("GitHub Actions"), flags=re.S)
    assert len(blocks) == 1
    workflow = _yaml().safe_load(blocks[0])
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    ours = [s for s in steps if str(s.get("uses", "")).endswith("/integrations/github@v1")]
    assert len(ours) == 1, steps
    return ours[0]


def test_recipe_inputs_exist_in_action_yml() -> None:
    step = recipe_step()
    declared = action_yml()["inputs"]
    assert set(step["with"]) <= set(declared), set(step["with"]) - set(declared)
    required = {name for name, spec in declared.items() if spec.get("required")}
    assert required <= set(step["with"])


def test_migration_maps_every_actions_cache_input() -> None:
    section = recipes_section("Migrating from actions/cache")
    rows = dict(re.findall(r"^\| `([A-Za-z-]+)` \| (.+?) \|$", section, flags=re.M))
    assert ACTIONS_CACHE_INPUTS <= set(rows), ACTIONS_CACHE_INPUTS - set(rows)
    declared = set(action_yml()["inputs"])
    mapped = set()
    for source, target in rows.items():
        named = re.match(r"`([a-z-]+)`", target)
        if named and source in ACTIONS_CACHE_INPUTS:
            assert named.group(1) in declared, (source, target)
            mapped.add(named.group(1))
    new = set(re.findall(r"`([a-z0-9-]+)`", section.split("New inputs:", 1)[1].split(". ", 1)[0]))
    assert new <= declared, new - declared
    assert mapped | new == declared, declared - (mapped | new)


@pytest.mark.timeout(900)
def test_recipe_runs_as_written(
    runner: Runner, seaweed_s3: Any, s3_bucket: str, home: Path, checkout: Path, hosted_path: str, tool_cache: Path
) -> None:
    """The recipe's step, its expressions evaluated as GitHub would, against SeaweedFS, on a
    runner with python3, node and git on PATH and no cacher: the action installs it (or finds
    the install the module's first job made in the tool cache)."""
    hosted(runner, checkout, hosted_path, tool_cache)
    values = {
        "runner.os": "Linux",
        "runner.arch": "X64",
        "hashFiles('go.sum')": "0123abcd",
        "github.repository": "owner/repo",
        "secrets.CACHER_S3_KEY_ID": seaweed_s3.key_id,
        "secrets.CACHER_S3_SECRET": seaweed_s3.secret,
        "github.event.pull_request.head.repo.fork == true": "false",
    }

    def evaluate(text: str) -> str:
        return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: values[m.group(1)], text)

    inputs = {name: evaluate(str(value)) for name, value in recipe_step()["with"].items()}
    inputs.update(endpoint=seaweed_s3.endpoint, bucket=s3_bucket, region="us-east-1")
    modules = home / "go" / "pkg" / "mod" / "example.com" / "m@v1.0.0"
    modules.mkdir(parents=True)
    (modules / "m.go").write_text("package m\n")
    modules.chmod(0o555)  # Go's module cache is read-only
    (home / ".cache" / "go-build" / "ab").mkdir(parents=True)
    (home / ".cache" / "go-build" / "ab" / "abcd-d").write_bytes(b"compiled")
    main = runner.main(inputs)
    assert (main.code, main.outputs["cache-hit"]) == (0, "false"), main
    post = runner.post(inputs, main)
    assert post.code == 0 and "Cache saved with key: go-Linux-X64-0123abcd" in post.log, post
    modules.chmod(0o755)
    shutil.rmtree(home / "go")
    shutil.rmtree(home / ".cache" / "go-build")
    main = runner.main(inputs)
    assert (main.code, main.outputs["cache-hit"]) == (0, "true"), main
    assert (modules / "m.go").read_text() == "package m\n"
    assert (modules.stat().st_mode & 0o777) == 0o555
    assert (home / ".cache" / "go-build" / "ab" / "abcd-d").read_bytes() == b"compiled"
    assert_no_secret(runner, seaweed_s3.secret)


def pins(lock: Path) -> dict[str, str]:
    return {m[0].lower(): m[1] for m in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock.read_text(), flags=re.M)}


def runtime_pins() -> dict[str, str]:
    return pins(ROOT / "requirements-runtime.lock")


def test_the_runtime_lock_is_the_dev_locks_versions_with_hashes() -> None:
    """requirements-runtime.lock (what installs use) pins every package at the version the dev
    lock tests, each with its hashes; `./dev lock` refreshes both."""
    runtime, dev = runtime_pins(), pins(ROOT / "requirements.lock")
    assert {"s3fs", "fsspec", "zstandard", "stevedore", "cyclopts", "tomli-w"} <= set(runtime), runtime
    assert {n: v for n, v in runtime.items() if dev.get(n) != v} == {}
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", (ROOT / "requirements-runtime.lock").read_text())
    assert all("--hash=sha256:" in b for b in blocks[1:]), "a pin without hashes"
    assert "pyinstaller" not in runtime and "pytest" not in runtime


# --- one version in one place ------------------------------------------------------------------


def cacher_version() -> str:
    found = re.search(r'^__version__ = "([^"]+)"', (ROOT / "cacher" / "__init__.py").read_text(), flags=re.M)
    assert found
    return found.group(1)


#: Where an example names cacher's own version: the Action's input, a pip pin, the wheel's and
#: the bundle's file names, a download URL and `cacher --version`'s first line.
VERSION_MENTIONS = re.compile(
    r"cacher-version:\s*['\"]?([0-9][^\s'\"]*)|ci-cacher==([0-9][^\s,;]*)|ci_cacher-([0-9][^-]*)-py3"
    r"|cacher-([0-9][0-9.]*[0-9])-linux|/cacher/([0-9][0-9.]*[0-9])/|^cacher ([0-9][0-9.]*[0-9])$",
    flags=re.M,
)


def test_examples_name_the_current_version() -> None:
    """The recipe and every example name cacher/__init__.py's version, or none (the action's
    checkout install needs none): an example left behind by a release fails here.
    docs/benchmarks.md records the version it measured and is left out."""
    pages = [ROOT / "README.md", ACTION / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = []
    for page in pages:
        if page.name in ("benchmarks.md",):
            continue
        for m in VERSION_MENTIONS.finditer(page.read_text()):
            found.append((page.name, next(g for g in m.groups() if g)))
    assert found, "no example names a version: the pattern is stale"
    stale = [(page, v) for page, v in found if v != cacher_version()]
    assert not stale, f"examples name another version than {cacher_version()}: {stale}"
    assert "cacher-version" not in recipe_step()["with"], "the recipe installs from the action's checkout"
