"""The pure pipeline: kind -> codec -> store on upload, store -> codec -> kind on download.

The engine knows nothing of the command line and never prints; it returns results and raises
`cacher.errors.CacherError` subclasses. Progress goes to an optional callback. A caller builds
a frozen request (`UploadRequest`, `DownloadRequest`) and hands it to `upload` or `download`
with the store; the soft-failure policy travels in the request (`cacher.stores.softfail`).

- `cacher.engine.requests`: the requests, and `bound_store` (a kind's namespace in the store);
- `cacher.engine.results`: `Result` and the transfer outcomes;
- `cacher.engine.presence`: `exists` and its `Presence`;
- `cacher.engine.uploading`: `upload`;
- `cacher.engine.downloading`: `download` (exact key, restore keys, fallback scopes, fallback);
- `cacher.engine.listing`: which listed objects a restore key may restore;
- `cacher.engine.ensuring`: `ensure` (restore, else build and store) and its `Ensured` result;
- `cacher.engine.prune`: what a prune removes (`plan_prune`, `select_old`) and removing it.

Each name is imported from its module when first used (PEP 562), so ``cacher exists`` loads
`cacher.engine.presence` alone, not the transfers' machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cacher.engine.downloading import REPLACED_PAUSE, REPLACED_RETRIES, download
    from cacher.engine.ensuring import Ensured, EnsureOutcome, EnsureSteps, ensure
    from cacher.engine.presence import Presence, exists
    from cacher.engine.prune import PrunePlan, carry_out, clear_leftovers, plan_prune, select_old
    from cacher.engine.requests import DownloadRequest, UploadRequest, bound_store
    from cacher.engine.results import Outcome, Result
    from cacher.engine.uploading import upload

#: Where each public name lives.
_HOMES = {
    "REPLACED_PAUSE": "downloading",
    "REPLACED_RETRIES": "downloading",
    "download": "downloading",
    "EnsureOutcome": "ensuring",
    "EnsureSteps": "ensuring",
    "Ensured": "ensuring",
    "ensure": "ensuring",
    "Presence": "presence",
    "exists": "presence",
    "PrunePlan": "prune",
    "carry_out": "prune",
    "clear_leftovers": "prune",
    "plan_prune": "prune",
    "select_old": "prune",
    "DownloadRequest": "requests",
    "UploadRequest": "requests",
    "bound_store": "requests",
    "Outcome": "results",
    "Result": "results",
    "upload": "uploading",
}

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


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
