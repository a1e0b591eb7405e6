"""cacher's Python API: the CLI's operations for build scripts, without a subprocess.

``key()`` renders a key template; ``upload()``, ``download()``, ``exists()`` and ``ensure()``
do what ``cacher KIND upload|download|exists|ensure`` do, on the store the CLI would open:
settings given here as keyword arguments (the CLI's flags, by their setting names) over
``CACHER_*`` variables over the config file over the defaults (`cacher.config`), the store
behind the read-only gate and the local tier, under the scope (`cacher.job`). Results are
frozen objects whose fields are those of the ``--json`` documents (docs/json.md), with the
same outcomes; ``document()`` gives that document. Errors raise `cacher.errors.CacherError`
subclasses; a download miss is a result (outcome ``miss``), not an error. Nothing here prints:
warnings go to the ``cacher`` logger. docs/api.md documents it; its examples run as tests.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Any, Literal, Union

from cacher import config, engine
from cacher.codec import Codec
from cacher.errors import CacheMiss, UsageError
from cacher.job import Job
from cacher.keying.hashing import hash_inputs
from cacher.keying.keyfunc import KeyContext
from cacher.keying.keyrules import validate_key
from cacher.keying.keytemplate import render
from cacher.keying.scopes import check_owner
from cacher.kind import Kind
from cacher.registry import Registry
from cacher.streams import Progress

__all__ = ["Ensured", "Found", "Transfer", "download", "ensure", "exists", "key", "upload"]

#: Where the API's warnings go (a secret file others can read, a lock wait): silent unless the
#: program configures logging, as a library should be.
log = logging.getLogger("cacher")
log.addHandler(logging.NullHandler())

PathArg = Union[str, "os.PathLike[str]"]
TransferOutcome = Literal[
    "uploaded", "skipped", "read-only", "failed", "local",
    "hit", "partial", "fetched", "fetched-not-stored", "miss",
]
Match = Literal["exact", "partial", "miss"]

#: The fields of each ``--json`` transfer document (docs/json.md), by outcome.
_MISS_FIELDS = (
    "key", "kind", "outcome", "match", "matched_key", "looked_up", "store", "restore_keys", "notes",
)
_FAILED_FIELDS = ("key", "kind", "outcome", "notes")
_RESULT_FIELDS = (
    "key", "kind", "outcome", "match", "matched_key", "codec", "raw_bytes", "stored_bytes", "seconds",
    "notes", "verified", "scope", "local_tier", "blobs",
)


def _plain(value: Any) -> Any:
    """A field's value as JSON has it: tuples as lists, nested results as their documents."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Transfer):
        return value.fields()
    return value


@dataclass(frozen=True)
class Transfer:
    """One upload or download: the fields of its ``--json`` document. ``match`` is ``exact``,
    ``partial`` or ``miss`` for a download, None for an upload; ``looked_up``, ``store`` and
    ``restore_keys`` are set on a miss (what was looked up, docs/json.md)."""

    command: Literal["upload", "download"]
    key: str
    kind: str
    outcome: TransferOutcome
    match: Match | None = None
    matched_key: str | None = None
    codec: str | None = None
    raw_bytes: int = 0
    stored_bytes: int = 0
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    verified: bool = True
    scope: str | None = None
    local_tier: bool = False
    #: A content-addressed restore's contents: ``{"fetched": N, "local": M}``; else None.
    blobs: dict[str, int] | None = None
    looked_up: bool | None = None
    store: str | None = None
    restore_keys: tuple[str, ...] = ()

    @property
    def hit(self) -> bool:
        """The exact key was restored (what GitHub's ``cache-hit`` output says)."""
        return self.match == "exact"

    def fields(self) -> dict[str, Any]:
        """The document's fields without ``command``, as ``ensure`` nests it."""
        names = {"miss": _MISS_FIELDS, "failed": _FAILED_FIELDS}.get(self.outcome, _RESULT_FIELDS)
        out = {name: _plain(getattr(self, name)) for name in names}
        if "seconds" in out:
            out["seconds"] = round(self.seconds, 3)
        return out

    def document(self) -> dict[str, Any]:
        """The ``--json`` document of the same command, without ``schema``."""
        return {"command": self.command, **self.fields()}

    @classmethod
    def of(cls, command: Literal["upload", "download"], result: engine.Result) -> Transfer:
        """The engine's result as the document shows it."""
        if result.outcome == "failed":
            notes = (result.reason or "",)
            return cls(command, result.key, result.kind, "failed", codec=result.codec, notes=notes)
        return cls(
            command, result.key, result.kind, result.outcome,
            match=result.match if command == "download" else None, matched_key=result.matched_key,
            codec=result.codec, raw_bytes=result.raw_bytes, stored_bytes=result.stored_bytes,
            seconds=result.seconds, notes=result.notes, verified=result.verified, scope=result.scope,
            local_tier=result.from_local_tier,
            blobs=result.blobs,
        )

    @classmethod
    def missed(cls, kind: str, key: str, miss: CacheMiss) -> Transfer:
        """A download that restored nothing and had no fallback."""
        return cls(
            "download", key, kind, "miss", match="miss", notes=miss.notes, looked_up=miss.looked_up,
            store=miss.store, restore_keys=miss.restore_keys,
        )


