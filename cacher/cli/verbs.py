"""``upload``, ``download`` and ``exists`` for every installed kind, built from its declaration.

A kind declares its targets and options (`cacher.kind.Kind`); this module turns them into
cyclopts commands, so a third-party kind gets its subcommand with no change here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from cyclopts import Parameter

from cacher import engine
from cacher.cli import report
from cacher.cli.options import Session, StoreOptions
from cacher.codec import Codec
from cacher.errors import UsageError
from cacher.kind import Kind, Target
from cacher.registry import Registry

P = inspect.Parameter


def choose_codec(registry: Registry, kind: Kind, key: str, override: str | None, level: int | None) -> Codec:
    """``--codec`` if given; for archive kinds the key's suffix (default zstd); else none."""
    if override:
        return registry.codec(override, level=level)
    if kind.archive:
        lowered = key.lower()
        matches = []
        for info in registry.infos("codecs"):
            suffixes: tuple[str, ...] = getattr(info.plugin, "suffixes", ())
            matches += [(len(s), info.name) for s in suffixes if lowered.endswith(s)]
        name = max(matches)[1] if matches else "zstd"
        return registry.codec(name, level=level)
    return registry.codec("none")


def _annotated(kind: Any, help: str) -> Any:
    return Annotated[kind, Parameter(help=help)]


def _target_param(target: Target, name: str) -> P:
    if target.many:
        return P(name, P.VAR_POSITIONAL, annotation=_annotated(str, target.help))
    if not target.required:
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


_KEY = P("key", P.POSITIONAL_ONLY, annotation=Annotated[str, Parameter(help="The cache key.")])
_STORE = P("store", P.KEYWORD_ONLY, annotation=StoreOptions | None, default=None)
_CODEC = P(
    "codec",
    P.KEYWORD_ONLY,
    annotation=_annotated(str | None, "Codec instead of the one the key's suffix picks: zstd, gzip, none."),
    default=None,
)
_FORCE = P(
    "force", P.KEYWORD_ONLY, annotation=_annotated(bool, "Upload even if the key exists."), default=False
)


def _command(name: str, doc: str, params: list[P], body: Callable[..., int]) -> Callable[..., int]:
    def command(*args: Any, **kwargs: Any) -> int:
        return body(*args, **kwargs)

    command.__name__ = name
    command.__doc__ = doc
    command.__signature__ = inspect.Signature(params, return_annotation=int)  # type: ignore[attr-defined]
    return command


def make_verbs(registry: Registry, name: str, kind_cls: type[Kind]) -> list[Callable[..., int]]:
    """The three commands of one kind."""
    up_t, down_t = kind_cls.upload_target, kind_cls.download_target
    up_opts, down_opts = _option_params(kind_cls, "upload"), _option_params(kind_cls, "download")

    def upload(
        key: str,
        *targets: str,
        force: bool = False,
        codec: str | None = None,
        store: StoreOptions | None = None,
        **options: Any,
    ) -> int:
        session = Session(store, registry)
        kind = registry.kind(name)
        stored_key = session.key(key)
        if not targets or not all(targets):
            raise UsageError(f"cacher {name} upload needs {up_t.metavar}")
        chosen = choose_codec(registry, kind, stored_key, codec, session.settings.compression_level)
        result = engine.upload(session.store, kind, chosen, stored_key, list(targets), options, force=force)
        report.transfer(result)
        return 0

    def download(
        key: str,
        target: str | None = None,
        *,
        codec: str | None = None,
        store: StoreOptions | None = None,
        **options: Any,
    ) -> int:
        session = Session(store, registry)
        kind = registry.kind(name)
        stored_key = session.key(key)
        level = session.settings.compression_level
        chosen = choose_codec(registry, kind, stored_key, codec, level)
        result = engine.download(
            session.store,
            kind,
            chosen,
            stored_key,
            target,
            options,
            codecs=lambda n: registry.codec(n, level=level),
        )
        report.transfer(result)
        return 0

    def exists(key: str, *, store: StoreOptions | None = None) -> int:
        session = Session(store, registry)
        return 0 if engine.exists(session.store, session.key(key)) else 1

    up_params = [_KEY, _target_param(up_t, up_t.metavar.lower()), _FORCE, _CODEC, *up_opts, _STORE]
    down_params = [_KEY, _target_param(down_t, down_t.metavar.lower()), _CODEC, *down_opts, _STORE]
    return [
        _command(
            "upload",
            f"Upload {up_t.metavar} under KEY ({name} kind); an existing key is skipped unless --force.",
            up_params,
            lambda key, *targets, **kw: upload(key, *targets, **kw),
        ),
        _command(
            "download",
            f"Restore KEY into {down_t.metavar} ({name} kind); a miss without fallback exits 3.",
            down_params,
            lambda key, target=None, **kw: download(key, target, **kw),
        ),
        _command("exists", "Exit 0 if KEY is stored, 1 if not.", [_KEY, _STORE], exists),
    ]
