"""Tar archives as cacher streams them: a reader that never trusts its input, a safe
extractor, a fast writer and the header formatting it uses.

- `stream`: `TarStream`, a forward-only reader of GNU, PAX and old-GNU archives;
- `extract`: `extract_tree`, which creates every member under one directory, never through a
  symlink, and refuses what could escape it (symlinks themselves are restored as data);
- `write`: `write_tree`, the PAX writer in a stable order;
- `header`: pax headers formatted directly, byte for byte as ``tarfile`` does.

Built-in kinds (``dir``) and third-party kinds use it alike.
"""

from cacher.tar.extract import extract_tree
from cacher.tar.write import write_tree

__all__ = ["extract_tree", "write_tree"]
