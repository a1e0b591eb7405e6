"""A backend's exception table, and the context manager that applies it at the store's seam.

In the manner of httpx's ``map_exceptions``: each backend declares one ordered table from the
foreign errors its libraries raise (fsspec, s3fs, botocore, http.client, aiohttp) to cacher's
`StorageError` family, and every call into those libraries runs inside `ErrorTable.applied`.
The words come from `cacher.stores.wording`; no store method catches a foreign error to
translate it itself (tests/stores/test_errors_table.py holds both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType

from cacher.errors import CacherError

#: How many ``__cause__``/``__context__`` links a rule looks through (s3fs wraps botocore's error).
CAUSE_DEPTH = 5


@dataclass(frozen=True)
class Seam:
    """Where a failure happened, for its message: the action (``read``), the object's URL, its
    bucket, and the S3 settings the wording names (``proxy``: ``host:port`` only, never credentials)."""

    action: str
    where: str
    bucket: str = ""
    region: str = ""
    proxy: str | None = None


#: A foreign class, or the dotted name of one whose library is imported only when used
#: (``"botocore.exceptions.ClientError"``: a HEAD never imports botocore).
Catch = type[BaseException] | str
Build = Callable[[Seam, BaseException], CacherError]


@dataclass(frozen=True)
class Rule:
    """Errors of the ``catches`` classes (where ``when`` holds) become ``build(seam, error)``;
    ``build`` None lets them pass unchanged. With ``in_causes`` the rule also matches an error
    whose cause is one of them, and ``when`` and ``build`` get that cause."""

    catches: tuple[Catch, ...]
    build: Build | None
    when: Callable[[Seam, BaseException], bool] | None = None
    in_causes: bool = False

    def match(self, exc: BaseException, seam: Seam) -> BaseException | None:
        """The error this rule translates (``exc`` or one of its causes), or None."""
        for candidate in causes(exc) if self.in_causes else (exc,):
            if is_a(candidate, self.catches) and (self.when is None or self.when(seam, candidate)):
                return candidate
        return None


@dataclass(frozen=True)
class ErrorTable:
    """One backend's rules, first match wins; an error no rule matches passes unchanged."""

    name: str
    rules: tuple[Rule, ...]

    def translate(self, exc: BaseException, seam: Seam) -> BaseException:
        """The error a user reads for ``exc`` (``exc`` itself when it passes)."""
        for rule in self.rules:
            matched = rule.match(exc, seam)
            if matched is not None:
                return exc if rule.build is None else rule.build(seam, matched)
        return exc

    def applied(
        self, seam: Seam | Callable[[], Seam], *, seen: Callable[[CacherError], None] | None = None
    ) -> AbstractContextManager[None]:
        """Run a call into the backend's libraries, raising what `translate` makes of its
        ``Exception``; ``seen`` is told of every cacher error that leaves (the failure memory).
        ``seam`` may be a function that makes it: it is called only when something failed, so
        the many reads of a download pay for no message they never show."""
        return _Applied(self, seam, seen)

    def named(self) -> set[Catch]:
        """Every class the table names (for the test that each maps as documented)."""
        return {catch for rule in self.rules for catch in rule.catches}


class _Applied:
    """`ErrorTable.applied`: a plain context manager (a generator-based one costs a few
    microseconds on every read of a stream)."""

    __slots__ = ("seam", "seen", "table")

    def __init__(
        self, table: ErrorTable, seam: Seam | Callable[[], Seam], seen: Callable[[CacherError], None] | None
    ) -> None:
        self.table, self.seam, self.seen = table, seam, seen

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not isinstance(exc, Exception):
            return  # no failure, or KeyboardInterrupt and kin: not a store's to translate
        error = self.table.translate(exc, self.seam if isinstance(self.seam, Seam) else self.seam())
        if self.seen is not None and isinstance(error, CacherError):
            self.seen(error)
        if error is not exc:
            raise error from exc


def is_a(exc: BaseException, catches: tuple[Catch, ...]) -> bool:
    """``isinstance`` over classes and dotted class names (matched along the MRO, so a library
    that was never imported is never imported here)."""
    names = None
    for catch in catches:
        if isinstance(catch, str):
            names = names or {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}
            if catch in names:
                return True
        elif isinstance(exc, catch):
            return True
    return False


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and up to `CAUSE_DEPTH` - 1 of its causes (explicit first, else implicit)."""
    current: BaseException | None = exc
    for _ in range(CAUSE_DEPTH):
        if current is None:
            return
        yield current
        current = current.__cause__ or current.__context__
