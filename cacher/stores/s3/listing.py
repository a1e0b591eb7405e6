"""ListObjectsV2 pages signed by hand and parsed as they arrive: a listing holds one page at a time.

s3fs lists a prefix whole before it returns (and building s3fs costs about 0.3 s of a command's
start), so a restore-key lookup among 50,000 objects held 50,000 dicts. Here each page (up to
1,000 keys) is one GET signed like the HEADs (`rest.S3Http`: the same endpoint, credentials,
CA bundle, proxy and timeouts; path-style, SigV4, no checksum headers), read in pieces into
expat, and handed on before the next page is asked for. A page that fails is asked for again
with the same continuation token, so nothing is handed on twice.
"""

from __future__ import annotations

import http.client
import random
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime
from xml.parsers import expat

from cacher.errors import StoreRefused
from cacher.stores.base import ObjectInfo
from cacher.stores.s3.rest import RETRY_STATUS, S3Http, canonical_query

#: Keys per page: S3's own maximum, so N objects cost N / 1,000 requests.
PAGE_KEYS = 1000
_READ = 64 << 10


class _Retryable(Exception):
    """A page another attempt may fix: a 5xx or 429 answer (``status``), a garbled body."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class _Page:
    """One listing answer, fed to expat piece by piece: the ``fields`` of each ``item`` element
    (``Contents`` of ListObjectsV2, ``Upload`` of ListMultipartUploads), in order, and the
    top-level elements that say what comes next (``IsTruncated``, the markers, the encoding)."""

    __slots__ = ("_current", "_item", "_text", "_wanted", "items", "parser", "top")

    def __init__(self, item: str, fields: tuple[str, ...]) -> None:
        self.items: list[tuple[str, ...]] = []
        self.top: dict[str, str] = {}
        self._item, self._wanted = item, fields
        self._current: dict[str, str] | None = None
        self._text: list[str] = []
        parser = expat.ParserCreate()
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text.append
        self.parser: expat.XMLParserType | None = parser

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self._text.clear()
        if name == self._item:
            self._current = {}

    def _end(self, name: str) -> None:
        text = "".join(self._text)
        self._text.clear()
        current = self._current
        if current is None:
            self.top[name] = text
        elif name == self._item:
            self.items.append(tuple(current.get(field, "") for field in self._wanted))
            self._current = None
        else:
            current[name] = text

    def feed(self, data: bytes, final: bool = False) -> None:
        """Parse the next piece of the body; the last (``final``) also lets the parser go."""
        parser = self.parser
        if parser is None:
            raise _Retryable("the listing page was read past its end")
        try:
            parser.Parse(data, final)
        except expat.ExpatError as exc:
            self.parser = None
            raise _Retryable(f"the listing page is not well-formed XML: {exc}") from None
        if final:
            # The parser holds this page through its handlers: without the cycle, a page is
            # freed as soon as it is consumed, not at the next full garbage collection.
            self.parser = None

    def flag(self, name: str, value: str) -> bool:
        return self.top.get(name, "").strip().lower() == value

    def keys_decoder(self) -> Callable[[str], str]:
        """How this page's keys read: url-decoded as botocore decodes them when the store says
        it encoded them (``EncodingType`` may come after the keys: the page is parsed first)."""
        return _url_decoded if self.flag("EncodingType", "url") else str


def _url_decoded(key: str) -> str:
    return urllib.parse.unquote_plus(key) if "%" in key or "+" in key else key


def list_objects(client: S3Http, bucket: str, prefix: str, *, strip: int = 0) -> Iterator[ObjectInfo]:
    """Every object of ``bucket`` whose key starts with ``prefix``, page by page, in the order
    the store lists them (S3's is key order; SeaweedFS's goes folder by folder);
    each key without its first ``strip`` characters (the store's prefix). Raises what the S3
    store's table translates: `StoreRefused` (an answer that is not a page),
    FileNotFoundError (HTTP 404: the bucket is missing), OSError or TimeoutError (no answer
    after ``max_attempts``)."""
    lister = _Lister(client, bucket)
    params = {"list-type": "2", "encoding-type": "url", "max-keys": str(PAGE_KEYS), "prefix": prefix}
    try:
        while True:
            page = lister.page(params, "Contents", ("Key", "Size", "LastModified"))
            decoded = page.keys_decoder()
            for key, size, modified in page.items:
                key = decoded(key)
                if key.endswith("/"):
                    continue  # a folder marker, not an object
                yield ObjectInfo(key[strip:], int(size or 0), _when(modified))
            token = page.top.get("NextContinuationToken", "")
            if not page.flag("IsTruncated", "true") or not token:
                return
            params["continuation-token"] = token
    finally:
        lister.close()


def list_uploads(client: S3Http, bucket: str, prefix: str) -> Iterator[tuple[str, str, datetime | None]]:
    """The multipart uploads of ``bucket`` under ``prefix`` not yet completed or aborted, page
    by page: (key, upload id, when it started). Raises as `list_objects` does."""
    lister = _Lister(client, bucket)
    params = {"uploads": "", "max-uploads": str(PAGE_KEYS), "prefix": prefix}
    try:
        while True:
            page = lister.page(params, "Upload", ("Key", "UploadId", "Initiated"))
            decoded = page.keys_decoder()
            for key, upload_id, initiated in page.items:
                yield decoded(key), upload_id, _when(initiated)
            key_marker, id_marker = page.top.get("NextKeyMarker", ""), page.top.get("NextUploadIdMarker", "")
            if not page.flag("IsTruncated", "true") or not (key_marker or id_marker):
                return
            params.update({"key-marker": key_marker, "upload-id-marker": id_marker})
    finally:
        lister.close()


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class _Lister:
    """Sends the pages of one listing over one kept-alive connection, with bounded retries."""

    def __init__(self, client: S3Http, bucket: str) -> None:
        self.client, self.path = client, client.object_path(bucket)
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def page(self, params: dict[str, str], item: str, fields: tuple[str, ...]) -> _Page:
        """The page ``params`` ask for, each attempt bounded by ``metadata_timeout``."""
        query = canonical_query(params)
        last: Exception | None = None
        for attempt in range(self.client.attempts):
            if attempt:
                time.sleep(min(0.1 * 2**attempt, 2.0) * (0.5 + random.random()))
            try:
                return self._once(query, item, fields)
            except (FileNotFoundError, StoreRefused):
                self.close()
                raise  # answers another attempt does not change
            except (_Retryable, OSError, http.client.HTTPException) as exc:
                self.close()
                last = exc
        if isinstance(last, _Retryable) and last.status:  # the store's answer, as a HEAD reports it
            raise StoreRefused(str(last), status=last.status)
        if isinstance(last, TimeoutError) or "timed out" in str(last):
            raise TimeoutError(
                f"no listing page within {self.client.transport.metadata_timeout:g} s "
                f"({self.client.attempts} attempt{'s' if self.client.attempts > 1 else ''}; metadata_timeout)"
            )
        raise OSError(f"{type(last).__name__}: {last}" if last else "no answer")

    def _once(self, query: str, item: str, fields: tuple[str, ...]) -> _Page:
        bound = self.client.transport.metadata_timeout
        deadline = time.monotonic() + bound
        headers = self.client.sign("GET", self.path, query=query)
        target = self.client.target(f"{self.path}?{query}")
        if self.conn is not None:
            try:  # the connection of the last page, unless the store closed it meanwhile
                return self._send(self.conn, target, headers, deadline, _Page(item, fields))
            except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest):
                self.close()
        self.conn = self.client.connect(min(bound, self.client.timeout))
        return self._send(self.conn, target, headers, deadline, _Page(item, fields))

    def _send(
        self, conn: http.client.HTTPConnection, target: str, headers: dict[str, str], deadline: float,
        page: _Page,
    ) -> _Page:
        bound = self.client.transport.metadata_timeout
        if conn.sock is not None:
            conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
        conn.request("GET", target, headers=headers)
        if conn.sock is not None:  # what is left of the bound after connecting
            conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
        response = conn.getresponse()
        if response.status != 200:
            self._refuse(response)
        while data := response.read(_READ):
            page.feed(data)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the listing page took longer than {bound:g} s (metadata_timeout)")
        page.feed(b"", final=True)
        if response.will_close:
            self.close()
        return page

    def _refuse(self, response: http.client.HTTPResponse) -> None:
        status = response.status
        detail = response.read(4096).decode("utf-8", "replace")
        code = detail.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in detail else ""
        reason = f"HTTP {status}" + (f" {code}" if code else "")
        self.close()  # the rest of the body, if any, is not worth reading
        if status == 404:
            raise FileNotFoundError(f"{reason}: nothing to list")
        if status in RETRY_STATUS:
            raise _Retryable(reason, status)
        raise StoreRefused(f"the store refused a listing: {reason}", status=status, code=code)
