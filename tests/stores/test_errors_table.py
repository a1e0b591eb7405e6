"""The stores' exception tables (issue 28): one table per backend, applied at the store's seam,
one wording per condition.

Every foreign class a table names is raised here as the real class (botocore's ``ClientError``
with an S3 answer, aiohttp's, http.client's, ssl's) and must become the documented error: exit
code 2, the message and hint of `cacher.stores.wording`. An AST check holds the other half: no
module under cacher/stores/ outside the tables catches a foreign error to translate it itself.
"""

from __future__ import annotations

import ast
import errno
import http.client
import os
import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp
import botocore.exceptions
import pytest

import cacher.errors
from cacher.errors import (
    CacherError,
    ExitCode,
    ObjectChanged,
    ReadPreconditionFailed,
    StorageError,
    StoreRefused,
)
from cacher.stores import wording
from cacher.stores.base import Store
from cacher.stores.errortable import Catch, ErrorTable, Seam
from cacher.stores.fsspec_errors import FSSPEC_ERRORS
from cacher.stores.s3.errors import (
    CREDENTIAL_ERRORS,
    REGION_CODES,
    RETRY_STATUS,
    S3_ERRORS,
    STATUSES,
    for_status,
)
from cacher.stores.s3.store import S3Store
from tests.conftest import Run, assert_one_error_line

STORES = Path(cacher.__file__).parent / "stores"
#: The modules that may translate foreign errors: the tables, their machinery and their words.
TABLE_MODULES = {"errortable.py", "fsspec_errors.py", "wording.py", "s3/errors.py"}

SEAM = Seam("read", "s3://b/k", "b", "garage")
PROXIED = Seam("read", "s3://b/k", "b", "garage", proxy="127.0.0.1:3128")
#: A missing object met by a read (a prune racing a restore) is a storage error like any other.
GONE = ("cannot read s3://b/k: it does not exist", None, False)
TLS_TEXT = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"


def client_error(status: int, code: str) -> botocore.exceptions.ClientError:
    """What botocore raises for an S3 answer."""
    response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, "HeadObject")


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    """``exc`` raised from ``cause``, as s3fs wraps botocore's error."""
    exc.__cause__ = cause
    return exc


# -- what each case must read: (message, hint, store_down), or None when the error passes ------

Expect = tuple[str, str | None, bool] | None
PASSES: Expect = None


def denied(why: str) -> Expect:
    return (f"cannot read s3://b/k: access denied ({why})", wording.ACCESS_HINT, False)


REPLACED: Expect = (
    "cannot read s3://b/k: it was replaced while it was read (another job stored the same key)",
    wording.RETRY_HINT,
    False,
)


def unanswered(why: str, *, store_down: bool = True) -> Expect:
    return (f"cannot read s3://b/k: {why}", None, store_down)


#: One real instance of every class a table names, and what it must become.
FSSPEC_CASES: dict[Catch, list[tuple[BaseException, Expect]]] = {
    CacherError: [(StorageError("already ours"), PASSES)],
    FileNotFoundError: [(FileNotFoundError("k"), GONE)],
    ReadPreconditionFailed: [(ReadPreconditionFailed("HTTP 412"), REPLACED)],
    PermissionError: [(PermissionError(errno.EACCES, "Permission denied"), denied("[Errno 13] Permission denied"))],
    OSError: [(OSError(errno.EINVAL, "At least one of the pre-conditions you specified did not hold"), REPLACED)],
    Exception: [
        (OSError(errno.EIO, "Input/output error"), unanswered("[Errno 5] Input/output error", store_down=False)),
        (ValueError("boom"), unanswered("boom", store_down=False)),
    ],
}

