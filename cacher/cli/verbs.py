"""The verbs of every installed kind, built from its declaration.

A kind declares its targets and options (`cacher.kind.Kind`); this module turns them into
cyclopts commands (``upload``, ``download``, ``exists``, ``ensure``), so a third-party kind
gets its subcommand with no change here.
"""

from __future__ import annotations

import dataclasses
import inspect
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Annotated, Any

from cyclopts import Parameter

from cacher import config, engine
from cacher.cli.options import OutputOptions, Session, StoreOptions
from cacher.cli.report import github_output, result_document
from cacher.codec import Codec
from cacher.errors import CacheMiss, CacherError, ConfigError, ExitCode, UsageError
from cacher.keytemplate import fits_this_machine
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
_COMMAND = P("command", P.VAR_POSITIONAL, annotation=_annotated(str, "The build command, after '--'."))


def _command(name: str, doc: str, params: list[P], body: Callable[..., int]) -> Callable[..., int]:
    def command(*args: Any, **kwargs: Any) -> int:
        return body(*args, **kwargs)

    command.__name__ = name
    command.__doc__ = doc
    command.__signature__ = inspect.Signature(params, return_annotation=int)  # type: ignore[attr-defined]
    return command


class _Verbs:
    """The commands of one kind, sharing how they resolve a session, a codec and a result."""

    def __init__(self, registry: Registry, name: str) -> None:
        self.registry, self.name = registry, name

    def _setup(
        self, store: StoreOptions | None, output: OutputOptions | None, key: str, codec: str | None
    ) -> tuple[Session, Kind, str, Codec]:
        session = Session(store, self.registry, output)
        kind = self.registry.kind(self.name)
        stored_key = session.key(key)
        try:
            chosen = choose_codec(self.registry, kind, stored_key, codec, session.settings.compression_level)
        except ConfigError as exc:
            if session.settings.compression_level is None:
                raise
            where = config.origin(session.settings, "compression_level")
            raise ConfigError(f"{exc.message} (set by {where})", hint=exc.hint) from None
        return session, kind, stored_key, chosen

    def _upload(
        self,
        session: Session,
        kind: Kind,
        key: str,
        codec: Codec,
        targets: list[str],
        options: dict[str, Any],
        force: bool,
        command: str | None,
    ) -> engine.Result:
        """Upload and report; a soft failure is a result with outcome ``failed``."""
        progress = session.report.progress(f"uploading {key}")
        try:
            result = engine.upload(
                session.store,
                kind,
                codec,
                key,
                targets,
                options,
                force=force,
                soft_fail=session.soft_fail,
                read_only=bool(session.settings.read_only),
                progress=progress,
            )
        finally:
            if progress is not None:
                progress.close()
        session.report.transfer(command, result)
        return result

    def _download(
        self,
        session: Session,
        kind: Kind,
        key: str,
        codec: Codec,
        target: str | None,
        options: dict[str, Any],
        restore_keys: list[str],
        command: str | None,
        refused_is_miss: bool = False,
    ) -> engine.Result | None:
        """Download and report (JSON only when ``command`` is given); None on a miss, reported
        as a result line (a miss is not an error)."""
        progress = session.report.progress(f"downloading {key}")
        try:
            result = engine.download(
                session.store,
                kind,
                codec,
                key,
                target,
                options,
                codecs=self.registry.codec,  # decoding: the level does not apply
                restore_keys=restore_keys,
                soft_fail=session.soft_fail,
                progress=progress,
                refused_is_miss=refused_is_miss,
                fits=fits_this_machine if session.settings.arch_suffix else None,
                read_only=bool(session.settings.read_only),
                fallback_stores=session.fallback_stores,
            )
        except CacheMiss as miss:
            if progress is not None:
                progress.close()
            github_output(False, None, session.report)
            session.report.miss(command, self.name, key, miss)
            return None
        finally:
            if progress is not None:
                progress.close()
        github_output(result.match == "exact", result.matched_key, session.report)
        session.report.transfer(command, result)
        return result

    def upload(
        self,
        key: str,
        *targets: str,
        force: bool = False,
        codec: str | None = None,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
        **options: Any,
    ) -> int:
        session, kind, stored_key, chosen = self._setup(store, output, key, codec)
        if not targets or not all(targets):
            raise UsageError(f"cacher {self.name} upload needs {kind.upload_target.metavar}")
        self._upload(session, kind, stored_key, chosen, list(targets), options, force, "upload")
        return 0

    def download(
        self,
        key: str,
        *targets: str,
        codec: str | None = None,
        restore_key: list[str] | None = None,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
        **options: Any,
    ) -> int:
        session, kind, stored_key, chosen = self._setup(store, output, key, codec)
        target = "\n".join(targets) if targets else None  # several (Target.many): one per line
        restore = restore_key or []
        found = self._download(session, kind, stored_key, chosen, target, options, restore, "download")
        return ExitCode.OK if found is not None else ExitCode.DOWNLOAD_MISS

    def exists(
        self, key: str, *, store: StoreOptions | None = None, output: OutputOptions | None = None
    ) -> int:
        session = Session(store, self.registry, output)
        stored_key = session.key(key)
        presence = engine.exists(session.store, stored_key, soft_fail=session.soft_fail)
        if presence.failure is not None:
            session.report.warn(f"soft failure, treated as a miss: {presence.failure}")
        session.report.emit({"command": "exists", "key": stored_key, "exists": presence.found})
        return 0 if presence.found else 1

    def ensure(
        self,
        key: str,
        target: str,
        *command: str,
        codec: str | None = None,
        restore_key: list[str] | None = None,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
        **options: Any,
    ) -> int:
        if not command or not command[0].strip():
            raise UsageError(
                f"cacher {self.name} ensure needs a build command after '--'",
                hint="is the variable naming the command unset?" if command else None,
            )
        session, kind, stored_key, chosen = self._setup(store, output, key, codec)
        document: dict[str, Any] = {"command": "ensure", "key": stored_key, "kind": self.name}
        restored = self._download(
            session, kind, stored_key, chosen, target, options, restore_key or [], None,
            refused_is_miss=True,
        )
        if restored is not None:
            document.update(
                match=restored.match, matched_key=restored.matched_key, restore=result_document(restored)
            )
        else:
            document.update(match="miss", matched_key=None, restore=None)
        if document["match"] == "exact":
            hit = "local" if restored is not None and restored.outcome == "local" else "hit"
            session.report.emit(
                {**document, "outcome": hit, "failed": None, "build_status": None, "upload": None}
            )
            return 0
        status = self._build(session, command)
        if status != 0:
            failed = {"outcome": "build-failed", "failed": "build", "build_status": status, "upload": None}
            session.report.emit({**document, **failed})
            return status
        try:
            uploaded = self._upload(session, kind, stored_key, chosen, [target], options, True, None)
        except CacherError as exc:  # cacher's side failed after the build: main reports it, saying so
            exc.message += " (the build command succeeded; its result was not stored)"
            exc.details.update({**document, "build_status": 0, "upload": None})
            raise
        if uploaded.outcome == "failed":
            session.report.emit(
                {**document, "outcome": "failed", "failed": "cacher", "build_status": 0, "upload": None,
                 "notes": [uploaded.reason]}
            )
            return 0
        outcome = "read-only" if uploaded.outcome == "read-only" else "built"
        built = {"outcome": outcome, "failed": None, "build_status": 0, "upload": result_document(uploaded)}
        session.report.emit({**document, **built})
        return 0

    @staticmethod
    def _build(session: Session, command: tuple[str, ...]) -> int:
        """Run the build command; its exit status as a shell gives it: its own code, 128+N when
        killed by signal N, 127 when the command does not exist, 126 when it cannot be run."""
        session.report.say(f"running: {' '.join(command)}")
        try:
            # With --json, stdout belongs to the JSON document: the build's output goes to stderr.
            status = subprocess.call(list(command), stdout=sys.stderr if session.report.json_output else None)
        except OSError as exc:
            status = 127 if isinstance(exc, FileNotFoundError) else 126
            session.report.error(
                f"the build command failed: cannot run {command[0]}: {exc.strerror} (exit {status}); "
                "nothing stored"
            )
            return status
        if status < 0:
            name = _signal_name(-status)
            status = 128 - status
            session.report.say(f"the build command failed: killed by {name} (exit {status}); nothing stored")
        elif status != 0:
            session.report.say(
                f"the build command failed with exit {status} (passed through); nothing stored"
            )
        return status


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def make_verbs(registry: Registry, name: str, kind_cls: type[Kind]) -> list[Callable[..., int]]:
    """The commands of one kind."""
    verbs = _Verbs(registry, name)
    up_t, down_t = kind_cls.upload_target, kind_cls.download_target
    up_opts, down_opts = _option_params(kind_cls, "upload"), _option_params(kind_cls, "download")
    up_params = [_KEY, _target_param(up_t, up_t.metavar.lower()), _FORCE, _CODEC, *up_opts, _STORE, _OUTPUT]
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
    return [
        _command(
            "upload",
            f"Upload {up_t.metavar} under KEY; an existing key is skipped unless --force.",
            up_params,
            verbs.upload,
        ),
        _command(
            "download", f"Restore KEY into {m}; a miss without fallback exits 3.", down_params, verbs.download
        ),
        _command("exists", "Exit 0 if KEY is stored, 1 if not.", [_KEY, _STORE, _OUTPUT], verbs.exists),
        _command(
            "ensure",
            f"Restore KEY into {m}, or run the command after '--' and upload {m} under KEY if it succeeds.",
            ensure_params,
            verbs.ensure,
        ),
    ]
