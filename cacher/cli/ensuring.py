"""``ensure`` as the command line runs it: each step reported as it happens, and its document.

The decisions are `cacher.engine.ensure`'s; this module gives it the build command and wraps
its transfers in the progress and result lines of `cacher.cli.kindverbs`. Imported only by
``ensure``, so the other verbs never load the engine's ``ensure``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cacher import engine
from cacher.cli.report import result_document
from cacher.cli.session import Session
from cacher.engine.ensuring import EnsureSteps
from cacher.errors import CacherError
from cacher.stores.base import Store

if TYPE_CHECKING:
    from cacher.cli.kindverbs import KindVerbs


class ReportedEnsure(EnsureSteps):
    """``ensure``'s steps as the CLI runs them: each transfer with its progress line and
    result line as it ends, the build command through `KindVerbs._build`."""

    def __init__(self, verbs: KindVerbs, session: Session, command: tuple[str, ...]) -> None:
        super().__init__(lambda: verbs._build(session, command))
        self.verbs, self.session = verbs, session
        self.restored: engine.Result | None = None

    def download(self, store: Store, request: engine.DownloadRequest) -> engine.Result | None:
        self.restored = self.verbs._download(self.session, request, None)
        return self.restored

    def upload(self, store: Store, request: engine.UploadRequest) -> engine.Result:
        try:
            return self.verbs._upload(self.session, request, None)
        except CacherError as exc:  # after a successful build: the error document says what ran
            exc.details.update({**_restore_fields(request.key, request.kind.name, self.restored)})
            exc.details.update(build_status=0, upload=None)
            raise


def _restore_fields(key: str, kind: str, restored: engine.Result | None) -> dict[str, Any]:
    """The fields of ``ensure``'s document that say what the restore found."""
    document: dict[str, Any] = {"command": "ensure", "key": key, "kind": kind}
    if restored is None:
        return {**document, "match": "miss", "matched_key": None, "restore": None}
    return {
        **document,
        "match": restored.match,
        "matched_key": restored.matched_key,
        "restore": result_document(restored),
    }


def ensure_document(ensured: engine.Ensured) -> dict[str, Any]:
    """``ensure``'s ``--json`` document (docs/json.md)."""
    document = {
        **_restore_fields(ensured.key, ensured.kind, ensured.restored),
        "outcome": ensured.outcome,
        "failed": ensured.failed,
        "build_status": ensured.build_status,
        "upload": None,
    }
    if ensured.outcome == "failed":
        document["notes"] = [ensured.reason]
    elif ensured.uploaded is not None:
        document["upload"] = result_document(ensured.uploaded)
    return document
