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

What-if (cacher's functions, with one thing changed from outside, to size a possible gain):

  tar-zstd1 DIR          tar-zstd at zstd level 1 instead of 3
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cacher import config
from cacher.codecs.zstd import ZstdCodec
from cacher.stores import open_store
from cacher.tar.extract import extract_tree
from cacher.tar.write import write_tree

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


def tar_zstd1(root: str) -> None:
    with ZstdCodec(level=1).encoder(NullSink()) as encoder:
        write_tree(Path(root), encoder)


STAGES = {
    "tar": tar,
    "tar-zstd": tar_zstd,
    "put": put,
    "get": get,
    "unzstd": unzstd,
    "untar": untar,
    "tar-zstd1": tar_zstd1,
}


if __name__ == "__main__":
    STAGES[sys.argv[1]](*sys.argv[2:])
