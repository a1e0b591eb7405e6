"""cacher's command names, declared once: the verbs every kind has and the core commands.

The application builds its commands from here (`cacher.cli.app`), the fast path takes the
transfer verbs (`cacher.cli.fastpath`) and `cacher.cli.main` names the command of an error
document from here without building the application. Light on purpose: names and the
``module:function`` that builds each core command, imported only when that command is wanted.
"""

from __future__ import annotations

from cacher.kind import VERBS

#: The transfer verbs every kind has (`cacher.kind.VERBS`), which the fast path takes.
TRANSFER_VERBS = VERBS
#: Every verb of a kind: the transfer verbs, ``ensure`` and (the ``dir`` kind) ``export``.
KIND_VERBS = (*VERBS, "ensure", "export")
#: The commands that are not a kind's verbs, and the function that builds each from the
#: registry (``completion`` is built from the application itself).
CORE_COMMANDS = {
    "list": "cacher.cli.objects:list_command",
    "delete": "cacher.cli.objects:delete_command",
    "stats": "cacher.cli.objects:stats_command",
    "prune": "cacher.cli.objects:prune_command",
    "key": "cacher.cli.keycmd:key_command",
    "scope": "cacher.cli.scopecmd:scope_command",
    "plugins": "cacher.cli.pluginscmd:plugins_command",
    "init": "cacher.cli.setup:init_command",
    "doctor": "cacher.cli.setup:doctor_command",
    "completion": "cacher.cli.completion:completion_command",
}
