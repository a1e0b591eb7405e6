"""The cyclopts application: core commands plus one sub-app per installed kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cyclopts import App

from cacher import __version__
from cacher.cli.commands import CORE_COMMANDS
from cacher.cli.completion import completion_command
from cacher.cli.verbs import make_verbs
from cacher.errors import PluginError
from cacher.kind import VERBS
from cacher.registry import Registry

TOP_LEVEL_KIND = "file"

#: What ``cacher --help`` adds below the commands: the flags that may come before a command,
#: the exit codes, the main variables and where the documentation is (tests/cli/test_help.py
#: holds each list to the code and docs/cli.md).
TOP_LEVEL_EPILOGUE = """\
Flags that may come before the command as well as after it (`cacher -q --json dir download KEY DIR`):

- `-q`, `--quiet`: no result or warning lines; errors still print.
- `--json`: one JSON document on stdout for every outcome (docs/json.md).
- `--debug`: an error comes with its traceback (or `CACHER_DEBUG=1`).
- `--soft-fail`: a store that fails is a warning and a miss, not exit 2 (or `CACHER_SOFT_FAIL=1`).

Exit codes: 0 ok; 1 miss for `exists` and `delete`; 2 any error (usage, config, credentials,
network, integrity); 3 `download` missed with no fallback; `ensure` passes on its build
command's status (127 not found, 128+N for signal N); 130/143 interrupted.

Main variables (flags override them; the config file is below them):
`CACHER_BUCKET`, `CACHER_ENDPOINT`, `CACHER_PREFIX`, `CACHER_S3_KEY_ID`, `CACHER_S3_SECRET`,
`CACHER_BACKEND`, `CACHER_SCOPE`, `CACHER_SOFT_FAIL`, `CACHER_OFFLINE`, `CACHER_LOCAL_TIER`,
`CACHER_CONFIG`, `CACHER_DEBUG`; `cacher doctor` shows every setting and where it came from.

Documentation: docs/index.md in cacher's source (docs/cli.md: commands and exit codes;
docs/configuration.md: every setting); `cacher COMMAND --help` for one command.
"""

#: A command's help has no epilogue: "" stops cyclopts inheriting the top level's (None would not).
_NONE = ""


def build_app(registry: Registry, first_arg: str | None = None) -> App:
    """The application; given the command line's first argument, only the command it names.

    Assembling every kind's verbs imports every kind (plugins included) and has cyclopts
    inspect each signature: most of a transfer's start-up. A name that is not a command, or
    none, gets the whole application, so help and error messages list everything.
    """
    app = App(
        name="cacher",
        version=__version__,
        help="Cache files, directories and docker images in any object store.",
        help_epilogue=TOP_LEVEL_EPILOGUE,
        help_on_error=False,
    )
    kinds = registry.names("kinds")
    core = _core_commands(registry)
    if first_arg in kinds:
        _add_kind(app, registry, first_arg)
        return app
    if first_arg in core and first_arg != "completion":
        app.command(core[first_arg](), name=first_arg, help_epilogue=_NONE)
        return app
    if TOP_LEVEL_KIND in kinds:
        verbs = _verbs(registry, TOP_LEVEL_KIND)
        if first_arg in {v.__name__ for v in verbs}:
            app.command(next(v for v in verbs if v.__name__ == first_arg), help_epilogue=_NONE)
            return app
        for command in verbs:
            app.command(command, help_epilogue=_NONE)
    for name, make in core.items():
        if name != "completion":
            app.command(make(), name=name, help_epilogue=_NONE)
    app.command(completion_command(app), name="completion", help_epilogue=_NONE)
    for name in kinds:
        _add_kind(app, registry, name)
    return app


def _core_commands(registry: Registry) -> dict[str, Callable[[], Any]]:
    """The commands that are not a kind's verbs (`cacher.cli.commands`), each built (and its
    module imported) only when asked for; ``completion`` is built from the application."""
    import importlib

    def builder(where: str) -> Callable[[], Any]:
        module, _, name = where.partition(":")
        return lambda: getattr(importlib.import_module(module), name)(registry)

    return {
        name: builder(where) if name != "completion" else lambda: None
        for name, where in CORE_COMMANDS.items()
    }


def _add_kind(app: App, registry: Registry, name: str) -> None:
    sub = App(name=name, help=_summary(registry, name), help_on_error=False, help_epilogue=_NONE)
    for command in _verbs(registry, name):
        sub.command(command)
    app.command(sub)


def _summary(registry: Registry, name: str) -> str:
    try:
        summary: str = getattr(registry.get("kinds", name), "summary", "")
    except PluginError as exc:
        return f"(broken plugin: {exc.message})"
    return summary or f"The {name} kind."


def _verbs(registry: Registry, name: str) -> list[Any]:
    try:
        kind_cls = registry.get("kinds", name)
    except PluginError as exc:
        return _broken_verbs(exc)
    return make_verbs(registry, name, kind_cls)


def _broken_verbs(error: PluginError) -> list[Any]:
    def fail(*args: str, **kwargs: Any) -> int:
        raise PluginError(error.message)

    out = []
    for verb in VERBS:

        def command(*args: str, _f: Any = fail) -> int:
            return int(_f(*args))

        command.__name__ = verb
        command.__doc__ = f"Unavailable: {error.message}"
        out.append(command)
    return out
