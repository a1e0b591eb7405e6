"""The pure pipeline: kind -> codec -> store on upload, store -> codec -> kind on download.

The engine knows nothing of the command line and never prints; it returns results and raises
`cacher.errors.CacherError` subclasses. Progress goes to an optional callback. A caller builds
a frozen request (`UploadRequest`, `DownloadRequest`) and hands it to `upload` or `download`
with the store; the soft-failure policy travels in the request (`cacher.stores.softfail`).

- `cacher.engine.requests`: the requests, and `bound_store` (a kind's namespace in the store);
- `cacher.engine.results`: `Result`, `Presence` and the transfer outcomes;
- `cacher.engine.upload`: `upload` and `exists`;
- `cacher.engine.download`: `download` (exact key, restore keys, fallback scopes, fallback);
- `cacher.engine.listing`: which listed objects a restore key may restore;
- `cacher.engine.ensure`: `ensure` (restore, else build and store) and its `Ensured` result;
- `cacher.engine.prune`: what a prune removes (`plan_prune`, `select_old`) and removing it.
"""

from __future__ import annotations

from cacher.engine.download import REPLACED_PAUSE, REPLACED_RETRIES, download
from cacher.engine.ensure import Ensured, EnsureOutcome, EnsureSteps, ensure
from cacher.engine.prune import PrunePlan, carry_out, clear_leftovers, plan_prune, select_old
from cacher.engine.requests import DownloadRequest, UploadRequest, bound_store
from cacher.engine.results import Outcome, Presence, Result
from cacher.engine.upload import exists, upload

__all__ = [
    "REPLACED_PAUSE",
    "REPLACED_RETRIES",
    "DownloadRequest",
    "EnsureOutcome",
    "EnsureSteps",
    "Ensured",
    "Outcome",
    "Presence",
    "PrunePlan",
    "Result",
    "UploadRequest",
    "bound_store",
    "carry_out",
    "clear_leftovers",
    "download",
    "ensure",
    "exists",
    "plan_prune",
    "select_old",
    "upload",
]
