"""Resolving the settings: flag > ``CACHER_<FIELD>`` variable > config file > default."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cacher.config.checks import check_values, from_env
from cacher.config.configfile import read_file
from cacher.config.declaration import FIELDS, Settings
from cacher.config.paths import config_path
from cacher.errors import ConfigError, UsageError
from cacher.fs.ownership import readable_by_others
from cacher.keying.keyrules import validate_prefix


def load(
    environ: Mapping[str, str],
    flags: Mapping[str, Any] | None = None,
    *,
    config_flag: str | None = None,
) -> Settings:
    """Resolve every field by precedence; flags whose value is None are not given.

    An empty flag value or an empty ``CACHER_*`` variable counts as not given: a CI script's
    unset variable must never replace the configured endpoint, prefix or bucket with nothing.
    """
    path = config_path(environ, config_flag)
    named_by = "--config" if config_flag else "CACHER_CONFIG" if environ.get("CACHER_CONFIG") else None
    file_values, options = read_file(path, named_by=named_by)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in FIELDS:
        flag_value = (flags or {}).get(spec.name)
        if flag_value is not None and flag_value != "":  # `--prefix "$UNSET"` is no flag either
            values[spec.name], sources[spec.name] = flag_value, "flag"
        elif environ.get(spec.env):  # an empty variable is unset: it never hides the file
            values[spec.name], sources[spec.name] = from_env(spec, environ[spec.env]), "env"
        elif spec.name in file_values:
            values[spec.name], sources[spec.name] = file_values[spec.name], "file"
        else:
            values[spec.name], sources[spec.name] = spec.default, "default"
    try:
        values["prefix"] = validate_prefix(values["prefix"])
    except UsageError as exc:
        raise ConfigError(f"prefix: {exc}") from None
    settings = Settings(
        **values,
        sources=sources,
        config_path=path,
        config_found=path.exists(),
        options=options,
        warnings=_secret_warnings(path, file_values, values, environ),
    )
    check_values(settings)
    return settings


def _backend(values: Mapping[str, Any]) -> str:
    """The backend in use: as set; else s3 when an endpoint or bucket is set; else file."""
    return str(values.get("backend") or ("s3" if values.get("endpoint") or values.get("bucket") else "file"))


def resolved_backend(settings: Settings) -> str:
    """The backend in use: as set; else s3 when an endpoint or bucket is set; else file."""
    return _backend(settings.values)


def _secret_warnings(
    path: Path, file_values: Mapping[str, Any], values: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[str, ...]:
    """Warnings for the files holding a secret this command uses that group or others can read
    (as ssh warns of the key it loads): the config file when it holds ``session_token``, and the
    ``secret_file`` unless ``CACHER_S3_KEY_ID``/``CACHER_S3_SECRET`` take its place. Only for
    the s3 backend: no other reads them."""
    if _backend(values) != "s3":
        return ()
    found = []
    if "session_token" in file_values:
        found.append(readable_by_others(path, "config file (it holds session_token)"))
    env_keys = environ.get("CACHER_S3_KEY_ID") or environ.get("CACHER_S3_SECRET")
    if values.get("secret_file") and not env_keys:
        found.append(readable_by_others(Path(values["secret_file"]).expanduser(), "secret file"))
    return tuple(w for w in found if w)