S3_CASES: dict[Catch, list[tuple[BaseException, Expect]]] = {
    FileNotFoundError: [
        (caused(FileNotFoundError("gone"), client_error(404, "NoSuchBucket")),
         ("the bucket 'b' does not exist", wording.MISSING_BUCKET_HINT, False)),
        (caused(FileNotFoundError("k"), client_error(404, "NoSuchKey")), GONE),
    ],
    CacherError: [(StorageError("already ours"), PASSES)],
    ReadPreconditionFailed: [(ReadPreconditionFailed("HTTP 412"), REPLACED)],
    StoreRefused: [
        (StoreRefused("the store refused a ranged read: HTTP 403 AccessDenied", status=403, code="AccessDenied"),
         denied("HTTP 403 AccessDenied")),
        (StoreRefused("the store refused a ranged read: HTTP 416", status=416),
         unanswered("the store refused a ranged read: HTTP 416", store_down=False)),
        (StoreRefused("refused, no status"), unanswered("refused, no status", store_down=False)),
    ],
    "botocore.exceptions.ClientError": [
        (client_error(403, "AccessDenied"), denied("HTTP 403 AccessDenied")),
        (caused(PermissionError("Access Denied"), client_error(403, "AccessDenied")), denied("HTTP 403 AccessDenied")),
        (client_error(412, "PreconditionFailed"), REPLACED),
        (client_error(503, "SlowDown"), ("cannot read s3://b/k: the store failed (HTTP 503 SlowDown)", None, True)),
    ],
    PermissionError: [(PermissionError(errno.EACCES, "Permission denied"), denied("[Errno 13] Permission denied"))],
    OSError: [
        (OSError(errno.EINVAL, "At least one of the pre-conditions you specified did not hold"), REPLACED),
        (OSError("no answer"), unanswered("no answer")),
    ],
    TimeoutError: [(TimeoutError("no answer within 7.5 s"), unanswered("no answer within 7.5 s"))],
    ConnectionError: [(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
                       unanswered("[Errno 111] Connection refused"))],
    "ssl.SSLError": [(ssl.SSLCertVerificationError(1, TLS_TEXT), (f"cannot read s3://b/k: {TLS_TEXT}",
                                                                 wording.TLS_HINT, False))],
    "http.client.HTTPException": [(http.client.RemoteDisconnected("Remote end closed connection"),
                                 unanswered("Remote end closed connection"))],
    "botocore.exceptions.EndpointConnectionError": [
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
         unanswered('Could not connect to the endpoint URL: "http://127.0.0.1:1"')),
    ],
    "botocore.exceptions.ConnectTimeoutError": [
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
         unanswered('Connect timeout on endpoint URL: "http://127.0.0.1:1"')),
    ],
    "botocore.exceptions.ReadTimeoutError": [
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
         unanswered('Read timeout on endpoint URL: "http://127.0.0.1:1"')),
    ],
    "aiohttp.client_exceptions.ClientError": [
        (aiohttp.ServerDisconnectedError(), unanswered("Server disconnected")),
    ],
    Exception: [(ValueError("boom"), unanswered("boom"))],
}


CHAIN = Seam("load S3 credentials from", "the AWS chain")
CREDENTIAL_CASES: dict[Catch, list[tuple[BaseException, Expect]]] = {
    "botocore.exceptions.BotoCoreError": [
        (botocore.exceptions.NoRegionError(),
         ("cannot load S3 credentials from the AWS chain: NoRegionError: You must specify a region.",
          wording.CHAIN_HINT, False)),
    ],
    Exception: [
        (client_error(403, "AccessDenied"),
         ("cannot load S3 credentials from the AWS chain: An error occurred (AccessDenied) when calling the "
          "HeadObject operation: AccessDenied", None, False)),
    ],
}


def check(table: ErrorTable, exc: BaseException, expect: Expect, seam: Seam = SEAM) -> None:
    error = table.translate(exc, seam)
    if expect is None:
        assert error is exc, (exc, error)
        return
    message, hint, store_down = expect
    assert isinstance(error, StorageError), (exc, error)
    assert error.exit_code == ExitCode.ERROR and int(error.exit_code) == 2
    assert (error.message, error.hint) == (message, hint)
    assert getattr(error, "store_down", False) is store_down, (exc, error)
    with pytest.raises(type(error)) as raised, table.applied(seam):  # the seam raises it, from exc
        raise exc
    assert raised.value.message == message and raised.value.__cause__ is exc


