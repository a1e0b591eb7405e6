"""What a kind's verbs do (``upload``, ``download``, ``exists``, ``ensure``), given a session.

`cacher.cli.verbs` turns a kind's declaration into cyclopts commands that call these; the fast
path (`cacher.cli.fastpath`) calls them without building the command line at all.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import Any

from cacher import engine
from cacher.cli.report import github_output, result_document
from cacher.cli.session import Session
from cacher.codec import Codec
from cacher.errors import CacheMiss, CacherError, ExitCode, UsageError
from cacher.keying.keytemplate import fits_this_machine
from cacher.keying.scopes import check_owner
from cacher.kind import Kind
from cacher.registry import Registry


class KindVerbs:
    """The verbs of one kind, given a resolved session: how each picks a codec, runs the engine
    and reports."""

    def __init__(self, registry: Registry, name: str) -> None:
        self.registry, self.name = registry, name

    def _setup(self, session: Session, key: str, codec: str | None) -> tuple[Kind, str, Codec]:
        kind = self.registry.kind(self.name)
        stored_key = session.key(key)
        return kind, stored_key, session.codec(kind, stored_key, codec)  # cacher.job: as the API picks it

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
        request = engine.UploadRequest(
            kind, codec, key, targets, options,
            force=force, soft_failure=session.soft_failure, progress=progress,
        )
        try:
            result = engine.upload(session.store, request)
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
        request = engine.DownloadRequest(
            kind,
            codec,
            key,
            target,
            options,
            restore_keys=restore_keys,
            fallback_stores=session.fallback_stores,
            fits=fits_this_machine if session.settings.arch_suffix else None,
            refused_is_miss=refused_is_miss,
            codecs=self.registry.codec,  # decoding: the level does not apply
            soft_failure=session.soft_failure,
            progress=progress,
        )
        try:
            result = engine.download(session.store, request)
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
        session: Session,
        key: str,
        targets: Sequence[str],
        *,
        force: bool = False,
        codec: str | None = None,
        options: dict[str, Any],
    ) -> int:
        check_owner(key, self.name)
        kind, stored_key, chosen = self._setup(session, key, codec)
        if not targets or not all(targets):
            raise UsageError(f"cacher {self.name} upload needs {kind.upload_target.metavar}")
        self._upload(session, kind, stored_key, chosen, list(targets), options, force, "upload")
        return 0

    def download(
        self,
        session: Session,
        key: str,
        targets: Sequence[str],
        *,
        codec: str | None = None,
        restore_key: list[str] | None = None,
        options: dict[str, Any],
    ) -> int:
        kind, stored_key, chosen = self._setup(session, key, codec)
        if kind.fallback_requested(options):  # --url, --pull: a miss stores what they make
            check_owner(key, self.name)
        target = "\n".join(targets) if targets else None  # several (Target.many): one per line
        restore = restore_key or []
        found = self._download(session, kind, stored_key, chosen, target, options, restore, "download")
        return ExitCode.OK if found is not None else ExitCode.DOWNLOAD_MISS

    def exists(self, session: Session, key: str) -> int:
        stored_key = session.key(key)
        presence = engine.exists(session.store, stored_key, soft_failure=session.soft_failure)
        if presence.failure is not None:
            session.report.warn(f"soft failure, treated as a miss: {presence.failure}")
        session.report.emit({"command": "exists", "key": stored_key, "exists": presence.found})
        return 0 if presence.found else 1

    def check_build_command(self, command: Sequence[str]) -> None:
        """``ensure`` needs a build command: the caller checks it before it opens the session."""
        if not command or not command[0].strip():
            raise UsageError(
                f"cacher {self.name} ensure needs a build command after '--'",
                hint="is the variable naming the command unset?" if command else None,
            )

    def ensure(
        self,
        session: Session,
        key: str,
        target: str,
        command: tuple[str, ...],
        *,
        codec: str | None = None,
        restore_key: list[str] | None = None,
        options: dict[str, Any],
    ) -> int:
        check_owner(key, self.name)
        kind, stored_key, chosen = self._setup(session, key, codec)
        document: dict[str, Any] = {"command": "ensure", "key": stored_key, "kind": self.name}
        restored = self._download(
            session,
            kind,
            stored_key,
            chosen,
            target,
            options,
            restore_key or [],
            None,
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
                {
                    **document,
                    "outcome": "failed",
                    "failed": "cacher",
                    "build_status": 0,
                    "upload": None,
                    "notes": [uploaded.reason],
                }
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
        import subprocess

        try:
            # With --json, stdout belongs to the JSON document: the build's output goes to stderr.
            status = subprocess.call(list(command), stdout=sys.stderr if session.report.json_output else None)
        except OSError as exc:
            status = 127 if isinstance(exc, FileNotFoundError) else 126
            # The build's status, not cacher's error (exit 2): no "error:" (docs/cli.md); shown
            # even with --quiet, as a shell would say it.
            cause = "build command not found"
            if status == 126:
                cause = f"cannot run the build command ({exc.strerror})"
            print(
                f"cacher: {cause}: {command[0]} (exit {status}, passed through); nothing stored",
                file=session.report.stream,
                flush=True,
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
