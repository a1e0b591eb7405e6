"""Structural promises: the core imports no plugin by name; start-up stays light."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "cacher"
PLUGIN_PACKAGES = ("cacher.kinds", "cacher.keys", "cacher.codecs")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _core_modules() -> list[Path]:
    return [
        p for p in ROOT.rglob("*.py")
        if not any(p.is_relative_to(ROOT / pkg.split(".")[1]) for pkg in PLUGIN_PACKAGES)
    ]


def test_core_never_imports_a_plugin_by_name() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(i for i in _imports(p) if i.startswith(PLUGIN_PACKAGES))
        for p in _core_modules()
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert len(_core_modules()) > 10


def test_only_the_registry_imports_stevedore() -> None:
    """One module owns stevedore (it lists entry points there, never from its on-disk cache,
    which has no owner check and misses rewrites: docs/security.md, "Files cacher trusts")."""
    users = sorted(
        str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
        if any(i == "stevedore" or i.startswith("stevedore.") for i in _imports(p))
    )
    assert users == ["registry.py"]


def test_only_the_s3_store_package_imports_s3fs_or_botocore() -> None:
    """The shipped test kit (cacher.testing) may talk to its S3 server directly; nothing else."""
    users = sorted(
        str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
        if not p.is_relative_to(ROOT / "testing") and any(i.split(".")[0] in ("s3fs", "botocore", "aiobotocore") for i in _imports(p))
    )
    assert users and all(u.startswith("stores/s3/") for u in users), users


def test_subsystems_are_packages() -> None:
    """A reader of the tree sees the subsystems; no S3 or tar module is left at the top."""
    for package in ("stores", "stores/s3", "tar", "kinds", "codecs", "keys", "cli", "testing"):
        assert (ROOT / package / "__init__.py").is_file(), package
    flat = sorted(p.name for p in ROOT.glob("*.py"))
    assert not [n for n in flat if n.startswith(("s3", "store", "backends", "credentials"))], flat
    assert not list((ROOT / "kinds").glob("tar*.py"))


def test_builtins_are_registered_as_entry_points() -> None:
    from cacher.registry import Registry

    reg = Registry.from_entry_points()
    assert {"file", "url"} <= set(reg.names("kinds"))
    assert {"hash", "os", "arch", "env"} <= set(reg.names("keys"))
    assert {"zstd", "gzip", "none"} <= set(reg.names("codecs"))


HEAVY = ("s3fs", "botocore", "aiobotocore", "aiohttp")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["key", "a/{os}"], ["download", "--help"]])
def test_light_commands_do_not_import_s3(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from cacher.cli import main\n"
        f"rc = main({argv!r})\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy, rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY [] 0" in out, out


PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
PUBLIC = ("cacher.plugin", "cacher.testing")


def _cacher_imports(path: Path) -> set[str]:
    """The cacher modules ``path`` imports (module names, without the imported symbols)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "cacher")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cacher":
            found.add(node.module)
    return found


