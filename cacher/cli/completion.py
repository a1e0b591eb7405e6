"""``cacher completion SHELL``: print or install a completion script for bash, zsh or fish."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from cyclopts import App, Parameter

from cacher.cli.report import Reporter


def completion_command(app: App) -> Callable[..., int]:
    def completion(
        shell: Annotated[Literal["bash", "zsh", "fish"], Parameter(help="The shell.")],
        /,
        *,
        install: Annotated[
            bool, Parameter(help="Write the script where the shell finds it and source it from its rc file.")
        ] = False,
    ) -> int:
        """Print the completion script for SHELL, or install it with --install."""
        if install:
            path = app.install_completion(shell=shell, add_to_startup=True)
            Reporter().say(f"installed {shell} completion in {path}; open a new shell to use it")
        else:
            print(app.generate_completion(prog_name="cacher", shell=shell))
        return 0

    return completion
