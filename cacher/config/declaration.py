"""The one declaration of every setting: `Settings`, whose fields carry their help and range.

Everything else that names a setting is derived from it: `FIELDS` (the ``CACHER_*`` variables,
the config-file keys, ``doctor``'s listing), the store flags of the command line
(`cacher.cli.options.StoreOptions`) and the switches the fast path takes
(`cacher.cli.fastpath`). A setting added here is a flag, a variable and a key at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: The key under which a `Settings` field's metadata holds its `_Spec`.
_SPEC = "cacher.setting"


@dataclass(frozen=True)
class _Spec:
    help: str
    low: float | None
    high: float | None
    low_open: bool


def setting(
    default: Any, help: str, *, low: float | None = None, high: float | None = None, low_open: bool = False
) -> Any:
    """A `Settings` field that is a setting: its default, its help (the flag's and
    ``doctor``'s) and, for a number, its range (``low`` to ``high``, inclusive; ``low_open``:
    more than ``low``)."""
    return field(default=default, metadata={_SPEC: _Spec(help, low, high, low_open)})


#: The longest timeout a setting takes (seconds): longer is a mistake, and far longer
#: overflows the clock arithmetic of the transfer code.
_WEEK = 7 * 86400
#: The shortest: a millisecond (less is zero in all but name: every request would fail).
_MS = 0.001


@dataclass(frozen=True)
class Settings:
    """The resolved settings, one typed attribute per setting, and where each came from
    (``sources``: ``flag``, ``env``, ``file`` or ``default``)."""

    backend: str | None = setting(None, "Store backend: s3, file, memory, or any fsspec protocol.")
    endpoint: str | None = setting(None, "S3 endpoint URL, e.g. https://s3.example.com.")
    region: str = setting("us-east-1", "S3 region (Garage: the s3_region of its config).")
    bucket: str | None = setting(None, "S3 bucket; for the file backend, the cache directory.")
    prefix: str = setting("", "Joined in front of every key.")
    arch_suffix: bool = setting(False, "Append -OS-ARCH (Go's names, e.g. -linux-amd64) to every key.")
    key_file: str | None = setting(None, "File holding the S3 access key id.")
    secret_file: str | None = setting(None, "File holding the S3 secret key.")
    session_token: str | None = setting(
        None, "S3 session token of temporary credentials (STS), sent with the key id and secret."
    )
    ca_bundle: str | None = setting(
        None,
        "CA certificates (PEM file) that verify the S3 endpoint; default AWS_CA_BUNDLE, "
        "then SSL_CERT_FILE, then the system store.",
    )
    connect_timeout: float = setting(
        5.0, "Seconds to wait for a connection to the store.", low=_MS, high=_WEEK
    )
    read_timeout: float = setting(60.0, "Seconds to wait for the store to answer.", low=_MS, high=_WEEK)
    request_timeout: float = setting(
        300.0,
        "Seconds one store request may take in all (bounds a trickling or stuck transfer).",
        low=_MS,
        high=_WEEK,
    )
    metadata_timeout: float = setting(
        7.5,
        "Seconds a HEAD, LIST or DELETE may take in all (a silent store fails fast).",
        low=_MS,
        high=_WEEK,
    )
    max_attempts: int = setting(3, "Attempts per store request, the first included.", low=1, high=100)
    part_size_mb: int = setting(
        8,
        "Part size of S3 multipart uploads and ranged downloads, in MiB (doubled every 1,000 parts).",
        low=5,
        high=5120,
    )
    soft_fail: bool = setting(False, "Storage errors become a warning: a miss on download, exit 0 on upload.")
    read_only: bool = setting(
        False, "Never write to the store: uploads, saves, deletes and prunes become no-ops that say so."
    )
    scope: str | None = setting(None, "Write to and restore from this scope first (a branch name, say).")
    fallback_scopes: str | None = setting(None, "Comma-separated scopes restored from after the job's own.")
    compression_level: int | None = setting(
        None,
        "Codec level (zstd: -131072 to 22, negative its fast levels, default 3; gzip: -1 to 9, default 6).",
        # zstd's own range, the widest of the built-in codecs (tests/cli/test_compression_level.py)
        low=-(1 << 17),
        high=22,
    )
    local_tier: str | None = setting(
        None, "Runner-local directory of verified copies: an unchanged object is restored from it, no GET."
    )
    local_tier_max: str = setting(
        "20GiB", "Bound of the local tier (20GiB, 500MB); least recently used goes first."
    )
    offline: bool = setting(False, "Ask no store: restore from the local tier alone, keep uploads there.")
    lock_timeout: float = setting(
        300.0,
        "Seconds a restore waits for another holding the same place's lock (then exit 2).",
        low=_MS,
        high=_WEEK,
    )
    tree_format: str = setting(
        "tar",
        "How trees (dir, paths) are stored: tar (one .tar.zst per key) or cas (content-addressed: "
        "a changed tree sends and fetches only what changed; docs/format.md).",
    )
    sources: dict[str, str] = field(default_factory=dict)
    config_path: Path = Path()
    config_found: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    #: One-line warnings for the command's reporter (a secret file others can read).
    warnings: tuple[str, ...] = ()

    @property
    def values(self) -> dict[str, Any]:
        """Every setting's value by name (what ``doctor`` shows and ``init`` writes)."""
        return {spec.name: getattr(self, spec.name) for spec in FIELDS}


@dataclass(frozen=True)
class Field:
    """One setting as the rest of cacher reads it: name, value type (``str``, ``bool``,
    ``int`` or ``float``; None is always allowed where the default is None), default, help and
    range, taken from its `Settings` field."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    @property
    def env(self) -> str:
        """Its environment variable."""
        return f"CACHER_{self.name.upper()}"

    @property
    def flag(self) -> str:
        """Its command-line flag."""
        return f"--{self.name.replace('_', '-')}"


#: The types a setting's value may have, by their name in the annotation.
_VALUE_TYPES: dict[str, type] = {"str": str, "bool": bool, "int": int, "float": float}


def _value_type(annotation: Any) -> type:
    """``"str | None"`` → ``str``: the type a value has when it is given. Read from the
    annotation's text, not evaluated (``typing.get_type_hints`` costs a CI command's start-up)."""
    return _VALUE_TYPES[str(annotation).removesuffix(" | None")]


def _declared() -> tuple[Field, ...]:
    out = []
    for f in fields(Settings):
        spec = f.metadata.get(_SPEC)
        if spec is not None:
            value_type = _value_type(f.type)
            out.append(Field(f.name, value_type, f.default, spec.help, spec.low, spec.high, spec.low_open))
    return tuple(out)


#: Every setting, in declaration order.
FIELDS: tuple[Field, ...] = _declared()
FIELD_BY_NAME = {f.name: f for f in FIELDS}
