"""With ``--soft-fail``, a store that failed is not waited on again by the same CI job.

A dead cache should cost a job one timeout, not one per cacher command. When a request finds
the store down (no answer, 5xx), the failure is written to a small state file, and the next
command of the same job within `REMEMBER` seconds fails at once (a miss, under soft-fail).
The file is keyed by the endpoint and the CI job's id, so one blip on a shared runner never
disables another job's cache; without a job id nothing is remembered. It lives in
``$RUNNER_TEMP`` (GitHub Actions empties it per job), else cacher's runtime directory, and is
believed only when it is the user's own (`cacher.fs.ownership`): a planted "store down" would
otherwise turn a job's cache off, and a planted link would redirect the write. Whether a job
keeps this memory at all is the soft-failure policy's call (`SoftFailure.job_memory` in
`cacher.stores.softfail`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path

from cacher.config import runtime_dir
from cacher.fs.ownership import Untrusted, distrust, private_dir, read_trusted

#: Seconds a failed store is remembered.
REMEMBER = 300.0
#: The variables that name the running CI job (GitHub Actions, GitLab, Buildkite, builds.sr.ht,
#: Woodpecker/Drone).
JOB_VARS = (
    ("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB"),
    ("CI_JOB_ID",),
    ("BUILDKITE_JOB_ID",),
    ("JOB_ID",),
    ("CI_STEP_ID",),
    ("DRONE_BUILD_NUMBER", "DRONE_STAGE_NUMBER"),
)


def job_id(environ: Mapping[str, str]) -> str | None:
    for names in JOB_VARS:
        if environ.get(names[0]):
            return ":".join(f"{n}={environ.get(n, '')}" for n in names)
    return None


class FailureMemory:
    """The state file of one (endpoint, job)."""

    def __init__(self, path: Path, endpoint: str) -> None:
        self.path, self.endpoint = path, endpoint

    @classmethod
    def for_job(cls, endpoint: str, environ: Mapping[str, str]) -> FailureMemory | None:
        job = job_id(environ)
        if job is None:
            return None
        digest = hashlib.sha256(f"{endpoint}\0{job}".encode()).hexdigest()[:20]
        base = Path(environ["RUNNER_TEMP"]) if environ.get("RUNNER_TEMP") else runtime_dir(environ)
        return cls(base / f"cacher-store-down-{digest}.json", endpoint)

    def recent(self, now: float | None = None) -> str | None:
        """Why the store failed, when that was less than `REMEMBER` seconds ago."""
        try:
            data = json.loads(read_trusted(self.path).decode("utf-8"))
            at, why = float(data["at"]), str(data["reason"])
        except (OSError, ValueError, KeyError, TypeError, Untrusted):
            return None
        age = (time.time() if now is None else now) - at
        return why if 0 <= age < REMEMBER else None

    def record(self, reason: str) -> None:
        """Remember the failure (best effort: a read-only runner just waits again next time)."""
        data = json.dumps({"at": time.time(), "endpoint": self.endpoint, "reason": reason})
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            _usable_dir(self.path.parent)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            with os.fdopen(os.open(tmp, flags, 0o600), "w", encoding="utf-8") as f:
                f.write(data)
            os.replace(tmp, self.path)
        except (OSError, Untrusted):
            return

    def forget(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


def _usable_dir(path: Path) -> None:
    """``$RUNNER_TEMP`` is the runner's (checked, left as it is); cacher's runtime directory is
    made private. `Untrusted` when another user could change what is written there."""
    if path == runtime_dir(os.environ):
        private_dir(path)
        return
    st = os.lstat(path)
    why = "it is not a directory" if not stat.S_ISDIR(st.st_mode) else distrust(st)
    if why is not None:
        raise Untrusted(f"refusing {path}: {why}")
