"""Settings precedence (flag > env > file > default), credentials, and config errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from cacher import config
from cacher.errors import ConfigError
from cacher.stores.s3.credentials import resolve
from tests.conftest import assert_one_error_line

SAMPLES: dict[str, tuple[Any, Any, Any, str]] = {
    # field: (file value, env value (as parsed), flag value, env text)
    "backend": ("file", "memory", "s3", "memory"),
    "endpoint": ("http://file:1", "http://env:2", "http://flag:3", "http://env:2"),
    "region": ("file-r", "env-r", "flag-r", "env-r"),
    "bucket": ("file-b", "env-b", "flag-b", "env-b"),
    "prefix": ("file/p", "env/p", "flag/p", "env/p"),
    "arch_suffix": (True, False, True, "false"),
    "key_file": ("/file/k", "/env/k", "/flag/k", "/env/k"),
    "secret_file": ("/file/s", "/env/s", "/flag/s", "/env/s"),
    "connect_timeout": (1.5, 2.5, 3.5, "2.5"),
    "read_timeout": (10.0, 20.0, 30.0, "20"),
    "request_timeout": (100.0, 200.0, 300.5, "200"),
    "max_attempts": (2, 4, 5, "4"),
    "metadata_timeout": (2.0, 4.0, 6.5, "4"),
    "session_token": ("tok-file", "tok-env", "tok-flag", "tok-env"),
    "ca_bundle": ("/f/ca.pem", "/e/ca.pem", "/g/ca.pem", "/e/ca.pem"),
    "part_size_mb": (6, 7, 9, "7"),
    "compression_level": (1, 9, 19, "9"),
    "soft_fail": (True, False, True, "no"),
    "read_only": (True, False, True, "off"),
    "scope": ("file-s", "env-s", "flag-s", "env-s"),
    "fallback_scopes": ("main", "main,dev", "release", "main,dev"),
    "local_tier": ("/file/t", "/env/t", "/flag/t", "/env/t"),
    "local_tier_max": ("1GiB", "2GiB", "3GiB", "2GiB"),
    "offline": (True, False, True, "0"),
}


def test_every_field_has_a_precedence_sample() -> None:
    assert set(SAMPLES) == {f.name for f in config.FIELDS}


def test_settings_has_one_typed_attribute_per_field() -> None:
    """Settings is a frozen dataclass: a Field without its attribute (or the reverse) fails here."""
    import dataclasses

    own = {f.name for f in dataclasses.fields(config.Settings)} - {"sources", "config_path", "config_found", "options"}
    assert own == {f.name for f in config.FIELDS}
    settings = config.load({}, {}, config_flag=os.devnull)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.prefix = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_precedence(name: str, tmp_path: Path) -> None:
    file_value, env_value, flag_value, env_text = SAMPLES[name]
    spec = config.FIELD_BY_NAME[name]
    path = tmp_path / "config.toml"
    base = {"XDG_CONFIG_HOME": str(tmp_path / "none")}
    # default
    path.write_text("")
    s = config.load(base, {}, config_flag=str(path))
    assert (s.values[name], s.sources[name]) == (spec.default if name != "prefix" else "", "default")
    # file beats default
    path.write_text(tomli_w.dumps({name: file_value}))
    s = config.load(base, {}, config_flag=str(path))
    assert (s.values[name], s.sources[name]) == (file_value, "file")
    # env beats file
    s = config.load({**base, spec.env: env_text}, {}, config_flag=str(path))
    assert (s.values[name], s.sources[name]) == (env_value, "env")
    # flag beats env
    s = config.load({**base, spec.env: env_text}, {name: flag_value}, config_flag=str(path))
    assert (s.values[name], s.sources[name]) == (flag_value, "flag")


def test_config_location_follows_xdg(tmp_path: Path) -> None:
    assert config.config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "cacher/config.toml"
    assert config.config_path({"HOME": str(tmp_path)}) == tmp_path / ".config/cacher/config.toml"
    assert config.config_path({"CACHER_CONFIG": "/x.toml", "HOME": "/h"}) == Path("/x.toml")


def _settings(tmp_path: Path, **values: Any) -> config.Settings:
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(values))
    return config.load({}, {}, config_flag=str(path))


def test_credentials_env_beats_files(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("file-key\n")
    (tmp_path / "s").write_text("file-secret\n")
    s = _settings(tmp_path, key_file=str(tmp_path / "k"), secret_file=str(tmp_path / "s"))
    creds = resolve(s, {"CACHER_S3_KEY_ID": "env-key", "CACHER_S3_SECRET": "env-secret"})
    assert (creds.key_id, creds.secret) == ("env-key", "env-secret")
    creds = resolve(s, {})
    assert (creds.key_id, creds.secret) == ("file-key", "file-secret")
    assert "file-secret" not in repr(creds) and "file-secret" not in creds.describe()


def test_key_file_flag_beats_config_files(tmp_path: Path) -> None:
    for name in ("k1", "s1", "k2", "s2"):
        (tmp_path / name).write_text(name)
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps({"key_file": str(tmp_path / "k1"), "secret_file": str(tmp_path / "s1")}))
    flags = {"key_file": str(tmp_path / "k2"), "secret_file": str(tmp_path / "s2")}
    creds = resolve(config.load({}, flags, config_flag=str(path)), {})
    assert (creds.key_id, creds.secret) == ("k2", "s2")


def test_missing_and_unreadable_credentials(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    with pytest.raises(ConfigError, match="no S3 credentials"):
        resolve(s, {})
    with pytest.raises(ConfigError, match="CACHER_S3_SECRET is not set"):
        resolve(s, {"CACHER_S3_KEY_ID": "k"})
    secret = tmp_path / "s"
    secret.write_text("topsecret")
    secret.chmod(0)
    s = _settings(tmp_path, key_file=str(tmp_path / "missing"), secret_file=str(secret))
    with pytest.raises(ConfigError, match="does not exist") as err:
        resolve(s, {})
    assert "topsecret" not in str(err.value)


def _write_config(home: Path, text: str) -> Path:
    path = home / ".config" / "cacher" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('bucket = "a"\nregion = \n', ["invalid TOML", "line 2"]),
        ('bucket = "a"\ncolour = "blue"\n', ["unknown field 'colour'"]),
        ('arch_suffix = "yes"\n', ["'arch_suffix' must be a bool"]),
        ("max_attempts = 0\n", ["max_attempts must be at least 1"]),
        ('prefix = "../x"\n', ["prefix", "'..'"]),
    ],
)
def test_bad_config_file_exits_2(
    cacher, home: Path, local_root: Path, tmp_path: Path, text: str, needles: list[str]
) -> None:
    _write_config(home, text)
    f = tmp_path / "f"
    f.write_text("data")
    run = cacher("upload", "k", str(f))
    assert run.code == 2, run
    assert_one_error_line(run, *needles)
    assert not local_root.exists()


def test_bad_env_value_exits_2(cacher, tmp_path: Path) -> None:
    run = cacher("exists", "k", extra_env={"CACHER_ARCH_SUFFIX": "maybe"})
    assert run.code == 2, run
    assert_one_error_line(run, "CACHER_ARCH_SUFFIX")


def test_init_writes_0600_config_after_smoke_test(cacher, home: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    run = cacher("init", "--backend", "file", "--bucket", str(root), "--prefix", "proj")
    assert run.code == 0, run
    path = home / ".config" / "cacher" / "config.toml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert config.read_file(path)[0] == {"backend": "file", "bucket": str(root), "prefix": "proj"}
    assert list(root.rglob("*")) == [root / "proj"] or not list(root.rglob("*.cacher-doctor*"))
    doctor = cacher("doctor")
    assert doctor.code == 0, doctor
    assert "canary written, read back and deleted" in doctor.err


def test_init_without_credentials_writes_nothing(cacher, home: Path) -> None:
    run = cacher("init", "--endpoint", "http://127.0.0.1:9", "--bucket", "b")
    assert run.code == 2, run
    assert_one_error_line(run, "no S3 credentials")
    assert not (home / ".config" / "cacher" / "config.toml").exists()


def test_configuration_doc_lists_every_field() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    for spec in config.FIELDS:
        assert f"| `{spec.name}` | `{spec.env}` |" in doc, spec.name
