"""The generic fsspec store's exception table (file, memory, any fsspec protocol).

fsspec filesystems raise Python's own ``OSError`` family; `Store._translate` applies this
table around every call into them. A missing file passes unchanged where the store answers
it (None from ``head``, an empty listing); a read of one is `wording.gone`.
"""

from __future__ import annotations

import errno

from cacher.errors import CacherError, ReadPreconditionFailed
from cacher.stores import wording
from cacher.stores.errortable import ErrorTable, Rule, Seam


def s3fs_precondition(seam: Seam, exc: BaseException) -> bool:
    """s3fs's own HTTP 412: an ``OSError(EINVAL, "…pre-conditions…")`` (s3fs/errors.py)."""
    return isinstance(exc, OSError) and exc.errno == errno.EINVAL and "pre-condition" in str(exc)


def replaced(seam: Seam, exc: BaseException) -> CacherError:
    return wording.replaced(seam.action, seam.where)


def is_read(seam: Seam, exc: BaseException) -> bool:
    """A missing file met by a read: the object is gone, a storage error like any other."""
    return seam.action == "read"


def gone(seam: Seam, exc: BaseException) -> CacherError:
    return wording.gone(seam.action, seam.where)


def access_denied(seam: Seam, exc: BaseException) -> CacherError:
    return wording.access_denied(seam.action, seam.where, wording.reason(exc))


def failed(seam: Seam, exc: BaseException) -> CacherError:
    return wording.failed(seam.action, seam.where, exc)


FSSPEC_ERRORS = ErrorTable(
    "fsspec",
    (
        Rule((FileNotFoundError,), gone, when=is_read),
        Rule((CacherError, FileNotFoundError), None),
        Rule((ReadPreconditionFailed,), replaced),
        Rule((PermissionError,), access_denied),
        Rule((OSError,), replaced, when=s3fs_precondition),
        Rule((Exception,), failed),
    ),
)
