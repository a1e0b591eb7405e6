"""A backend's exception table, and the context manager that applies it at the store's seam.

In the manner of httpx's ``map_exceptions``: each backend declares one ordered table from the
foreign errors its libraries raise (fsspec, s3fs, botocore, http.client, aiohttp) to cacher's
`StorageError` family, and every call into those libraries runs inside `ErrorTable.applied`.
The words come from `cacher.stores.wording`; no store method catches a foreign error to
translate it itself (tests/test_errors_table.py holds both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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

    @contextmanager
    def applied(self, seam: Seam, *, seen: Callable[[CacherError], None] | None = None) -> Iterator[None]:
        """Run a call into the backend's libraries, raising what `translate` makes of its
        ``Exception``; ``seen`` is told of every cacher error that leaves (the failure memory)."""
        try:
            yield
        except Exception as exc:
            error = self.translate(exc, seam)
            if seen is not None and isinstance(error, CacherError):
                seen(error)
            if error is exc:
                raise
            raise error from exc

    def named(self) -> set[Catch]:
        """Every class the table names (for the test that each maps as documented)."""
        return {catch for rule in self.rules for catch in rule.catches}


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
