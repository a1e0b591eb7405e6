"""The config file: read (only when it is the user's own, `cacher.fs.ownership`) and checked
against the declared settings; written by ``cacher init`` with mode 0600."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from cacher.config.checks import check_type
from cacher.config.declaration import FIELD_BY_NAME, FIELDS
from cacher.errors import ConfigError
from cacher.fs.ownership import read_config


def read_file(path: Path, *, named_by: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse and check a config file: (field values, fsspec ``options`` table).

    A missing file is no configuration, unless ``named_by`` (``--config``, ``CACHER_CONFIG``)
    named it: then a missing file is an error, never a silent fall-back to the local store.
    """
    try:
        text = read_config(path)[0].decode("utf-8")
    except FileNotFoundError:
        if named_by:
            raise ConfigError(f"the config file {path} (from {named_by}) does not exist") from None
        return {}, {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    import tomllib  # only when there is a config file: a start-up cost otherwise

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
    options = data.pop("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"config file {path}: 'options' must be a table")
    values = {}
    for name, value in data.items():
        spec = FIELD_BY_NAME.get(name)
        if spec is None:
            known = ", ".join(f.name for f in FIELDS)
            raise ConfigError(f"config file {path}: unknown field {name!r} (known: {known})")
        values[name] = check_type(spec, value, f"config file {path}: field {name!r}")
    return values, options


def write(path: Path, values: Mapping[str, Any]) -> None:
    """Write a config file with mode 0600 (it names the credential files)."""
    data = {k: v for k, v in values.items() if v is not None}
    for name, value in data.items():
        spec = FIELD_BY_NAME.get(name)
        if spec is None:
            raise ConfigError(f"unknown field {name!r}")
        check_type(spec, value, f"field {name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        tomli_w.dump(data, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
