"""The docs are tests: every fenced shell block of README.md and docs/*.md runs, as written.

Each ```sh / ```bash / ```shell / ```console block is a test named ``page.md:LINE``. The blocks
of a page run in page order in one working directory, each in its own ``bash`` with
``set -euo pipefail``; shell variables and the current directory carry from one block to the
next (a page sets ``KEY`` once and uses it below). The sandbox is what a new user has: an empty
HOME, the XDG directories elsewhere in tmp (a page that writes ``~/.cache`` where it means
``$XDG_CACHE_HOME`` fails here), PATH = the venv's ``bin`` (the installed ``cacher``) and
/usr/bin:/bin, nothing else of the caller's environment.

A page says what a block needs and what it shows in HTML comments right before the fence
(mkdocs renders nothing for them), one per line::

    <!-- docs-test: skip — needs the internet (go.dev) -->   not run; listed by SKIPPED below
    <!-- docs-test: exit 3 -->                               the exit code the page states
    <!-- docs-test: stdout-contains "text" -->               (also stderr-contains)
    <!-- docs-test: files go.sum vendor/ ~/.npm/ -->         files (or dirs/) the block reads
    <!-- docs-test: env DIR="$HOME/go/pkg/mod" -->           a variable the page leaves to the reader
    <!-- docs-test: stub go npm -->                          a stand-in build tool (STUBS below)
    <!-- docs-test: store s3 -->                             a real SeaweedFS store (CACHER_* set)

A ```console block is ``$ command`` lines followed by their output, and its stdout must equal
that output. The ```python blocks of the pages in ``PYTHON_PAGES`` (docs/api.md) run the same
way, each with the venv's ``python`` in the page's working directory, markers included. A
block that cannot run here is marked ``skip`` with why, and
`test_the_blocks_not_run_are_the_expected_ones` holds those to the short list below, so a new
block is either run or deliberately listed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = ("sh", "bash", "shell", "console")
#: Pages whose ```python blocks run too (each block on its own, with the venv's python).
PYTHON_PAGES = ("api.md",)
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[A-Za-z]+)[ \t]*$")
MARKER = re.compile(r"^[ \t]*<!--[ \t]*docs-test:[ \t]*(?P<body>.*?)[ \t]*-->[ \t]*$")

#: The blocks not run, by page, with why. Keep it short: a block a user would run runs here.
SKIPPED: list[tuple[str, str]] = sorted(
    [
        ("README.md", "needs the internet (go.dev), a <hex> placeholder and a docker build"),
        ("README.md", "installs the dev environment and runs this suite: .ci/run does both"),
        (
            "backends.md",
            "needs a company CA at /etc/ssl/company (tests/stores/test_s3_tls_proxy.py covers CACHER_CA_BUNDLE)",
        ),
        (
            "backends.md",
            "init checks an example endpoint (garage.example.com); tests/stores/test_s3.py runs init on SeaweedFS",
        ),
        ("benchmarks.md", "the full benchmark takes ~21 min; .ci/run runs its --size tiny smoke run"),
        ("dir.md", "needs the aws CLI and an AWS bucket (the equivalent cacher replaces)"),
        ("docker.md", "needs a docker engine; tests/kinds/test_docker.py runs these commands on one"),
        ("docker.md", "needs a docker engine; tests/kinds/test_docker.py loads what docker save | zstd wrote"),
        ("docker.md", "needs podman"),
        ("housekeeping.md", "a synopsis: [PREFIX], [--json], [--keep-last N] are placeholders"),
        ("housekeeping.md", "a synopsis: [PREFIX], [--json], [--keep-last N] are placeholders"),
        ("index.md", "needs the internet (go.dev), a <hex> placeholder and a docker build"),
        ("install.md", "builds from the checkout into dist/: tests/distribution/test_distribution.py builds the wheel"),
        (
            "install.md",
            "installs from the package index: tests/distribution/test_distribution.py runs uv tool and pipx installs",
        ),
        (
            "install.md",
            "installs from the package index: tests/distribution/test_distribution.py runs uv tool and pipx installs",
        ),
        (
            "install.md",
            "installs from the package index: tests/distribution/test_distribution.py runs uv tool and pipx installs",
        ),
        ("install.md", "a minute of PyInstaller: tests/distribution/test_distribution.py builds and runs the single file"),
        ("install.md", "needs the internet (artifacts.example.com) and a <sha256> placeholder"),
        ("install.md", "a minute of PyInstaller: tests/distribution/test_distribution.py builds and runs the bundle"),
        ("install.md", "installs from the package index into a new venv"),
        ("migration.md", "needs the aws CLI, an AWS bucket and go (the script cacher replaces)"),
        (
            "quickstart.md",
            "installs from the package index: tests/distribution/test_distribution.py runs uv tool and pipx installs",
        ),
        (
            "quickstart.md",
            "init checks an example endpoint (s3.example.com); tests/stores/test_s3.py runs init on SeaweedFS",
        ),
        ("recipes.md", "needs the internet: downloads a release from $CACHER_URL"),
        ("recipes.md", "needs a Buildkite agent's secrets under /etc/buildkite-agent"),
        ("recipes.md", "needs a docker engine; tests/kinds/test_docker.py runs these commands on one"),
    ]
)

#: Stand-ins for the build tools pages call between cacher commands: they make what the real
#: tool would (a module cache, node_modules), so the cacher lines around them run for real.
STUBS = {
    "go": """#!/bin/sh
