"""Settings: flag > ``CACHER_<FIELD>`` environment variable > config file > default.

The config file is ``$XDG_CONFIG_HOME/cacher/config.toml`` (``~/.config/cacher/config.toml``),
or the file named by ``--config`` / ``CACHER_CONFIG``. Credentials are not settings: they come
from ``CACHER_S3_KEY_ID`` / ``CACHER_S3_SECRET``, else from ``key_file`` / ``secret_file``
(with ``session_token``), else from the standard AWS chain (`cacher.stores.s3.credentials`).

The config file is obeyed only when it is the user's own (`cacher.fs.ownership`: not another
user's, not writable by group or others), and every number a setting takes is checked,
finite and in its range, before any command does I/O.

One module per job: `declaration` (every setting, once: flags, variables and keys derive
from it), `sources` (resolving them), `configfile` (reading and writing the file), `checks`
(values and where they came from), `paths` (config, cache and lock directories), `sizes` and
`durations` (the units people write).
"""

from __future__ import annotations

from cacher.config.checks import origin
from cacher.config.configfile import read_file, write
from cacher.config.declaration import FIELD_BY_NAME, FIELDS, Field, Settings
from cacher.config.paths import cache_dir, config_path, runtime_dir
from cacher.config.sizes import parse_size
from cacher.config.sources import load, resolved_backend

__all__ = [
    "FIELDS",
    "FIELD_BY_NAME",
    "Field",
    "Settings",
    "cache_dir",
    "config_path",
    "load",
    "origin",
    "parse_size",
    "read_file",
    "resolved_backend",
    "runtime_dir",
    "write",
]
