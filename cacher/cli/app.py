"""The cyclopts application: core commands plus one sub-app per installed kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cyclopts import App

from cacher import __version__
from cacher.cli.completion import completion_command
from cacher.cli.keycmd import key_command
from cacher.cli.objects import delete_command, list_command, prune_command, stats_command
from cacher.cli.pluginscmd import plugins_command
from cacher.cli.scopecmd import scope_command
from cacher.cli.verbs import make_verbs
from cacher.errors import PluginError
from cacher.registry import Registry

TOP_LEVEL_KIND = "file"


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
        help_on_error=False,
    )
    kinds = registry.names("kinds")
    core = _core_commands(registry)
    if first_arg in kinds:
        _add_kind(app, registry, first_arg)
        return app
    if first_arg in core and first_arg != "completion":
        app.command(core[first_arg](), name=first_arg)
        return app
    if TOP_LEVEL_KIND in kinds:
        verbs = _verbs(registry, TOP_LEVEL_KIND)
        if first_arg in {v.__name__ for v in verbs}:
            app.command(next(v for v in verbs if v.__name__ == first_arg))
            return app
        for command in verbs:
            app.command(command)
    for name, make in core.items():
        if name != "completion":
            app.command(make(), name=name)
    app.command(completion_command(app), name="completion")
    for name in kinds:
        _add_kind(app, registry, name)
    return app


def _core_commands(registry: Registry) -> dict[str, Callable[[], Any]]:
    """The commands that are not a kind's verbs, built only when asked for."""
    from cacher.cli import setup

    return {
        "list": lambda: list_command(registry),
        "delete": lambda: delete_command(registry),
        "stats": lambda: stats_command(registry),
        "prune": lambda: prune_command(registry),
        "key": lambda: key_command(registry),
        "scope": lambda: scope_command(registry),
        "plugins": lambda: plugins_command(registry),
        "init": lambda: setup.init_command(registry),
        "doctor": lambda: setup.doctor_command(registry),
        "completion": lambda: None,
    }


def _add_kind(app: App, registry: Registry, name: str) -> None:
    sub = App(name=name, help=_summary(registry, name), help_on_error=False)
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
    for verb in ("upload", "download", "exists"):

        def command(*args: str, _f: Any = fail) -> int:
            return int(_f(*args))

        command.__name__ = verb
        command.__doc__ = f"Unavailable: {error.message}"
        out.append(command)
    return out
