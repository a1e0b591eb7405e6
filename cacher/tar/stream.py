"""Reading the members of a tar stream over one buffer, with their data copied straight out.

``tarfile``'s stream mode re-copies its buffer on every read (about 40% of a restore's time
went there). This reader keeps one ``bytearray`` and hands file data to the caller as slices
of it. Headers with octal fields are decoded here (``tarfile.TarInfo.frombuf`` took a quarter
of the time); others (base-256 numbers, signed checksums) by ``frombuf``. GNU long names and
links and PAX records are applied here.
Sparse members are refused. The stream must end with a zero block where a header would be:
a tar cut at a member boundary is an error, not a shorter tree.
"""

from __future__ import annotations

import os
import queue
import tarfile
import threading
from collections.abc import Iterator
from typing import BinaryIO

from cacher.errors import IntegrityError, TarFormatError

BLOCK = tarfile.BLOCKSIZE
CHUNK = 1 << 20
_LONGNAME, _LONGLINK = b"L", b"K"
_PAX, _PAX_GLOBAL = b"x", b"g"
_SPARSE = b"S"
_EXTENDED_MAX = 1 << 20  # long names and PAX records; a bigger one is hostile, not a path


class Member:
    """One archive member: what the extractor needs of a header, after extended headers."""

    __slots__ = ("linkname", "mode", "mtime", "name", "size", "type")

    def __init__(self, name: str, type: bytes, mode: int, size: int, mtime: float, linkname: str) -> None:
        self.name, self.type, self.mode, self.size, self.mtime, self.linkname = (
            name,
            type,
            mode,
            size,
            mtime,
            linkname,
        )

    def isreg(self) -> bool:
        return self.type in (tarfile.REGTYPE, tarfile.AREGTYPE)

    def isdir(self) -> bool:
        return self.type == tarfile.DIRTYPE

    def issym(self) -> bool:
        return self.type == tarfile.SYMTYPE

    def islnk(self) -> bool:
        return self.type == tarfile.LNKTYPE


def _decode(block: bytes) -> Member:
    """A header block, decoded; the common octal ustar/GNU case here, the rest by tarfile."""
    fields = _octal(block, 100, 108), _octal(block, 124, 136), _octal(block, 136, 148)
    stored = _octal(block, 148, 156)
    if None in fields or stored is None or stored != sum(block) - sum(block[148:156]) + 256:
        return _decode_slowly(block)  # base-256 numbers, signed checksums, or an invalid header
    mode, size, mtime = fields
    name = _nts(block[0:100])
    if block[257:265] == b"ustar\x0000":
        prefix = _nts(block[345:500])
        if prefix:
            name = f"{prefix}/{name}"
    return Member(name, block[156:157], mode or 0, size or 0, mtime or 0, _nts(block[157:257]))


def _octal(block: bytes, start: int, end: int) -> int | None:
    field = block[start:end].split(b"\0", 1)[0].strip()
    if not field:
        return 0
    try:
        return int(field, 8)
    except ValueError:
        return None


def _decode_slowly(block: bytes) -> Member:
    try:
        info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        raise TarFormatError(str(exc)) from None
    return Member(info.name, info.type, info.mode, info.size, info.mtime, info.linkname)


class _ReadAhead:
    """Reads ``source`` on its own thread, a few chunks ahead, so decoding overlaps extraction."""

    DEPTH = 4

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.chunks: queue.Queue[bytes | BaseException] = queue.Queue(self.DEPTH)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cacher-readahead", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                data = self.source.read(CHUNK)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self.stopped.is_set():
            try:
                self.chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self) -> bytes:
        item = self.chunks.get()
        if isinstance(item, BaseException):
            self.chunks.put(item)  # every later read fails the same way
            raise item
        if not item:
            self.chunks.put(item)
        return item

    def stop(self) -> None:
        """Stop reading ahead. A thread still inside ``source.read`` is not waited for: it may
        be waiting on a stalled store, and ends when the caller closes the source."""
        self.stopped.set()
        if not self.thread.is_alive():
            return
        self.thread.join(timeout=0.05)


