"""The life cycle every real part of the test suite shares, and its errors.

A part is a real server on loopback (SeaweedFS, dockerd, a docker registry, an HTTP server, a
proxy). `Part` gives them one shape: ``start()`` returns the running part, ``stop()`` stops it
and can be called again, ``cleanup()`` stops it and removes what it made, and ``with part:``
starts it and cleans up. `ProcessPart` adds what the parts that are programs share: the
process, its log file, SIGTERM-then-SIGKILL on stop, and clean-up at interpreter exit.
"""

from __future__ import annotations

import abc
import functools
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from cacher.testing._proc import cleanup_at_exit, log_tail, stop_process

__all__ = ["Part", "PartStartError", "PartUnavailable", "ProcessPart", "S3Part"]


class PartUnavailable(Exception):
    """A real part cannot run on this machine (program not installed, not root, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PartStartError(RuntimeError):
    """A real part is installed but did not come up; the message carries its log tail."""


class Part(abc.ABC):
    """A real server for tests: start, stop, clean up, and a context manager doing all three."""

    @abc.abstractmethod
    def start(self) -> Self:
        """Start and wait until the part answers; return it."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop it; stopping a stopped part does nothing."""

    def cleanup(self) -> None:
        """Stop, and remove what the part created (its temp dirs)."""
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the part's log, for failure messages ('' for parts without one)."""
        return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


class ProcessPart(Part):
    """A part that is a program: ``proc`` and ``log_path`` set by ``start()``; ``root`` its
    directory, removed by `cleanup` when the part made it (``own_dir``)."""

    #: Seconds between SIGTERM and SIGKILL when stopping.
    grace: ClassVar[float] = 3.0

    proc: subprocess.Popen[bytes] | None
    root: Path
    log_path: Path

    def _adopt(self, root: Path, own_dir: bool) -> None:
        """Call from ``__init__``: remember the directory and clean up at interpreter exit."""
        self.root, self._own_dir, self.proc = root, own_dir, None
        self._cancel_exit_cleanup = cleanup_at_exit(functools.partial(self.cleanup, grace=0))

    def _spawn(
        self, argv: list[str], env: dict[str, str] | None = None, banner: str = ""
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``root`` in a session of its own, output appended to ``log_path``."""
        with open(self.log_path, "ab") as log:
            if banner:
                log.write(banner.encode())
                log.flush()
            self.proc = subprocess.Popen(
                argv,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.proc

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM, wait ``grace`` s (the class's default when None), SIGKILL, reap."""
        proc, self.proc = self.proc, None
        stop_process(proc, self.grace if grace is None else grace)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self, grace: float | None = None) -> None:
        self.stop(grace)
        self._cancel_exit_cleanup()
        self._remove_own_files()
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)

    def _remove_own_files(self) -> None:
        """What a part leaves outside ``root`` (SeaweedFS's sockets): removed by `cleanup`."""

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()


class S3Part(ProcessPart):
    """A real S3 server (SeaweedFS, moto): what tests read and make on it besides cacher,
    through the botocore client its `_shared_client` gives."""

    def _shared_client(self) -> Any:  # pragma: no cover - each server provides it
        raise NotImplementedError

    def make_bucket(self, name: str) -> None:
        """Create a bucket (no error if it exists already)."""
        client = self._shared_client()
        try:
            client.create_bucket(Bucket=name)
        except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            pass

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """All keys in ``bucket`` under ``prefix`` (paginated)."""
        keys: list[str] = []
        paginator = self._shared_client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """The bytes of one object."""
        body: bytes = self._shared_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def multipart_uploads(self, bucket: str) -> list[dict[str, Any]]:
        """Unfinished multipart uploads in ``bucket`` (``Key``, ``UploadId``, ...)."""
        resp = self._shared_client().list_multipart_uploads(Bucket=bucket)
        uploads: list[dict[str, Any]] = resp.get("Uploads", [])
        return uploads
