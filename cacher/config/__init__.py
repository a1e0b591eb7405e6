"""Settings: flag > ``CACHER_<FIELD>`` environment variable > config file > default.

The config file is ``$XDG_CONFIG_HOME/cacher/config.toml`` (``~/.config/cacher/config.toml``),
or the file named by ``--config`` / ``CACHER_CONFIG``. Credentials are not settings: they come
from ``CACHER_S3_KEY_ID`` / ``CACHER_S3_SECRET``, else from ``key_file`` / ``secret_file``
(with ``session_token``), else from the standard AWS chain (`cacher.stores.s3.credentials`).

The config file is obeyed only when it is the user's own (`cacher.fs.ownership`: not another
user's, not writable by group or others), and every number a setting takes is checked here,
finite and in its range, before any command does I/O.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from cacher.errors import ConfigError, UsageError
from cacher.fs.ownership import read_config, readable_by_others
from cacher.keying.keyrules import validate_prefix


@dataclass(frozen=True)
class Field:
    """One setting: its type, default and help (the docs' configuration table comes from here);
    a number's range is ``low`` to ``high`` (inclusive; ``low_open``: more than ``low``)."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    @property
    def env(self) -> str:
        return f"CACHER_{self.name.upper()}"


#: The longest timeout a setting takes (seconds): longer is a mistake, and far longer
#: overflows the clock arithmetic of the transfer code.
_WEEK = 7 * 86400
#: The shortest: a millisecond (less is zero in all but name: every request would fail).
_MS = 0.001

FIELDS: tuple[Field, ...] = (
    Field("backend", str, None, "Store backend: s3, file, memory, or any fsspec protocol."),
    Field("endpoint", str, None, "S3 endpoint URL, e.g. https://s3.example.com."),
    Field("region", str, "us-east-1", "S3 region (Garage: the s3_region of its config)."),
    Field("bucket", str, None, "S3 bucket; for the file backend, the cache directory."),
    Field("prefix", str, "", "Joined in front of every key."),
    Field("arch_suffix", bool, False, "Append -<os>-<arch> to every key."),
    Field("key_file", str, None, "File holding the S3 access key id."),
    Field("secret_file", str, None, "File holding the S3 secret key."),
    Field(
        "session_token",
        str,
        None,
        "S3 session token of temporary credentials (STS), sent with the key id and secret.",
    ),
    Field(
        "ca_bundle",
        str,
        None,
        "CA certificates (PEM file) that verify the S3 endpoint; default AWS_CA_BUNDLE, "
        "then SSL_CERT_FILE, then the system store.",
    ),
    Field("connect_timeout", float, 5.0, "Seconds to wait for a connection to the store.", _MS, _WEEK),
    Field("read_timeout", float, 60.0, "Seconds to wait for the store to answer.", _MS, _WEEK),
    Field(
        "request_timeout",
        float,
        300.0,
        "Seconds one store request may take in all (bounds a trickling or stuck transfer).",
        _MS,
        _WEEK,
    ),
    Field(
        "metadata_timeout",
        float,
        7.5,
        "Seconds a HEAD, LIST or DELETE may take in all (a silent store fails fast).",
        _MS,
        _WEEK,
    ),
    Field("max_attempts", int, 3, "Attempts per store request, the first included.", 1, 100),
    Field(
        "part_size_mb",
        int,
        8,
        "Part size of S3 multipart uploads and ranged downloads, in MiB (doubled every 1,000 parts).",
        5,
        5120,
    ),
    Field("soft_fail", bool, False, "Storage errors become a warning: a miss on download, exit 0 on upload."),
    Field(
        "read_only",
        bool,
        False,
        "Never write to the store: uploads, saves, deletes and prunes become no-ops that say so.",
    ),
    Field("scope", str, None, "Write to and restore from this scope first (a branch name, say)."),
    Field("fallback_scopes", str, None, "Comma-separated scopes restored from after the job's own."),
    Field(
        "compression_level",
        int,
        None,
        "Codec level (zstd: -131072 to 22, negative its fast levels, default 3; gzip: -1 to 9, default 6).",
        -(1 << 17),  # zstd's own range, the widest of the built-in codecs (tests/test_compression_level.py)
        22,
    ),
    Field(
        "local_tier",
        str,
        None,
        "Runner-local directory of verified copies: an unchanged object is restored from it, no GET.",
    ),
    Field(
        "local_tier_max",
        str,
        "20GiB",
        "Bound of the local tier (20GiB, 500MB); least recently used goes first.",
    ),
    Field("offline", bool, False, "Ask no store: restore from the local tier alone, keep uploads there."),
    Field(
        "lock_timeout",
        float,
        300.0,
        "Seconds a restore waits for another holding the same place's lock (then exit 2).",
        _MS,
        _WEEK,
    ),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    """The resolved settings, one typed attribute per `Field`, and where each came from
    (``sources``: ``flag``, ``env``, ``file`` or ``default``)."""

    backend: str | None
    endpoint: str | None
    region: str
    bucket: str | None
    prefix: str
    arch_suffix: bool
    key_file: str | None
    secret_file: str | None
    session_token: str | None
    ca_bundle: str | None
    connect_timeout: float
    read_timeout: float
    request_timeout: float
    metadata_timeout: float
    max_attempts: int
    part_size_mb: int
    soft_fail: bool
    compression_level: int | None
    read_only: bool
    scope: str | None
    fallback_scopes: str | None
    local_tier: str | None
    local_tier_max: str
    offline: bool
    lock_timeout: float
    sources: dict[str, str] = field(default_factory=dict)
    config_path: Path = Path()
    config_found: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    #: One-line warnings for the command's reporter (a secret file others can read).
    warnings: tuple[str, ...] = ()

    @property
    def values(self) -> dict[str, Any]:
        """Every field's value by name (what ``doctor`` shows and ``init`` writes)."""
        return {spec.name: getattr(self, spec.name) for spec in FIELDS}


def config_path(environ: Mapping[str, str], flag: str | None = None) -> Path:
    if flag:
        return Path(flag).expanduser()
    if environ.get("CACHER_CONFIG"):
        return Path(environ["CACHER_CONFIG"]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "cacher" / "config.toml"


def cache_dir(environ: Mapping[str, str]) -> Path:
    """The default root of the file backend: ``$XDG_CACHE_HOME/cacher``; `ConfigError` when
    neither it nor HOME gives an absolute path (the store would land in the checkout)."""
    xdg, home = environ.get("XDG_CACHE_HOME"), environ.get("HOME")
    if xdg:
        root = Path(xdg).expanduser() / "cacher"
    elif home == "":  # set but empty: "~" would become "/" or the current directory
        root = Path(".cache") / "cacher"
    else:
        root = Path(home or os.path.expanduser("~")) / ".cache" / "cacher"
    if not root.is_absolute():
        raise ConfigError(
            f"no place for the local cache: {root} is relative (HOME and XDG_CACHE_HOME are empty)",
            hint="set HOME or XDG_CACHE_HOME, or name the cache directory with --bucket",
        )
    return root


def runtime_dir(environ: Mapping[str, str]) -> Path:
    """Where cacher keeps its lock files: ``$XDG_RUNTIME_DIR/cacher``, else a per-user temp dir.
    Anyone can make a name in the shared temp dir first: when ``cacher-<uid>`` there is not a
    directory of the user's own, the user's cache directory holds it instead
    (``$XDG_CACHE_HOME/ci-cacher/runtime``), so a planted directory never stops a restore."""
    base = environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "cacher"
    import stat
    import tempfile

    shared = Path(tempfile.gettempdir()) / f"cacher-{os.getuid()}"
    try:
        st = os.lstat(shared)
    except OSError:
        return shared  # not there yet: made private by whoever needs it
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022:
        return shared
    try:
        return cache_dir(environ).parent / "ci-cacher" / "runtime"
    except ConfigError:
        return shared  # no cache directory either: the check on use names the problem


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
        values[name] = _check_type(spec, value, f"config file {path}: field {name!r}")
    return values, options


def _check_type(spec: Field, value: Any, where: str) -> Any:
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.name == "local_tier_max" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a size in bytes, as the table lists it (`1048576`)
    if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be a {spec.type.__name__}, not {type(value).__name__} ({value!r})")
    return value


def _from_env(spec: Field, raw: str) -> Any:
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
            values[spec.name], sources[spec.name] = _from_env(spec, environ[spec.env]), "env"
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
    _check_values(settings)
    return settings


def _secret_warnings(
    path: Path, file_values: Mapping[str, Any], values: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[str, ...]:
    """Warnings for the files holding a secret this command uses that group or others can read
    (as ssh warns of the key it loads): the config file when it holds ``session_token``, and the
    ``secret_file`` unless ``CACHER_S3_KEY_ID``/``CACHER_S3_SECRET`` take its place. Only for
    the s3 backend: no other reads them."""
    backend = values.get("backend") or ("s3" if values.get("endpoint") or values.get("bucket") else "file")
    if backend != "s3":
        return ()
    found = []
    if "session_token" in file_values:
        found.append(readable_by_others(path, "config file (it holds session_token)"))
    env_keys = environ.get("CACHER_S3_KEY_ID") or environ.get("CACHER_S3_SECRET")
    if values.get("secret_file") and not env_keys:
        found.append(readable_by_others(Path(values["secret_file"]).expanduser(), "secret file"))
    return tuple(w for w in found if w)


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


def _check_values(settings: Settings) -> None:
    for spec in FIELDS:
        if spec.type in (int, float):
            _check_number(settings, spec)
    _check_size(settings, "local_tier_max")
    endpoint = settings.values["endpoint"]
    if endpoint and not str(endpoint).lower().startswith(("http://", "https://")):
        raise ConfigError(
            f"endpoint {endpoint!r} ({origin(settings, 'endpoint')}) must start with http:// or https://"
        )


def _check_size(settings: Settings, name: str) -> None:
    """A size setting (``20GiB``) is one the local tier reads (the tier's own parser)."""
    from cacher.stores.tier.disk import parse_size

    text = str(settings.values[name] or "20GiB")
    try:
        parse_size(text, setting=name)
    except ConfigError as exc:
        raise ConfigError(f"{exc.message} ({origin(settings, name)})", hint=exc.hint) from None
    except (OverflowError, ValueError):  # more digits than a float holds
        raise ConfigError(f"{name} {text[:40]!r}... ({origin(settings, name)}) is out of range") from None


def origin(settings: Settings, name: str) -> str:
    """Where a setting came from, as a user would name it."""
    source = settings.sources[name]
    spec = FIELD_BY_NAME[name]
    return {
        "flag": f"--{name.replace('_', '-')}",
        "env": spec.env,
        "file": f"config file {settings.config_path}",
    }.get(source, "default")


def resolved_backend(settings: Settings) -> str:
    """The backend in use: as set; else s3 when an endpoint or bucket is set; else file."""
    if settings.backend:
        return settings.backend
    if settings.endpoint or settings.bucket:
        return "s3"
    return "file"


def write(path: Path, values: Mapping[str, Any]) -> None:
    """Write a config file with mode 0600 (it names the credential files)."""
    data = {k: v for k, v in values.items() if v is not None}
    for name, value in data.items():
        spec = FIELD_BY_NAME.get(name)
        if spec is None:
            raise ConfigError(f"unknown field {name!r}")
        _check_type(spec, value, f"field {name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        tomli_w.dump(data, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
