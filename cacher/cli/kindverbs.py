"""What a kind's verbs do (``upload``, ``download``, ``exists``, ``ensure``), given a session.

`cacher.cli.verbs` turns a kind's declaration into cyclopts commands that call these; the fast
path (`cacher.cli.fastpath`) calls them without building the command line at all.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cacher import engine
from cacher.cli.report import github_output
from cacher.cli.session import Session
from cacher.codec import Codec
from cacher.errors import CacheMiss, UsageError, exit_code
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

    def _upload(self, session: Session, request: engine.UploadRequest, command: str | None) -> engine.Result:
        """Upload with a progress line and report; a soft failure is a result with outcome
        ``failed``."""
        progress = session.report.progress(f"uploading {request.key}")
        try:
            result = engine.upload(session.store, replace(request, progress=progress))
        finally:
            if progress is not None:
                progress.close()
        session.report.transfer(command, result)
        return result

    def _download(
        self, session: Session, request: engine.DownloadRequest, command: str | None
    ) -> engine.Result | None:
        """Download with a progress line and report (JSON only when ``command`` is given);
        None on a miss, reported as a result line (a miss is not an error)."""
        progress = session.report.progress(f"downloading {request.key}")
        try:
            result = engine.download(session.store, replace(request, progress=progress))
        except CacheMiss as miss:
            if progress is not None:
                progress.close()
            github_output(False, None, session.report)
            session.report.miss(command, self.name, request.key, miss)
            return None
        finally:
            if progress is not None:
                progress.close()
        github_output(result.match == "exact", result.matched_key, session.report)
        session.report.transfer(command, result)
        return result

    def _download_request(
        self, session: Session, setup: tuple[Kind, str, Codec], target: str | None, **policy: Any
    ) -> engine.DownloadRequest:
        """The download the session's settings ask for (``setup``: kind, stored key, codec):
        the fallback scopes, the arch suffix's rule for restore keys, soft failure.
        ``policy``: ``options`` and ``restore_keys``."""
        kind, stored_key, chosen = setup
        return session.for_download(engine.DownloadRequest(kind, chosen, stored_key, target, **policy))

    def upload(  # noqa: PLR0913 - one keyword per flag of the verb
        self,
        session: Session,
        key: str,
        targets: Sequence[str],
        *,
        force: bool = False,
        codec: str | None = None,
        base: str | None = None,
        restore_key: list[str] | None = None,
        options: dict[str, Any],
    ) -> int:
        check_owner(key, self.name)
        kind, stored_key, chosen = self._setup(session, key, codec)
        if not targets or not all(targets):
            raise UsageError(f"cacher {self.name} upload needs {kind.upload_target.metavar}")
        request = engine.UploadRequest(
            kind, chosen, stored_key, list(targets), options, force=force,
            base=session.key(base) if base else None, restore_keys=restore_key or (),
        )
        request = session.for_upload(request)
        return exit_code(self._upload(session, request, "upload").outcome)

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
        setup = self._setup(session, key, codec)
        if setup[0].fallback_requested(options):  # --url, --pull: a miss stores what they make
            check_owner(key, self.name)
        target = "\n".join(targets) if targets else None  # several (Target.many): one per line
        restore_keys = restore_key or []
        request = self._download_request(session, setup, target, options=options, restore_keys=restore_keys)
        found = self._download(session, request, "download")
        return exit_code(found.outcome if found is not None else "miss")

    def exists(self, session: Session, key: str) -> int:
        stored_key = session.key(key)
        presence = engine.exists(session.store, stored_key, soft_failure=session.soft_failure)
        if presence.failure is not None:
            session.report.warn(f"soft failure, treated as a miss: {presence.failure}")
        session.report.emit({"command": "exists", "key": stored_key, "exists": presence.found})
        return exit_code("found" if presence.found else "absent")

    def export(self, session: Session, key: str) -> int:
        """`cacher.engine.cas_export.export` to stdout: the tar alone there; a miss is a result
        line on stderr (exit 3), as ``download`` reports it."""
        from cacher.engine.cas_export import export  # not on the transfers' path

        setup = self._setup(session, key, None)
        request = self._download_request(session, setup, None, options={})
        try:
            export(session.store, request, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        except CacheMiss as miss:
            session.report.miss(None, self.name, request.key, miss)
            return exit_code("miss")
        return exit_code("hit")

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
        """`cacher.engine.ensure`, each step reported as it happens, then its JSON document."""
        check_owner(key, self.name)
        setup = self._setup(session, key, codec)
        restore_keys = restore_key or []
        request = self._download_request(session, setup, target, options=options, restore_keys=restore_keys)
        from cacher.cli.ensuring import ReportedEnsure, ensure_document  # not on exists' path

        ensured = engine.ensure(session.store, request, ReportedEnsure(self, session, command))
        session.report.emit(ensure_document(ensured))
        return exit_code(ensured.outcome, build_status=ensured.build_status)

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