@dataclass(frozen=True)
class Found:
    """What ``exists`` found; true when the key is stored. ``failure`` is the store's error
    when a soft failure answered "not stored" in its place."""

    key: str
    exists: bool
    failure: str | None = None

    def __bool__(self) -> bool:
        return self.exists

    def document(self) -> dict[str, Any]:
        """The ``--json`` document of ``exists``, without ``schema``."""
        return {"command": "exists", "key": self.key, "exists": self.exists}


@dataclass(frozen=True)
class Ensured:
    """What ``ensure`` did: restored the exact key (``hit``, ``local``), or built and stored
    (``built``, ``read-only``: not stored), or not (``build-failed``; ``failed``: the store
    failed under soft failure). ``restore`` and ``upload`` are the transfers it made."""

    key: str
    kind: str
    outcome: engine.EnsureOutcome
    failed: Literal["build", "cacher"] | None
    match: Match
    matched_key: str | None
    restore: Transfer | None
    build_status: int | None
    upload: Transfer | None
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, ensured: engine.Ensured) -> Ensured:
        """The engine's ensure as the document shows it."""
        restored, uploaded = ensured.restored, ensured.uploaded
        failed = ensured.outcome == "failed"
        return cls(
            ensured.key, ensured.kind, ensured.outcome, ensured.failed, ensured.match,
            restored.matched_key if restored is not None else None,
            Transfer.of("download", restored) if restored is not None else None,
            ensured.build_status,
            Transfer.of("upload", uploaded) if uploaded is not None and not failed else None,
            (ensured.reason or "",) if failed else (),
        )

    def document(self) -> dict[str, Any]:
        """The ``--json`` document of ``ensure``, without ``schema``."""
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        if not self.notes:
            del out["notes"]
        return {"command": "ensure", **out}


@cache
def _registry() -> Registry:
    return Registry.from_entry_points()


def _checked(name: str, value: Any) -> Any:
    """One keyword setting, checked against its declaration (`cacher.config.FIELDS`)."""
    spec = config.FIELD_BY_NAME.get(name)
    if spec is None:
        known = ", ".join(sorted(config.FIELD_BY_NAME))
        raise UsageError(f"unknown setting {name!r}", hint=f"the settings are: {known}")
    if value is None:
        return None
    if spec.type is str and isinstance(value, os.PathLike):
        value = os.fspath(value)
    wanted = (int, float) if spec.type is float else spec.type  # 30 is a fine timeout
    if isinstance(value, bool) != (spec.type is bool) or not isinstance(value, wanted):
        raise UsageError(f"setting {name} must be {spec.type.__name__}, not {type(value).__name__}")
    return value


def _job(settings: Mapping[str, Any]) -> Job:
    """The job's store and settings, opened as the CLI opens them; ``config`` names the file."""
    given = dict(settings)
    config_file = given.pop("config", None)
    flags = {name: _checked(name, value) for name, value in given.items()}
    config_flag = os.fspath(config_file) if config_file is not None else None
    return Job(flags, _registry(), config_flag=config_flag, warn=log.warning)


