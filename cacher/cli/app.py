"""The cyclopts application: core commands plus one sub-app per installed kind."""

from __future__ import annotations

from typing import Any

from cyclopts import App

from cacher import __version__
from cacher.cli.completion import completion_command
from cacher.cli.keycmd import key_command
from cacher.cli.objects import delete_command, list_command, prune_command, stats_command
from cacher.cli.pluginscmd import plugins_command
from cacher.cli.verbs import make_verbs
from cacher.errors import PluginError
from cacher.registry import Registry

TOP_LEVEL_KIND = "file"


def build_app(registry: Registry) -> App:
    app = App(
        name="cacher",
        version=__version__,
        help="Cache files, directories and docker images in any object store.",
        help_on_error=False,
    )
    kinds = registry.names("kinds")
    if TOP_LEVEL_KIND in kinds:
        for command in _verbs(registry, TOP_LEVEL_KIND):
            app.command(command)
    app.command(list_command(registry), name="list")
    app.command(delete_command(registry), name="delete")
    app.command(stats_command(registry), name="stats")
    app.command(prune_command(registry), name="prune")
    app.command(key_command(registry), name="key")
    app.command(plugins_command(registry), name="plugins")
    _setup_commands(app, registry)
    app.command(completion_command(app), name="completion")
    for name in kinds:
        sub = App(name=name, help=_summary(registry, name), help_on_error=False)
        for command in _verbs(registry, name):
            sub.command(command)
        app.command(sub)
    return app


def _setup_commands(app: App, registry: Registry) -> None:
    from cacher.cli import setup

    app.command(setup.init_command(registry), name="init")
    app.command(setup.doctor_command(registry), name="doctor")


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
