"""Following the frame structure of a zstd stream, to know whether it stopped at a frame's end.

python-zstandard's readers treat a stream cut short as a clean end. This tracker reads only
the frame and block headers (RFC 8878) of the compressed bytes as they pass, skipping block
contents by length, so checking costs a few operations per 128 KiB block.
"""

from __future__ import annotations

from cacher.plugin import IntegrityError

ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE = 0x184D2A50  # ..0x184D2A5F
_FCS_SIZES = (0, 2, 4, 8)
_DICT_SIZES = (0, 1, 2, 4)


class FrameTracker:
    """Feed it the compressed bytes in order; `complete` says whether they end on a boundary."""

    def __init__(self) -> None:
        self.frames = 0
        self._state = "magic"
        self._buf = bytearray()
        self._skip = 0
        self._checksum = False
        self._last_block = False

    @property
    def complete(self) -> bool:
        return self.frames > 0 and self._state == "magic" and not self._buf and not self._skip

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
                if not self._skip:
                    self._skipped()
                continue
            want = 4 if self._state in ("magic", "skippable") else 3 if self._state == "block" else 1
            take = min(want - len(self._buf), n - i)
            self._buf += view[i : i + take]
            i += take
            if len(self._buf) == want:
                header, self._buf = bytes(self._buf), bytearray()
                self._parse(header)

    def _parse(self, header: bytes) -> None:
        value = int.from_bytes(header, "little")
        if self._state == "magic":
            if value == ZSTD_MAGIC:
                self._state = "descriptor"
            elif value & 0xFFFFFFF0 == _SKIPPABLE:
                self._state = "skippable"
            else:
                raise IntegrityError("the stored zstd stream is corrupt: no frame starts where one should")
        elif self._state == "skippable":
            self._state = "skip-frame"
            self._skip_or_continue(value)
        elif self._state == "descriptor":
            single_segment = bool(value & 0x20)
            if value & 0x08:
                raise IntegrityError("the stored zstd stream is corrupt: reserved frame header bit set")
            self._checksum = bool(value & 0x04)
            fcs = _FCS_SIZES[value >> 6] or (1 if single_segment else 0)
            rest = (0 if single_segment else 1) + _DICT_SIZES[value & 0x03] + fcs
            self._state = "header-rest"
            self._skip_or_continue(rest)
        elif self._state == "block":
            self._last_block = bool(value & 1)
            block_type = (value >> 1) & 0x03
            if block_type == 3:
                raise IntegrityError("the stored zstd stream is corrupt: reserved block type")
            self._state = "block-body"
            self._skip_or_continue(1 if block_type == 1 else value >> 3)

    def _skip_or_continue(self, count: int) -> None:
        self._skip = count
        if not count:
            self._skipped()

    def _skipped(self) -> None:
        if self._state == "header-rest":
            self._state = "block"
        elif self._state == "block-body":
            if not self._last_block:
                self._state = "block"
            elif self._checksum:
                self._state = "checksum"
                self._skip_or_continue(4)
            else:
                self._frame_done()
        elif self._state in ("checksum", "skip-frame"):
            self._frame_done()

    def _frame_done(self) -> None:
        self.frames += 1
        self._state = "magic"
