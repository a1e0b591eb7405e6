"""The verbs of every installed kind, built from its declaration.

A kind declares its targets and options (`cacher.kind.Kind`); this module turns them into
cyclopts commands (``upload``, ``download``, ``exists``, ``ensure``), so a third-party kind
gets its subcommand with no change here. What each verb does is `cacher.cli.kindverbs`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Annotated, Any

from cyclopts import Parameter

from cacher.cli.kindverbs import KindVerbs
from cacher.cli.options import OutputOptions, StoreOptions, open_session
from cacher.kind import Kind, Target
from cacher.registry import Registry

P = inspect.Parameter


def _annotated(kind: Any, help: str) -> Any:
    return Annotated[kind, Parameter(help=help)]


def _target_param(target: Target, name: str, *, required: bool | None = None) -> P:
    if target.many:
        return P(name, P.VAR_POSITIONAL, annotation=_annotated(str, target.help))
    if not (target.required if required is None else required):
        return P(name, P.POSITIONAL_ONLY, annotation=_annotated(str | None, target.help), default=None)
    return P(name, P.POSITIONAL_ONLY, annotation=_annotated(str, target.help))


def _option_params(kind: type[Kind], verb: str) -> list[P]:
    out = []
    for opt in kind.options:
        if verb in opt.verbs:
            is_bool = opt.type is bool
            annotation = _annotated(bool if is_bool else str | None, opt.help)
            out.append(P(opt.name, P.KEYWORD_ONLY, annotation=annotation, default=False if is_bool else None))
    return out


_KEY = P("key", P.POSITIONAL_ONLY, annotation=_annotated(str, "The cache key."))
_STORE = P("store", P.KEYWORD_ONLY, annotation=StoreOptions | None, default=None)
_OUTPUT = P("output", P.KEYWORD_ONLY, annotation=OutputOptions | None, default=None)
_CODEC = P(
    "codec",
    P.KEYWORD_ONLY,
    annotation=_annotated(str | None, "Codec instead of the one the key's suffix picks: zstd, gzip, none."),
    default=None,
)
_FORCE = P(
    "force", P.KEYWORD_ONLY, annotation=_annotated(bool, "Upload even if the key exists."), default=False
)
_RESTORE = P(
    "restore_key",
    P.KEYWORD_ONLY,
    annotation=Annotated[
        list[str] | None,
        Parameter(
            help="On a miss, restore the newest object whose key starts with this prefix "
            "(repeatable, in order).",
            negative=(),  # no --empty-restore-key: an empty list is what not giving it means
        ),
    ],
    default=None,
)
_BASE = P(
    "base",
    P.KEYWORD_ONLY,
    annotation=_annotated(
        str | None,
        "With tree_format cas: the stored key whose contents need not be sent again "
        "(default: the key itself, then the newest under each --restore-key).",
    ),
    default=None,
)
_UPLOAD_RESTORE = P(
    "restore_key",
    P.KEYWORD_ONLY,
    annotation=Annotated[
        list[str] | None,
        Parameter(
            help="With tree_format cas and no --base: the newest tree stored under this prefix is "
            "the base (repeatable, in order).",
            negative=(),
        ),
    ],
    default=None,
)
_COMMAND = P("command", P.VAR_POSITIONAL, annotation=_annotated(str, "The build command, after '--'."))


def _command(name: str, doc: str, params: list[P], body: Callable[..., int]) -> Callable[..., int]:
    def command(*args: Any, **kwargs: Any) -> int:
        return body(*args, **kwargs)

    command.__name__ = name
    command.__doc__ = doc
    command.__signature__ = inspect.Signature(params, return_annotation=int)  # type: ignore[attr-defined]
    return command


def make_verbs(registry: Registry, name: str, kind_cls: type[Kind]) -> list[Callable[..., int]]:
    """The commands of one kind."""
    verbs = KindVerbs(registry, name)

    def upload(
        key: str,
        *targets: str,
        force: bool = False,
        codec: str | None = None,
        base: str | None = None,
        restore_key: list[str] | None = None,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
        **options: Any,
    ) -> int:
        session = open_session(store, registry, output)
        return verbs.upload(
            session, key, targets, force=force, codec=codec, base=base, restore_key=restore_key,
            options=options,
        )

    def download(
        key: str,
        *targets: str,
        codec: str | None = None,
        restore_key: list[str] | None = None,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
        **options: Any,
    ) -> int:
        session = open_session(store, registry, output)
        return verbs.download(session, key, targets, codec=codec, restore_key=restore_key, options=options)

    def exists(key: str, *, store: StoreOptions | None = None, output: OutputOptions | None = None) -> int:
        return verbs.exists(open_session(store, registry, output), key)

    def ensure(
        key: str,
        target: str,
        *command: str,
        codec: str | None = None,
        restore_key: list[str] | None = None,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
        **options: Any,
    ) -> int:
        verbs.check_build_command(command)
        session = open_session(store, registry, output)
        return verbs.ensure(
            session, key, target, command, codec=codec, restore_key=restore_key, options=options
        )

    def export(key: str, *, store: StoreOptions | None = None) -> int:
        return verbs.export(open_session(store, registry, None), key)

    up_t, down_t = kind_cls.upload_target, kind_cls.download_target
    up_opts, down_opts = _option_params(kind_cls, "upload"), _option_params(kind_cls, "download")
    up_params = [_KEY, _target_param(up_t, up_t.metavar.lower()), _FORCE, _CODEC]
    if kind_cls.archive:  # trees: the content-addressed format's base
        up_params += [_BASE, _UPLOAD_RESTORE]
    up_params += [*up_opts, _STORE, _OUTPUT]
    down_params = [
        _KEY,
        _target_param(down_t, down_t.metavar.lower()),
        _CODEC,
        _RESTORE,
        *down_opts,
        _STORE,
        _OUTPUT,
    ]
    ensure_params = [
        _KEY,
        _target_param(dataclasses.replace(down_t, many=False), down_t.metavar.lower(), required=True),
        _COMMAND,
        _CODEC,
        _RESTORE,
        *down_opts,
        _STORE,
        _OUTPUT,
    ]
    m = down_t.metavar
    # A stored tree as tar: the dir kind's (a paths key is bound to its path list, docker's is an image).
    exported = "Write the tree KEY stores (either tree format) to stdout as a plain tar; a miss exits 3."
    archive = [_command("export", exported, [_KEY, _STORE], export)] if name == "dir" else []
    return [
        _command(
            "upload",
            f"Upload {up_t.metavar} under KEY; an existing key is skipped unless --force.",
            up_params,
            upload,
        ),
        _command(
            "download", f"Restore KEY into {m}; a miss without fallback exits 3.", down_params, download
        ),
        _command("exists", "Exit 0 if KEY is stored, 1 if not.", [_KEY, _STORE, _OUTPUT], exists),
        _command(
            "ensure",
            f"Restore KEY into {m}, or run the command after '--' and upload {m} under KEY if it succeeds.",
            ensure_params,
            ensure,
        ),
        *archive,
    ]
