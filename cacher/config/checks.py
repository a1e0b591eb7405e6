"""Every value a setting takes is checked here, before any command does I/O: its type (from a
file or a variable), a number finite and in its declared range, a size, an endpoint's scheme.
Each error names the setting and where its value came from (`origin`)."""

from __future__ import annotations

import math
from typing import Any

from cacher.config.declaration import FIELD_BY_NAME, FIELDS, Field, Settings
from cacher.config.sizes import parse_size
from cacher.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def check_type(spec: Field, value: Any, where: str) -> Any:
    """A config-file value of the setting's type (an integer is taken for a float, and for a
    size as bytes); `ConfigError` naming ``where`` otherwise."""
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.name == "local_tier_max" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a size in bytes, as the table lists it (`1048576`)
    if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be a {spec.type.__name__}, not {type(value).__name__} ({value!r})")
    return value


def from_env(spec: Field, raw: str) -> Any:
    """A ``CACHER_*`` variable's text as the setting's type."""
    where = f"environment variable {spec.env}"
    if spec.type is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{where} must be true or false, not {raw!r}")
    if spec.type in (int, float):
        try:
            return spec.type(raw)
        except ValueError:
            raise ConfigError(f"{where} must be a number, not {raw!r}") from None
    return raw


def origin(settings: Settings, name: str) -> str:
    """Where a setting came from, as a user would name it."""
    source = settings.sources[name]
    spec = FIELD_BY_NAME[name]
    return {
        "flag": spec.flag,
        "env": spec.env,
        "file": f"config file {settings.config_path}",
    }.get(source, "default")


#: The values of ``tree_format``: one archive per key (the default), or content-addressed.
TREE_FORMATS = ("tar", "cas")


def check_values(settings: Settings) -> None:
    """Every number in its range, the size a size, the endpoint an http(s) URL."""
    for spec in FIELDS:
        if spec.type in (int, float):
            _check_number(settings, spec)
    _check_size(settings, "local_tier_max")
    tree_format = settings.values["tree_format"]
    if tree_format not in TREE_FORMATS:
        raise ConfigError(
            f"tree_format {tree_format!r} ({origin(settings, 'tree_format')}) is not a tree format: "
            f"give {' or '.join(TREE_FORMATS)}"
        )
    endpoint = settings.values["endpoint"]
    if endpoint and not str(endpoint).lower().startswith(("http://", "https://")):
        raise ConfigError(
            f"endpoint {endpoint!r} ({origin(settings, 'endpoint')}) must start with http:// or https://"
        )


def _check_number(settings: Settings, spec: Field) -> None:
    """A number setting is finite and in its range; `ConfigError` naming it and its origin."""
    value = settings.values[spec.name]
    if value is None:
        return
    low = "" if spec.low is None else f"more than {spec.low:g}" if spec.low_open else f"at least {spec.low:g}"
    high = "" if spec.high is None else f"at most {spec.high:g}"
    wanted = " and ".join(filter(None, (low, high)))
    too_low = spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low)
    too_high = spec.high is not None and value > spec.high
    if not math.isfinite(value) or too_low or too_high:
        raise ConfigError(
            f"{spec.name} {value!r} ({origin(settings, spec.name)}) is out of range: "
            f"give a finite number{' ' + wanted if wanted else ''}"
        )


def _check_size(settings: Settings, name: str) -> None:
    """A size setting (``20GiB``) is one the local tier reads (the same parser)."""
    text = str(settings.values[name] or FIELD_BY_NAME[name].default)
    try:
        parse_size(text, setting=name)
    except ConfigError as exc:
        raise ConfigError(f"{exc.message} ({origin(settings, name)})", hint=exc.hint) from None
    except (OverflowError, ValueError):  # more digits than a float holds
        raise ConfigError(f"{name} {text[:40]!r}... ({origin(settings, name)}) is out of range") from None
