"""POSIX pax tar headers, built the way Python's ``tarfile`` builds them, without its objects.

``TarInfo.tobuf`` costs about 30 µs a member; formatting the fields directly costs a few.
The bytes are the same as ``tarfile``'s ``PAX_FORMAT`` output (a test holds them to it):
names and link targets longer than 100 bytes or not ASCII, and sizes of 8 GiB or more, go
into a pax ``x`` header before the ustar block.
"""

from __future__ import annotations

BLOCK = 512
RECORD = 20 * BLOCK
REGTYPE, LNKTYPE, SYMTYPE, DIRTYPE = b"0", b"1", b"2", b"5"
_PAXTYPE = b"x"
_MAGIC = b"ustar\x0000"
_ZERO_OWNER = b"0000000\x00" * 2  # uid, gid
_EMPTY_TAIL = b"\x00" * 64 + b"\x00" * 16 + b"\x00" * 155  # uname, gname, devmajor/minor, prefix
_MAX_OCTAL_12 = 8**11


def pax_header(name: str, kind: bytes, mode: int, size: int, mtime: int, linkname: str) -> bytes:
    """The header block(s) of one member; ``name`` ends with ``/`` for a directory."""
    records: dict[str, str] = {}
    for value, key in ((name, "path"), (linkname, "linkpath")):
        if not value.isascii() or len(value) > 100:
            records[key] = value
    if not 0 <= size < _MAX_OCTAL_12:
        records["size"], size = str(size), 0
    if not 0 <= mtime < _MAX_OCTAL_12:
        records["mtime"], mtime = str(mtime), 0
    block = _ustar(name, kind, mode, size, mtime, linkname)
    return _pax_records(records) + block if records else block


def padding(size: int) -> bytes:
    """The zero bytes that fill a member's data up to the next block."""
    return b"\x00" * (-size % BLOCK)


def end_of_archive(offset: int) -> bytes:
    """Two zero blocks, then zeros up to a whole record, as tarfile ends an archive."""
    offset += 2 * BLOCK
    return b"\x00" * (2 * BLOCK + (-offset % RECORD))


def _ustar(name: str, kind: bytes, mode: int, size: int, mtime: int, linkname: str) -> bytes:
    head = b"".join(
        (
            _field(name, 100),
            b"%07o\x00" % (mode & 0o7777),
            _ZERO_OWNER,
            b"%011o\x00" % size,
            b"%011o\x00" % mtime,
            b"        ",
            kind,
            _field(linkname, 100),
            _MAGIC,
            _EMPTY_TAIL,
        )
    )
    block = head + b"\x00" * (BLOCK - len(head))
    checksum = sum(block)
    return block[:148] + b"%06o\x00" % checksum + block[155:]


def _field(value: str, length: int) -> bytes:
    data = value.encode("ascii", "replace")[:length]
    return data + b"\x00" * (length - len(data))


def _pax_records(records: dict[str, str]) -> bytes:
    binary = False
    for value in records.values():
        try:
            value.encode("utf-8", "strict")
        except UnicodeEncodeError:
            binary = True
            break
    out = b"21 hdrcharset=BINARY\n" if binary else b""
    for key, text in records.items():
        raw = text.encode("utf-8", "surrogateescape")
        length = len(key) + len(raw) + 3
        total = prev = 0
        while True:
            total = length + len(str(prev))
            if total == prev:
                break
            prev = total
        out += b"%d %b=%b\n" % (total, key.encode(), raw)
    header = _ustar("././@PaxHeader", _PAXTYPE, 0, len(out), 0, "")
    return header + out + padding(len(out))