@pytest.mark.parametrize(
    ("table", "cases", "seam"),
    [(FSSPEC_ERRORS, FSSPEC_CASES, SEAM), (S3_ERRORS, S3_CASES, SEAM), (CREDENTIAL_ERRORS, CREDENTIAL_CASES, CHAIN)],
    ids=["fsspec", "s3", "s3-credentials"],
)
def test_every_class_a_table_names_maps_to_its_documented_error(
    table: ErrorTable, cases: dict[Catch, list[tuple[BaseException, Expect]]], seam: Seam
) -> None:
    assert set(cases) == table.named(), "a class the table names has no case here (or a case names none)"
    for catch, rows in cases.items():
        for exc, expect in rows:
            if isinstance(catch, type):
                assert isinstance(exc, catch), (catch, exc)
            check(table, exc, expect, seam)


def test_replaced_reads_the_same_from_both_tables() -> None:
    """One condition, one wording: the 412 of the ranged reader, of botocore and of s3fs."""
    errors = [
        FSSPEC_ERRORS.translate(ReadPreconditionFailed("x"), SEAM),
        S3_ERRORS.translate(ReadPreconditionFailed("x"), SEAM),
        S3_ERRORS.translate(client_error(412, "PreconditionFailed"), SEAM),
        S3_ERRORS.translate(OSError(errno.EINVAL, "pre-conditions did not hold"), SEAM),
        for_status(SEAM, 412),
    ]
    assert all(isinstance(e, ObjectChanged) for e in errors)
    assert len({(e.message, e.hint) for e in errors if isinstance(e, CacherError)}) == 1


@pytest.mark.parametrize("status", sorted(STATUSES))
def test_every_status_in_the_table_is_exit_2(status: int) -> None:
    error = for_status(SEAM, status, "Code")
    assert isinstance(error, StorageError) and error.exit_code == ExitCode.ERROR
    assert error.message.startswith("cannot read s3://b/k: ")
    assert (status in RETRY_STATUS) is getattr(error, "store_down", False)


def test_statuses_outside_the_table_region_codes_and_proxies() -> None:
    assert for_status(SEAM, 418, detail="teapot").message == "cannot read s3://b/k: teapot"
    assert for_status(SEAM, 418).message == "cannot read s3://b/k: the store answered HTTP 418"
    for code in REGION_CODES:
        error = for_status(SEAM, 403, code)
        assert error.hint is not None and "the region setting ('garage')" in error.hint
    proxied = for_status(PROXIED, 407)
    assert proxied.message == "cannot read s3://b/k: the proxy 127.0.0.1:3128 refused the request (HTTP 407)"
    assert proxied.hint == wording.PROXY_HINT
    assert for_status(SEAM, 407).message == "cannot read s3://b/k: the store answered HTTP 407"
    tunnel = OSError("Tunnel connection failed: 407 Proxy Authentication Required")
    assert S3_ERRORS.translate(tunnel, PROXIED).message == proxied.message  # type: ignore[attr-defined]


def test_the_stores_apply_their_tables() -> None:
    assert Store.error_table is FSSPEC_ERRORS and S3Store.error_table is S3_ERRORS


def test_each_wording_is_written_once() -> None:
    """The phrases of the shared conditions appear in cacher/stores/ only in the wording module."""
    phrases = ["replaced while it was read", "access denied (", "the bucket {", wording.ACCESS_HINT[:30],
               "the store failed (", "refused the request", "the region setting"]
    for path in STORES.rglob("*.py"):
        if path.name == "wording.py":
            continue
        text = path.read_text()
        for phrase in phrases:
            assert phrase not in text, f"{path.relative_to(STORES)} words {phrase!r} itself"


# -- no translation outside the tables ---------------------------------------------------------

