"""The soft-failure policy: the one place that reads the ``soft_fail`` setting.

Under soft failure (``--soft-fail``, or a store that cannot be reached at all because the job
has no credentials and may do without) a storage error is a warning and a miss, never a failed
build. `SoftFailure` is that decision as one object, built once per command by
`SoftFailure.for_settings` and consulted by everything that meets a storage error: the engine
(``exists``, upload, download and its fallback), the local tier (which answers from its copies
once the store is down), the S3 store's memory of a dead store for the rest of the CI job
(`cacher.stores.s3.failures`), and the gate's tolerance of missing credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from cacher.errors import StorageError

if TYPE_CHECKING:
    from cacher.config import Settings
    from cacher.stores.base import Store
    from cacher.stores.s3.failures import FailureMemory

__all__ = ["HARD", "SoftFailure"]


class SoftFailure:
    """Whether a storage error becomes a warning and a miss (``enabled``) or stays an error.
    Immutable; a plain class, not a dataclass, because every storage command imports it."""

    __slots__ = ("enabled",)
    enabled: bool

    def __init__(self, enabled: bool = False) -> None:
        object.__setattr__(self, "enabled", enabled)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SoftFailure) and other.enabled == self.enabled

    def __hash__(self) -> int:
        return hash(self.enabled)

    def __repr__(self) -> str:
        return f"SoftFailure(enabled={self.enabled})"

    @classmethod
    def for_settings(cls, settings: Settings) -> SoftFailure:
        """The policy a command with these settings follows."""
        return cls(bool(settings.soft_fail))

    def toward(self, store: Store) -> SoftFailure:
        """The policy for requests to ``store``: a store that is not ``reachable`` (no
        credentials, for a job allowed to run without them) always fails softly."""
        return self if self.enabled or store.reachable else SoftFailure(True)

    def absorb(self, exc: StorageError) -> str:
        """``exc``'s message when failures are soft (the caller goes on with a miss); else
        ``exc`` is raised again. Call it inside the ``except`` block that caught ``exc``."""
        if not self.enabled:
            raise exc
        return exc.message

    def tolerates_missing_credentials(self) -> bool:
        """Whether a job without credentials runs with an unavailable store (every request a
        soft failure) instead of stopping at `cacher.errors.NoCredentials`."""
        return self.enabled

    def job_memory(self, endpoint: str, environ: Mapping[str, str]) -> FailureMemory | None:
        """The CI job's memory of a store found down, so a dead store costs the job one
        timeout, not one per command; only under soft failure (else a failure is an error)."""
        if not self.enabled:
            return None
        from cacher.stores.s3.failures import FailureMemory

        return FailureMemory.for_job(endpoint, environ)


#: The default policy: every storage error is an error.
HARD = SoftFailure(False)