class TarStream:
    """The members of a tar stream, in order; a regular file's data must be taken before the next."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = _ReadAhead(source)
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._left = 0  # data bytes of the current member not yet taken, padding included
        self._global: dict[str, str] = {}

    def close(self) -> None:
        self._source.stop()

    def drain(self) -> None:
        """Read the source to its end (the codec checks its trailer there)."""
        while self._source.read():
            pass

    # -- the buffer ------------------------------------------------------------------------

    def _fill(self, n: int) -> bool:
        """Make ``n`` bytes available at the read position; False if the stream ends first."""
        while len(self._buf) - self._pos < n:
            if self._eof:
                return False
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            data = self._source.read()
            if not data:
                self._eof = True
                return False
            self._buf += data
        return True

    def _take(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise IntegrityError(f"the stored archive is truncated: it stops inside {what}")
        data = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return data

    def _spans(self, n: int) -> Iterator[memoryview]:
        """The next ``n`` bytes as views of the buffer, each released before the buffer moves."""
        while n:
            if not self._fill(1):
                raise IntegrityError("the stored archive is truncated: it stops inside a member's data")
            step = min(n, len(self._buf) - self._pos)
            with memoryview(self._buf) as whole, whole[self._pos : self._pos + step] as view:
                yield view
            self._pos += step
            n -= step

    def _skip(self, n: int) -> None:
        for _ in self._spans(n):
            pass

    # -- members ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Member]:
        while True:
            if self._left:
                self._skip(self._left)
                self._left = 0
            info = self._next()
            if info is None:
                return
            yield info

    def _header(self) -> Member | None:
        if not self._fill(BLOCK):
            if len(self._buf) - self._pos:
                raise IntegrityError("the stored archive is truncated: it stops inside a header")
            raise IntegrityError(
                "the stored archive is truncated: the tar stream stops without its end marker"
            )
        block = bytes(self._buf[self._pos : self._pos + BLOCK])
        self._pos += BLOCK
        if not block.strip(b"\0"):
            return None
        return _decode(block)

    def _next(self) -> Member | None:
        pax: dict[str, str] = dict(self._global)
        names: dict[bytes, str] = {}  # a GNU long name or long link, by its header's type
        while True:
            info = self._header()
            if info is None:
                return None
            if info.type not in (_LONGNAME, _LONGLINK, _PAX, _PAX_GLOBAL):
                return self._member(info, pax, names)
            self._extended(info, pax, names)

    def _extended(self, info: Member, pax: dict[str, str], names: dict[bytes, str]) -> None:
        """Keep an extended header's data for the member it precedes (a global PAX header's
        for every later member too)."""
        if info.size > _EXTENDED_MAX:
            raise TarFormatError(f"an extended header of {info.size} bytes")
        data = self._take(_padded(info.size), "an extended header")[: info.size]
        if info.type in (_LONGNAME, _LONGLINK):
            names[info.type] = _nts(data)
            return
        records = _pax_records(data)
        if info.type == _PAX_GLOBAL:
            self._global.update(records)
        pax.update(records)

    def _member(self, info: Member, pax: dict[str, str], names: dict[bytes, str]) -> Member:
        """The member of header ``info`` with its extended headers applied."""
        if info.type == _SPARSE or any(k.startswith("GNU.sparse.") for k in pax):
            raise TarFormatError(f"sparse member {info.name!r} (sparse files are not restored)")
        info.name = names.get(_LONGNAME, info.name)
        info.linkname = names.get(_LONGLINK, info.linkname)
        _apply_pax(info, pax)
        if info.type == tarfile.AREGTYPE and info.name.endswith("/"):
            info.type = tarfile.DIRTYPE
        if info.type == tarfile.CONTTYPE:
            info.type = tarfile.REGTYPE
        self._left = _padded(info.size) if info.isreg() else 0
        return info

    def data_blocks(self, info: Member, block: int) -> Iterator[bytes]:
        """The current regular member's data in pieces of ``block`` bytes (the last shorter),
        then step over its padding: how a content-addressed save cuts a file into blobs."""
        left = info.size
        while left:
            piece = bytearray()
            for view in self._spans(min(block, left)):
                piece += view
            left -= len(piece)
            yield bytes(piece)
        self._left = _padded(info.size) - info.size

    def copy_data(self, info: Member, fd: int) -> None:
        """Write the current regular member's data to ``fd``, then step over its padding."""
        for view in self._spans(info.size):
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])
        self._left = _padded(info.size) - info.size


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _nts(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    """``LEN KEY=VALUE\\n`` records; a malformed one is a format error."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0 or not data[pos:space].isdigit():
            if not data[pos:].strip(b"\0"):
                break
            raise TarFormatError("malformed PAX header")
        length = int(data[pos:space])
        record = data[space + 1 : pos + length]
        if length <= space - pos or not record.endswith(b"\n") or b"=" not in record:
            raise TarFormatError("malformed PAX header")
        key, _, value = record[:-1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _apply_pax(info: Member, pax: dict[str, str]) -> None:
    try:
        if "path" in pax:
            info.name = pax["path"]
        if "linkpath" in pax:
            info.linkname = pax["linkpath"]
        if "size" in pax:
            info.size = int(pax["size"])
        if "mtime" in pax:
            info.mtime = float(pax["mtime"])
    except ValueError:
        raise TarFormatError(f"bad value in the PAX header of {info.name!r}") from None
    if info.size < 0:
        raise TarFormatError(f"negative size for {info.name!r}")