#: Libraries whose exception classes only a table names (a retry loop may catch ``OSError`` or
#: http.client's errors: it raises them again, it does not translate them).
FOREIGN_MODULES = ("botocore", "aiobotocore", "s3fs", "aiohttp")
OWN_ERRORS = {name for name, value in vars(cacher.errors).items() if isinstance(value, type)}
STORAGE_FAMILY = {
    name for name, value in {**vars(cacher.errors), **vars(wording)}.items()
    if isinstance(value, type) and issubclass(value, StorageError)
}
WORDS = {name for name, value in vars(wording).items() if callable(value) and not isinstance(value, type)}


def _names(node: ast.expr | None) -> list[str]:
    if node is None:
        return ["BaseException"]
    if isinstance(node, ast.Tuple):
        return [n for elt in node.elts for n in _names(elt)]
    return [ast.unparse(node)]


def translations(source: str) -> list[str]:
    """``except`` clauses that name a class of botocore, s3fs or aiohttp, or catch a foreign
    error (``OSError``, ``Exception``…) and raise a `StorageError` of their own: what only a
    table may do."""
    tree = ast.parse(source)
    foreign = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(FOREIGN_MODULES):
            foreign |= {alias.asname or alias.name for alias in node.names}
    found = []
    for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler)):
        caught = _names(handler.type)
        names_foreign = [c for c in caught if c.split(".")[0] in foreign or c.startswith(FOREIGN_MODULES)]
        if names_foreign:
            found.append(f"line {handler.lineno}: catches {', '.join(names_foreign)}")
            continue
        if all(c in OWN_ERRORS or c.startswith("_") for c in caught):
            continue  # cacher's own errors, or a module's private signals
        for raised in (n.exc for n in ast.walk(handler) if isinstance(n, ast.Raise) and n.exc is not None):
            call = raised.func if isinstance(raised, ast.Call) else raised
            name = ast.unparse(call).rpartition(".")[2]
            if name in STORAGE_FAMILY or name in WORDS or name == "translate":
                found.append(f"line {handler.lineno}: catches {', '.join(caught)} and raises {name}")
    return found


def test_the_check_finds_a_translation() -> None:
    """The AST check is not vacuous: the file store's old HEAD translated an OSError itself."""
    old = (
        "def head(self, key):\n"
        "    try:\n        st = os.stat(path)\n"
        "    except FileNotFoundError:\n        return None\n"
        "    except OSError as exc:\n        raise StorageError(f'cannot look up: {exc}') from exc\n"
    )
    assert translations(old) == ["line 6: catches OSError and raises StorageError"]
    assert translations("from botocore.exceptions import ClientError\ntry:\n    x()\nexcept ClientError:\n    pass\n")
    assert translations("try:\n    x()\nexcept ValueError:\n    raise wording.failed('a', 'b', e)\n")


def test_no_store_module_outside_the_tables_translates_foreign_errors() -> None:
    found = {}
    for path in sorted(STORES.rglob("*.py")):
        relative = path.relative_to(STORES).as_posix()
        if relative not in TABLE_MODULES and (hits := translations(path.read_text())):
            found[relative] = hits
    assert found == {}


# -- the seam, with real parts -----------------------------------------------------------------


def test_the_file_store_head_goes_through_its_table(cacher: Callable[..., Run], local_root: Path) -> None:
    """A key whose path is a symlink loop: the file store's HEAD fails at its seam, in the
    table's words (exit 2, one line), and the store is left as it was."""
    local_root.mkdir(parents=True)
    os.symlink("loop", local_root / "loop")
    run = cacher("exists", "loop")
    assert_one_error_line(run, "cannot look up file://", "loop: [Errno 40] Too many levels of symbolic links")
    assert sorted(p.name for p in local_root.iterdir()) == ["loop"] and os.readlink(local_root / "loop") == "loop"


@pytest.mark.parametrize("table", [FSSPEC_ERRORS, S3_ERRORS], ids=["fsspec", "s3"])
def test_a_missing_object_passes_where_the_store_answers_it(table: ErrorTable) -> None:
    """A look-up, a listing or a delete answers a missing object itself (None, empty, done)."""
    for action in ("look up", "list", "delete"):
        exc = FileNotFoundError("k")
        assert table.translate(exc, Seam(action, "s3://b/k", "b", "garage")) is exc