set -e
[ "$1 $2" = "mod download" ] || { echo "stub go: only 'go mod download'" >&2; exit 2; }
mod="${GOMODCACHE:-$HOME/go/pkg/mod}"
mkdir -p "$mod/example.com/m@v1.0.0" "$mod/cache/download/example.com/m/@v"
echo 'package m' > "$mod/example.com/m@v1.0.0/m.go"
echo 'v1.0.0' > "$mod/cache/download/example.com/m/@v/list"
""",
    "npm": """#!/bin/sh
set -e
[ "$1" = "ci" ] || { echo "stub npm: only 'npm ci'" >&2; exit 2; }
mkdir -p node_modules/left-pad "$HOME/.npm/_cacache"
echo 'module.exports = 1' > node_modules/left-pad/index.js
echo 'tarball' > "$HOME/.npm/_cacache/left-pad-1.3.0"
""",
}

#: Bash's own variables, which a block's state never carries.
_BASH_OWN = r"^(BASH.*|FUNCNAME|LINENO|RANDOM|SRANDOM|SECONDS|PIPESTATUS|_|EPOCH.*|PWD|OLDPWD|SHLVL|COLUMNS|LINES|HISTCMD|GROUPS|DIRSTACK|PPID|UID|EUID|SHELLOPTS|__docs_.*)$"


@dataclass
class Block:
    """One fenced shell block: where it is, its text, and what its markers ask."""

    page: str
    line: int
    lang: str
    code: str
    skip: str | None = None
    exit: int = 0
    stdout_contains: list[str] = field(default_factory=list)
    stderr_contains: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    stubs: list[str] = field(default_factory=list)
    store: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def script_and_expected(self) -> tuple[str, str | None]:
        """The commands, and for a console block the stdout it shows."""
        if self.lang == "python":
            return f"python - <<'__DOCS_PYTHON__'\n{self.code}__DOCS_PYTHON__\n", None
        if self.lang != "console":
            return self.code, None
        commands, shown = [], []
        for line in self.code.splitlines():
            if line.startswith("$ "):
                commands.append(line[2:])
            else:
                shown.append(line)
        return "\n".join(commands) + "\n", "".join(f"{s}\n" for s in shown)


def _apply(block: Block, body: str) -> None:
    word, _, rest = body.partition(" ")
    rest = rest.strip()
    if word in ("skip", "skip:"):
        block.skip = rest.lstrip("—-: ").strip() or "(no reason given)"
    elif word == "exit":
        block.exit = int(rest)
    elif word in ("stdout-contains", "stderr-contains"):
        target = block.stdout_contains if word == "stdout-contains" else block.stderr_contains
        target.extend(shlex.split(rest))
    elif word == "files":
        block.files.extend(rest.split())
    elif word == "env":
        block.env.append(rest)
    elif word == "stub":
        block.stubs.extend(rest.split())
    elif word == "store":
        block.store = rest
    else:
        raise ValueError(f"unknown docs-test marker: {body!r}")


def blocks_of(path: Path) -> list[Block]:
    """The shell blocks of one page, with the markers on the lines right above each fence."""
    lines = path.read_text().splitlines()
    name = path.name
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group("indent"), m.group("lang")
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if lang in SHELLS or (lang == "python" and name in PYTHON_PAGES):
            code = "\n".join(
                line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : end]
            )
            block = Block(name, i + 1, lang, code + "\n")
            above = i - 1
            bodies = []
            while above >= 0 and (mm := MARKER.match(lines[above])):
                bodies.append(mm.group("body"))
                above -= 1
            for body in reversed(bodies):
                _apply(block, body)
            found.append(block)
        i = end + 1
    return found


ALL = [b for page in PAGES for b in blocks_of(page)]
BY_PAGE: dict[str, list[Block]] = {}
for _b in ALL:
    BY_PAGE.setdefault(_b.page, []).append(_b)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err[-3000:]}"


class Sandbox:
    """One page's sandbox: an empty HOME, XDG dirs apart from it, a working directory, and the
    shell state (variables, current directory) one block leaves to the next."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.work = root / "work"
        self.stubs = root / "stubs"
        self.state = root / "state.sh"
        for d in (self.home, self.work, self.stubs):
            d.mkdir(parents=True)
        self.state.write_text(f"cd {shlex.quote(str(self.work))}\n")
        self.results: dict[int, Result] = {}

    def env(self) -> dict[str, str]:
        xdg = self.root / "xdg"
        return {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(xdg / "config"),
            "XDG_CACHE_HOME": str(xdg / "cache"),
            "XDG_DATA_HOME": str(xdg / "data"),
            "XDG_STATE_HOME": str(xdg / "state"),
            "PATH": f"{self.stubs}{os.pathsep}{VENV_BIN}{os.pathsep}/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.root),
            "AWS_EC2_METADATA_DISABLED": "true",  # loopback only, never instance metadata
        }

    def run(self, block: Block, store: dict[str, str]) -> Result:
        for name in block.stubs:
            stub = self.stubs / name
            stub.write_text(STUBS[name])
            stub.chmod(0o755)
        for name in block.files:
            where = self.home / name[2:] if name.startswith("~/") else self.work / name
            if name.endswith("/"):
                where.mkdir(parents=True, exist_ok=True)
                (where / "file.txt").write_text(f"{name}\n")
            else:
                where.parent.mkdir(parents=True, exist_ok=True)
                where.write_text(f"{name} v1\n")
        script, _ = block.script_and_expected()
        state = shlex.quote(str(self.state))
        prelude = (
            "__docs_base=$(declare -p)\n"
            f"source {state}\n"
            "__docs_save() {\n"
            f"  {{ printf 'cd %q\\n' \"$PWD\"\n"
            "    for v in $(compgen -v); do\n"
            f"      [[ $v =~ {_BASH_OWN} ]] && continue\n"
            '      d=$(declare -p "$v" 2>/dev/null) || continue\n'
            "      f=${d#declare -}; [[ ${f%% *} == *r* ]] && continue\n"
            '      grep -qxF -- "$d" <<<"$__docs_base" || printf \'%s\\n\' "$d"\n'
            f"    done; }} > {state}\n"
            "}\n"
            "trap __docs_save EXIT\n" + "".join(f"export {e}\n" for e in block.env) + "set -euo pipefail\n"
        )
        proc = subprocess.run(
            ["bash", "-c", prelude + script, f"{block.id}"],
            cwd=self.work,
            env={**self.env(), **store},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


_SANDBOXES: dict[str, Sandbox] = {}


def result_of(
    block: Block, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Result:
    """Run the page's blocks up to this one, in order, once per session (a block run alone
    with -k still gets the state the blocks above it leave)."""
    page = BY_PAGE[block.page]
    if block.page not in _SANDBOXES:
        _SANDBOXES[block.page] = Sandbox(tmp_path_factory.mktemp(block.page.replace(".", "_")))
    box = _SANDBOXES[block.page]
    for earlier in page:
        if earlier.skip is not None or earlier.line in box.results:
            continue
        store: dict[str, str] = {}
        if earlier.store == "s3":
            server: Any = request.getfixturevalue("seaweed_s3")
            bucket = f"docs-{uuid.uuid4().hex[:12]}"
            server.make_bucket(bucket)
            store = {
                "CACHER_ENDPOINT": server.endpoint,
                "CACHER_BUCKET": bucket,
                "CACHER_S3_KEY_ID": server.key_id,
                "CACHER_S3_SECRET": server.secret,
            }
        box.results[earlier.line] = box.run(earlier, store)
        if earlier is block:
            break
    return box.results[block.line]


def _param(block: Block) -> Any:
    marks = [pytest.mark.s3] if block.store == "s3" else []
    return pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", [_param(b) for b in ALL])
def test_block_runs_as_written(
    block: Block, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    if block.skip is not None:
        pytest.skip(f"{block.id} not run: {block.skip}")
    result = result_of(block, tmp_path_factory, request)
    _, shown = block.script_and_expected()
    assert result.code == block.exit, f"{block.id}: expected exit {block.exit}\n{block.code}\n{result}"
    for text in block.stdout_contains:
        assert text in result.out, f"{block.id}: stdout lacks {text!r}\n{result}"
    for text in block.stderr_contains:
        assert text in result.err, f"{block.id}: stderr lacks {text!r}\n{result}"
    if shown is not None:
        assert result.out == shown, f"{block.id}: the page shows\n{shown}\n{result}"


def test_the_blocks_not_run_are_the_expected_ones() -> None:
    """The blocks marked skip, with their reasons, are exactly SKIPPED: the list stays short
    and deliberate, and a new block is run unless someone lists it here and says why."""
    marked = sorted((b.page, b.skip) for b in ALL if b.skip is not None)
    print("\nshell blocks the docs test does not run:")
    for b in ALL:
        if b.skip is not None:
            print(f"  {b.id}: {b.skip}")
    assert marked == SKIPPED
    ran = [b for b in ALL if b.skip is None]
    assert len(ran) > len(marked) // 2, "most blocks must run"


def test_every_page_with_shell_is_seen() -> None:
    """The extractor finds the fences (indented ones in lists too), and every marker parses."""
    assert {b.page for b in ALL} >= {"README.md", "quickstart.md", "keys.md", "security.md", "recipes.md"}
    assert any(b.lang == "console" for b in ALL)
    assert {b.page for b in ALL if b.lang == "python"} == set(PYTHON_PAGES)
    for page in PAGES:
        for line in page.read_text().splitlines():
            if re.match(r"^[ \t]*<!--[ \t]*docs-test:", line):
                assert MARKER.match(line), f"{page.name}: a marker that does not parse: {line!r}"
