"""The read-only gate: the one place that reads the ``read_only`` setting.

A read-only job (a fork's pull request, a job that must not publish) gets its store through
`open_for_job`, which wraps it in `ReadOnlyStore`: every read passes through, every write
(`writer`, `delete`, `remove_leftover`) is refused, and ``writable`` is False so callers can
report the documented ``read-only`` outcome before any producer runs. The local tier in front
of the store is opened without writes too (no copies kept, no use times touched). Nothing else
in cacher looks at the setting: `tests/plugins/test_architecture.py` holds that.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, BinaryIO

from cacher.config import Settings
from cacher.errors import CacherError, NoCredentials
from cacher.stores.base import LEFTOVER_AGE, Leftover, ObjectInfo, Store, unavailable_store
from cacher.stores.softfail import SoftFailure

__all__ = ["ReadOnlyRefused", "ReadOnlyStore", "allows_writes", "gate", "open_for_job"]


class ReadOnlyRefused(CacherError):
    """A write reached a read-only store: a bug in the caller's outcome check, never sent."""


def allows_writes(settings: Settings) -> bool:
    """Whether a job with these settings may change the store, the tier or anything shared."""
    return not settings.read_only


def gate(store: Store, settings: Settings) -> Store:
    """``store`` as a job with these settings may use it."""
    return store if allows_writes(settings) else ReadOnlyStore(store)


def open_for_job(settings: Settings, environ: Mapping[str, str], backend: str) -> Store:
    """The store (behind its local tier) a storage command talks to, through the gate. A job that
    may not write, or tolerates an absent store, and has no credentials gets an unavailable
    store (every request a storage error): a fork's pull request restores nothing and fails no
    build."""
    from cacher.stores.tier import open_tiered

    writable = allows_writes(settings)
    try:
        store = open_tiered(settings, environ, backend, writable=writable)
    except NoCredentials as exc:
        if writable and not SoftFailure.for_settings(settings).tolerates_missing_credentials():
            raise
        store = unavailable_store(settings.bucket or "", settings.prefix, backend, exc.message)
    return store if writable else ReadOnlyStore(store)


class ReadOnlyStore(Store):
    """``inner`` with every write refused (`ReadOnlyRefused`) and ``writable`` False."""

    writable = False

    def __init__(self, inner: Store) -> None:
        super().__init__(None, inner.bucket, inner.prefix, protocol=inner.protocol)
        self.inner = inner
        self.hides_temporaries = inner.hides_temporaries

    def with_prefix(self, prefix: str) -> Store:
        return ReadOnlyStore(self.inner.with_prefix(prefix))

    @property
    def fs(self) -> Any:
        return self.inner.fs

    @property
    def reachable(self) -> bool:  # type: ignore[override]
        return self.inner.reachable

    @property
    def offline_reason(self) -> str | None:
        return self.inner.offline_reason

    def read_locally(self, key: str) -> bool:
        return self.inner.read_locally(key)

    def path(self, key: str) -> str:
        return self.inner.path(key)

    def url(self, key: str = "") -> str:
        return self.inner.url(key)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def check_bucket(self) -> None:
        self.inner.check_bucket()

    @contextmanager
    def open_read(self, key: str, info: ObjectInfo | None = None) -> Iterator[BinaryIO]:
        with self.inner.open_read(key, info) as stream:
            yield stream

    def read_range(self, key: str, start: int, end: int) -> bytes:
        return self.inner.read_range(key, start, end)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        return self.inner.list(prefix)

    def iter_list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.iter_list(prefix)

    def leftovers(self, prefix: str = "", *, older_than: timedelta = LEFTOVER_AGE) -> Sequence[Leftover]:
        return self.inner.leftovers(prefix, older_than=older_than)

    def prepare_writer(self) -> None:
        """Nothing is written, so nothing is prepared."""

    @contextmanager
    def writer(self, key: str, metadata: dict[str, str] | None = None) -> Iterator[BinaryIO]:
        raise self._refuse("write", key)
        yield  # pragma: no cover - a generator, so the refusal comes on entering the block

    def delete(self, key: str) -> bool:
        raise self._refuse("delete", key)

    def remove_leftover(self, leftover: Leftover) -> bool:
        raise self._refuse("remove the unfinished upload of", leftover.key)

    def _refuse(self, action: str, key: str) -> ReadOnlyRefused:
        return ReadOnlyRefused(f"read-only: refusing to {action} {self.url(key)}")
