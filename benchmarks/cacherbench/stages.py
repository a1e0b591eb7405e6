"""Pieces of cacher's own pipeline, run alone, to see where a transfer's time goes.

Run by cacher's interpreter: ``python stages.py STAGE ARGS``. Each stage calls the same
functions the CLI calls (``write_tree``, the zstd codec, the S3 store, ``extract_tree``),
with the other pieces replaced by a file or by nothing.

  tar DIR            write_tree(DIR) into a sink that drops the bytes
  tar-zstd DIR       write_tree(DIR) through the zstd codec's encoder into that sink
  put FILE KEY       copy FILE (1 MiB writes, as the encoder makes them) into the store's writer
  get KEY            read KEY from the store (1 MiB reads) and drop the bytes
  unzstd FILE        decode a local .tar.zst with the codec's decoder and drop the bytes
  untar FILE DEST    decode a local .tar.zst and extract_tree it into the empty directory DEST

What-ifs (cacher's functions, with one thing changed from outside, to size a possible gain):

  tar-nonames DIR        write_tree with tarfile's per-file uid/gid name lookups turned off
                         (write_tree blanks the names anyway)
  tar-zstd1 DIR          tar-zstd at zstd level 1 instead of 3
  untar-threaded F DEST  untar, with the zstd decoder in its own thread feeding a pipe, so
                         decompression overlaps extract_tree
"""

from __future__ import annotations

import os
import sys
import tarfile
import threading
from pathlib import Path

from cacher import config
from cacher.backends import open_store
from cacher.codecs.zstd import ZstdCodec
from cacher.kinds.tarread import extract_tree
from cacher.kinds.tarwrite import write_tree

CHUNK = 1 << 20


class NullSink:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing buffered."""


def _store():  # type: ignore[no-untyped-def]
    return open_store(config.load(os.environ), os.environ)


def tar(root: str) -> None:
    write_tree(Path(root), NullSink())


def tar_zstd(root: str) -> None:
    with ZstdCodec().encoder(NullSink()) as encoder:
        write_tree(Path(root), encoder)


def put(path: str, key: str) -> None:
    with _store().writer(key, {"kind": "bench"}) as sink, open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sink.write(chunk)


def get(key: str) -> None:
    with _store().open_read(key) as f:
        while f.read(CHUNK):
            pass


def unzstd(path: str) -> None:
    with open(path, "rb") as f:
        decoder = ZstdCodec().decoder(f)
        while decoder.read(CHUNK):
            pass


def untar(path: str, dest: str) -> None:
    with open(path, "rb") as f:
        extract_tree(ZstdCodec().decoder(f), Path(dest))


def tar_nonames(root: str) -> None:
    tarfile.pwd = None  # type: ignore[assignment]
    tarfile.grp = None  # type: ignore[assignment]
    write_tree(Path(root), NullSink())


def tar_zstd1(root: str) -> None:
    with ZstdCodec(level=1).encoder(NullSink()) as encoder:
        write_tree(Path(root), encoder)


def untar_threaded(path: str, dest: str) -> None:
    read_end, write_end = os.pipe()
    failed: list[BaseException] = []

    def decode() -> None:
        try:
            with open(path, "rb") as f, open(write_end, "wb") as out:
                decoder = ZstdCodec().decoder(f)
                while chunk := decoder.read(CHUNK):
                    out.write(chunk)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=decode)
    thread.start()
    with open(read_end, "rb", buffering=CHUNK) as source:
        extract_tree(source, Path(dest))
    thread.join()
    if failed:
        raise failed[0]


STAGES = {
    "tar": tar,
    "tar-zstd": tar_zstd,
    "put": put,
    "get": get,
    "unzstd": unzstd,
    "untar": untar,
    "tar-nonames": tar_nonames,
    "tar-zstd1": tar_zstd1,
    "untar-threaded": untar_threaded,
}


if __name__ == "__main__":
    STAGES[sys.argv[1]](*sys.argv[2:])
