"""One exception tree for everything the user is meant to read, and the exit codes it maps to.

```
CacherError                 exit 2   operational failure, message shown without a traceback
├── UsageError              exit 2   bad input: a key, a flag value, a path that is not there
│   └── ConfigError         exit 2   the config file or an env value is wrong
├── StorageError            exit 2   the store failed: network, credentials, permission, bucket
│   └── ObjectChanged       exit 2   the object was replaced while it was read
├── IntegrityError          exit 2   a checksum or a stream end did not match
├── ArtifactError           exit 2   a kind could not pack or unpack (docker failed, path vanished)
│   └── ObjectRefused       exit 2   the stored object is not one this kind restores
│       └── TarFormatError  exit 2   a stored archive is not a tar stream the reader accepts
├── PluginError             exit 2   a plugin is unknown, broken, or registered twice
└── CacheMiss               exit 3   download found nothing and had no fallback

ReadPreconditionFailed (OSError)     a store's reader met a changed object (HTTP 412)
StoreRefused (Exception)             a store answered what no retry changes
```

The last two are signals inside a store, never shown: the store turns them into the tree above.

Foreign exceptions are translated where they enter (the store, the codecs, the registry);
`cacher.cli.main` is the one place that turns these into exit codes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """The exit codes every command keeps (the Go tool's contract)."""

    OK = 0
    MISS = 1
    ERROR = 2
    DOWNLOAD_MISS = 3
    INTERRUPTED = 130
    TERMINATED = 143


#: The outcomes that do not exit 0 (docs/cli.md), the one table from a command's outcome to its
#: exit code: a key that is not stored (``exists``, ``delete``) exits 1, a download that
#: missed exits 3; ``ensure``'s ``build-failed`` passes the build's own status through.
OUTCOME_EXIT_CODES: dict[str, ExitCode] = {"absent": ExitCode.MISS, "miss": ExitCode.DOWNLOAD_MISS}


def exit_code(outcome: str, *, build_status: int | None = None) -> int:
    """What a command whose result is ``outcome`` exits with (`OUTCOME_EXIT_CODES`, else 0)."""
    if outcome == "build-failed" and build_status is not None:
        return build_status
    return OUTCOME_EXIT_CODES.get(outcome, ExitCode.OK)


class CacherError(Exception):
    """Base for failures whose message is written for the user."""

    exit_code: ClassVar[ExitCode] = ExitCode.ERROR
    #: What failed, for ``--json`` error documents (``error.kind``, docs/json.md).
    error_kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: More fields for the ``--json`` error document (e.g. ``ensure``'s ``build_status``).
        self.details: dict[str, object] = {}


class UsageError(CacherError):
    """The command was given something it cannot use."""

    error_kind = "usage"


class ConfigError(UsageError):
    """The configuration (file, environment or flags) is invalid."""

    error_kind = "config"


class StorageError(CacherError):
    """The object store failed or refused."""

    error_kind = "storage"


class IntegrityError(CacherError):
    """Stored or fetched bytes are not what they claim to be."""

    error_kind = "integrity"


class ArtifactError(CacherError):
    """A kind failed to turn its artifact into a stream or back."""

    error_kind = "artifact"


class NoCredentials(ConfigError):
    """No credentials anywhere for a store that needs them. A job that only reads
    (a read-only job) or tolerates an absent store (``soft_fail``) — a fork's pull request gets no
    secrets — finds the store unavailable instead: restores miss with a warning."""

    error_kind = "config"


class PluginError(CacherError):
    """A plugin is unknown, failed to load, or is registered twice."""

    error_kind = "plugin"


class CacheMiss(CacherError):
    """`download` found no object and had no fallback: a result, not a failure (the CLI prints
    it as a result line and exits 3). ``key``, ``store`` and ``restore_keys`` say what was
    looked up; ``looked_up`` is False when the store failed (``--soft-fail``) before it could
    answer for the exact key; ``notes`` say what was passed over on the way."""

    exit_code = ExitCode.DOWNLOAD_MISS
    error_kind = "miss"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        notes: tuple[str, ...] = (),
        key: str | None = None,
        store: str | None = None,
        restore_keys: tuple[str, ...] = (),
        looked_up: bool = True,
    ) -> None:
        super().__init__(message, hint=hint)
        self.notes = notes
        self.key, self.store, self.restore_keys, self.looked_up = key, store, restore_keys, looked_up


class ObjectChanged(StorageError):
    """The object was replaced while it was read: reads are pinned to the ETag it had."""


class ObjectRefused(ArtifactError):
    """The stored object cannot be restored by this kind: stored by another kind, or holding
    what the restore refuses. Never permanent: ``ensure`` rebuilds it, a restore key moves on
    to the next candidate, ``upload --force`` replaces it."""

    error_kind = "refused"


class TarFormatError(ObjectRefused):
    """The stream is not a tar archive this reader accepts."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the stored archive is not a valid tar stream: {why}")


# -- signals between a store's parts, never shown to a user: the store translates them ----------


class ReadPreconditionFailed(OSError):
    """What a backend's reader raises when an ``If-Match`` read answers HTTP 412."""


class StoreRefused(Exception):
    """An answer no retry changes (a 4xx other than 404 and 412): its HTTP status and S3 error
    code, when known, for the store's error table."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code