def _targets(path: PathArg | Sequence[PathArg]) -> list[str]:
    """One path or several, as the kind takes them."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    targets = [os.fspath(p) for p in paths]
    if not targets or not all(targets):
        raise UsageError("no path given: an empty path would name the current directory")
    return targets


def _options(kind: Kind, verb: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The kind's options for ``verb`` (``--url``, ``--exclude``...), unset ones as the CLI leaves them."""
    declared = {o.name: (False if o.type is bool else None) for o in kind.options if verb in o.verbs}
    unknown = sorted(set(given or {}) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise UsageError(f"{kind.name} {verb} takes no option {unknown[0]!r}", hint=f"its options: {known}")
    return {**declared, **(given or {})}


def key(
    template: str,
    *,
    hash_from: PathArg | Sequence[PathArg] = (),
    hash_length: int = 16,
    arch_suffix: bool = False,
) -> str:
    """The key ``template`` renders to, as ``cacher key`` prints it: ``{hash}`` is the digest
    of ``hash_from`` (files, directories, globs), inserted before the extension when the
    template has no placeholder; touches no store."""
    inputs = [hash_from] if isinstance(hash_from, (str, os.PathLike)) else list(hash_from)
    paths = [os.fspath(p) for p in inputs]
    if not 1 <= hash_length <= 64:
        raise UsageError(f"hash_length must be between 1 and 64, not {hash_length}")
    if any(not p.strip() for p in paths):
        raise UsageError("hash_from was given an empty path: it would hash the whole current directory")
    ctx = KeyContext(tuple(hash_inputs(paths)), hash_length, dict(os.environ))
    rendered = render(template, ctx, _registry().key_function, arch_suffix=arch_suffix)
    validate_key(rendered)
    return rendered


def upload(
    key: str,
    path: PathArg | Sequence[PathArg],
    *,
    kind: str = "dir",
    force: bool = False,
    codec: str | None = None,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    **settings: Any,
) -> Transfer:
    """Store ``path`` under ``key`` as ``cacher KIND upload`` does: outcome ``uploaded``,
    ``skipped`` (already stored; ``force`` overwrites), ``read-only``, ``local`` (offline) or
    ``failed`` (soft failure). ``settings``: e.g. ``bucket=``, ``scope=``, ``offline=``."""
    job = _job(settings)
    check_owner(key, kind)
    the_kind, stored, chosen = _setup(job, kind, key, codec)
    opts = _options(the_kind, "upload", options)
    request = engine.UploadRequest(the_kind, chosen, stored, _targets(path), opts, force=force)
    return _store(job, replace(job.for_upload(request), progress=progress))


def download(
    key: str,
    path: PathArg | Sequence[PathArg],
    *,
    kind: str = "dir",
    restore_keys: Sequence[str] = (),
    codec: str | None = None,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    **settings: Any,
) -> Transfer:
    """Restore ``key`` into ``path`` as ``cacher KIND download`` does: the exact key (``hit``),
    else the newest object under each of ``restore_keys`` (``partial``), else the kind's
    fallback (``fetched``), else outcome ``miss``, which is a result, not an error."""
    job = _job(settings)
    the_kind, stored, chosen = _setup(job, kind, key, codec)
    opts = _options(the_kind, "download", options)
    if the_kind.fallback_requested(opts):  # a fallback stores what it makes
        check_owner(key, kind)
    target = "\n".join(_targets(path))  # several (the kind's Target.many): one per line
    request = engine.DownloadRequest(the_kind, chosen, stored, target, opts, tuple(restore_keys))
    return _restore(job, replace(request, progress=progress))


def _setup(job: Job, kind: str, key: str, codec: str | None) -> tuple[Kind, str, Codec]:
    """The kind, the key as stored, and the codec, as the CLI resolves them."""
    the_kind = job.registry.kind(kind)
    stored = job.key(key)
    return the_kind, stored, job.codec(the_kind, stored, codec)


def _store(job: Job, request: engine.UploadRequest) -> Transfer:
    """Run an upload under the job's soft-failure policy."""
    return Transfer.of("upload", engine.upload(job.store, replace(request, soft_failure=job.soft_failure)))


def _restore(job: Job, request: engine.DownloadRequest) -> Transfer:
    """Run a download for the job; a miss is a result."""
    request = job.for_download(request)
    try:
        return Transfer.of("download", engine.download(job.store, request))
    except CacheMiss as miss:
        return Transfer.missed(request.kind.name, request.key, miss)


def exists(key: str, **settings: Any) -> Found:
    """Whether ``key`` is stored, as ``cacher exists`` answers; a missing bucket raises.
    Under soft failure, a store that fails answers "not stored" and ``failure`` says why."""
    job = _job(settings)
    stored = job.key(key)
    presence = engine.exists(job.store, stored, soft_failure=job.soft_failure)
    if presence.failure is not None:
        log.warning("soft failure, treated as a miss: %s", presence.failure)
    return Found(stored, presence.found, presence.failure)


def ensure(
    key: str,
    path: PathArg,
    build: Sequence[str] | Callable[[], object],
    *,
    kind: str = "dir",
    restore_keys: Sequence[str] = (),
    codec: str | None = None,
    options: Mapping[str, Any] | None = None,
    **settings: Any,
) -> Ensured:
    """Restore ``key`` into ``path``; unless the exact key was there, run ``build`` and store
    ``path`` under ``key``, as ``cacher KIND ensure`` does. ``build`` is a command (its exit
    status is ``build_status``; non-zero is outcome ``build-failed``, nothing stored) or a
    callable (an exception it raises propagates, nothing stored)."""
    run = _builder(build)  # before any I/O, as the CLI checks its command
    job = _job(settings)
    check_owner(key, kind)
    the_kind, stored, chosen = _setup(job, kind, key, codec)
    opts = _options(the_kind, "download", options)
    request = engine.DownloadRequest(the_kind, chosen, stored, os.fspath(path), opts, tuple(restore_keys))
    return Ensured.of(engine.ensure(job.store, job.for_download(request), engine.EnsureSteps(run)))


def _builder(build: Sequence[str] | Callable[[], object]) -> Callable[[], int]:
    """The build as ``ensure`` runs it, returning its status: a callable's exception
    propagates; a command's status is as a shell gives it (its own code, 128+N when killed by
    signal N, 127 when missing, 126 when not runnable)."""
    if callable(build):
        function = build

        def called() -> int:
            function()
            return 0

        return called
    if isinstance(build, str) or not build or not str(build[0]).strip():
        raise UsageError(
            f"ensure needs a build callable or command as a list of words, not {build!r}",
            hint="shlex.split('make deps') gives the list",
        )
    command = list(build)

    def run() -> int:
        try:
            status = subprocess.call(command)
        except OSError as exc:
            return 127 if isinstance(exc, FileNotFoundError) else 126
        return 128 - status if status < 0 else status

    return run