def _off_limits(sources: list[Path], own: str, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """Per file, the cacher modules it imports beyond ``allowed`` and its own package ``own``."""
    offenders = {
        str(p): sorted(m for m in _cacher_imports(p) if m not in allowed and not m.startswith(own + "."))
        for p in sources
    }
    return {k: v for k, v in offenders.items() if v}


def test_builtins_import_only_the_plugin_api() -> None:
    """The built-in kinds, key functions and codecs go through the door third parties use:
    `cacher.plugin`, and their own package's sibling modules."""
    for package in PLUGIN_PACKAGES:
        sources = list((ROOT / package.split(".")[1]).rglob("*.py"))
        assert sources, package
        assert _off_limits(sources, package, ("cacher.plugin",)) == {}


def test_the_git_plugin_imports_only_the_plugin_api() -> None:
    """cacher_git's code imports `cacher.plugin` alone from cacher (and cacher_git's own modules)."""
    sources = list((PLUGINS / "cacher-git" / "cacher_git").rglob("*.py"))
    assert len(sources) >= 4
    offenders = {str(p): sorted(_cacher_imports(p) - {"cacher.plugin"}) for p in sources}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_plugins_import_only_the_public_plugin_api() -> None:
    """Every package under plugins/ (code and tests) and every example in docs/plugins.md
    imports `cacher.plugin` and `cacher.testing` themselves, never a module behind them, so
    cacher's internals (and the kit's submodules) can move."""
    sources = [p for p in PLUGINS.rglob("*.py") if "build" not in p.parts]
    assert any("tests" in p.parts for p in sources)
    offenders = {str(p.relative_to(PLUGINS)): sorted(_cacher_imports(p) - set(PUBLIC)) for p in sources}
    assert {k: v for k, v in offenders.items() if v} == {}
    docs = (PLUGINS.parent / "docs" / "plugins.md").read_text()
    examples = re.findall(r"```python\n(.*?)```", docs, flags=re.S)
    imported = {m for block in examples for m in re.findall(r"^\s*(?:from|import) (cacher(?:\.\w+)*)\b", block, flags=re.M)}
    assert imported and imported <= set(PUBLIC), imported


def test_mypy_checks_the_plugins_too() -> None:
    """``mypy`` (pyproject's [tool.mypy] files) checks cacher and every plugin package that
    ships ``py.typed``: a plugin that promises types is held to them."""
    import tomllib

    files = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    typed = [str(p.parent.relative_to(ROOT.parent)) for p in PLUGINS.glob("*/*/py.typed")]
    assert typed and {"cacher", *typed} <= set(files), (typed, files)


def _type_checking_homes() -> dict[str, str]:
    """The names plugin.py imports under ``if TYPE_CHECKING:``, each with its home as `_HOMES`
    spells it (``module``, or ``module:attribute`` for a renamed import)."""
    tree = ast.parse((ROOT / "plugin.py").read_text())
    block = next(
        n for n in tree.body
        if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"
    )
    homes: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module, ast.dump(node)
        for alias in node.names:
            renamed = alias.asname and alias.asname != alias.name
            homes[alias.asname or alias.name] = f"{node.module}:{alias.name}" if renamed else node.module
    return homes


def test_the_plugin_api_names_what_it_exports() -> None:
    """``__all__``, the imports type checkers read and the table the interpreter reads name the
    same objects, and each name resolves to the object where it lives."""
    import importlib

    import cacher.plugin

    homes: dict[str, str] = cacher.plugin._HOMES
    assert cacher.plugin.__all__ == sorted(cacher.plugin.__all__)
    assert set(cacher.plugin.__all__) == set(homes)
    assert _type_checking_homes() == homes
    assert dir(cacher.plugin) == cacher.plugin.__all__
    for name, home in homes.items():
        module, _, attribute = home.partition(":")
        assert getattr(cacher.plugin, name) is getattr(importlib.import_module(module), attribute or name)
    with pytest.raises(ImportError, match="NoSuchName"):
        exec("from cacher.plugin import NoSuchName", {})


def test_the_plugin_api_imports_a_name_when_it_is_used() -> None:
    """Importing `cacher.plugin` loads no other cacher module, and one name loads its own home
    only: the ``file`` kind of ``cacher exists`` must not bring in tar or ``subprocess``."""
    code = (
        "import sys\n"
        "import cacher.plugin\n"
        "print(sorted(m for m in sys.modules if m.startswith('cacher')))\n"
        "from cacher.plugin import Kind\n"
        "print('subprocess' in sys.modules, 'cacher.tar' in sys.modules, 'cacher.piped' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["['cacher', 'cacher.plugin']", "False False False"], out


ARCHITECTURE = ROOT.parent / "docs" / "architecture.md"


def _tree_entries() -> set[str]:
    """The modules and packages the tree at the top of docs/architecture.md names, as paths
    under cacher/ (``stores/s3/rest.py``, ``stores/s3/``), placed by their indentation."""
    block = next(b for b in re.findall(r"```\n(.*?)```", ARCHITECTURE.read_text(), flags=re.S) if b.startswith("cacher/\n"))
    entries: set[str] = set()
    parents: list[tuple[int, str]] = [(0, "")]
    for line in block.splitlines()[1:]:
        found = re.match(r"( *)(\S+)", line)
        if not found:
            continue
        indent, name = len(found[1]), found[2]
        if indent == 0:
            break  # past cacher/ (plugins/cacher-git)
        if not name.endswith((".py", "/")):
            continue  # a description's second line
        while parents[-1][0] >= indent:
            parents.pop()
        path = parents[-1][1] + name
        entries.add(path)
        if name.endswith("/"):
            parents.append((indent, path))
    return entries


def _must_be_named(path: Path) -> bool:
    """Every module, and a package's ``__init__.py`` when it defines a function or a class
    (one that only re-exports is its package's line)."""
    if path.name != "__init__.py":
        return True
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) for n in ast.parse(path.read_text()).body)


def test_the_architecture_page_names_every_module() -> None:
    """docs/architecture.md's tree names every package and module of cacher/ where it is, and
    nothing that is gone; a failure lists each missing one with its docstring's first line."""
    sources = [p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {str(p.relative_to(ROOT)): p for p in sources if _must_be_named(p)}
    packages = {str(p.parent.relative_to(ROOT)) + "/": p for p in sources if p.name == "__init__.py" and p != ROOT / "__init__.py"}
    optional = {str(p.relative_to(ROOT)) for p in sources if p.name == "__init__.py"}
    named = _tree_entries()
    missing = [
        f"{name:28} {(ast.get_docstring(ast.parse(path.read_text())) or '(no docstring)').splitlines()[0]}"
        for name, path in sorted({**modules, **packages}.items()) if name not in named
    ]
    gone = sorted(named - set(modules) - set(packages) - optional)
    assert not missing and not gone, "not in docs/architecture.md:\n" + "\n".join(missing) + f"\ngone: {gone}"
